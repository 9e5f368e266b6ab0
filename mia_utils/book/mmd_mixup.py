"""Chapter 07, MMD + mix-up (Li et al. 2021): its settings over seeds and its verdicts: does it lower
Adv_Yeom and the gap against the baseline (:func:`mmd_versus_baseline`, seed by seed), and does it
leak less than each paper mechanism at matched accuracy (:func:`matched_accuracy_comparison`).

The chapter's page reads its tables, glue values and figure from here: every attack against the
two models (:func:`attacks_table`), the settings and their comparisons (:func:`mmd_results`,
:func:`comparison_table`, :func:`comparison_figure`), population LiRA
(:func:`population_comparison`), the glued values (:func:`key_values`) and the two MMD schedules
(:func:`schedule_settings`, :func:`schedule_table`, :func:`schedule_values`)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from mia_utils import experiment
from mia_utils.attacks import AttackInputs, run_attacks
from mia_utils.attacks.evidence import INCONCLUSIVE, combine_verdicts
from mia_utils.book.chapters import PAPER_MECHANISMS, related_shadow_count
from mia_utils.book.generalization import (
    LIRA_METRIC,
    METRIC_NAMES,
    population_difference,
    population_lira,
    population_means,
    shadow_power_note,
)
from mia_utils.book.replicated import Setting
from mia_utils.book.verdicts import (
    RelatedFinding,
    difference_finding,
    estimate_text,
    nan_estimate,
    rate_text,
    selection_level,
    verdict_counts,
)
from mia_utils.data import DATASETS


def mmd_defense(params: dict) -> dict:
    """Chapter 07's defense as mechanism values, from its validated parameters."""
    return {"mixup": params["mixup_alpha"], "mmd": params["mmd_lambda"]}


#: Chapter 07's two MMD schedules: the MMD term in every step's loss (the book's headline), and
#: Li et al.'s code's gated pass between epochs (:class:`mia_utils.defenses.mmd.GatedMMD`).
MMD_SCHEDULES = {"every step": "mmd", "authors' code": "mmd_gated"}


def mmd_setting_configs(profile, dataset: str, params: dict, seeds, schedule: str = "every step") -> list:
    """Chapter 07's MMD + mix-up targets, one per seed in ``seeds``: the setting ``mmd = λ`` (or
    ``mmd_gated = λ`` for ``schedule`` "authors' code", :data:`MMD_SCHEDULES`) with mix-up
    underneath (:func:`mia_utils.book.replicated.setting_configs`), so that it pairs seed by seed with the
    baseline and the regularization chapter's settings.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        dataset: the dataset's name, one of the profile's.
        params: chapter 07's validated parameters (:data:`mia_utils.book.chapters.CHAPTERS`), a dict
            with ``mixup_alpha`` (mix-up's Beta(alpha, alpha) parameter) and ``mmd_lambda`` (the
            MMD^2 penalty's weight).
        seeds: the seeds (iterable of int), one target each.
        schedule: a key of :data:`MMD_SCHEDULES` (``"every step"`` or ``"authors' code"``).
    """
    from mia_utils.book import replicated

    defense = mmd_defense(params)
    return replicated.setting_configs(profile, dataset, MMD_SCHEDULES[schedule], defense["mmd"], seeds,
                                  {"mixup": defense["mixup"]})


def mmd_setting(profile, dataset: str, params: dict, seeds, store=None, schedule: str = "every step") -> Setting:
    """Train (or read back) and evaluate :func:`mmd_setting_configs`, as a :class:`Setting`.

    Args:
        profile: as for :func:`mmd_setting_configs`.
        dataset: as for :func:`mmd_setting_configs`.
        params: as for :func:`mmd_setting_configs` (``mixup_alpha``, ``mmd_lambda``).
        seeds: as for :func:`mmd_setting_configs`.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        schedule: as for :func:`mmd_setting_configs`.
    """
    from mia_utils.book import replicated

    defense = mmd_defense(params)
    return replicated.run_setting(profile, dataset, MMD_SCHEDULES[schedule], defense["mmd"], seeds, store,
                              {"mixup": defense["mixup"]})


