"""The paper's ten findings (F1-F10), each turned into a test on our own runs.

Each finding is a claim about a direction (a mechanism lowers an advantage, a gap stays positive,
one defense costs more accuracy than another). We measure the quantity behind the claim seed by
seed, as a paired difference where there is a natural pair (the same seed's baseline, or the
same seed's other mechanism, which share the membership split and the evaluation samples), and
read its 95 % interval with :func:`mia_utils.attacks.evidence.verdict`: **holds**, **contradicted** or
**inconclusive**. The functions here are the one home of that logic: the chapters print their
own findings with them and the findings page collects them all.

The inputs are the chapters' results: :class:`RegularizationResults` (chapter 02: the baseline
and every mechanism's grid over seeds, with the paper's Max / RAD<5% / RAD<15% selection made on
the seed means), the DP sweep (chapter 03), the combinations (chapter 04) and DtC gaps (chapter
05). Under the ``paper`` profile each dataset gets its own verdicts; Table 6's and Section 5's
claims are judged on CIFAR-100 when it is present (:func:`judged_dataset`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mia_utils.attacks.dtc import paired_gap_variance
from mia_utils.attacks.evidence import (
    HOLDS,
    INCONCLUSIVE,
    MARGINS,
    VERDICTS,
    SeedEstimate,
    VariancePrior,
    combine_seeds,
    combine_verdicts,
    equivalent,
    fit_prior,
    paired_difference,
    verdict,
)
from mia_utils.book import replicated, report
from mia_utils.book.profiles import SECTION5_EPOCHS
from mia_utils.book.replicated import Setting
from mia_utils.data import DATASETS, same_split

FINDING_CHAPTERS = {"F1": "02_regularization", "F2": "02_regularization", "F3": "02_regularization",
                    "F4": "02_regularization", "F5": "02_regularization", "F6": "03_differential_privacy",
                    "F7": "04_combinations", "F8": "05_distance_to_confident", "F9": "05_distance_to_confident",
                    "F10": "05_distance_to_confident"}
CONSISTENT = ("distillation", "random_crop")  # the paper's two most effective mechanisms


@dataclass(frozen=True)
class Finding:
    """One finding's verdict: ``id`` (F1..F10), the paper's ``claim`` and ``paper`` evidence
    (from ``findings.csv``), our ``verdict``, ``ours`` (the figure it rests on, with its 95 %
    interval, as text), the ``chapter`` that computes it, the ``dataset`` and a ``note``."""

    id: str
    claim: str
    verdict: str
    ours: str
    paper: str
    chapter: str
    dataset: str
    estimate: SeedEstimate | None = None
    note: str = ""

    def row(self) -> dict:
        """The finding as a table row; its note (a premise, a stricter reading, the smallest
        detectable effect) follows the figure."""
        ours = f"{self.ours}. {self.note}" if self.note else self.ours
        return {"finding": self.id, "claim": self.claim, "verdict": self.verdict, "ours (95 % interval)": ours,
                "paper": self.paper, "dataset": self.dataset, "chapter": self.chapter}


def _paper_row(finding_id: str) -> pd.Series:
    table = report.published("findings").set_index("id")
    return table.loc[finding_id]


def make_finding(finding_id: str, state: str, ours: str, dataset: str, estimate: SeedEstimate | None = None,
                 note: str = "") -> Finding:
    """A :class:`Finding` with the paper's claim and evidence read from the published
    ``findings`` table and the chapter from :data:`FINDING_CHAPTERS`.

    Args:
        finding_id: the finding's id, ``"F1"`` .. ``"F10"``.
        state: our verdict, one of :data:`mia_utils.attacks.evidence.VERDICTS` (``holds``,
            ``contradicted``, ``inconclusive``).
        ours: the figure the verdict rests on, with its 95 % interval, as text.
        dataset: the dataset's name the finding was judged on (e.g. ``"fmnist"``).
        estimate: the :class:`~mia_utils.attacks.evidence.SeedEstimate` behind the verdict, or None.
        note: a remark shown with the finding (str; empty for none).
    """
    paper = _paper_row(finding_id)
    return Finding(finding_id, paper["finding"], state, ours, paper["published_evidence"],
                   FINDING_CHAPTERS[finding_id], dataset, estimate, note)


def _replicate_matrix(setting: Setting, metric: str) -> np.ndarray | None:
    """Per seed, the bootstrap replicates of ``metric`` (n_seeds, n_bootstrap), or None when a seed
    has none or the seeds' resamples differ in number."""
    rows = [e[metric].get("replicates") for e in setting.evaluations]
    if any(r is None for r in rows) or len({len(r) for r in rows}) != 1:
        return None
    return np.asarray(rows, dtype=float)


def group_contrast(a: list[Setting], b: list[Setting], metric: str) -> SeedEstimate:
    """Mean of ``metric`` over ``a`` minus the mean over ``b``, seed by seed (over the seeds of
    ``a``), with its interval. The within-seed variance is the paired bootstrap's (every setting
    of a seed shares its evaluation samples and resamples: the variance over resamples of the
    contrast of the replicates), or, where replicates are missing, the settings' variances summed
    as if independent (sum / k^2 per group). The prior is the family's (:meth:`Setting.prior`)."""
    seeds = a[0].seeds
    a = [setting.on_seeds(seeds) for setting in a]
    b = [setting.on_seeds(seeds) for setting in b]
    a_values = np.mean([s.values(metric) for s in a], axis=0)
    b_values = np.mean([s.values(metric) for s in b], axis=0)
    fingerprints = {tuple(e.get("resamples", {}).get("value") for e in s.evaluations) for s in a + b}
    matrices = [_replicate_matrix(s, metric) for s in a + b]
    if len(fingerprints) == 1 and None not in next(iter(fingerprints)) and all(m is not None for m in matrices) \
            and len({m.shape for m in matrices}) == 1:
        contrast = np.mean(matrices[:len(a)], axis=0) - np.mean(matrices[len(a):], axis=0)
        within = contrast.var(axis=1, ddof=1)
    else:
        within = (np.sum([s.variances(metric) for s in a], axis=0) / len(a) ** 2
                  + np.sum([s.variances(metric) for s in b], axis=0) / len(b) ** 2)
    return paired_difference(a_values, b_values, within=within, prior=a[0].prior(metric, *a[1:], *b))


def pct(estimate: SeedEstimate, signed: bool = True, digits: int = 1) -> str:
    """An estimate of a fraction as percentage points with its interval."""
    return f"{estimate.format(digits=digits, signed=signed)} pp"


# --- chapter 02: regularization --------------------------------------------------------------------

