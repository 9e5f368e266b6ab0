"""Chapter 09, stronger attacks: the paper's defenses at the settings chapter 02 selects (each
mechanism's RAD<5 % and RAD<15 % pick) and chapter 03's DP-SGD grid, attacked with attacks the paper
did not try (:func:`stronger_attacks`): RMIA, offline, whose reference models are chapter 01's shadow
models trained with the baseline recipe (the adversary does not know the defense); the
augmentation-aware loss attack, which queries a model under draws of its own training augmentation;
and three label-only attacks (the gap, translated copies, the distance to the decision boundary),
with Yeom's attack for reference. Every model is attacked once per seed and the result kept in the
result store (:func:`attack_run`, a derived ``atk-`` entry), so the chapter executes again in
seconds. The attacks' metrics are combined over seeds and each defense is paired with the same
seeds' baseline (:mod:`mia_utils.attacks.evidence`): does it still lower each attack's advantage
(:func:`verdicts`, :func:`survival_sentence`)? The page's other pieces live here too: the
advantage, compact-metric and verdict tables, the cost table, the gallery of the most exposed
members and whether a defense protects them (:func:`outlier_readings`), the advantage per class and
per correctness (:func:`slice_frame`), which members each attack flags (:func:`overlap_figure`,
:func:`jaccard_pairs`), and the glued values (:func:`key_values`)."""

from __future__ import annotations

import itertools
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from mia_utils import experiment
from mia_utils.attacks import (
    RMIA_GAMMA,
    RMIA_OFFLINE_A,
    AttackInputs,
    AttackResult,
    RMIAPopulation,
    augmentation_aware_attack,
    augmentation_aware_cost,
    augmented_losses,
    boundary_distances,
    label_only_boundary,
    label_only_cost,
    label_only_gap,
    label_only_translation,
    loss_threshold,
    rmia,
    rmia_cost,
    translation_correctness,
    yeom,
)
from mia_utils.attacks.label_only import label_only_translation_model
from mia_utils.attacks.evidence import (
    CONTRADICTED,
    HOLDS,
    INCONCLUSIVE,
    SeedEstimate,
    combine_seeds,
    paired_difference,
    verdict,
)
from mia_utils.attacks.metrics import Estimate
from mia_utils.book import findings
from mia_utils.book.chapters import stronger_attack_options
from mia_utils.book.replicated import Setting
from mia_utils.book.report import SCENARIO_TITLES
from mia_utils.book.verdicts import estimate_text
from mia_utils.data import (
    DATASETS,
    evaluation_indices,
    gather,
    load_dataset,
    same_split,
    split_for,
    training_indices,
)
from mia_utils.models import predict_logits
from mia_utils.store import ResultStore, derived_key
from mia_utils.defenses import setting_text

#: The chapter's attacks, in the order of its tables. ``rmia`` is the adversary who does not know
#: the recipe (baseline-recipe reference models), ``rmia_aware`` the one who does (reference models
#: trained with the target's own recipe; only for the settings of :func:`aware_settings`, and the
#: baseline). ``translation`` and ``translation_d2`` are the published translation attack (an attack
#: model on the 0/1 vector) at d = 1 and 2; ``translation_count`` the count-threshold variant (d = 1).
ATTACKS = ("yeom", "rmia", "rmia_aware", "augmentation", "gap", "translation", "translation_d2",
           "translation_count", "boundary")
#: The attacks that read scores, and those that read only predicted labels (the boundary search
#: here follows input gradients, see :mod:`mia_utils.attacks.label_only`).
SCORE_ATTACKS, LABEL_ONLY_ATTACKS = ATTACKS[:4], ATTACKS[4:]
ATTACK_TITLES = {"yeom": "Yeom", "rmia": "RMIA (baseline-recipe references)",
                 "rmia_aware": "RMIA (recipe-aware references)", "augmentation": "augmentation-aware",
                 "gap": "label-only gap", "translation": "label-only translation (d = 1)",
                 "translation_d2": "label-only translation (d = 2)",
                 "translation_count": "label-only translation count (d = 1)", "boundary": "label-only boundary"}
#: Column titles of the compact tables.
SHORT_TITLES = {"yeom": "Yeom", "rmia": "RMIA", "rmia_aware": "RMIA aware", "augmentation": "aug.", "gap": "gap",
                "translation": "transl. d=1", "translation_d2": "transl. d=2", "translation_count": "count d=1",
                "boundary": "bound."}
#: The attacks the overlap figure compares (at most six keep its UpSet panels readable).
OVERLAP_ATTACKS = ("yeom", "rmia", "augmentation", "gap", "translation")
#: The translation attack's shift d: the unshifted image and the 4 d shifts with |dy| + |dx| = d
#: (``translation``), and the larger shift also reported (``translation_d2``).
TRANSLATION_SHIFT = 1
TRANSLATION_SHIFT_2 = 2
#: The boundary search: L2 steps of 0.1 on [0, 1] pixels, at most 50, then 10 bisection steps, 1,000
#: samples per batch.
BOUNDARY = {"norm": "l2", "step": 0.1, "max_steps": 50, "refine_steps": 10, "batch_size": 1000}
#: Fewest members and fewest non-members a slice needs for its advantage to be shown.
MIN_SLICE = 10
#: A mean pairwise Jaccard index at least this high reads as the attacks agreeing.
AGREEMENT = 0.5
#: Version of the cached reference entries' layout, and of the attack entries' (2: the published
#: translation attack, d = 2, the count variant, the reference's threshold fit, recipe-aware RMIA; 3: that
#: fit compared in exact counts).
CACHE_FORMAT = 1
ATTACKS_FORMAT = 3
LOW_FPR_METRICS = ("tpr_at_1%_fpr", "tpr_at_0.1%_fpr")
METRIC_TITLES = {"advantage": "advantage", "auc": "AUC", "tpr_at_1%_fpr": "TPR @ 1 % FPR",
                 "tpr_at_0.1%_fpr": "TPR @ 0.1 % FPR"}
SETTING_NAMES = {"dp_sgd": "DP-SGD", "early_stopping": "early stopping"}
CLASS_NAMES = {
    "fmnist": ("T-shirt", "trouser", "pullover", "dress", "coat", "sandal", "shirt", "sneaker", "bag", "ankle boot"),
    "cifar10": ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"),
}
#: Which samples each attack scores: the whole evaluation set, the query subsample, or the
#: boundary subsample (first n members and first n non-members of the evaluation order).
SAMPLE_SETS = {"yeom": "all", "rmia": "all", "rmia_aware": "all", "gap": "all", "augmentation": "query",
               "translation": "all", "translation_d2": "all", "translation_count": "all", "boundary": "boundary"}


def class_name(dataset: str, label: int) -> str:
    names = CLASS_NAMES.get(dataset)
    return names[label] if names and label < len(names) else f"class {label}"


def setting_title(setting: Setting) -> str:
    """A setting as the tables name it, its value as the paper writes it: ``"baseline"``,
    ``"distillation, T = 50"``, ``"DP-SGD, σ_DP = 1"``, ``"early stopping, E = 5"``."""
    if setting.mechanism == "baseline":
        return "baseline"
    name = SETTING_NAMES.get(setting.mechanism, setting.mechanism.replace("_", " "))
    return f"{name}, {setting_text(setting.mechanism, setting.value)}"


def subsample(n: int, per_side: int) -> torch.Tensor:
    """Positions in a balanced set of ``n`` samples (members first) of its first ``per_side``
    members and first ``per_side`` non-members (all of it when ``per_side`` >= n / 2). The sets'
    order is drawn at random with the split, so these are a random subsample."""
    half = n // 2
    per_side = min(per_side, half)
    return torch.cat([torch.arange(per_side), half + torch.arange(per_side)])


def training_augmentation(config) -> tuple[int, float, bool]:
    """(crop pixels, noise standard deviation, clamp) of ``config``'s input augmentation, (0, 0, True)
    for a recipe without one."""
    mechanisms = dict(config.mechanisms)
    noise = mechanisms.get("gaussian_noise", mechanisms.get("gaussian_noise_unclamped", 0.0))
    return int(mechanisms.get("random_crop", 0)), float(noise), "gaussian_noise_unclamped" not in mechanisms


def _adversary_indices(info, split) -> torch.Tensor:
    return torch.cat([split.adv_members, info.n_train + split.adv_nonmembers])


# --- the recipe-aware adversary's reference models ---------------------------------------------------

#: The mechanisms whose RAD<5 % and RAD<15 % picks the recipe-aware adversary attacks with reference
#: models trained with the target's own recipe. DP-SGD joins them at one noise level
#: (:func:`mia_utils.book.chapters.aware_dp_sigma`), and early stopping's picks read the baseline's
#: shadow models at the same epoch (their snapshots: the recipe "train for E epochs", no training).
AWARE_MECHANISMS = ("distillation", "random_crop", "label_smoothing")


def aware_count(options: dict) -> int:
    """Reference models trained per defended setting: 2 m for m = ``options["aware_references"]``
    OUT models per sample (each sample of the pool is IN for exactly half of them,
    :func:`mia_utils.data.shadow_in_masks`)."""
    return 2 * int(options["aware_references"])


def aware_settings(reg: findings.RegularizationResults, dp: list[Setting], sigma: float) -> list[Setting]:
    """The settings the recipe-aware adversary attacks, in chapter order: the RAD<5 % and RAD<15 %
    picks of :data:`AWARE_MECHANISMS` and of early stopping (one each when both pick the same
    value), then the DP setting with noise ``sigma`` (none when ``dp`` has no such setting)."""
    chosen: dict[str, Setting] = {}
    for mechanism in AWARE_MECHANISMS + ("early_stopping",):
        for scenario in ("rad5", "rad15"):
            setting = reg.chosen(mechanism, scenario)
            if setting is not None:
                chosen.setdefault(setting.label, setting)
    chosen.update({s.label: s for s in dp if s.mechanism == "dp_sgd" and math.isclose(s.value, sigma)})
    return list(chosen.values())


def aware_reference_configs(config, count: int) -> list:
    """The ``count`` (even, >= 2) reference models of the recipe-aware adversary against a target
    trained as ``config`` (a :class:`mia_utils.config.RunConfig`): its recipe, mechanisms included,
    on the shadow models' halves of the population pool (:meth:`RunConfig.shadow`), final models
    only. Empty for an early-stopping setting (its recipe is the baseline's, read at an epoch)."""
    if count < 2 or count % 2:
        raise ValueError(f"count: must be an even number >= 2, got {count!r}")
    return [config.replace(snapshot_epochs=()).shadow(i, count) for i in range(count)]


