"""Chapter 03, differential privacy: the DP-SGD sweep over noise multipliers and seeds beside the
regularization sweep of chapter 02 (:func:`load_chapter`), its tables (the settings, F6, the
certified against the empirical epsilon, the paper's epsilons beside Opacus' accountants), the
values the page glues (:func:`key_values`, :func:`epsilon_key_values`,
:func:`paper_epsilon_values`) and the sweep's figure (:func:`sweep_figures`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mia_utils.attacks.audit import epsilon_comparison, mean_epsilon
from mia_utils.attacks.metrics import epsilon_lower_bound_limit
from mia_utils.book import findings, replicated
from mia_utils.book.findings import Finding, RegularizationResults
from mia_utils.book.replicated import Setting
from mia_utils.data import DATASETS

#: Each threshold's empirical epsilon bound is taken at 95 % confidence.
EPSILON_ALPHA = 0.05

#: :func:`mia_utils.attacks.audit.epsilon_comparison`'s epsilon columns -> the page's headers.
EPSILON_COLUMNS = {"epsilon_rdp": "ε RDP (certified)", "epsilon_prv": "ε PRV (certified)",
                   "epsilon_empirical": "ε lower bound (attack)"}

#: How the epsilon tables print their floats (inside ``pd.option_context("display.float_format", ...)``).
EPSILON_FORMAT = "{:.3g}".format

#: The sweep figure's quantities: legend name -> metric of :meth:`Setting.estimate`.
SWEEP_METRICS = {"test accuracy": "test_acc", "Adv_Yeom": "adv_yeom", "Adv_Salem": "adv_salem"}


@dataclass
class DPChapter:
    """Chapter 03's evidence: ``dp[dataset]``, the DP-SGD settings of the profile's σ_DP grid (in
    grid order), and ``regularization[dataset]``, chapter 02's sweep, both over ``seeds``; the
    datasets in the page's order (the first is the lead, whose values the text cites)."""

    seeds: tuple[int, ...]
    dp: dict[str, list[Setting]]
    regularization: dict[str, RegularizationResults]

    @property
    def lead(self) -> str:
        return next(iter(self.dp))

    def baseline(self, dataset: str) -> Setting:
        """The non-private baseline of ``dataset`` (chapter 02's, over its baseline seeds)."""
        return self.regularization[dataset].baseline

    def loaded_text(self, dataset: str) -> str:
        """What loading ``dataset`` took, in words: settings, seeds and runs trained now."""
        trained = replicated.trained_count(self.dp[dataset]) + self.regularization[dataset].trained
        return (f"{DATASETS[dataset].title}: {len(self.dp[dataset])} noise levels x {len(self.seeds)} seeds; "
                f"{trained} runs trained now")


def load_chapter(profile, datasets, seeds, store=None, progress=print) -> DPChapter:
    """Train or read back, for each of ``datasets`` in order, the DP-SGD sweep
    (:func:`mia_utils.book.findings.dp_settings`) and chapter 02's sweep over ``seeds``, and pass
    :meth:`DPChapter.loaded_text` to ``progress`` (None: silent) after each dataset.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        datasets: the datasets' names (iterable of str) in the page's order; the first is the lead.
        seeds: the seeds (iterable of int) of every setting.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        progress: a callable taking one str (default ``print``), or None for silence.
    """
    chapter = DPChapter(tuple(seeds), {}, {})
    for dataset in datasets:
        chapter.dp[dataset] = findings.dp_settings(profile, dataset, chapter.seeds, store)
        chapter.regularization[dataset] = findings.regularization_results(profile, dataset, chapter.seeds, store)
        if progress is not None:
            progress(chapter.loaded_text(dataset))
    return chapter


def baseline_text(dataset: str, baseline: Setting) -> str:
    """The baseline's test accuracy and both advantages (seed means with 95 % intervals, %)."""
    return (f"{DATASETS[dataset].title}: baseline accuracy {baseline.estimate('test_acc')} %, "
            f"Adv_Yeom {baseline.estimate('adv_yeom')} %, Adv_Salem {baseline.estimate('adv_salem')} %")


def f6_findings(chapter: DPChapter) -> dict[str, Finding]:
    """F6 (:func:`mia_utils.book.findings.f6_dp_costs_more`) on each dataset, by dataset."""
    return {dataset: findings.f6_dp_costs_more(chapter.regularization[dataset], settings)
            for dataset, settings in chapter.dp.items()}


def f6_table(f6: dict[str, Finding]) -> pd.DataFrame:
    """The F6 verdicts as the page shows them: indexed by (finding, dataset), with the verdict,
    our figure with its 95 % interval and the paper's evidence."""
    frame = findings.findings_frame(list(f6.values())).set_index(["finding", "dataset"])
    return frame[["verdict", "ours (95 % interval)", "paper"]]


def by_noise(settings: list[Setting]) -> list[Setting]:
    """``settings`` from the weakest noise (smallest σ_DP) to the strongest."""
    return sorted(settings, key=lambda s: s.value)