@dataclass
class RegularizationResults:
    """Chapter 02's evidence for one dataset: the ``baseline`` and every (mechanism, value)
    ``settings`` over ``seeds``; ``scenarios``: :func:`mia_utils.book.report.select_scenarios` on the
    seed means (one row per mechanism and scenario)."""

    dataset: str
    seeds: tuple[int, ...]
    baseline: Setting
    settings: list[Setting]
    scenarios: pd.DataFrame
    confirmed: list[Setting] = field(default_factory=list)

    def chosen(self, mechanism: str, scenario: str) -> Setting | None:
        """The setting the paper's selection picks for ``mechanism`` in ``scenario``, or None."""
        rows = self.scenarios[(self.scenarios["mechanism"] == mechanism) & (self.scenarios["scenario"] == scenario)]
        if not len(rows):
            return None
        return replicated.find(self.settings, mechanism, rows["value"].iloc[0])

    def picks(self, scenario: str, mechanisms=None) -> list[Setting]:
        """The settings the selection picks at ``scenario`` (on the selection seeds), in order."""
        names = mechanisms or list(dict.fromkeys(self.scenarios["mechanism"]))
        return [s for s in (self.chosen(m, scenario) for m in names) if s is not None]

    def judged(self, mechanism: str, scenario: str) -> Setting | None:
        """The pick of ``mechanism`` at ``scenario`` as verdicts read it: the same setting trained on
        the confirmation seeds (:func:`confirmation_seed_list`), which did not choose it, so its
        estimate carries no selection bias; the selection seeds' setting when it was not confirmed."""
        chosen = self.chosen(mechanism, scenario)
        if chosen is None:
            return None
        for setting in self.confirmed:
            if setting.mechanism == chosen.mechanism and setting.value == chosen.value:
                return setting
        return chosen

    def judged_picks(self, scenario: str, mechanisms=None) -> list[Setting]:
        """:meth:`judged` for each mechanism (default: every one the selection saw) at ``scenario``."""
        names = mechanisms or list(dict.fromkeys(self.scenarios["mechanism"]))
        return [s for s in (self.judged(m, scenario) for m in names) if s is not None]

    @property
    def trained(self) -> int:
        return replicated.trained_count(self.baseline, self.settings, self.confirmed)


def confirmation_seed_list(seeds) -> tuple[int, ...]:
    """The seeds on which the selection's picks are confirmed: as many as ``seeds``, right after
    them (seeds 0-2 choose, seeds 3-5 confirm). The baseline is trained on both
    (:func:`mia_utils.book.replicated.baseline_seed_list`)."""
    seeds = tuple(seeds)
    start = max(seeds) + 1
    return tuple(range(start, start + len(seeds)))


def confirmation_specs(reg: RegularizationResults) -> list[tuple[str, float]]:
    """Every distinct (mechanism, value) the selection picks in any scenario, in table order: what
    the confirmation seeds train (early stopping's picks are snapshots of the baseline's runs)."""
    return list(dict.fromkeys((row["mechanism"], row["value"]) for _, row in reg.scenarios.iterrows()))


def regularization_results(profile, dataset: str, seeds, store=None, mechanisms=None,
                           confirm: bool = True) -> RegularizationResults:
    """Train or read back chapter 02's sweep over ``seeds``, make the paper's selection on their
    means, and (``confirm``) train or read back every pick on the confirmation seeds.

    Selection bias: a Max / RAD pick is the best of its grid on the seeds that chose it, so its
    estimate on those seeds is biased towards the selection's goal. Verdicts therefore read the
    picks on :func:`confirmation_seed_list` (:meth:`RegularizationResults.judged`); the selection
    seeds' values remain for the comparison with the paper's tables, which made the same choice.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        dataset: the dataset's name, one of the profile's.
        seeds: the seeds (iterable of int) of every setting (the baseline may get more, see
            :func:`mia_utils.book.replicated.baseline_seed_list`).
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        mechanisms: the mechanisms to sweep (iterable of str), or None for
            :data:`mia_utils.book.chapters.PAPER_MECHANISMS`.
        confirm: train (or read back) the picks on the confirmation seeds (bool; with a single
            seed there is nothing to confirm on and this is ignored).
    """
    from dataclasses import replace

    from mia_utils.book.chapters import PAPER_MECHANISMS

    baseline, settings = replicated.regularization_sweep(profile, dataset, mechanisms or PAPER_MECHANISMS,
                                                     tuple(seeds), store)
    settings = replicated.moderate(baseline, settings)
    scenarios = report.select_scenarios(replicated.means_frame(settings), replicated.means_frame([baseline]).iloc[0])
    reg = RegularizationResults(dataset, tuple(seeds), baseline, settings, scenarios)
    if confirm and len(reg.seeds) >= profile.seeds and len(reg.seeds) > 1:
        again = confirmation_seed_list(reg.seeds)
        priors = settings[0].priors if settings else {}  # the grid's family: one metric, one chapter
        reg.confirmed = [replace(replicated.run_setting(profile, dataset, mechanism, value, again, store), priors=priors)
                         for mechanism, value in confirmation_specs(reg)]
    return reg


def f1_max_scenario(reg: RegularizationResults) -> Finding:
    """F1, both halves of the claim: tuned for accuracy alone (Max), (a) distillation and cropping
    lower Adv_Yeom (their mean change against the baseline, seed by seed, predicted below zero)
    and (b) the other mechanisms lower it less (the mean Adv_Yeom of {distillation, cropping} at
    Max minus that of the others at Max, seed by seed, predicted below zero). Holds when both
    halves hold; contradicted when either is contradicted."""
    consistent = reg.judged_picks("max", CONSISTENT)
    others = [s for s in reg.judged_picks("max") if s.mechanism not in CONSISTENT]
    if not consistent or not others:
        return make_finding("F1", INCONCLUSIVE, "not enough mechanisms at Max", reg.dataset)
    cons_change = group_contrast(consistent, [reg.baseline], "adv_yeom")
    other_change = group_contrast(others, [reg.baseline], "adv_yeom")
    contrast = group_contrast(consistent, others, "adv_yeom")
    state = combine_verdicts([verdict(cons_change, "decrease"), verdict(contrast, "decrease")])
    text = (f"Max ΔAdv_Yeom: distillation & cropping {pct(cons_change)} ({verdict(cons_change, 'decrease')}), "
            f"the others {pct(other_change)}; difference {pct(contrast)} ({verdict(contrast, 'decrease')})")
    return make_finding("F1", state, text, reg.dataset, contrast)


#: F2's scenarios and attacks, as the paper averages them (Section 4.1, "Mechanism Consistency").
F2_SCENARIOS = ("rad5", "rad15")
F2_METRICS = {"adv_yeom": "Adv_Yeom", "adv_salem": "Adv_Salem"}