def evaluated_setting(run: experiment.Run, profile, mechanism: str, value=None, store=None) -> Setting:
    """One trained run as a one-seed :class:`mia_utils.book.replicated.Setting`, evaluated (and cached)
    exactly as :func:`mia_utils.book.replicated.run_setting` evaluates its runs, so it pairs with them.

    Args:
        run: the trained :class:`mia_utils.experiment.Run`; its seed is the setting's one seed.
        profile: the book's :class:`~mia_utils.book.profiles.Profile` (its ``bootstrap``).
        mechanism: the setting's mechanism name (str), as a label.
        value: the mechanism's value (or None), as a label.
        store: the :class:`mia_utils.store.ResultStore` the evaluation is cached in (None = default).
    """
    from mia_utils.attacks import evaluation

    config = run.config
    metrics_ = evaluation.evaluate(run, n_bootstrap=profile.bootstrap, seed=config.seed, store=store)
    return Setting(mechanism, value, (config.seed,), [metrics_], [run.provenance.get("mechanisms", {})], [config],
                   [None], int(not run.from_store))


def setting_difference(claim: str, setting: Setting, reference: Setting, metric: str, expected: str = "decrease",
                       candidates: int = 1, nan_text: str = "not measurable") -> RelatedFinding:
    """:func:`difference_finding` of ``setting - reference`` on ``metric``, seed by seed (they must
    share their seeds), at the Bonferroni level for ``candidates``.

    Args:
        claim: the claim tested, in words (str).
        setting: the :class:`~mia_utils.book.replicated.Setting` judged.
        reference: the setting it is compared with, over the same seeds in the same order.
        metric: a metric of :data:`mia_utils.attacks.evaluation.METRICS` (e.g. ``"adv_yeom"``;
            fractions).
        expected: the predicted direction of ``setting - reference``, ``"decrease"`` or ``"increase"``.
        candidates: how many settings ``setting`` was chosen from (int >= 1).
        nan_text: the text when the difference is NaN (str).
    """
    if setting.seeds != reference.seeds:
        raise ValueError(f"reference: seeds {reference.seeds} differ from the setting's {setting.seeds}")
    return difference_finding(claim, setting.values(metric), reference.values(metric), setting.variances(metric),
                              reference.variances(metric), expected, selection_level(candidates), candidates,
                              nan_text)


def mmd_versus_baseline(baseline: Setting, defended: Setting,
                        metrics_=("adv_yeom", "gap")) -> dict[str, RelatedFinding]:
    """Li et al.'s claim that MMD + mix-up lowers each of ``metrics_`` below the baseline's:
    :func:`setting_difference` (defended - baseline, expected to decrease) per metric, and
    ``"all"``, which holds when every one holds (:func:`combined_verdict`)."""
    out = {m: setting_difference(f"MMD + mix-up lowers {METRIC_NAMES.get(m, m)}", defended, baseline, m)
           for m in metrics_}
    states = [f.verdict for f in out.values()]
    summary = ", ".join(f"{METRIC_NAMES.get(m, m)} {f.verdict}" for m, f in out.items())
    names = " and ".join(METRIC_NAMES.get(m, m) for m in metrics_)
    out["all"] = RelatedFinding(f"MMD + mix-up lowers both {names}", combine_verdicts(states),
                                nan_estimate(), summary)
    return out


@dataclass(frozen=True)
class MatchedComparison:
    """One paper mechanism against MMD + mix-up at matched accuracy: its least-leaking
    ``setting`` among the ``candidates`` at least as accurate as MMD + mix-up (None: none is),
    and the ``finding`` that MMD + mix-up leaks less than it."""

    mechanism: str
    setting: Setting | None
    candidates: int
    finding: RelatedFinding


def matched_accuracy_comparison(defended: Setting, settings: list[Setting], mechanisms,
                                metric: str = "adv_yeom") -> list[MatchedComparison]:
    """Li et al.'s claim that MMD + mix-up (``defended``) leaks less than each of the paper's
    ``mechanisms`` at matched accuracy. Per mechanism: among its ``settings`` whose mean test
    accuracy is at least the defense's, the one with the lowest ``metric``; the verdict reads
    ``defended - chosen`` on ``metric`` (paired by seed; expected below 0), at the Bonferroni
    level for the number of candidates it was chosen from (:func:`selection_level`). holds: MMD +
    mix-up leaks less; contradicted: the mechanism does. No setting as accurate: inconclusive."""
    budget = defended.mean("test_acc")
    out = []
    for mechanism in mechanisms:
        pool = [s for s in settings if s.mechanism == mechanism and s.mean("test_acc") >= budget - 1e-12]
        claim = f"MMD + mix-up leaks less than {mechanism.replace('_', ' ')} at matched accuracy"
        if not pool:
            finding = RelatedFinding(claim, INCONCLUSIVE, nan_estimate(),
                                     "no setting of it is at least as accurate as MMD + mix-up")
            out.append(MatchedComparison(mechanism, None, 0, finding))
            continue
        best = min(pool, key=lambda s: s.mean(metric))
        finding = setting_difference(f"{claim} ({best.label})", defended, best, metric, "decrease", len(pool))
        out.append(MatchedComparison(mechanism, best, len(pool), finding))
    return out


