"""Experiments of the related-work chapters (06-08), kept out of the notebooks so they are tested.

* :func:`population_lira`: LiRA against each model of a population trained by one recipe (each
  on a random half of a pool, the others its shadow models), stopped at several epochs (their
  snapshots); :func:`population_means` averages the models of each configuration.
* :func:`spearman_interval`: a rank correlation with a bootstrap interval over the points.
* :func:`confidence_attack_fprs`: the prediction-score attack's false-positive rate on
  out-of-distribution inputs, with its threshold set on the adversary's in-distribution data.

and the chapters' verdicts, each a :class:`RelatedFinding` that reads **holds**,
**contradicted** or **inconclusive** from a 95 % interval (see :mod:`mia_utils.evidence`):

* chapter 06, :func:`generalization_findings`: does the gap predict LiRA's success better than
  test accuracy (:func:`gap_predicts_better`, a bootstrap interval of |rho_gap| - |rho_acc|),
  does LiRA's AUC rise with the gap (:func:`rank_finding`), and does the least vulnerable
  combination of cropping and early stopping lower LiRA's TPR at 1 % FPR
  (:func:`population_difference`, model by model, Bonferroni-adjusted for the choice);
* chapter 07: does MMD + mix-up lower Adv_Yeom and the gap (:func:`mmd_versus_baseline`, seed by
  seed) and LiRA's TPR (:func:`population_difference`), and does it leak less than each paper
  mechanism at matched accuracy (:func:`matched_accuracy_comparison`);
* chapter 08: does the uncalibrated attack flag OOD inputs more often than test non-members
  (:func:`ood_exceeds_test`, seed by seed), and the trade-off between OOD false positives and
  advantage (:func:`tradeoff_finding`, a rank correlation over every version of every seed).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from mia_utils import attacks, experiment, metrics
from mia_utils.attacks import AttackInputs
from mia_utils.config import RunConfig
from mia_utils.evidence import (CONTRADICTED, HOLDS, INCONCLUSIVE, LEVEL, SeedEstimate, combine_seeds, combine_verdicts,
                                paired_difference, verdict)
from mia_utils.sweeps import Setting


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

    ``augmented``: query every model on the augmentations its recipe trains with, as the
    reference does (:func:`augmented_queries`; for a recipe without random cropping, the clean
    image only), and average the per-query scores; otherwise one clean query.

    The rows are computed once per (models, epochs, settings) and kept in the store as a derived
    ``lira-`` entry, so executing a chapter again reads them back.
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
    variances as a floor (:func:`mia_utils.evidence.combine_seeds`), ``models`` (how many) and
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


def spearman_interval(x, y, n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Spearman's rank correlation of the paired points (x, y), and a percentile bootstrap
    interval at ``level`` from resampling the points with replacement (resamples in which
    either variable is constant are skipped). Returns ``(rho, low, high)``."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"x, y: need two equal-length 1-D sequences of at least 3 points, got {x.shape} and {y.shape}")
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(x), len(x))
        if np.ptp(x[pick]) == 0 or np.ptp(y[pick]) == 0:
            continue
        replicates.append(spearmanr(x[pick], y[pick]).statistic)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail]) if replicates else (np.nan, np.nan)
    return rho, float(low), float(high)


def max_probability(probabilities: torch.Tensor) -> torch.Tensor:
    """The prediction score: the largest class probability of each row of (N, classes)."""
    return probabilities.max(1).values


def confidence_attack_fprs(eval_probs: torch.Tensor, eval_is_member: torch.Tensor, adv_probs: torch.Tensor,
                           adv_is_member: torch.Tensor, ood_probs: dict[str, torch.Tensor]) -> dict[str, float]:
    """The prediction-score attack (member when the top probability is at least a threshold set on
    the adversary's own members and non-members) on the evaluation set and on OOD inputs.

    Probabilities are (N, classes). Returns fractions: ``tpr`` and ``fpr`` on the evaluation
    set, ``advantage`` (tpr - fpr), ``auc`` of the score, ``threshold``, and ``fpr_<name>``:
    the share of each OOD set called a member."""
    threshold = attacks.best_threshold(max_probability(adv_probs), adv_is_member)
    scores = max_probability(eval_probs)
    predicted = scores >= threshold
    members = eval_is_member.bool()
    tpr, fpr = predicted[members].double().mean().item(), predicted[~members].double().mean().item()
    result = {"threshold": threshold, "tpr": tpr, "fpr": fpr, "advantage": tpr - fpr,
              "auc": metrics.roc_auc(scores, members)}
    for name, probs in ood_probs.items():
        result[f"fpr_{name}"] = (max_probability(probs) >= threshold).double().mean().item()
    return result


#: Chapter 08's versions of the model, in the order it shows them.
OOD_VARIANTS = ("no calibration (MAP)", "temperature scaling", "last-layer Laplace", "label smoothing")


@dataclass(frozen=True)
class OodSeed:
    """Chapter 08's measurements on one seed: ``table`` has one row per version of the model
    (:data:`OOD_VARIANTS`) with the columns of :func:`confidence_attack_fprs` and
    ``validation_ece`` (:func:`mia_utils.ood.expected_calibration_error` on the calibration set);
    ``temperature`` is the fitted temperature; ``ood_images`` the OOD sets (uint8 images,
    ``n_ood`` each); ``n_test`` the test non-members the in-distribution false-positive rate is
    measured on; ``smoothing`` the label-smoothing strength picked by validation ECE
    (:func:`calibrating_smoothing`) and ``smoothing_eces`` every candidate's ECE;
    ``temperature_rank_correlation`` Spearman's rho between the top-class probability before and
    after temperature scaling over the evaluation and OOD inputs (1: scaling reorders nothing, so
    a threshold re-set on the adversary's data flags the same inputs)."""

    seed: int
    table: pd.DataFrame
    temperature: float
    ood_images: dict
    n_ood: int
    n_test: int
    smoothing: float = math.nan
    smoothing_eces: dict = field(default_factory=dict)
    temperature_rank_correlation: float = math.nan


def ood_experiment(profile, seed: int, n_ood: int = 0, store=None, data=None) -> OodSeed:
    """Chapter 08 on one seed: the profile's Fashion-MNIST baseline of ``seed`` and its label-smoothed
    version (:func:`calibrating_smoothing`), the baseline temperature-scaled and with a last-layer
    Laplace approximation, each attacked by the prediction-score attack
    (:func:`confidence_attack_fprs`) on the evaluation set and on every OOD set of
    :func:`mia_utils.ood.ood_sets` (``n_ood`` images each; 0: the evaluation set's size per side).

    The shuffled and inverted images come from test images in neither the evaluation nor the
    adversary's set; the temperature and the smoothing strength are fitted on further such images
    (at most twice the evaluation size per side; :func:`mia_utils.ood.free_test_split`, which
    raises ``ValueError`` naming ``ood_samples`` when too few are free). The measurements are
    kept in the store as a derived ``ood-`` entry, so executing the chapter again reads them back."""
    from mia_utils import ood
    from mia_utils.data import gather, load_dataset, split_for
    from mia_utils.models import predict_logits

    base = profile.base_config("fmnist", seed=seed)
    n_ood = n_ood or base.n_eval
    data = data if data is not None else load_dataset("fmnist")
    split = split_for(base, data.info)
    ood_source, validation = ood.free_test_split(data.info.n_test, torch.cat([split.eval_nonmembers,
                                                                               split.adv_nonmembers]),
                                                 n_ood, 2 * base.n_eval)
    ood_images = ood.ood_sets(data.test_images[ood_source], n_ood, seed=seed)
    validation_images, validation_labels = data.test_images[validation], data.test_labels[validation]

    cached = _stored_ood(profile, base, n_ood, seed, store)
    if cached is not None:
        rows, temperature, smoothing, eces, order_kept = cached
        return OodSeed(seed, pd.DataFrame(rows).T.loc[list(OOD_VARIANTS)], temperature, ood_images, n_ood,
                       base.n_eval, smoothing, eces, order_kept)
    baseline_run = experiment.run(base, store)
    model = baseline_run.model()
    smoothing, smoothed_model, eces = calibrating_smoothing(profile, base, validation_images, validation_labels, store)
    eval_images = torch.cat([data.train_images[split.eval_members], data.test_images[split.eval_nonmembers]])
    adv_images = torch.cat([data.train_images[split.adv_members], data.test_images[split.adv_nonmembers]])
    inputs = {"eval": eval_images, "adv": adv_images, "validation": validation_images,
              **{f"ood_{k}": v for k, v in ood_images.items()}}
    # Each network sees each set once; temperature scaling reuses the baseline's logits.
    logits = {k: predict_logits(model, v).double() for k, v in inputs.items()}
    smoothed_logits = {k: predict_logits(smoothed_model, v).double() for k, v in inputs.items()}
    temperature = ood.fit_temperature(logits["validation"], validation_labels)
    member_images, member_labels = gather(data, split.members)
    laplace = ood.last_layer_laplace(model, member_images, member_labels)
    probabilities = dict(zip(OOD_VARIANTS, (
        {k: v.softmax(1) for k, v in logits.items()},
        {k: (v / temperature).softmax(1) for k, v in logits.items()},
        {k: ood.laplace_probabilities(laplace, v) for k, v in inputs.items()},
        {k: v.softmax(1) for k, v in smoothed_logits.items()})))
    rows = {}
    for name, probs in probabilities.items():
        rows[name] = confidence_attack_fprs(probs["eval"], baseline_run.outputs["eval_is_member"].bool(),
                                            probs["adv"], baseline_run.outputs["adv_is_member"].bool(),
                                            {k: probs[f"ood_{k}"] for k in ood_images})
        rows[name]["validation_ece"] = ood.expected_calibration_error(probs["validation"], validation_labels)
    shown = ["eval", *(f"ood_{k}" for k in ood_images)]
    order_kept = _spearman(*(torch.cat([max_probability(probabilities[v][k]) for k in shown]).numpy()
                             for v in OOD_VARIANTS[:2]))
    _store_ood(profile, base, n_ood, seed, store, rows, temperature, smoothing, eces, order_kept)
    return OodSeed(seed, pd.DataFrame(rows).T.loc[list(OOD_VARIANTS)], temperature, ood_images, n_ood, base.n_eval,
                   smoothing, eces, order_kept)


def _ood_key(profile, base: RunConfig, n_ood: int, seed: int) -> str:
    """The store key of chapter 08's measurements on one seed: a hash of the runs they read (the
    baseline and every calibrating label-smoothing model), the OOD set size and the seed."""
    from mia_utils import sweeps
    from mia_utils.store import derived_key

    runs = [base.key()] + [sweeps.setting_config(base, "label_smoothing", value).key()
                           for value in calibration_smoothings(profile)]
    settings = {"runs": runs, "n_ood": int(n_ood), "seed": int(seed), "format": 1}
    return derived_key("ood-", settings)


def _plain(value):
    """A JSON-ready copy of a number (numpy scalars become Python ones, ints stay ints)."""
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    return value


def _store_ood(profile, base, n_ood, seed, store, rows, temperature, smoothing, eces, order_kept) -> None:
    """Keep :func:`ood_experiment`'s measurements on one seed as a derived ``ood-`` entry (the
    OOD images themselves are redrawn from the seed, cheaply), in their column order."""
    from mia_utils.store import ResultStore

    variants = list(rows)
    columns = list(rows[variants[0]])
    saved = {"variants": variants, "columns": columns,
             "values": [[_plain(rows[v][c]) for c in columns] for v in variants],
             "temperature": _plain(temperature), "smoothing": _plain(smoothing),
             "eces": [[_plain(k), _plain(v)] for k, v in eces.items()], "rank_correlation": _plain(order_kept)}
    (store or ResultStore()).save(_ood_key(profile, base, n_ood, seed), {"ood": saved}, {})


def _stored_ood(profile, base, n_ood, seed, store):
    """What :func:`_store_ood` kept for these runs and settings, or None."""
    from mia_utils.store import ResultStore

    entry = (store or ResultStore()).load(_ood_key(profile, base, n_ood, seed), tensors=False)
    if entry is None:
        return None
    saved = entry["json"]["ood"]
    rows = {v: dict(zip(saved["columns"], values)) for v, values in zip(saved["variants"], saved["values"])}
    return rows, saved["temperature"], saved["smoothing"], dict(map(tuple, saved["eces"])), saved["rank_correlation"]


def calibrating_smoothing(profile, base: RunConfig, validation_images: torch.Tensor, validation_labels: torch.Tensor,
                          store=None) -> tuple[float, torch.nn.Module, dict[float, float]]:
    """The label-smoothing strength a practitioner calibrating ``base`` would pick: the value of
    the profile's grid whose model (``base`` with it, trained or read back) has the lowest
    expected calibration error (:func:`mia_utils.ood.expected_calibration_error`) on the held-out
    ``validation_images``. Returns the value, its model and every value's ECE."""
    from mia_utils import ood, sweeps
    from mia_utils.models import predict_logits

    models, eces = {}, {}
    for value in calibration_smoothings(profile):
        models[value] = experiment.run(sweeps.setting_config(base, "label_smoothing", value), store).model()
        eces[value] = ood.expected_calibration_error(predict_logits(models[value], validation_images).softmax(1),
                                                     validation_labels)
    best = min(eces, key=eces.get)
    return best, models[best], eces


def ood_summary(per_seed: list[OodSeed]) -> pd.DataFrame:
    """One row per version of the model, one column per measure of :func:`confidence_attack_fprs`
    (and ``mean_ood_fpr``, the mean over the OOD sets), each a
    :class:`~mia_utils.evidence.SeedEstimate`: the mean over the seeds of ``per_seed`` with its
    95 % interval across them, cut to the range of the measure (rates and the AUC in [0, 1], the
    advantage in [-1, 1])."""
    columns = [c for c in per_seed[0].table.columns if c != "threshold"]
    out = {}
    for variant in per_seed[0].table.index:
        row = {}
        for column in columns + ["mean_ood_fpr"]:
            values = [ood_mean_fpr(r.table, variant) if column == "mean_ood_fpr" else float(r.table.loc[variant, column])
                      for r in per_seed]
            row[column] = combine_seeds(values).within(-1.0 if column == "advantage" else 0.0, 1.0)
        out[variant] = row
    return pd.DataFrame(out).T


def ood_mean_fpr(table: pd.DataFrame, variant: str) -> float:
    """The mean false-positive rate over the OOD sets of one version of the model (a fraction)."""
    from mia_utils import ood

    return float(np.mean([float(table.loc[variant, f"fpr_{k}"]) for k in ood.OOD_SETS]))


# --- the settings the related-work chapters train (the book's plan reads these too) ----------

def augmentation_strengths(profile) -> tuple:
    """Random-crop strengths of chapter 06: none (0) and the profile's grid values >= 4."""
    return (0,) + tuple(c for c in profile.grids["random_crop"] if c >= 4)


def crop_population_config(profile, dataset: str, seed: int, crop: int):
    """The configuration whose population chapter 06 attacks at crop strength ``crop``: the
    profile's baseline of ``dataset`` (first seed ``seed``, with its snapshots), with random
    cropping ``crop`` unless it is 0 (the unaugmented baseline, chapter 01's shadow models)."""
    base = profile.base_config(dataset, seed=seed)
    return base if crop == 0 else base.with_mechanisms(random_crop=crop)


def mmd_defense(params: dict) -> dict:
    """Chapter 07's defense as mechanism values, from its validated parameters."""
    return {"mixup": params["mixup_alpha"], "mmd": params["mmd_lambda"]}


#: Chapter 07's two MMD schedules: the MMD term in every step's loss (the book's headline), and
#: Li et al.'s code's gated pass between epochs (:class:`mia_utils.defenses.mmd.GatedMMD`).
MMD_SCHEDULES = {"every step": "mmd", "authors' code": "mmd_gated"}


def mmd_setting_configs(profile, dataset: str, params: dict, seeds, schedule: str = "every step") -> list:
    """Chapter 07's MMD + mix-up targets, one per seed in ``seeds``: the setting ``mmd = λ`` (or
    ``mmd_gated = λ`` for ``schedule`` "authors' code", :data:`MMD_SCHEDULES`) with mix-up
    underneath (:func:`mia_utils.sweeps.setting_configs`), so that it pairs seed by seed with the
    baseline and the regularization chapter's settings."""
    from mia_utils import sweeps

    defense = mmd_defense(params)
    return sweeps.setting_configs(profile, dataset, MMD_SCHEDULES[schedule], defense["mmd"], seeds,
                                  {"mixup": defense["mixup"]})


def mmd_setting(profile, dataset: str, params: dict, seeds, store=None, schedule: str = "every step") -> Setting:
    """Train (or read back) and evaluate :func:`mmd_setting_configs`, as a :class:`Setting`."""
    from mia_utils import sweeps

    defense = mmd_defense(params)
    return sweeps.run_setting(profile, dataset, MMD_SCHEDULES[schedule], defense["mmd"], seeds, store,
                              {"mixup": defense["mixup"]})


def calibration_smoothings(profile) -> tuple:
    """Chapter 08's candidate label-smoothing strengths: the profile's grid (the regularization
    chapter trains them already); :func:`calibrating_smoothing` picks one per seed."""
    return tuple(profile.grids["label_smoothing"])


# --- verdicts of the related-work chapters ----------------------------------------------------
#
# Every finding of chapters 06-08 reads **holds**, **contradicted** or **inconclusive** from a
# 95 % interval (:func:`mia_utils.evidence.verdict`). With several seeds (LiRA's population
# models, or the profile's seeds) an interval of a difference pairs the seeds and covers the
# training noise too; with one (a chapter re-run with a single seed) it covers the evaluation
# samples only (the bootstrap, or the binomial count), and the verdict's text says so
# (:data:`ONE_SEED`).

ONE_SEED = "1 seed: the interval covers the evaluation samples only"
#: Fewest points for a bootstrap interval of a rank correlation; below it the finding is
#: inconclusive by design (a percentile bootstrap of Spearman's rho over 4 or 5 points is mostly
#: ties and constant resamples, not an interval).
MIN_RANK_POINTS = 6
#: LiRA's success as chapter 06 judges it, and its fallback when the evaluation set cannot
#: resolve the low false-positive rate (:func:`mia_utils.metrics.fpr_resolvable`).
LIRA_METRIC, LIRA_FALLBACK = "tpr_at_1%_fpr", "auc"
METRIC_NAMES = {"tpr_at_1%_fpr": "LiRA's TPR at 1 % FPR", "tpr_at_0.1%_fpr": "LiRA's TPR at 0.1 % FPR",
                "auc": "LiRA's AUC", "adv_yeom": "Adv_Yeom", "gap": "the train-test gap",
                "test_acc": "test accuracy", "adv_salem": "Adv_Salem"}


@dataclass(frozen=True)
class RelatedFinding:
    """One finding of a related-work chapter: the ``claim`` tested, its ``verdict`` (holds /
    contradicted / inconclusive), the ``estimate`` the verdict reads (with its interval; NaN
    when it could not be measured) and ``text``, the evidence in words with the interval and
    what it covers. ``parts``: further estimates shown beside it (e.g. the two correlations
    whose difference is judged)."""

    claim: str
    verdict: str
    estimate: SeedEstimate
    text: str
    parts: dict = field(default_factory=dict)

    @property
    def line(self) -> str:
        """``"<claim>: **<verdict>** (<text>)"``, the markdown the chapters print."""
        return f"{self.claim}: **{self.verdict}** ({self.text})"


def seeds_basis(n_seeds: int) -> str:
    """What an interval of a paired difference over ``n_seeds`` seeds covers, in words."""
    return ONE_SEED if n_seeds == 1 else f"{n_seeds} seeds"


def nan_estimate(value: float = math.nan) -> SeedEstimate:
    """An estimate without an interval (``value`` as its mean, bounds NaN): reads inconclusive."""
    return SeedEstimate(float(value), math.nan, math.nan, math.nan, (float(value),))


def interval_name(level: float, candidates: int = 1) -> str:
    """``"95 % interval"``, or for a selected setting ``"99.4 % interval (Bonferroni: best of 8)"``."""
    if candidates <= 1:
        return f"{100 * level:g} % interval"
    return f"{100 * level:.1f} % interval (Bonferroni: best of {candidates})"


def selection_level(candidates: int, level: float = LEVEL) -> float:
    """The interval level for a setting chosen as the best of ``candidates`` by the quantity the
    verdict then reads: ``1 - (1 - level) / candidates`` (Bonferroni). Picking the minimum of
    several noisy values biases it downwards; the wider interval keeps the chance of a false
    verdict at most ``1 - level`` over all the candidates."""
    if candidates < 1:
        raise ValueError(f"candidates: need at least one, got {candidates}")
    return 1 - (1 - level) / candidates


def rate_text(value: float, variance: float | None = None, n_nonmembers: int | None = None, digits: int = 1,
              scale: float = 100.0, unit: str = "") -> str:
    """A rate in percent with its normal 95 % interval from ``variance`` ("12.3 [10.1, 14.5]",
    followed by `` unit`` when given), or ``"not resolvable at n = <n_nonmembers> non-members per
    side"`` when the value is NaN (a TPR at an FPR the evaluation set cannot resolve)."""
    if value is None or math.isnan(value):
        return "not resolvable" + (f" at n = {n_nonmembers:,} non-members per side" if n_nonmembers else "")
    suffix = f" {unit}" if unit else ""
    if variance is None or math.isnan(variance):
        return f"{value * scale:.{digits}f}{suffix}"
    return combine_seeds([value], [variance]).format(scale=scale, digits=digits) + suffix


def estimate_text(estimate: SeedEstimate, n_nonmembers: int | None = None, digits: int = 1, unit: str = "") -> str:
    """An estimate over seeds in percent with its interval ("12.3 [10.1, 14.5]", then `` unit``),
    or ``"not resolvable at n = …"`` when it is NaN (a rate the evaluation set cannot resolve)."""
    if math.isnan(estimate.mean):
        return rate_text(math.nan, None, n_nonmembers)
    return estimate.format(digits=digits) + (f" {unit}" if unit else "")


def false_positives_allowed(n_nonmembers: int, target: float) -> int:
    """How many false positives stay strictly below the false-positive rate ``target`` among
    ``n_nonmembers`` non-members: ``ceil(n * target) - 1`` (0: the rate is not resolvable)."""
    return max(0, math.ceil(round(n_nonmembers * target, 9)) - 1)


def difference_finding(claim: str, after, before, after_variances, before_variances, expected: str = "decrease",
                       level: float = LEVEL, candidates: int = 1, nan_text: str = "not measurable",
                       unit: str = "pp", scale: float = 100.0, digits: int = 1) -> RelatedFinding:
    """The claim that ``after - before`` (per seed, paired: the same seed's evaluation samples)
    goes in the ``expected`` direction, judged on the interval of
    :func:`mia_utils.evidence.paired_difference` at ``level`` (within-seed variance
    ``after_var + before_var``: conservative, as it ignores the pair's positive correlation).
    ``candidates`` > 1 marks ``after`` as the best of several settings, for the text (pass
    ``level = selection_level(candidates)``). A NaN value gives an inconclusive verdict whose
    text is ``nan_text`` (e.g. a TPR the evaluation set cannot resolve)."""
    after, before = np.atleast_1d(np.asarray(after, dtype=float)), np.atleast_1d(np.asarray(before, dtype=float))
    change = paired_difference(after, before, after_variances, before_variances, level=level)
    state = verdict(change, expected)
    if math.isnan(change.mean):
        return RelatedFinding(claim, state, change, f"{nan_text}; inconclusive")
    text = (f"change {change.format(scale=scale, digits=digits, signed=True)} {unit}, "
            f"{interval_name(level, candidates)}; {seeds_basis(len(after))}")
    return RelatedFinding(claim, state, change, text)


def population_difference(claim: str, after: pd.DataFrame, before: pd.DataFrame, metric: str,
                          expected: str = "decrease", candidates: int = 1, nan_text: str = "not measurable") -> RelatedFinding:
    """:func:`difference_finding` of ``after - before`` on ``metric``, model by model: both are
    rows of :func:`population_lira` for two configurations, and model ``i`` of one shares its
    membership split and seed with model ``i`` of the other (they must hold the same models).
    The bootstrap variances (``<metric>_std`` squared) are the within-model floor."""
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


# --- chapter 06: generalization and LiRA ----------------------------------------------------

def _rank_estimate(rho: float, replicates: np.ndarray, level: float) -> SeedEstimate:
    if math.isnan(rho) or len(replicates) == 0:
        return nan_estimate(rho)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail])
    return SeedEstimate(float(rho), float(low), float(high), float(np.std(replicates, ddof=1)) if len(replicates) > 1
                        else math.nan, (float(rho),))


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if np.isnan(x).any() or np.isnan(y).any() or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(spearmanr(x, y).statistic)


