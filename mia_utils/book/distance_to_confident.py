"""Chapter 05, distance to confident: DtC gaps over seeds of the baseline, of every mechanism at its
RAD<15% setting and along the DP sweep (:func:`load_chapter`), the paper's Tables 7 and 8 beside
ours (:func:`table7`, :func:`table8`), the DtC threshold attack beside the black-box attacks
(:func:`attack_table`), Figure 1's points (:func:`dp_frame`), the page's figures
(:func:`histogram_figure`, :func:`dp_figure`) and the values it glues (:func:`key_values`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mia_utils.attacks import AttackInputs, salem, yeom
from mia_utils.attacks.audit import mean_epsilon
from mia_utils.attacks.evidence import combine_seeds
from mia_utils.book import findings, report
from mia_utils.book.findings import DtCResults, RegularizationResults
from mia_utils.book.replicated import Setting
from mia_utils.data import DATASETS

#: Table 7's published columns (``table7_dtc_baselines``) -> the page's headers.
TABLE7_PAPER = {"dtc_test": "paper D", "dtc_train": "paper S", "dtc_gap_pct": "paper gap (%)",
                "adv_yeom_pct": "paper Adv_Yeom (%)"}

#: Table 8's published columns (``table8_dtc_regularized_rad15``) -> the page's headers.
TABLE8_PAPER = {"dtc_gap_pct": "paper gap (%)", "adv_yeom_pct": "paper Adv_Yeom (%)"}

#: The attacks compared on the baseline, in the table's order.
ATTACKS = ("Yeom (loss, black box)", "Salem (black box)", "DtC threshold (white box)")


def samples_per_side(profile, requested: int = 0) -> int | None:
    """Members and non-members measured per set: ``requested``, else the profile's
    ``dtc_samples``; None (all of them) when both are 0."""
    return requested or profile.dtc_samples or None


@dataclass
class DtCChapter:
    """Chapter 05's evidence over ``seeds``, by dataset in the page's order (the first is the lead):
    chapter 02's sweep (``regularization``), the DP-SGD sweep (``dp``) and their DtC gaps
    (``dtc``, :class:`mia_utils.book.findings.DtCResults`), measured on ``per_side`` members and
    non-members of each evaluation set (None: all), F9's three settings on ``f9_per_side``."""

    seeds: tuple[int, ...]
    per_side: int | None
    regularization: dict[str, RegularizationResults]
    dp: dict[str, list[Setting]]
    dtc: dict[str, DtCResults]
    f9_per_side: int | None = None

    @property
    def lead(self) -> str:
        return next(iter(self.dtc))


def load_chapter(profile, datasets, seeds, per_side: int | None, store=None) -> DtCChapter:
    """Read back (or train) chapter 02's and the DP sweeps over ``seeds`` for each of
    ``datasets`` in order, and measure (or read back) their DtC gaps
    (:func:`mia_utils.book.findings.dtc_results`).

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        datasets: the datasets' names (iterable of str) in the page's order; the first is the lead.
        seeds: the seeds (iterable of int) of every setting.
        per_side: members and non-members measured per evaluation set (int), or None for all
            (see :func:`samples_per_side`).
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
    """
    chapter = DtCChapter(tuple(seeds), per_side, {}, {}, {}, profile.dtc_f9_samples or None)
    for dataset in datasets:
        chapter.regularization[dataset] = findings.regularization_results(profile, dataset, chapter.seeds, store,
                                                                          confirm=False)
        chapter.dp[dataset] = findings.dp_settings(profile, dataset, chapter.seeds, store)
        chapter.dtc[dataset] = findings.dtc_results(profile, chapter.regularization[dataset], chapter.dp[dataset],
                                                    per_side, store)
    return chapter