# --- chapter 07's page: every attack, the comparisons, population LiRA, the two schedules -------

#: The two models chapter 07 attacks side by side, as its tables and figure name them.
BASELINE_LABEL, DEFENDED_LABEL = "baseline", "MMD + mix-up"


def attack_rows(results: dict, dataset_title: str, model: str, n_nonmembers: int) -> list[dict]:
    """One row per attack of ``results`` (attack name -> :class:`mia_utils.attacks.AttackResult`,
    as :func:`mia_utils.attacks.run_attacks` gives them) against one ``model`` of one dataset: its
    advantage, AUC and TPR at 1 % and 0.1 % FPR in percent with their normal 95 % intervals from
    the bootstrap standard deviations (:func:`mia_utils.book.verdicts.rate_text`; a TPR the
    ``n_nonmembers`` non-members per side cannot resolve reads "not resolvable at n = …")."""
    rows = []
    for name, result in results.items():
        m = result.metrics
        rows.append({
            "dataset": dataset_title, "model": model, "attack": name,
            "advantage (%)": rate_text(m["advantage"].value, m["advantage"].std ** 2),
            "AUC (%)": rate_text(m["auc"].value, m["auc"].std ** 2),
            "TPR @ 1 % FPR (%)": rate_text(m["tpr_at_1%_fpr"].value, m["tpr_at_1%_fpr"].std ** 2, n_nonmembers,
                                           digits=2),
            "TPR @ 0.1 % FPR (%)": rate_text(m["tpr_at_0.1%_fpr"].value, m["tpr_at_0.1%_fpr"].std ** 2,
                                             n_nonmembers, digits=2)})
    return rows


def attacks_frame(rows: list[dict]) -> pd.DataFrame:
    """:func:`attack_rows` of every (dataset, model) for display, narrow enough for the page: one
    column per measure, indexed by dataset, attack and model, the baseline's row above the
    defended model's for each attack (datasets and attacks in the order of ``rows``)."""
    frame = pd.DataFrame(rows)
    order = {column: {value: i for i, value in enumerate(dict.fromkeys(frame[column]))}
             for column in ("dataset", "attack")}
    order["model"] = {BASELINE_LABEL: 0, DEFENDED_LABEL: 1}
    keys = frame[["dataset", "attack", "model"]].apply(lambda column: column.map(order[column.name]))
    return frame.iloc[keys.sort_values(["dataset", "attack", "model"]).index].set_index(["dataset", "attack", "model"])


def attacks_table(profile, params: dict, store=None) -> pd.DataFrame:
    """Chapter 07's first table: every attack of :func:`mia_utils.attacks.run_attacks` (the LiRA
    variants with :func:`mia_utils.book.chapters.related_shadow_count` shadow models, trained with
    each model's own recipe) against the final baseline and MMD + mix-up models of the chapter's
    first seed, on every dataset of ``params`` (:func:`attack_rows`, :func:`attacks_frame`)."""
    n_shadows, defense, rows = related_shadow_count(params), mmd_defense(params), []
    for dataset in params["datasets"]:
        base = profile.base_config(dataset, seed=params["seed"])
        for label, config in ((BASELINE_LABEL, base), (DEFENDED_LABEL, base.with_mechanisms(**defense))):
            config = config.replace(snapshot_epochs=())  # the final models only
            target = experiment.run(config, store)
            shadow_logits, shadow_in, _ = experiment.shadow_outputs(config, n_shadows, store)
            results = run_attacks(AttackInputs.from_outputs(target.outputs), shadow_logits, shadow_in,
                                  n_bootstrap=profile.bootstrap, seed=params["seed"])
            rows += attack_rows(results, DATASETS[dataset].title, label, base.n_eval)
    return attacks_frame(rows)


