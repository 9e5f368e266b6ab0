"""Evidence across seeds: intervals, paired differences and three-state verdicts.

A *seed* here is one replicate of a whole experiment: the seed draws the membership split (who is
a member, which samples are evaluated) and the training (initialisation, batch order,
augmentation). Each seed gives a point estimate ``v_i`` of a metric and, from the stratified
bootstrap over its evaluation samples (:func:`mia_utils.attacks.metrics.summarize`), a within-seed
variance ``w_i``. :func:`combine_seeds` turns them into a mean and a 95 % interval:

* mean ``m = (1/n) sum v_i``;
* variance of the mean ``se^2 = max(s^2, mean(w_i)) / n``, where ``s^2`` is the sample variance
  of the ``v_i`` (ddof 1). ``s^2`` already contains the evaluation-sample noise (each seed
  evaluates other samples) plus the training noise; the bootstrap variance is a floor, so three
  seeds that agree by chance cannot claim more precision than their evaluation sets allow;
* interval ``m +- t_{0.975, n-1} se`` (Student's t with n - 1 degrees of freedom). With a single
  seed, ``se^2 = w_1`` and the normal quantile 1.96 is used; such an interval covers the
  evaluation samples only, and :attr:`SeedEstimate.n_seeds` says so.

A paired difference (a mechanism against the baseline of the same seed, which shares its split
and evaluation samples) is :func:`combine_seeds` of the per-seed differences, with within-seed
variance ``w_a + w_b`` (conservative: it ignores the positive correlation of the pair).

:func:`verdict` reads an interval against the direction a finding predicts: **holds** when the
interval excludes zero on the predicted side, **contradicted** when it excludes zero on the
other side, **inconclusive** otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE)
DIRECTIONS = ("decrease", "increase")
LEVEL = 0.95


@dataclass(frozen=True)
class SeedEstimate:
    """A metric over seeds: ``mean``, its 95 % interval [``low``, ``high``], the standard error
    ``se``, and the per-seed ``values``. Units are those of the inputs (fractions for rates)."""

    mean: float
    low: float
    high: float
    se: float
    values: tuple[float, ...]

    @property
    def n_seeds(self) -> int:
        return len(self.values)

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2.0

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0

    def within(self, lowest: float, highest: float) -> "SeedEstimate":
        """This estimate with its interval cut to the range the quantity can take (a rate to
        [0, 1]): a Student-t interval over few seeds can reach past it. The mean, the standard
        error and the values are unchanged."""
        return SeedEstimate(self.mean, max(self.low, lowest), min(self.high, highest), self.se, self.values)

    def format(self, scale: float = 100.0, digits: int = 1, signed: bool = False) -> str:
        """``"12.3 [10.1, 14.5]"`` (times ``scale``: percent by default); ``"n/a"`` when NaN."""
        if math.isnan(self.mean):
            return "n/a"
        sign = "+" if signed else ""
        return (f"{self.mean * scale:{sign}.{digits}f} "
                f"[{self.low * scale:{sign}.{digits}f}, {self.high * scale:{sign}.{digits}f}]")

    def __str__(self) -> str:
        return self.format()


def _floats(values, name: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).ravel()
    if array.size == 0:
        raise ValueError(f"{name}: need at least one seed's value")
    return array


def combine_seeds(values, within_variances=None, level: float = LEVEL) -> SeedEstimate:
    """Mean and ``level`` interval of per-seed estimates ``values`` (n,), with the per-seed
    bootstrap variances ``within_variances`` (n,) (None: 0) as a floor; see the module docstring.
    NaN values (a metric a seed could not compute) give a NaN estimate."""
    values = _floats(values, "values")
    within = np.zeros_like(values) if within_variances is None else _floats(within_variances, "within_variances")
    if within.shape != values.shape:
        raise ValueError(f"within_variances: got {within.size} values for {values.size} seeds")
    if not 0 < level < 1:
        raise ValueError(f"level: must be in (0, 1), got {level}")
    if np.isnan(values).any() or np.isnan(within).any():
        nan = float("nan")
        return SeedEstimate(nan, nan, nan, nan, tuple(values.tolist()))
    if (within < 0).any():
        raise ValueError("within_variances: must be >= 0")
    n = values.size
    mean = float(values.mean())
    floor = float(within.mean())
    if n == 1:
        variance, quantile = floor, stats.norm.ppf(0.5 + level / 2)
    else:
        variance, quantile = max(float(values.var(ddof=1)), floor), stats.t.ppf(0.5 + level / 2, n - 1)
    se = math.sqrt(variance / n)
    return SeedEstimate(mean, mean - quantile * se, mean + quantile * se, se, tuple(values.tolist()))


def paired_difference(a, b, a_variances=None, b_variances=None, level: float = LEVEL) -> SeedEstimate:
    """``a - b`` seed by seed (both (n,), seed i of ``a`` paired with seed i of ``b``), combined
    with :func:`combine_seeds`; the within-seed variance of a difference is ``a_var + b_var``.

    Args:
        a: per-seed estimates (n,) (array-like of floats; units of the metric, fractions for rates).
        b: the paired per-seed estimates (n,), same seeds in the same order as ``a``.
        a_variances: within-seed (bootstrap) variances of ``a`` (n,), or None for 0.
        b_variances: within-seed (bootstrap) variances of ``b`` (n,), or None for 0.
        level: confidence level of the interval (float in (0, 1); default 0.95).
    """
    a, b = _floats(a, "a"), _floats(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a, b: paired estimates need the same seeds, got {a.size} and {b.size} values")
    within = None
    if a_variances is not None or b_variances is not None:
        within = (np.zeros_like(a) if a_variances is None else _floats(a_variances, "a_variances")) + \
                 (np.zeros_like(b) if b_variances is None else _floats(b_variances, "b_variances"))
    return combine_seeds(a - b, within, level)


def verdict(estimate: SeedEstimate, expected: str) -> str:
    """``holds`` / ``contradicted`` / ``inconclusive`` for a finding that predicts the quantity
    behind ``estimate`` to ``expected`` ("decrease": be below zero, "increase": above zero)."""
    if expected not in DIRECTIONS:
        raise ValueError(f"expected: must be one of {', '.join(DIRECTIONS)}, got {expected!r}")
    if math.isnan(estimate.mean) or not estimate.excludes_zero:
        return INCONCLUSIVE
    below = estimate.high < 0
    return HOLDS if below == (expected == "decrease") else CONTRADICTED


def combine_verdicts(states) -> str:
    """The verdict of a finding made of parts: **holds** when every part holds, **contradicted**
    when any part is contradicted, **inconclusive** otherwise (and for no parts)."""
    states = list(states)
    if states and all(s == HOLDS for s in states):
        return HOLDS
    if any(s == CONTRADICTED for s in states):
        return CONTRADICTED
    return INCONCLUSIVE


def relative_change_text(change: SeedEstimate, baseline: SeedEstimate, digits: int = 1) -> str:
    """A paired change shown relative to the baseline's mean, "−62.0 % [−80.1, −43.9]", only when
    the baseline's interval excludes zero; otherwise the absolute change in points, marked "pp"."""
    if math.isnan(change.mean):
        return "n/a"
    if baseline.excludes_zero and baseline.mean > 0:
        scale = 100.0 / baseline.mean
        return f"{change.format(scale=scale, digits=digits, signed=True)} %"
    return f"{change.format(digits=digits, signed=True)} pp"
