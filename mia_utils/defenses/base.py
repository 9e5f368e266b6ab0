"""The mechanism interface: what a regularization mechanism may change in the training recipe.

A configuration lists mechanisms as ``(name, value)`` pairs (``RunConfig.mechanisms``); any set
of them combines. Each :class:`Mechanism` may change one or more of:

* the model (``model_options``: dropout p, spatial dropout q),
* the optimiser (``optimizer_options``: weight decay),
* each training batch (``transform``: images and soft targets, on whole batches),
* the loss (``extra_loss``), or the model and optimiser wholesale (``wrap``, for DP-SGD),
* how each epoch is cut into batches (``batches``, Poisson sampling for DP-SGD),
* what happens between epochs (``after_epoch``: a pass of its own with the run's optimiser, as in
  Li et al.'s code for MMD + mix-up),

and prepares once per run in ``prepare`` (distillation computes its teacher's soft labels there,
once for the whole training set). The training loop calls the hooks in the order of
``Mechanism.stage``: label transforms, then input perturbations, then mixing. Targets are
probability vectors (B, classes); images are floats in [0, 1], shape (B, C, H, W).

Early stopping is not a training-time piece: the epoch E is read from the per-epoch snapshots
of one run (:func:`mia_utils.experiment.early_stopping_sweep`), so a sweep over E costs one run.
The attacker never sees any of this: attacks use the original images and labels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

import torch


@dataclass
class TrainingContext:
    """What a mechanism may need while preparing: the run's configuration, its training images
    (float (N, C, H, W) in [0, 1]) and labels (N,), the device, the number of classes, and
    ``teacher_logits(config)``, which returns a stored run's logits (N, classes) on these images."""

    config: object
    images: torch.Tensor
    labels: torch.Tensor
    num_classes: int
    device: torch.device
    teacher_logits: Callable | None = None
    validation: tuple[torch.Tensor, torch.Tensor] | None = None


class Mechanism:
    """Base class: every hook is a no-op. ``value`` is the mechanism's one hyperparameter."""

    name: ClassVar[str] = ""
    symbol: ClassVar[str] = ""
    low: ClassVar[float] = 0.0
    high: ClassVar[float] = float("inf")
    integer: ClassVar[bool] = False
    stage: ClassVar[int] = 50
    description: ClassVar[str] = ""
    #: Mechanisms this one cannot be combined with, each with the reason (refused when a
    #: ``RunConfig`` is built; the relation is symmetric, so one side declares it).
    excludes: ClassVar[dict[str, str]] = {}

    def __init__(self, value: float):
        self.value = value

    def model_options(self) -> dict:
        return {}

    def optimizer_options(self) -> dict:
        return {}

    def prepare(self, context: TrainingContext) -> None:
        pass

    def transform(self, images: torch.Tensor, targets: torch.Tensor, indices: torch.Tensor,
                  generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        return images, targets

    def extra_loss(self, model, logits: torch.Tensor, images: torch.Tensor, targets: torch.Tensor):
        return None

    def wrap(self, model, optimizer, context: TrainingContext):
        return model, optimizer

    def batches(self, n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor] | None:
        """One epoch's batches as index tensors into the training set, or None for the default
        (a shuffled partition into batches of ``batch_size``). DP-SGD uses Poisson sampling."""
        return None

    def after_epoch(self, model, optimizer, epoch: int, epochs: int) -> None:
        """Called after each of the ``epochs`` training epochs (``epoch`` counts from 1), before
        the epoch's learning curves and snapshot are recorded; may step ``optimizer`` itself."""

    def report(self) -> dict:
        """Facts to store with the run (e.g. DP's epsilon)."""
        return {}