def aware_plan(profile, params: dict, store: ResultStore) -> list:
    """Every configuration the recipe-aware adversary trains for chapter 09 with ``params``: for
    each trained pick of :func:`aware_settings` (chapter 02's, read from ``store``) and for the DP
    setting of :func:`mia_utils.book.chapters.aware_dp_sigma`, :func:`aware_reference_configs` of its
    first seed's configuration. Distillation's teachers are added by the plan
    (:meth:`mia_utils.book.plan.Plan.add`)."""
    from mia_utils.book import replicated
    from mia_utils.book.chapters import aware_dp_sigma

    dataset = (params.get("datasets") or list(profile.datasets))[0]
    seeds = tuple(replicated.seed_list(profile, params["seed"]))
    reg = findings.regularization_results(profile, dataset, seeds, store, confirm=False)
    count = aware_count(stronger_attack_options(params))
    firsts = [setting.configs[0] for setting in aware_settings(reg, [], 0.0) if setting.mechanism != "early_stopping"]
    firsts.append(replicated.setting_configs(profile, dataset, "dp_sgd", aware_dp_sigma(params), seeds[:1])[0][0])
    return [config for first in firsts for config in aware_reference_configs(first, count)]


# --- the reference models ---------------------------------------------------------------------------

@dataclass(frozen=True)
class References:
    """M reference models' logits on one split's evaluation set (``eval_logits`` (M, N, classes),
    ``eval_in`` bool (M, N): whether each trained on each sample) and on its adversary set
    (``adv_logits``, ``adv_in``), and the ``seconds`` their queries took when first computed."""

    eval_logits: torch.Tensor
    eval_in: torch.Tensor
    adv_logits: torch.Tensor
    adv_in: torch.Tensor
    seconds: float


def compute_references(shadow_runs, config, epoch: int | None = None) -> References:
    """:class:`References` of ``shadow_runs`` on the evaluation and adversary sets of ``config``'s
    split. Where a shadow model shares that split (chapter 01's shadows of the first seed's target),
    its stored outputs are the logits; otherwise its model is queried. Whether it trained on each
    image comes from :func:`mia_utils.data.training_indices` of its configuration. ``epoch``: read
    every shadow model's snapshot after that epoch (an early-stopping recipe) instead of its final
    model."""
    started = time.perf_counter()
    data = load_dataset(config.dataset)
    split = split_for(config, data.info)
    eval_index, adv_index = evaluation_indices(data.info, split), _adversary_indices(data.info, split)
    logits = {"eval": [], "adv": []}
    trained = {"eval": [], "adv": []}
    for shadow in shadow_runs:
        own = training_indices(shadow.config, data.info, split_for(shadow.config, data.info))
        for name, index in (("eval", eval_index), ("adv", adv_index)):
            if same_split(shadow.config, config):
                outputs = shadow.outputs if epoch is None else shadow.snapshot_outputs(epoch)
                logits[name].append(outputs[f"{name}_logits"].float())
            else:
                logits[name].append(predict_logits(shadow.model(epoch), gather(data, index)[0]).float())
            trained[name].append(torch.isin(index, own))
    return References(torch.stack(logits["eval"]), torch.stack(trained["eval"]), torch.stack(logits["adv"]),
                      torch.stack(trained["adv"]), time.perf_counter() - started)


def references_for(shadow_runs, config, store: ResultStore, epoch: int | None = None) -> References:
    """:func:`compute_references`, computed once per (reference models, split, snapshot epoch) and
    kept in ``store`` as a derived ``atk-`` entry."""
    settings = {"references": [run.key for run in shadow_runs], "dataset": config.dataset,
                "split": [config.n_members, config.n_eval, config.n_adversary, config.split_seed],
                "format": CACHE_FORMAT}
    if epoch is not None:
        settings["epoch"] = int(epoch)
    key = derived_key("atk-", settings)
    entry = store.load(key)
    if entry is None:
        refs = compute_references(shadow_runs, config, epoch)
        store.save(key, {"references": {"settings": settings, "seconds": refs.seconds}},
                   {"references": {"eval_logits": refs.eval_logits, "eval_in": refs.eval_in,
                                   "adv_logits": refs.adv_logits, "adv_in": refs.adv_in}})
        return refs
    tensors = entry["tensors"]["references"]
    return References(tensors["eval_logits"], tensors["eval_in"].bool(), tensors["adv_logits"],
                      tensors["adv_in"].bool(), float(entry["json"]["references"]["seconds"]))


# --- one model, every attack ------------------------------------------------------------------------

@dataclass
class RunAttacks:
    """One target model's attacks: ``results``, attack -> :class:`mia_utils.attacks.AttackResult`
    (over the samples of ``samples[attack]``, positions in the evaluation set); ``seconds``,
    attack -> measured seconds (when first computed); ``labels`` and ``correct`` (N,): the
    evaluation set's labels and whether the model classifies each correctly; ``notes``: the
    augmentation reduction chosen, the boundary search's mean passes, the queries per sample."""

    key: str
    seed: int
    results: dict[str, AttackResult]
    samples: dict[str, torch.Tensor]
    seconds: dict[str, float]
    labels: torch.Tensor
    correct: torch.Tensor
    notes: dict = field(default_factory=dict)


def _subset_inputs(inputs: AttackInputs, eval_rows: torch.Tensor, adv_rows: torch.Tensor) -> AttackInputs:
    return AttackInputs(logits=inputs.logits[eval_rows], labels=inputs.labels[eval_rows],
                        is_member=inputs.is_member[eval_rows], average_train_loss=inputs.average_train_loss,
                        adv_logits=inputs.adv_logits[adv_rows], adv_labels=inputs.adv_labels[adv_rows],
                        adv_is_member=inputs.adv_is_member[adv_rows], objective_train_loss=inputs.objective_train_loss)


def _rmia_offline(inputs: AttackInputs, references: References, out_models: int | None, n_bootstrap: int,
                  seed: int) -> AttackResult:
    """Offline RMIA (a = :data:`RMIA_OFFLINE_A`, gamma = :data:`RMIA_GAMMA`) of ``inputs`` with
    ``references``, the population the adversary's own non-members, hard guesses at the threshold
    best on the adversary's samples; ``out_models``: at most that many OUT models per sample."""
    nonmembers = ~inputs.adv_is_member
    population = RMIAPopulation(inputs.adv_logits[nonmembers], inputs.adv_labels[nonmembers],
                                references.adv_logits[:, nonmembers], references.adv_in[:, nonmembers])
    return rmia(inputs, references.eval_logits, references.eval_in, online=False, offline_a=RMIA_OFFLINE_A,
                gamma=RMIA_GAMMA, population=population, adv_shadow_logits=references.adv_logits,
                adv_shadow_in=references.adv_in, out_models=out_models, n_bootstrap=n_bootstrap, seed=seed)


def measure_run(run: experiment.Run, epoch: int | None, references: References, options: dict,
                n_bootstrap: int, aware: References | None = None) -> tuple[dict, dict, dict, dict]:
    """Every attack of :data:`ATTACKS` on ``run`` (after ``epoch``: an early-stopping snapshot).
    Returns (results, samples, seconds, notes) as :class:`RunAttacks` holds them. The bootstrap and
    the augmentation draws are seeded with the run's seed.

    Args:
        run: the target, a stored :class:`mia_utils.experiment.Run` (weights and outputs).
        epoch: the snapshot to attack (an early-stopping epoch), or None for the final model.
        references: RMIA's reference outputs on the run's split (:class:`References`): the
            baseline recipe's, for the adversary who does not know the target's recipe.
        options: ``augmentations`` (K queries), ``query_samples`` and ``boundary_samples`` (per
            side), ``aware_references`` (OUT models per sample of the recipe-aware RMIA;
            :func:`mia_utils.book.chapters.stronger_attack_options`).
        n_bootstrap: bootstrap resamples of each attack's metrics.
        aware: the recipe-aware adversary's reference outputs (trained with the target's recipe),
            or None: then ``rmia_aware`` is not measured.
    """
    config, seed = run.config, run.config.seed
    outputs = run.outputs if epoch is None else run.snapshot_outputs(epoch)
    inputs = AttackInputs.from_outputs(outputs)
    model = run.model(epoch)
    data = load_dataset(config.dataset)
    split = split_for(config, data.info)
    eval_images = gather(data, evaluation_indices(data.info, split))[0]
    adv_images = gather(data, _adversary_indices(data.info, split))[0]
    n, n_adv = len(inputs.labels), len(inputs.adv_labels)
    query, adv_query = subsample(n, options["query_samples"]), subsample(n_adv, options["query_samples"])
    near, adv_near = subsample(n, options["boundary_samples"]), subsample(n_adv, options["boundary_samples"])
    results, seconds, notes = {}, {}, {}

    def timed(name, attack, *args, **kwargs):
        started = time.perf_counter()
        results[name] = attack(*args, **kwargs)
        seconds[name] = time.perf_counter() - started

    timed("yeom", yeom, inputs, n_bootstrap=n_bootstrap, seed=seed)
    timed("rmia", _rmia_offline, inputs, references, None, n_bootstrap, seed)
    if aware is not None:
        timed("rmia_aware", _rmia_offline, inputs, aware, options["aware_references"], n_bootstrap, seed)
    crop, noise, clamp = training_augmentation(config)
    if crop or noise:
        started = time.perf_counter()
        k = options["augmentations"]
        eval_losses = augmented_losses(model, eval_images[query], inputs.labels[query], k, crop, noise, clamp, seed)
        adv_losses = augmented_losses(model, adv_images[adv_query], inputs.adv_labels[adv_query], k, crop, noise,
                                      clamp, seed + 1)
        results["augmentation"] = augmentation_aware_attack(eval_losses, inputs.is_member[query], adv_losses,
                                                            inputs.adv_is_member[adv_query], reduction="best",
                                                            n_bootstrap=n_bootstrap, seed=seed)
        seconds["augmentation"] = time.perf_counter() - started
        notes.update(augmentation_queries=k, augmentation_reduction=results["augmentation"].name.rsplit("_", 1)[1])
    else:  # trained on clean images: its own "augmentation" is the identity, one clean query
        timed("augmentation", loss_threshold, _subset_inputs(inputs, query, adv_query), n_bootstrap=n_bootstrap,
              seed=seed)
        notes.update(augmentation_queries=1, augmentation_reduction="clean loss")
    timed("gap", label_only_gap, inputs, n_bootstrap=n_bootstrap, seed=seed)
    for name, shift in (("translation", TRANSLATION_SHIFT), ("translation_d2", TRANSLATION_SHIFT_2)):
        started = time.perf_counter()
        eval_correct = translation_correctness(model, eval_images, inputs.labels, shift)
        adv_correct = translation_correctness(model, adv_images, inputs.adv_labels, shift)
        queried = time.perf_counter()
        results[name] = label_only_translation_model(
            eval_correct, inputs.labels, inputs.is_member, adv_correct, inputs.adv_labels, inputs.adv_is_member,
            seed=seed, n_bootstrap=n_bootstrap, name=f"label_only_translation_d{shift}")
        seconds[name] = time.perf_counter() - started
        if shift == TRANSLATION_SHIFT:  # the count variant reads the same queries (their time counts for it)
            query_seconds, started = queried - started, time.perf_counter()
            results["translation_count"] = label_only_translation(eval_correct, inputs.is_member, adv_correct,
                                                                  inputs.adv_is_member, n_bootstrap, seed)
            seconds["translation_count"] = query_seconds + time.perf_counter() - started
    started = time.perf_counter()
    eval_distances = boundary_distances(model, eval_images[near], inputs.labels[near], **BOUNDARY)
    adv_distances = boundary_distances(model, adv_images[adv_near], inputs.adv_labels[adv_near], **BOUNDARY)
    results["boundary"] = label_only_boundary(eval_distances, inputs.is_member[near], adv_distances,
                                              inputs.adv_is_member[adv_near], n_bootstrap, seed)
    seconds["boundary"] = time.perf_counter() - started
    passes = torch.cat([eval_distances.forward_passes, adv_distances.forward_passes]).double()
    gradients = torch.cat([eval_distances.backward_passes, adv_distances.backward_passes]).double()
    notes.update(boundary_forward=float(passes.mean()), boundary_gradients=float(gradients.mean()))
    samples = {"all": torch.arange(n), "query": query, "boundary": near}
    return results, {name: samples[SAMPLE_SETS[name]] for name in ATTACKS if name in results}, seconds, notes