def f2_parts(reg: RegularizationResults) -> list[tuple[str, str, SeedEstimate]]:
    """F2's contrasts: for each scenario of :data:`F2_SCENARIOS` and attack of :data:`F2_METRICS`,
    the mean advantage of {distillation, cropping} at their picks minus the mean over the other
    mechanisms' picks, seed by seed (the baseline cancels), as ``(scenario, metric, estimate)``.
    A scenario where either group has no pick is left out."""
    parts = []
    for scenario in F2_SCENARIOS:
        consistent = reg.judged_picks(scenario, CONSISTENT)
        others = [s for s in reg.judged_picks(scenario) if s.mechanism not in CONSISTENT]
        if consistent and others:
            parts += [(scenario, metric, group_contrast(consistent, others, metric)) for metric in F2_METRICS]
    return parts


def f2_single_best(reg: RegularizationResults, scenario: str = "rad5") -> tuple[Setting, Setting, SeedEstimate] | None:
    """F2's stricter reading: the better of distillation and cropping at ``scenario`` against the
    single best other mechanism there (each the lowest seed-mean Adv_Yeom), Adv_Yeom difference
    seed by seed; None when a group has no pick. A best-of choice read on the seeds that chose it
    favours the side with more candidates (the others), so it is biased against the paper."""
    consistent = reg.picks(scenario, CONSISTENT)
    others = [s for s in reg.picks(scenario) if s.mechanism not in CONSISTENT]
    if not consistent or not others:
        return None
    best_consistent = min(consistent, key=lambda s: s.mean("adv_yeom"))
    best_other = min(others, key=lambda s: s.mean("adv_yeom"))
    best_consistent = reg.judged(best_consistent.mechanism, scenario)  # chosen above, judged on other seeds
    best_other = reg.judged(best_other.mechanism, scenario)
    return best_consistent, best_other, best_consistent.change(best_other, "adv_yeom")


def f2_most_effective(reg: RegularizationResults) -> Finding:
    """F2: distillation and cropping are the most effective mechanisms, read as the paper averages:
    at RAD<5% and RAD<15%, for Adv_Yeom and Adv_Salem, the mean advantage of the two minus the mean
    of the others (:func:`f2_parts`), each predicted below zero. Holds when every part holds. The
    single-best comparison (:func:`f2_single_best`) is shown beside it as a stricter reading. The
    picks are judged on the confirmation seeds (:meth:`RegularizationResults.judged`)."""
    parts = f2_parts(reg)
    if not parts:
        return make_finding("F2", INCONCLUSIVE, "no RAD<5% or RAD<15% picks for both groups", reg.dataset)
    states = [verdict(estimate, "decrease") for _, _, estimate in parts]
    text = "; ".join(f"{report.SCENARIO_TITLES[scenario]} {F2_METRICS[metric]} {pct(estimate)} ({state})"
                     for (scenario, metric, estimate), state in zip(parts, states))
    text = f"distillation & cropping minus the others: {text}"
    strict = f2_single_best(reg)
    note = ""
    if strict is not None:
        best, other, difference = strict
        note = (f"Stricter reading (single best, RAD<5%, Adv_Yeom): {best.label} minus {other.label} "
                f"{pct(difference)}, {verdict(difference, 'decrease')}")
    return make_finding("F2", combine_verdicts(states), text, reg.dataset, parts[0][2], note)


def paper_effect_points(dataset: str, mechanism: str, scenario: str, metric: str = "adv_salem") -> float:
    """The paper's change of ``metric`` for ``mechanism`` at ``scenario`` on ``dataset`` in
    absolute points: its Tables 3-5's relative change times its Table 2 baseline (NaN when the
    paper does not report the cell)."""
    column = {"adv_salem": "d_adv_salem_pct", "adv_yeom": "d_adv_yeom_pct", "test_acc": "d_acc_pct"}[metric]
    baseline_column = {"adv_salem": "adv_salem_pct", "adv_yeom": "adv_yeom_pct", "test_acc": "acc_pct"}[metric]
    cells = report.published("tables3to5_regularization")
    cell = cells[(cells["dataset"] == dataset) & (cells["mechanism"] == mechanism) & (cells["scenario"] == scenario)]
    baselines = report.published("table2_baselines").set_index("dataset")
    if not len(cell) or dataset not in baselines.index:
        return float("nan")
    return float(cell[column].iloc[0]) / 100 * float(baselines.loc[dataset, baseline_column])


def _salem_increase(reg: RegularizationResults, finding_id: str, mechanism: str) -> Finding:
    """Adv_Salem of ``mechanism`` at Max minus the baseline's, predicted above zero, with the
    smallest effect our interval resolves (80 % power) beside the paper's effect on this dataset."""
    chosen = reg.judged(mechanism, "max")
    if chosen is None:
        return make_finding(finding_id, INCONCLUSIVE, f"{mechanism} was not swept", reg.dataset)
    change = chosen.change(reg.baseline, "adv_salem")
    text = (f"{chosen.label} (Max): ΔAdv_Salem {pct(change)} "
            f"({report_relative(chosen, reg.baseline)})")
    paper = paper_effect_points(reg.dataset, mechanism, "max")
    detectable = change.minimum_detectable()
    note = f"The smallest rise these seeds resolve (80 % power) is {100 * detectable:.1f} pp."
    if not np.isnan(paper):
        note += f" The paper's rise on this dataset is {paper:+.1f} pp"
        note += (", below what this sample can resolve, so an inconclusive verdict here says nothing against it."
                 if abs(paper) / 100 < detectable else ".")
    return make_finding(finding_id, verdict(change, "increase"), text, reg.dataset, change, note)


def report_relative(setting: Setting, baseline: Setting, metric: str = "adv_salem") -> str:
    """``setting``'s change of ``metric`` relative to ``baseline`` (per-seed ratios), or why not."""
    text = setting.change_text(baseline, metric)
    return text if text.endswith("%") else "relative change not shown: the baseline's interval includes 0"


def f3_label_smoothing_salem(reg: RegularizationResults) -> Finding:
    """F3: label smoothing at its most accurate setting (Max) raises Adv_Salem over the baseline."""
    return _salem_increase(reg, "F3", "label_smoothing")


def f4_weight_decay_salem(reg: RegularizationResults) -> Finding:
    """F4: weight decay at its most accurate setting (Max) raises Adv_Salem over the baseline. The
    "up to +35 %" of the paper's summary is CIFAR-10's (Table 4), which only the paper profile
    measures; on Fashion-MNIST the paper's rise is far smaller (see the finding's note)."""
    finding = _salem_increase(reg, "F4", "weight_decay")
    if reg.dataset == "cifar10":
        return finding
    note = (f"{finding.note} The paper's 'up to +35 %' is CIFAR-10's (Table 4), measured by the paper "
            f"profile.").strip()
    return Finding(finding.id, finding.claim, finding.verdict, finding.ours, finding.paper, finding.chapter,
                   finding.dataset, finding.estimate, note)


