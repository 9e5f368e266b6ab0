"""Regularization mechanisms as small composable pieces of the training recipe.

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
import torch.nn.functional as F


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


REGISTRY: dict[str, type[Mechanism]] = {}


def register(cls: type[Mechanism]) -> type[Mechanism]:
    REGISTRY[cls.name] = cls
    return cls


def check_mechanisms(pairs) -> list[str]:
    """Problems with a list of (name, value) pairs, one message each (empty when valid)."""
    problems, seen = [], set()
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str)):
            problems.append(f"mechanisms: each entry must be a (name, value) pair, got {pair!r}")
            continue
        name, value = pair
        if name not in REGISTRY:
            problems.append(f"mechanisms: unknown mechanism {name!r}; allowed: {', '.join(sorted(REGISTRY))}")
            continue
        if name in seen:
            problems.append(f"mechanisms: {name!r} is listed twice")
        seen.add(name)
        cls = REGISTRY[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not cls.low <= value <= cls.high:
            problems.append(f"mechanisms: {name} {cls.symbol} = {value!r} is out of range; allowed "
                            f"{cls.low:g} <= {cls.symbol} <= {cls.high:g}")
        elif cls.integer and value != int(value):
            problems.append(f"mechanisms: {name} {cls.symbol} must be a whole number, got {value!r}")
    return problems


def build(pairs) -> list[Mechanism]:
    """Mechanism objects for (name, value) pairs, in the order the training loop applies them."""
    mechanisms = [REGISTRY[name](value) for name, value in pairs]
    return sorted(mechanisms, key=lambda m: (m.stage, m.name))


# --- (i) training label transformations --------------------------------------------------------

def soft_labels(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(teacher logits / T): (N, classes) probabilities, flatter as T grows."""
    return (teacher_logits.double() / temperature).softmax(1).float()


@register
class Distillation(Mechanism):
    """Distillation with temperature T: the student learns softmax(teacher logits / T). The
    teacher is the baseline run of the same configuration (no mechanisms), read from the store;
    its soft labels are computed once for the whole training set."""

    name, symbol, low, high, stage = "distillation", "T", 1.0, 100.0, 10
    description = "the student learns the teacher's softened outputs"

    def prepare(self, context):
        if context.teacher_logits is None:
            raise RuntimeError("distillation needs a teacher: pass teacher_logits in the training context")
        self.targets = soft_labels(context.teacher_logits(context.config.teacher()), self.value).to(context.device)

    def transform(self, images, targets, indices, generator):
        return images, self.targets[indices]


def smooth(targets: torch.Tensor, alpha: float) -> torch.Tensor:
    """Label smoothing: (1 - alpha) * targets + alpha / classes. Rows still sum to 1."""
    return (1.0 - alpha) * targets + alpha / targets.shape[1]


@register
class LabelSmoothing(Mechanism):
    """Label smoothing with alpha: targets become (1 - alpha) one-hot + alpha / classes."""

    name, symbol, low, high, stage = "label_smoothing", "alpha", 0.01, 0.99, 20
    description = "one-hot targets mixed with the uniform distribution"

    def transform(self, images, targets, indices, generator):
        return images, smooth(targets, self.value)


# --- (ii) training data perturbations ----------------------------------------------------------

def add_gaussian_noise(images: torch.Tensor, sigma: float, generator: torch.Generator,
                       clamp: bool = True) -> torch.Tensor:
    """images + N(0, sigma^2) noise (images in [0, 1]), clamped back to [0, 1] unless ``clamp`` is
    false."""
    noise = torch.randn(images.shape, generator=generator, device=images.device) * sigma
    noisy = images + noise
    return noisy.clamp_(0.0, 1.0) if clamp else noisy


@register
class GaussianNoise(Mechanism):
    """Gaussian noise with standard deviation sigma on training inputs in [0, 1], clamped.

    The paper does not say whether noisy images are clamped back to [0, 1]; the authors' public
    code for their follow-up study does clamp (``yigitcankaya/augmentation_mia``: ``models.py``
    and ``aux_funcs.py``), so this does. On Fashion-MNIST's black background that cuts off the
    negative half of the noise on most pixels. :class:`GaussianNoiseUnclamped` is the other
    reading; ``benchmarks/noise_clamp.py`` measures both."""

    name, symbol, low, high, stage = "gaussian_noise", "sigma", 0.01, 0.25, 30
    description = "noise added to every training image"
    clamp: ClassVar[bool] = True

    def transform(self, images, targets, indices, generator):
        return add_gaussian_noise(images, self.value, generator, self.clamp), targets


@register
class GaussianNoiseUnclamped(GaussianNoise):
    """Gaussian noise as :class:`GaussianNoise`, without clamping: inputs may leave [0, 1]."""

    name = "gaussian_noise_unclamped"
    description = "noise added to every training image, not clamped to [0, 1]"
    clamp = False


def random_crop(images: torch.Tensor, padding: int, generator: torch.Generator) -> torch.Tensor:
    """Zero-pad every image by ``padding`` pixels on each side, then crop back to the original
    size at an independent random offset per image; whole batch at once, no Python per image.
    Content moves by at most ``padding`` pixels in each direction; uncovered pixels are 0."""
    if padding == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (padding, padding, padding, padding))
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=images.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator, device=images.device)
    rows = (dy[:, None] + torch.arange(h, device=images.device)[None, :])  # (n, h)
    cols = (dx[:, None] + torch.arange(w, device=images.device)[None, :])  # (n, w)
    batch = torch.arange(n, device=images.device)[:, None, None]
    # gather (n, h, w) positions for every channel
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]
    return out.permute(0, 3, 1, 2).contiguous()


@register
class RandomCrop(Mechanism):
    """Random cropping c: zero-pad by c pixels, then crop back at a random offset."""

    name, symbol, low, high, integer, stage = "random_crop", "c", 1, 24, True, 31
    description = "images shifted by up to c pixels, uncovered border filled with zeros"

    def transform(self, images, targets, indices, generator):
        return random_crop(images, int(self.value), generator), targets


# --- (iii) architectural modifications ---------------------------------------------------------

@register
class Dropout(Mechanism):
    """Dropout with probability p after every convolutional layer (training mode only)."""

    name, symbol, low, high, stage = "dropout", "p", 0.05, 0.95, 40
    description = "units zeroed at random after each convolution"

    def model_options(self):
        return {"dropout": self.value}


@register
class SpatialDropout(Mechanism):
    """Spatial dropout q: whole channels dropped after every convolutional layer."""

    name, symbol, low, high, stage = "spatial_dropout", "q", 0.05, 0.95, 41
    description = "whole feature maps zeroed at random after each convolution"

    def model_options(self):
        return {"spatial_dropout": self.value}


# --- (iv) optimization ---------------------------------------------------------------------------

@register
class WeightDecay(Mechanism):
    """L2 weight decay lambda (replaces the recipe's default 1e-6)."""

    name, symbol, low, high, stage = "weight_decay", "lambda", 1e-6, 0.5, 60
    description = "L2 penalty on the weights"

    def optimizer_options(self):
        return {"weight_decay": self.value}


MECHANISM_ORDER = ("distillation", "label_smoothing", "gaussian_noise", "random_crop", "dropout",
                   "spatial_dropout", "weight_decay", "early_stopping")

# Defenses that live in their own modules register themselves on import.
from mia_utils import dp, mmd  # noqa: E402,F401  (registers dp_sgd, mixup, mmd)