def _estimate_row(estimate: Estimate) -> list:
    exact = list(estimate.exact) if estimate.exact is not None else None
    return [estimate.value, estimate.std, estimate.low, estimate.high, exact]


def _estimate_from(row: list) -> Estimate:
    value, std, low, high, exact = row
    return Estimate(value, std, low, high, tuple(exact) if exact is not None else None)


def attack_key(run_key: str, epoch: int | None, reference_keys, options: dict, n_bootstrap: int,
               aware_keys=None) -> str:
    """The store key of one run's attacks: a hash of the run, the snapshot epoch, the reference
    models, the attacks' settings and the bootstrap.

    Args:
        run_key: the target run's store key.
        epoch: the attacked snapshot, or None for the final model.
        reference_keys: the store keys of RMIA's reference models, in order.
        options: the chapter's attack options (:func:`measure_run`).
        n_bootstrap: bootstrap resamples of each attack's metrics.
        aware_keys: the recipe-aware reference models' store keys and snapshot epoch
            (``[keys, epoch]``), or None when the run has none.
    """
    settings = {"run": run_key, "epoch": epoch, "references": list(reference_keys), "options": dict(options),
                "translation_shift": [TRANSLATION_SHIFT, TRANSLATION_SHIFT_2], "boundary": BOUNDARY,
                "rmia": {"a": RMIA_OFFLINE_A, "gamma": RMIA_GAMMA, "population": "adversary non-members"},
                "aware": None if aware_keys is None else [list(aware_keys[0]), aware_keys[1]],
                "n_bootstrap": int(n_bootstrap), "format": ATTACKS_FORMAT}
    return derived_key("atk-", settings)


def attack_run(run: experiment.Run, epoch: int | None, references, reference_keys, options: dict,
               n_bootstrap: int, store: ResultStore, aware=None, aware_keys=None) -> RunAttacks:
    """:func:`measure_run` of ``run``, computed once and kept in ``store`` (a derived ``atk-``
    entry of :func:`attack_key`): per attack its scores, guesses, threshold, metrics and the
    seconds it took.

    Args:
        run: the target (:func:`measure_run`).
        epoch: the attacked snapshot, or None for the final model.
        references: a callable returning the :class:`References` of the run's split, called only
            when the entry must be computed.
        reference_keys: the store keys of the reference models (part of the entry's key).
        options: the chapter's attack options (:func:`measure_run`).
        n_bootstrap: bootstrap resamples of each attack's metrics.
        store: the :class:`mia_utils.store.ResultStore` that keeps the entry.
        aware: a callable returning the recipe-aware adversary's :class:`References` of the run's
            split, or None when there are none (then ``rmia_aware`` is left out).
        aware_keys: ``[keys, epoch]`` of those reference models (part of the entry's key).
    """
    key = attack_key(run.key, epoch, reference_keys, options, n_bootstrap, aware_keys)
    entry = store.load(key)
    if entry is None:
        results, samples, seconds, notes = measure_run(run, epoch, references(), options, n_bootstrap,
                                                       aware() if aware is not None else None)
        attacks_json = {name: {"name": r.name, "threshold": r.threshold, "seconds": seconds[name],
                               "samples": SAMPLE_SETS[name],
                               "metrics": {k: _estimate_row(v) for k, v in r.metrics.items()}}
                        for name, r in results.items()}
        store.save(key, {"attacks": {"run": run.key, "epoch": epoch, "attacks": attacks_json, "notes": notes}},
                   {"scores": {name: r.scores for name, r in results.items()},
                    "predicted": {name: r.predicted for name, r in results.items()},
                    "samples": {name: rows.clone() for name, rows in samples.items()}})
        entry = store.load(key)
        if entry is None:
            raise RuntimeError(f"the attack entry {key} could not be read back from the store")
    saved, tensors = entry["json"]["attacks"], entry["tensors"]
    outputs = run.outputs if epoch is None else run.snapshot_outputs(epoch)
    is_member = outputs["eval_is_member"].bool()
    results, samples, seconds = {}, {}, {}
    for name, item in saved["attacks"].items():
        rows = tensors["samples"][name].long()
        results[name] = AttackResult(item["name"], tensors["scores"][name].double(), tensors["predicted"][name].bool(),
                                     float(item["threshold"]), is_member[rows],
                                     {k: _estimate_from(v) for k, v in item["metrics"].items()})
        samples[name], seconds[name] = rows, float(item["seconds"])
    labels = outputs["eval_labels"]
    correct = outputs["eval_logits"].argmax(1) == labels
    return RunAttacks(run.key, run.config.seed, results, samples, seconds, labels, correct, saved["notes"])


# --- settings over seeds ----------------------------------------------------------------------------

def _variance(estimate: Estimate, metric: str) -> float:
    """The within-seed variance of a metric: the bootstrap's, and for a TPR at a low FPR at least
    that of its exact interval (as :mod:`mia_utils.attacks.evaluation` does)."""
    if math.isnan(estimate.value):
        return math.nan
    if metric in LOW_FPR_METRICS and estimate.exact is not None:
        low, high = estimate.exact
        return max(estimate.std ** 2, ((high - low) / 3.92) ** 2)
    return estimate.std ** 2


@dataclass
class AttackedSetting:
    """One setting over seeds (``setting``, a :class:`mia_utils.book.replicated.Setting`), how the
    chapter selected it (``selection``: "baseline", "RAD<5%", "RAD<15%", both, or "DP-SGD grid"), and
    its attacks per seed (``runs``, in the setting's seed order)."""

    setting: Setting
    selection: str
    runs: list[RunAttacks]

    @property
    def title(self) -> str:
        return setting_title(self.setting)

    @property
    def seeds(self) -> tuple[int, ...]:
        return tuple(run.seed for run in self.runs)

    def on_seeds(self, seeds) -> AttackedSetting:
        by_seed = {run.seed: run for run in self.runs}
        return AttackedSetting(self.setting.on_seeds(seeds), self.selection, [by_seed[s] for s in seeds])

    def measured(self, attack: str) -> bool:
        """Whether ``attack`` was run on every seed (``rmia_aware`` only where the recipe-aware
        adversary has reference models)."""
        return all(attack in run.results for run in self.runs)

    def values(self, attack: str, metric: str) -> list[float]:
        return [run.results[attack].metrics[metric].value for run in self.runs]

    def variances(self, attack: str, metric: str) -> list[float]:
        return [_variance(run.results[attack].metrics[metric], metric) for run in self.runs]

    def estimate(self, attack: str, metric: str = "advantage") -> SeedEstimate:
        """Mean over seeds and 95 % interval (:func:`mia_utils.attacks.evidence.combine_seeds`);
        NaN where the attack was not measured."""
        if not self.measured(attack):
            return _nan_estimate()
        estimate = combine_seeds(self.values(attack, metric), self.variances(attack, metric))
        return estimate if metric == "advantage" else estimate.within(0.0, 1.0)

    def change(self, baseline: AttackedSetting, attack: str, metric: str = "advantage") -> SeedEstimate:
        """This setting minus ``baseline``, seed by seed over this setting's seeds; NaN where either
        lacks the attack."""
        base = baseline.on_seeds(self.seeds)
        if not (self.measured(attack) and base.measured(attack)):
            return _nan_estimate()
        return paired_difference(self.values(attack, metric), base.values(attack, metric),
                                 self.variances(attack, metric), base.variances(attack, metric))


@dataclass
class StrongerAttacks:
    """The chapter's results on ``dataset``: the ``baseline`` and the ``defenses`` (chapter 02's RAD
    picks, then the DP grid) over ``seeds``, attacked with ``options``; ``n_references`` RMIA reference
    models, ``n_population`` population samples, and the seconds the reference models' queries took
    per seed (``reference_seconds``, when first computed). The recipe-aware adversary: ``aware``, the
    titles of the defenses it attacks; ``aware_runs``, the reference models (and distillation
    teachers) trained for it and ``aware_train_seconds`` their training seconds as the store recorded
    them; ``reference_counts``: RMIA on the baseline with 1, 2 and 4 OUT models per sample
    (:func:`reference_count_results`)."""

    dataset: str
    seeds: tuple[int, ...]
    baseline: AttackedSetting
    defenses: list[AttackedSetting]
    options: dict
    n_references: int
    n_population: int
    reference_seconds: list[float]
    aware: list[str] = field(default_factory=list)
    aware_runs: int = 0
    aware_train_seconds: float = 0.0
    reference_counts: dict = field(default_factory=dict)

    @property
    def settings(self) -> list[AttackedSetting]:
        return [self.baseline] + self.defenses


def chapter_settings(reg: findings.RegularizationResults, dp: list[Setting]) -> list[tuple[Setting, str]]:
    """(setting, selection) of chapter 02's RAD<5 % and RAD<15 % picks of every mechanism (one row
    when both pick the same value), then chapter 03's DP grid."""
    chosen = []
    for mechanism in dict.fromkeys(reg.scenarios["mechanism"]):
        picks: dict[str, list] = {}
        for scenario in ("rad5", "rad15"):
            setting = reg.chosen(mechanism, scenario)
            if setting is not None:
                picks.setdefault(setting.label, [setting, []])[1].append(SCENARIO_TITLES[scenario])
        chosen += [(setting, " and ".join(names)) for setting, names in picks.values()]
    return chosen + [(setting, "DP-SGD grid") for setting in dp]