def f5_stronger_regularization(reg: RegularizationResults) -> Finding:
    """F5: moving a mechanism from Max to RAD<15% lowers both Adv_Yeom and accuracy. Quantities:
    over the mechanisms whose RAD<15% pick differs from their Max pick (those whose picks
    coincide would add zeros), the mean of (RAD<15% minus Max), seed by seed, for Adv_Yeom and
    for test accuracy; both predicted below zero. (The second half, easier mitigation on simpler
    tasks, needs several datasets: it is compared only under the paper profile.)"""
    names = [m for m in dict.fromkeys(reg.scenarios["mechanism"])
             if reg.chosen(m, "rad15") is not None and reg.chosen(m, "max") is not None
             and reg.chosen(m, "rad15").value != reg.chosen(m, "max").value]
    if not names:
        return make_finding("F5", INCONCLUSIVE, "no mechanism has distinct Max and RAD<15% settings", reg.dataset)
    strong, weak = [reg.judged(m, "rad15") for m in names], [reg.judged(m, "max") for m in names]
    adv = group_contrast(strong, weak, "adv_yeom")
    acc = group_contrast(strong, weak, "test_acc")
    state = combine_verdicts([verdict(adv, "decrease"), verdict(acc, "decrease")])
    text = (f"RAD<15% minus Max, mean over the {len(names)} mechanisms whose picks differ: "
            f"Adv_Yeom {pct(adv)}, accuracy {pct(acc)}")
    return make_finding("F5", state, text, reg.dataset, adv)


def regularization_findings(reg: RegularizationResults) -> list[Finding]:
    return [f1_max_scenario(reg), f2_most_effective(reg), f3_label_smoothing_salem(reg),
            f4_weight_decay_salem(reg), f5_stronger_regularization(reg)]


# --- chapter 03: DP-SGD ----------------------------------------------------------------------------

def dp_settings(profile, dataset: str, seeds, store=None) -> list[Setting]:
    """The DP-SGD grid of the profile over ``seeds``, moderated as one family against the
    baseline (:func:`mia_utils.book.replicated.moderate`)."""
    settings = replicated.mechanism_sweep(profile, dataset, "dp_sgd", tuple(seeds), store)
    return replicated.moderate(replicated.run_baseline(profile, dataset, tuple(seeds), store), settings)


def f6_dp_costs_more(reg: RegularizationResults, dp: list[Setting]) -> Finding:
    """F6: for the protection of the best regularizer at RAD<15% (lowest mean Adv_Yeom on the
    selection seeds), DP-SGD costs more accuracy. The DP setting compared is the weakest noise whose
    mean Adv_Yeom is at most the regularizer's (the strongest noise if none is). Quantity: DP's
    accuracy change against the baseline minus the regularizer's, each paired with the baseline on
    its own seeds (the regularizer judged on the confirmation seeds), combined as independent
    estimates (:func:`mia_utils.attacks.evidence.independent_difference`). Predicted: below zero."""
    from mia_utils.attacks.evidence import independent_difference

    picks = reg.picks("rad15")
    if not picks or not dp:
        return make_finding("F6", INCONCLUSIVE, "no RAD<15% regularizer or no DP run", reg.dataset)
    best = min(picks, key=lambda s: s.mean("adv_yeom"))
    ordered = sorted(dp, key=lambda s: s.value)
    matching = [s for s in ordered if s.mean("adv_yeom") <= best.mean("adv_yeom")]
    chosen = matching[0] if matching else ordered[-1]
    judged = reg.judged(best.mechanism, "rad15")
    difference = independent_difference(chosen.change(reg.baseline, "test_acc"), judged.change(reg.baseline, "test_acc"))
    epsilons = [f.get("dp_epsilon", float("nan")) for f in chosen.facts]
    epsilon = float(np.mean(epsilons)) if epsilons else float("nan")
    text = (f"{best.label}: Adv_Yeom {pct(best.estimate('adv_yeom'), signed=False)}; "
            f"σ_DP = {chosen.value:g} (ε ≈ {epsilon:.3g}): Adv_Yeom {pct(chosen.estimate('adv_yeom'), signed=False)}; "
            f"accuracy cost, DP minus regularizer {pct(difference)}")
    note = "" if matching else "no DP setting reached the regularizer's protection; the strongest noise is compared"
    return make_finding("F6", verdict(difference, "decrease"), text, reg.dataset, difference, note)


# --- the rule's measured error rates ----------------------------------------------------------------

#: The metrics whose verdicts the findings page calibrates, and their names on the page.
CALIBRATED_METRICS = {"adv_yeom": "Adv_Yeom", "auc": "AUC", "adv_salem": "Adv_Salem", "test_acc": "test accuracy"}


def variance_families(reg: RegularizationResults, dp: list[Setting], metric: str, combos=()) -> list[dict]:
    """The variance components of ``metric``'s paired changes against the baseline, one row per
    comparison of chapter 02's grid (family "regularization"), chapter 03's DP grid ("DP-SGD") and
    each of chapter 04's :class:`Combinations` in ``combos`` (its pairs and early stops, family
    "combinations: <base>"): :func:`mia_utils.book.replicated.variance_components`' columns plus
    ``family``, ``prior`` (the family's, as text) and ``truth``, the comparison's moderated
    seed-to-seed variance (its own ``s^2`` combined with the family prior, at least its paired
    within-seed variance): what :func:`rule_error_rates` simulates."""
    rows = []
    families = [("regularization", reg.settings), ("DP-SGD", dp)]
    families += [(f"combinations: {c.base}", [*c.pairs.values(), *c.early.values()]) for c in combos if c is not None]
    for name, family in families:
        if not family:
            continue
        prior = family[0].priors.get(metric)
        for row in replicated.variance_components(reg.baseline, family, [metric]).to_dict("records"):
            if not row["paired"] > 0 or not np.isfinite(row["spread"]):
                continue
            moderated = row["spread"] if prior is None else prior.variance(row["spread"], row["paired"], row["n"] - 1)[0]
            rows.append({**row, "family": name, "prior": str(prior) if prior else "none",
                         "truth": float(max(moderated, row["paired"]))})
    return rows


