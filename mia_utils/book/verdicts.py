"""Building blocks of the related chapters' verdicts: a claim tested with an interval
(:class:`RelatedFinding`, **holds**, **contradicted** or **inconclusive** from a 95 % interval; see
:mod:`mia_utils.attacks.evidence`), paired and proportion differences, bootstrap rank correlations,
and the sentences that report them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from mia_utils.attacks import metrics
from mia_utils.attacks.evidence import (
    CONTRADICTED,
    HOLDS,
    INCONCLUSIVE,
    LEVEL,
    SeedEstimate,
    combine_seeds,
    paired_difference,
    verdict,
)


def spearman_interval(x, y, n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Spearman's rank correlation of the paired points (x, y), and a percentile bootstrap
    interval at ``level`` from resampling the points with replacement (resamples in which
    either variable is constant are skipped). Returns ``(rho, low, high)``.

    Args:
        x: the points' first coordinates, 1-D array-like of floats (at least 3 points).
        y: their second coordinates, the same length as ``x``.
        n_bootstrap: bootstrap resamples of the points (int).
        seed: seed of ``numpy.random.default_rng`` for the resamples (int).
        level: the interval's confidence level (float in (0, 1)).
    """
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"x, y: need two equal-length 1-D sequences of at least 3 points, got {x.shape} and {y.shape}")
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(x), len(x))
        if np.ptp(x[pick]) == 0 or np.ptp(y[pick]) == 0:
            continue
        replicates.append(spearmanr(x[pick], y[pick]).statistic)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail]) if replicates else (np.nan, np.nan)
    return rho, float(low), float(high)


ONE_SEED = "1 seed: the interval covers the evaluation samples only"


#: Fewest points for a bootstrap interval of a rank correlation; below it the finding is
#: inconclusive by design (a percentile bootstrap of Spearman's rho over 4 or 5 points is mostly
#: ties and constant resamples, not an interval).
MIN_RANK_POINTS = 6


@dataclass(frozen=True)
class RelatedFinding:
    """One finding of a related-work chapter: the ``claim`` tested, its ``verdict`` (holds /
    contradicted / inconclusive), the ``estimate`` the verdict reads (with its interval; NaN
    when it could not be measured) and ``text``, the evidence in words with the interval and
    what it covers. ``parts``: further estimates shown beside it (e.g. the two correlations
    whose difference is judged)."""

    claim: str
    verdict: str
    estimate: SeedEstimate
    text: str
    parts: dict = field(default_factory=dict)

    @property
    def line(self) -> str:
        """``"<claim>: **<verdict>** (<text>)"``, the markdown the chapters print."""
        return f"{self.claim}: **{self.verdict}** ({self.text})"


def seeds_basis(n_seeds: int) -> str:
    """What an interval of a paired difference over ``n_seeds`` seeds covers, in words."""
    return ONE_SEED if n_seeds == 1 else f"{n_seeds} seeds"


def nan_estimate(value: float = math.nan) -> SeedEstimate:
    """An estimate without an interval (``value`` as its mean, bounds NaN): reads inconclusive."""
    return SeedEstimate(float(value), math.nan, math.nan, math.nan, (float(value),))


def interval_name(level: float, candidates: int = 1) -> str:
    """``"95 % interval"``, or for a selected setting ``"99.4 % interval (Bonferroni: best of 8)"``."""
    if candidates <= 1:
        return f"{100 * level:g} % interval"
    return f"{100 * level:.1f} % interval (Bonferroni: best of {candidates})"


def selection_level(candidates: int, level: float = LEVEL) -> float:
    """The interval level for a setting chosen as the best of ``candidates`` by the quantity the
    verdict then reads: ``1 - (1 - level) / candidates`` (Bonferroni). Picking the minimum of
    several noisy values biases it downwards; the wider interval keeps the chance of a false
    verdict at most ``1 - level`` over all the candidates."""
    if candidates < 1:
        raise ValueError(f"candidates: need at least one, got {candidates}")
    return 1 - (1 - level) / candidates


def rate_text(value: float, variance: float | None = None, n_nonmembers: int | None = None, digits: int = 1,
              scale: float = 100.0, unit: str = "") -> str:
    """A rate in percent with its normal 95 % interval from ``variance`` ("12.3 [10.1, 14.5]",
    followed by `` unit`` when given), or ``"not resolvable at n = <n_nonmembers> non-members per
    side"`` when the value is NaN (a TPR at an FPR the evaluation set cannot resolve).

    Args:
        value: the rate as a fraction (float; None or NaN = not resolvable).
        variance: its variance (fraction squared), or None / NaN to print the value alone.
        n_nonmembers: non-members per side, named in the "not resolvable" text (int or None).
        digits: decimals printed (int).
        scale: multiplier of the value (float; 100 = percent).
        unit: text appended after the number (str; empty for none).
    """
    if value is None or math.isnan(value):
        return "not resolvable" + (f" at n = {n_nonmembers:,} non-members per side" if n_nonmembers else "")
    suffix = f" {unit}" if unit else ""
    if variance is None or math.isnan(variance):
        return f"{value * scale:.{digits}f}{suffix}"
    return combine_seeds([value], [variance]).format(scale=scale, digits=digits) + suffix


