"""Label-only attacks of Choquette-Choo, Tramer, Carlini & Papernot (ICML 2021, "Label-Only
Membership Inference Attacks"): the adversary sees only the predicted label.

* The gap attack (:func:`label_only_gap`): member when the predicted label is the true one.
* The augmentation attack (:func:`translation_correctness`, :func:`label_only_translation_model`):
  whether each of 4 d + 1 translated copies of a sample is labelled correctly, a 0/1 vector that an
  attack model turns into a membership guess; training images stay correct under more of the shifts,
  and the unshifted copy carries the gap attack's signal. :func:`label_only_translation` is a named
  simplification beside it: it thresholds the number of correct copies.
* The boundary-distance attack (:func:`boundary_distances`, :func:`label_only_boundary`): how far
  a sample lies from the decision boundary, the smallest perturbation that changes the predicted
  label; training images tend to lie farther from it. Misclassified samples get distance 0. The
  search costs up to a few hundred passes per sample, so it is meant for a subsample: pass, say,
  the first k members and k non-members of each set (as ``max_samples`` does for DtC in
  :func:`mia_utils.attacks.dtc.dtc_on_run`); the paper's own runs attack a subsample too
  (``pipeline.py``'s ``max_samples``).

Each learns from the adversary's own labelled samples: the translation attack's model is trained on
them, and the count and boundary attacks' thresholds are fitted on them as the reference code fits
its thresholds (:func:`reference_threshold`); the gap attack's rule is fixed.

What the reference code does:

* ``cchoquette/membership-inference`` (commit ce12e12): ``utils.py`` ``create_translates``
  (lines 25-56) builds the shifts of the translation attack with parameter d: no shift plus the
  4d shifts (dy, dx) with |dy| + |dx| = d, walked around that diamond from (d, 0); 4d + 1 queries.
  ``apply_augment`` (lines 59-74) shifts with ``scipy.ndimage.shift(..., mode="nearest")``, so
  uncovered pixels repeat the nearest edge pixel. ``attack_features.py`` ``augmentation_attack``
  (lines 20-43) records, for each shift, whether the predicted label is correct, (samples, 4d + 1)
  0/1. ``pipeline.py`` then trains a small attack network on these vectors against a shadow
  ("source") model (``attacks.py`` ``train_best_attack_model``, line 206); no flips are queried.
* ``attack_features_tf1.py`` ``dists`` (lines 11-75): the boundary distance is the L2 norm of
  x_adv - x for an untargeted Carlini-Wagner L2 (white-box) or HopSkipJump (label-only)
  adversarial example; a misclassified sample keeps x_adv = x, distance 0. ``pipeline.py``
  thresholds it (``attacks.py`` ``get_threshold``, line 41: best accuracy on the source model's samples).
* ART (``Trusted-AI/adversarial-robustness-toolbox`` 1.20.1):
  ``label_only_gap_attack.py`` is :class:`MembershipInferenceBlackBoxRuleBased`
  (``black_box_rule_based.py`` ``infer``, lines 59-104: member iff argmax of the prediction equals the true
  label); ``label_only_boundary_distance.py`` ``LabelOnlyDecisionBoundary.infer`` (lines 70-137)
  runs HopSkipJump (untargeted, L2 by default), takes the L2 norm of x_adv - x, sets it to 0 for
  misclassified samples, and flags distances above a threshold tau calibrated on known members
  and non-members (``calibrate_distance_threshold``, lines 139-209: the best of 99 equally spaced
  values).

Where this module departs:

* The translation attack's model (:func:`label_only_translation_model`) is the reference's
  (``AttackModel`` of type ``"d"``, one per true class, Adam at four step sizes, the most accurate
  on its training samples kept) trained on the adversary's labelled samples of the target itself,
  where the reference trains it on a shadow model's; every attack here learns from those samples.
  Uncovered pixels are filled with zeros by default, as this project's random cropping trains
  (:func:`mia_utils.defenses.recipe.random_crop`), or with the nearest edge pixel as the reference
  (``fill="nearest"``). ``flip=True`` also queries the horizontal mirror of every shifted copy (the
  reference does not; this project does not train with flips, so it is off by default). The
  count attack (:func:`label_only_translation`) is this project's simplification, kept beside it.
* The boundary distance is found with the model's input gradients (white-box, as the paper's
  Carlini-Wagner upper bound, not HopSkipJump's label-only search): a batched walk that steps down
  the margin z_y - max_{j != y} z_j (normalised gradient steps in L2, sign steps in L-infinity,
  kept in [0, 1]) until the predicted label changes, then a bisection on the segment from x to
  that first misclassified point, using predicted labels only. Why: one forward and one backward
  pass per step on whole batches (the machinery of :mod:`mia_utils.attacks.dtc`), deterministic,
  and a few hundred passes per sample where HopSkipJump needs thousands of queries. Every
  distance it reports belongs to a point verified to be misclassified, so it is an upper bound on
  the true smallest perturbation, as Carlini-Wagner's and HopSkipJump's are. A sample whose label
  does not change within ``max_steps`` steps is *capped*: it gets the search budget,
  ``max_steps x step``, which is at least every distance the search can report, so it ranks as
  the most robust.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn

from mia_utils.attacks.augmentation import as_unit_float, check_labels, check_positive_int, model_logits
from mia_utils.attacks.dtc import input_gradients_only, pgd_step
from mia_utils.attacks.inputs import (AttackInputError, AttackInputs, AttackResult, attack_result, best_threshold,
                                     membership_flags)

BOUNDARY_NORMS = ("l2", "linf")

#: Default walk step per norm, in the norm's units on [0, 1] pixels.
BOUNDARY_STEPS = {"l2": 0.05, "linf": 0.002}


# --- the gap attack -----------------------------------------------------------------------------

def correct_labels(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """bool (N,): the predicted label (argmax of the logits (N, classes), the first index on ties,
    as numpy's and torch's argmax) equals the true label."""
    return logits.argmax(dim=1) == labels


def label_only_gap(inputs: AttackInputs, n_bootstrap: int = 200, seed: int = 0) -> AttackResult:
    """The gap attack: member when the target labels the sample correctly. Score 1.0 or 0.0
    (N,); hard guess score >= 0.5, a fixed rule (no threshold is learnt). Reads only the
    predicted labels (argmax of ``inputs.logits``). Its advantage is the train-test accuracy gap
    on a balanced set. Named ``label_only_gap``; cost :func:`label_only_cost`."""
    scores = correct_labels(inputs.logits, inputs.labels).double()
    return attack_result("label_only_gap", scores, scores >= 0.5, 0.5, inputs.is_member, n_bootstrap, seed)


# --- the translation (augmentation) attack --------------------------------------------------------

def translation_offsets(max_shift: int) -> list[tuple[int, int]]:
    """The reference's shifts (dy, dx) for parameter d = ``max_shift``: (0, 0) first, then the 4d
    shifts with |dy| + |dx| = d in the order the reference walks them (from (d, 0) towards
    (0, -d), (-d, 0), (0, d) and back); d = 0 gives [(0, 0)]. A shift (dy, dx) moves the content
    down by dy and right by dx pixels."""
    max_shift = check_positive_int(max_shift, "max_shift", minimum=0)
    if max_shift == 0:
        return [(0, 0)]
    offsets, dy, dx, step_y, step_x = [], max_shift, 0, -1, -1
    for _ in range(4 * max_shift):
        offsets.append((dy, dx))
        dy, dx = dy + step_y, dx + step_x
        if abs(dy) == max_shift:
            step_y = -step_y
        if abs(dx) == max_shift:
            step_x = -step_x
    return [(0, 0)] + offsets


def shift_images(images: torch.Tensor, dy: int, dx: int, fill: str = "zeros") -> torch.Tensor:
    """Images (N, C, H, W) with their content moved down by ``dy`` and right by ``dx`` pixels
    (negative: up / left): out[..., i, j] = in[..., i - dy, j - dx]. Pixels whose source lies
    outside the image are 0 (``fill="zeros"``) or the nearest edge pixel (``"nearest"``, as
    ``scipy.ndimage.shift(mode="nearest")`` does for whole-pixel shifts)."""
    if fill not in ("zeros", "nearest"):
        raise ValueError(f"fill: got {fill!r}; allowed: zeros, nearest")
    h, w = images.shape[-2:]
    rows = torch.arange(h) - dy
    cols = torch.arange(w) - dx
    out = images[..., rows.clamp(0, h - 1)[:, None], cols.clamp(0, w - 1)[None, :]]
    if fill == "zeros":
        outside = ((rows < 0) | (rows >= h))[:, None] | ((cols < 0) | (cols >= w))[None, :]
        out = out.masked_fill(outside, 0)
    return out


def translated_queries(images: torch.Tensor, max_shift: int = 1, flip: bool = False,
                       fill: str = "zeros") -> torch.Tensor:
    """The translation attack's queries: images (N, C, H, W) -> (N, A, C, H, W), one copy per
    shift of :func:`translation_offsets` (A = 4 d + 1), followed, when ``flip``, by the
    horizontal mirror of each of them (A = 2 (4 d + 1)). Same dtype as ``images``."""
    if not isinstance(flip, bool):
        raise ValueError(f"flip: must be True or False, got {flip!r}")
    if not isinstance(images, torch.Tensor) or images.ndim != 4:
        raise ValueError(f"images: expected shape (N, C, H, W), got "
                         f"{tuple(images.shape) if isinstance(images, torch.Tensor) else type(images).__name__}")
    copies = [shift_images(images, dy, dx, fill) for dy, dx in translation_offsets(max_shift)]
    if flip:
        copies += [copy.flip(-1) for copy in copies]
    return torch.stack(copies, dim=1)


def translation_correctness(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, max_shift: int = 1,
                            flip: bool = False, fill: str = "zeros", batch_size: int = 1024) -> torch.Tensor:
    """Whether the model labels each translated copy correctly: bool (N, A), columns in the order of
    :func:`translated_queries`. A forward passes per sample (:func:`label_only_cost`), eval mode,
    no gradients.

    Args:
        model: the target ``nn.Module`` (logits out); its training flag is restored afterwards.
        images: tensor (N, C, H, W), uint8 in 0..255 or float in [0, 1].
        labels: int tensor (N,), the true class indices.
        max_shift: the shift parameter d in pixels (int >= 0); A = 4 d + 1 copies
            (:func:`translation_offsets`).
        flip: also query the horizontal mirror of every shifted copy (bool; doubles A).
        fill: how uncovered pixels are filled, ``"zeros"`` or ``"nearest"`` (:func:`shift_images`).
        batch_size: queries per forward pass (int >= 1); another one may round the logits
            otherwise (other kernels), which changes the result only where two logits tie to
            within rounding.
    """
    x = as_unit_float(images)
    labels = check_labels(labels, x.shape[0])
    batch_size = check_positive_int(batch_size, "batch_size")
    queries = translated_queries(x, max_shift, flip, fill)
    n, a = queries.shape[:2]
    logits = model_logits(model, queries.reshape(n * a, *queries.shape[2:]), batch_size)
    if n and int(labels.max()) >= logits.shape[1]:
        raise ValueError(f"labels: must lie in 0..{logits.shape[1] - 1} (the model's classes), got {int(labels.max())}")
    return correct_labels(logits, labels.repeat_interleave(a)).reshape(n, a)


def _check_scores(name: str, scores: torch.Tensor, is_member, what: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores (N,) float64 (finite) and membership bool (N,) with both classes, validated; errors
    name ``name`` (e.g. ``eval_distances``) and ``<eval|adv>_is_member``."""
    if not isinstance(scores, torch.Tensor) or scores.ndim != 1 or scores.shape[0] == 0:
        raise AttackInputError(f"{name}: expected {what} of shape (N >= 1,), got "
                               f"{tuple(scores.shape) if isinstance(scores, torch.Tensor) else type(scores).__name__}")
    if not torch.isfinite(scores.double()).all():
        raise AttackInputError(f"{name}: contain NaN or infinite values")
    return scores.double(), membership_flags(name.split("_")[0], is_member, scores.shape[0])