def rule_error_rates(rows: list[dict], rule: str = "moderated", seed_counts=(3, 5, 8), effects=(0.02, 0.03),
                     replications: int = 500, truth: str = "fitted") -> dict:
    """Simulate ``rule`` (:func:`mia_utils.attacks.evidence.simulate_rule`) on the comparisons of
    ``rows`` (:func:`variance_families`), family by family, pooled over comparisons.

    Args:
        rows: the comparisons' components (list of dict).
        rule: one of :data:`mia_utils.attacks.evidence.RULES`.
        seed_counts: the numbers of seeds to simulate (iterable of int >= 2).
        effects: true falls (fractions) at which to measure the power.
        replications: simulated families per cell (int >= 1).
        truth: ``"fitted"`` (each comparison's moderated variance) or ``"raw"`` (its own ``s^2``).

    Returns:
        ``{("null", n): rate of holds + contradicted with no effect, ("power", effect, n): rate of
        holds with a true fall of ``effect``}``, fractions.
    """
    from mia_utils.attacks.evidence import simulate_rule

    if truth not in ("fitted", "raw"):
        raise ValueError(f"truth: must be 'fitted' or 'raw', got {truth!r}")
    families = {}
    for row in rows:
        spread = row["truth"] if truth == "fitted" else max(row["spread"], row["paired"])
        families.setdefault(row["family"], []).append({"spread": spread, "paired": row["paired"],
                                                        "unpaired": row["unpaired"]})
    out = {}
    for n in seed_counts:
        for key, effect, state in [(("null", n), 0.0, "decided")] + [(("power", e, n), e, HOLDS) for e in effects]:
            total = sum(simulate_rule(f, rule, n, effect, replications, seed=n)[state] * len(f) for f in families.values())
            out[key] = total / max(1, sum(len(f) for f in families.values()))
    return out


def rule_error_table(reg: RegularizationResults, dp: list[Setting], n_seeds: int, replications: int = 500,
                     combos=()) -> pd.DataFrame:
    """The findings page's table of the book's rule on this store: for each metric of
    :data:`CALIBRATED_METRICS`, the simulated rate of wrong decisions under the null and the power
    against a true fall of 2 and 3 points, at ``n_seeds`` seeds (percent, one decimal), over the
    comparisons of chapters 02, 03 and (``combos``) 04 (:func:`variance_families`).

    Args:
        reg: chapter 02's :class:`RegularizationResults` (its grid and baseline).
        dp: chapter 03's DP settings (list of :class:`~mia_utils.book.replicated.Setting`).
        n_seeds: the number of seeds to simulate (int >= 2).
        replications: simulated families per cell (int >= 1).
        combos: chapter 04's :class:`Combinations` (None entries are skipped).
    """
    table = []
    for metric, title in CALIBRATED_METRICS.items():
        rows = variance_families(reg, dp, metric, combos)
        if not rows:
            continue
        rates = rule_error_rates(rows, seed_counts=(n_seeds,), replications=replications)
        table.append({"metric": title, "comparisons": len(rows),
                      "wrong decisions, no effect (%)": round(100 * rates[("null", n_seeds)], 1),
                      "power, 2 pp fall (%)": round(100 * rates[("power", 0.02, n_seeds)], 1),
                      "power, 3 pp fall (%)": round(100 * rates[("power", 0.03, n_seeds)], 1)})
    return pd.DataFrame(table).set_index("metric") if table else pd.DataFrame()


def rule_error_values(table: pd.DataFrame, n_seeds: int) -> dict:
    """What the findings page glues from :func:`rule_error_table`: ``rule_table``, ``rule_seeds``
    and, for Adv_Yeom and the AUC, ``rule_null_<m>``, ``rule_power2_<m>``, ``rule_power3_<m>``
    (percent text, e.g. "4.8 %")."""
    values = {"rule_table": table, "rule_seeds": n_seeds}
    for metric, title in (("yeom", "Adv_Yeom"), ("auc", "AUC")):
        if title in table.index:
            row = table.loc[title]
            values.update({f"rule_null_{metric}": f"{row['wrong decisions, no effect (%)']:.1f} %",
                           f"rule_power2_{metric}": f"{row['power, 2 pp fall (%)']:.1f} %",
                           f"rule_power3_{metric}": f"{row['power, 3 pp fall (%)']:.1f} %"})
    return values


def calibration(profile, dataset: str, seeds, store=None, replications: int = 500) -> pd.DataFrame:
    """:func:`rule_error_table` for ``dataset``'s chapter 02, 03 and 04 runs over ``seeds`` (read
    back from the store; trained first where missing, as the chapters would).

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        dataset: the dataset's name, one of the profile's.
        seeds: the seeds (iterable of int) of every setting.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        replications: simulated families per cell (int >= 1).
    """
    reg = regularization_results(profile, dataset, seeds, store, confirm=False)
    combos = [combinations(profile, reg, base, store) for base in ("distillation", "random_crop")]
    return rule_error_table(reg, dp_settings(profile, dataset, seeds, store), len(tuple(seeds)), replications, combos)


# --- chapter 04: combinations ----------------------------------------------------------------------

def section5_epochs(profile) -> tuple[int, ...]:
    """Epochs E of Section 5's early-stopping comparison that the profile's schedule allows
    (E = 5, 10, 15, 20, below the number of epochs)."""
    return tuple(e for e in SECTION5_EPOCHS if e < profile.epochs)


@dataclass
class Combinations:
    """Chapter 04's evidence for one base mechanism (distillation or cropping) at its RAD<5%
    value: ``singles`` (the base alone at RAD<5% and RAD<15%, by scenario), ``pairs`` (partner
    name -> the pair's Setting, the partner at its own RAD<5% value), ``early`` (E -> the base
    stopped after E epochs) and ``turned_up``: the base alone at a stronger setting than its RAD<5%
    one (:func:`turned_up_setting`), or None."""

    base: str
    value: float
    singles: dict[str, Setting]
    pairs: dict[str, Setting]
    early: dict[int, Setting]
    turned_up: Setting | None = None

    @property
    def trained(self) -> int:
        return replicated.trained_count(list(self.singles.values()), list(self.pairs.values()), list(self.early.values()))


def combination_specs(profile, reg: RegularizationResults, base: str) -> dict | None:
    """What chapter 04 trains for ``base``: ``{"value": its RAD<5% value, "pairs": {partner:
    partner's RAD<5% value}, "epochs": Section 5's E}``, or None when ``base`` has no RAD<5%
    setting. Each pair is (partner = value) on top of (base = value); :func:`mia_utils.book.plan`
    enumerates the same runs from this."""
    chosen = reg.chosen(base, "rad5")
    if chosen is None:
        return None
    pairs = {}
    for partner in dict.fromkeys(reg.scenarios["mechanism"]):
        pick = reg.chosen(partner, "rad5")
        if partner not in (base, "early_stopping") and pick is not None:
            pairs[partner] = pick.value
    return {"value": chosen.value, "pairs": pairs, "epochs": section5_epochs(profile)}