#: The OUT models per sample whose RMIA advantage the chapter compares on the baseline, to choose
#: how many the recipe-aware adversary trains (:func:`reference_count_results`).
REFERENCE_COUNTS = (1, 2, 4)


def reference_count_results(baseline: Setting, shadows, options: dict, n_bootstrap: int, store: ResultStore,
                            counts=REFERENCE_COUNTS) -> dict[int, list[AttackResult]]:
    """Offline RMIA on the baseline at each seed, averaging the first m OUT reference models of each
    sample for m in ``counts`` (chapter 01's shadow models; m larger than they allow is left out):
    the measurement behind the recipe-aware adversary's m. Cached with the references.

    Args:
        baseline: the baseline :class:`~mia_utils.book.replicated.Setting` (one target per seed).
        shadows: chapter 01's shadow-model runs (list of :class:`mia_utils.experiment.Run`).
        options: the chapter's attack options (dict, as :func:`measure_run` takes them).
        n_bootstrap: bootstrap resamples behind each metric's variance (int >= 0).
        store: the :class:`mia_utils.store.ResultStore` the results are cached in.
        counts: the numbers m of OUT models per sample to try (iterable of int >= 1).

    Returns:
        m -> one :class:`mia_utils.attacks.AttackResult` per seed of ``baseline``.
    """
    most = len(shadows) // 2
    out: dict[int, list[AttackResult]] = {}
    for m in (c for c in counts if c <= most):
        key = derived_key("atk-", {"reference_count": m, "references": [run.key for run in shadows],
                                   "targets": [c.key() for c in baseline.configs], "n_bootstrap": int(n_bootstrap),
                                   "rmia": {"a": RMIA_OFFLINE_A, "gamma": RMIA_GAMMA}, "format": ATTACKS_FORMAT})
        entry = store.load(key)
        if entry is None:
            rows = []
            for run, epoch in baseline.runs(store):
                inputs = AttackInputs.from_outputs(run.outputs if epoch is None else run.snapshot_outputs(epoch))
                result = _rmia_offline(inputs, references_for(shadows, run.config, store), m, n_bootstrap,
                                       run.config.seed)
                rows.append({k: _estimate_row(v) for k, v in result.metrics.items()})
            store.save(key, {"reference_count": {"m": m, "metrics": rows}}, {})
            entry = store.load(key)
        out[m] = [{k: _estimate_from(v) for k, v in row.items()} for row in entry["json"]["reference_count"]["metrics"]]
    return out


def stronger_attacks(profile, params: dict, seeds, store: ResultStore | None = None) -> StrongerAttacks:
    """Read back chapter 02's sweep with its selection and chapter 03's DP grid on the chapter's first
    dataset, and attack the baseline and every selected setting at each of ``seeds``
    (:func:`attack_run`). RMIA's references for the adversary who does not know the recipe: the
    profile's shadow models of the ``seed`` parameter's baseline, chapter 01's, queried on each seed's
    split once. For the recipe-aware adversary (:func:`aware_settings`): reference models trained
    with each setting's own recipe (:func:`aware_reference_configs`), early stopping's read at its
    epoch from chapter 01's shadow models, and the baseline's own, chapter 01's, each averaging
    ``aware_references`` OUT models per sample."""
    from mia_utils.book.chapters import aware_dp_sigma

    store = store or ResultStore()
    dataset = params["datasets"][0]
    options = stronger_attack_options(params)
    seeds = tuple(seeds)
    reg = findings.regularization_results(profile, dataset, seeds, store, confirm=False)
    dp = findings.dp_settings(profile, dataset, seeds, store)
    base = profile.base_config(dataset, seed=params["seed"])
    shadows = [experiment.run(base.shadow(i, profile.shadow_models), store) for i in range(profile.shadow_models)]
    reference_keys = [run.key for run in shadows]
    cached: dict = {}

    def references(config, models=shadows, epoch=None):
        def load():
            key = (config.split_seed, tuple(run.key for run in models), epoch)
            if key not in cached:
                cached[key] = references_for(models, config, store, epoch)
            return cached[key]
        return load

    aware_by_label: dict[str, tuple[list, int | None]] = {}
    aware_runs: dict[str, experiment.Run] = {}
    count = aware_count(options)
    for setting in aware_settings(reg, dp, aware_dp_sigma(params)):
        if setting.mechanism == "early_stopping":  # stopped at the last epoch: the final models
            epoch = int(setting.value)
            aware_by_label[setting.label] = (shadows, epoch if epoch < base.epochs else None)
            continue
        models = [experiment.run(config, store) for config in aware_reference_configs(setting.configs[0], count)]
        aware_by_label[setting.label] = (models, None)
        for run in models:
            aware_runs[run.key] = run
            teacher = run.config.teacher()
            if teacher is not None:
                aware_runs.setdefault(teacher.key(), experiment.run(teacher, store))

    def attacked(setting: Setting, selection: str) -> AttackedSetting:
        models, aware_epoch = aware_by_label.get(setting.label, (None, None))
        if setting.mechanism == "baseline":
            models = shadows
        runs = []
        for run, epoch in setting.runs(store):
            aware = None if models is None else references(run.config, models, aware_epoch)
            aware_keys = None if models is None else [[m.key for m in models], aware_epoch]
            runs.append(attack_run(run, epoch, references(run.config), reference_keys, options, profile.bootstrap,
                                   store, aware, aware_keys))
        return AttackedSetting(setting, selection, runs)

    baseline = attacked(reg.baseline.on_seeds(seeds), "baseline")
    defenses = [attacked(setting, selection) for setting, selection in chapter_settings(reg, dp)]
    reference_seconds = [references(setting_config)().seconds for setting_config in
                         (profile.base_config(dataset, seed=s) for s in seeds)]
    n_population = int((~shadows[0].outputs["adv_is_member"].bool()).sum())
    aware_titles = [item.title for item in defenses if item.setting.label in aware_by_label]
    train_seconds = sum(float(run.provenance.get("train_seconds", 0.0)) for run in aware_runs.values())
    counts = reference_count_results(reg.baseline.on_seeds(seeds), shadows, options, profile.bootstrap, store)
    return StrongerAttacks(dataset, seeds, baseline, defenses, options, len(shadows), n_population,
                           reference_seconds, aware_titles, len(aware_runs), train_seconds, counts)


# --- tables -----------------------------------------------------------------------------------------

def _n_nonmembers(results: StrongerAttacks, attack: str) -> int:
    run = results.baseline.runs[0]
    return int((~run.results[attack].is_member).sum())


def advantage_table(results: StrongerAttacks, attacks=SCORE_ATTACKS, accuracy: bool = True) -> pd.DataFrame:
    """Table 1: one row per setting (index ``setting``; the baseline first), how it was selected,
    its test accuracy (when ``accuracy``) and each of ``attacks``' advantage, mean over seeds with its
    95 % interval in percent."""
    rows = []
    for item in results.settings:
        row = {"setting": item.title, "selected as": item.selection}
        if accuracy:
            row["test acc (%)"] = item.setting.estimate("test_acc").format()
        for attack in attacks:
            row[f"{SHORT_TITLES[attack]} (%)"] = estimate_text(item.estimate(attack, "advantage")) \
                if item.measured(attack) else NOT_MEASURED
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def _resolved(results: StrongerAttacks, attack: str, metric: str) -> bool:
    return any(not math.isnan(item.estimate(attack, metric).mean) for item in results.settings)


def _mean_text(estimate: SeedEstimate, digits: int) -> str:
    return "n/a" if math.isnan(estimate.mean) else f"{100 * estimate.mean:.{digits}f}"


def compact_table(results: StrongerAttacks) -> pd.DataFrame:
    """Table 1's compact companion: per setting, each attack's AUC and TPR at 1 % FPR (and at 0.1 %
    FPR for the attacks whose sample set resolves it), means over seeds in percent; two levels of
    columns (metric, attack); "n/a" where the sample set cannot resolve the rate."""
    columns = [("AUC (%)", "auc", attack) for attack in ATTACKS]
    columns += [(f"{METRIC_TITLES[m]} (%)", m, attack) for m in LOW_FPR_METRICS for attack in ATTACKS
                if _resolved(results, attack, m)]
    data = {}
    for title, metric, attack in columns:
        digits = 1 if metric == "auc" else 2
        data[(title, SHORT_TITLES[attack])] = [
            _mean_text(item.estimate(attack, metric), digits)
            for item in results.settings]
    frame = pd.DataFrame(data, index=pd.Index([item.title for item in results.settings], name="setting"))
    frame.columns = pd.MultiIndex.from_tuples(frame.columns, names=["metric", "attack"])
    return frame


def compact_views(results: StrongerAttacks) -> tuple[pd.DataFrame, pd.DataFrame]:
    """:func:`compact_table` as two tables narrow enough for the page: the AUCs, and the TPRs at
    low FPR."""
    table = compact_table(results)
    return table[["AUC (%)"]], table.drop(columns="AUC (%)", level="metric")


@dataclass(frozen=True)
class AttackVerdict:
    """Whether one defense lowers one attack's advantage below the baseline's: the paired
    difference (``change``, fractions) and its ``verdict``."""

    setting: str
    attack: str
    change: SeedEstimate
    verdict: str


#: The verdict of an attack a defense was not attacked with (``rmia_aware`` without references).
NOT_MEASURED = "n/a"


def per_side(results: StrongerAttacks, attack: str) -> int:
    """Members (and as many non-members) per side that ``attack`` scores in the evaluation set."""
    n_all = len(results.baseline.runs[0].labels) // 2
    return {"all": n_all, "query": min(results.options["query_samples"], n_all),
            "boundary": min(results.options["boundary_samples"], n_all)}[SAMPLE_SETS[attack]]


def resolvable(results: StrongerAttacks, attack: str) -> bool:
    """Whether ``attack``'s own advantage on the baseline has a 95 % interval that excludes zero: only
    then can its changes count for or against a defense."""
    return results.baseline.estimate(attack).excludes_zero


def not_resolvable_text(results: StrongerAttacks, attack: str) -> str:
    return f"not resolvable at n = {per_side(results, attack):,} per side"