def estimate_text(estimate: SeedEstimate, n_nonmembers: int | None = None, digits: int = 1, unit: str = "") -> str:
    """An estimate over seeds in percent with its interval ("12.3 [10.1, 14.5]", then `` unit``),
    or ``"not resolvable at n = …"`` when it is NaN (a rate the evaluation set cannot resolve)."""
    if math.isnan(estimate.mean):
        return rate_text(math.nan, None, n_nonmembers)
    return estimate.format(digits=digits) + (f" {unit}" if unit else "")


def false_positives_allowed(n_nonmembers: int, target: float) -> int:
    """How many false positives stay strictly below the false-positive rate ``target`` among
    ``n_nonmembers`` non-members: ``ceil(n * target) - 1`` (0: the rate is not resolvable)."""
    return max(0, math.ceil(round(n_nonmembers * target, 9)) - 1)


def difference_finding(claim: str, after, before, after_variances, before_variances, expected: str = "decrease",
                       level: float = LEVEL, candidates: int = 1, nan_text: str = "not measurable",
                       unit: str = "pp", scale: float = 100.0, digits: int = 1) -> RelatedFinding:
    """The claim that ``after - before`` (per seed, paired: the same seed's evaluation samples)
    goes in the ``expected`` direction, judged on the interval of
    :func:`mia_utils.attacks.evidence.paired_difference` at ``level`` (within-seed variance
    ``after_var + before_var``: conservative, as it ignores the pair's positive correlation).
    ``candidates`` > 1 marks ``after`` as the best of several settings, for the text (pass
    ``level = selection_level(candidates)``). A NaN value gives an inconclusive verdict whose
    text is ``nan_text`` (e.g. a TPR the evaluation set cannot resolve).

    Args:
        claim: the claim tested, in words (str).
        after: per-seed values after the change (array-like of floats, (n,); fractions for rates).
        before: the paired per-seed values before it, the same seeds in the same order.
        after_variances: within-seed variances of ``after`` (n,), or None for 0.
        before_variances: within-seed variances of ``before`` (n,), or None for 0.
        expected: the predicted direction, ``"decrease"`` or ``"increase"``.
        level: the interval's confidence level (float in (0, 1)).
        candidates: how many settings ``after`` was chosen from (int >= 1), for the text.
        nan_text: the text when the difference is NaN (str).
        unit: the unit printed after the change (str; ``"pp"`` = percentage points).
        scale: multiplier of the change for the text (float; 100 = percent).
        digits: decimals printed (int).
    """
    after, before = np.atleast_1d(np.asarray(after, dtype=float)), np.atleast_1d(np.asarray(before, dtype=float))
    change = paired_difference(after, before, after_variances, before_variances, level=level)
    state = verdict(change, expected)
    if math.isnan(change.mean):
        return RelatedFinding(claim, state, change, f"{nan_text}; inconclusive")
    text = (f"change {change.format(scale=scale, digits=digits, signed=True)} {unit}, "
            f"{interval_name(level, candidates)}; {seeds_basis(len(after))}")
    return RelatedFinding(claim, state, change, text)


def _rank_estimate(rho: float, replicates: np.ndarray, level: float) -> SeedEstimate:
    if math.isnan(rho) or len(replicates) == 0:
        return nan_estimate(rho)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return SeedEstimate(float(rho), float(low), float(high), float(np.std(replicates, ddof=1)) if len(replicates) > 1
                        else math.nan, (float(rho),))


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.isnan(x).any() or np.isnan(y).any() or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def rank_correlations(predictors: dict, outcome, n_bootstrap: int = 2000, seed: int = 0, level: float = LEVEL,
                      min_points: int = MIN_RANK_POINTS) -> tuple[dict[str, SeedEstimate], SeedEstimate | None]:
    """Spearman's rho of each of ``predictors`` (name -> values) with ``outcome`` over the same
    points, each with a percentile bootstrap interval at ``level`` from resampling the points
    with replacement (the same resamples for every predictor; resamples in which any variable
    is constant are skipped), and, for exactly two predictors (a, b), the interval of
    ``|rho_a| - |rho_b|`` over those same resamples (else None).

    With fewer than ``min_points`` points, or a NaN or constant variable, the estimates have no
    interval (:func:`nan_estimate`, the rho itself as mean; NaN when undefined). The resampled
    points are treated as exchangeable: points from one training run (several stopping epochs)
    are not independent, so the interval is optimistic about how the correlation generalizes.

    Args:
        predictors: name -> values, each a 1-D array-like of floats as long as ``outcome``.
        outcome: the outcome per point, 1-D array-like of floats.
        n_bootstrap: bootstrap resamples of the points (int).
        seed: seed of ``numpy.random.default_rng`` for the resamples (int).
        level: the intervals' confidence level (float in (0, 1)).
        min_points: fewest points for an interval (int).

    Returns:
        (name -> :class:`~mia_utils.attacks.evidence.SeedEstimate` of rho, the estimate of
        ``|rho_a| - |rho_b|`` or None).
    """
    y = np.asarray(outcome, dtype=float)
    xs = {name: np.asarray(values, dtype=float) for name, values in predictors.items()}
    if any(x.shape != y.shape or x.ndim != 1 for x in xs.values()):
        raise ValueError("predictors, outcome: need equal-length 1-D sequences")
    rhos = {name: spearman(x, y) for name, x in xs.items()}
    pair = len(xs) == 2
    if len(y) < min_points or any(math.isnan(r) for r in rhos.values()):
        names = list(rhos)
        diff = nan_estimate(abs(rhos[names[0]]) - abs(rhos[names[1]])) if pair else None
        return {name: nan_estimate(r) for name, r in rhos.items()}, diff
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(y), len(y))
        if np.ptp(y[pick]) == 0 or any(np.ptp(x[pick]) == 0 for x in xs.values()):
            continue
        replicates.append([spearman(x[pick], y[pick]) for x in xs.values()])
    replicates = np.asarray(replicates, dtype=float).reshape(-1, len(xs))
    estimates = {name: _rank_estimate(rhos[name], replicates[:, i], level) for i, name in enumerate(xs)}
    diff = None
    if pair:
        a, b = list(rhos)
        diff = _rank_estimate(abs(rhos[a]) - abs(rhos[b]), np.abs(replicates[:, 0]) - np.abs(replicates[:, 1]), level)
    return estimates, diff