def rank_correlations(predictors: dict, outcome, n_bootstrap: int = 2000, seed: int = 0, level: float = LEVEL,
                      min_points: int = MIN_RANK_POINTS) -> tuple[dict[str, SeedEstimate], SeedEstimate | None]:
    """Spearman's rho of each of ``predictors`` (name -> values) with ``outcome`` over the same
    points, each with a percentile bootstrap interval at ``level`` from resampling the points
    with replacement (the same resamples for every predictor; resamples in which any variable
    is constant are skipped), and, for exactly two predictors (a, b), the interval of
    ``|rho_a| - |rho_b|`` over those same resamples (else None).

    With fewer than ``min_points`` points, or a NaN or constant variable, the estimates have no
    interval (:func:`nan_estimate`, the rho itself as mean; NaN when undefined). The resampled
    points are treated as exchangeable: points from one training run (several stopping epochs)
    are not independent, so the interval is optimistic about how the correlation generalizes."""
    y = np.asarray(outcome, dtype=float)
    xs = {name: np.asarray(values, dtype=float) for name, values in predictors.items()}
    if any(x.shape != y.shape or x.ndim != 1 for x in xs.values()):
        raise ValueError("predictors, outcome: need equal-length 1-D sequences")
    rhos = {name: _spearman(x, y) for name, x in xs.items()}
    pair = len(xs) == 2
    if len(y) < min_points or any(math.isnan(r) for r in rhos.values()):
        names = list(rhos)
        diff = nan_estimate(abs(rhos[names[0]]) - abs(rhos[names[1]])) if pair else None
        return {name: nan_estimate(r) for name, r in rhos.items()}, diff
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(y), len(y))
        if np.ptp(y[pick]) == 0 or any(np.ptp(x[pick]) == 0 for x in xs.values()):
            continue
        replicates.append([_spearman(x[pick], y[pick]) for x in xs.values()])
    replicates = np.asarray(replicates, dtype=float).reshape(-1, len(xs))
    estimates = {name: _rank_estimate(rhos[name], replicates[:, i], level) for i, name in enumerate(xs)}
    diff = None
    if pair:
        a, b = list(rhos)
        diff = _rank_estimate(abs(rhos[a]) - abs(rhos[b]), np.abs(replicates[:, 0]) - np.abs(replicates[:, 1]), level)
    return estimates, diff