def reference_threshold(scores: torch.Tensor, is_member: torch.Tensor) -> float:
    """The threshold the reference code fits (``attacks.py`` ``get_threshold`` / ``get_max_accuracy``):
    among the ROC curve's thresholds (the distinct scores, and +inf), the one whose rule ``score >
    t`` (strictly) is most accurate on these labelled samples (N,), the first (highest) on ties.
    Returns t, a score value (the highest score left out), or +inf when no cut beats guessing that
    nobody is a member. Accuracy weighs each class equally (the same on the balanced sets the
    chapter uses; the reference's plain accuracy differs on unbalanced ones); it is compared in
    exact integer counts, so ties are ties."""
    scores, is_member = scores.double(), is_member.bool()
    values, order = scores.sort(descending=True, stable=True)
    member = is_member[order].long()
    positives, negatives = int(member.sum()), int((1 - member).sum())
    # balanced accuracy of "the first k are members" is 1/2 + (TP / P - FP / N) / 2: compare TP N - FP P
    gain = member.cumsum(0) * negatives - (1 - member).cumsum(0) * positives
    last_of_value = torch.ones_like(values, dtype=torch.bool)
    last_of_value[:-1] = values[:-1] != values[1:]
    gain = torch.where(last_of_value, gain, torch.tensor(torch.iinfo(torch.int64).min))
    best = int(torch.nonzero(gain == gain.max())[0, 0])
    if int(gain[best]) <= 0:
        return math.inf  # guessing that nobody is a member is as good as it gets
    return float(values[best + 1]) if best + 1 < len(values) else -math.inf