def key_values(chapter: DPChapter, f6: dict[str, Finding]) -> dict:
    """The values the page's text glues about the sweep on the lead dataset: its title and the
    seed count; σ_DP (float) and mean certified ε of the strongest and the weakest noise; the
    strongest noise's paired changes of test accuracy and Adv_Yeom against the baseline (text,
    :meth:`mia_utils.book.replicated.Setting.change_text`); F6's verdict, figure and note."""
    lead = chapter.lead
    ordered, base = by_noise(chapter.dp[lead]), chapter.baseline(lead)
    strongest, weakest = ordered[-1], ordered[0]
    return {
        "lead_dataset": DATASETS[lead].title, "n_seeds": len(chapter.seeds),
        "strongest_sigma": float(strongest.value), "strongest_epsilon": mean_epsilon(strongest),
        "strongest_d_acc": strongest.change_text(base, "test_acc"),
        "strongest_d_yeom": strongest.change_text(base, "adv_yeom"),
        "weakest_sigma": float(weakest.value), "weakest_epsilon": mean_epsilon(weakest),
        "f6_verdict": f6[lead].verdict, "f6_ours": f6[lead].ours,
        "f6_note": f6[lead].note or "The DP setting matched the regularizer's protection.",
    }


def sweep_frame(settings: list[Setting]) -> pd.DataFrame:
    """One row per noise level, by increasing σ_DP: ``σ_DP``, the mean certified ``ε`` and one
    column of :class:`mia_utils.attacks.evidence.SeedEstimate` objects (fractions) per
    :data:`SWEEP_METRICS` name."""
    rows = [{"σ_DP": s.value, "ε": mean_epsilon(s),
             **{name: s.estimate(metric) for name, metric in SWEEP_METRICS.items()}} for s in settings]
    return pd.DataFrame(rows).sort_values("σ_DP")


def errorbar_percent(ax, x, estimates, **kwargs) -> None:
    """Plot seed estimates (fractions) at ``x`` as percent: the mean and its 95 % interval."""
    means = [100 * e.mean for e in estimates]
    errors = [[100 * (e.mean - e.low) for e in estimates], [100 * (e.high - e.mean) for e in estimates]]
    ax.errorbar(x, means, yerr=errors, marker="o", capsize=3, **kwargs)


def sweep_figure(settings: list[Setting], baseline: Setting, title: str):
    """The sweep of one dataset as a matplotlib Figure of two panels: left, test accuracy and both
    advantages (%, means and 95 % intervals over seeds) against σ_DP (log scale), with the
    baseline's mean accuracy dotted; right, Yeom's advantage (%) against the certified ε (log)."""
    import matplotlib.pyplot as plt

    frame = sweep_frame(settings)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4), layout="constrained")
    for name in SWEEP_METRICS:
        errorbar_percent(left, frame["σ_DP"], frame[name], label=name)
    left.set_xscale("log")
    left.set_xlabel("noise multiplier σ_DP (log scale)")
    left.set_ylabel("percent (mean and 95 % interval over seeds)")
    left.axhline(100 * baseline.mean("test_acc"), color="0.4", linestyle=":", linewidth=1)
    left.legend(frameon=False, fontsize="small")
    errorbar_percent(right, frame["ε"], frame["Adv_Yeom"])
    right.set_xscale("log")
    right.set_xlabel("privacy budget ε (log scale)")
    right.set_ylabel("Yeom advantage (%)")
    fig.suptitle(title)
    return fig


def sweep_figures(chapter: DPChapter) -> dict:
    """:func:`sweep_figure` of each dataset, by dataset, in the chapter's order."""
    return {dataset: sweep_figure(settings, chapter.baseline(dataset), DATASETS[dataset].title)
            for dataset, settings in chapter.dp.items()}


def epsilon_tables(chapter: DPChapter, alpha: float = EPSILON_ALPHA, store=None) -> dict[str, pd.DataFrame]:
    """:func:`mia_utils.attacks.audit.epsilon_comparison` of each dataset's sweep (one row per
    noise level and seed), by dataset, with the empirical bounds at confidence 1 - ``alpha``."""
    return {dataset: epsilon_comparison(settings, alpha=alpha, store=store) for dataset, settings in chapter.dp.items()}


def epsilon_heading(dataset: str, table: pd.DataFrame) -> str:
    """The line above a dataset's epsilon tables."""
    return f"{DATASETS[dataset].title}: mean over {table['seed'].nunique()} seeds, then each seed"


def epsilon_means(table: pd.DataFrame) -> pd.DataFrame:
    """The certified and the empirical ε of :data:`EPSILON_COLUMNS`, means over seeds, one row per
    σ_DP, with the page's headers."""
    return table.groupby("sigma_dp")[list(EPSILON_COLUMNS)].mean().rename_axis("σ_DP").rename(columns=EPSILON_COLUMNS)


