"""Membership-inference metrics on a labelled evaluation set.

``is_member``: bool (or 0/1) tensor or array (N,); ``predicted``: bool (or 0/1) tensor or array (N,)
of the attack's guesses; ``scores``: float tensor or array (N,), higher = more likely a member.
Rates are fractions in [0, 1]; the book prints them as percentages.

Threshold-free metrics (:func:`roc_curve`, :func:`roc_auc`, :func:`tpr_at_fpr`) follow scikit-learn's
conventions (``roc_curve(is_member, scores, drop_intermediate=False)``, ``roc_auc_score``) and
Carlini et al. (2022) for the TPR at a low FPR: as in their LiRA reference code
(tensorflow/privacy ``research/mi_lira_2021/plot.py``, ``tpr[np.where(fpr < .001)[0][-1]]``), the
largest TPR among ROC points whose FPR is *strictly* below the target. A target FPR is only
resolvable when at least one false positive stays strictly below it (:func:`fpr_resolvable`:
1 / n_non-members < target); :func:`tpr_interval` and :func:`summarize` give NaN otherwise.
:func:`clopper_pearson` is the exact binomial interval of a TPR. :func:`epsilon_lower_bound` turns an
attack's ROC into the smallest differential-privacy epsilon consistent with it (an empirical lower
bound, to set beside an accountant's certified upper bound). :func:`summarize` adds
stratified bootstrap uncertainty to all the metrics.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F

__all__ = [
    "per_sample_loss", "inference_accuracy", "advantage", "true_and_false_positive_rates",
    "roc_curve", "roc_auc", "tpr_at_fpr", "fpr_resolvable", "clopper_pearson", "tpr_interval",
    "EpsilonBound", "epsilon_lower_bound", "epsilon_lower_bound_limit", "Estimate", "summarize", "SUMMARY_KEYS", "LOW_FPRS",
]


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in nats of each sample: logits (N, classes), labels (N,) -> (N,)."""
    return F.cross_entropy(logits.double(), labels, reduction="none")


# ---------------------------------------------------------------------------------------------
# Input validation
# ---------------------------------------------------------------------------------------------

def _to_numpy(x, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu()
        if x.is_floating_point() and x.dtype != torch.float64:
            x = x.double()  # bfloat16 / float16 have no numpy equivalent
        x = x.numpy()
    else:
        x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name}: must be 1-D, got shape {tuple(x.shape)}")
    if x.size == 0:
        raise ValueError(f"{name}: is empty")
    return x


def _binary(x, name: str) -> np.ndarray:
    x = _to_numpy(x, name)
    if x.dtype == bool:
        return x
    if not (np.issubdtype(x.dtype, np.number) and np.isin(x, (0, 1)).all()):
        raise ValueError(f"{name}: must be boolean or 0/1 (dtype {x.dtype})")
    return x.astype(bool)


def _scores(x) -> np.ndarray:
    x = _to_numpy(x, "scores")
    if not (np.issubdtype(x.dtype, np.number) or x.dtype == bool) or np.iscomplexobj(x):
        raise ValueError(f"scores: must be real numbers (dtype {x.dtype})")
    x = x.astype(np.float64)
    if np.isnan(x).any():
        raise ValueError(f"scores: contains {int(np.isnan(x).sum())} NaN value(s)")
    return x


def _check_membership(is_member: np.ndarray) -> None:
    n_members = int(is_member.sum())
    if n_members == 0 or n_members == is_member.size:
        what = "no members" if n_members == 0 else "no non-members"
        raise ValueError(f"is_member: needs both members and non-members ({what} among {is_member.size})")