def _thresholded(name, eval_scores, eval_is_member, adv_scores, adv_is_member, n_bootstrap, seed) -> AttackResult:
    """Scores (N,) flagged above the reference's threshold (:func:`reference_threshold`) fitted on the
    adversary's scores (M,): member when score > t."""
    threshold = reference_threshold(adv_scores, adv_is_member)
    return attack_result(name, eval_scores, eval_scores > threshold, threshold, eval_is_member, n_bootstrap, seed)


def _check_tables(eval_correct, adv_correct) -> None:
    """Both correctness tables 2-D and non-empty (N, A) and (M, A), with the same A."""
    for name, table in (("eval_correct", eval_correct), ("adv_correct", adv_correct)):
        if not isinstance(table, torch.Tensor) or table.ndim != 2 or 0 in table.shape:
            raise AttackInputError(f"{name}: expected a bool table of shape (N >= 1, A >= 1), got "
                                   f"{tuple(table.shape) if isinstance(table, torch.Tensor) else type(table).__name__}")
    if eval_correct.shape[1] != adv_correct.shape[1]:
        raise AttackInputError(f"adv_correct: must have as many queries per sample as eval_correct "
                               f"({eval_correct.shape[1]}), got {adv_correct.shape[1]}")


def label_only_translation(eval_correct: torch.Tensor, eval_is_member: torch.Tensor, adv_correct: torch.Tensor,
                           adv_is_member: torch.Tensor, n_bootstrap: int = 200, seed: int = 0) -> AttackResult:
    """The translation attack on :func:`translation_correctness` tables, bool (N, A) for the
    evaluation set and (M, A) for the adversary's own labelled samples: the score is the number
    of correctly labelled copies (0..A, higher = member), flagged above the threshold fitted on the
    adversary's samples as the reference fits its thresholds (:func:`reference_threshold`). This is
    a simplification of the published attack (:func:`label_only_translation_model`): the count
    forgets which copy was the unshifted one. Named ``label_only_translation_count``.

    Args:
        eval_correct: bool tensor (N, A), the evaluation set's :func:`translation_correctness`.
        eval_is_member: bool tensor (N,), the evaluation set's membership (both classes present).
        adv_correct: bool tensor (M, A), the adversary's samples' table (same A).
        adv_is_member: bool tensor (M,), the adversary's samples' membership (both classes present).
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        seed: seed of the bootstrap resampling (int).
    """
    _check_tables(eval_correct, adv_correct)
    eval_scores, eval_is_member = _check_scores("eval_correct", eval_correct.double().sum(1), eval_is_member, "counts")
    adv_scores, adv_is_member = _check_scores("adv_correct", adv_correct.double().sum(1), adv_is_member, "counts")
    return _thresholded("label_only_translation_count", eval_scores, eval_is_member, adv_scores, adv_is_member,
                        n_bootstrap, seed)


