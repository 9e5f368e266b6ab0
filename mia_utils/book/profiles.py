"""Profiles: named, documented sets of sizes. Every notebook takes ``profile`` as a parameter.

* ``smoke``: tests and CI. Tiny subsets of Fashion-MNIST, a very narrow network, 2 seeds; every
  notebook end to end in seconds. Its numbers only show that the pipeline works.
* ``quick``: the default build and teaching. Real Fashion-MNIST, 4,000 members, 2,000 evaluation
  and 2,000 adversary samples per side, the authors' network at a width chosen by measurement
  (:data:`QUICK_WIDTH`), lr 0.003 and 20 epochs (the paper's 0.0002 underfits this few members),
  3 seeds for every setting that carries a verdict and 8 for the baseline they are compared with.
* ``paper``: the paper's setup on all three datasets: the whole training set as members,
  Adam with AMSGrad, lr 0.0002, weight decay 1e-6, batch 128, 30 epochs, full-width networks,
  3 seeds. Needs a GPU (hours). Its evaluation and adversary sets take 3,000 test images per
  side each (:data:`PAPER_PER_SIDE`). That leaves 4,000 test images in no set, the only images
  that are neither members nor evaluated: chapter 07's MMD validation set and chapter 08's
  out-of-distribution sources and calibration set are drawn from them.

``seeds`` is the number of seeds of every setting that enters a verdict (see
:func:`mia_utils.book.replicated.seed_list`); ``baseline_seeds`` the number of the unregularized baseline,
which anchors every comparison (at least ``seeds``; see :func:`mia_utils.book.replicated.baseline_seed_list`);
``shadow_models`` is LiRA's K (each evaluated example is IN for K/2 of them; the related-work
chapters' populations have K models, each the target of the K - 1 others, so ``paper``'s 18 gives
them the 16 or more shadow models per target that the book asks for); ``bootstrap`` the number of bootstrap replicates behind every within-seed
uncertainty; ``dtc_samples`` the members and the non-members per set on which DtC is measured
(0: all of them); ``dtc_f9_samples`` the same for the three RAD<15% settings finding F9 reads
(distillation, Gaussian noise, cropping), whose gaps must resolve the paper's few points (0: all).

Grids list the values each regularization mechanism is swept over (the paper's Table 1
ranges; the values are those its Tables 3-5 report, filled in between).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mia_utils.config import RunConfig
from mia_utils.data import DATASETS

#: Section 5 compares early stopping on top of distillation and of cropping at these epochs.
SECTION5_EPOCHS = (5, 10, 15, 20)


@dataclass(frozen=True)
class DatasetSizes:
    """Counts of images: members trained on, per-side evaluation and adversary set sizes."""

    n_members: int
    n_eval: int
    n_adversary: int


@dataclass(frozen=True)
class Profile:
    """A named set of sizes and training settings; see the module docstring."""

    name: str
    purpose: str
    sizes: dict[str, DatasetSizes]
    width: float
    epochs: int
    lr: float
    batch_size: int = 128
    weight_decay: float = 1e-6
    amsgrad: bool = True
    seeds: int = 1
    baseline_seeds: int = 0
    shadow_models: int = 8
    bootstrap: int = 200
    dtc_samples: int = 0
    dtc_f9_samples: int = 0
    grids: dict[str, tuple] = field(default_factory=dict)

    @property
    def datasets(self) -> tuple[str, ...]:
        return tuple(self.sizes)

    def base_config(self, dataset: str, seed: int = 0, epochs: int | None = None) -> RunConfig:
        """The baseline (no regularization) configuration of ``dataset`` in this profile, with
        snapshots at the early-stopping grid's epochs, so that sweep costs no extra training.
        ``epochs`` overrides the profile's number of epochs."""
        epochs = epochs or self.epochs
        if dataset not in self.sizes:
            raise ValueError(f"dataset: {dataset!r} is not in profile {self.name!r}; "
                             f"allowed: {', '.join(self.sizes)}")
        size = self.sizes[dataset]
        return RunConfig(dataset=dataset, n_members=size.n_members, n_eval=size.n_eval,
                         n_adversary=size.n_adversary, split_seed=seed, seed=seed, width=self.width,
                         epochs=epochs, batch_size=self.batch_size, lr=self.lr,
                         weight_decay=self.weight_decay, amsgrad=self.amsgrad,
                         snapshot_epochs=self.snapshot_epochs(epochs))

    def snapshot_epochs(self, epochs: int | None = None) -> tuple[int, ...]:
        """Epochs after which a run keeps a snapshot: the early-stopping grid and Section 5's
        E = 5, 10, 15, 20, those below ``epochs`` (default: the profile's)."""
        epochs = epochs or self.epochs
        wanted = set(self.grids.get("early_stopping", ())) | set(SECTION5_EPOCHS)
        return tuple(sorted(e for e in wanted if e < epochs))

    def describe(self) -> dict:
        """A flat, printable summary (for the book's provenance and setup tables)."""
        row = {"profile": self.name, "purpose": self.purpose,
               "datasets": ", ".join(DATASETS[d].title for d in self.datasets),
               "width": self.width, "epochs": self.epochs, "lr": self.lr,
               "batch_size": self.batch_size, "weight_decay": self.weight_decay, "seeds": self.seeds,
               "baseline_seeds": max(self.seeds, self.baseline_seeds),
               "shadow_models": self.shadow_models, "bootstrap": self.bootstrap}
        for dataset, size in self.sizes.items():
            row[f"{dataset}_members"] = size.n_members
            row[f"{dataset}_eval_per_side"] = size.n_eval
            row[f"{dataset}_adversary_per_side"] = size.n_adversary
        return row