def verdicts(results: StrongerAttacks, metric: str = "advantage") -> list[AttackVerdict]:
    """For every defense and attack, the paired difference of ``metric`` against the baseline over
    the defense's seeds and the verdict on "the defense lowers it" (holds / contradicted /
    inconclusive, :func:`mia_utils.attacks.evidence.verdict`); "not resolvable at n = ..." for an
    attack whose own baseline interval contains zero (it is counted neither for nor against the
    defense), :data:`NOT_MEASURED` where the defense was not attacked with it."""
    out = []
    for item in results.defenses:
        for attack in ATTACKS:
            change = item.change(results.baseline, attack, metric)
            if math.isnan(change.mean) and not item.measured(attack):
                state = NOT_MEASURED
            elif metric == "advantage" and not resolvable(results, attack):
                state = not_resolvable_text(results, attack)
            else:
                state = verdict(change, "decrease")
            out.append(AttackVerdict(item.title, attack, change, state))
    return out


def verdict_table(results: StrongerAttacks, attacks=SCORE_ATTACKS) -> pd.DataFrame:
    """Table 2: one row per defense, one column per attack of ``attacks``: the paired change of the
    advantage against the baseline (points, 95 % interval) and the verdict on "the defense lowers
    this attack's advantage"."""
    found = {(v.setting, v.attack): v for v in verdicts(results)}
    rows = []
    for item in results.defenses:
        row = {"setting": item.title}
        for attack in attacks:
            v = found[(item.title, attack)]
            text = "n/a" if math.isnan(v.change.mean) else v.change.format(signed=True)
            measured = v.verdict != NOT_MEASURED
            row[f"Δ {SHORT_TITLES[attack]} (pp)"] = f"{text}: {v.verdict}" if measured else NOT_MEASURED
        rows.append(row)
    return pd.DataFrame(rows).set_index("setting")


def _join(items: list[str], last: str = "and") -> str:
    if len(items) <= 1:
        return "".join(items)
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


#: The stronger attacks of the adversary who does not know the recipe (all but Yeom's and the
#: recipe-aware RMIA, which :func:`adversary_table` reads apart).
BLIND_ATTACKS = tuple(a for a in ATTACKS[1:] if a != "rmia_aware")


def leaking_attacks(results: StrongerAttacks, attacks=BLIND_ATTACKS) -> list[str]:
    """The stronger attacks whose advantage on the baseline itself has a 95 % interval above zero:
    only they can show a defense's protection failing."""
    return [a for a in attacks if results.baseline.estimate(a).low > 0]


def survival_sentence(results: StrongerAttacks) -> str:
    """Which defenses' protection does not survive the stronger attacks, in words. A defense's
    protection is tested when its lowering of Yeom's advantage holds; it fails against a stronger
    attack that leaks on the baseline (:func:`leaking_attacks`) when the defense does not lower that
    attack's advantage: **contradicted** (it raises it) or **inconclusive** (not shown to lower it).
    Defenses failing the same attacks in the same way are named together."""
    found = {(v.setting, v.attack): v for v in verdicts(results)}
    testers = leaking_attacks(results)
    silent = [ATTACK_TITLES[a] for a in BLIND_ATTACKS if a not in testers]
    holding = [item.title for item in results.defenses if found[(item.title, "yeom")].verdict == HOLDS]
    head = (f"Of the {len(results.defenses)} defense settings, {len(holding)} lower Yeom's advantage (the "
            f"paper's measure, paired with the baseline over {len(results.seeds)} seeds).")
    if silent:
        names = _join(silent)
        one = len(silent) == 1
        head += (f" {names[0].upper() + names[1:]} {'gains' if one else 'gain'} no advantage on the baseline itself "
                 f"that {'its' if one else 'their'} 95 % interval can tell from zero, so {'it' if one else 'they'} "
                 f"cannot show a defense failing and {'is' if one else 'are'} left out here.")
    if not holding:
        return head + " There is no protection against Yeom's attack to test further."
    patterns: dict[tuple, list[str]] = {}
    for title in holding:
        failing = tuple((a, found[(title, a)].verdict) for a in testers if found[(title, a)].verdict != HOLDS)
        patterns.setdefault(failing, []).append(title)
    kept = patterns.pop((), [])
    if not patterns:
        return head + " Every one of them also lowers the advantage of every stronger attack that leaks."
    parts = []
    for failing, titles in patterns.items():
        attacks = _join([f"{ATTACK_TITLES[a]} ({state})" for a, state in failing], "or")
        parts.append(f"{_join(titles)} lower{'s' if len(titles) == 1 else ''} Yeom's advantage but not the "
                     f"advantage of {attacks}")
    survived = (f"{_join(kept)} {'keeps its' if len(kept) == 1 else 'keep their'} protection against every "
                "stronger attack that leaks" if kept else "None keeps its protection against every stronger attack "
                "that leaks")
    return (head + f" {survived}. The protection of the others is not shown to survive (contradicted: the "
            "attack gains; inconclusive: not shown to lose): " + "; ".join(parts) + ".")


def power_sentence(results: StrongerAttacks) -> str:
    """For each stronger attack that leaks on the baseline but is shown lowered by no defense, how
    little it leaks there and how wide its paired changes are: such verdicts measure the attack's
    power on its sample set more than the defenses. Empty when there is none."""
    found = verdicts(results)
    parts = []
    for attack in leaking_attacks(results, ATTACKS[1:]):
        mine = [v for v in found if v.attack == attack and v.verdict != NOT_MEASURED]
        if mine and not any(v.verdict == HOLDS for v in mine):
            widths = [v.change.half_width for v in mine if not math.isnan(v.change.mean)]
            n_side = per_side(results, attack)
            parts.append(f"{ATTACK_TITLES[attack]} gains only {results.baseline.estimate(attack).format()} % on the "
                         f"baseline, and its paired changes, measured on {n_side:,} members and non-members per "
                         f"side, have 95 % half-widths of {100 * min(widths):.1f} to {100 * max(widths):.1f} points")
    if not parts:
        return ""
    return ("No defense is shown to lower every attack, but read the exceptions with the attacks' power in mind: "
            + "; ".join(parts) + ". A defense would have to remove most of such an attack's small advantage to be "
            "told apart from the baseline.")


NOT_JUDGED = "not judged"


def verdict_counts(results: StrongerAttacks) -> pd.DataFrame:
    """Per attack (rows), how many defenses' verdicts hold, are contradicted or inconclusive, and
    how many are not judged (the attack not resolvable on the baseline, or not run on the defense)."""
    found = verdicts(results)
    states = (HOLDS, CONTRADICTED, INCONCLUSIVE)
    rows = [{"attack": ATTACK_TITLES[a], **{state: sum(v.verdict == state for v in found if v.attack == a)
                                            for state in states},
             NOT_JUDGED: sum(v.verdict not in states for v in found if v.attack == a)} for a in ATTACKS]
    return pd.DataFrame(rows).set_index("attack")


# --- what a label-only attack's sample can resolve ------------------------------------------------

def resolution_table(results: StrongerAttacks, attacks=LABEL_ONLY_ATTACKS) -> pd.DataFrame:
    """Per attack: the members and non-members it scores per side, its advantage on the baseline
    (percent, 95 % interval over seeds), the smallest advantage its sample resolves (the interval's
    half-width, in points: a smaller advantage would have an interval containing zero), and whether
    its own baseline advantage is resolved or "not resolvable at n = ..." (then none of its
    verdicts counts for or against a defense)."""
    rows = []
    for attack in attacks:
        estimate = results.baseline.estimate(attack)
        rows.append({"attack": ATTACK_TITLES[attack], "per side": f"{per_side(results, attack):,}",
                     "baseline advantage (%)": estimate_text(estimate),
                     "smallest resolvable advantage (pp)": f"{100 * estimate.half_width:.1f}",
                     "on the baseline": "resolved" if resolvable(results, attack)
                     else not_resolvable_text(results, attack)})
    return pd.DataFrame(rows).set_index("attack")


def resolution_sentence(results: StrongerAttacks, attacks=LABEL_ONLY_ATTACKS) -> str:
    """The label-only attacks' resolution in words: each one's smallest resolvable advantage, and
    which are not resolvable on the baseline at their sample size."""
    parts = [f"{ATTACK_TITLES[a]} {100 * results.baseline.estimate(a).half_width:.1f} points at "
             f"{per_side(results, a):,} per side" for a in attacks]
    text = "The smallest advantage each label-only attack's sample resolves: " + _join(parts) + "."
    silent = [a for a in attacks if not resolvable(results, a)]
    if silent:
        text += (" Not resolvable on the baseline, so counted neither for nor against any defense: "
                 + _join([f"{ATTACK_TITLES[a]} ({not_resolvable_text(results, a)})" for a in silent]) + ".")
    else:
        text += " Each one's advantage on the baseline is resolved, so all their verdicts count."
    return text


# --- the two adversaries ----------------------------------------------------------------------------

SURVIVES, FAILS, NOT_SHOWN, UNTESTED = "survives", "fails (RMIA gains)", "not shown", "no protection to test"
#: RMIA gave every sample the same score on every seed: no population sample's ratio reached gamma
#: (a target whose outputs are as flat as its reference models', e.g. distilled at a high
#: temperature), so the attack says nothing about this defense.
DEGENERATE = "RMIA uninformative (one score for all)"


def constant_scores(item: AttackedSetting, attack: str) -> bool:
    """Whether ``attack`` scored every sample alike on every seed of ``item``."""
    return item.measured(attack) and all(len(run.results[attack].scores.unique()) == 1 for run in item.runs)


def _survival(yeom: str, attack: str, degenerate: bool = False) -> str:
    if yeom != HOLDS:
        return UNTESTED
    if degenerate:
        return DEGENERATE
    if attack == HOLDS:
        return SURVIVES
    return FAILS if attack == CONTRADICTED else NOT_SHOWN


def adversary_rows(results: StrongerAttacks) -> list[dict]:
    """For each defense the recipe-aware adversary attacks: Yeom's verdict, and RMIA's paired change
    and verdict under each adversary, with whether the protection survives (Yeom lowered and RMIA
    lowered: survives; RMIA raised: fails; otherwise not shown; Yeom not lowered: nothing to test;
    RMIA's scores all equal on every seed: uninformative, :data:`DEGENERATE`)."""
    found = {(v.setting, v.attack): v for v in verdicts(results)}
    rows = []
    for item in results.defenses:
        if item.title not in results.aware:
            continue
        yeom = found[(item.title, "yeom")].verdict
        row = {"setting": item.title, "yeom": yeom}
        for attack in ("rmia", "rmia_aware"):
            v = found[(item.title, attack)]
            row[attack] = v
            row[f"{attack}_survival"] = _survival(yeom, v.verdict, constant_scores(item, attack))
        rows.append(row)
    return rows


