"""Chapter 02, does regularization stop membership inference (the paper's Tables 3-5): the paper's
mechanisms swept over their grids and over seeds on every dataset (:func:`sweep`), the lines and
the values the page prints and glues (:func:`sweep_line`, :func:`baseline_line`,
:func:`key_values`), and the accuracy-advantage trade-off figure (:func:`tradeoff_figure`). The
selection (Max, RAD<5%, RAD<15%) and the verdicts F1-F5 live in :mod:`mia_utils.book.findings`,
the scenario and reading tables in :mod:`mia_utils.book.report`."""

from __future__ import annotations

import pandas as pd

from mia_utils.attacks.evidence import MARGINS
from mia_utils.book import findings, replicated, report
from mia_utils.book.findings import RegularizationResults
from mia_utils.data import DATASETS
from mia_utils.defenses import REGISTRY, number_text

#: The columns of the findings table the page shows (a subset of :func:`findings.findings_frame`'s).
FINDINGS_COLUMNS = ["claim", "verdict", "ours (95 % interval)", "paper"]
#: The verdict counts the page glues as ``n_<state>``, in this order.
VERDICT_STATES = ("holds", "contradicted", "inconclusive")
#: The attacks the trade-off figure draws: evaluation metric -> (legend name, the baseline's marker).
TRADEOFF_ATTACKS = {"adv_yeom": ("Yeom", "*"), "adv_salem": ("Salem", "P")}


def sweep(profile, datasets, seeds, mechanisms=None, store=None) -> dict[str, RegularizationResults]:
    """Dataset -> :func:`mia_utils.book.findings.regularization_results` over ``seeds`` (trained or read
    back), in the order of ``datasets``.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        datasets: the datasets' names (iterable of str), in the page's order.
        seeds: the seeds (iterable of int) of every setting.
        mechanisms: the mechanisms to sweep (iterable of str); empty or None for all eight of the paper.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
    """
    return {dataset: findings.regularization_results(profile, dataset, seeds, store, mechanisms=mechanisms or None)
            for dataset in datasets}


def sweep_line(result: RegularizationResults) -> str:
    """One line: how many settings of ``result`` over how many seeds, and how many runs were trained now."""
    return (f"{DATASETS[result.dataset].title}: {len(result.settings)} settings x {len(result.seeds)} seeds "
            f"({result.trained} runs trained now, the rest read from the result store)")


def baseline_line(result: RegularizationResults) -> str:
    """One line: the baseline's test accuracy and both advantages (percent, mean and 95 % interval)."""
    base = result.baseline
    return (f"{DATASETS[result.dataset].title} baseline over {len(result.seeds)} seeds: accuracy "
            f"{base.estimate('test_acc')} %, Adv_Yeom {base.estimate('adv_yeom')} %, "
            f"Adv_Salem {base.estimate('adv_salem')} %")


def findings_table(chapter_findings: list[findings.Finding]) -> pd.DataFrame:
    """The page's table of the findings: one row per finding (index ``finding``, F1..F5 order),
    columns :data:`FINDINGS_COLUMNS`."""
    return findings.findings_frame(chapter_findings).set_index("finding")[FINDINGS_COLUMNS]


def threshold_moved_text(result: RegularizationResults, reading: str = "a", state: str = "threshold moved") -> str:
    """The mechanisms whose reading of Yeom's threshold under ``reading`` is ``state`` (default:
    the advantage fell while the loss AUC is shown unchanged or risen;
    :func:`mia_utils.book.report.threshold_moved`), as words ("label smoothing, dropout"), or "none"."""
    moved = report.threshold_moved(report.yeom_readings(result), reading, state)
    return ", ".join(name.replace("_", " ") for name in moved) or "none"