def table7(chapter: DtCChapter) -> pd.DataFrame:
    """Table 7: one row per dataset's baseline (:meth:`mia_utils.book.findings.GapSetting.row`:
    D and S in DtC units, gaps in %, both definitions, and Adv_Yeom) with the paper's D, S, gap
    and Adv_Yeom beside it, indexed by the dataset's title, rounded to 2 decimals."""
    paper = report.published("table7_dtc_baselines").set_index("dataset")
    rows = []
    for dataset, measured in chapter.dtc.items():
        adv_yeom = chapter.regularization[dataset].baseline.estimate("adv_yeom")
        row = measured.baseline.row(DATASETS[dataset].title, adv_yeom)
        row.update({title: paper.loc[dataset, column] for column, title in TABLE7_PAPER.items()})
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting").round(2)


def baseline_attacks(chapter: DtCChapter, dataset: str, n_bootstrap: int, store=None) -> dict[str, list]:
    """The attacks of :data:`ATTACKS` on each seed's baseline of ``dataset``: name -> one
    :class:`mia_utils.attacks.AttackResult` per seed. Yeom and Salem see the whole evaluation set,
    the DtC attack the measured subset; each with ``n_bootstrap`` replicates, seeded by the run."""
    results = {name: [] for name in ATTACKS}
    runs = chapter.regularization[dataset].baseline.runs(store)
    for (run, _), measured in zip(runs, chapter.dtc[dataset].baseline.measured):
        inputs, seed = AttackInputs.from_outputs(run.outputs), run.config.seed
        for name, attack in zip(ATTACKS, (yeom(inputs, n_bootstrap=n_bootstrap, seed=seed),
                                          salem(inputs, n_bootstrap=n_bootstrap, seed=seed),
                                          measured.attack(n_bootstrap=n_bootstrap, seed=seed))):
            results[name].append(attack)
    return results


def attack_table(chapter: DtCChapter, n_bootstrap: int, store=None) -> pd.DataFrame:
    """The DtC attack beside Yeom's and Salem's on the baselines (:func:`baseline_attacks`):
    indexed by (dataset, attack), the samples each seed's attack saw, and the advantage and AUC
    as seed means with 95 % intervals (%, the bootstrap variances as within-seed variances)."""
    rows = []
    for dataset in chapter.dtc:
        for name, results in baseline_attacks(chapter, dataset, n_bootstrap, store).items():
            row = {"dataset": DATASETS[dataset].title, "attack": name, "samples per seed": len(results[0].scores)}
            for key, title in (("advantage", "advantage (%)"), ("auc", "AUC (%)")):
                row[title] = combine_seeds([r.metrics[key].value for r in results],
                                           [r.metrics[key].std ** 2 for r in results]).format()
            rows.append(row)
    return pd.DataFrame(rows).set_index(["dataset", "attack"])


def histogram_figure(chapter: DtCChapter):
    """A matplotlib Figure with one panel per dataset: the paper's DtC (×1000, L∞) of the measured
    members and non-members of the first seed's baseline, as step histograms of density."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, axes = plt.subplots(1, len(chapter.dtc), figsize=(6.4 * len(chapter.dtc), 4), squeeze=False,
                             layout="constrained")
    for ax, (dataset, measured) in zip(axes[0], chapter.dtc.items()):
        first = measured.baseline.measured[0]
        frame = pd.DataFrame({"DtC (×1000, L∞)": first.eval.paper_distances.numpy(),
                              "sample": ["member" if m else "non-member" for m in first.eval_is_member.tolist()]})
        sns.histplot(frame, x="DtC (×1000, L∞)", hue="sample", element="step", stat="density", common_norm=False,
                     bins=30, ax=ax)
        ax.set_title(f"{DATASETS[dataset].title}, seed {chapter.seeds[0]}: gap {100 * first.gap['gap']:.1f} %")
        ax.set_ylabel("density")
    return fig


def table8(chapter: DtCChapter) -> dict[str, pd.DataFrame]:
    """Table 8 of each dataset, by dataset: one row per mechanism at its RAD<15% setting (our
    columns of :func:`table7`) with the paper's gap and Adv_Yeom where it reports the mechanism,
    indexed by the setting's label, rounded to 2 decimals."""
    published = report.published("table8_dtc_regularized_rad15")
    tables = {}
    for dataset, measured in chapter.dtc.items():
        paper = published[published["dataset"] == dataset].set_index("mechanism")
        rows = []
        for mechanism, gaps in measured.rad15.items():
            row = gaps.row(gaps.setting.label, gaps.setting.estimate("adv_yeom"))
            if mechanism in paper.index:
                row.update({title: paper.loc[mechanism, column] for column, title in TABLE8_PAPER.items()})
            rows.append(row)
        tables[dataset] = pd.DataFrame(rows).set_index("setting").round(2)
    return tables


