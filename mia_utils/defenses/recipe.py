"""The paper's seven training-time mechanisms (Kaya et al. 2020, Table 1), each a
:class:`~mia_utils.defenses.base.Mechanism`: distillation, label smoothing, Gaussian input noise
(clamped, and the unclamped reading), random cropping, dropout, spatial dropout and weight decay.
Early stopping, the eighth, is read from per-epoch snapshots of one run
(:func:`mia_utils.experiment.early_stopping_sweep`), not trained.
"""

from __future__ import annotations

from typing import ClassVar

import torch
import torch.nn.functional as F

from mia_utils.defenses.base import Mechanism


# --- (i) training label transformations --------------------------------------------------------

def soft_labels(teacher_logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """softmax(teacher logits / T): (N, classes) probabilities, flatter as T grows."""
    return (teacher_logits.double() / temperature).softmax(1).float()


class Distillation(Mechanism):
    """Distillation with temperature T: the student learns softmax(teacher logits / T). The
    teacher is the baseline run of the same configuration (no mechanisms), read from the store;
    its soft labels are computed once for the whole training set.

    The paper explores 1 <= T <= 100 (its Table 1); T up to 1000 is allowed, because a narrow
    network reaches the paper's RAD<5% accuracy cost only near T = 100 and Section 5 then needs
    distillation turned up beyond it."""

    name, symbol, low, high, stage = "distillation", "T", 1.0, 1000.0, 10
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


class RandomCrop(Mechanism):
    """Random cropping c: zero-pad by c pixels, then crop back at a random offset."""

    name, symbol, low, high, integer, stage = "random_crop", "c", 1, 24, True, 31
    description = "images shifted by up to c pixels, uncovered border filled with zeros"

    def transform(self, images, targets, indices, generator):
        return random_crop(images, int(self.value), generator), targets


# --- (iii) architectural modifications ---------------------------------------------------------

class Dropout(Mechanism):
    """Dropout with probability p after every convolutional layer (training mode only)."""

    name, symbol, low, high, stage = "dropout", "p", 0.05, 0.95, 40
    description = "units zeroed at random after each convolution"

    def model_options(self):
        return {"dropout": self.value}


class SpatialDropout(Mechanism):
    """Spatial dropout q: whole channels dropped after every convolutional layer."""

    name, symbol, low, high, stage = "spatial_dropout", "q", 0.05, 0.95, 41
    description = "whole feature maps zeroed at random after each convolution"

    def model_options(self):
        return {"spatial_dropout": self.value}


# --- (iv) optimization ---------------------------------------------------------------------------

class WeightDecay(Mechanism):
    """L2 weight decay lambda (replaces the recipe's default 1e-6)."""

    name, symbol, low, high, stage = "weight_decay", "lambda", 1e-6, 0.5, 60
    description = "L2 penalty on the weights"

    def optimizer_options(self):
        return {"weight_decay": self.value}
