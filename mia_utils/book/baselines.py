"""Chapter 01, the baselines: the unregularized model of each dataset over seeds (beside the paper's
Table 2), every attack on the first seed's model, LiRA with its shadow models included
(:func:`run_baselines`), the values the page glues (:func:`key_values`), and its figures: the loss
histograms, the score distributions, the ROC curves (:mod:`mia_utils.attacks.plots`) and the
training curves."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from mia_utils import experiment
from mia_utils.attacks import AttackInputs, AttackResult, metrics, plots, run_attacks
from mia_utils.book import replicated, report
from mia_utils.book.chapters import related_shadow_count
from mia_utils.book.plan import training_images
from mia_utils.data import DATASETS

#: The metric of the low-FPR regime the page names its strongest attack by.
LOW_FPR = "tpr_at_0.1%_fpr"
#: The attacks whose score distributions the page shows, and those in its ROC figure.
SCORES_SHOWN = ("confidence", "modified_entropy", "salem", "lira_online")
ROC_SHOWN = ("yeom", "confidence", "entropy", "modified_entropy", "salem", "lira_online", "lira_offline")


@dataclass
class DatasetBaseline:
    """One dataset's baseline: ``setting``, the unregularized model over the chapter's seeds;
    ``run``, the first seed's target model (trained for the chapter's epochs); ``shadow_runs``,
    LiRA's shadow models of that target; ``attacks``, attack name -> result on ``run``."""

    dataset: str
    setting: replicated.Setting
    run: experiment.Run
    shadow_runs: list
    attacks: dict[str, AttackResult]

    @property
    def title(self) -> str:
        return DATASETS[self.dataset].title


@dataclass
class Baselines:
    """The chapter's results: ``datasets``, dataset key -> :class:`DatasetBaseline` in the order of
    the ``datasets`` parameter (the first leads the text); ``seeds``; ``n_shadows``, LiRA's shadow
    models per target; ``n_bootstrap``, the bootstrap resamples of every attack metric."""

    datasets: dict[str, DatasetBaseline]
    seeds: tuple[int, ...]
    n_shadows: int
    n_bootstrap: int

    @property
    def lead(self) -> DatasetBaseline:
        return next(iter(self.datasets.values()))

    def settings(self) -> dict[str, replicated.Setting]:
        """Dataset -> baseline setting, for :func:`mia_utils.book.report.baseline_comparison`."""
        return {dataset: entry.setting for dataset, entry in self.datasets.items()}

    def describe(self) -> str:
        """One line per dataset: how many target models (which seeds) and shadow models it used."""
        seeds = ", ".join(map(str, self.seeds))
        return "\n".join(f"{entry.title}: {len(self.seeds)} target model(s) (seeds {seeds}) and {self.n_shadows} "
                         f"shadow models for seed {self.seeds[0]}" for entry in self.datasets.values())

    def attack_tables(self) -> dict[str, pd.DataFrame]:
        """Dataset title -> :func:`mia_utils.book.report.attack_table` of its first seed's model."""
        return {entry.title: report.attack_table(entry.attacks) for entry in self.datasets.values()}


def run_baselines(profile, params: dict, seeds, store=None) -> Baselines:
    """Train or read back every run of the chapter and attack the first seed's models. For each of
    ``params["datasets"]``: the baseline over ``seeds`` (:func:`mia_utils.book.replicated.run_baseline`),
    the first seed's target with ``params["epochs"]`` (0: the profile's), its shadow models (the
    ``shadow_models`` parameter, 0: the profile's count) and every attack of
    :func:`mia_utils.attacks.run_attacks` with ``profile.bootstrap`` resamples."""
    n_shadows = related_shadow_count(params)
    entries = {}
    for dataset in params["datasets"]:
        setting = replicated.run_baseline(profile, dataset, seeds, store)
        config = profile.base_config(dataset, seed=seeds[0], epochs=params["epochs"] or None)
        run = experiment.run(config, store)
        shadow_logits, shadow_in, shadow_runs = experiment.shadow_outputs(config, n_shadows, store)
        results = run_attacks(AttackInputs.from_outputs(run.outputs), shadow_logits, shadow_in,
                              n_bootstrap=profile.bootstrap, seed=seeds[0])
        entries[dataset] = DatasetBaseline(dataset, setting, run, shadow_runs, results)
    return Baselines(entries, tuple(seeds), n_shadows, profile.bootstrap)


def best_low_fpr_attack(results: dict[str, AttackResult], metric: str = LOW_FPR) -> str | None:
    """The attack with the highest ``metric`` (a TPR at a low FPR) among those whose evaluation set
    resolves it; None when none does."""
    resolvable = {name: result for name, result in results.items() if result.metrics[metric].resolvable}
    if not resolvable:
        return None
    return max(resolvable, key=lambda name: resolvable[name].metrics[metric].value)


