"""Chapter 04, combining mechanisms (the paper's Table 6 and Section 5): the RAD<5% and RAD<15%
values chapter 02 chose (:func:`chosen_values`), each consistent mechanism (distillation, random
cropping) paired with every other one and stopped early (:func:`base_combinations`), the claims
judged on one dataset (:func:`section5`, :func:`key_values`) and the figure of every configuration's
changes against the baseline (:func:`combinations_figure`). The pairs' training and verdicts live in
:mod:`mia_utils.book.findings`, Table 6's rows in :func:`mia_utils.book.report.combination_table`."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mia_utils.book import findings
from mia_utils.book.findings import Combinations, Finding, RegularizationResults
from mia_utils.book.replicated import Setting
from mia_utils.data import DATASETS

#: What the page says when Section 5's early-stopping comparison has no row.
NO_EARLY_COMPARISON = "not computed (a base has no RAD<5% setting, or the schedule is too short)"
#: The columns of :func:`combination_points`.
POINT_COLUMNS = ["base", "kind", "accuracy change (pp)", "Adv_Yeom change (pp)"]


def chosen_values(result: RegularizationResults) -> pd.DataFrame:
    """The value and the relative accuracy drop ``rad_pct`` (percent) chapter 02's selection chose
    for every mechanism: index ``mechanism``, columns (``value`` | ``rad_pct``, scenario)."""
    return result.scenarios.set_index(["mechanism", "scenario"])[["value", "rad_pct"]].unstack("scenario")


def base_combinations(profile, result: RegularizationResults, bases=findings.CONSISTENT,
                      store=None) -> dict[str, Combinations | None]:
    """Base mechanism -> :func:`mia_utils.book.findings.combinations` of it on ``result``'s dataset
    and seeds (trained or read back), None for a base with no RAD<5% setting."""
    return {base: findings.combinations(profile, result, base, store) for base in bases}


def combination_line(result: RegularizationResults, base: str, combo: Combinations | None) -> str:
    """One line before a base's Table 6 rows: its RAD<5% value and the runs trained now, or why it is skipped."""
    title = DATASETS[result.dataset].title
    if combo is None:
        return f"{title}: {base} has no setting within 5 % relative accuracy drop; skipped"
    return f"{title}: {base} = {combo.value:g} ({combo.trained} runs trained now)"


@dataclass
class Section5:
    """The chapter's claims on its judged dataset (:func:`mia_utils.book.findings.judged_dataset`):
    ``f7`` (distillation pairs against distillation turned up), ``crop_pairs`` (the same for
    cropping) and ``early`` (:func:`mia_utils.book.findings.early_stopping_comparison`: one row per E)."""

    result: RegularizationResults
    f7: Finding
    crop_pairs: Finding
    early: pd.DataFrame


def section5(result: RegularizationResults, combos: dict[str, Combinations | None]) -> Section5:
    """The chapter's verdicts on ``result``'s dataset from its ``combos`` (:func:`base_combinations`)."""
    distillation, cropping = combos.get("distillation"), combos.get("random_crop")
    return Section5(result, findings.f7_pairs(result, distillation),
                    findings.pair_against_single(result, cropping, "F7"),
                    findings.early_stopping_comparison(distillation, cropping))


def early_summary(early: pd.DataFrame) -> str:
    """Section 5's comparison in words, E by E: "E = 5: holds (+1.2 [+0.3, +2.1] pp); ...", or
    :data:`NO_EARLY_COMPARISON` when ``early`` has no row."""
    if not len(early):
        return NO_EARLY_COMPARISON
    return "; ".join(f"E = {row['E']}: {row['verdict']} ({row['estimate'].format(signed=True)} pp)"
                     for _, row in early.iterrows())


def key_values(judged: Section5) -> dict:
    """Every text value the page glues, in the page's order: ``lead_dataset`` (the judged dataset's
    title), ``n_seeds``, ``f7_verdict`` / ``f7_ours``, ``crop_pair_verdict`` / ``crop_pair_ours``,
    ``early_epochs`` (the E compared, or "none") and ``early_summary`` (:func:`early_summary`)."""
    early = judged.early
    return {"lead_dataset": DATASETS[judged.result.dataset].title, "n_seeds": len(judged.result.seeds),
            "f7_verdict": judged.f7.verdict, "f7_ours": judged.f7.ours,
            "crop_pair_verdict": judged.crop_pairs.verdict, "crop_pair_ours": judged.crop_pairs.ours,
            "early_epochs": ", ".join(str(e) for e in early["E"]) if len(early) else "none",
            "early_summary": early_summary(early)}


def early_table(early: pd.DataFrame) -> pd.DataFrame:
    """Section 5's comparison as shown: one row per E (index ``E``), its text and verdict."""
    return early.drop(columns=["estimate"]).set_index("E")


def combination_points(combos: dict[str, Combinations | None], baseline: Setting) -> pd.DataFrame:
    """One row per configuration of every base in ``combos`` (the base alone at each scenario, each
    pair, each early stop), columns :data:`POINT_COLUMNS`: its ``kind`` ("single", "pair", "early
    stopping") and its paired changes of test accuracy and Adv_Yeom against ``baseline``, in
    percentage points (seed means)."""
    points = []
    for base, combo in combos.items():
        if combo is None:
            continue
        labelled = ([("single", s) for s in combo.singles.values()] + [("pair", s) for s in combo.pairs.values()]
                    + [("early stopping", s) for s in combo.early.values()])
        for kind, setting in labelled:
            points.append({"base": base, "kind": kind,
                           "accuracy change (pp)": 100 * setting.change(baseline, "test_acc").mean,
                           "Adv_Yeom change (pp)": 100 * setting.change(baseline, "adv_yeom").mean})
    return pd.DataFrame(points, columns=POINT_COLUMNS)


def combinations_figure(combos: dict[str, Combinations | None], baseline: Setting):
    """Every configuration of :func:`combination_points` as a point: change of accuracy (x) against
    change of Yeom's advantage (y), in points, coloured by base and marked by kind, with the zero
    lines. Returns the matplotlib Figure (open: the caller glues it)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(8, 4.5), layout="constrained")
    plotted = combination_points(combos, baseline)
    if len(plotted):
        sns.scatterplot(plotted, x="accuracy change (pp)", y="Adv_Yeom change (pp)", hue="base", style="kind",
                        s=70, ax=ax)
        ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    ax.axhline(0, color="0.5", linewidth=0.8)
    ax.axvline(0, color="0.5", linewidth=0.8)
    ax.set_xlabel("accuracy change against the baseline (points, seed mean)")
    ax.set_ylabel("change of Yeom's advantage (points, seed mean)")
    return fig
