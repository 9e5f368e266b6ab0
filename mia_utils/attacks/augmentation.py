"""The augmentation-aware loss attack of Kaya & Dumitras (ICML 2021, "When does data augmentation
help with membership inference attacks?").

A model trained with a data augmentation has fitted its training images *as the augmentation
presents them*, so the adversary queries each sample under several fresh draws of that same
augmentation and thresholds a summary of the losses instead of the clean-image loss.

:func:`augmented_losses` draws ``n_augmentations`` seeded augmentations of every image, exactly as
the training recipe applies them (Gaussian noise of :func:`mia_utils.defenses.recipe.add_gaussian_noise`,
then random cropping of :func:`mia_utils.defenses.recipe.random_crop`, in the order the training loop
calls them), and returns the true-label cross-entropy of each query, (N, K).
:func:`augmentation_aware_attack` reduces the K losses of each sample to one number and thresholds
it on the adversary's own labelled samples, as the threshold attacks of
:mod:`mia_utils.attacks.blackbox` do.

What the authors' code does (``yigitcankaya/augmentation_mia``, commit 042f2a0):

* ``models.py`` ``get_clf_losses_w_aug_`` (lines 341-437): for each batch and each of
  ``num_repeat`` repeats, one fresh augmentation and one forward pass; the per-sample NLL loss of
  the model's log-softmax on the true label goes into a (samples, repeats) table. Noise
  (lines 393-395): ``clamp(x + randn * std, 0, 1)``, drawn per pixel. Cropping (lines 397-409):
  zero-pad by c, then ONE random offset (i, j) for the whole batch of this repeat, so every image
  of the batch is shifted alike. The repeats draw from torch's global generator (seeded once per
  script by ``aux_funcs.set_random_seeds``).
* ``config.json``: ``n_aware_repeat`` 20 repeats (the function's default is 25); the attacker
  knows 100 members and 100 non-members (``n_attacker_train``).
* ``mi_attacks.py`` ``apply_aware_attack`` (lines 111-182): with more than one repeat it tries
  every reduction of ``aux_funcs.get_reduction_params`` (line 173: median, min, max, std, mean,
  in that order) over the repeats; for each it picks a loss threshold on the attacker's samples
  (``yeom_w_get_best_threshold``, lines 210-225: the best of the 1001 thresholds
  mean + s x std of the attacker's member losses, s in [-5, 5]), and keeps the reduction whose
  threshold gives the highest advantage on those same samples (the first one on ties). For every
  reduction, std included, a value BELOW the threshold means member (``yeom_mi_attack``, line 205).
  Label-side mechanisms (distillation, label smoothing) are attacked with one query against the
  transformed targets instead.

Where this module departs:

* Cropping draws an independent offset per image (the recipe's own :func:`random_crop`, as the
  target was trained), not one offset per batch, and the draws come from a generator seeded by
  ``seed``, so the queries of an image do not depend on the batch it falls in (its losses only
  up to rounding, see :func:`augmented_losses`).
* The threshold is :func:`mia_utils.attacks.inputs.best_threshold` (the exact maximiser of
  balanced accuracy on the adversary's samples, as every threshold attack here), not the 1001-point
  grid; the selection of ``reduction="best"`` compares advantages at those thresholds.
* Only input augmentations (cropping, Gaussian noise) are re-applied; label-side mechanisms are
  not handled here.
* ``median`` is numpy's (the mean of the two middle values for even K) and ``std`` numpy's
  population standard deviation (ddof = 0), as in the authors' code.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from mia_utils.attacks.inputs import AttackInputError, AttackResult, attack_result, best_threshold, membership_flags
from mia_utils.defenses.recipe import add_gaussian_noise, random_crop

#: The authors' default number of augmented queries per sample (``config.json``: ``n_aware_repeat``).
DEFAULT_AUGMENTATIONS = 20


def _median(values: torch.Tensor) -> torch.Tensor:
    """numpy's median along dim 1 of (N, K): the middle value, or the mean of the two middle ones."""
    ordered = values.sort(dim=1).values
    k = ordered.shape[1]
    middle = ordered[:, k // 2]
    return middle if k % 2 else (ordered[:, k // 2 - 1] + middle) / 2


#: The reductions of K losses (N, K) -> (N,), in the order the authors try them
#: (``aux_funcs.get_reduction_params``). For each one a LOWER value means member.
AUGMENTATION_REDUCTIONS = {
    "median": _median,
    "min": lambda losses: losses.min(dim=1).values,
    "max": lambda losses: losses.max(dim=1).values,
    "std": lambda losses: losses.std(dim=1, correction=0),
    "mean": lambda losses: losses.mean(dim=1),
}


def as_unit_float(images: torch.Tensor, name: str = "images") -> torch.Tensor:
    """Images (N, C, H, W), uint8 in 0..255 or float in [0, 1], as floats in [0, 1] on the CPU:
    uint8 becomes float32 (x / 255), float images keep their dtype (a float64 model then sees
    float64 pixels). Raises ValueError naming ``name`` for any other shape, dtype or range."""
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        shape = tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name}: expected a tensor of shape (N, C, H, W), got {shape}")
    if images.dtype == torch.uint8:
        return images.cpu().to(torch.float32).div_(255.0)
    if not images.is_floating_point():
        raise ValueError(f"{name}: expected uint8 or float in [0, 1], got {images.dtype}")
    if images.numel() and not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
        raise ValueError(f"{name}: float images must be finite and lie in [0, 1]")
    return images.detach().cpu()


def check_labels(labels: torch.Tensor, n: int, name: str = "labels") -> torch.Tensor:
    """``labels`` as int64 (n,) on the CPU; ValueError naming ``name`` if the shape or dtype is wrong."""
    if (not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point()
            or labels.is_complex()):
        shape = tuple(labels.shape) if isinstance(labels, torch.Tensor) else type(labels).__name__
        raise ValueError(f"{name}: expected integer class indices of shape ({n},), got {shape}")
    if n and labels.min() < 0:
        raise ValueError(f"{name}: class indices must be >= 0, got {int(labels.min())}")
    return labels.detach().cpu().to(torch.int64)


def check_positive_int(value, name: str, minimum: int = 1) -> int:
    """``value`` as an int if it is an integer >= ``minimum``; ValueError naming ``name`` otherwise."""
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {value!r}")
    return int(value)


def model_logits(model: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
    """The model's logits (N, classes) as float64 on the CPU, in eval mode without gradients, for
    float images (N, C, H, W) in [0, 1]; chunks of ``batch_size`` go to the model's device and
    dtype. One forward pass per image. The model's training flag is restored afterwards."""
    parameter = next(model.parameters())
    was_training = model.training
    model.eval()
    chunks = []
    try:
        with torch.no_grad():
            for start in range(0, images.shape[0], batch_size):
                batch = images[start: start + batch_size].to(device=parameter.device, dtype=parameter.dtype)
                chunks.append(model(batch).double().cpu())
    finally:
        model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0, 0, dtype=torch.float64)


def augment(images: torch.Tensor, crop: int, noise_std: float, generator: torch.Generator,
            clamp: bool = True) -> torch.Tensor:
    """One draw of the training augmentation for every image: float images (N, C, H, W) in
    [0, 1] -> (N, C, H, W). Gaussian noise of standard deviation ``noise_std`` (in pixel-range
    units; clamped back to [0, 1] unless ``clamp`` is false) when ``noise_std`` > 0, then a random
    crop of ``crop`` pixels (zero padding, an independent offset per image) when ``crop`` > 0: the
    training loop's order (noise is stage 30, cropping stage 31) and the recipe's own functions,
    so the same ``generator`` state gives the same images as training would. CPU generator.

    Args:
        images: float tensor (N, C, H, W), pixels in [0, 1].
        crop: random-crop padding in pixels (int); 0 = no cropping.
        noise_std: Gaussian noise standard deviation in pixel-range units (float); 0 = no noise.
        generator: CPU ``torch.Generator`` the noise and crop offsets are drawn from (advanced in place).
        clamp: whether noisy pixels are clamped back to [0, 1] (bool).
    """
    out = images
    if noise_std > 0:
        out = add_gaussian_noise(out, noise_std, generator, clamp)
    if crop > 0:
        out = random_crop(out, crop, generator)
    return out


def _check_augmentation(crop, noise_std) -> tuple[int, float]:
    """``crop`` (pixels, integer >= 0) and ``noise_std`` (pixel-range units, >= 0) validated, not
    both zero."""
    crop = check_positive_int(crop, "crop", minimum=0)
    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not (
            math.isfinite(noise_std) and noise_std >= 0):
        raise ValueError(f"noise_std: must be a finite number >= 0, got {noise_std!r}")
    if crop == 0 and noise_std == 0:
        raise ValueError("crop, noise_std: both are 0, so every query would be the clean image; "
                         "give the recipe's crop (pixels, >= 1) and/or noise standard deviation (> 0)")
    return crop, float(noise_std)


def augmented_losses(model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     n_augmentations: int = DEFAULT_AUGMENTATIONS, crop: int = 0, noise_std: float = 0.0,
                     clamp: bool = True, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
    """True-label cross-entropy (nats) of every sample under ``n_augmentations`` seeded draws of
    the training augmentation: float64 (N, K), K = ``n_augmentations``.

    ``images`` (N, C, H, W) uint8 or float in [0, 1]; ``labels`` (N,) the true labels; ``crop``:
    the recipe's random-crop padding in pixels (0 = none); ``noise_std``: the recipe's Gaussian
    noise standard deviation in pixel-range units (0 = none), clamped to [0, 1] like training
    unless ``clamp`` is false. At least one of the two must be on. Draw k (column k) is
    :func:`augment` applied to ALL N images with one CPU generator seeded with ``seed`` and
    consumed in order k = 0, 1, ...; so column k depends on N and on the order of the images, but
    not on ``batch_size``, which only chunks the forward passes (on the model's device and dtype):
    another batch size may run other kernels, so the losses are equal up to rounding, not bit for bit.
    Cost: K forward passes per sample (:func:`augmentation_aware_cost`). Eval mode, no gradients.

    Args:
        model: the target ``nn.Module`` (classifier returning logits); run in eval mode, its
            training flag restored afterwards.
        images: tensor (N, C, H, W), uint8 in 0..255 or float in [0, 1].
        labels: int tensor (N,), the true class indices.
        n_augmentations: K, the number of augmented queries per sample (int >= 1).
        crop: the recipe's random-crop padding in pixels (int >= 0; 0 = none).
        noise_std: the recipe's Gaussian noise standard deviation in pixel-range units (float >= 0;
            0 = none).
        clamp: whether noisy pixels are clamped to [0, 1], as in training (bool).
        seed: seed of the CPU generator the augmentations are drawn from (int).
        batch_size: images per forward pass (int >= 1); changes the losses by rounding only.
    """
    x = as_unit_float(images)
    labels = check_labels(labels, x.shape[0])
    n_augmentations = check_positive_int(n_augmentations, "n_augmentations")
    crop, noise_std = _check_augmentation(crop, noise_std)
    batch_size = check_positive_int(batch_size, "batch_size")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise ValueError(f"seed: must be an integer, got {seed!r}")
    if not isinstance(clamp, bool):
        raise ValueError(f"clamp: must be True or False, got {clamp!r}")
    generator = torch.Generator().manual_seed(seed)
    losses = torch.empty(x.shape[0], n_augmentations, dtype=torch.float64)
    for k in range(n_augmentations):
        logits = model_logits(model, augment(x, crop, noise_std, generator, clamp), batch_size)
        if x.shape[0] and int(labels.max()) >= logits.shape[1]:
            raise ValueError(f"labels: must lie in 0..{logits.shape[1] - 1} (the model's classes), "
                             f"got {int(labels.max())}")
        losses[:, k] = F.cross_entropy(logits, labels, reduction="none")
    return losses


def _check_losses(name: str, losses: torch.Tensor, is_member: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Losses (N, K) float64 (finite) and membership bool (N,) with both classes, validated;
    errors name ``<name>_losses`` / ``<name>_is_member``."""
    if not isinstance(losses, torch.Tensor) or losses.ndim != 2 or losses.shape[0] == 0 or losses.shape[1] == 0:
        shape = tuple(losses.shape) if isinstance(losses, torch.Tensor) else type(losses).__name__
        raise AttackInputError(f"{name}_losses: expected shape (N >= 1, K >= 1), got {shape}")
    if not torch.isfinite(losses).all():
        raise AttackInputError(f"{name}_losses: contain NaN or infinite values")
    return losses.double(), membership_flags(name, is_member, losses.shape[0])


def _balanced_gain(scores: torch.Tensor, is_member: torch.Tensor, threshold: float) -> float:
    """TPR - FPR of ``scores >= threshold``: the advantage on a balanced set."""
    predicted = scores >= threshold
    return float(predicted[is_member].double().mean() - predicted[~is_member].double().mean())


def augmentation_aware_attack(eval_losses: torch.Tensor, eval_is_member: torch.Tensor, adv_losses: torch.Tensor,
                              adv_is_member: torch.Tensor, reduction: str = "mean", n_bootstrap: int = 200,
                              seed: int = 0) -> AttackResult:
    """Kaya & Dumitras's augmentation-aware attack on per-query losses (:func:`augmented_losses`).

    ``eval_losses`` (N, K) and ``adv_losses`` (M, K) float, nats, with bool membership (N,) and
    (M,): the evaluation set and the adversary's own labelled samples, queried the same way.
    ``reduction``: one of :data:`AUGMENTATION_REDUCTIONS` (``"mean"``, ``"median"``, ``"min"``,
    ``"max"``, ``"std"``), or ``"best"``: the authors' choice, the reduction whose threshold
    gives the highest advantage on the adversary's samples (the first in the authors' order
    median, min, max, std, mean on ties). ``"std"`` needs K >= 2; with K = 1 every other
    reduction is the single loss. The score is MINUS the reduced loss (higher = member, for every
    reduction, as the authors threshold them all from below); the threshold maximising balanced
    accuracy on the adversary's samples (:func:`mia_utils.attacks.inputs.best_threshold`) is
    applied to the evaluation set. The result is named ``augmentation_aware_<reduction>``, or
    ``augmentation_aware_best_<chosen>`` for ``"best"``.

    Args:
        eval_losses: float tensor (N, K), per-query losses of the evaluation set in nats.
        eval_is_member: bool tensor (N,), the evaluation set's membership (both classes present).
        adv_losses: float tensor (M, K), the adversary's own samples' per-query losses in nats
            (same K as ``eval_losses``).
        adv_is_member: bool tensor (M,), the adversary's samples' membership (both classes present).
        reduction: name of the reduction over the K losses (str), see above.
        n_bootstrap: stratified bootstrap resamples for the metrics' uncertainty (int >= 0;
            0 = std 0), see :func:`mia_utils.attacks.metrics.summarize`.
        seed: seed of the bootstrap resampling (int).
    """
    eval_losses, eval_is_member = _check_losses("eval", eval_losses, eval_is_member)
    adv_losses, adv_is_member = _check_losses("adv", adv_losses, adv_is_member)
    k = eval_losses.shape[1]
    if adv_losses.shape[1] != k:
        raise AttackInputError(f"adv_losses: must have as many queries per sample as eval_losses ({k}), "
                               f"got {adv_losses.shape[1]}")
    allowed = list(AUGMENTATION_REDUCTIONS) + ["best"]
    if reduction not in allowed:
        raise ValueError(f"reduction: got {reduction!r}; allowed: {', '.join(allowed)}")
    if reduction == "std" and k < 2:
        raise ValueError(f"reduction: 'std' needs at least 2 queries per sample, got K = {k}")
    if reduction == "best":
        candidates = [name for name in AUGMENTATION_REDUCTIONS if k >= 2 or name != "std"]
        best_gain, chosen = -math.inf, candidates[0]
        for name in candidates:
            scores = -AUGMENTATION_REDUCTIONS[name](adv_losses)
            gain = _balanced_gain(scores, adv_is_member, best_threshold(scores, adv_is_member))
            if gain > best_gain:
                best_gain, chosen = gain, name
        label = f"augmentation_aware_best_{chosen}"
    else:
        chosen, label = reduction, f"augmentation_aware_{reduction}"
    reduce = AUGMENTATION_REDUCTIONS[chosen]
    scores, adv_scores = -reduce(eval_losses), -reduce(adv_losses)
    threshold = best_threshold(adv_scores, adv_is_member)
    return attack_result(label, scores, scores >= threshold, threshold, eval_is_member, n_bootstrap, seed)


def augmentation_aware_cost(n_augmentations: int = DEFAULT_AUGMENTATIONS) -> dict:
    """What the attack costs per evaluated sample: ``target_queries`` forward passes of the target
    (one per augmented query), no input gradient, no reference model. The adversary's own samples
    (for the threshold) cost the same per sample."""
    n_augmentations = check_positive_int(n_augmentations, "n_augmentations")
    return {"target_queries": n_augmentations, "target_gradients": 0, "reference_models": 0,
            "reference_queries": 0, "label_only": False}