def combinations(profile, reg: RegularizationResults, base: str, store=None) -> Combinations | None:
    """Train or read back the pairs of ``base`` (at its RAD<5% value) with every other mechanism
    at its RAD<5% value, and ``base`` stopped early, over ``reg.seeds``; None when ``base`` has no
    RAD<5% setting (see :func:`combination_specs`)."""
    spec = combination_specs(profile, reg, base)
    if spec is None:
        return None
    singles = {scenario: reg.chosen(base, scenario) for scenario in ("rad5", "rad15")
               if reg.chosen(base, scenario) is not None}
    under = {base: spec["value"]}
    pairs = {partner: replicated.run_setting(profile, reg.dataset, partner, value, reg.seeds, store, mechanisms=under)
             for partner, value in spec["pairs"].items()}
    early = {e: replicated.run_setting(profile, reg.dataset, "early_stopping", e, reg.seeds, store, mechanisms=under)
             for e in spec["epochs"]}
    family = replicated.moderate(reg.baseline, list(pairs.values()) + list(early.values()))
    pairs = dict(zip(pairs, family[:len(pairs)]))
    early = dict(zip(early, family[len(pairs):]))
    return Combinations(base, spec["value"], singles, pairs, early, turned_up_setting(reg, base))


def turned_up_setting(reg: RegularizationResults, base: str) -> Setting | None:
    """``base`` alone turned up from its RAD<5% value, as the paper turns T = 50 up to T = 100: its
    RAD<15% pick when that is a different value, else the next value of its grid above the RAD<5%
    one (stronger for every mechanism the book pairs), else None."""
    rad5, rad15 = reg.chosen(base, "rad5"), reg.chosen(base, "rad15")
    if rad5 is None:
        return None
    if rad15 is not None and rad15.value != rad5.value:
        return rad15
    stronger = sorted(s.value for s in reg.settings if s.mechanism == base and s.value > rad5.value)
    return replicated.find(reg.settings, base, stronger[0]) if stronger else None


def pair_rad_pct(pair: Setting, baseline: Setting) -> float:
    """Relative accuracy drop of ``pair`` against ``baseline`` in percent (seed means)."""
    return 100 * (baseline.mean("test_acc") - pair.mean("test_acc")) / baseline.mean("test_acc")


def pair_against_single(reg: RegularizationResults, combo: Combinations | None, finding_id: str = "F7") -> Finding:
    """Does pairing ``combo.base`` (at RAD<5%) with a second mechanism lower Adv_Yeom more than
    turning the base alone up (:attr:`Combinations.turned_up`, as the paper turns T = 50 up to
    T = 100)? The pair compared is the one with the lowest mean Adv_Yeom among pairs within 15 %
    relative accuracy drop; since it is the best of k, its interval is Bonferroni-corrected
    (level 1 - 0.05 / k). Quantity: pair minus turned-up single, seed by seed. Predicted: below zero."""
    if combo is None or not combo.pairs:
        return make_finding(finding_id, INCONCLUSIVE, "the base has no RAD<5% setting to pair", reg.dataset)
    single = combo.turned_up
    if single is None:
        return make_finding(finding_id, INCONCLUSIVE, f"{combo.base} has no setting stronger than its RAD<5% one "
                            "in this profile's grid", reg.dataset)
    eligible = [p for p in combo.pairs.values() if pair_rad_pct(p, reg.baseline) < 15]
    if not eligible:
        return make_finding(finding_id, INCONCLUSIVE, "no pair within 15 % relative accuracy drop", reg.dataset)
    best = min(eligible, key=lambda s: s.mean("adv_yeom"))
    level = 1 - 0.05 / len(eligible)
    paired = single.on_seeds(best.seeds)
    difference = paired_difference(best.values("adv_yeom"), paired.values("adv_yeom"),
                                   within=best.paired_variances(paired, "adv_yeom"), level=level,
                                   prior=best.prior("adv_yeom", single))
    text = (f"{combo.base} = {combo.value:g} + {best.label}: Adv_Yeom {pct(best.estimate('adv_yeom'), signed=False)} vs "
            f"{single.label} alone {pct(single.estimate('adv_yeom'), signed=False)}; "
            f"difference {pct(difference)} ({100 * level:.1f} % interval: best of {len(eligible)} pairs)")
    return make_finding(finding_id, verdict(difference, "decrease"), text, reg.dataset, difference)


def f7_pairs(reg: RegularizationResults, distillation: Combinations | None) -> Finding:
    """F7, on distillation: :func:`pair_against_single` for the distillation pairs."""
    return pair_against_single(reg, distillation, "F7")


def early_stopping_comparison(distillation: Combinations | None, cropping: Combinations | None) -> pd.DataFrame:
    """Section 5: at each E, test accuracy of distillation + E minus cropping + E, seed by seed
    (the paper: early stopping costs less accuracy on top of distillation, so predicted above zero).
    One row per E with the estimate, its text and the verdict."""
    rows = []
    if distillation is None or cropping is None:
        return pd.DataFrame(rows)
    for epoch in sorted(set(distillation.early) & set(cropping.early)):
        difference = distillation.early[epoch].change(cropping.early[epoch], "test_acc")
        rows.append({"E": epoch, "estimate": difference, "accuracy: distillation + E minus cropping + E": pct(difference),
                     "verdict": verdict(difference, "increase")})
    return pd.DataFrame(rows)


# --- chapter 05: distance to confident --------------------------------------------------------------