def key_values(results: dict[str, RegularizationResults], lead: str | None = None) -> dict:
    """Every value the page glues except its figure, in the page's order: the ``lead`` dataset's
    title (default: the first of ``results``), the number of settings over all datasets, the seed
    count, the findings table and each finding's ``F<i>_verdict`` and ``F<i>_ours`` (on ``lead``),
    the verdict counts ``n_holds``, ``n_contradicted``, ``n_inconclusive`` and ``findings_total``,
    and the two readings of Yeom's threshold (``reading_summary``; the mechanisms read as
    ``signal_removed_list``, ``threshold_moved_list`` and ``undecided_list``; ``auc_margin``, the
    AUC's equivalence margin in points)."""
    lead = lead if lead is not None else next(iter(results))
    result = results[lead]
    chapter_findings = findings.regularization_findings(result)
    table = findings_table(chapter_findings)
    values = {"lead_dataset": DATASETS[lead].title,
              "n_settings": int(sum(len(r.settings) for r in results.values())),
              "n_seeds": len(result.seeds), "findings_table": table}
    for finding in chapter_findings:
        values.update({f"{finding.id}_verdict": finding.verdict, f"{finding.id}_ours": finding.ours})
    counts = table["verdict"].value_counts()
    values.update({f"n_{state}": int(counts.get(state, 0)) for state in VERDICT_STATES})
    values["findings_total"] = len(table)
    values["reading_summary"] = report.reading_summary(report.reading_agreement(result))
    values["threshold_moved_list"] = threshold_moved_text(result)
    values["signal_removed_list"] = threshold_moved_text(result, state="signal removed")
    values["undecided_list"] = threshold_moved_text(result, state="undecided")
    values["auc_margin"] = f"{100 * MARGINS['auc']:g}"
    return values


def tradeoff_frame(settings: list[replicated.Setting]) -> pd.DataFrame:
    """Long table of the trade-off figure: one row per (setting, attack of :data:`TRADEOFF_ATTACKS`),
    with ``mechanism``, ``value``, ``attack`` ("Yeom", "Salem"), and the seed means
    ``test accuracy (%)`` and ``advantage (%)`` (percent); the rows of all settings for Yeom first."""
    means = replicated.means_frame(settings)
    long = means.melt(id_vars=["mechanism", "value", "test_acc"], value_vars=list(TRADEOFF_ATTACKS),
                      var_name="attack", value_name="advantage")
    long["attack"] = long["attack"].map({metric: name for metric, (name, _) in TRADEOFF_ATTACKS.items()})
    long["test accuracy (%)"] = 100 * long["test_acc"]
    long["advantage (%)"] = 100 * long["advantage"]
    return long


def mechanism_title(name: str) -> str:
    """A trade-off panel's title: the mechanism in words and its symbol ("E" for early stopping)."""
    from mia_utils.defenses.registry import SYMBOLS

    symbol = REGISTRY[name].symbol if name in REGISTRY else "E"
    return f"{name.replace('_', ' ')} ({SYMBOLS.get(symbol, symbol)})"


def tradeoff_figure(result: RegularizationResults, max_columns: int = 2):
    """Test accuracy (%) against both advantages (%) for every value of every mechanism of
    ``result`` (seed means): one panel per mechanism, at most ``max_columns`` a row (two, so that
    the labels stay readable at the page's width), shared y axis, each point labelled with its value, the baseline as a black star (Yeom) and cross (Salem).
    Returns the matplotlib Figure (open: the caller shows or glues it)."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    long = tradeoff_frame(result.settings)
    names = list(dict.fromkeys(long["mechanism"]))
    columns = min(max_columns, len(names))
    rows = -(-len(names) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(4.6 * columns, 3.2 * rows), squeeze=False,
                             sharey=True, layout="constrained")
    base = replicated.means_frame([result.baseline]).iloc[0]
    for ax, name in zip(axes.ravel(), names):
        part = long[long["mechanism"] == name]
        sns.lineplot(part, x="test accuracy (%)", y="advantage (%)", hue="attack", style="attack",
                     markers=True, sort=False, ax=ax, legend=ax is axes.ravel()[0])
        for _, point in part[part["attack"] == "Yeom"].iterrows():
            ax.annotate(number_text(point["value"]), (point["test accuracy (%)"], point["advantage (%)"]),
                        textcoords="offset points", xytext=(3, 3), fontsize=9)
        for attack, (_, marker) in TRADEOFF_ATTACKS.items():
            ax.plot(100 * base["test_acc"], 100 * base[attack], marker=marker, color="black", markersize=10)
        ax.set_title(mechanism_title(name))
    for ax in axes.ravel()[len(names):]:
        ax.set_visible(False)
    fig.suptitle(f"{DATASETS[result.dataset].title} (means over {len(result.seeds)} seeds)")
    return fig
