"""Evidence across seeds: intervals, paired differences, three-state verdicts and equivalence.

A *seed* here is one replicate of a whole experiment: the seed draws the membership split (who is
a member, which samples are evaluated) and the training (initialisation, batch order,
augmentation). Each seed gives a point estimate ``v_i`` of a metric and, from the stratified
bootstrap over its evaluation samples (:func:`mia_utils.attacks.metrics.summarize`), a within-seed
variance ``w_i``. :func:`combine_seeds` turns them into a mean and a 95 % interval.

**The model.** ``v_i = mu + b_i + e_i``: ``b_i`` the training and split noise of seed i (variance
``tau^2``), ``e_i`` the evaluation-sample noise (variance ``w_i``, known from the bootstrap). The
sample variance ``s^2`` of the ``v_i`` (ddof 1, ``d = n - 1`` degrees of freedom) estimates
``tau^2 + w``, so ``w-bar = mean(w_i)`` is a floor on it.

**Moderation** (Smyth 2004, in the form of limma's ``squeezeVar``). Over few seeds ``s^2`` is
itself very noisy (two degrees of freedom at three seeds). The settings of one metric in one
chapter share their noise sources, so their *inflation ratios* ``r = s^2 / w-bar`` (how much the
seed-to-seed spread exceeds the evaluation noise) are alike. :func:`fit_prior` fits a scaled
inverse-chi-square prior to the ratios of a family of comparisons (``d0`` degrees of freedom around
``r0``), and each comparison then uses

* ``s~^2 = max(w-bar, (d0 r0 w-bar + d s^2) / (d0 + d))`` and ``se^2 = s~^2 / n``;
* the interval ``m +- t_{0.975, d0 + d} se``.

``d0 = 0`` is the plain Student-t over seeds; ``d0 = inf`` uses ``r0 w-bar`` alone (normal
quantile). Without a prior (``prior=None``) the variance is ``max(s^2, w-bar)`` with ``n - 1``
degrees of freedom: three seeds that agree by chance cannot claim more precision than their
evaluation sets allow. With a single seed, ``se^2 = w_1`` and the normal quantile is used; such an
interval covers the evaluation samples only (:attr:`SeedEstimate.n_seeds` says so).

**Pairing.** A mechanism and the same seed's baseline share their split and evaluation samples,
and their bootstrap draws the same resamples, so the within-seed variance of their difference is
the variance of the replicates' differences (:func:`mia_utils.attacks.evaluation.paired_variance`),
passed as ``within`` to :func:`paired_difference`. The sum ``w_a + w_b`` is right only for
independent samples.

The rule's error rates are measured, not assumed: ``benchmarks/verdict_calibration.py`` simulates
it from the quick store's variance components (false decisions under the null, power at 2 and 3
points) and the setup page reports the table.

:func:`verdict` reads an interval against the direction a finding predicts: **holds** when the
interval excludes zero on the predicted side, **contradicted** when it excludes zero on the
other side, **inconclusive** otherwise. A claim of *no* change needs its own evidence:
:func:`equivalent` is the two one-sided tests (TOST) against a declared margin
(:data:`MARGINS`), i.e. the 90 % interval inside ``(-margin, +margin)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import special, stats

HOLDS, CONTRADICTED, INCONCLUSIVE = "holds", "contradicted", "inconclusive"
VERDICTS = (HOLDS, CONTRADICTED, INCONCLUSIVE)
DIRECTIONS = ("decrease", "increase")
LEVEL = 0.95

#: Equivalence margins (fractions, i.e. 0.01 = 1 percentage point): a change inside +-margin counts
#: as "no change" when its 90 % interval lies inside (TOST at 5 %). One home, with the reasons:
MARGINS = {
    "auc": 0.01,
    "adv_yeom": 0.01,
    "adv_yeom_objective": 0.01,
    "adv_salem": 0.01,
    "test_acc": 0.01,
}
MARGIN_REASONS = {
    "auc": "1 point of AUC is about a fifth of the quick baseline's distance from chance (AUC - 0.5) "
           "and below every AUC change the paper discusses",
    "adv_yeom": "the paper reports advantages to 1 point and calls 1 % Adv_Yeom an attack that fails "
                "(Section 6: 'about 1 %' at 0.25 <= sigma_DP <= 1)",
    "adv_yeom_objective": "as Adv_Yeom",
    "adv_salem": "as Adv_Yeom",
    "test_acc": "the paper's smallest reported accuracy cost is about 1 %",
}


@dataclass(frozen=True)
class SeedEstimate:
    """A metric over seeds: ``mean``, its 95 % interval [``low``, ``high``], the standard error
    ``se``, and the per-seed ``values``. Units are those of the inputs (fractions for rates)."""

    mean: float
    low: float
    high: float
    se: float
    values: tuple[float, ...]
    df: float = math.inf

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
        return SeedEstimate(self.mean, max(self.low, lowest), min(self.high, highest), self.se, self.values, self.df)

    def interval(self, level: float = LEVEL) -> tuple[float, float]:
        """The two-sided ``level`` interval ``mean +- t_{(1+level)/2, df} se`` (not cut to a range)."""
        if math.isnan(self.mean) or math.isnan(self.se):
            return (math.nan, math.nan)
        half = _quantile(level, self.df) * self.se
        return (self.mean - half, self.mean + half)

    def minimum_detectable(self, power: float = 0.8, level: float = LEVEL) -> float:
        """The smallest true effect (units of the estimate) that a two-sided ``level`` test with
        this standard error and degrees of freedom detects with probability ``power``:
        ``(t_{(1+level)/2} + t_{power}) se``."""
        if math.isnan(self.se):
            return math.nan
        df = self.df
        t = stats.norm if math.isinf(df) else stats.t(df)
        return float((t.ppf(0.5 + level / 2) + t.ppf(power)) * self.se)

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


def _quantile(level: float, df: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2) if math.isinf(df) else stats.t.ppf(0.5 + level / 2, df))


@dataclass(frozen=True)
class VariancePrior:
    """The prior that moderates a family's variances (see the module docstring): ``df`` (``d0``,
    >= 0, may be inf) degrees of freedom around the inflation ratio ``ratio`` (``r0``: seed-to-seed
    variance over within-seed variance), fitted on ``n_comparisons`` comparisons."""

    df: float
    ratio: float
    n_comparisons: int

    def variance(self, spread, floor, d):
        """The moderated variance ``max(floor, (d0 r0 floor + d spread) / (d0 + d))`` (``r0 floor``
        when ``d0`` is infinite) and its degrees of freedom ``d0 + d``: ``spread`` the sample
        variance over seeds (``d`` degrees of freedom), ``floor`` the mean within-seed variance.
        Floats or numpy arrays of one shape."""
        if math.isinf(self.df):
            return np.maximum(self.ratio * floor, floor), math.inf
        return np.maximum((self.df * self.ratio * floor + d * spread) / (self.df + d), floor), self.df + d

    def __str__(self) -> str:
        df = "inf" if math.isinf(self.df) else f"{self.df:.1f}"
        return f"d0 = {df}, r0 = {self.ratio:.2f} ({self.n_comparisons} comparisons)"


def _trigamma_inverse(x: float) -> float:
    """y with trigamma(y) = x (x > 0), by limma's Newton iteration."""
    if x > 1e7:
        return 1.0 / math.sqrt(x)
    if x < 1e-6:
        return 1.0 / x
    y = 0.5 + 1.0 / x
    for _ in range(50):
        tri = float(special.polygamma(1, y))
        step = tri * (1 - tri / x) / float(special.polygamma(2, y))
        y += step
        if -step / y < 1e-8:
            break
    return y


