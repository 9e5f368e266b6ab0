"""Chapter 06, LiRA against generalization: populations of models trained by one recipe (each on a
random half of a pool, the others its shadow models), LiRA on each at several epochs, and the
chapter's verdicts (:func:`generalization_findings`): does the gap predict LiRA's success better
than test accuracy, does LiRA's AUC rise with the gap, and does the least vulnerable combination of
cropping and early stopping lower LiRA's TPR at 1 % FPR. The page's own pieces live here too: its
populations over datasets (:func:`chapter_populations`), table, figure, rank correlations, glued
values (:func:`key_values`) and the augmented-query comparison (:func:`augmented_comparison`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from mia_utils import attacks, experiment
from mia_utils.attacks import AttackInputs, metrics
from mia_utils.attacks.evidence import combine_seeds, verdict
from mia_utils.book.verdicts import (
    MIN_RANK_POINTS,
    RelatedFinding,
    difference_finding,
    estimate_text,
    rank_correlations,
    rank_finding,
    rho_text,
    selection_level,
    too_few_points,
)
from mia_utils.config import RunConfig


def outputs_at(run: experiment.Run, epoch: int) -> dict[str, torch.Tensor]:
    """Per-sample outputs of ``run`` after ``epoch`` (the final outputs for its last epoch)."""
    return run.outputs if epoch == run.config.epochs else run.snapshot_outputs(epoch)


#: Shadow models per target below which the book labels a LiRA result underpowered: Carlini et
#: al. show the attack growing stronger with more shadow models (they train up to 256), and the
#: online attack needs several IN and OUT models per example to fit its Gaussians.
ENOUGH_SHADOWS = 16


def shadow_power_note(n_shadows: int) -> str:
    """How a LiRA result with ``n_shadows`` shadow models per target should be read, in words."""
    if n_shadows >= ENOUGH_SHADOWS:
        return f"{n_shadows} shadow models per target"
    return (f"underpowered: {n_shadows} shadow models per target, fewer than the {ENOUGH_SHADOWS} this book asks "
            "for, so LiRA may be weaker here than with more")


def population_runs(config: RunConfig, count: int, store=None) -> list[experiment.Run]:
    """The ``count`` population models of ``config`` (its LiRA shadow runs,
    ``config.shadow(i, count)``), trained or read back. Each trains on its own random half of
    the population pool (:func:`mia_utils.data.lira_pool`), with its own seed, so each is a
    target of its own membership split and training, and the others are its shadow models."""
    if config.is_shadow:
        raise ValueError("config: pass the configuration the population is drawn for, not one of its models")
    if count < 4 or count % 2:
        raise ValueError(f"count: a population needs an even number of at least 4 models (each target keeps "
                         f"IN and OUT shadow models for every example), got {count}")
    return [experiment.run(config.shadow(i, count), store) for i in range(count)]


def held_out_test_images(config: RunConfig) -> torch.Tensor:
    """Bool (test images,): the test images ``config`` did not train on. A population model's
    pool holds some test images, so its accuracy on the whole test set would include images it
    trained on; a target trains on training images only, so for it every test image counts."""
    from mia_utils.data import DATASETS, split_for, training_indices

    info = DATASETS[config.dataset]
    split = split_for(config, info)
    trained = training_indices(config, info, split)
    held_out = torch.ones(info.n_test, dtype=torch.bool)
    held_out[trained[trained >= info.n_train] - info.n_train] = False
    return held_out


def population_target(outputs: dict[str, torch.Tensor]) -> tuple[AttackInputs, torch.Tensor]:
    """One population model's evaluation set as LiRA's target sees it: its members are the
    evaluated examples it trained on (``eval_in_training``), its non-members the others, each
    side cut to the smaller one's size (first in evaluation order, which is independent of
    membership) so that the set is balanced. Returns the inputs and the indices kept (into the
    evaluation set), to cut the shadow models' outputs alike."""
    trained_in = outputs["eval_in_training"].bool()
    members, nonmembers = torch.nonzero(trained_in).squeeze(1), torch.nonzero(~trained_in).squeeze(1)
    size = min(len(members), len(nonmembers))
    kept = torch.cat([members[:size], nonmembers[:size]])
    inputs = AttackInputs(logits=outputs["eval_logits"][kept].double(), labels=outputs["eval_labels"][kept],
                          is_member=trained_in[kept], average_train_loss=outputs["member_losses"].double().mean().item(),
                          adv_logits=outputs["adv_logits"].double(), adv_labels=outputs["adv_labels"],
                          adv_is_member=outputs["adv_is_member"].bool())
    return inputs, kept


