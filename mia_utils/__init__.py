"""mia_utils: the tested library behind the executable book on regularization and membership
inference (Kaya, Hong & Dumitras, 2020).

Its modules, from the bottom up:

* The recipe's core: ``data`` (datasets, membership splits, LiRA's pool), ``models``
  (VGG-style CNNs and prediction), ``config`` (validated run configurations), ``defenses``
  (the mechanisms: the paper's seven, DP-SGD, mix-up and MMD, and their registry), ``train``
  (the one training loop), ``store`` (the result store) and ``experiment`` (train, or read
  back from the store).
* Measurement: ``attacks`` (the black-box attacks and LiRA), ``metrics``, ``dtc``
  (distance to confident), ``ood`` (out-of-distribution sets, calibration, Laplace),
  ``evidence`` (seed means and intervals, verdicts), ``evaluation`` (every metric of a run,
  cached) and ``plots``.
* The book's analyses: ``profiles`` (named sizes), ``sweeps`` (settings over seeds),
  ``report`` (the paper's published values and the tables beside them), ``findings`` (the ten
  findings and their verdicts), ``related`` (the related-work chapters' experiments) and
  ``provenance`` (each page's record).
* Orchestration: ``chapters`` (each chapter's parameters), ``chapter_runs`` (each chapter's
  runs), ``plan`` (their union and its cost), ``sweep`` (training the plan, locally or on a
  Dask cluster) and ``cli`` (``python -m mia_utils``, through ``__main__``).
"""

__version__ = "0.1.0"