# --- the translation attack as published: an attack model on the 0/1 vector -----------------------

#: The reference's attack-model learning rates (``attacks.py`` ``train_best_attack_model``: 1e-3,
#: 1e-2, 5e-3, 5e-2, in that order); the one with the best accuracy on the training samples is kept.
ATTACK_MODEL_RATES = (1e-3, 1e-2, 5e-3, 5e-2)
#: The reference's attack model for the translation attack (``AttackModel`` with ``aug_type="d"``):
#: two hidden layers of 10 units with leaky ReLU (slope 0.01), 2 softmax outputs.
ATTACK_MODEL_HIDDEN = (10, 10)
#: Keras's Adam defaults, which the reference trains with.
_ADAM = {"beta1": 0.9, "beta2": 0.999, "epsilon": 1e-7}


def _glorot_normal(generator: torch.Generator, groups: int, fan_in: int, fan_out: int) -> torch.Tensor:
    """Keras's ``glorot_normal`` (groups, fan_in, fan_out) float64: a normal of standard deviation
    sqrt(2 / (fan_in + fan_out)) / 0.8796 truncated at two standard deviations (redrawn beyond)."""
    std = math.sqrt(2.0 / (fan_in + fan_out)) / 0.87962566103423978
    out = torch.randn(groups, fan_in, fan_out, generator=generator, dtype=torch.float64)
    while True:
        outside = out.abs() > 2
        if not bool(outside.any()):
            return out * std
        out[outside] = torch.randn(int(outside.sum()), generator=generator, dtype=torch.float64)


def _attack_model_forward(params: list[torch.Tensor], x: torch.Tensor) -> torch.Tensor:
    """Log-probabilities (G, B, 2) of G attack models (weights (G, in, out), biases (G, 1, out)) on
    inputs (G, B, A): dense layers with leaky ReLU (0.01) between them, log-softmax at the end."""
    for i in range(0, len(params), 2):
        x = torch.baddbmm(params[i + 1], x, params[i])
        if i + 2 < len(params):
            x = torch.nn.functional.leaky_relu(x, 0.01)
    return x.log_softmax(-1)