def adversary_table(results: StrongerAttacks) -> pd.DataFrame:
    """Does the protection survive RMIA? One row per defense of :func:`adversary_rows`: the change of
    RMIA's advantage against the baseline (points, 95 % interval, verdict) and the survival, for the
    adversary who knows the recipe (the headline) and the one who does not."""
    out = []
    for row in adversary_rows(results):
        entry = {"setting": row["setting"], "Yeom lowered": row["yeom"]}
        for attack, who in (("rmia_aware", "recipe-aware"), ("rmia", "baseline-recipe")):
            v = row[attack]
            entry[f"Δ RMIA, {who} (pp)"] = f"{v.change.format(signed=True)}: {v.verdict}"
            entry[f"survives? ({who})"] = row[f"{attack}_survival"]
        out.append(entry)
    return pd.DataFrame(out).set_index("setting")


def aware_sentence(results: StrongerAttacks) -> str:
    """Whose protection survives RMIA, first under the adversary who knows the recipe (the headline),
    then under the one who does not, in words."""
    rows = adversary_rows(results)
    if not rows:
        return "No defense was attacked with recipe-aware reference models."

    def named(attack, state):
        return [row["setting"] for row in rows if row[f"{attack}_survival"] == state]

    def clause(attack):
        kept, failed, unclear = named(attack, SURVIVES), named(attack, FAILS), named(attack, NOT_SHOWN)
        parts = [f"{len(kept)} keep{'s' if len(kept) == 1 else ''} it ({_join(kept)})" if kept else "none keeps it"]
        if failed:
            parts.append(f"RMIA gains against {_join(failed)}")
        if unclear:
            parts.append(f"for {_join(unclear)} the protection is not shown (RMIA's change is inconclusive)")
        flat = named(attack, DEGENERATE)
        if flat:
            parts.append(f"against {_join(flat)} RMIA gives every sample the same score (no ratio reaches γ = "
                         f"{RMIA_GAMMA:g}), so it tests nothing there: an apparent survival, not a measured one")
        return "; ".join(parts)

    tested = [row["setting"] for row in rows if row["yeom"] == HOLDS]
    untested = [row["setting"] for row in rows if row["yeom"] != HOLDS]
    head = (f"Of the {len(rows)} defense settings attacked with reference models trained with their own recipe, "
            f"{len(tested)} lower Yeom's advantage")
    head += f" ({_join(untested)} do{'es' if len(untested) == 1 else ''} not, so there is nothing to test there)" \
        if untested else ""
    text = (head + f". Against the adversary who knows the recipe, {clause('rmia_aware')}. Against the adversary "
            f"whose reference models use the baseline recipe, {clause('rmia')}.")
    differ = [row for row in rows if row["rmia"].verdict != row["rmia_aware"].verdict]
    if differ:
        text += " The two adversaries disagree on " + _join(
            [f"{row['setting']} (RMIA's change {row['rmia'].change.format(signed=True)} points with baseline-recipe "
             f"references, {row['rmia'].verdict}; {row['rmia_aware'].change.format(signed=True)} with recipe-aware "
             f"ones, {row['rmia_aware'].verdict})" for row in differ]) + "."
    return text


def reference_count_table(results: StrongerAttacks) -> pd.DataFrame:
    """RMIA on the baseline with m = 1, 2, 4 OUT reference models per sample (chapter 01's shadow
    models): advantage and AUC, mean over seeds with 95 % intervals, in percent; the row of the
    recipe-aware adversary's m is marked."""
    rows = []
    for m, per_seed in results.reference_counts.items():
        row = {"OUT models per sample": m,
               "models trained per setting": 2 * m,
               "chosen": "yes" if m == results.options["aware_references"] else ""}
        for metric, title in (("advantage", "advantage (%)"), ("auc", "AUC (%)")):
            values = [metrics[metric].value for metrics in per_seed]
            variances = [_variance(metrics[metric], metric) for metrics in per_seed]
            row[title] = estimate_text(combine_seeds(values, variances))
        rows.append(row)
    return pd.DataFrame(rows).set_index("OUT models per sample")


def reference_count_sentence(results: StrongerAttacks) -> str:
    """The measurement behind m in words: RMIA's advantage on the baseline with each m, and the cost
    of the chosen m in training runs."""
    m = results.options["aware_references"]
    parts = []
    for count, per_seed in results.reference_counts.items():
        values = [metrics["advantage"].value for metrics in per_seed]
        variances = [_variance(metrics["advantage"], "advantage") for metrics in per_seed]
        parts.append(f"{count}: {combine_seeds(values, variances).format()} %")
    return (f"RMIA's advantage on the baseline with m OUT reference models per sample ({_join(parts)}). The "
            f"recipe-aware adversary uses m = {m}: {2 * m} models trained per defended setting, "
            f"{results.aware_runs} runs in all (distillation's teachers included), "
            f"{results.aware_train_seconds / 60:.1f} minutes of training as the store recorded it.")


def cost_table(results: StrongerAttacks) -> pd.DataFrame:
    """Table 3: what each attack costs, per evaluated sample (target forward passes, input
    gradients, reference models and their forward passes: :func:`mia_utils.attacks.rmia_cost`,
    :func:`mia_utils.attacks.augmentation_aware_cost`, :func:`mia_utils.attacks.label_only_cost`),
    whether it reads only labels, the samples it attacks per side, and the seconds it took per
    model here (mean over every model, measured when first computed; RMIA's reference queries,
    once per seed, are given apart)."""
    options, m = results.options, results.n_references
    runs = [run for item in results.settings for run in item.runs]
    forward = np.mean([run.notes["boundary_forward"] for run in runs])
    gradients = np.mean([run.notes["boundary_gradients"] for run in runs])
    k = options["augmentations"]
    costs = {"yeom": {"target_queries": 1, "target_gradients": 0, "reference_models": 0, "reference_queries": 0,
                      "label_only": False},
             "rmia": rmia_cost(m, results.n_population),
             "rmia_aware": rmia_cost(aware_count(options), results.n_population),
             "augmentation": augmentation_aware_cost(k),
             "gap": label_only_cost("gap"), "translation": label_only_cost("translation", TRANSLATION_SHIFT),
             "translation_d2": label_only_cost("translation", TRANSLATION_SHIFT_2),
             "translation_count": label_only_cost("translation", TRANSLATION_SHIFT),
             "boundary": label_only_cost("boundary", max_steps=BOUNDARY["max_steps"],
                                         refine_steps=BOUNDARY["refine_steps"])}
    queries = {name: str(cost["target_queries"]) for name, cost in costs.items()}
    queries["augmentation"] = f"{k} (cropping or noise), 1 (others)"
    queries["boundary"] = f"≤ {costs['boundary']['target_queries']} (mean {forward:.1f})"
    grads = {name: str(cost["target_gradients"]) for name, cost in costs.items()}
    grads["boundary"] = f"≤ {costs['boundary']['target_gradients']} (mean {gradients:.1f})"
    rows = []
    for name in ATTACKS:
        cost = costs[name]
        timed = [run.seconds[name] for run in runs if name in run.seconds]
        rows.append({"attack": ATTACK_TITLES[name], "target forward passes / sample": queries[name],
                     "input gradients / sample": grads[name], "reference models": cost["reference_models"],
                     "reference forward passes / sample": cost["reference_queries"],
                     "reads labels only": "yes" if cost["label_only"] else "no",
                     "samples per side": per_side(results, name),
                     "seconds / model": f"{np.mean(timed):.2f}" if timed else "n/a",
                     "once per seed (s)": f"{np.mean(results.reference_seconds):.1f}" if name == "rmia" else ""})
    return pd.DataFrame(rows).set_index("attack")


# --- the most exposed samples -----------------------------------------------------------------------

def strongest_attack(item: AttackedSetting, attacks=("yeom",) + BLIND_ATTACKS) -> tuple[str, str]:
    """(attack, metric): the attack with the highest mean TPR at 1 % FPR over seeds on ``item``,
    among those whose samples resolve it; the highest mean AUC where none does. By default among
    the attacks every setting was attacked with (the recipe-aware RMIA is left out)."""
    for metric in ("tpr_at_1%_fpr", "auc"):
        means = {a: item.estimate(a, metric).mean for a in attacks}
        means = {a: v for a, v in means.items() if not math.isnan(v)}
        if means:
            return max(means, key=means.get), metric
    raise ValueError(f"{item.title}: no attack has a measurable TPR at 1 % FPR or AUC")


def _relative(change: SeedEstimate, baseline: SeedEstimate) -> SeedEstimate:
    scale = 1.0 / baseline.mean
    return SeedEstimate(change.mean * scale, change.low * scale, change.high * scale, change.se * scale,
                        tuple(v * scale for v in change.values))


OUTLIERS_LESS = "outliers less protected"
OUTLIERS_MORE = "outliers more protected"


@dataclass(frozen=True)
class OutlierReading:
    """One defense against ``attack``: the relative change (fraction of the baseline's mean; NaN
    where the baseline's interval includes 0) of the TPR at 1 % FPR (the most exposed members) and
    of the advantage (the average member), and the ``reading``: :data:`OUTLIERS_LESS` when the TPR
    falls relatively less than the advantage (intervals apart), :data:`OUTLIERS_MORE` when it falls
    relatively more, inconclusive when the intervals overlap or cannot be computed."""

    setting: str
    attack: str
    tpr: SeedEstimate
    advantage: SeedEstimate
    reading: str


def _nan_estimate() -> SeedEstimate:
    return SeedEstimate(math.nan, math.nan, math.nan, math.nan, ())


def outlier_readings(results: StrongerAttacks, attack: str | None = None) -> list[OutlierReading]:
    """:class:`OutlierReading` of every defense against ``attack`` (default: the baseline's strongest
    attack at 1 % FPR, :func:`strongest_attack`), each change paired with the baseline by seed."""
    attack = attack or strongest_attack(results.baseline)[0]
    out = []
    for item in results.defenses:
        relative = {}
        for metric in ("tpr_at_1%_fpr", "advantage"):
            base = results.baseline.on_seeds(item.seeds).estimate(attack, metric)
            usable = not math.isnan(base.mean) and base.excludes_zero and base.mean > 0
            relative[metric] = _relative(item.change(results.baseline, attack, metric), base) if usable \
                else _nan_estimate()
        tpr, adv = relative["tpr_at_1%_fpr"], relative["advantage"]
        if math.isnan(tpr.mean) or math.isnan(adv.mean):
            reading = INCONCLUSIVE
        elif tpr.low > adv.high:
            reading = OUTLIERS_LESS
        elif tpr.high < adv.low:
            reading = OUTLIERS_MORE
        else:
            reading = INCONCLUSIVE
        out.append(OutlierReading(item.title, attack, tpr, adv, reading))
    return out


def _relative_text(estimate: SeedEstimate) -> str:
    return "n/a" if math.isnan(estimate.mean) else estimate.format(signed=True)