def rho_text(estimate: SeedEstimate) -> str:
    """``"0.71 [0.40, 0.90]"``, ``"0.71 (no interval)"`` or ``"undefined"`` for a rank correlation."""
    if math.isnan(estimate.mean):
        return "undefined"
    if math.isnan(estimate.low):
        return f"{estimate.mean:.2f} (no interval)"
    return estimate.format(scale=1, digits=2)


def too_few_points(n_points: int, min_points: int) -> str:
    return (f"{n_points} points are too few for a bootstrap interval of a rank correlation "
            f"(at least {min_points} needed), so this reads inconclusive by design")


def rank_finding(claim: str, x, y, expected: str = "increase", n_bootstrap: int = 2000, seed: int = 0,
                 what: str = "models", basis: str = "1 seed", min_points: int = MIN_RANK_POINTS) -> RelatedFinding:
    """The claim that ``y`` rises (``expected="increase"``) or falls with ``x``: Spearman's rho
    with its percentile bootstrap interval over the points (:func:`rank_correlations`), read
    against 0. Fewer than ``min_points`` points: inconclusive by design, and the text says so.

    Args:
        claim: the claim tested, in words (str).
        x: the predictor per point, 1-D array-like of floats.
        y: the outcome per point, the same length as ``x``.
        expected: the predicted direction of rho, ``"increase"`` or ``"decrease"``.
        n_bootstrap: bootstrap resamples of the points (int).
        seed: seed of the resamples (int).
        what: the points, in words, for the text (str; e.g. ``"models"``).
        basis: what the points span, for the text (str; e.g. ``"1 seed"``; empty to leave out).
        min_points: fewest points for an interval (int).
    """
    rhos, _ = rank_correlations({"x": x}, y, n_bootstrap, seed, min_points=min_points)
    rho = rhos["x"]
    n = len(np.asarray(y))
    if n < min_points:
        text = f"ρ = {rho_text(rho)} over {n} {what}; {too_few_points(n, min_points)}"
    elif math.isnan(rho.mean):
        text = "the rank correlation is undefined (a variable is constant or not resolvable)"
    else:
        text = f"ρ = {rho_text(rho)}, 95 % bootstrap interval over the {n} {what}" + (f" of {basis}" if basis else "")
    return RelatedFinding(claim, verdict(rho, expected), rho, text)


def verdict_counts(findings) -> str:
    """``"2 hold, 1 contradicted, 4 inconclusive"`` over ``findings``."""
    states = [f.verdict for f in findings]
    return (f"{states.count(HOLDS)} hold{'s' if states.count(HOLDS) == 1 else ''}, "
            f"{states.count(CONTRADICTED)} contradicted, {states.count(INCONCLUSIVE)} inconclusive")


def proportion_difference(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                          level: float = LEVEL) -> SeedEstimate:
    """``p_a - p_b`` for two independent binomial proportions with an interval at ``level`` by the
    MOVER method (Newcombe 1998; Zou & Donner 2008) on the Clopper-Pearson intervals (l, u) of
    each: ``[d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2), d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2)]``.
    ``se`` is the half-width over the normal quantile (for display only).

    Args:
        successes_a: successes of proportion a (int >= 0).
        trials_a: trials of proportion a (int >= 1).
        successes_b: successes of proportion b (int >= 0).
        trials_b: trials of proportion b (int >= 1).
        level: the interval's confidence level (float in (0, 1)).
    """
    from scipy import stats

    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    l_a, u_a = metrics.clopper_pearson(successes_a, trials_a, level)
    l_b, u_b = metrics.clopper_pearson(successes_b, trials_b, level)
    d = p_a - p_b
    low = d - math.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    high = d + math.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    se = (high - low) / (2 * stats.norm.ppf(0.5 + level / 2))
    return SeedEstimate(d, low, high, se, (d,))