def train_attack_models(features: torch.Tensor, targets: torch.Tensor, groups: torch.Tensor, n_groups: int,
                        learning_rates=ATTACK_MODEL_RATES, hidden=ATTACK_MODEL_HIDDEN, epochs: int = 1,
                        seed: int = 0) -> list[list[torch.Tensor]]:
    """The reference's attack models (``attacks.py`` ``train_model``), one per group (the true class)
    and per learning rate, all trained at once: a dense network A -> ``hidden`` -> 2 with leaky ReLU,
    Keras's Glorot-normal weights and zero biases, cross-entropy on the softmax, Adam with Keras's
    defaults (beta 0.9 / 0.999, epsilon 1e-7 added to sqrt(v) after the bias correction of the step
    size), batch size 1 over a fresh random order of the group's samples each epoch.

    Args:
        features: float tensor (M, A), one row per training sample (the 0/1 correctness vector).
        targets: bool tensor (M,), True = member (output 1).
        groups: int tensor (M,), each sample's group in 0..``n_groups`` - 1.
        n_groups: number of groups (int >= 1); a group without samples keeps its initial weights.
        learning_rates: Adam step sizes (floats > 0), one set of models per rate.
        hidden: hidden-layer widths (ints >= 1).
        epochs: passes over each group's samples (int >= 1).
        seed: seed of the initialisation and of the sample order (int).

    Returns:
        per learning rate, the parameter list [w1, b1, w2, b2, ...] with weights (n_groups, in, out)
        and biases (n_groups, 1, out), float64.
    """
    epochs = check_positive_int(epochs, "epochs")
    for rate in learning_rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (math.isfinite(rate) and rate > 0):
            raise ValueError(f"learning_rates: each must be a finite number > 0, got {rate!r}")
    hidden = [check_positive_int(h, "hidden") for h in hidden]
    x = features.double()
    y = targets.long()
    groups = groups.long()
    rates = len(learning_rates)
    g = rates * n_groups  # model (r, c) sits at r * n_groups + c
    generator = torch.Generator().manual_seed(int(seed))
    sizes = [x.shape[1], *hidden, 2]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        params += [_glorot_normal(generator, g, fan_in, fan_out), torch.zeros(g, 1, fan_out, dtype=torch.float64)]
    members = [torch.nonzero(groups == c).squeeze(1) for c in range(n_groups)]
    counts = torch.tensor([len(m) for m in members] * rates)
    longest = int(counts.max()) if len(counts) else 0
    lr = torch.tensor([r for r in learning_rates for _ in range(n_groups)], dtype=torch.float64)
    moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in params]
    b1, b2, eps = _ADAM["beta1"], _ADAM["beta2"], _ADAM["epsilon"]
    for epoch in range(epochs):
        order = torch.zeros(g, max(longest, 1), dtype=torch.long)
        for model in range(g):
            rows = members[model % n_groups]
            if len(rows):
                order[model, : len(rows)] = rows[torch.randperm(len(rows), generator=generator)]
        for step in range(longest):
            active = counts > step  # (G,): models whose group still has a sample this epoch
            rows = order[:, step]
            leaves = [p.detach().requires_grad_(True) for p in params]
            log_p = _attack_model_forward(leaves, x[rows].unsqueeze(1))  # (G, 1, 2)
            loss = -(log_p[:, 0].gather(1, y[rows].unsqueeze(1)).squeeze(1) * active).sum()
            grads = torch.autograd.grad(loss, leaves)
            # Keras's step: lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); p -= lr_t m / (sqrt(v) + eps), t the
            # model's own number of updates so far (models past their group's end do not move)
            t = (epoch * counts + step + 1).double()
            lr_t = lr * torch.sqrt(1 - b2 ** t) / (1 - b1 ** t)
            updated = []
            for i, (p, grad) in enumerate(zip(params, grads)):
                shape = (-1,) + (1,) * (p.ndim - 1)
                on = active.view(shape)
                m, v = moments[i]
                m = torch.where(on, b1 * m + (1 - b1) * grad, m)
                v = torch.where(on, b2 * v + (1 - b2) * grad * grad, v)
                moments[i] = (m, v)
                updated.append(torch.where(on, p - lr_t.view(shape) * m / (v.sqrt() + eps), p))
            params = updated
    return [[p[r * n_groups:(r + 1) * n_groups].clone() for p in params] for r in range(rates)]


def attack_model_probabilities(params: list[torch.Tensor], features: torch.Tensor,
                               groups: torch.Tensor) -> torch.Tensor:
    """P(member) float64 (N,) of each sample (features (N, A)) under its group's attack model
    (``params`` as :func:`train_attack_models` returns them for one learning rate)."""
    x = features.double()
    groups = groups.long()
    out = torch.zeros(len(x), dtype=torch.float64)
    with torch.no_grad():
        for c in groups.unique().tolist():
            rows = torch.nonzero(groups == c).squeeze(1)
            out[rows] = _attack_model_forward([p[c:c + 1] for p in params], x[rows].unsqueeze(0))[0, :, 1].exp()
    return out