def epsilon_per_seed(table: pd.DataFrame) -> pd.DataFrame:
    """Each seed's ε values with the score that gave the empirical bound and its TPR and FPR
    (fractions), indexed by (σ_DP, seed), with the page's headers."""
    columns = {**EPSILON_COLUMNS, "attack": "score", "tpr": "TPR", "fpr": "FPR"}
    return (table.set_index(["sigma_dp", "seed"])[list(columns)]
            .rename_axis(["σ_DP", "seed"]).rename(columns=columns))


def prv_notes(table: pd.DataFrame) -> list[str]:
    """One line per σ_DP whose PRV ε was not computed, with the reason."""
    missing = table.loc[table["prv_note"] != "", ["sigma_dp", "prv_note"]].drop_duplicates().values
    return [f"PRV ε not computed at σ_DP = {sigma:g}: {note}" for sigma, note in missing]


def epsilon_key_values(chapter: DPChapter, tables: dict[str, pd.DataFrame], n_eval: int,
                       alpha: float = EPSILON_ALPHA) -> dict:
    """The values the page glues about certified against empirical ε on the lead dataset: the
    strongest noise's mean RDP, PRV and empirical ε; the sweep's largest mean empirical ε and its
    σ_DP; ``n_eval`` (members, and as many non-members, per evaluation set), the confidence as text
    and the largest ε any attack could show on such a set
    (:func:`mia_utils.attacks.metrics.epsilon_lower_bound_limit`)."""
    lead = chapter.lead
    means = tables[lead].groupby("sigma_dp")[list(EPSILON_COLUMNS)].mean()
    strongest = means.loc[float(by_noise(chapter.dp[lead])[-1].value)]
    return {
        "strongest_rdp": float(strongest["epsilon_rdp"]), "strongest_prv": float(strongest["epsilon_prv"]),
        "strongest_empirical": float(strongest["epsilon_empirical"]),
        "empirical_max": float(means["epsilon_empirical"].max()),
        "empirical_max_sigma": float(means["epsilon_empirical"].idxmax()),
        "n_eval_per_side": n_eval, "epsilon_confidence": f"{100 * (1 - alpha):g} %",
        "empirical_limit": epsilon_lower_bound_limit(n_eval, n_eval, alpha),
    }


def paper_epsilon_values(paper_eps: pd.DataFrame) -> dict:
    """The values the page glues from :func:`mia_utils.book.report.paper_epsilons` (one row per
    σ_DP of the paper, which must include 10, 0.25 and 0.1): RDP and PRV ε at σ_DP = 10, RDP at
    0.25 and 0.1, the accountant nearest the paper's figure at each σ_DP and what that suggests
    (text), and RDP's ε over the paper's at σ_DP = 0.1."""
    by_sigma = paper_eps.set_index("sigma_dp")
    nearest = sorted(set(by_sigma["closest"]) - {"none"})
    return {
        "paper_eps_rdp_10": float(by_sigma.loc[10.0, "rdp"]),
        "paper_eps_prv_10": float(by_sigma.loc[10.0, "prv"]),
        "paper_eps_rdp_025": float(by_sigma.loc[0.25, "rdp"]),
        "paper_eps_rdp_01": float(by_sigma.loc[0.1, "rdp"]),
        "paper_eps_closest": ", ".join(f"{name} at σ_DP = {sigma:g}" for sigma, name in by_sigma["closest"].items()),
        "paper_eps_resembles": (f"resemble {nearest[0]} accounting" if len(nearest) == 1
                                else "resemble no single accountant"),
        "paper_eps_ratio_01": float(by_sigma.loc[0.1, "rdp"] / by_sigma.loc[0.1, "paper"]),
    }


def paper_epsilon_table(paper_eps: pd.DataFrame):
    """:func:`mia_utils.book.report.paper_epsilons` as the page shows it: a pandas Styler indexed
    by σ_DP, epsilons to three significant digits, "not computable" where NaN."""
    columns = {"sigma_dp": "σ_DP", "paper": "paper's ε (≈)", "rdp": "ε, RDP", "prv": "ε, PRV",
               "closest": "nearest (log scale)"}
    return paper_eps.rename(columns=columns).set_index("σ_DP").style.format(
        {"paper's ε (≈)": "{:.3g}", "ε, RDP": "{:.3g}", "ε, PRV": "{:.3g}"}, na_rep="not computable")


def setting_table(settings: list[Setting], grid) -> pd.DataFrame:
    """The DP-SGD setting of the first seed of ``settings[0]`` (clipping norm, Poisson sampling
    rate, steps, δ, per-sample gradient mode) and the σ_DP ``grid``, as a one-column table."""
    first = settings[0].facts[0]
    return pd.Series({"max grad norm": first["dp_max_grad_norm"], "sampling rate": first["dp_sample_rate"],
                      "steps": first["dp_steps"], "δ": first["dp_delta"],
                      "per-sample gradients": first["dp_grad_sample_mode"],
                      "σ_DP grid": ", ".join(f"{v:g}" for v in grid)}, name="DP-SGD setting").to_frame()