#: Fewest comparisons :func:`fit_prior` fits a prior on; with fewer it returns None (no pooling).
MIN_COMPARISONS = 3


def fit_prior(comparisons) -> VariancePrior | None:
    """Fit the family prior of :func:`combine_seeds` (limma's ``fitFDist``, by moments).

    Args:
        comparisons: iterable of ``(values, within_variances)`` pairs, one per comparison of the
            family (each (n,) per-seed values and their within-seed variances, as given to
            :func:`combine_seeds`). Comparisons with fewer than 2 seeds, NaN, no within-seed
            variance or no spread are skipped.

    Returns:
        the :class:`VariancePrior`, or None when fewer than :data:`MIN_COMPARISONS` remain.
    """
    ratios, dfs = [], []
    for values, within in comparisons:
        values, within = _floats(values, "values"), _floats(within, "within_variances")
        if values.size < 2 or np.isnan(values).any() or np.isnan(within).any():
            continue
        floor, spread = float(within.mean()), float(values.var(ddof=1))
        if floor <= 0 or spread <= 0:
            continue
        ratios.append(spread / floor)
        dfs.append(values.size - 1)
    return _prior_from_ratios(np.array(ratios), np.array(dfs, dtype=float))


def _prior_from_ratios(ratios: np.ndarray, dfs: np.ndarray) -> VariancePrior | None:
    """:func:`fit_prior` on the comparisons' inflation ratios (k,) and their degrees of freedom (k,)."""
    if len(ratios) < MIN_COMPARISONS:
        return None
    e = np.log(ratios) - special.digamma(dfs / 2) + np.log(dfs / 2)
    e_mean = float(e.mean())
    excess = float(e.var(ddof=1) - special.polygamma(1, dfs / 2).mean())
    if excess > 0:
        d0 = 2 * _trigamma_inverse(excess)
        ratio = math.exp(e_mean + special.digamma(d0 / 2) - math.log(d0 / 2))
    else:
        d0, ratio = math.inf, math.exp(e_mean)
    return VariancePrior(float(d0), float(ratio), len(ratios))