def label_only_translation_model(eval_correct: torch.Tensor, eval_labels: torch.Tensor, eval_is_member: torch.Tensor,
                                 adv_correct: torch.Tensor, adv_labels: torch.Tensor, adv_is_member: torch.Tensor,
                                 learning_rates=ATTACK_MODEL_RATES, epochs: int = 1, seed: int = 0,
                                 n_bootstrap: int = 200, name: str = "label_only_translation") -> AttackResult:
    """The translation attack as Choquette-Choo et al. publish it: an attack model per true class
    (:func:`train_attack_models`) on the (samples, 4 d + 1) 0/1 correctness vectors of
    :func:`translation_correctness`, trained on the adversary's own labelled samples, one set of
    models per learning rate; the rate whose models are most accurate on those training samples
    is kept (``train_best_attack_model``: the first on ties). Score: the attack model's P(member)
    (N,) float64; hard guess: member when P(member) > 1/2 (the argmax of its two outputs, Keras's
    first index on a tie). The reference trains on a shadow ("source") model's samples; here the
    adversary's labelled samples of the target itself, as every threshold in this project is set.

    Args:
        eval_correct: bool tensor (N, A), the evaluation samples' correctness vectors.
        eval_labels: int tensor (N,), their true classes (the attack model is chosen by it).
        eval_is_member: bool tensor (N,), their membership (both classes present).
        adv_correct: bool tensor (M, A), the adversary's samples' vectors (same A).
        adv_labels: int tensor (M,), their classes; every class of ``eval_labels`` must occur.
        adv_is_member: bool tensor (M,), their membership (both classes present).
        learning_rates: the Adam step sizes tried (default the reference's, :data:`ATTACK_MODEL_RATES`).
        epochs: passes over the training samples (int >= 1; the reference's 1).
        seed: seed of the models' initialisation and sample order, and of the bootstrap (int).
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        name: the result's name.
    """
    _check_tables(eval_correct, adv_correct)
    eval_is_member = membership_flags("eval", eval_is_member, eval_correct.shape[0])
    adv_is_member = membership_flags("adv", adv_is_member, adv_correct.shape[0])
    for what, labels, n in (("eval_labels", eval_labels, eval_correct.shape[0]),
                            ("adv_labels", adv_labels, adv_correct.shape[0])):
        if (not isinstance(labels, torch.Tensor) or labels.shape != (n,) or labels.is_floating_point()
                or (n and int(labels.min()) < 0)):
            raise AttackInputError(f"{what}: expected non-negative class indices of shape ({n},)")
    missing = sorted(set(eval_labels.tolist()) - set(adv_labels.tolist()))
    if missing:
        raise AttackInputError(f"adv_labels: the attack model of each class is trained on that class's adversary "
                               f"samples, and none has class {missing[0]}")
    n_groups = int(max(int(eval_labels.max()), int(adv_labels.max()))) + 1
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # networks of a few hundred weights: extra threads only add synchronisation
    try:
        trained = train_attack_models(adv_correct, adv_is_member, adv_labels, n_groups, learning_rates,
                                      epochs=epochs, seed=seed)
    finally:
        torch.set_num_threads(threads)
    best, best_accuracy = None, -1.0
    for params in trained:
        guesses = attack_model_probabilities(params, adv_correct, adv_labels) > 0.5
        accuracy = float((guesses == adv_is_member).double().mean())
        if accuracy > best_accuracy:
            best, best_accuracy = params, accuracy
    scores = attack_model_probabilities(best, eval_correct, eval_labels)
    return attack_result(name, scores, scores > 0.5, 0.5, eval_is_member, n_bootstrap, seed)


# --- the boundary-distance attack -----------------------------------------------------------------

@dataclass(frozen=True)
class BoundaryResult:
    """Per-sample boundary distances and how each search ended; every tensor is (N,) on the CPU.

    ``distances`` float64: the norm (``norm``: ``"l2"`` or ``"linf"``, on [0, 1] pixels) of the
    smallest perturbation found that changes the predicted label; 0 for ``misclassified`` samples
    (wrong label already); ``max_steps x step`` for ``capped`` ones (label unchanged after
    ``max_steps`` steps). ``flipped`` bool: a misclassified point was found (then the distance is
    that point's). ``steps`` int64: gradient steps taken. ``forward_passes`` / ``backward_passes``
    int64: the target model's forward passes on the sample (the first check, one per step, the
    bisection) and input-gradient computations (one per step)."""

    distances: torch.Tensor
    misclassified: torch.Tensor
    flipped: torch.Tensor
    capped: torch.Tensor
    steps: torch.Tensor
    forward_passes: torch.Tensor
    backward_passes: torch.Tensor
    norm: str
    step: float
    max_steps: int
    refine_steps: int

    def __len__(self) -> int:
        return len(self.distances)