def outliers_table(readings: list[OutlierReading]) -> pd.DataFrame:
    """One row per defense: the relative changes (percent of the baseline's mean, 95 % interval)
    of the TPR at 1 % FPR and of the advantage, and the reading."""
    return pd.DataFrame([{"setting": r.setting, "Δ TPR @ 1 % FPR (% of baseline)": _relative_text(r.tpr),
                          "Δ advantage (% of baseline)": _relative_text(r.advantage), "reading": r.reading}
                         for r in readings]).set_index("setting")


def outliers_sentence(readings: list[OutlierReading], n_nonmembers: int) -> str:
    """Does each defense protect the most exposed members, or only the average one? In words, from
    :func:`outlier_readings`."""
    if not readings:
        return "There is no defense to compare."
    attack = ATTACK_TITLES[readings[0].attack]
    groups = {state: [r.setting for r in readings if r.reading == state]
              for state in (OUTLIERS_LESS, OUTLIERS_MORE, INCONCLUSIVE)}
    if all(math.isnan(r.tpr.mean) for r in readings):
        return (f"The baseline's TPR at 1 % FPR under {attack} cannot be told apart from 0 (or is not resolvable "
                f"at n = {n_nonmembers:,} non-members per side), so whether the defenses protect the most exposed "
                "members is inconclusive for every one of them.")
    parts = []
    if groups[OUTLIERS_LESS]:
        parts.append(f"{_join(groups[OUTLIERS_LESS])} protect{'s' if len(groups[OUTLIERS_LESS]) == 1 else ''} the "
                     "average member more than the most exposed ones (the TPR at 1 % FPR falls relatively less than "
                     "the advantage)")
    if groups[OUTLIERS_MORE]:
        parts.append(f"{_join(groups[OUTLIERS_MORE])} protect{'s' if len(groups[OUTLIERS_MORE]) == 1 else ''} the "
                     "most exposed members at least as much as the average one (the TPR falls relatively more)")
    if groups[INCONCLUSIVE]:
        parts.append(f"for {_join(groups[INCONCLUSIVE])} the two relative drops cannot be told apart (their "
                     "intervals overlap or the baseline's is not above 0): inconclusive")
    return f"Against {attack}, the strongest attack on the baseline at 1 % FPR: " + "; ".join(parts) + "."


def gallery_settings(results: StrongerAttacks) -> list[AttackedSetting]:
    """The settings the gallery shows: the baseline, each defense chapter 02 selected at RAD<15 %,
    and the DP setting with the most noise."""
    chosen = [results.baseline] + [item for item in results.defenses if "RAD<15%" in item.selection]
    dp = [item for item in results.defenses if item.setting.mechanism == "dp_sgd"]
    return chosen + ([max(dp, key=lambda item: item.setting.value)] if dp else [])


def exposed_members(item: AttackedSetting, attack: str, count: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """The first seed's ``count`` members that ``attack`` scores highest on ``item``: (positions in
    the evaluation set, their scores), highest first (ties in evaluation order)."""
    run = item.runs[0]
    result, rows = run.results[attack], run.samples[attack]
    member_scores = result.scores[result.is_member]
    order = member_scores.argsort(descending=True, stable=True)[:count]
    return rows[result.is_member][order], member_scores[order]


def _evaluation_images(config) -> torch.Tensor:
    data = load_dataset(config.dataset)
    return gather(data, evaluation_indices(data.info, split_for(config, data.info)))[0]


def gallery_overlap(results: StrongerAttacks, count: int = 8) -> dict[str, int]:
    """For every defense of :func:`gallery_settings`, how many of the baseline's ``count`` most
    exposed members (first seed, the baseline's strongest attack) are also among its own ``count``."""
    attack, _ = strongest_attack(results.baseline)
    on_baseline = set(exposed_members(results.baseline, attack, count)[0].tolist())
    return {item.title: len(on_baseline & set(exposed_members(item, attack, count)[0].tolist()))
            for item in gallery_settings(results)[1:]}


def gallery_sentence(results: StrongerAttacks, count: int = 8) -> str:
    """:func:`gallery_overlap` in words: which defenses leave the baseline's most exposed members
    at the top of the strongest attack's ranking."""
    kept = gallery_overlap(results, count)
    attack = ATTACK_TITLES[strongest_attack(results.baseline)[0]]
    ranked = sorted(kept.items(), key=lambda item: -item[1])
    listed = _join([f"{title} ({n})" for title, n in ranked if n > 0])
    none = [title for title, n in ranked if n == 0]
    text = (f"Of the baseline's {count} members that {attack} scores highest on the first seed, "
            + (f"so many stay among the {count} it scores highest on the defended model: {listed}" if listed
               else "none stays among the top under any defense shown"))
    if listed and none:
        text += f"; none under {_join(none)}"
    return text + "."


def gallery_figure(results: StrongerAttacks, count: int = 8):
    """One row per setting of :func:`gallery_settings`: the first seed's ``count`` training images
    that the baseline's strongest attack (:func:`strongest_attack`) scores highest on that setting's
    model (:func:`exposed_members`), each titled with its class, and with a star when it is also
    among the baseline's ``count`` (every setting's first seed shares the baseline's split).
    Returns the matplotlib Figure."""
    import matplotlib.pyplot as plt

    attack, _ = strongest_attack(results.baseline)
    shown = gallery_settings(results)
    on_baseline = set(exposed_members(results.baseline, attack, count)[0].tolist())
    fig, axes = plt.subplots(len(shown), count, figsize=(1.0 * count + 2.2, 1.15 * len(shown)), squeeze=False)
    for row, item in zip(axes, shown):
        positions, _ = exposed_members(item, attack, count)
        images = _evaluation_images(item.setting.configs[0])[positions]
        labels = item.runs[0].labels[positions]
        for ax in row:
            ax.axis("off")
        for ax, image, label, position in zip(row, images, labels, positions.tolist()):
            ax.imshow(image.permute(1, 2, 0).squeeze(-1).numpy(), cmap="gray" if image.shape[0] == 1 else None)
            star = " *" if item is not results.baseline and position in on_baseline else ""
            ax.set_title(class_name(results.dataset, int(label)) + star, fontsize=7)
        row[0].text(-0.15, 0.5, item.title, transform=row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(f"members {ATTACK_TITLES[attack]} scores highest (* also among the baseline's)", fontsize=9)
    fig.subplots_adjust(left=2.1 / (1.0 * count + 2.2), right=0.99, top=0.93, bottom=0.02, hspace=0.45)
    return fig


# --- slices -----------------------------------------------------------------------------------------

def slice_advantage(result: AttackResult, mask: torch.Tensor, min_count: int = MIN_SLICE) -> float:
    """TPR - FPR of ``result``'s guesses within ``mask`` (over its samples); NaN when the slice holds
    fewer than ``min_count`` members or non-members."""
    members, nonmembers = mask & result.is_member, mask & ~result.is_member
    if int(members.sum()) < min_count or int(nonmembers.sum()) < min_count:
        return math.nan
    return float(result.predicted[members].double().mean() - result.predicted[nonmembers].double().mean())


def slice_frame(item: AttackedSetting, dataset: str, min_count: int = MIN_SLICE) -> pd.DataFrame:
    """Each attack's advantage (percent, mean over the seeds where the slice is large enough) on the
    slices of tensorflow/privacy's ``SlicingSpec``: per true class, and for the samples the model
    classifies correctly or not. Rows: the attacks ``item`` was attacked with; columns: the classes,
    then "correct" and "misclassified"; NaN where no seed's slice has ``min_count`` members and
    non-members."""
    n_classes = int(max(int(run.labels.max()) for run in item.runs)) + 1
    columns = [class_name(dataset, c) for c in range(n_classes)] + ["correct", "misclassified"]
    rows = {}
    for attack in (a for a in ATTACKS if item.measured(a)):
        per_seed = []
        for run in item.runs:
            result, positions = run.results[attack], run.samples[attack]
            labels, correct = run.labels[positions], run.correct[positions]
            masks = [labels == c for c in range(n_classes)] + [correct, ~correct]
            per_seed.append([slice_advantage(result, mask, min_count) for mask in masks])
        values = np.asarray(per_seed, dtype=float)
        counts = (~np.isnan(values)).sum(axis=0)
        rows[ATTACK_TITLES[attack]] = np.where(counts > 0, 100 * np.nansum(values, axis=0) / np.maximum(counts, 1),
                                               np.nan)
    return pd.DataFrame.from_dict(rows, orient="index", columns=columns).rename_axis("attack")


def slice_settings(results: StrongerAttacks) -> list[AttackedSetting]:
    """The settings whose slices the page shows: the baseline and the RAD<15 % picks of the paper's
    two most consistent mechanisms (distillation, cropping)."""
    return [results.baseline] + [item for item in results.defenses if "RAD<15%" in item.selection
                                 and item.setting.mechanism in findings.CONSISTENT]


def slices_figure(results: StrongerAttacks):
    """One heatmap per setting of :func:`slice_settings`: each attack's advantage (%) per class and
    per correctness (:func:`slice_frame`), blank where a slice is too small."""
    import matplotlib.pyplot as plt
    import seaborn as sns

    shown = slice_settings(results)
    fig, axes = plt.subplots(len(shown), 1, figsize=(10, 2.9 * len(shown)), squeeze=False, layout="constrained")
    for ax, item in zip(axes[:, 0], shown):
        frame = slice_frame(item, results.dataset)
        sns.heatmap(frame, annot=True, fmt=".0f", cmap="vlag", center=0, vmin=-100, vmax=100, ax=ax,
                    cbar_kws={"label": "advantage (%)"}, annot_kws={"fontsize": 7})
        ax.set_title(f"{item.title} (means over {len(item.runs)} seeds)")
        ax.set_xlabel("")
        ax.tick_params(axis="x", rotation=45, labelsize=8)
        ax.tick_params(axis="y", labelsize=8)
        ax.grid(False)
    return fig


def slices_sentence(results: StrongerAttacks) -> str:
    """Where the baseline's strongest attack gains most and least, by class and by correctness."""
    attack, _ = strongest_attack(results.baseline)
    frame = slice_frame(results.baseline, results.dataset)
    row = frame.loc[ATTACK_TITLES[attack]]
    classes = row.drop(["correct", "misclassified"]).dropna()
    if classes.empty:
        return f"On the baseline, no class holds enough samples to measure {ATTACK_TITLES[attack]} on its own."
    text = (f"On the baseline, {ATTACK_TITLES[attack]} gains most on the class {classes.idxmax()} "
            f"({classes.max():.1f} %) and least on {classes.idxmin()} ({classes.min():.1f} %)")
    if math.isnan(row["misclassified"]) or math.isnan(row["correct"]):
        return text + (f"; the samples the model misclassifies are too few (fewer than {MIN_SLICE} members or "
                       "non-members) to measure it on them apart.")
    return text + (f"; on the samples the model misclassifies its advantage is {row['misclassified']:.1f} %, "
                   f"on those it classifies correctly {row['correct']:.1f} %.")


# --- overlap ----------------------------------------------------------------------------------------

def flagged_members(run: RunAttacks, attacks=OVERLAP_ATTACKS, fpr: float | None = None) -> dict[str, frozenset[int]]:
    """Per attack, the members it flags, as positions in the evaluation set, among the members of the
    query subsample (every attack but the boundary search scores them). ``fpr`` None: at the
    attack's own threshold (its hard guesses). ``fpr`` a rate: above the score threshold that
    accuses fewer than that share of the attack's own non-members (the threshold of the TPR at that
    FPR; an attack with coarse scores, such as the gap attack, may then flag nobody)."""
    from mia_utils.book.verdicts import false_positives_allowed

    query = set(run.samples["augmentation"].tolist())
    out = {}
    for attack in attacks:
        result, rows = run.results[attack], run.samples[attack]
        if fpr is None:
            flags = result.predicted
        else:
            outside = result.scores[~result.is_member].sort(descending=True).values
            allowed = false_positives_allowed(len(outside), fpr)
            flags = result.scores > outside[allowed]  # at most ``allowed`` non-members lie above
        flagged = rows[flags & result.is_member].tolist()
        out[attack] = frozenset(p for p in flagged if p in query)
    return out


def jaccard_pairs(flags: dict[str, frozenset[int]]) -> dict[tuple[str, str], float]:
    """Jaccard index |A ∩ B| / |A ∪ B| of every pair of attacks' flagged sets (NaN when both are empty)."""
    out = {}
    for a, b in itertools.combinations(flags, 2):
        union = len(flags[a] | flags[b])
        out[(a, b)] = len(flags[a] & flags[b]) / union if union else math.nan
    return out


def intersections(flags: dict[str, frozenset[int]]) -> list[tuple[tuple[str, ...], int]]:
    """UpSet's exclusive intersections: for every combination of attacks, how many members exactly
    those attacks flag (and no other), largest first; empty combinations are left out."""
    members = set().union(*flags.values()) if flags else set()
    counts: dict[tuple[str, ...], int] = {}
    for member in members:
        combination = tuple(a for a in flags if member in flags[a])
        counts[combination] = counts.get(combination, 0) + 1
    return sorted(counts.items(), key=lambda item: (-item[1], item[0]))


def overlap_settings(results: StrongerAttacks) -> list[AttackedSetting]:
    """The baseline and the defense the overlap figure compares it with: the RAD<15 % cropping pick
    when there is one (its augmentation-aware attack queries crops), else the first defense."""
    crop = [item for item in results.defenses
            if item.setting.mechanism == "random_crop" and "RAD<15%" in item.selection]
    return [results.baseline] + (crop[:1] or results.defenses[:1])


#: The overlap figure's two ways of flagging a member: each attack's own threshold, and the
#: threshold that accuses fewer than 1 % of its non-members.
OVERLAP_FPR = 0.01


def _upset(sub, flags: dict[str, frozenset[int]], title: str, most: int) -> None:
    """One UpSet panel in the subfigure ``sub``: bars of the ``most`` largest exclusive intersections
    over a dot matrix of the attacks they hold."""
    combos = intersections(flags)[:most]
    bars, dots = sub.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1.3]})
    bars.bar(np.arange(len(combos)), [count for _, count in combos], color="0.3")
    bars.set_ylabel("members")
    bars.set_title(title, fontsize=10)
    names = list(flags)
    for i, (combo, _) in enumerate(combos):
        on = [names.index(a) for a in combo]
        dots.scatter([i] * len(names), range(len(names)), color="0.85", s=25)
        dots.scatter([i] * len(on), on, color="0.1", s=25)
        if len(on) > 1:
            dots.plot([i, i], [min(on), max(on)], color="0.1")
    dots.set_yticks(range(len(names)), [f"{SHORT_TITLES[a]} ({len(flags[a])})" for a in names], fontsize=8)
    dots.set_xticks([])
    dots.set_ylim(-0.5, len(names) - 0.5)
    dots.grid(False)