@dataclass(frozen=True)
class MMDResults:
    """Chapter 07's settings over seeds on its lead ``dataset`` (a key of
    :data:`mia_utils.data.DATASETS`): the ``baseline`` (over the profile's baseline seeds, which
    include the defense's), MMD + mix-up (``defended``, mechanism values ``defense``), the findings
    against the baseline on the defense's seeds (``versus``, :func:`mmd_versus_baseline`) and
    against each paper mechanism at matched accuracy (``matched``,
    :func:`matched_accuracy_comparison`)."""

    dataset: str
    defense: dict
    baseline: Setting
    defended: Setting
    versus: dict
    matched: list

    @property
    def paired_baseline(self) -> Setting:
        """The baseline on the defense's seeds, the one every paired comparison reads."""
        return self.baseline.on_seeds(self.defended.seeds)


def mmd_results(profile, params: dict, seeds, store=None) -> MMDResults:
    """Train (or read back) chapter 07's settings on its first dataset over ``seeds``: the baseline
    and the regularization chapter's sweep of the paper's mechanisms
    (:func:`mia_utils.book.replicated.regularization_sweep`) and MMD + mix-up (:func:`mmd_setting`),
    and compare them (:class:`MMDResults`)."""
    from mia_utils.book import replicated

    lead = params["datasets"][0]
    baseline, sweep = replicated.regularization_sweep(profile, lead, PAPER_MECHANISMS, seeds, store)
    defended = mmd_setting(profile, lead, params, seeds, store)
    versus = mmd_versus_baseline(baseline.on_seeds(defended.seeds), defended)
    matched = matched_accuracy_comparison(defended, sweep, PAPER_MECHANISMS)
    return MMDResults(lead, mmd_defense(params), baseline, defended, versus, matched)


def defended_label(defense: dict) -> str:
    """MMD + mix-up's row title, e.g. ``"MMD + mix-up (λ = 1, α = 1)"``."""
    return f"{DEFENDED_LABEL} (λ = {defense['mmd']:g}, α = {defense['mixup']:g})"


def setting_columns(setting: Setting) -> dict:
    """A setting's mean over seeds and 95 % interval, in percent (the gap in points), of test
    accuracy, the gap, Adv_Yeom and Adv_Salem, under the chapter's column titles."""
    columns = {"test acc (%)": "test_acc", "gap (pp)": "gap", "Adv_Yeom (%)": "adv_yeom", "Adv_Salem (%)": "adv_salem"}
    return {title: setting.estimate(metric).format() for title, metric in columns.items()}


def comparison_table(results: MMDResults) -> pd.DataFrame:
    """Chapter 07's second table, indexed by ``defense``: the baseline (all its seeds), MMD + mix-up
    and each paper mechanism's matched setting (:func:`setting_columns`), and for the mechanisms the
    paired difference MMD + mix-up − it in Adv_Yeom (points) and the verdict that MMD + mix-up
    leaks less (empty on the first two rows)."""
    rows = [(f"{BASELINE_LABEL} ({len(results.baseline.seeds)} seeds)", results.baseline, None),
            (defended_label(results.defense), results.defended, None)]
    rows += [(c.setting.label, c.setting, c) for c in results.matched if c.setting is not None]
    return pd.DataFrame([{"defense": name, **setting_columns(setting),
                          "MMD + mix-up − this, Adv_Yeom (pp)": "" if comparison is None
                          else comparison.finding.estimate.format(signed=True),
                          "MMD + mix-up leaks less": "" if comparison is None else comparison.finding.verdict}
                         for name, setting, comparison in rows]).set_index("defense")


@dataclass(frozen=True)
class PopulationComparison:
    """Population LiRA against the baseline and MMD + mix-up (``populations``: model label -> rows
    of :func:`mia_utils.book.generalization.population_lira`, one per model), ``n_shadows`` models
    each; ``n_nonmembers``: the fewest non-members per side any model was evaluated on;
    ``finding``: MMD + mix-up lowers ``metric``, model by model; ``low``: label -> the mean over
    the models of ``metric`` with its 95 % interval, in percent (or "not resolvable at n = …")."""

    populations: dict
    n_shadows: int
    metric: str
    n_nonmembers: int
    finding: RelatedFinding
    low: dict


