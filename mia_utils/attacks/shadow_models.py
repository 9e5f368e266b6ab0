"""Attacks that also read reference (shadow) models: LiRA (Carlini et al. 2022), online and
offline, with per-example or one shared variance, and its augmented queries."""

from __future__ import annotations

import math

import torch

from mia_utils.attacks.inputs import (
    AttackInputError,
    AttackInputs,
    AttackResult,
    attack_result,
)

LIRA_PROBABILITY_EPSILON = 1e-45
"""score.py adds this to p_y and to the other classes' mass before taking their logs."""


LIRA_STD_EPSILON = 1e-30
"""plot.py adds this to every standard deviation before it evaluates a Gaussian density."""


LIRA_OFFLINE_Z = 0.6744897501960817
"""Phi^-1(3/4): the offline hard guess flags |z| above it, half of the OUT Gaussian's mass."""


_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def lira_statistic(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LiRA's statistic (N,) float64 as the reference's ``score.py`` computes it.

    The softmax of the logits shifted by each row's maximum gives p; the statistic is
    log(p_y + 1e-45) - log(sum_{i != y} p_i + 1e-45). The other classes' mass is summed, not
    taken as 1 - p_y, so it stays accurate when p_y is close to 1. It equals
    :func:`logit_scaled_confidence` within 1e-12 while |value| < 75 (both masses far above
    1e-45), falls behind it beyond (by about 1e-6 at 90) and saturates at about +-103.6
    (= log 1e45), where :func:`logit_scaled_confidence` keeps growing with the logit margin.
    The reference computes the exponentials in its stored logits' precision (float32) before
    casting to float64; here everything is float64."""
    logits = logits.double()
    p = (logits - logits.max(1, keepdim=True).values).exp()
    p = p / p.sum(1, keepdim=True)
    true = p.gather(1, labels[:, None]).squeeze(1)
    wrong = p.scatter(1, labels[:, None], 0.0).sum(1)
    return torch.log(true + LIRA_PROBABILITY_EPSILON) - torch.log(wrong + LIRA_PROBABILITY_EPSILON)


def _gaussian_logpdf(x, mean, std):
    """log N(x; mean, std^2), as scipy.stats.norm.logpdf(x, mean, std) computes it."""
    return -0.5 * ((x - mean) / std) ** 2 - _HALF_LOG_2PI - torch.log(std)


def _first_selected(phi: torch.Tensor, selected: torch.Tensor, size: int) -> torch.Tensor:
    """(N, size, A): for each example n, phi[k, n, :] of the first ``size`` shadow models k (in
    the order given) that ``selected[k, n]`` marks; plot.py's ``x[:in_size]`` / ``x[:out_size]``.
    ``phi``: (K, N, A), one statistic per shadow model, example and query."""
    order = torch.argsort((~selected).to(torch.int64), dim=0, stable=True)  # selected ones first, in order
    index = order[:size].unsqueeze(-1).expand(-1, -1, phi.shape[2])
    return phi.gather(0, index).permute(1, 0, 2)


def _median(table: torch.Tensor) -> torch.Tensor:
    """numpy's median along dim 1: the middle value, or the mean of the two middle values."""
    values = table.sort(dim=1).values
    size = values.shape[1]
    middle = values[:, size // 2]
    return middle if size % 2 else (values[:, size // 2 - 1] + middle) / 2


def lira(inputs: AttackInputs, shadow_logits: torch.Tensor, shadow_in: torch.Tensor, online: bool = True,
         fixed_variance: bool = False, n_bootstrap: int = 200, seed: int = 0,
         queries: torch.Tensor | None = None) -> AttackResult:
    """The likelihood-ratio attack, with the scores of Carlini et al.'s reference code.

    Each example needs at least one OUT shadow model, and online at least one IN shadow model.

    Args:
        inputs: :class:`~mia_utils.attacks.inputs.AttackInputs`: the target's logits (N, classes),
            labels (N,) and membership (N,) on the evaluation set.
        shadow_logits: float tensor (K, N, classes), the K shadow models' logits on the evaluation
            set, or (K, N, A, classes) on A augmented queries of each example (with ``queries``).
        shadow_in: bool tensor (K, N), whether shadow k trained on example n.
        online: the online attack (IN and OUT Gaussians) when True, the offline one (OUT only)
            when False (bool).
        fixed_variance: one spread shared by all examples instead of per-example ones (bool;
            see below).
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        seed: seed of the bootstrap resampling (int).
        queries: float tensor (N, A, classes), the target's logits on the same A augmented queries
            as ``shadow_logits`` (see :func:`shifted_queries`), or None for one clean query.

    What the reference (tensorflow/privacy ``research/mi_lira_2021``) does, and so this does:

    * Statistic (``score.py``): :func:`lira_statistic`, the logit-scaled confidence of the true
      label, computed from a max-shifted softmax with 1e-45 added inside both logs.
    * Shadow statistics per example (``plot.py``): the IN statistics (shadows that trained on
      it) and the OUT ones. Both are cut to the smallest count over all examples (``in_size``,
      ``out_size``), keeping each example's first shadows in the order given. This is mirrored:
      with balanced masks (every example IN for exactly half of the shadows, as
      :func:`mia_utils.data.shadow_in_masks` draws them) it changes nothing; otherwise every
      example is fitted on as few shadows as the worst-covered one has.
    * Centres: the per-example MEDIAN of the IN and of the OUT statistics (the paper's
      Algorithm 1 says mean).
    * Spreads: the per-example standard deviation (numpy's, ddof = 0, around the per-example
      mean, not the median). ``fixed_variance``: one number, ``np.std`` of ALL the kept
      statistics of all examples together, that is, deviations from their global mean, not
      from each example's centre. Online, the reference takes it from the IN statistics for
      both Gaussians (``std_out = np.std(dat_in)``); offline, from the OUT statistics. Quirk:
      this global spread includes how much the examples differ from each other, so it is much
      wider than the pooled within-example spread the paper's "global variance" suggests. As
      one number shared by all examples (and, online, by both Gaussians) it only rescales the
      scores: their ranking (AUC, TPR at low FPR) and the sign of the online score are what a
      pooled within-example spread would give. Every spread gets 1e-30 added (no other floor:
      with one shadow on a side the per-example spread is 0, and the scores blow up to about
      1e60; use ``fixed_variance`` with so few shadows).
    * Online score: log N(phi; mu_in, sigma_in) - log N(phi; mu_out, sigma_out) for the target's
      statistic phi (``generate_ours``; its ``pr_in - pr_out`` with the sign flipped, since its
      ROC sweep negates the prediction).
    * Offline score: -log N(phi; mu_out, sigma_out) (``generate_ours_offline``, sign flipped
      likewise). This differs from the paper, whose offline test is one-sided,
      Lambda = Phi((phi - mu_out) / sigma_out): the reference's score is two-sided, so a target
      statistic far BELOW the OUT centre looks as member-like as one far above it, and with
      per-example spreads it adds log sigma_out, ranking examples with wide OUT distributions
      higher at equal |z|.
    * Augmentations: the reference queries every model on several augmentations of each image
      (``inference.py``: the image and its mirror by default, optionally shifted copies), fits
      the Gaussians per query and averages the scores over the queries. With ``queries`` this
      does the same; without, each model is queried once, on the clean image.

    Hard guesses (the reference has none; it only sweeps a ROC curve): online, member when the
    score is positive (likelihood ratio above 1; ``threshold`` 0). Offline, member when
    |phi - mu_out| > Phi^-1(3/4) sigma_out, the two-sided test that flags half of the OUT
    Gaussian (as "above the OUT centre" does one-sided); that is, score above
    z^2 / 2 + log sigma_out + log(2 pi) / 2 with z = Phi^-1(3/4). With ``fixed_variance`` that
    is one number, the ``threshold``; with per-example spreads each example has its own, and
    ``threshold`` is NaN.
    """
    k, n = shadow_in.shape
    target_logits = inputs.logits[:, None] if queries is None else queries
    shadow_queries = shadow_logits[:, :, None] if queries is None else shadow_logits
    a, classes = target_logits.shape[1], inputs.logits.shape[1]
    if (target_logits.shape != (len(inputs.labels), a, classes) or shadow_queries.ndim != 4
            or shadow_queries.shape != (k, n, a, classes) or n != len(inputs.labels)):
        raise AttackInputError(f"shadow_logits {tuple(shadow_logits.shape)} and shadow_in {tuple(shadow_in.shape)} "
                               f"must be (K, N, classes) and (K, N) with N = {len(inputs.labels)} "
                               f"and classes = {classes}" + ("" if queries is None else
                               f", or (K, N, A, classes) with queries (N, A, classes), got queries "
                               f"{tuple(queries.shape)}"))
    shadow_in = shadow_in.bool()
    need_in = 1 if online else 0
    if int(shadow_in.sum(0).min()) < need_in or int((~shadow_in).sum(0).min()) < 1:
        raise AttackInputError("shadow_in: every example needs at least one OUT shadow model"
                               + (" and one IN shadow model" if online else ""))
    phi = lira_statistic(shadow_queries.reshape(-1, classes),
                         inputs.labels[None, :, None].expand(k, n, a).reshape(-1)).reshape(k, n, a)
    target_phi = lira_statistic(target_logits.reshape(-1, classes),
                                inputs.labels[:, None].expand(n, a).reshape(-1)).reshape(n, a)

    dat_out = _first_selected(phi, ~shadow_in, int((~shadow_in).sum(0).min()))
    mean_out = _median(dat_out)
    if online:
        dat_in = _first_selected(phi, shadow_in, int(shadow_in.sum(0).min()))
        mean_in = _median(dat_in)
        if fixed_variance:
            std_in = std_out = dat_in.std(correction=0)  # sic: the reference uses the IN spread for OUT too
        else:
            std_in, std_out = dat_in.std(dim=1, correction=0), dat_out.std(dim=1, correction=0)
        scores = (_gaussian_logpdf(target_phi, mean_in, std_in + LIRA_STD_EPSILON)
                  - _gaussian_logpdf(target_phi, mean_out, std_out + LIRA_STD_EPSILON)).mean(1)
        cut = torch.zeros_like(scores)
        threshold = 0.0
    else:
        std_out = (dat_out.std(correction=0) if fixed_variance else dat_out.std(dim=1, correction=0)) + LIRA_STD_EPSILON
        scores = -_gaussian_logpdf(target_phi, mean_out, std_out).mean(1)
        cut = (0.5 * LIRA_OFFLINE_Z ** 2 + _HALF_LOG_2PI + torch.log(std_out)).expand(n, a).mean(1)
        threshold = float(cut[0]) if fixed_variance else float("nan")
    name = f"lira_{'online' if online else 'offline'}{'_fixed_variance' if fixed_variance else ''}"
    return attack_result(name, scores, scores > cut, threshold, inputs.is_member, n_bootstrap, seed)


def shifted_queries(images: torch.Tensor, shift: int) -> torch.Tensor:
    """LiRA's augmented queries for a model trained with random cropping of ``shift`` pixels
    (:class:`mia_utils.defenses.RandomCrop`): uint8 or float images (N, C, H, W) shifted by
    every offset (dy, dx) in {-shift, 0, shift}^2, the uncovered border filled with zeros as in
    training, so (N, 9, C, H, W), the unshifted image at index 4. This is the reference's
    ``inference.py`` shift grid with stride ``shift`` (3 x 3 shifts instead of every one)."""
    if shift < 1:
        raise ValueError(f"shift: must be >= 1, got {shift}")
    n, c, h, w = images.shape
    padded = torch.nn.functional.pad(images, (shift, shift, shift, shift))
    out = [padded[:, :, shift + dy: shift + dy + h, shift + dx: shift + dx + w]
           for dy in (-shift, 0, shift) for dx in (-shift, 0, shift)]
    return torch.stack(out, dim=1)