def dp_frame(chapter: DtCChapter) -> pd.DataFrame:
    """Figure 1's points: for each dataset and noise level, two rows (``quantity`` "DtC gap" and
    "Adv_Yeom") with ``σ_DP``, the mean certified ``ε`` and the seed mean (``percent``) with its 95 %
    interval (``low``, ``high``), in percent."""
    points = []
    for dataset, measured in chapter.dtc.items():
        for gaps in measured.dp:
            setting = gaps.setting
            for name, estimate in (("DtC gap", gaps.estimate()), ("Adv_Yeom", setting.estimate("adv_yeom"))):
                points.append({"dataset": DATASETS[dataset].title, "σ_DP": setting.value, "ε": mean_epsilon(setting),
                               "quantity": name, "percent": 100 * estimate.mean,
                               "low": 100 * estimate.low, "high": 100 * estimate.high})
    return pd.DataFrame(points)


def dp_figure(frame: pd.DataFrame):
    """Figure 1 from :func:`dp_frame`: a matplotlib Figure of two panels, the DtC gap and Yeom's
    advantage (%, means and 95 % intervals) of each dataset against σ_DP (left) and against the
    certified ε (right), both on log scales."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for ax, x in zip(axes, ("σ_DP", "ε")):
        for (dataset, quantity), part in frame.groupby(["dataset", "quantity"], sort=False):
            part = part.sort_values(x)
            ax.errorbar(part[x], part["percent"], yerr=[part["percent"] - part["low"], part["high"] - part["percent"]],
                        marker="o", capsize=3, label=f"{quantity} ({dataset})")
        ax.set_xscale("log")
        ax.set_xlabel("noise multiplier σ_DP (log scale)" if x == "σ_DP" else "privacy budget ε (log scale)")
        ax.set_ylabel("percent (mean and 95 % interval over seeds)")
        ax.legend(frameon=False, fontsize="small")
    return fig


def key_values(chapter: DtCChapter) -> dict:
    """The values the page glues: the lead dataset's title, the samples per side (or "all"), the
    seed count, and each of F8, F9 and F10's verdict and figure on the lead dataset
    (``F8_verdict``, ``F8_ours``, ...)."""
    values = {"lead_dataset": DATASETS[chapter.lead].title, "per_side": chapter.per_side or "all",
              "n_seeds": len(chapter.seeds)}
    for finding in findings.dtc_findings(chapter.dtc[chapter.lead]):
        values[f"{finding.id}_verdict"] = finding.verdict
        values[f"{finding.id}_ours"] = finding.ours
    return values


def setting_table(chapter: DtCChapter) -> pd.DataFrame:
    """The DtC measurement's setting as a one-column table: samples per side (and those of F9's
    three settings, measured on more so that their gaps resolve the paper's), and the PGD step
    (input range [0, 1]), step cap and confidence threshold (median training loss, nats) with which
    the first seed's baseline of the lead dataset was measured."""
    first = chapter.dtc[chapter.lead].baseline.measured[0]
    return pd.Series({"DtC samples per side": chapter.per_side or "all",
                      "DtC samples per side, F9's three settings": chapter.f9_per_side or "all", "PGD step": first.eval.step,
                      "max steps": first.eval.max_steps,
                      "threshold (median training loss, nats), first seed": first.threshold},
                     name="DtC setting").to_frame()