def overlap_figure(results: StrongerAttacks, most: int = 12):
    """UpSet-style bars, one row per setting of :func:`overlap_settings` (first seed), the members
    flagged at each attack's own threshold on the left and below 1 % FPR on the right
    (:func:`flagged_members`): for the ``most`` largest exclusive intersections
    (:func:`intersections`), a bar of its size above a dot matrix of which attacks flag them."""
    import matplotlib.pyplot as plt

    shown = overlap_settings(results)
    fig = plt.figure(figsize=(12, 4.4 * len(shown)), layout="constrained")
    subs = np.asarray(fig.subfigures(len(shown), 2)).reshape(len(shown), 2)
    for row, item in zip(subs, shown):
        run = item.runs[0]
        _upset(row[0], flagged_members(run), f"{item.title}, seed {run.seed}: at each attack's threshold", most)
        _upset(row[1], flagged_members(run, fpr=OVERLAP_FPR),
               f"{item.title}, seed {run.seed}: below {100 * OVERLAP_FPR:g} % FPR", most)
    return fig


def _agreement(flags: dict[str, frozenset[int]]) -> str | None:
    """"a mean pairwise Jaccard index of J, from ... to ...: they ..." for ``flags``, or None
    when no pair has a member flagged."""
    pairs = {pair: value for pair, value in jaccard_pairs(flags).items() if not math.isnan(value)}
    if not pairs:
        return None
    mean = float(np.mean(list(pairs.values())))
    low, high = min(pairs, key=pairs.get), max(pairs, key=pairs.get)
    reading = "they mostly flag the same members" if mean >= AGREEMENT else "they expose largely different members"
    return (f"a mean pairwise Jaccard index of {mean:.2f}, from {pairs[low]:.2f} ({SHORT_TITLES[low[0]]} and "
            f"{SHORT_TITLES[low[1]]}) to {pairs[high]:.2f} ({SHORT_TITLES[high[0]]} and {SHORT_TITLES[high[1]]}): "
            f"{reading}")


def overlap_sentence(results: StrongerAttacks) -> str:
    """Whether the attacks flag the same members of the baseline's first seed, at their own
    thresholds and below 1 % FPR, from the mean pairwise Jaccard index (at least :data:`AGREEMENT`:
    they agree)."""
    run = results.baseline.runs[0]
    flags = flagged_members(run)
    own = _agreement(flags)
    if own is None:
        return "No attack flags any member of the baseline's query subsample, so there is no overlap to compare."
    every = len(frozenset.intersection(*flags.values()))
    anyone = len(frozenset.union(*flags.values()))
    text = (f"On the baseline (seed {run.seed}), the members the {len(flags)} attacks flag at their own thresholds "
            f"overlap with {own}; every attack flags {every:,} of the {anyone:,} members that one of them flags.")
    low = {a: f for a, f in flagged_members(run, fpr=OVERLAP_FPR).items() if f}
    counts = _join([f"{SHORT_TITLES[a]} {len(f):,}" for a, f in low.items()])
    if len(low) < 2:
        return text + (f" Below {100 * OVERLAP_FPR:g} % FPR, fewer than two attacks flag any member "
                       f"({counts or 'none does'}), so there is nothing to compare there.")
    return text + (f" Below {100 * OVERLAP_FPR:g} % FPR, where only the confident guesses count, the attacks that "
                   f"flag any member ({counts}) overlap with {_agreement(low)}.")


# --- the page ---------------------------------------------------------------------------------------

def key_values(results: StrongerAttacks) -> dict:
    """Every value the page's text glues: the dataset, seeds, counts of settings and reference
    models, the attacks' options, the baseline's advantage per attack (``base_<attack>``, percent with
    its interval), the verdict counts per attack (``holds_<attack>``), the survival, power, gallery,
    outliers, slices and overlap sentences, and the strongest attack."""
    options = results.options
    strongest, metric = strongest_attack(results.baseline)
    n_dp = sum(item.setting.mechanism == "dp_sgd" for item in results.defenses)
    counts = verdict_counts(results)
    values = {"lead_dataset": DATASETS[results.dataset].title, "n_seeds": len(results.seeds),
              "n_defenses": len(results.defenses), "n_ch02": len(results.defenses) - n_dp, "n_dp": n_dp,
              "n_references": results.n_references, "n_population": f"{results.n_population:,}",
              "augmentations": options["augmentations"], "query_samples": options["query_samples"],
              "boundary_samples": options["boundary_samples"],
              "translation_queries": label_only_cost("translation", TRANSLATION_SHIFT)["target_queries"],
              "boundary_budget": BOUNDARY["max_steps"], "rmia_a": f"{RMIA_OFFLINE_A:g}",
              "rmia_gamma": f"{RMIA_GAMMA:g}",
              "eval_per_side": f"{len(results.baseline.runs[0].labels) // 2:,}",
              "strongest_attack": ATTACK_TITLES[strongest],
              "strongest_metric": METRIC_TITLES[metric],
              "survival_sentence": survival_sentence(results),
              "outliers_sentence": outliers_sentence(outlier_readings(results), _n_nonmembers(results, strongest)),
              "slices_sentence": slices_sentence(results), "overlap_sentence": overlap_sentence(results),
              "gallery_sentence": gallery_sentence(results), "power_sentence": power_sentence(results)}
    for attack in ATTACKS:
        values[f"base_{attack}"] = f"{estimate_text(results.baseline.estimate(attack))} %"
        values[f"holds_{attack}"] = int(counts.loc[ATTACK_TITLES[attack], HOLDS])
    runs = [run for item in results.settings for run in item.runs]
    boundary_seconds = [run.seconds["boundary"] for run in runs]
    values.update(
        translation_queries_2=label_only_cost("translation", TRANSLATION_SHIFT_2)["target_queries"],
        boundary_searched=f"{4 * per_side(results, 'boundary'):,}",
        boundary_seconds=f"{np.mean(boundary_seconds):.1f}",
        boundary_seconds_max=f"{np.max(boundary_seconds):.1f}",
        boundary_per_sample_ms=f"{1000 * np.mean(boundary_seconds) / (4 * per_side(results, 'boundary')):.1f}",
        n_aware=len(results.aware), aware_m=options["aware_references"], aware_models=aware_count(options),
        aware_runs=results.aware_runs, aware_minutes=f"{results.aware_train_seconds / 60:.1f}",
        aware_sentence=aware_sentence(results), resolution_sentence=resolution_sentence(results),
        reference_count_sentence=reference_count_sentence(results))
    return values


def figures(results: StrongerAttacks) -> dict:
    """The page's figures by glue name: ``exposed_gallery``, ``slices`` and ``overlap``."""
    return {"exposed_gallery": gallery_figure(results), "slices": slices_figure(results),
            "overlap": overlap_figure(results)}