def combine_seeds(values, within_variances=None, level: float = LEVEL, prior: VariancePrior | None = None) -> SeedEstimate:
    """Mean and ``level`` interval of per-seed estimates ``values`` (n,), with the per-seed
    bootstrap variances ``within_variances`` (n,) (None: 0) as a floor, moderated by the family's
    ``prior`` when one is given; see the module docstring. NaN values (a metric a seed could not
    compute) give a NaN estimate."""
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
        variance, df = floor, math.inf
    elif prior is None or floor <= 0:
        variance, df = max(float(values.var(ddof=1)), floor), float(n - 1)
    else:
        variance, df = prior.variance(float(values.var(ddof=1)), floor, n - 1)
        variance = float(variance)
    se = math.sqrt(variance / n)
    quantile = _quantile(level, df)
    return SeedEstimate(mean, mean - quantile * se, mean + quantile * se, se, tuple(values.tolist()), df)


def paired_difference(a, b, a_variances=None, b_variances=None, level: float = LEVEL, within=None,
                      prior: VariancePrior | None = None) -> SeedEstimate:
    """``a - b`` seed by seed (both (n,), seed i of ``a`` paired with seed i of ``b``), combined
    with :func:`combine_seeds`.

    Args:
        a: per-seed estimates (n,) (array-like of floats; units of the metric, fractions for rates).
        b: the paired per-seed estimates (n,), same seeds in the same order as ``a``.
        a_variances: within-seed (bootstrap) variances of ``a`` (n,), or None for 0.
        b_variances: within-seed (bootstrap) variances of ``b`` (n,), or None for 0.
        level: confidence level of the interval (float in (0, 1); default 0.95).
        within: the within-seed variances of the differences themselves (n,), e.g. the paired
            bootstrap's (:func:`mia_utils.attacks.evaluation.paired_variance`); when given,
            ``a_variances`` and ``b_variances`` are not used. Without it the within-seed variance
            is ``a_var + b_var``, right for independent evaluation samples only.
        prior: the family's :class:`VariancePrior` (None: no moderation).
    """
    a, b = _floats(a, "a"), _floats(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a, b: paired estimates need the same seeds, got {a.size} and {b.size} values")
    if within is None and (a_variances is not None or b_variances is not None):
        within = (np.zeros_like(a) if a_variances is None else _floats(a_variances, "a_variances")) + \
                 (np.zeros_like(b) if b_variances is None else _floats(b_variances, "b_variances"))
    return combine_seeds(a - b, within, level, prior)


def independent_difference(a: SeedEstimate, b: SeedEstimate, level: float = LEVEL) -> SeedEstimate:
    """``a - b`` for two estimates made on different seeds (nothing shared): mean ``m_a - m_b``,
    ``se^2 = se_a^2 + se_b^2`` and Welch-Satterthwaite degrees of freedom
    ``se^4 / (se_a^4 / df_a + se_b^4 / df_b)``."""
    if any(math.isnan(x) for x in (a.mean, b.mean, a.se, b.se)):
        nan = float("nan")
        return SeedEstimate(nan, nan, nan, nan, ())
    se2 = a.se ** 2 + b.se ** 2
    parts = [x.se ** 4 / x.df for x in (a, b) if not math.isinf(x.df)]
    df = se2 ** 2 / sum(parts) if parts and sum(parts) > 0 else math.inf
    mean, se = a.mean - b.mean, math.sqrt(se2)
    half = _quantile(level, df) * se
    return SeedEstimate(mean, mean - half, mean + half, se, (), df)


def verdict(estimate: SeedEstimate, expected: str) -> str:
    """``holds`` / ``contradicted`` / ``inconclusive`` for a finding that predicts the quantity
    behind ``estimate`` to ``expected`` ("decrease": be below zero, "increase": above zero)."""
    if expected not in DIRECTIONS:
        raise ValueError(f"expected: must be one of {', '.join(DIRECTIONS)}, got {expected!r}")
    if math.isnan(estimate.mean) or not estimate.excludes_zero:
        return INCONCLUSIVE
    below = estimate.high < 0
    return HOLDS if below == (expected == "decrease") else CONTRADICTED


def equivalent(estimate: SeedEstimate, margin: float, alpha: float = 0.05) -> bool:
    """Two one-sided tests at ``alpha``: True when the ``1 - 2 alpha`` interval of ``estimate``
    lies inside ``(-margin, +margin)`` (units of the estimate; see :data:`MARGINS`)."""
    if not margin > 0:
        raise ValueError(f"margin: must be > 0, got {margin}")
    if not 0 < alpha < 0.5:
        raise ValueError(f"alpha: must be in (0, 0.5), got {alpha}")
    low, high = estimate.interval(1 - 2 * alpha)
    return bool(low > -margin and high < margin)


def combine_verdicts(states) -> str:
    """The verdict of a finding made of parts: **holds** when every part holds, **contradicted**
    when any part is contradicted, **inconclusive** otherwise (and for no parts)."""
    states = list(states)
    if states and all(s == HOLDS for s in states):
        return HOLDS
    if any(s == CONTRADICTED for s in states):
        return CONTRADICTED
    return INCONCLUSIVE


def relative_change(a, b, within=None, prior: VariancePrior | None = None, level: float = LEVEL) -> SeedEstimate:
    """The relative change ``(a - b) / b`` seed by seed (a fraction: -0.5 = halved), combined with
    :func:`combine_seeds`. Each seed's ratio carries its own baseline ``b_i``, so the baseline's
    seed-to-seed variation enters the interval; ``within`` should carry each ratio's within-seed
    variance (e.g. the paired bootstrap's, see :meth:`mia_utils.book.replicated.Setting.relative_change`),
    which adds the baseline's sampling noise. A seed with ``b_i <= 0`` gives NaN.

    Args:
        a: per-seed estimates (n,) (fractions).
        b: the paired per-seed baselines (n,), same seeds in the same order.
        within: within-seed variances of the ratios (n,), or None for 0.
        prior: the family's :class:`VariancePrior` (None: no moderation).
        level: confidence level (float in (0, 1)).
    """
    a, b = _floats(a, "a"), _floats(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a, b: paired estimates need the same seeds, got {a.size} and {b.size} values")
    ratios = np.where(b > 0, (a - b) / np.where(b > 0, b, 1.0), np.nan)
    return combine_seeds(ratios, within, level, prior)


def relative_text(relative: SeedEstimate, digits: int = 1) -> str:
    """A relative change (a fraction, as :func:`relative_change` gives) as "−62.0 % [−80.1, −43.9]"."""
    if math.isnan(relative.mean):
        return "n/a"
    return f"{relative.format(digits=digits, signed=True)} %"


def relative_change_text(change: SeedEstimate, baseline: SeedEstimate, digits: int = 1) -> str:
    """A change shown relative to a baseline estimated apart from it, "−62.0 % [−80.1, −43.9]",
    only when the baseline's interval excludes zero; otherwise the absolute change in points,
    marked "pp". The relative interval adds the baseline's uncertainty by the delta method,
    treating the two as independent: ``se_r^2 = se_c^2 / m_b^2 + m_c^2 se_b^2 / m_b^4``, with the
    change's degrees of freedom. Paired settings use :func:`relative_change` instead."""
    if math.isnan(change.mean):
        return "n/a"
    if baseline.excludes_zero and baseline.mean > 0:
        m_b, m_c = baseline.mean, change.mean
        se = math.sqrt(change.se ** 2 / m_b ** 2 + m_c ** 2 * baseline.se ** 2 / m_b ** 4)
        ratio = m_c / m_b
        half = _quantile(LEVEL, change.df) * se
        return relative_text(SeedEstimate(ratio, ratio - half, ratio + half, se, (), change.df), digits)
    return f"{change.format(digits=digits, signed=True)} pp"


# --- the rule's error rates, by simulation ---------------------------------------------------------

#: The rules :func:`simulate_rule` can measure: ``moderated`` (the book's rule), ``paired_floor``
#: (``max(s^2, paired w)``, Student-t with n - 1 df), ``plain_t`` (``s^2``, n - 1 df) and
#: ``unpaired_floor`` (``max(s^2, w_a + w_b)``, the book's rule before the pairing was kept).
RULES = ("moderated", "paired_floor", "plain_t", "unpaired_floor")


def simulate_rule(components, rule: str, n_seeds: int, effect: float = 0.0, replications: int = 2000,
                  n_bootstrap: int = 200, seed: int = 0) -> dict[str, float]:
    """Simulate a family of paired comparisons and apply ``rule`` to each: the rates at which its
    verdict (predicted direction: decrease) reads holds, contradicted and inconclusive.

    Each comparison j of ``components`` has a true seed-to-seed variance ``spread_j`` of its
    per-seed differences, of which ``paired_j`` is the evaluation-sample share. A replication draws
    for every comparison ``n_seeds`` differences ``N(-effect, spread_j)``, the bootstrap's estimate of
    each seed's paired variance (``paired_j * chi2(B - 1) / (B - 1)``, ``B = n_bootstrap``) and of the
    unpaired sum (scaled alike), then judges all comparisons, fitting the family prior first for
    the ``moderated`` rule.

    Args:
        components: iterable of mappings with ``spread``, ``paired`` and ``unpaired`` (variances,
            squared fractions; ``spread >= paired``), one per comparison of the family.
        rule: one of :data:`RULES`.
        n_seeds: seeds per comparison (int >= 2).
        effect: the true fall of every comparison (fraction; 0 = the null).
        replications: simulated families (int >= 1).
        n_bootstrap: bootstrap resamples behind each within-seed variance (int >= 2).
        seed: seed of the simulation's ``numpy.random.default_rng``.

    Returns:
        ``{"holds", "contradicted", "inconclusive"}`` rates (fractions over every comparison of
        every replication) and ``"decided"`` (= holds + contradicted).
    """
    if rule not in RULES:
        raise ValueError(f"rule: must be one of {', '.join(RULES)}, got {rule!r}")
    if n_seeds < 2:
        raise ValueError(f"n_seeds: must be >= 2, got {n_seeds}")
    components = list(components)
    if not components:
        raise ValueError("components: need at least one comparison")
    spread = np.array([c["spread"] for c in components], dtype=float)
    paired = np.array([c["paired"] for c in components], dtype=float)
    unpaired = np.array([c["unpaired"] for c in components], dtype=float)
    rng = np.random.default_rng(seed)
    counts = {HOLDS: 0, CONTRADICTED: 0, INCONCLUSIVE: 0}
    k = len(components)
    for _ in range(replications):
        values = rng.normal(-effect, np.sqrt(spread)[:, None], size=(k, n_seeds))
        noise = rng.chisquare(n_bootstrap - 1, size=(k, n_seeds)) / (n_bootstrap - 1)
        within = (unpaired if rule == "unpaired_floor" else paired)[:, None] * noise
        low, high = family_intervals(values, None if rule == "plain_t" else within, rule == "moderated")
        holds = high < 0
        contradicted = low > 0
        counts[HOLDS] += int(holds.sum())
        counts[CONTRADICTED] += int(contradicted.sum())
        counts[INCONCLUSIVE] += int(k - holds.sum() - contradicted.sum())
    total = replications * k
    rates = {state: counts[state] / total for state in VERDICTS}
    rates["decided"] = rates[HOLDS] + rates[CONTRADICTED]
    return rates


def family_intervals(values: np.ndarray, within: np.ndarray | None, moderate: bool,
                     level: float = LEVEL) -> tuple[np.ndarray, np.ndarray]:
    """:func:`combine_seeds` for a whole family at once (no NaN): ``values`` and ``within`` (k, n)
    per comparison and seed (``within`` None: 0), with the family prior fitted by
    :func:`fit_prior` when ``moderate``. Returns the intervals' lows and highs (k,)."""
    k, n = values.shape
    within = np.zeros_like(values) if within is None else within
    mean, spread, floor = values.mean(1), values.var(1, ddof=1), within.mean(1)
    prior = None
    if moderate:
        usable = (floor > 0) & (spread > 0)
        prior = _prior_from_ratios(spread[usable] / floor[usable], np.full(int(usable.sum()), n - 1.0))
    if prior is None:
        variance, df = np.maximum(spread, floor), np.full(k, n - 1.0)
    else:
        variance, df = prior.variance(spread, floor, n - 1)
        df = np.full(k, df)
        positive = floor > 0  # combine_seeds does not moderate a comparison without within-seed variance
        variance = np.where(positive, variance, spread)
        df = np.where(positive, df, n - 1.0)
    half = np.where(np.isinf(df), stats.norm.ppf(0.5 + level / 2),
                    stats.t.ppf(0.5 + level / 2, np.where(np.isinf(df), 1.0, df))) * np.sqrt(variance / n)
    return mean - half, mean + half