def key_values(results: Baselines) -> dict:
    """Every value the page's text glues, about the lead dataset: the seed estimates of accuracy,
    gap and advantages (formatted "mean [low, high]", percent), the paper's Table 2 values (%),
    the set sizes, Yeom's threshold (nats), its TPR and FPR (%), the AUCs and low-FPR TPRs of Yeom
    and LiRA online, the strongest attack at 0.1 % FPR, and the run counts."""
    lead = results.lead
    setting, attacks, run = lead.setting, lead.attacks, lead.run
    paper = report.published("table2_baselines").set_index("dataset").loc[lead.dataset]
    best = best_low_fpr_attack(attacks)
    adv_yeom, adv_salem = setting.estimate("adv_yeom"), setting.estimate("adv_salem")
    n_nonmembers = int((~attacks["yeom"].is_member).sum())
    shadow_images = [training_images(shadow.config) for shadow in lead.shadow_runs]
    return {
        "lead_dataset": lead.title, "n_seeds": len(results.seeds),
        "lead_test_acc": setting.estimate("test_acc").format(),
        "lead_train_acc": setting.estimate("train_acc").format(), "lead_gap": setting.estimate("gap").format(),
        "lead_adv_yeom": adv_yeom.format(), "lead_adv_salem": adv_salem.format(),
        "lead_adv_yeom_mean": 100 * adv_yeom.mean, "lead_adv_salem_mean": 100 * adv_salem.mean,
        "lead_paper_acc": float(paper["acc_pct"]), "lead_paper_adv_yeom": float(paper["adv_yeom_pct"]),
        "lead_paper_adv_salem": float(paper["adv_salem_pct"]),
        "lead_members": run.config.n_members, "lead_eval": 2 * run.config.n_eval,
        "lead_adversary": 2 * run.config.n_adversary, "lead_threshold": -attacks["yeom"].threshold,
        "lead_tpr": 100 * attacks["yeom"].tpr, "lead_fpr": 100 * attacks["yeom"].fpr,
        "lead_yeom_auc": attacks["yeom"].metrics["auc"].format(interval=True),
        "lead_yeom_low_tpr": report.low_fpr_text(attacks["yeom"].metrics[LOW_FPR], n_nonmembers),
        "lead_lira_auc": attacks["lira_online"].metrics["auc"].format(interval=True),
        "lead_lira_low_tpr": report.low_fpr_text(attacks["lira_online"].metrics[LOW_FPR], n_nonmembers),
        "lead_best_low_fpr_attack": report.ATTACK_TITLES[best] if best else "none (not resolvable)",
        "lead_best_low_tpr": (report.low_fpr_text(attacks[best].metrics[LOW_FPR], n_nonmembers) if best
                              else f"not resolvable at n = {n_nonmembers:,}"),
        "n_shadows": results.n_shadows, "n_bootstrap": results.n_bootstrap, "first_seed": results.seeds[0],
        "lead_shadow_images": f"{min(shadow_images):,} to {max(shadow_images):,}",
    }


def loss_histogram_figure(results: Baselines) -> Figure:
    """One panel per dataset: density histograms (log-scale x, 50 bins) of the first seed's
    members' and non-members' losses (nats; below 1e-6 drawn at 1e-6), Yeom's threshold dashed,
    and its advantage (%) in the title."""
    fig, axes = plt.subplots(1, len(results.datasets), figsize=(6.4 * len(results.datasets), 4.0), squeeze=False)
    for ax, entry in zip(axes[0], results.datasets.values()):
        outputs, yeom_result = entry.run.outputs, entry.attacks["yeom"]
        losses = metrics.per_sample_loss(outputs["eval_logits"], outputs["eval_labels"]).numpy()
        frame = pd.DataFrame({"loss (nats)": losses.clip(min=1e-6),
                              "sample": ["member" if m else "non-member" for m in outputs["eval_is_member"].tolist()]})
        sns.histplot(frame, x="loss (nats)", hue="sample", log_scale=True, bins=50, element="step",
                     stat="density", common_norm=False, ax=ax)
        ax.axvline(-yeom_result.threshold, color="black", linestyle="--", label="threshold")
        ax.set_title(f"{entry.title}: Adv_Yeom = {100 * yeom_result.advantage:.1f} %")
        ax.set_ylabel("density")
    fig.tight_layout()
    return fig


def _shown(attacks: dict[str, AttackResult], names) -> dict[str, tuple]:
    """Attack title -> (scores, is_member) of ``names``, as :mod:`mia_utils.attacks.plots` takes them."""
    return {report.ATTACK_TITLES[name]: (attacks[name].scores, attacks[name].is_member) for name in names}


def score_figures(results: Baselines) -> dict[str, Figure]:
    """The figures of the section on scores, by glue name: ``loss_histogram``
    (:func:`loss_histogram_figure`) and ``score_distributions``, the lead dataset's scores of
    :data:`SCORES_SHOWN` (:func:`mia_utils.attacks.plots.score_distributions`)."""
    return {"loss_histogram": loss_histogram_figure(results),
            "score_distributions": plots.score_distributions(_shown(results.lead.attacks, SCORES_SHOWN))}


def roc_figure(results: Baselines) -> Figure:
    """The lead dataset's ROC curves of :data:`ROC_SHOWN`, log-log (:func:`mia_utils.attacks.plots.roc_curves`)."""
    return plots.roc_curves(_shown(results.lead.attacks, ROC_SHOWN))


def training_curves_figure(results: Baselines) -> Figure:
    """One panel per dataset: accuracy (%) of the first seed's model on members and non-members
    after each epoch (its ``history``)."""
    curves = pd.concat([pd.DataFrame(entry.run.history).assign(dataset=entry.title)
                        for entry in results.datasets.values()])
    long = curves.melt(id_vars=["epoch", "dataset"], value_vars=["train_acc", "test_acc"],
                       var_name="set", value_name="accuracy")
    long["set"] = long["set"].map({"train_acc": "members", "test_acc": "non-members"})
    long["accuracy (%)"] = 100 * long["accuracy"]
    grid = sns.relplot(long, x="epoch", y="accuracy (%)", hue="set", col="dataset", kind="line",
                       height=3.6, aspect=1.4, facet_kws={"sharey": False})
    grid.set_axis_labels("epoch", "accuracy (%)")
    return grid.figure
