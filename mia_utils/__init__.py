"""mia_utils: the tested library behind the executable book on regularization and membership
inference (Kaya, Hong & Dumitras, 2020).

Its layout shows the paper's parts, in three levels; each imports only from the levels above it in
this list, never from below (``tests/test_layout.py`` checks it):

* The recipe's core, at the top of the package: ``data`` (datasets, membership splits, LiRA's
  pool), ``models`` (VGG-style CNNs and prediction), ``config`` (validated run configurations),
  ``defenses`` (the mechanisms: the paper's seven, DP-SGD, mix-up and MMD, and their registry),
  ``train`` (the one training loop), ``store`` (the result store), ``experiment`` (train, or
  read back from the store) and ``generative`` (a small DCGAN of Fashion-MNIST images, trained or
  read back the same way, for chapter 08's generated inputs).
* ``attacks``: the attacks and their measurement (black-box attacks, LiRA, distance to
  confident, DP audits, metrics, intervals over seeds, a run's cached evaluation, OOD inputs,
  figures). See :mod:`mia_utils.attacks`.
* ``book``: the chapters and what they need beyond the core (each chapter's parameters and runs,
  profiles, settings over seeds, the published values and the findings, the related chapters'
  analyses, the plan, the sweep and each page's provenance). See :mod:`mia_utils.book`.

Beside them, ``cli`` is the command line (``python -m mia_utils``, through ``__main__``).
"""

__version__ = "0.1.0"