@dataclass
class GapSetting:
    """DtC gaps of one setting over seeds: per seed ``gaps`` (the paper's DtC) and
    ``gaps_zero_floor``, each ``{"value", "variance"}`` (fractions), and the ``setting``;
    ``measured``: per seed the :class:`mia_utils.attacks.dtc.RunDtC` they came from, and
    ``n_bootstrap``: the resamples behind each variance (drawn from the seed's run seed)."""

    setting: Setting
    gaps: list[dict]
    gaps_zero_floor: list[dict]
    measured: list = None
    prior: VariancePrior | None = None
    n_bootstrap: int = 0

    def paired_variances(self, other: "GapSetting", zero_floor: bool = False) -> list[float]:
        """Per seed, the within-seed variance of this gap minus ``other``'s on the same seed: the
        paired bootstrap's (:func:`mia_utils.attacks.dtc.paired_gap_variance`) where both runs
        share the split and were measured on the same samples with the same resamples, else the
        sum of the two variances (also where the distances are not at hand: no ``measured``).
        ``other`` must hold each of this setting's seeds."""
        position = {seed: i for i, seed in enumerate(other.setting.seeds)}
        own, others = self.parts(zero_floor)[1], other.parts(zero_floor)[1]
        at_hand = bool(self.measured and other.measured and self.setting.configs and other.setting.configs)
        variances = []
        for i, seed in enumerate(self.setting.seeds):
            j = position[seed]
            paired = at_hand and self.n_bootstrap >= 2 and self.n_bootstrap == other.n_bootstrap
            if paired:
                mine, theirs = self.measured[i], other.measured[j]
                config, other_config = self.setting.configs[i], other.setting.configs[j]
                paired = (config.seed == other_config.seed and same_split(config, other_config)
                          and mine.eval_is_member.shape == theirs.eval_is_member.shape
                          and bool((mine.eval_is_member == theirs.eval_is_member).all()))
            variances.append(paired_gap_variance(mine, theirs, self.n_bootstrap, seed=config.seed, zero_floor=zero_floor)
                             if paired else own[i] + others[j])
        return variances

    def parts(self, zero_floor: bool = False) -> tuple[list[float], list[float]]:
        """Per seed, the gap values and their bootstrap variances (fractions)."""
        parts = self.gaps_zero_floor if zero_floor else self.gaps
        return [p["value"] for p in parts], [p["variance"] for p in parts]

    def estimate(self, zero_floor: bool = False) -> SeedEstimate:
        """The gap over seeds, moderated by the chapter's DtC prior (:func:`moderate_gaps`)."""
        return combine_seeds(*self.parts(zero_floor), prior=self.prior)

    def row(self, label: str, adv_yeom: SeedEstimate) -> dict:
        """Chapter 05's table row (Table 7's columns): seed means of the non-members' and the
        members' DtC (D and S, the paper's units), the gap with its interval (%), the same for the
        zero-floor variant, and ``adv_yeom`` beside them."""
        means = {key: combine_seeds([m.gap[key] for m in self.measured]).mean
                 for key in ("nonmembers_mean", "members_mean", "nonmembers_mean_zero_floor", "members_mean_zero_floor")}
        return {"setting": label, "DtC D": means["nonmembers_mean"], "DtC S": means["members_mean"],
                "gap (%)": self.estimate().format(), "zero-floor D": means["nonmembers_mean_zero_floor"],
                "zero-floor S": means["members_mean_zero_floor"],
                "zero-floor gap (%)": self.estimate(zero_floor=True).format(), "Adv_Yeom (%)": adv_yeom.format()}


def f8_baseline_gap(baseline: GapSetting, dataset: str) -> Finding:
    """F8: the baseline's DtC gap (D - S) / D is positive."""
    estimate = baseline.estimate()
    text = (f"DtC gap {estimate.format()} % (the zero-floor variant: {baseline.estimate(True).format()} %), "
            f"over {estimate.n_seeds} seed(s)")
    return make_finding("F8", verdict(estimate, "increase"), text, dataset, estimate)


#: The mechanisms whose RAD<15% settings F9 reads (the paper's Table 8 on Fashion-MNIST).
F9_MECHANISMS = ("distillation", "gaussian_noise", "random_crop")


def attack_fails(setting: Setting, metric: str = "adv_yeom") -> bool:
    """F9's premise: the attack fails at ``setting``, i.e. its advantage is equivalent to zero
    within the declared margin (:data:`mia_utils.attacks.evidence.MARGINS`; two one-sided tests)."""
    return equivalent(setting.estimate(metric), MARGINS[metric])


def f9_gap_persists(gaps: dict[str, GapSetting], dataset: str) -> Finding:
    """F9: at the RAD<15% settings of distillation, Gaussian noise and cropping, *where the known
    attacks fail*, the DtC gap stays positive. The premise is checked first (:func:`attack_fails`);
    the finding is judged on the settings that meet it: holds when each of their gaps is positive,
    inconclusive when no setting meets the premise (the claim then does not apply at this scale)."""
    named = [m for m in F9_MECHANISMS if m in gaps]
    if not named:
        return make_finding("F9", INCONCLUSIVE, "none of the three mechanisms has a RAD<15% setting", dataset)
    estimates = {m: gaps[m].estimate() for m in named}
    failing = {m: attack_fails(gaps[m].setting) for m in named}
    margin = 100 * MARGINS["adv_yeom"]
    text = "; ".join(f"{gaps[m].setting.label}: Adv_Yeom {pct(gaps[m].setting.estimate('adv_yeom'), signed=False)}"
                     f" ({'fails' if failing[m] else 'not shown to fail'}), gap {e.format(signed=False)} %"
                     for m, e in estimates.items())
    applicable = [m for m in named if failing[m]]
    if not applicable:
        return make_finding("F9", INCONCLUSIVE, text, dataset,
                            note=f"At none of these settings is Adv_Yeom shown to be within ±{margin:g} pp of zero, "
                                 "so the claim's premise (the attacks fail there) is not met at this scale.")
    state = combine_verdicts(verdict(estimates[m], "increase") for m in applicable)
    note = f"Judged on {', '.join(gaps[m].setting.label for m in applicable)} (Adv_Yeom within ±{margin:g} pp of zero)."
    return make_finding("F9", state, text, dataset, estimates[applicable[0]], note)


def f10_dp_gap(dp_gaps: list[GapSetting], dataset: str) -> Finding:
    """F10: the strongest DP noise has a smaller DtC gap than the weakest. Quantity: gap at the
    largest sigma minus gap at the smallest, seed by seed. Predicted: below zero."""
    if len(dp_gaps) < 2:
        return make_finding("F10", INCONCLUSIVE, "fewer than two DP settings", dataset)
    ordered = sorted(dp_gaps, key=lambda g: g.setting.value)
    weak, strong = ordered[0], ordered[-1]
    weak_values = dict(zip(weak.setting.seeds, (g["value"] for g in weak.gaps)))
    difference = paired_difference([g["value"] for g in strong.gaps], [weak_values[s] for s in strong.setting.seeds],
                                   within=strong.paired_variances(weak), prior=strong.prior)
    text = (f"σ_DP = {strong.setting.value:g}: gap {strong.estimate().format(signed=False)} % vs "
            f"σ_DP = {weak.setting.value:g}: {weak.estimate().format(signed=False)} %; "
            f"difference {difference.format(signed=True)} pp")
    return make_finding("F10", verdict(difference, "decrease"), text, dataset, difference)


def gap_setting(setting: Setting, measure, store=None, n_bootstrap: int = 0) -> GapSetting:
    """DtC gaps of ``setting`` over its seeds; ``measure(run, epoch)`` returns a
    :class:`mia_utils.attacks.dtc.RunDtC` whose ``gap`` has the variance of ``n_bootstrap``
    resamples drawn from the run's seed."""
    gaps, floors, measured = [], [], []
    for run, epoch in setting.runs(store):
        result = measure(run, epoch)
        gap = result.gap
        gaps.append({"value": gap["gap"], "variance": gap.get("gap_variance", 0.0)})
        floors.append({"value": gap["gap_zero_floor"], "variance": gap.get("gap_zero_floor_variance", 0.0)})
        measured.append(result)
    return GapSetting(setting, gaps, floors, measured, n_bootstrap=n_bootstrap)


