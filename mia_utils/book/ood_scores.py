"""Chapter 08, prediction scores on out-of-distribution inputs: the confidence attack's false
positives on OOD images with and without calibration (:func:`ood_experiment`, per seed, kept in the
store), and the verdicts (:func:`ood_exceeds_test`, :func:`tradeoff_finding`). The page itself reads
:func:`ood_chapter` (every seed), :func:`summary_table`, the figures (:func:`ood_examples_figure`,
:func:`ood_fpr_figure`, :func:`tradeoff_figure`) and :func:`key_values` (every value its text glues)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
import torch
from matplotlib.figure import Figure

from mia_utils import attacks, experiment
from mia_utils.attacks import metrics
from mia_utils.attacks.evidence import combine_seeds, verdict
from mia_utils.book.verdicts import (
    MIN_RANK_POINTS,
    ONE_SEED,
    RelatedFinding,
    difference_finding,
    proportion_difference,
    rank_finding,
    spearman,
)
from mia_utils.config import RunConfig


def max_probability(probabilities: torch.Tensor) -> torch.Tensor:
    """The prediction score: the largest class probability of each row of (N, classes)."""
    return probabilities.max(1).values


def confidence_attack_fprs(eval_probs: torch.Tensor, eval_is_member: torch.Tensor, adv_probs: torch.Tensor,
                           adv_is_member: torch.Tensor, ood_probs: dict[str, torch.Tensor]) -> dict[str, float]:
    """The prediction-score attack (member when the top probability is at least a threshold set on
    the adversary's own members and non-members) on the evaluation set and on OOD inputs.

    Returns fractions: ``tpr`` and ``fpr`` on the evaluation set, ``advantage`` (tpr - fpr),
    ``auc`` of the score, ``threshold``, and ``fpr_<name>``: the share of each OOD set called a
    member.

    Args:
        eval_probs: float tensor (N, classes), class probabilities on the evaluation set.
        eval_is_member: bool tensor (N,), the evaluation set's membership.
        adv_probs: float tensor (M, classes), class probabilities on the adversary's samples.
        adv_is_member: bool tensor (M,), the adversary's samples' membership (sets the threshold).
        ood_probs: OOD set name -> float tensor (K, classes) of class probabilities on that set.
    """
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
    ``validation_ece`` (:func:`mia_utils.attacks.ood.expected_calibration_error` on the calibration set);
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
    :func:`mia_utils.attacks.ood.ood_sets` (``n_ood`` images each; 0: the evaluation set's size per side).

    The shuffled and inverted images come from test images in neither the evaluation nor the
    adversary's set; the temperature and the smoothing strength are fitted on further such images
    (at most twice the evaluation size per side; :func:`mia_utils.attacks.ood.free_test_split`, which
    raises ``ValueError`` naming ``ood_samples`` when too few are free). The measurements are
    kept in the store as a derived ``ood-`` entry, so executing the chapter again reads them back.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile` (its Fashion-MNIST sizes
            and label-smoothing grid).
        seed: the seed of the baseline run, of its split and of the OOD sets' draws (int).
        n_ood: images per OOD set (int; 0 = the evaluation set's size per side).
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        data: the Fashion-MNIST :class:`mia_utils.data.ImageDataset`, or None to load it.
    """
    from mia_utils.attacks import ood
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
    order_kept = spearman(*(torch.cat([max_probability(probabilities[v][k]) for k in shown]).numpy()
                             for v in OOD_VARIANTS[:2]))
    _store_ood(profile, base, n_ood, seed, store, rows, temperature, smoothing, eces, order_kept)
    return OodSeed(seed, pd.DataFrame(rows).T.loc[list(OOD_VARIANTS)], temperature, ood_images, n_ood, base.n_eval,
                   smoothing, eces, order_kept)


def _ood_key(profile, base: RunConfig, n_ood: int, seed: int) -> str:
    """The store key of chapter 08's measurements on one seed: a hash of the runs they read (the
    baseline and every calibrating label-smoothing model), the OOD set size and the seed."""
    from mia_utils.book import replicated
    from mia_utils.store import derived_key

    runs = [base.key()] + [replicated.setting_config(base, "label_smoothing", value).key()
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
    expected calibration error (:func:`mia_utils.attacks.ood.expected_calibration_error`) on the held-out
    ``validation_images``. Returns the value, its model and every value's ECE.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile` (its ``label_smoothing`` grid).
        base: the :class:`~mia_utils.config.RunConfig` being calibrated (label smoothing is added to it).
        validation_images: uint8 tensor (V, C, H, W), held-out images no model trained on.
        validation_labels: int tensor (V,), their labels.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
    """
    from mia_utils.attacks import ood
    from mia_utils.book import replicated
    from mia_utils.models import predict_logits

    models, eces = {}, {}
    for value in calibration_smoothings(profile):
        models[value] = experiment.run(replicated.setting_config(base, "label_smoothing", value), store).model()
        eces[value] = ood.expected_calibration_error(predict_logits(models[value], validation_images).softmax(1),
                                                     validation_labels)
    best = min(eces, key=eces.get)
    return best, models[best], eces


def ood_summary(per_seed: list[OodSeed]) -> pd.DataFrame:
    """One row per version of the model, one column per measure of :func:`confidence_attack_fprs`
    (and ``mean_ood_fpr``, the mean over the OOD sets), each a
    :class:`~mia_utils.attacks.evidence.SeedEstimate`: the mean over the seeds of ``per_seed`` with its
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
    from mia_utils.attacks import ood

    return float(np.mean([float(table.loc[variant, f"fpr_{k}"]) for k in ood.OOD_SETS]))


def calibration_smoothings(profile) -> tuple:
    """Chapter 08's candidate label-smoothing strengths: the profile's grid (the regularization
    chapter trains them already); :func:`calibrating_smoothing` picks one per seed."""
    return tuple(profile.grids["label_smoothing"])


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
    with each rate's binomial variance p (1 - p) / n as the within-seed floor.

    Args:
        fpr_ood: OOD set name -> its false-positive rate (fraction), or one rate per seed.
        n_ood: inputs per OOD set (int).
        fpr_test: the rate on the test non-members (fraction), or one per seed, the same seeds
            in the same order as ``fpr_ood``.
        n_test: the test non-members per seed (int).
        titles: OOD set name -> its title in the claims (dict or None: the names themselves).
    """
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

    Args:
        mean_ood_fpr: mean OOD false-positive rate per point (1-D array-like of fractions).
        advantage: the attack's advantage per point, the same points in the same order.
        min_points: fewest points for an interval (int).
        n_bootstrap: bootstrap resamples of the points (int).
        seed: seed of the resamples (int).
        what: the points, in words, for the text (str).
    """
    return rank_finding("versions of the model fooled less by OOD inputs leak more", mean_ood_fpr, advantage,
                        "decrease", n_bootstrap, seed, what=what, basis="", min_points=min_points)


# --- The page: its results over seeds, table, figures and glued values -------------------------------------------

#: The OOD sets' names in the page's table, figures and findings (keys: :data:`mia_utils.attacks.ood.OOD_SETS`).
OOD_TITLES = {"mnist_digits": "MNIST digits", "permuted": "shuffled pixels", "inverted": "inverted",
              "uniform_noise": "uniform noise"}


def variant_label(variant: str) -> str:
    """The page's name of a version of the model (:data:`OOD_VARIANTS`): the label-smoothed one says how its
    strength was picked."""
    return "label smoothing (α by validation ECE)" if variant == "label smoothing" else variant


@dataclass(frozen=True)
class OodChapter:
    """Chapter 08's results over its seeds: ``per_seed``, one :class:`OodSeed` per seed in the seeds' order;
    ``summary``, :func:`ood_summary` of them (versions x measures of
    :class:`~mia_utils.attacks.evidence.SeedEstimate`, fractions); ``smoothing_grid``, the candidate
    label-smoothing strengths (:func:`calibration_smoothings`)."""

    per_seed: list
    summary: pd.DataFrame
    smoothing_grid: tuple

    @property
    def n_ood(self) -> int:
        """Images per OOD set (every seed has as many)."""
        return self.per_seed[0].n_ood

    @property
    def n_test(self) -> int:
        """Test non-members the in-distribution false-positive rate is measured on, per seed."""
        return self.per_seed[0].n_test


def ood_chapter(profile, seeds, n_ood: int = 0, store=None, data=None) -> OodChapter:
    """Chapter 08 on every seed of ``seeds``: :func:`ood_experiment` on each (``n_ood`` images per OOD set;
    0: the evaluation set's size per side) and their :func:`ood_summary`.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        seeds: the seeds (iterable of int), one :func:`ood_experiment` each, in order.
        n_ood: images per OOD set (int; 0 = the evaluation set's size per side).
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        data: the Fashion-MNIST :class:`mia_utils.data.ImageDataset` (loaded once here when None).
    """
    from mia_utils.data import load_dataset

    data = data if data is not None else load_dataset("fmnist")
    per_seed = [ood_experiment(profile, seed, n_ood, store, data) for seed in seeds]
    return OodChapter(per_seed, ood_summary(per_seed), calibration_smoothings(profile))


def summary_table(summary: pd.DataFrame, titles: dict[str, str] = OOD_TITLES) -> pd.DataFrame:
    """The page's table of :func:`ood_summary`: one row per measure (advantage, AUC, validation ECE, the
    false-positive rate on the test non-members and on each OOD set), one column per version of the model
    (:func:`variant_label`), each cell ``"mean [low, high]"`` in percent; the index is named ``measure``."""
    from mia_utils.attacks import ood

    columns = {"advantage": "advantage (%)", "auc": "AUC (%)", "validation_ece": "ECE, validation (%)",
               "fpr": "FPR, test non-members (%)", **{f"fpr_{k}": f"FPR, {titles[k]} (%)" for k in ood.OOD_SETS}}
    shown = pd.DataFrame({title: summary[column].map(lambda e: e.format()) for column, title in columns.items()})
    shown = shown.rename(index={v: variant_label(v) for v in summary.index}).T
    shown.index.name = "measure"
    return shown


def ood_examples_figure(ood_images: dict, titles: dict[str, str] = OOD_TITLES) -> Figure:
    """The first image of each OOD set side by side; ``ood_images`` maps a set's name to its uint8 images
    (N, 1, height, width), grey levels 0-255."""
    fig, axes = plt.subplots(1, len(ood_images), figsize=(8, 2.3), layout="constrained", squeeze=False)
    for ax, (name, images) in zip(axes[0], ood_images.items()):
        ax.imshow(images[0, 0], cmap="gray", vmin=0, vmax=255)
        ax.set_title(titles[name], fontsize="small")
        ax.axis("off")
    return fig


def flagged_shares(per_seed: list[OodSeed], titles: dict[str, str] = OOD_TITLES) -> pd.DataFrame:
    """One row per seed, version of the model and kind of non-member input (the test non-members, then each
    OOD set): columns ``seed``, ``model`` (:func:`variant_label`), ``inputs`` (the set's title) and
    ``flagged as members (%)``, the attack's false-positive rate there in percent."""
    from mia_utils.attacks import ood

    rates = ["fpr"] + [f"fpr_{s}" for s in ood.OOD_SETS]
    return pd.DataFrame([{"seed": r.seed, "model": variant_label(v),
                          "inputs": "test non-members" if k == "fpr" else titles[k[4:]],
                          "flagged as members (%)": 100 * float(r.table.loc[v, k])}
                         for r in per_seed for v in r.table.index for k in rates])


def ood_fpr_figure(per_seed: list[OodSeed], titles: dict[str, str] = OOD_TITLES) -> Figure:
    """Bars of :func:`flagged_shares`: the share of each kind of non-member input called a member (%, mean over
    the seeds), one bar per version of the model."""
    fig, ax = plt.subplots(figsize=(9, 4), layout="constrained")
    sns.barplot(flagged_shares(per_seed, titles), x="inputs", y="flagged as members (%)", hue="model",
                errorbar=None, ax=ax)
    ax.set_xlabel("inputs shown to the attack (none of them members)")
    ax.tick_params(axis="x", labelrotation=15)
    ax.set_ylabel("share called a member (%), mean over seeds")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    return fig


def tradeoff_points(per_seed: list[OodSeed]) -> pd.DataFrame:
    """One row per seed and version of the model: ``seed``, ``model`` (:func:`variant_label`),
    ``mean OOD FPR (%)`` (:func:`ood_mean_fpr`, percent) and ``advantage (%)`` on the evaluation set."""
    return pd.DataFrame([{"seed": r.seed, "model": variant_label(v), "mean OOD FPR (%)": 100 * ood_mean_fpr(r.table, v),
                          "advantage (%)": 100 * float(r.table.loc[v, "advantage"])}
                         for r in per_seed for v in r.table.index])


def tradeoff_figure(per_seed: list[OodSeed]) -> Figure:
    """The trade-off of :func:`tradeoff_finding`: one point per version of the model and seed
    (:func:`tradeoff_points`), mean OOD false-positive rate (%) against the advantage (%)."""
    fig, ax = plt.subplots(figsize=(6.5, 4), layout="constrained")
    sns.scatterplot(tradeoff_points(per_seed), x="mean OOD FPR (%)", y="advantage (%)", hue="model", style="seed",
                    s=70, ax=ax)
    ax.set_xlabel("mean false-positive rate on the OOD sets (%)")
    ax.set_ylabel("advantage on members vs test non-members (%)")
    ax.legend(loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False, fontsize="small")
    return fig


@dataclass(frozen=True)
class OodFindings:
    """Chapter 08's verdicts: ``pooled`` and ``per_set`` (:func:`ood_exceeds_test` on the uncalibrated model;
    ``per_set`` keyed by OOD set) and ``tradeoff`` (:func:`tradeoff_finding` over every version and seed)."""

    pooled: RelatedFinding
    per_set: dict
    tradeoff: RelatedFinding


def ood_findings(per_seed: list[OodSeed], bootstrap_seed: int = 0, titles: dict[str, str] = OOD_TITLES,
                 n_bootstrap: int = 2000) -> OodFindings:
    """The verdicts of :class:`OodFindings` from the per-seed measurements; ``bootstrap_seed`` seeds the rank
    correlation's bootstrap of ``n_bootstrap`` replicates (the chapter passes its ``seed`` parameter)."""
    from mia_utils.attacks import ood

    map_name = OOD_VARIANTS[0]
    pooled, per_set = ood_exceeds_test(
        {k: [float(r.table.loc[map_name, f"fpr_{k}"]) for r in per_seed] for k in ood.OOD_SETS}, per_seed[0].n_ood,
        [float(r.table.loc[map_name, "fpr"]) for r in per_seed], per_seed[0].n_test, titles)
    tradeoff = tradeoff_finding(
        [ood_mean_fpr(r.table, v) for r in per_seed for v in r.table.index],
        [float(r.table.loc[v, "advantage"]) for r in per_seed for v in r.table.index], n_bootstrap=n_bootstrap,
        seed=bootstrap_seed,
        what=f"versions of the model ({len(OOD_VARIANTS)} per seed, {len(per_seed)} seeds; the versions of one "
             "seed share its model, so the interval is optimistic)")
    return OodFindings(pooled, per_set, tradeoff)


def key_values(results: OodChapter, bootstrap_seed: int = 0, titles: dict[str, str] = OOD_TITLES,
               n_bootstrap: int = 2000) -> dict:
    """Every value the page's text glues, by glue name: the seed count, the verdicts and their evidence
    (:func:`ood_findings`; ``f08_ood_sets`` is a markdown list, one line per OOD set), the uncalibrated
    model's rates and advantage (``"mean [low, high]"`` in percent), its worst OOD set, the version least
    fooled by OOD inputs with its rates, the fitted temperature and the rank correlation of the scores
    before and after it (unscaled), and the label-smoothing grid and the strength picked on each seed.
    ``bootstrap_seed`` and ``n_bootstrap``: the trade-off's bootstrap (:func:`ood_findings`)."""
    from IPython.display import Markdown

    from mia_utils.attacks import ood

    per_seed, summary = results.per_seed, results.summary
    found = ood_findings(per_seed, bootstrap_seed, titles, n_bootstrap)
    map_name = OOD_VARIANTS[0]
    mean_of = summary.map(lambda e: 100 * e.mean)
    least = mean_of["mean_ood_fpr"].idxmin()
    worst_set = max(ood.OOD_SETS, key=lambda k: mean_of.loc[map_name, f"fpr_{k}"])
    return {
        "n_seeds": len(per_seed),
        "f08_ood_verdict": found.pooled.verdict,
        "f08_ood_text": found.pooled.text,
        "f08_ood_sets": Markdown("\n".join(f"- {finding.line}" for finding in found.per_set.values())),
        "f08_tradeoff_verdict": found.tradeoff.verdict,
        "f08_tradeoff_text": found.tradeoff.text,
        "map_mean_ood_fpr": summary.loc[map_name, "mean_ood_fpr"].format(),
        "map_test_fpr": summary.loc[map_name, "fpr"].format(),
        "map_worst_set": titles[worst_set],
        "map_worst_fpr": summary.loc[map_name, f"fpr_{worst_set}"].format(),
        "map_advantage": summary.loc[map_name, "advantage"].format(),
        "least_name": variant_label(least),
        "least_mean_ood_fpr": summary.loc[least, "mean_ood_fpr"].format(),
        "least_advantage": summary.loc[least, "advantage"].format(),
        "temperature": combine_seeds([r.temperature for r in per_seed]).format(scale=1, digits=2),
        "temperature_rho": combine_seeds([r.temperature_rank_correlation for r in per_seed]).format(scale=1, digits=3),
        "smoothing_grid": ", ".join(f"{v:g}" for v in results.smoothing_grid),
        "smoothing_chosen": ", ".join(f"{r.smoothing:g} (seed {r.seed})" for r in per_seed),
    }