def rho_text(estimate: SeedEstimate) -> str:
    """``"0.71 [0.40, 0.90]"``, ``"0.71 (no interval)"`` or ``"undefined"`` for a rank correlation."""
    if math.isnan(estimate.mean):
        return "undefined"
    if math.isnan(estimate.low):
        return f"{estimate.mean:.2f} (no interval)"
    return estimate.format(scale=1, digits=2)


def _too_few(n_points: int, min_points: int) -> str:
    return (f"{n_points} points are too few for a bootstrap interval of a rank correlation "
            f"(at least {min_points} needed), so this reads inconclusive by design")


def gap_predicts_better(gap, test_acc, success, success_name: str = "LiRA's success", n_bootstrap: int = 2000,
                        seed: int = 0, min_points: int = MIN_RANK_POINTS, what: str = "models of 1 seed") -> RelatedFinding:
    """Rahmani et al.'s claim that the train-test gap predicts vulnerability (``success``, one
    value per model) better than test accuracy does. Judged on the bootstrap interval of
    ``|rho(gap, success)| - |rho(test_acc, success)|`` (Spearman, the same resampled models for
    both, :func:`rank_correlations`): holds when it excludes 0 above, contradicted below.
    ``what``: the points, in words, for the text. ``parts``: ``rho_gap`` and ``rho_acc`` with
    their intervals."""
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
        text = f"{rho_part}; {_too_few(n, min_points)}"
    else:
        text = (f"|ρ(gap)| − |ρ(test accuracy)| = {rho_text(diff)}; {rho_part}; 95 % bootstrap intervals over "
                f"the {n} {what}")
    return RelatedFinding(claim, state, diff, text, parts)