@dataclass
class DtCResults:
    """Chapter 05's evidence for one dataset: DtC gaps over seeds of the ``baseline`` (with the
    adversary's set measured too, for the DtC attack), of each mechanism's RAD<15% setting
    (``rad15``, by mechanism) and of every DP noise level (``dp``)."""

    dataset: str
    baseline: GapSetting
    rad15: dict[str, GapSetting]
    dp: list[GapSetting]


def dtc_results(profile, reg: RegularizationResults, dp: list[Setting], per_side: int | None, store=None) -> DtCResults:
    """Measure (or read back) DtC on ``per_side`` members and non-members of each seed's
    evaluation set, with the profile's bootstrap for the gap's variance.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile` (its ``bootstrap``).
        reg: chapter 02's :class:`RegularizationResults` for the dataset (its baseline, measured
            with the adversary's set too, and its RAD<15% picks).
        dp: the DP-SGD settings (list of :class:`~mia_utils.book.replicated.Setting`), measured
            in order of increasing σ_DP.
        per_side: members and non-members measured per evaluation set (int), or None for all;
            F9's three settings are measured on the profile's ``dtc_f9_samples`` instead.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
    """
    from mia_utils.attacks.dtc import stored_dtc

    def measure(adversary, samples=per_side):
        return lambda run, epoch: stored_dtc(run, store, epoch=epoch, max_samples=samples, adversary=adversary,
                                             n_bootstrap=profile.bootstrap, seed=run.config.seed)

    f9_samples = profile.dtc_f9_samples or None
    n = profile.bootstrap
    baseline = gap_setting(reg.baseline, measure(True), store, n)
    rad15 = {s.mechanism: gap_setting(s, measure(False, f9_samples if s.mechanism in F9_MECHANISMS else per_side),
                                      store, n)
             for s in reg.picks("rad15")}
    dp_gaps = [gap_setting(s, measure(False), store, n) for s in sorted(dp, key=lambda s: s.value)]
    return moderate_gaps(DtCResults(reg.dataset, baseline, rad15, dp_gaps))


def moderate_gaps(results: "DtCResults") -> "DtCResults":
    """``results`` with one DtC prior (:func:`mia_utils.attacks.evidence.fit_prior`) fitted on every
    measured setting's gaps over seeds and attached to each :class:`GapSetting` (none when too few
    settings have several seeds)."""
    from dataclasses import replace

    settings = [results.baseline, *results.rad15.values(), *results.dp]
    prior = fit_prior(g.parts() for g in settings)
    return DtCResults(results.dataset, replace(results.baseline, prior=prior),
                      {m: replace(g, prior=prior) for m, g in results.rad15.items()},
                      [replace(g, prior=prior) for g in results.dp])


def dtc_findings(results: DtCResults) -> list[Finding]:
    return [f8_baseline_gap(results.baseline, results.dataset), f9_gap_persists(results.rad15, results.dataset),
            f10_dp_gap(results.dp, results.dataset)]


def all_findings(profile, dataset: str, seeds, store=None, per_side: int | None = None) -> list[Finding]:
    """F1-F10 on ``dataset`` (F7 on :func:`judged_dataset` is the caller's choice of dataset),
    from the runs and DtC measurements the chapters use (read back from the store).

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        dataset: the dataset's name, one of the profile's.
        seeds: the seeds (iterable of int) of every setting.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        per_side: members and non-members per set on which DtC is measured (int), or None for
            the profile's ``dtc_samples`` (0 there = all of them).
    """
    reg = regularization_results(profile, dataset, seeds, store)
    dp = dp_settings(profile, dataset, seeds, store)
    distillation = combinations(profile, reg, "distillation", store)
    dtc = dtc_results(profile, reg, dp, per_side if per_side is not None else (profile.dtc_samples or None), store)
    return (regularization_findings(reg) + [f6_dp_costs_more(reg, dp), f7_pairs(reg, distillation)]
            + dtc_findings(dtc))


def judged_dataset(datasets) -> str:
    """The dataset on which Table 6's and Section 5's claims are judged: CIFAR-100 when present."""
    datasets = list(datasets)
    return "cifar100" if "cifar100" in datasets else datasets[0]


def findings_frame(findings: list[Finding]) -> pd.DataFrame:
    """The findings as a table, one row each, in F1..F10 order."""
    order = {f"F{i}": i for i in range(1, 11)}
    rows = sorted((f.row() for f in findings), key=lambda r: (order.get(r["finding"], 99), r["dataset"]))
    return pd.DataFrame(rows)



#: The chapter each finding's row links to, by notebook name -> the link's text.
CHAPTER_TITLES = {"02_regularization": "Regularization (Tables 3-5)", "03_differential_privacy": "Differential privacy",
                  "04_combinations": "Combining mechanisms (Table 6)",
                  "05_distance_to_confident": "Distance to confident"}


def book_findings(profile, datasets, seeds, store=None) -> list[Finding]:
    """Every finding on every dataset of ``datasets``, for the summary page: F7 (Table 6's claim)
    only on the dataset :func:`judged_dataset` picks, the others on each dataset."""
    judged = judged_dataset(datasets)
    return [finding for dataset in datasets for finding in all_findings(profile, dataset, seeds, store)
            if finding.id != "F7" or dataset == judged]


def summary_html(rows: list[Finding], one_dataset: bool) -> str:
    """The summary page's table as HTML: one row per finding (F1..F10), the verdict in bold, the
    chapter a link to its "What we found" section, and the dataset's title (the column is left
    out when ``one_dataset``, as the page's text names it)."""
    table = findings_frame(rows)
    table["dataset"] = [DATASETS[d].title for d in table["dataset"]]
    table["chapter"] = [f'<a href="{c}.html#what-we-found">{CHAPTER_TITLES[c]}</a>' for c in table["chapter"]]
    table["verdict"] = [f"<strong>{v}</strong>" for v in table["verdict"]]
    if one_dataset:
        table = table.drop(columns=["dataset"])
    return table.set_index("finding").to_html(escape=False)


def summary_values(rows: list[Finding], datasets, seeds) -> dict:
    """What the summary page glues: each finding's verdict (``F1_verdict``, or ``F1_fmnist_verdict``
    with several datasets), the number of findings and of each verdict (``n_holds``,
    ``n_contradicted``, ``n_inconclusive``), the number of seeds and the datasets' titles."""
    several = len(datasets) > 1
    values = {f"{f.id}{'_' + f.dataset if several else ''}_verdict": f.verdict for f in rows}
    values["n_findings"] = len(rows)
    values.update({f"n_{state}": sum(f.verdict == state for f in rows) for state in VERDICTS})
    values["n_seeds"] = len(seeds)
    values["dataset_list"] = ", ".join(DATASETS[d].title for d in datasets)
    return values