def population_lira(config: RunConfig, count: int, epochs, store=None, n_bootstrap: int = 200,
                    seed: int = 0, augmented: bool = False) -> list[dict]:
    """LiRA (online, fixed variance) against each of the ``count`` population models of
    ``config`` in turn (:func:`population_runs`), with the other ``count - 1`` as its shadow
    models, all stopped after each epoch E in ``epochs`` (their snapshots; E equal to
    ``config.epochs`` is the final model). This is the leave-one-out design of Carlini et al.'s
    reference code: targets and shadows train on equally many images, every model is a
    replicate (its own split and seed), and each evaluated example is IN for about half of a
    target's shadows.

    One row per (``model``, ``epoch``) with the model's ``train_acc``, ``test_acc`` (on the test
    images it did not train on, :func:`held_out_test_images`) and ``gap`` (fractions), LiRA's
    ``auc``, ``tpr_at_0.1%_fpr``, ``tpr_at_1%_fpr`` and ``advantage`` (fractions) with their
    bootstrap standard deviations (``*_std``) over the target's evaluation samples, and
    ``n_nonmembers``, the non-members it was evaluated on (:func:`population_target`), and
    ``queries``, how many queries of each image LiRA scored.

    The rows are computed once per (models, epochs, settings) and kept in the store as a derived
    ``lira-`` entry, so executing a chapter again reads them back.

    Args:
        config: the :class:`~mia_utils.config.RunConfig` the population is drawn for (not one of
            its shadow models).
        count: the number of population models (even int >= 4).
        epochs: the epochs E to attack at (iterable of int), each ``config.epochs`` or one of
            ``config.snapshot_epochs``.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        n_bootstrap: bootstrap resamples for each target's metrics (int >= 0).
        seed: base seed of the bootstrap; model i's attack uses ``seed + i`` (int).
        augmented: query every model on the augmentations its recipe trains with, as the
            reference does (:func:`augmented_queries`; for a recipe without random cropping, the
            clean image only), and average the per-query scores; otherwise (False) one clean
            query (bool).
    """
    from mia_utils.store import ResultStore, derived_key

    epochs = sorted(set(int(e) for e in epochs))
    missing = [e for e in epochs if e != config.epochs and e not in config.snapshot_epochs]
    if missing:
        raise ValueError(f"epochs: {missing} are not among the configuration's snapshot epochs "
                         f"{list(config.snapshot_epochs)} (nor its final epoch {config.epochs})")
    runs = population_runs(config, count, store)
    store = store or ResultStore()
    settings = {"runs": [run.key for run in runs], "epochs": epochs, "n_bootstrap": int(n_bootstrap),
                "seed": int(seed), "augmented": bool(augmented), "format": 1}
    key = derived_key("lira-", settings)
    entry = store.load(key, tensors=False)
    if entry is None:
        rows = _population_lira_rows(config, runs, count, epochs, n_bootstrap, seed, augmented)
        columns = list(rows[0]) if rows else []  # kept apart: the store writes JSON keys sorted
        store.save(key, {"lira": {"settings": settings, "columns": columns,
                                  "values": [[row[c] for c in columns] for row in rows]}}, {})
        entry = store.load(key, tensors=False)
        if entry is None:
            raise RuntimeError(f"the population LiRA entry {key} could not be read back from the store")
    saved = entry["json"]["lira"]
    return [dict(zip(saved["columns"], values)) for values in saved["values"]]