PAPER_GRIDS = {
    "distillation": (1, 2, 3, 5, 10, 25, 50, 100),
    "label_smoothing": (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99),
    "gaussian_noise": (0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.225, 0.25),
    "random_crop": (1, 2, 4, 8, 12, 16, 18, 20, 22, 24),
    "dropout": (0.05, 0.1, 0.25, 0.5, 0.75, 0.95),
    "spatial_dropout": (0.05, 0.1, 0.25, 0.5, 0.75, 0.95),
    "weight_decay": (1e-6, 1e-5, 1e-4, 5e-4, 1e-3, 1e-2, 0.1, 0.5),
    "early_stopping": (1, 2, 5, 10, 15, 20, 25, 30),
    "dp_sgd": (0.01, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0),
}
QUICK_GRIDS = {
    # Beyond the paper's T = 100: at the quick width T = 100 is already the RAD<5% pick, and F7
    # needs distillation "turned up" past it (the paper turns its RAD<5% T = 50 up to T = 100).
    "distillation": (2, 10, 50, 100, 200, 400),
    "label_smoothing": (0.01, 0.5, 0.9),
    "gaussian_noise": (0.025, 0.1, 0.2),
    "random_crop": (1, 2, 4, 8, 12),
    "dropout": (0.1, 0.5, 0.9),
    "spatial_dropout": (0.1, 0.5, 0.9),
    "weight_decay": (1e-4, 1e-2, 0.1),
    "early_stopping": (1, 5, 10, 15),
    "dp_sgd": (0.01, 0.1, 0.25, 1.0, 10.0),
}
SMOKE_GRIDS = {name: values[:1] + values[-1:] for name, values in QUICK_GRIDS.items()}
SMOKE_GRIDS["early_stopping"] = (1, 2)  # the smoke profile trains 2 epochs

# The quick profile's network width and epochs, chosen by measurement (benchmarks/quick_sizing.py,
# results in benchmarks/results/quick_sizing.md): the smallest cost at which the baseline's
# Adv_Yeom and Adv_Salem reach the paper's magnitudes, 2,000 evaluation samples per side. Epochs:
# where both advantages stop changing within their intervals (20; 30 epochs moved neither by more
# than its half-width). The baseline gets 8 seeds so that both advantages' intervals are at most a
# quarter of the value: Salem's advantage varies from seed to seed (5.4 to 12.4 % over 5 seeds,
# standard deviation 2.6 points): its half-width was 28 % of it with 3 seeds (30 epochs) and 34 % with
# 5 (20 epochs).
QUICK_WIDTH = 0.125
QUICK_EPOCHS = 20
QUICK_LR = 3e-3

# The paper profile's evaluation and adversary sets, per side. Every training image is a member, so
# the test images these two sets leave unused are the only images outside every set: chapter 07
# draws its MMD validation set from them (mmd.validation_indices) and chapter 08 its OOD sources and
# calibration set (ood.free_test_split, with n_eval OOD sources by default and at least one calibration
# image). 3,000 per side leaves 10,000 - 2 x 3,000 = 4,000 of them: 3,000 OOD sources and 1,000
# calibration images for chapter 08, and all 4,000 as the MMD validation set. One size for every
# chapter, so that all share one base configuration per dataset (chapter 07 pairs MMD + mix-up seed by
# seed with chapter 02's settings). The paper does not state its evaluation size.
PAPER_PER_SIDE = 3_000

PROFILES: dict[str, Profile] = {
    "smoke": Profile(
        name="smoke", purpose="tests and CI: every notebook end to end in seconds",
        sizes={"fmnist": DatasetSizes(n_members=500, n_eval=100, n_adversary=100)},
        width=0.0625, epochs=2, lr=1e-3, seeds=2, baseline_seeds=3, shadow_models=4, bootstrap=50, dtc_samples=5,
        dtc_f9_samples=5, grids=SMOKE_GRIDS),
    "quick": Profile(
        name="quick", purpose="the default build and teaching: real Fashion-MNIST on a laptop CPU",
        sizes={"fmnist": DatasetSizes(n_members=4_000, n_eval=2_000, n_adversary=2_000)},
        width=QUICK_WIDTH, epochs=QUICK_EPOCHS, lr=QUICK_LR, seeds=3, baseline_seeds=8, shadow_models=8, dtc_samples=500,
        grids=QUICK_GRIDS),
    "paper": Profile(
        name="paper", purpose="the paper's exact setup on all three datasets (GPU, hours)",
        sizes={"fmnist": DatasetSizes(n_members=60_000, n_eval=PAPER_PER_SIDE, n_adversary=PAPER_PER_SIDE),
               "cifar10": DatasetSizes(n_members=50_000, n_eval=PAPER_PER_SIDE, n_adversary=PAPER_PER_SIDE),
               "cifar100": DatasetSizes(n_members=50_000, n_eval=PAPER_PER_SIDE, n_adversary=PAPER_PER_SIDE)},
        width=1.0, epochs=30, lr=2e-4, seeds=3, shadow_models=18, grids=PAPER_GRIDS),
}


def get_profile(name: str) -> Profile:
    """The profile called ``name``; a clear error lists the allowed names."""
    if name not in PROFILES:
        raise ValueError(f"profile: unknown profile {name!r}; allowed: {', '.join(PROFILES)}")
    return PROFILES[name]