def _margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y - max_{j != y} z_j (B,): positive while the label is right (up to ties)."""
    true = logits.gather(1, labels[:, None]).squeeze(1)
    return true - logits.scatter(1, labels[:, None], float("-inf")).max(1).values


def _l2_step(x: torch.Tensor, gradient: torch.Tensor, step: float) -> torch.Tensor:
    """One L2 step of length ``step`` down the gradient (none where it is zero), kept in [0, 1]."""
    norms = gradient.flatten(1).norm(dim=1).clamp_min(torch.finfo(gradient.dtype).tiny)
    direction = gradient / norms.view(-1, *([1] * (gradient.ndim - 1)))
    return (x - step * direction).clamp_(0.0, 1.0)


def _norm(difference: torch.Tensor, norm: str) -> torch.Tensor:
    """The L2 or L-infinity norm (B,) float64 of each perturbation (B, C, H, W)."""
    flat = difference.flatten(1).double()
    return flat.norm(dim=1) if norm == "l2" else flat.abs().amax(dim=1)


def boundary_distances(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, norm: str = "l2",
                       step: float | None = None, max_steps: int = 100, refine_steps: int = 10,
                       batch_size: int = 500) -> BoundaryResult:
    """The distance of each sample to the model's decision boundary (see the module docstring).

    Chunks of ``batch_size`` run on the model's device and dtype; within a chunk only the samples
    still walking are forwarded. Per-sample results depend on the batching only through rounding:
    another batch size may run other kernels, so the distances are equal up to rounding, and the
    outcomes and step counts the same unless a logit ties or a gradient vanishes to within rounding
    (rare in float64; in float32 a near-zero gradient may differ). Deterministic for a given batch
    size, machine and thread count. Forward passes per sample: at most 1 + ``max_steps`` +
    ``refine_steps``; input gradients: at most ``max_steps`` (:func:`label_only_cost`).

    Args:
        model: the target ``nn.Module`` (logits out); eval mode and frozen parameters during the
            search, both restored afterwards.
        images: tensor (N, C, H, W), uint8 in 0..255 or float in [0, 1].
        labels: int tensor (N,), the true labels.
        norm: ``"l2"`` or ``"linf"``, the norm of the steps and of the reported distances (on
            [0, 1] pixels).
        step: the walk's step length in that norm, pixel-range units (float > 0; None = the default
            of :data:`BOUNDARY_STEPS`: 0.05 in L2, 0.002 in L-infinity).
        max_steps: the walk's budget of gradient steps (int >= 0).
        refine_steps: bisection steps on the segment from x to the first misclassified point
            (int >= 0; each halves the uncertainty along it).
        batch_size: samples per chunk (int >= 1); may change the results by rounding (see above).
    """
    if norm not in BOUNDARY_NORMS:
        raise ValueError(f"norm: got {norm!r}; allowed: {', '.join(BOUNDARY_NORMS)}")
    step = BOUNDARY_STEPS[norm] if step is None else step
    if isinstance(step, bool) or not isinstance(step, (int, float)) or not (math.isfinite(step) and step > 0):
        raise ValueError(f"step: must be a finite number > 0, got {step!r}")
    step = float(step)
    max_steps = check_positive_int(max_steps, "max_steps", minimum=0)
    refine_steps = check_positive_int(refine_steps, "refine_steps", minimum=0)
    batch_size = check_positive_int(batch_size, "batch_size")
    x_all = as_unit_float(images)
    labels = check_labels(labels, x_all.shape[0])
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    n = x_all.shape[0]
    distances = torch.zeros(n, dtype=torch.float64)
    misclassified = torch.zeros(n, dtype=torch.bool)
    flipped = torch.zeros(n, dtype=torch.bool)
    steps = torch.zeros(n, dtype=torch.int64)
    move = pgd_step if norm == "linf" else _l2_step
    with input_gradients_only(model):
        for start in range(0, n, batch_size):
            x0 = x_all[start: start + batch_size].to(device=device, dtype=dtype)
            y = labels[start: start + batch_size].to(device)
            m = x0.shape[0]
            chunk_steps = torch.zeros(m, dtype=torch.int64, device=device)
            chunk_flipped = torch.zeros(m, dtype=torch.bool, device=device)
            chunk_wrong = torch.zeros(m, dtype=torch.bool, device=device)
            x_end = x0.clone()
            active, x, y_active = torch.arange(m, device=device), x0, y
            for t in range(max_steps + 1):
                last = t == max_steps
                leaf = x.detach().requires_grad_(not last)
                logits = model(leaf)
                if t == 0 and int(y.max()) >= logits.shape[1]:
                    raise ValueError(f"labels: must lie in 0..{logits.shape[1] - 1} (the model's classes), "
                                     f"got {int(y.max())}")
                wrong = logits.detach().argmax(1) != y_active
                if t == 0:
                    chunk_wrong[active[wrong]] = True
                elif wrong.any():
                    chunk_flipped[active[wrong]] = True
                    x_end[active[wrong]] = x[wrong].detach()
                if last or bool(wrong.all()):
                    break
                (gradient,) = torch.autograd.grad(_margin(logits, y_active).sum(), leaf)
                keep = ~wrong
                active, x, y_active, gradient = active[keep], x[keep].detach(), y_active[keep], gradient[keep]
                x = move(x, gradient, step)
                chunk_steps[active] += 1
            # Bisection on the segment x0 -> x_end of every flipped sample: hi stays misclassified.
            rows = torch.nonzero(chunk_flipped).squeeze(1)
            direction = x_end[rows] - x0[rows]
            lo = torch.zeros(len(rows), dtype=torch.float64, device=device)
            hi = torch.ones(len(rows), dtype=torch.float64, device=device)
            with torch.no_grad():
                for _ in range(refine_steps if len(rows) else 0):
                    mid = (lo + hi) / 2
                    shape = (-1,) + (1,) * (x0.ndim - 1)
                    probe = x0[rows] + mid.to(dtype).view(shape) * direction
                    outside = model(probe).argmax(1) != y[rows]
                    hi = torch.where(outside, mid, hi)
                    lo = torch.where(outside, lo, mid)
                # the verified point: x0 + hi * direction exactly as it was queried, or x_end itself
                final = x0[rows] + hi.to(dtype).view((-1,) + (1,) * (x0.ndim - 1)) * direction
                final = torch.where((hi == 1).view((-1,) + (1,) * (x0.ndim - 1)), x_end[rows], final)
            span = slice(start, start + m)
            chunk_distance = torch.zeros(m, dtype=torch.float64)
            chunk_distance[rows.cpu()] = _norm((final - x0[rows]).cpu(), norm)
            capped = ~(chunk_flipped | chunk_wrong).cpu()
            chunk_distance[capped] = max_steps * step
            distances[span] = chunk_distance
            misclassified[span] = chunk_wrong.cpu()
            flipped[span] = chunk_flipped.cpu()
            steps[span] = chunk_steps.cpu()
    # forward passes: the first check, one after each step, and the bisection of flipped samples
    forward = 1 + steps + torch.where(flipped, refine_steps, 0)
    capped = ~(flipped | misclassified)
    return BoundaryResult(distances=distances, misclassified=misclassified, flipped=flipped, capped=capped,
                          steps=steps, forward_passes=forward, backward_passes=steps.clone(), norm=norm, step=step,
                          max_steps=max_steps, refine_steps=refine_steps)


def label_only_boundary(eval_distances, eval_is_member: torch.Tensor, adv_distances,
                        adv_is_member: torch.Tensor, n_bootstrap: int = 200, seed: int = 0) -> AttackResult:
    """The boundary-distance attack: the score is the distance (larger = member; misclassified
    samples 0), flagged above the threshold most accurate on the adversary's own samples, fitted
    as the reference's ``get_threshold`` fits it (:func:`reference_threshold`: a distance of the
    adversary's samples, member when strictly above; ART's ``calibrate_distance_threshold`` searches
    a grid of 99 values instead). Takes :class:`BoundaryResult` or plain distance tensors (N,), with bool membership.
    Named ``label_only_boundary_<norm>`` (``label_only_boundary`` for plain tensors).

    Args:
        eval_distances: :class:`BoundaryResult` or float tensor (N,) of distances (pixel-range
            units of its norm) for the evaluation set; finite.
        eval_is_member: bool tensor (N,), the evaluation set's membership (both classes present).
        adv_distances: :class:`BoundaryResult` or float tensor (M,) for the adversary's samples
            (the same norm as ``eval_distances`` when both are results).
        adv_is_member: bool tensor (M,), the adversary's samples' membership (both classes present).
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        seed: seed of the bootstrap resampling (int).
    """
    norms = {r.norm for r in (eval_distances, adv_distances) if isinstance(r, BoundaryResult)}
    if len(norms) > 1:
        raise AttackInputError(f"adv_distances: measured in {sorted(norms)}; both sides need the same norm")
    plain = [r.distances if isinstance(r, BoundaryResult) else r for r in (eval_distances, adv_distances)]
    eval_scores, eval_is_member = _check_scores("eval_distances", plain[0], eval_is_member, "distances")
    adv_scores, adv_is_member = _check_scores("adv_distances", plain[1], adv_is_member, "distances")
    name = "label_only_boundary" + (f"_{norms.pop()}" if norms else "")
    return _thresholded(name, eval_scores, eval_is_member, adv_scores, adv_is_member, n_bootstrap, seed)


def label_only_cost(attack: str, max_shift: int = 1, flip: bool = False, max_steps: int = 100,
                    refine_steps: int = 10) -> dict:
    """What each label-only attack costs per evaluated sample, in passes of the target model:
    ``"gap"``: 1 query; ``"translation"``: 4 d + 1 queries (twice that with ``flip``);
    ``"boundary"``: at most 1 + ``max_steps`` + ``refine_steps`` forward passes and ``max_steps``
    input gradients (the actual counts are in :class:`BoundaryResult`; misclassified samples take
    1). ``label_only`` says whether only predicted labels are read (the boundary search here uses
    gradients, so False). No reference model.

    Args:
        attack: ``"gap"``, ``"translation"`` or ``"boundary"``.
        max_shift: the translation attack's shift parameter d in pixels (int >= 0; translation only).
        flip: whether the translation attack also queries mirrored copies (bool; translation only).
        max_steps: the boundary walk's step budget (int >= 0; boundary only).
        refine_steps: the boundary search's bisection steps (int >= 0; boundary only).

    Returns:
        dict with ``target_queries``, ``target_gradients``, ``reference_models``,
        ``reference_queries`` (ints) and ``label_only`` (bool).
    """
    if attack == "gap":
        queries, gradients, label_only = 1, 0, True
    elif attack == "translation":
        queries, gradients, label_only = len(translation_offsets(max_shift)) * (2 if flip else 1), 0, True
    elif attack == "boundary":
        max_steps = check_positive_int(max_steps, "max_steps", minimum=0)
        refine_steps = check_positive_int(refine_steps, "refine_steps", minimum=0)
        queries, gradients, label_only = 1 + max_steps + refine_steps, max_steps, False
    else:
        raise ValueError(f"attack: got {attack!r}; allowed: gap, translation, boundary")
    return {"target_queries": queries, "target_gradients": gradients, "reference_models": 0,
            "reference_queries": 0, "label_only": label_only}