def _same_length(**arrays: np.ndarray) -> None:
    lengths = {name: a.shape[0] for name, a in arrays.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError("different lengths: " + ", ".join(f"{k} has {v}" for k, v in lengths.items()))


def _validate_predictions(predicted, is_member) -> tuple[np.ndarray, np.ndarray]:
    predicted, is_member = _binary(predicted, "predicted"), _binary(is_member, "is_member")
    _same_length(predicted=predicted, is_member=is_member)
    _check_membership(is_member)
    return predicted, is_member


def _validate_scores(scores, is_member) -> tuple[np.ndarray, np.ndarray]:
    scores, is_member = _scores(scores), _binary(is_member, "is_member")
    _same_length(scores=scores, is_member=is_member)
    _check_membership(is_member)
    return scores, is_member


# ---------------------------------------------------------------------------------------------
# Metrics of hard guesses
# ---------------------------------------------------------------------------------------------

def inference_accuracy(predicted: torch.Tensor, is_member: torch.Tensor) -> float:
    """Fraction of correct membership guesses (the paper's Inf)."""
    predicted, is_member = _validate_predictions(predicted, is_member)
    return float(np.mean(predicted == is_member))


def advantage(predicted: torch.Tensor, is_member: torch.Tensor) -> float:
    """Yeom et al.'s advantage 2 x (Inf - 0.5), in [-1, 1]. On a balanced set this is TPR - FPR."""
    return 2.0 * (inference_accuracy(predicted, is_member) - 0.5)


def true_and_false_positive_rates(predicted: torch.Tensor, is_member: torch.Tensor) -> tuple[float, float]:
    """(TPR, FPR) of the guesses."""
    predicted, is_member = _validate_predictions(predicted, is_member)
    tpr = np.count_nonzero(predicted & is_member) / np.count_nonzero(is_member)
    fpr = np.count_nonzero(predicted & ~is_member) / np.count_nonzero(~is_member)
    return float(tpr), float(fpr)


def _precision(predicted: np.ndarray, is_member: np.ndarray) -> float:
    n_predicted = np.count_nonzero(predicted)
    return float(np.count_nonzero(predicted & is_member) / n_predicted) if n_predicted else 0.0


# ---------------------------------------------------------------------------------------------
# Threshold-free metrics of scores
# ---------------------------------------------------------------------------------------------

def _sorted_groups(scores: np.ndarray, is_member: np.ndarray):
    """Order by decreasing score and the index of the last element of each group of tied scores."""
    order = np.argsort(scores, kind="stable")[::-1]
    s = scores[order]
    # ``!=`` rather than ``np.diff``: inf - inf is NaN, which would split a group of tied infinities.
    ends = np.flatnonzero(np.r_[s[1:] != s[:-1], True])
    return order, s, ends


def roc_curve(scores, is_member) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of a score (higher = more likely a member): ``(fpr, tpr, thresholds)``.

    One point per distinct score (guess "member" when score >= threshold), in order of decreasing
    threshold, starting at (0, 0) with threshold +inf; the same arrays as scikit-learn's
    ``roc_curve(is_member, scores, drop_intermediate=False)``.
    """
    scores, is_member = _validate_scores(scores, is_member)
    order, s, ends = _sorted_groups(scores, is_member)
    tps = np.cumsum(is_member[order], dtype=np.int64)[ends]
    fps = (ends + 1) - tps
    fpr = np.r_[0.0, fps / fps[-1]]
    tpr = np.r_[0.0, tps / tps[-1]]
    thresholds = np.r_[np.inf, s[ends]]
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds.astype(np.float64)


def _trapezoid(fpr: np.ndarray, tpr: np.ndarray) -> float:
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2.0)


def roc_auc(scores, is_member) -> float:
    """Area under :func:`roc_curve` (trapezoid rule, so a tie counts one half): the probability that a
    random member scores above a random non-member. Equals scikit-learn's ``roc_auc_score``."""
    fpr, tpr, _ = roc_curve(scores, is_member)
    return _trapezoid(fpr, tpr)


def _check_target_fpr(fpr: float, name: str = "fpr") -> float:
    fpr = float(fpr)
    if not 0.0 < fpr <= 1.0:  # also rejects NaN
        raise ValueError(f"{name}: target false positive rate must be in (0, 1] "
                         f"(no ROC point has an FPR strictly below 0), got {fpr}")
    return fpr


def _tpr_below(fpr_curve: np.ndarray, tpr_curve: np.ndarray, target: float) -> float:
    # The curve starts at (0, 0) and target > 0, so the selection is never empty; the TPR does not
    # decrease along the curve, so the largest TPR is that of the last point below the target.
    return float(np.max(tpr_curve[fpr_curve < target]))


def tpr_at_fpr(scores, is_member, fpr: float) -> float:
    """Largest TPR among the points of :func:`roc_curve` whose FPR is strictly below ``fpr``
    (a fraction in (0, 1], e.g. 0.001): the true positive rate at a low false positive rate of
    Carlini et al. (2022), ``tpr[np.where(fpr_curve < fpr)[0][-1]]`` as in their reference code.

    A fraction in [0, 1]. This is the plain formula: with too few non-members for the target
    (see :func:`fpr_resolvable`) it is the TPR at zero false positives, not NaN.
    """
    target = _check_target_fpr(fpr)
    fpr_curve, tpr_curve, _ = roc_curve(scores, is_member)
    return _tpr_below(fpr_curve, tpr_curve, target)


def _check_count(n, name: str, minimum: int) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < minimum:
        raise ValueError(f"{name}: must be an integer >= {minimum}, got {n!r}")
    return int(n)


def fpr_resolvable(n_nonmembers: int, target: float) -> bool:
    """Whether an evaluation set with ``n_nonmembers`` non-members can resolve the target FPR
    ``target`` (a fraction in (0, 1]): True when one false positive is a rate strictly below
    it, 1 / n_nonmembers < target. With 2,000 non-members 0.1 % is resolvable; with 1,000 it
    is not (1 / 1000 is not < 0.001), and the TPR "at 0.1 % FPR" would be the TPR at zero
    false positives."""
    n_nonmembers = _check_count(n_nonmembers, "n_nonmembers", 1)
    target = _check_target_fpr(target, "target")
    return 1.0 / n_nonmembers < target


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 < level < 1.0:  # also rejects NaN
        raise ValueError(f"level: confidence level must be in (0, 1), got {level}")
    return level


def clopper_pearson(successes: int, trials: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) two-sided interval at confidence ``level`` for a binomial proportion
    observed as ``successes`` out of ``trials``: ``(low, high)``, fractions in [0, 1], from the
    beta quantiles; low = 0 when successes == 0 and high = 1 when successes == trials. The same
    as ``scipy.stats.binomtest(successes, trials).proportion_ci(level, method="exact")``."""
    trials = _check_count(trials, "trials", 1)
    successes = _check_count(successes, "successes", 0)
    if successes > trials:
        raise ValueError(f"successes: must be <= trials ({trials}), got {successes}")
    low, high = _clopper_pearson_bounds(np.array([successes]), trials, _check_level(level))
    return float(low[0]), float(high[0])


def _clopper_pearson_bounds(successes: np.ndarray, trials: int, level: float) -> tuple[np.ndarray, np.ndarray]:
    """:func:`clopper_pearson` of every count in ``successes`` (int array, each in 0..trials) out of
    ``trials``, without checks: ``(low, high)`` float64 arrays of the same shape."""
    from scipy.stats import beta

    successes = np.asarray(successes, dtype=np.float64)
    alpha = 1.0 - level
    low, high = np.zeros_like(successes), np.ones_like(successes)
    some, not_all = successes > 0, successes < trials
    low[some] = beta.ppf(alpha / 2, successes[some], trials - successes[some] + 1)
    high[not_all] = beta.ppf(1 - alpha / 2, successes[not_all] + 1, trials - successes[not_all])
    return low, high


def _tpr_interval(tpr: float, n_members: int, n_nonmembers: int, target: float,
                  level: float) -> tuple[float, float, float]:
    if not fpr_resolvable(n_nonmembers, target):
        return math.nan, math.nan, math.nan
    low, high = clopper_pearson(round(tpr * n_members), n_members, level)
    return tpr, low, high


def tpr_interval(scores, is_member, fpr: float, level: float = 0.95) -> tuple[float, float, float]:
    """``(tpr, low, high)``: :func:`tpr_at_fpr` at the target ``fpr`` (a fraction in (0, 1]) with its
    Clopper-Pearson interval at ``level`` (:func:`clopper_pearson` of round(tpr x n_members)
    successes out of n_members trials), all fractions in [0, 1]. The interval treats the ROC point
    (its threshold) as fixed and ignores the uncertainty of the FPR itself. ``(nan, nan, nan)``
    when the non-members cannot resolve ``fpr`` (:func:`fpr_resolvable`)."""
    target = _check_target_fpr(fpr)
    _check_level(level)
    scores, is_member = _validate_scores(scores, is_member)
    fpr_curve, tpr_curve, _ = roc_curve(scores, is_member)
    n_members = int(is_member.sum())
    return _tpr_interval(_tpr_below(fpr_curve, tpr_curve, target), n_members, is_member.size - n_members,
                         target, level)


# ---------------------------------------------------------------------------------------------
# Empirical lower bound on epsilon
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class EpsilonBound:
    """The result of :func:`epsilon_lower_bound`.

    ``epsilon``: the lower bound on epsilon (natural log scale, >= 0). ``threshold``: the ROC point
    where it was reached (guess "member" when score >= threshold; +inf guesses nobody).
    ``tpr`` / ``fpr``: the observed rates at that threshold (fractions). ``direction``: the DP
    inequality that gave the bound, ``"tpr/fpr"`` or ``"tnr/fnr"``. ``alpha``, ``delta``: as passed.
    When no threshold gives a positive bound, ``epsilon`` is 0.0 and the other fields describe the
    threshold whose (negative) bound came closest to zero.
    """

    epsilon: float
    threshold: float
    tpr: float
    fpr: float
    direction: str
    alpha: float
    delta: float


def _log_ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """log(numerator / denominator) elementwise; -inf where the numerator is not positive (the
    denominators passed here are always positive)."""
    out = np.full(numerator.shape, -np.inf)
    positive = numerator > 0
    out[positive] = np.log(numerator[positive] / denominator[positive])
    return out


def epsilon_lower_bound(scores, is_member, alpha: float = 0.05, delta: float = 0.0) -> EpsilonBound:
    """The smallest epsilon that an (epsilon, ``delta``)-DP training algorithm must have for this
    attack's ROC to be possible, with confidence about 1 - ``alpha``: an :class:`EpsilonBound`.

    ``scores``: float (N,), higher = more likely a member; ``is_member``: bool (N,). If training is
    (epsilon, delta)-DP, every membership test with true and false positive rates TPR and FPR obeys
    TPR <= e^epsilon FPR + delta and, for the complementary guess, TNR <= e^epsilon FNR + delta.
    At every threshold of :func:`roc_curve` (each distinct score, plus +inf) the rates are replaced
    by conservative Clopper-Pearson limits, and the bound is the largest of

        log((TPR_low - delta) / FPR_high)   and   log((TNR_low - delta) / FNR_high),

    with TNR_low = 1 - FPR_high and FNR_high = 1 - TPR_low (the exact interval of the
    complement is the complement of the interval), floored at 0. It is returned with the
    threshold, the observed TPR and FPR and the direction that gave it.

    Choices, following tensorflow/privacy's ``EpsilonLowerBound`` with
    ``BoundMethod.CLOPPER_PEARSON`` (``privacy_tests/epsilon_lower_bound.py``), which takes the
    method from Jagielski et al. (2020):

    * Confidence: each limit is one side of the two-sided 1 - ``alpha`` interval of
      :func:`clopper_pearson` (level = 1 - alpha), so TPR_low and FPR_high each miss with
      probability at most alpha / 2 and, for one fixed threshold, the ratio bound holds with
      probability at least 1 - alpha (a union bound). As there, ``alpha`` must lie in (0, 0.5).
    * Thresholds: every distinct score, as tensorflow/privacy enumerates them when no thresholds
      are given; both ratios (TPR / FPR and TNR / FNR) are taken at each. Its optional
      ``two_sided_threshold`` (also guessing "member" *below* a threshold) is not followed: the
      scores are already oriented; pass ``-scores`` for the other orientation.
    * No correction for taking the maximum over thresholds on the same samples, as there. The
      bound is therefore somewhat optimistic: it is not a simultaneous 1 - alpha bound over all
      thresholds. A threshold chosen on other data would remove this.
    * ``delta`` defaults to 0 (tensorflow/privacy's setting: the pure log ratio). A positive delta
      subtracts it from the numerators, as in Jagielski et al.'s (epsilon, delta) form.
    * Where tensorflow/privacy returns the (sorted) log ratios of all positive ratio bounds, this
      returns their maximum, floored at 0: epsilon is never negative.
    """
    scores, is_member = _validate_scores(scores, is_member)
    alpha, delta = float(alpha), float(delta)
    if not 0.0 < alpha < 0.5:  # also rejects NaN
        raise ValueError(f"alpha: must be in (0, 0.5), e.g. 0.05, got {alpha}")
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta: must be in [0, 1), got {delta}")
    n_members = int(is_member.sum())
    n_nonmembers = is_member.size - n_members
    order, s, ends = _sorted_groups(scores, is_member)
    tp_tail = np.cumsum(is_member[order], dtype=np.int64)[ends]
    tp = np.r_[0, tp_tail]
    fp = np.r_[0, (ends + 1) - tp_tail]
    thresholds = np.r_[np.inf, s[ends]]
    tpr_low, _ = _clopper_pearson_bounds(tp, n_members, 1.0 - alpha)
    _, fpr_high = _clopper_pearson_bounds(fp, n_nonmembers, 1.0 - alpha)
    bounds = np.stack([_log_ratio(tpr_low - delta, fpr_high),             # TPR <= e^eps FPR + delta
                       _log_ratio(1.0 - fpr_high - delta, 1.0 - tpr_low)])  # TNR <= e^eps FNR + delta
    direction, point = np.unravel_index(int(np.argmax(bounds)), bounds.shape)
    return EpsilonBound(epsilon=max(0.0, float(bounds[direction, point])), threshold=float(thresholds[point]),
                        tpr=float(tp[point] / n_members), fpr=float(fp[point] / n_nonmembers),
                        direction=("tpr/fpr", "tnr/fnr")[direction], alpha=alpha, delta=delta)


def epsilon_lower_bound_limit(n_members: int, n_nonmembers: int, alpha: float = 0.05, delta: float = 0.0) -> float:
    """The largest value :func:`epsilon_lower_bound` can return for an evaluation set of
    ``n_members`` members and ``n_nonmembers`` non-members: that of a perfect attack (all members
    above all non-members). The bound grows with TP and shrinks with FP, so its maximum sits at
    TP = n_members, FP = 0, where the exact limits have closed forms: with c1 = (alpha/2)^(1/n_members)
    and c0 = (alpha/2)^(1/n_nonmembers), the larger of log((c1 - delta) / (1 - c0)) and
    log((c0 - delta) / (1 - c1)), floored at 0. About log(n / 3.7) for n samples a side at
    alpha = 0.05: no attack can show a larger epsilon with so few samples."""
    n1, n0 = _check_count(n_members, "n_members", 1), _check_count(n_nonmembers, "n_nonmembers", 1)
    alpha, delta = float(alpha), float(delta)
    if not 0.0 < alpha < 0.5:
        raise ValueError(f"alpha: must be in (0, 0.5), e.g. 0.05, got {alpha}")
    if not 0.0 <= delta < 1.0:
        raise ValueError(f"delta: must be in [0, 1), got {delta}")
    c1, c0 = (alpha / 2) ** (1 / n1), (alpha / 2) ** (1 / n0)
    candidates = [math.log((a - delta) / (1 - b)) for a, b in ((c1, c0), (c0, c1)) if a > delta]
    return max([0.0, *candidates])


# ---------------------------------------------------------------------------------------------
# Bootstrap uncertainty
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Estimate:
    """A metric's value on the full set, its bootstrap standard error and 95 % percentile interval
    (fractions); for the TPR at a low FPR also ``exact``, the Clopper-Pearson interval
    ``(low, high)`` of :func:`tpr_interval` (None for the other metrics). All NaN when the
    evaluation set cannot resolve the metric (too few non-members for the target FPR).
    ``replicates``: the metric on each bootstrap resample (float array (n_bootstrap,)), or None.
    Resamples depend only on the bootstrap seed and the member and non-member counts, so two
    models scored on the same evaluation samples with the same seed share them: the replicates of
    a paired difference are the differences of the replicates."""

    value: float
    std: float
    low: float
    high: float
    exact: tuple[float, float] | None = None
    replicates: np.ndarray | None = field(default=None, repr=False, compare=False)

    @property
    def resolvable(self) -> bool:
        """False when the value is NaN: the evaluation set cannot resolve the metric."""
        return not math.isnan(self.value)

    def format(self, pct: bool = True, digits: int = 1, interval: bool = False, exact: bool = False) -> str:
        """``"8.1 ± 0.9"`` (in percent when ``pct``); with ``interval``, ``"8.1 ± 0.9 [6.4, 9.8]"``;
        with ``exact``, the value and its Clopper-Pearson interval ``"1.25 [0.84, 1.79]"`` instead.
        ``"not resolvable"`` when the value is NaN."""
        if not self.resolvable:
            return "not resolvable"
        k = 100.0 if pct else 1.0
        if exact:
            if self.exact is None:
                raise ValueError("exact: this estimate has no Clopper-Pearson interval")
            return f"{self.value * k:.{digits}f} [{self.exact[0] * k:.{digits}f}, {self.exact[1] * k:.{digits}f}]"
        text = f"{self.value * k:.{digits}f} ± {self.std * k:.{digits}f}"
        if interval:
            text += f" [{self.low * k:.{digits}f}, {self.high * k:.{digits}f}]"
        return text

    def __str__(self) -> str:
        return self.format()


#: The low false positive rates at which :func:`summarize` reports the TPR.
LOW_FPRS = {"tpr_at_0.1%_fpr": 0.001, "tpr_at_1%_fpr": 0.01}
SUMMARY_KEYS = ("accuracy", "advantage", "precision", "recall", "auc", *LOW_FPRS)

# Bootstrap replicates are processed in chunks of about this many (replicate, sample) cells.
_CHUNK_CELLS = 1 << 21


def _resample_counts(rng: np.random.Generator, n_replicates: int, n: int) -> np.ndarray:
    """(n_replicates, n) int64: how often each of n items is drawn in n draws with replacement."""
    draws = rng.integers(0, n, size=(n_replicates, n)) + (np.arange(n_replicates) * n)[:, None]
    return np.bincount(draws.ravel(), minlength=n_replicates * n).reshape(n_replicates, n)


def _bootstrap_replicates(scores, predicted, is_member, n_bootstrap, rng) -> dict[str, np.ndarray]:
    """All metrics of ``n_bootstrap`` stratified resamples, as arrays (n_bootstrap,).

    A resample with replacement is the original set with integer weights (how often each sample was
    drawn), members and non-members drawn separately so each replicate keeps the class counts. The
    samples are sorted by score once; every replicate's ROC curve is then the cumulative sum of its
    weights along that order, read at the ends of the groups of tied scores (a group absent from a
    replicate adds a zero-width step, which changes neither the area nor the TPR at an FPR). The TPR
    at a low FPR is the largest TPR among the points whose FPR is strictly below the target, as in
    :func:`tpr_at_fpr`.
    """
    members, non_members = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    n1, n0, n = members.size, non_members.size, is_member.size
    order, _, ends = _sorted_groups(scores, is_member)
    y_sorted = is_member[order]
    pred_members, pred_non_members = predicted[members].astype(np.int64), predicted[non_members].astype(np.int64)
    out = {key: np.empty(n_bootstrap) for key in SUMMARY_KEYS}
    chunk = max(1, _CHUNK_CELLS // n)
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        w1, w0 = _resample_counts(rng, b, n1), _resample_counts(rng, b, n0)
        rows = slice(start, start + b)
        # Hard guesses: weighted confusion counts.
        tp, fp = w1 @ pred_members, w0 @ pred_non_members
        accuracy = (tp + (n0 - fp)) / n
        out["accuracy"][rows] = accuracy
        out["advantage"][rows] = 2.0 * (accuracy - 0.5)
        out["precision"][rows] = np.divide(tp, tp + fp, out=np.zeros(b), where=(tp + fp) > 0)
        out["recall"][rows] = tp / n1
        # Scores: weights in decreasing-score order, cumulative counts at each distinct score.
        weights = np.empty((b, n), dtype=np.int64)
        weights[:, members], weights[:, non_members] = w1, w0
        del w1, w0
        weights = weights[:, order]
        tps = np.cumsum(np.where(y_sorted, weights, 0), axis=1)[:, ends]
        fps = np.cumsum(weights, axis=1)[:, ends] - tps
        del weights
        tpr = np.concatenate([np.zeros((b, 1)), tps / n1], axis=1)
        fpr = np.concatenate([np.zeros((b, 1)), fps / n0], axis=1)
        out["auc"][rows] = np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]), axis=1) / 2.0
        for key, target in LOW_FPRS.items():
            out[key][rows] = np.max(np.where(fpr < target, tpr, 0.0), axis=1)
    return out


def summarize(scores, predicted, is_member, n_bootstrap: int = 200, seed: int = 0) -> dict[str, Estimate]:
    """All metrics of an attack with stratified bootstrap uncertainty.

    ``scores`` (higher = more likely a member) give ``auc`` and ``tpr_at_0.1%_fpr`` /
    ``tpr_at_1%_fpr``; the hard guesses ``predicted`` give ``accuracy``, ``advantage``,
    ``precision`` (TP / (TP + FP), 0 when nothing is guessed member) and ``recall`` (= TPR).
    Each :class:`Estimate` has the value on the full set, the standard deviation over
    ``n_bootstrap`` resamples (members and non-members resampled separately with replacement,
    ``numpy.random.default_rng(seed)``, so the result is deterministic) and their 2.5 / 97.5 %
    percentiles. ``n_bootstrap=0`` gives std 0 and low = high = value.

    The TPR at a low FPR (:data:`LOW_FPRS`) is that of :func:`tpr_at_fpr` (FPR strictly below the
    target); its Estimate also has ``exact``, the 95 % Clopper-Pearson interval of
    :func:`tpr_interval`. When the set has too few non-members to resolve the target
    (:func:`fpr_resolvable`), value, std, low, high and ``exact`` are all NaN.

    Args:
        scores: real tensor or array (N,), higher = more likely a member; no NaN.
        predicted: bool (or 0/1) tensor or array (N,), the attack's hard guesses.
        is_member: bool (or 0/1) tensor or array (N,), the truth; both classes present.
        n_bootstrap: number of stratified bootstrap resamples (int >= 0).
        seed: seed of ``numpy.random.default_rng`` for the resamples (int).

    Returns:
        dict from each of :data:`SUMMARY_KEYS` to its :class:`Estimate` (fractions in [0, 1]).
    """
    scores, is_member = _validate_scores(scores, is_member)
    predicted = _binary(predicted, "predicted")
    _same_length(scores=scores, predicted=predicted, is_member=is_member)
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap: must be a non-negative integer, got {n_bootstrap!r}")
    n_bootstrap = int(n_bootstrap)

    tpr, _ = true_and_false_positive_rates(predicted, is_member)
    fpr_curve, tpr_curve, _ = roc_curve(scores, is_member)
    n_members = int(is_member.sum())
    n_nonmembers = is_member.size - n_members
    exact = {}
    for key, target in LOW_FPRS.items():
        _, low, high = _tpr_interval(_tpr_below(fpr_curve, tpr_curve, target), n_members, n_nonmembers, target, 0.95)
        exact[key] = (low, high)
    values = {
        "accuracy": inference_accuracy(predicted, is_member),
        "advantage": advantage(predicted, is_member),
        "precision": _precision(predicted, is_member),
        "recall": tpr,
        "auc": _trapezoid(fpr_curve, tpr_curve),
        **{key: _tpr_below(fpr_curve, tpr_curve, target) for key, target in LOW_FPRS.items()},
    }
    unresolvable = {key for key, target in LOW_FPRS.items() if not fpr_resolvable(n_nonmembers, target)}
    if n_bootstrap > 0:
        replicates = _bootstrap_replicates(scores, predicted, is_member, n_bootstrap, np.random.default_rng(seed))
    result = {}
    for key, value in values.items():
        if key in unresolvable:
            nan = math.nan
            result[key] = Estimate(nan, nan, nan, nan, exact=(nan, nan))
            continue
        if n_bootstrap == 0:
            std, low, high = 0.0, value, value
        else:
            reps = replicates[key]
            low, high = (float(q) for q in np.percentile(reps, [2.5, 97.5]))
            std = float(np.std(reps, ddof=1)) if n_bootstrap > 1 else 0.0
        result[key] = Estimate(value, std, low, high, exact=exact.get(key),
                               replicates=None if n_bootstrap == 0 else replicates[key])
    return result
