"""The book: its chapters and the analyses that turn stored runs into the pages' tables and verdicts.

Chapters and their runs:

* :mod:`~mia_utils.book.chapters`: the chapters (parameterized notebooks), their parameters and
  validation;
* :mod:`~mia_utils.book.runs`: the training runs each chapter needs under a profile, defined once;
* :mod:`~mia_utils.book.profiles`: named, documented sets of sizes (``smoke``, ``quick``,
  ``paper``);
* :mod:`~mia_utils.book.replicated`: a mechanism setting replicated over seeds
  (:class:`~mia_utils.book.replicated.Setting`) and the chapters' sweeps over such settings;
* :mod:`~mia_utils.book.plan`: the union of every chapter's runs, and its cost;
* :mod:`~mia_utils.book.sweep`: training the plan, here or on a Dask cluster;
* :mod:`~mia_utils.book.console`: what a book build prints (a line per chapter, a summary) and
  the logs everything else goes to;
* :mod:`~mia_utils.book.provenance`: each executed page's record.

Analyses shared by the chapters:

* :mod:`~mia_utils.book.report`: the paper's published values and the tables beside ours;
* :mod:`~mia_utils.book.findings`: the paper's ten findings, each a test on our runs;
* :mod:`~mia_utils.book.verdicts`: the building blocks of the related chapters' verdicts.

Each chapter's own computation, tables, glued values and figures, one module per chapter (the
notebook narrates and calls them):

* :mod:`~mia_utils.book.primer`: chapter 00, one model attacked by hand;
* :mod:`~mia_utils.book.baselines`: chapter 01, the baselines and every black-box attack;
* :mod:`~mia_utils.book.regularization`: chapter 02, the paper's mechanisms swept (Tables 3-5);
* :mod:`~mia_utils.book.differential_privacy`: chapter 03, DP-SGD's sweep, certified against
  empirical epsilon;
* :mod:`~mia_utils.book.combinations`: chapter 04, pairs of mechanisms and early stopping (Table 6);
* :mod:`~mia_utils.book.distance_to_confident`: chapter 05, distance to confident (Tables 7-8,
  Figure 1);
* :mod:`~mia_utils.book.generalization`: chapter 06, LiRA against generalization;
* :mod:`~mia_utils.book.mmd_mixup`: chapter 07, MMD + mix-up;
* :mod:`~mia_utils.book.ood_scores`: chapter 08, prediction scores on out-of-distribution inputs;
* :mod:`~mia_utils.book.stronger_attacks`: chapter 09, the selected defenses and DP-SGD against
  RMIA, the augmentation-aware attack and label-only attacks.

Import the modules themselves, e.g. ``from mia_utils.book import findings, report``.
"""

__all__ = ["chapters", "runs", "profiles", "replicated", "plan", "sweep", "console", "provenance", "report", "findings",
           "verdicts", "primer", "baselines", "regularization", "differential_privacy", "combinations",
           "distance_to_confident", "generalization", "mmd_mixup", "ood_scores", "stronger_attacks"]