def population_finding(populations: dict, n_shadows: int, metric: str = LIRA_METRIC) -> PopulationComparison:
    """:class:`PopulationComparison` of two populations (``populations`` holds the frames of
    :data:`BASELINE_LABEL` and :data:`DEFENDED_LABEL`, with the same models)."""
    n = min(int(frame["n_nonmembers"].min()) for frame in populations.values())
    finding = population_difference(f"MMD + mix-up lowers {METRIC_NAMES.get(metric, metric)}",
                                     populations[DEFENDED_LABEL], populations[BASELINE_LABEL], metric,
                                     nan_text=f"not resolvable at n = {n:,} non-members")
    low = {label: estimate_text(population_means(frame, by=("epoch",)).iloc[0][f"{metric}_estimate"], n, 2, unit="%")
           for label, frame in populations.items()}
    return PopulationComparison(populations, int(n_shadows), metric, n, finding, low)


def population_comparison(profile, params: dict, dataset: str, store=None,
                          metric: str = LIRA_METRIC) -> PopulationComparison:
    """Population LiRA (:func:`mia_utils.book.generalization.population_lira`, final models only)
    against the baseline of ``dataset`` (the chapter's first seed) and MMD + mix-up, with
    :func:`mia_utils.book.chapters.related_shadow_count` models each (:func:`population_finding`).

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile` (base config and bootstrap).
        params: chapter 07's validated parameters (:data:`mia_utils.book.chapters.CHAPTERS`), a dict
            with ``mixup_alpha`` (mix-up's Beta(alpha, alpha) parameter) and ``mmd_lambda`` (the
            MMD^2 penalty's weight), ``seed`` (the chapter's first seed, also the LiRA bootstrap's
            seed), ``shadow_models`` (models per population; 0 = the count of the profile named
            ``profile``) and ``profile`` (the profile's name).
        dataset: the dataset's name, one of the profile's.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        metric: the LiRA metric judged (default ``"tpr_at_1%_fpr"``; fractions).
    """
    n_shadows = related_shadow_count(params)
    base = profile.base_config(dataset, seed=params["seed"]).replace(snapshot_epochs=())
    populations = {label: pd.DataFrame(population_lira(config, n_shadows, [config.epochs], store,
                                                       n_bootstrap=profile.bootstrap, seed=params["seed"]))
                   for label, config in ((BASELINE_LABEL, base),
                                         (DEFENDED_LABEL, base.with_mechanisms(**mmd_defense(params))))}
    return population_finding(populations, n_shadows, metric)


def key_values(results: MMDResults, lira: PopulationComparison) -> dict:
    """Every value chapter 07's findings glue, by glue name: the lead dataset's title, the seed and
    shadow counts, the verdicts and texts against the baseline (``f07_*``), the means over seeds
    (``base_*`` / ``mmd_*``: accuracy and Adv_Yeom in %, the gap in points; LiRA's ``*_lira_low``
    over the population models), and the matched-accuracy comparison (``n_mechanisms``,
    ``matched_counts``, ``matched_list``, a Markdown list, and ``f07_beats_verdict``)."""
    from IPython.display import Markdown

    values = {"lead_dataset": DATASETS[results.dataset].title, "n_seeds": len(results.defended.seeds),
              "n_shadows": lira.n_shadows, "n_shadows_per_target": lira.n_shadows - 1,
              "shadow_power": shadow_power_note(lira.n_shadows - 1)}
    for key in ("adv_yeom", "gap", "all"):
        values[f"f07_{key}_verdict"] = results.versus[key].verdict
        values[f"f07_{key}_text"] = results.versus[key].text
    values["f07_lira_verdict"], values["f07_lira_text"] = lira.finding.verdict, lira.finding.text
    for key, metric, unit in (("acc", "test_acc", "%"), ("gap", "gap", "points"), ("yeom", "adv_yeom", "%")):
        values[f"base_{key}"] = f"{results.paired_baseline.estimate(metric).format()} {unit}"
        values[f"mmd_{key}"] = f"{results.defended.estimate(metric).format()} {unit}"
    values["base_lira_low"], values["mmd_lira_low"] = lira.low[BASELINE_LABEL], lira.low[DEFENDED_LABEL]
    findings = [c.finding for c in results.matched]
    values.update({"n_mechanisms": len(results.matched), "matched_counts": verdict_counts(findings),
                   "matched_list": Markdown("\n".join(f"- {f.line}" for f in findings)),
                   "f07_beats_verdict": combine_verdicts(f.verdict for f in findings)})
    return values