def _population_lira_rows(config: RunConfig, runs, count: int, epochs, n_bootstrap: int, seed: int,
                          augmented: bool) -> list[dict]:
    """:func:`population_lira`'s rows, computed (the caller caches them in the store)."""
    held_out = [held_out_test_images(run.config) for run in runs]  # per model, the same at every epoch
    query_images = augmented_queries(config) if augmented else None
    rows = []
    for epoch in epochs:
        outputs = [outputs_at(r, epoch) for r in runs]
        logits = torch.stack([o["eval_logits"] for o in outputs])
        trained_in = torch.stack([o["eval_in_training"] for o in outputs]).bool()
        queries = None if query_images is None else torch.stack([_query_logits(r, epoch, query_images) for r in runs])
        for index, (run, own) in enumerate(zip(runs, outputs)):
            inputs, kept = population_target(own)
            shadows = [i for i in range(count) if i != index]
            if queries is None:
                result = attacks.lira(inputs, logits[shadows][:, kept], trained_in[shadows][:, kept], online=True,
                                      fixed_variance=True, n_bootstrap=n_bootstrap, seed=seed + index)
            else:
                result = attacks.lira(inputs, queries[shadows][:, kept], trained_in[shadows][:, kept], online=True,
                                      fixed_variance=True, n_bootstrap=n_bootstrap, seed=seed + index,
                                      queries=queries[index][kept])
            train_acc = own["member_correct"].double().mean().item()
            correct = own["test_logits"].argmax(1) == own["test_labels"]
            test_acc = correct[held_out[index]].double().mean().item()
            row = {"model": index, "epoch": epoch, "train_acc": train_acc, "test_acc": test_acc,
                   "gap": train_acc - test_acc, "n_nonmembers": len(kept) // 2,
                   "queries": 1 if queries is None else queries.shape[2]}
            for key in ("auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "advantage"):
                row[key] = result.metrics[key].value
                row[f"{key}_std"] = result.metrics[key].std
            rows.append(row)
    return rows


def augmented_queries(config: RunConfig) -> torch.Tensor:
    """The evaluation images of ``config``'s split (members first, uint8 (N, C, H, W)) as LiRA
    queries them when it follows the training augmentations: shifted by every offset of
    :func:`mia_utils.attacks.shifted_queries` for a recipe with random cropping, (N, 9, C, H, W);
    the clean images alone otherwise, (N, 1, C, H, W)."""
    from mia_utils.data import load_dataset, split_for

    data = load_dataset(config.dataset)
    split = split_for(config, data.info)
    images = torch.cat([data.train_images[split.eval_members], data.test_images[split.eval_nonmembers]])
    crop = dict(config.mechanisms).get("random_crop")
    return attacks.shifted_queries(images, int(crop)) if crop else images[:, None]


def _query_logits(run: experiment.Run, epoch: int, queries: torch.Tensor) -> torch.Tensor:
    """Logits (N, A, classes) of ``run``'s model after ``epoch`` on ``queries`` (N, A, C, H, W)."""
    from mia_utils.models import predict_logits

    n, a = queries.shape[:2]
    model = run.model(None if epoch == run.config.epochs else epoch)
    return predict_logits(model, queries.reshape(n * a, *queries.shape[2:])).reshape(n, a, -1)


def population_means(points: pd.DataFrame, by=("crop", "epoch"),
                     metrics_=("train_acc", "test_acc", "gap", "auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr")) -> pd.DataFrame:
    """One row per configuration (the columns ``by``) of ``points`` (one row per model, as
    :func:`population_lira` gives them): the mean over its models of each of ``metrics_``, the
    95 % interval bounds ``<metric>_low`` / ``<metric>_high`` across models with the bootstrap
    variances as a floor (:func:`mia_utils.attacks.evidence.combine_seeds`), ``models`` (how many) and
    ``n_nonmembers`` (the fewest any model was evaluated on). The models of a population share
    their shadow models (any two share K - 2), so they are not fully independent replicates and
    the interval is somewhat too narrow."""
    rows = []
    for values, group in points.groupby(list(by), sort=True):
        row = dict(zip(by, values if isinstance(values, tuple) else (values,)))
        row["models"] = len(group)
        row["n_nonmembers"] = int(group["n_nonmembers"].min())
        for metric in metrics_:
            std = group.get(f"{metric}_std")
            estimate = combine_seeds(group[metric].to_numpy(), None if std is None else std.to_numpy() ** 2)
            row[metric], row[f"{metric}_low"], row[f"{metric}_high"] = estimate.mean, estimate.low, estimate.high
            row[f"{metric}_estimate"] = estimate
        rows.append(row)
    return pd.DataFrame(rows)


POPULATION_COLUMNS = {"train_acc": "train acc (%)", "test_acc": "test acc (%)", "gap": "gap (pp)",
                      "auc": "LiRA AUC (%)", "tpr_at_1%_fpr": "TPR @ 1 % FPR (%)",
                      "tpr_at_0.1%_fpr": "TPR @ 0.1 % FPR (%)"}


def population_table(means: pd.DataFrame, by=("crop", "epoch")) -> pd.DataFrame:
    """:func:`population_means` for display: indexed by ``by``, one column per metric of
    :data:`POPULATION_COLUMNS` reading "mean [95 % interval]" in percent (two digits for the low-FPR
    rates), or "not resolvable at n = …" where a rate is not."""
    rows = []
    for _, row in means.iterrows():
        out = {name: row[name] for name in by}
        for metric, title in POPULATION_COLUMNS.items():
            out[title] = estimate_text(row[f"{metric}_estimate"], int(row["n_nonmembers"]),
                                       digits=2 if metric.startswith("tpr") else 1)
        rows.append(out)
    return pd.DataFrame(rows).set_index(list(by))


def augmentation_strengths(profile) -> tuple:
    """Random-crop strengths of chapter 06: none (0) and the profile's grid values >= 4."""
    return (0,) + tuple(c for c in profile.grids["random_crop"] if c >= 4)


def crop_population_config(profile, dataset: str, seed: int, crop: int):
    """The configuration whose population chapter 06 attacks at crop strength ``crop``: the
    profile's baseline of ``dataset`` (first seed ``seed``, with its snapshots), with random
    cropping ``crop`` unless it is 0 (the unaugmented baseline, chapter 01's shadow models)."""
    base = profile.base_config(dataset, seed=seed)
    return base if crop == 0 else base.with_mechanisms(random_crop=crop)


#: LiRA's success as chapter 06 judges it, and its fallback when the evaluation set cannot
#: resolve the low false-positive rate (:func:`mia_utils.attacks.metrics.fpr_resolvable`).
LIRA_METRIC, LIRA_FALLBACK = "tpr_at_1%_fpr", "auc"


METRIC_NAMES = {"tpr_at_1%_fpr": "LiRA's TPR at 1 % FPR", "tpr_at_0.1%_fpr": "LiRA's TPR at 0.1 % FPR",
                "auc": "LiRA's AUC", "adv_yeom": "Adv_Yeom", "gap": "the train-test gap",
                "test_acc": "test accuracy", "adv_salem": "Adv_Salem"}


def population_difference(claim: str, after: pd.DataFrame, before: pd.DataFrame, metric: str,
                          expected: str = "decrease", candidates: int = 1, nan_text: str = "not measurable") -> RelatedFinding:
    """:func:`difference_finding` of ``after - before`` on ``metric``, model by model: both are
    rows of :func:`population_lira` for two configurations, and model ``i`` of one shares its
    membership split and seed with model ``i`` of the other (they must hold the same models).
    The bootstrap variances (``<metric>_std`` squared) are the within-model floor.

    Args:
        claim: the claim tested, in words (str).
        after: rows of :func:`population_lira` (a DataFrame with ``model``, ``<metric>`` and
            ``<metric>_std`` columns) for the changed configuration.
        before: the same models' rows for the configuration compared with.
        metric: the column compared (e.g. ``"tpr_at_1%_fpr"``; fractions).
        expected: the predicted direction of ``after - before``, ``"decrease"`` or ``"increase"``.
        candidates: how many settings ``after`` was chosen from (int >= 1); the interval's level
            is :func:`mia_utils.book.verdicts.selection_level` of it.
        nan_text: the text when the difference is NaN (str).
    """
    after, before = after.sort_values("model"), before.sort_values("model")
    if tuple(after["model"]) != tuple(before["model"]):
        raise ValueError(f"after, before: models {tuple(after['model'])} and {tuple(before['model'])} differ")
    return difference_finding(claim, after[metric].to_numpy(), before[metric].to_numpy(),
                              after[f"{metric}_std"].to_numpy() ** 2, before[f"{metric}_std"].to_numpy() ** 2,
                              expected, selection_level(candidates), candidates, nan_text)


def query_comparison(one: pd.DataFrame, augmented: pd.DataFrame, metrics_=("auc", "tpr_at_1%_fpr")) -> pd.DataFrame:
    """LiRA with one clean query against LiRA with the training augmentations as queries, on the
    same population models: for every (``crop``, ``epoch``) of ``augmented`` (rows of
    :func:`population_lira` with ``augmented=True``; ``one`` holds the same models with one
    query), per metric the mean and 95 % interval across models of each, and their difference
    model by model (:func:`population_difference`, the bootstrap variances as floor). Values in
    percent, formatted for display; indexed by crop and epoch, with two levels of columns
    (metric; one query, the augmented queries, their difference)."""
    rows, index = [], []
    for (crop, epoch), group in augmented.groupby(["crop", "epoch"], sort=True):
        single = one[(one["crop"] == crop) & (one["epoch"] == epoch)]
        n = int(min(group["n_nonmembers"].min(), single["n_nonmembers"].min()))
        row = {}
        for metric in metrics_:
            name = METRIC_NAMES.get(metric, metric).replace("LiRA's ", "") + " (%)"
            digits = 2 if metric.startswith("tpr") else 1
            for label, frame in (("one query", single), (f"{int(group['queries'].iloc[0])} queries", group)):
                estimate = population_means(frame, by=("epoch",), metrics_=(metric,)).iloc[0][f"{metric}_estimate"]
                row[(name, label)] = estimate_text(estimate, n, digits)
            change = population_difference("", group, single, metric, "increase")
            row[(name, "difference (pp)")] = ("not resolvable" if math.isnan(change.estimate.mean) else
                                              change.estimate.format(signed=True, digits=digits))
        rows.append(row)
        index.append((crop, epoch))
    table = pd.DataFrame(rows, index=pd.MultiIndex.from_tuples(index, names=["crop c", "epoch E"]))
    table.columns = pd.MultiIndex.from_tuples(table.columns)
    return table


def gap_predicts_better(gap, test_acc, success, success_name: str = "LiRA's success", n_bootstrap: int = 2000,
                        seed: int = 0, min_points: int = MIN_RANK_POINTS, what: str = "models of 1 seed") -> RelatedFinding:
    """Rahmani et al.'s claim that the train-test gap predicts vulnerability (``success``, one
    value per model) better than test accuracy does. Judged on the bootstrap interval of
    ``|rho(gap, success)| - |rho(test_acc, success)|`` (Spearman, the same resampled models for
    both, :func:`rank_correlations`): holds when it excludes 0 above, contradicted below.
    The result's ``parts``: ``rho_gap`` and ``rho_acc`` with their intervals.

    Args:
        gap: the train-test gap per model (1-D array-like of floats, fractions).
        test_acc: the test accuracy per model, the same models in the same order.
        success: the attack's success per model (e.g. LiRA's TPR at 1 % FPR), the same models.
        success_name: the success measure in words, for the claim (str).
        n_bootstrap: bootstrap resamples of the models (int).
        seed: seed of the resamples (int).
        min_points: fewest points for an interval (int); fewer reads inconclusive.
        what: the points, in words, for the text (str).
    """
    claim = f"the train-test gap predicts {success_name} better than test accuracy does"
    rhos, diff = rank_correlations({"gap": gap, "test_acc": test_acc}, success, n_bootstrap, seed,
                                   min_points=min_points)
    parts = {"rho_gap": rhos["gap"], "rho_acc": rhos["test_acc"]}
    n = len(np.asarray(success))
    state = verdict(diff, "increase")
    rho_part = f"ρ(gap) = {rho_text(rhos['gap'])}, ρ(test accuracy) = {rho_text(rhos['test_acc'])}"
    if math.isnan(diff.mean):
        text = f"{rho_part}: a rank correlation is undefined when a variable is constant or not resolvable"
    elif n < min_points:
        text = f"{rho_part}; {too_few_points(n, min_points)}"
    else:
        text = (f"|ρ(gap)| − |ρ(test accuracy)| = {rho_text(diff)}; {rho_part}; 95 % bootstrap intervals over "
                f"the {n} {what}")
    return RelatedFinding(claim, state, diff, text, parts)


def lira_success_metric(values, n_nonmembers: int, preferred: str = LIRA_METRIC) -> tuple[str, str]:
    """The measure of LiRA's success chapter 06 judges: ``preferred`` (TPR at 1 % FPR) when the
    evaluation set resolves it (:func:`mia_utils.attacks.metrics.fpr_resolvable`) and every value is a
    number, else the AUC. Returns ``(metric, note)``; ``note`` says why the AUC stands in ("" when
    it does not)."""
    target = metrics.LOW_FPRS[preferred]
    values = np.asarray(values, dtype=float)
    if metrics.fpr_resolvable(n_nonmembers, target) and not np.isnan(values).any():
        return preferred, ""
    return LIRA_FALLBACK, (f"{METRIC_NAMES[preferred]} is not resolvable at n = {n_nonmembers:,} non-members per "
                           f"side, so {METRIC_NAMES[LIRA_FALLBACK]} stands in for it")


def least_vulnerable_combination(points: pd.DataFrame, metric: str, budget: float = 0.05):
    """Chapter 06's baseline (no crop, ``crop`` 0, at the last ``epoch``) and the least
    vulnerable combination of cropping and early stopping (``crop`` > 0 and an ``epoch`` before
    the last; any crop if there is no earlier epoch): the one with the lowest ``metric`` among
    those within ``budget`` relative test accuracy of the baseline (RAD < 5 %), or among all of
    them when none is. Returns ``(baseline_row, chosen_row, candidates, within_budget)``;
    ``candidates`` is how many it was chosen from."""
    final_epoch = int(points["epoch"].max())
    baseline = points[(points["crop"] == 0) & (points["epoch"] == final_epoch)]
    if baseline.empty:
        raise ValueError("points: no baseline (crop 0 at the last epoch)")
    baseline = baseline.iloc[0]
    combos = points[(points["crop"] > 0) & (points["epoch"] < final_epoch)]
    if combos.empty:
        combos = points[points["crop"] > 0]
    if combos.empty:
        raise ValueError("points: no configuration with cropping")
    within = combos[combos["test_acc"] >= (1 - budget) * float(baseline["test_acc"])]
    pool = within if len(within) else combos
    return baseline, pool.sort_values(metric).iloc[0], len(pool), bool(len(within))


@dataclass(frozen=True)
class GeneralizationFindings:
    """Chapter 06's verdicts. ``metric``: the measure of LiRA's success judged (its ``note``
    says why, when the AUC stands in for the TPR at 1 % FPR); ``predictor``: the gap predicts it
    better than test accuracy; ``auc``: LiRA's AUC rises with the gap; ``combination``: the least
    vulnerable crop + early-stopping configuration lowers it below the baseline's; ``means``:
    one row per configuration (:func:`population_means`); ``baseline`` and ``combined``: the two
    configurations' rows of it; ``within_budget``: whether the combination kept 95 % of the
    baseline's test accuracy; ``candidates``: how many combinations it was chosen from."""

    metric: str
    note: str
    predictor: RelatedFinding
    auc: RelatedFinding
    combination: RelatedFinding
    means: pd.DataFrame
    baseline: pd.Series
    combined: pd.Series
    within_budget: bool
    candidates: int = 1


def generalization_findings(points: pd.DataFrame, n_bootstrap: int = 2000, seed: int = 0,
                            budget: float = 0.05) -> GeneralizationFindings:
    """All of chapter 06's verdicts on the population models of one dataset. ``points``: one row
    per (``crop``, ``epoch``, ``model``) with ``test_acc``, ``gap``, ``auc``, ``tpr_at_1%_fpr``,
    their bootstrap standard deviations ``<metric>_std`` and ``n_nonmembers``, as
    :func:`population_lira` gives them. Model ``i`` of every configuration shares its membership
    split and seed with model ``i`` of the others, so differences pair them.

    * predictor: :func:`gap_predicts_better` over the configurations' means (each the mean of its
      models, :func:`population_means`), on the judged measure (:func:`lira_success_metric`);
    * auc: :func:`rank_finding` of LiRA's AUC against the gap over the same means;
    * combination: the configuration chosen on its mean (:func:`least_vulnerable_combination`)
      minus the baseline, model by model (:func:`difference_finding`, with the bootstrap
      variances as a floor), at the Bonferroni level of :func:`selection_level` for the number of
      combinations it was the best of.
    """
    means = population_means(points)
    n_nonmembers = int(means["n_nonmembers"].min())
    n_models = int(means["models"].min())
    metric, note = lira_success_metric(means[LIRA_METRIC], n_nonmembers)
    name = METRIC_NAMES[metric]
    what = f"configurations (each the mean of its {n_models} models)"
    predictor = gap_predicts_better(means["gap"], means["test_acc"], means[metric], name, n_bootstrap, seed, what=what)
    auc = rank_finding("LiRA's AUC rises with the train-test gap", means["gap"], means["auc"], "increase",
                       n_bootstrap, seed, what=what, basis="")
    baseline, combined, candidates, within = least_vulnerable_combination(means, metric, budget)
    stop = int(combined["epoch"])
    where = f"within {100 * budget:g} % relative accuracy of the baseline" if within else "at any accuracy"
    claim = (f"the least vulnerable combination {where} (crop c = {combined['crop']:g}, stopped after {stop} "
             f"epoch{'s' if stop != 1 else ''}) lowers {name} below the baseline's")

    def models_of(row):
        return points[(points["crop"] == row["crop"]) & (points["epoch"] == row["epoch"])]

    combination = population_difference(claim, models_of(combined), models_of(baseline), metric, "decrease",
                                        candidates, nan_text=f"not resolvable at n = {n_nonmembers:,} non-members per side")
    return GeneralizationFindings(metric, note, predictor, auc, combination, means, baseline, combined, within,
                                  candidates)


# --- chapter 06's page: its populations, table, figure, correlations and glued values ---------


@dataclass(frozen=True)
class Populations:
    """Chapter 06's population LiRA over its datasets and crop strengths. ``points``: one row per
    (dataset, ``crop``, ``epoch``, ``model``), the columns of :func:`population_lira` (fractions)
    after ``dataset`` (its title), ``key`` (its key) and ``crop`` (random-crop strength in pixels,
    0 for none); ``means``: dataset key -> :func:`population_means` of its points (one row per
    (crop, epoch)), in the chapter's order of datasets, the first the lead; ``n_shadows``: models
    per population (each the target of the others); ``crops``: the strengths
    (:func:`augmentation_strengths`); ``seed``: the chapter's seed."""

    points: pd.DataFrame
    means: dict
    n_shadows: int
    crops: tuple
    seed: int

    @property
    def lead_key(self) -> str:
        """The lead dataset's key: the chapter's first dataset, on which the verdicts are judged."""
        return next(iter(self.means))

    @property
    def lead_title(self) -> str:
        """The lead dataset's title (e.g. "Fashion-MNIST")."""
        from mia_utils.data import DATASETS

        return DATASETS[self.lead_key].title

    @property
    def lead_points(self) -> pd.DataFrame:
        """The rows of ``points`` of the lead dataset (one per crop, epoch and model)."""
        return self.points[self.points["key"] == self.lead_key]

    @property
    def lead_means(self) -> pd.DataFrame:
        """The lead dataset's configurations (:func:`population_means`, one row per crop and epoch)."""
        return self.means[self.lead_key]

    @property
    def n_eval(self) -> int:
        """The fewest non-members any target of the lead dataset was evaluated on."""
        return int(self.lead_means["n_nonmembers"].min())


def chapter_populations(profile, params: dict, store=None) -> Populations:
    """Chapter 06's populations, trained or read back, and LiRA against each model with one clean
    query: for every dataset of ``params`` (the validated chapter parameters) and crop strength of
    ``profile`` (:func:`crop_population_config`), :func:`population_lira` at the profile's
    early-stopping epochs and the last one, with ``params["shadow_models"]`` models per population
    (or the profile's count, :func:`mia_utils.book.chapters.related_shadow_count`)."""
    from mia_utils.book.chapters import related_shadow_count
    from mia_utils.data import DATASETS

    seed, n_shadows, crops = params["seed"], related_shadow_count(params), augmentation_strengths(profile)
    rows = []
    for dataset in params["datasets"]:
        base = profile.base_config(dataset, seed=seed)
        epochs = list(base.snapshot_epochs) + [base.epochs]
        for crop in crops:
            config = crop_population_config(profile, dataset, seed, crop)
            for row in population_lira(config, n_shadows, epochs, store=store, n_bootstrap=profile.bootstrap,
                                       seed=seed):
                rows.append({"dataset": DATASETS[dataset].title, "key": dataset, "crop": crop, **row})
    points = pd.DataFrame(rows)
    means = {key: population_means(points[points["key"] == key]) for key in params["datasets"]}
    return Populations(points, means, n_shadows, crops, seed)


def populations_table(populations: Populations) -> pd.DataFrame:
    """Every dataset's :func:`population_table`, stacked: indexed by dataset title, crop c and epoch E,
    one column per metric reading "mean [95 % interval]" in percent."""
    from mia_utils.data import DATASETS

    return pd.concat({DATASETS[key].title: population_table(frame) for key, frame in populations.means.items()},
                     names=["dataset"]).rename_axis(["dataset", "crop c", "epoch E"])


def crop_label(crop: float) -> str:
    """A crop strength for a legend: "no augmentation" for 0, else "crop c = 4"."""
    return "no augmentation" if crop == 0 else f"crop c = {crop:g}"


def lira_generalization_figure(means: pd.DataFrame):
    """LiRA's success against the train-test gap (left) and test accuracy (right), one point per
    configuration of ``means`` (:func:`population_means`: its mean over models, with its 95 %
    interval as an error bar; colour the crop, size the epoch). Success is the measure chapter 06
    judges (:func:`lira_success_metric`: TPR at 1 % FPR, or the AUC when the fewest non-members
    cannot resolve it); every axis in percent (the gap in percentage points). Returns the Figure."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    frame = means.copy()
    judged, _ = lira_success_metric(frame[LIRA_METRIC], int(frame["n_nonmembers"].min()))
    judged_axis = "LiRA TPR at 1 % FPR (%)" if judged == LIRA_METRIC else "LiRA AUC (%)"
    frame["gap (pp)"] = 100 * frame["gap"]
    frame["test accuracy (%)"] = 100 * frame["test_acc"]
    frame[judged_axis] = 100 * frame[judged]
    frame["crop c"] = frame["crop"].map(crop_label)
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), layout="constrained", sharey=True)
    for ax, x in zip(axes, ("gap (pp)", "test accuracy (%)")):
        ax.errorbar(frame[x], frame[judged_axis], yerr=[100 * (frame[judged] - frame[f"{judged}_low"]),
                                                        100 * (frame[f"{judged}_high"] - frame[judged])],
                    fmt="none", ecolor="grey", alpha=0.5, zorder=0)
        sns.scatterplot(frame, x=x, y=judged_axis, hue="crop c", size="epoch", sizes=(30, 160), ax=ax,
                        legend=(ax is axes[1]))
        ax.set_xlabel("train-test accuracy gap (percentage points)" if x == "gap (pp)" else "test accuracy (%)")
        ax.set_ylabel(judged_axis)
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    return fig


#: The measures of LiRA's success chapter 06 correlates with the gap and test accuracy, with their titles.
SUCCESS_MEASURES = {"tpr_at_1%_fpr": "TPR @ 1 % FPR", "tpr_at_0.1%_fpr": "TPR @ 0.1 % FPR", "auc": "AUC"}


def correlation_table(means: pd.DataFrame, seed: int = 0, n_bootstrap: int = 2000) -> pd.DataFrame:
    """Spearman's rho of each measure of :data:`SUCCESS_MEASURES` with the train-test gap and with
    test accuracy over the configurations of ``means`` (:func:`population_means`), and
    ``|rho gap| - |rho test accuracy|``, each with its bootstrap interval
    (:func:`mia_utils.book.verdicts.rank_correlations`), as text; "not resolvable at n = …" for a
    measure with a NaN value. Indexed by (attack success, predictor), one column."""
    from mia_utils.book.verdicts import rate_text

    n_eval = int(means["n_nonmembers"].min())
    rows = []
    for target, title in SUCCESS_MEASURES.items():
        rhos, difference = rank_correlations({"gap": means["gap"], "test_acc": means["test_acc"]}, means[target],
                                             n_bootstrap, seed)
        unresolved = means[target].isna().any()
        for predictor, estimate in (("train-test gap", rhos["gap"]), ("test accuracy", rhos["test_acc"]),
                                    ("|ρ gap| − |ρ test accuracy|", difference)):
            rows.append({"attack success": title, "predictor": predictor, "Spearman ρ [95 % interval]":
                         rate_text(math.nan, None, n_eval) if unresolved else rho_text(estimate)})
    return pd.DataFrame(rows).set_index(["attack success", "predictor"])


def findings_table(found: GeneralizationFindings) -> pd.DataFrame:
    """Chapter 06's three verdicts (predictor, AUC, combination), one row each indexed by claim,
    with its ``verdict`` and ``evidence`` (the finding's text)."""
    return pd.DataFrame([{"claim": f.claim, "verdict": f.verdict, "evidence": f.text}
                         for f in (found.predictor, found.auc, found.combination)]).set_index("claim")


def key_values(populations: Populations, found: GeneralizationFindings) -> dict:
    """Every value chapter 06's text glues from its populations and verdicts (``found``, on the lead
    dataset), name -> value: counts as ints, ``n_eval`` as text with thousands separators, rates
    as "mean [95 % interval] %" text (or "not resolvable at n = …"), the gap in points."""
    from mia_utils.attacks.evidence import relative_change_text
    from mia_utils.book.verdicts import false_positives_allowed, rate_text

    frame, n_eval, n_shadows = populations.lead_means, populations.n_eval, int(populations.n_shadows)
    baseline, combined = found.baseline, found.combined
    values = {"lead_dataset": populations.lead_title, "n_points": int(len(frame)), "n_shadows": n_shadows,
              "n_shadows_per_target": n_shadows - 1, "shadow_power": shadow_power_note(n_shadows - 1),
              "n_eval": f"{n_eval:,}",
              "judged_on": METRIC_NAMES[found.metric] + (f" ({found.note})" if found.note else "")}
    for key, finding in (("predictor", found.predictor), ("auc", found.auc), ("combination", found.combination)):
        values.update({f"f06_{key}_claim": finding.claim, f"f06_{key}_verdict": finding.verdict,
                       f"f06_{key}_text": finding.text})
    if found.metric == LIRA_METRIC:
        relative = relative_change_text(found.combination.estimate, baseline[f"{found.metric}_estimate"])
        values["f06_relative"] = f"Relative to the baseline's TPR, the change is {relative}."
    else:
        values["f06_relative"] = "A relative change is not meaningful for the AUC, whose chance level is 50 %."
    fp_01 = false_positives_allowed(n_eval, 0.001)
    values.update({
        "baseline_tpr1": estimate_text(baseline["tpr_at_1%_fpr_estimate"], n_eval, 2, "%"),
        "baseline_tpr01": estimate_text(baseline["tpr_at_0.1%_fpr_estimate"], n_eval, 2, "%"),
        "baseline_gap": estimate_text(baseline["gap_estimate"], unit="points"),
        "combined_acc": estimate_text(combined["test_acc_estimate"], unit="%"),
        "baseline_acc": estimate_text(baseline["test_acc_estimate"], unit="%"),
        "median_tpr1": rate_text(float(frame["tpr_at_1%_fpr"].median()), None, n_eval, unit="%"),
        "fp_at_01": (f"at most {fp_01:,} false positive{'s' if fp_01 != 1 else ''}" if fp_01
                     else "not a single false positive, so that rate is not resolvable")})
    return values


@dataclass(frozen=True)
class AugmentedComparison:
    """Chapter 06's cropped populations attacked again with the training augmentations as queries.
    ``points``: rows of :func:`population_lira` (``augmented=True``) with ``crop``; ``finding``:
    the chosen combination minus the baseline on the judged measure, model by model
    (:func:`population_difference`); ``table``: one query against the augmented queries
    (:func:`query_comparison`)."""

    points: pd.DataFrame
    finding: RelatedFinding
    table: pd.DataFrame

    @property
    def n_queries(self) -> int:
        """The most queries per image LiRA scored (9 for the shift grid)."""
        return int(self.points["queries"].max())

    def key_values(self) -> dict:
        """The values the page glues from it: ``f06_aug_verdict``, ``f06_aug_text`` and ``n_queries``."""
        return {"f06_aug_verdict": self.finding.verdict, "f06_aug_text": self.finding.text,
                "n_queries": self.n_queries}


def augmented_comparison(profile, populations: Populations, found: GeneralizationFindings,
                         store=None) -> AugmentedComparison:
    """LiRA with the training augmentations as queries (:func:`augmented_queries`) against every
    cropped population of the lead dataset, at the last epoch and, for the chosen combination's
    crop (``found.combined``), at its stopping epoch too; the combination's difference from the
    baseline (whose one clean query is all of its augmentations) judged as ``found.combination``
    was, at the same level, and the table comparing one query with the augmented ones."""
    lead_points, seed, combined = populations.lead_points, populations.seed, found.combined
    final_epoch = int(lead_points["epoch"].max())
    rows = []
    for crop in populations.crops:
        if crop == 0:
            continue  # trained on clean images only: its one query is all the augmentations
        config = crop_population_config(profile, populations.lead_key, seed, crop)
        wanted = {final_epoch} | ({int(combined["epoch"])} if combined["crop"] == crop else set())
        for row in population_lira(config, populations.n_shadows, sorted(wanted), store=store,
                                   n_bootstrap=profile.bootstrap, seed=seed, augmented=True):
            rows.append({"crop": crop, **row})
    points = pd.DataFrame(rows)
    chosen = points[(points["crop"] == combined["crop"]) & (points["epoch"] == combined["epoch"])]
    baseline_models = lead_points[(lead_points["crop"] == 0) & (lead_points["epoch"] == final_epoch)]
    finding = population_difference(found.combination.claim, chosen, baseline_models, found.metric, "decrease",
                                    found.candidates,
                                    nan_text=f"not resolvable at n = {populations.n_eval:,} non-members per side")
    return AugmentedComparison(points, finding, query_comparison(lead_points, points))