def rank_finding(claim: str, x, y, expected: str = "increase", n_bootstrap: int = 2000, seed: int = 0,
                 what: str = "models", basis: str = "1 seed", min_points: int = MIN_RANK_POINTS) -> RelatedFinding:
    """The claim that ``y`` rises (``expected="increase"``) or falls with ``x``: Spearman's rho
    with its percentile bootstrap interval over the points (:func:`rank_correlations`), read
    against 0. Fewer than ``min_points`` points: inconclusive by design, and the text says so."""
    rhos, _ = rank_correlations({"x": x}, y, n_bootstrap, seed, min_points=min_points)
    rho = rhos["x"]
    n = len(np.asarray(y))
    if n < min_points:
        text = f"ρ = {rho_text(rho)} over {n} {what}; {_too_few(n, min_points)}"
    elif math.isnan(rho.mean):
        text = "the rank correlation is undefined (a variable is constant or not resolvable)"
    else:
        text = f"ρ = {rho_text(rho)}, 95 % bootstrap interval over the {n} {what}" + (f" of {basis}" if basis else "")
    return RelatedFinding(claim, verdict(rho, expected), rho, text)


def lira_success_metric(values, n_nonmembers: int, preferred: str = LIRA_METRIC) -> tuple[str, str]:
    """The measure of LiRA's success chapter 06 judges: ``preferred`` (TPR at 1 % FPR) when the
    evaluation set resolves it (:func:`mia_utils.metrics.fpr_resolvable`) and every value is a
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


# --- chapter 07: MMD + mix-up -----------------------------------------------------------------

def evaluated_setting(run: experiment.Run, profile, mechanism: str, value=None, store=None) -> Setting:
    """One trained run as a one-seed :class:`mia_utils.sweeps.Setting`, evaluated (and cached)
    exactly as :func:`mia_utils.sweeps.run_setting` evaluates its runs, so it pairs with them."""
    from mia_utils import evaluation

    config = run.config
    metrics_ = evaluation.evaluate(run, n_bootstrap=profile.bootstrap, seed=config.seed, store=store)
    return Setting(mechanism, value, (config.seed,), [metrics_], [run.provenance.get("mechanisms", {})], [config],
                   [None], int(not run.from_store))


def setting_difference(claim: str, setting: Setting, reference: Setting, metric: str, expected: str = "decrease",
                       candidates: int = 1, nan_text: str = "not measurable") -> RelatedFinding:
    """:func:`difference_finding` of ``setting - reference`` on ``metric``, seed by seed (they must
    share their seeds), at the Bonferroni level for ``candidates``."""
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


def verdict_counts(findings) -> str:
    """``"2 hold, 1 contradicted, 4 inconclusive"`` over ``findings``."""
    states = [f.verdict for f in findings]
    return (f"{states.count(HOLDS)} hold{'s' if states.count(HOLDS) == 1 else ''}, "
            f"{states.count(CONTRADICTED)} contradicted, {states.count(INCONCLUSIVE)} inconclusive")


# --- chapter 08: prediction scores on OOD inputs ----------------------------------------------

def proportion_difference(successes_a: int, trials_a: int, successes_b: int, trials_b: int,
                          level: float = LEVEL) -> SeedEstimate:
    """``p_a - p_b`` for two independent binomial proportions with an interval at ``level`` by the
    MOVER method (Newcombe 1998; Zou & Donner 2008) on the Clopper-Pearson intervals (l, u) of
    each: ``[d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2), d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2)]``.
    ``se`` is the half-width over the normal quantile (for display only)."""
    from scipy import stats

    p_a, p_b = successes_a / trials_a, successes_b / trials_b
    l_a, u_a = metrics.clopper_pearson(successes_a, trials_a, level)
    l_b, u_b = metrics.clopper_pearson(successes_b, trials_b, level)
    d = p_a - p_b
    low = d - math.sqrt((p_a - l_a) ** 2 + (u_b - p_b) ** 2)
    high = d + math.sqrt((u_a - p_a) ** 2 + (p_b - l_b) ** 2)
    se = (high - low) / (2 * stats.norm.ppf(0.5 + level / 2))
    return SeedEstimate(d, low, high, se, (d,))


def ood_exceeds_test(fpr_ood: dict, n_ood: int, fpr_test, n_test: int,
                     titles: dict[str, str] | None = None) -> tuple[RelatedFinding, dict[str, RelatedFinding]]:
    """Hintersdorf et al.'s claim that the prediction-score attack calls out-of-distribution
    inputs members more often than real non-members: the rate on OOD inputs minus the rate on the
    test non-members. ``fpr_ood``: per OOD set of ``n_ood`` inputs, its rate, or one rate per seed;
    ``fpr_test``: the rate on ``n_test`` test non-members, or one per seed (the same seeds in the
    same order). Returns the finding pooled over all OOD sets (their counts added) and one per set.

    With one seed the interval is :func:`proportion_difference` (independent binomials: the
    threshold is set on the adversary's data, so each input is an independent trial). With several,
    the difference is taken seed by seed and combined over seeds (:func:`difference_finding`),
    with each rate's binomial variance p (1 - p) / n as the within-seed floor."""
    titles = titles or {}
    tests = np.atleast_1d(np.asarray(fpr_test, dtype=float))
    rates = {name: np.atleast_1d(np.asarray(rate, dtype=float)) for name, rate in fpr_ood.items()}
    if any(r.shape != tests.shape for r in rates.values()):
        raise ValueError(f"fpr_ood, fpr_test: need one rate per seed for every set, got {len(tests)} test rates and "
                         f"{sorted({len(r) for r in rates.values()})} per OOD set")

    def finding(claim_of, ood_rates, n):
        if len(tests) == 1:
            k, k_test = int(round(ood_rates[0] * n)), int(round(tests[0] * n_test))
            diff = proportion_difference(k, n, k_test, n_test)
            text = (f"{100 * k / n:.1f} % of {n:,} OOD inputs against {100 * k_test / n_test:.1f} % of {n_test:,} test "
                    f"non-members, difference {diff.format(signed=True)} pp, 95 % interval (Clopper-Pearson, "
                    f"MOVER); {ONE_SEED}")
            return RelatedFinding(claim_of, verdict(diff, "increase"), diff, text)
        result = difference_finding(claim_of, ood_rates, tests, ood_rates * (1 - ood_rates) / n,
                                    tests * (1 - tests) / n_test, "increase")
        text = (f"{100 * ood_rates.mean():.1f} % of {n:,} OOD inputs against {100 * tests.mean():.1f} % of "
                f"{n_test:,} test non-members (means over seeds); {result.text}")
        return RelatedFinding(claim_of, result.verdict, result.estimate, text)

    per_set = {name: finding(f"OOD set '{titles.get(name, name)}': called members more often than test non-members",
                             rate, n_ood) for name, rate in rates.items()}
    pooled = finding("the uncalibrated attack calls OOD inputs members more often than test non-members",
                     np.mean(list(rates.values()), axis=0), n_ood * len(rates))
    return pooled, per_set


def tradeoff_finding(mean_ood_fpr, advantage, min_points: int = MIN_RANK_POINTS, n_bootstrap: int = 2000,
                     seed: int = 0, what: str = "versions of the model") -> RelatedFinding:
    """Hintersdorf et al.'s trade-off: versions of a model that are fooled less by OOD inputs
    (lower mean OOD false-positive rate) leak more (higher advantage), i.e. Spearman's rho of the
    two is negative. One point per version (and seed); with fewer than ``min_points`` points no
    interval can be given, and the finding is inconclusive by design (:func:`rank_finding`).
    ``what``: the points, in words."""
    return rank_finding("versions of the model fooled less by OOD inputs leak more", mean_ood_fpr, advantage,
                        "decrease", n_bootstrap, seed, what=what, basis="", min_points=min_points)