def comparison_figure(results: MMDResults):
    """Test accuracy (x, %) against Yeom's advantage (y, %), means over seeds with 95 % intervals as
    error bars, of the baseline, MMD + mix-up and each paper mechanism's matched setting, each
    annotated with its label; one legend entry per kind. Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    fig, ax = plt.subplots(figsize=(7.5, 4), layout="constrained")
    plotted = [(BASELINE_LABEL, BASELINE_LABEL, results.baseline), (DEFENDED_LABEL, DEFENDED_LABEL, results.defended)]
    plotted += [(c.setting.label, "paper's mechanism", c.setting) for c in results.matched if c.setting is not None]
    palette = dict(zip((BASELINE_LABEL, DEFENDED_LABEL, "paper's mechanism"), sns.color_palette("colorblind", 3)))
    for label, kind, setting in plotted:
        accuracy, yeom = setting.estimate("test_acc"), setting.estimate("adv_yeom")
        ax.errorbar(100 * accuracy.mean, 100 * yeom.mean, yerr=100 * yeom.half_width, xerr=100 * accuracy.half_width,
                    fmt="o", color=palette[kind], label=kind, capsize=2)
        ax.annotate(label, (100 * accuracy.mean, 100 * yeom.mean), fontsize="x-small", xytext=(4, 3),
                    textcoords="offset points")
    handles, labels = ax.get_legend_handles_labels()
    unique = dict(zip(labels, handles))
    ax.legend(unique.values(), unique.keys(), frameon=False, fontsize="small")
    ax.set_xlabel("test accuracy (%)")
    ax.set_ylabel("Yeom's advantage (%)")
    return fig


def schedule_settings(profile, dataset: str, params: dict, seeds, store=None) -> dict[str, Setting]:
    """MMD + mix-up over ``seeds`` on each schedule of :data:`MMD_SCHEDULES`, by schedule name.

    Args:
        profile: as for :func:`mmd_setting_configs`.
        dataset: as for :func:`mmd_setting_configs`.
        params: as for :func:`mmd_setting_configs` (``mixup_alpha``, ``mmd_lambda``).
        seeds: the seeds (iterable of int) of each schedule's setting.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
    """
    return {name: mmd_setting(profile, dataset, params, seeds, store, schedule=name) for name in MMD_SCHEDULES}


def gated_passes_text(setting: Setting) -> str:
    """How many epochs took the gated MMD pass, seed by seed ("1, 0"), or "every one" for the
    schedule without a gate (its runs report no ``mmd_gated_passes``)."""
    passes = [facts.get("mmd_gated_passes") for facts in setting.facts]
    return "every one" if passes[0] is None else ", ".join(str(p) for p in passes)


def schedule_table(schedules: dict[str, Setting], baseline: Setting) -> pd.DataFrame:
    """Chapter 07's schedule table: one column per schedule (:func:`schedule_settings`), one row
    per measure (axis ``measure``): :func:`setting_columns`, the loss attack's AUC (%), the paired
    change in Adv_Yeom against ``baseline`` on the schedule's seeds (points), the verdicts that it
    lowers Adv_Yeom and narrows the gap (:func:`mmd_versus_baseline`) and
    :func:`gated_passes_text`."""
    rows = []
    for name, setting in schedules.items():
        against = mmd_versus_baseline(baseline.on_seeds(setting.seeds), setting)
        rows.append({"MMD schedule": name, **setting_columns(setting), "loss AUC (%)": setting.estimate("auc").format(),
                     "Δ Adv_Yeom vs baseline (pp)": against["adv_yeom"].estimate.format(signed=True),
                     "lowers Adv_Yeom": against["adv_yeom"].verdict, "narrows the gap": against["gap"].verdict,
                     "epochs with an MMD pass": gated_passes_text(setting)})
    return pd.DataFrame(rows).set_index("MMD schedule").T.rename_axis("measure")


def schedule_values(schedules: dict[str, Setting]) -> dict:
    """The schedule finding's glue values: that the authors' schedule leaks less (Adv_Yeom, seed by
    seed) than the term in every step, ``f07_schedule_verdict`` and ``f07_schedule_text``."""
    finding = setting_difference("the authors' schedule leaks less than the term in every step",
                                 schedules["authors' code"], schedules["every step"], "adv_yeom")
    return {"f07_schedule_verdict": finding.verdict, "f07_schedule_text": finding.text}
