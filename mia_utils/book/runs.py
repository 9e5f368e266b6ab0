"""Each chapter's runs, defined once: the training runs a chapter needs under a profile, with its
parameters. :func:`mia_utils.book.plan.book_plan` (and so ``plan`` and ``sweep``) lists the book's runs
by calling these, and each chapter calls its own when it opens
(:func:`mia_utils.book.sweep.train_chapter_runs`): it trains those the store lacks and may then
read no other run, so the list and the chapter cannot drift apart.

``RUNS[name](profile, params, store)`` returns a :class:`ChapterRuns`: the configurations, in the
order the chapter first uses them, and notes on runs that cannot be listed yet. Chapter 04 pairs
mechanisms at the settings chapter 02 selects from its results, so its pairs can be listed only
once chapter 02's runs are in ``store``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

from mia_utils.config import RunConfig


@dataclass
class ChapterRuns:
    """A chapter's runs (``configs``, in first-use order) and notes on those not listable yet."""

    configs: list[RunConfig] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)

    def extend(self, configs) -> None:
        self.configs.extend(configs)


def _datasets(profile, params: dict) -> list[str]:
    return params.get("datasets") or list(profile.datasets)


def _setting(profile, dataset: str, mechanism: str, value, seeds, mechanisms=None) -> list[RunConfig]:
    from mia_utils.book import replicated

    return [config for config, _ in replicated.setting_configs(profile, dataset, mechanism, value, seeds, mechanisms)]


def _baseline(profile, dataset: str, seeds) -> list[RunConfig]:
    """The unregularized baseline at every baseline seed (it anchors every paired comparison)."""
    from mia_utils.book import replicated

    return _setting(profile, dataset, replicated.BASELINE, None, replicated.baseline_seed_list(profile, seeds))


def _paper_grid(profile, dataset: str, seeds) -> list[RunConfig]:
    """The paper's seven trained mechanisms over the profile's grids (early stopping is read from
    the baseline's snapshots)."""
    from mia_utils.book.chapters import PAPER_MECHANISMS

    return [config for mechanism in PAPER_MECHANISMS if mechanism != "early_stopping"
            for value in profile.grids[mechanism] for config in _setting(profile, dataset, mechanism, value, seeds)]


def _dp_grid(profile, dataset: str, seeds) -> list[RunConfig]:
    return [config for sigma in profile.grids["dp_sgd"] for config in _setting(profile, dataset, "dp_sgd", sigma, seeds)]


def _seeds(profile, params: dict):
    from mia_utils.book import replicated

    return replicated.seed_list(profile, params["seed"])


def primer(profile, params: dict, store=None) -> ChapterRuns:
    from mia_utils.book.chapters import primer_config

    return ChapterRuns([primer_config(params)])


def baselines(profile, params: dict, store=None) -> ChapterRuns:
    """The baseline over its seeds, and the first seed's target trained for the chapter's
    ``epochs`` (the same run unless they are changed) with LiRA's ``shadow_models`` shadows."""
    from mia_utils.book.chapters import related_shadow_count

    out, seeds = ChapterRuns(), _seeds(profile, params)
    n_shadows = related_shadow_count(params)
    for dataset in _datasets(profile, params):
        base = profile.base_config(dataset, seed=params["seed"], epochs=params.get("epochs") or None)
        out.extend(_baseline(profile, dataset, seeds))
        out.extend([base])
        out.extend(base.shadow(i, n_shadows) for i in range(n_shadows))
    return out


def _per_dataset(profile, params: dict, *parts) -> ChapterRuns:
    """For each dataset, the runs of each part (``part(profile, dataset, seeds)``), in order."""
    out, seeds = ChapterRuns(), _seeds(profile, params)
    for dataset in _datasets(profile, params):
        for part in parts:
            out.extend(part(profile, dataset, seeds))
    return out


def _confirmed(profile, params: dict, out: ChapterRuns, store) -> ChapterRuns:
    """``out`` with, for each dataset, chapter 02's picks on the confirmation seeds
    (:func:`mia_utils.book.findings.confirmation_specs`), or a pending note while chapter 02's runs
    are not all in ``store`` (the picks follow from their results)."""
    from mia_utils.book import findings

    seeds = _seeds(profile, params)
    if len(seeds) < 2:
        return out
    again = findings.confirmation_seed_list(seeds)
    for dataset in _datasets(profile, params):
        if not _chapter02_stored(profile, dataset, seeds, store):
            out.pending.append(f"confirmation seeds {again[0]}-{again[-1]} ({dataset}): chapter 02's picks are "
                               "confirmed on them; they can be planned once chapter 02's runs are in the store")
            continue
        reg = findings.regularization_results(profile, dataset, seeds, store, confirm=False)
        for mechanism, value in findings.confirmation_specs(reg):
            out.extend(_setting(profile, dataset, mechanism, value, again))
    return out


def regularization(profile, params: dict, store=None) -> ChapterRuns:
    """The baseline and the paper's grid, then the picks on the confirmation seeds."""
    return _confirmed(profile, params, _per_dataset(profile, params, _baseline, _paper_grid), store)


def differential_privacy(profile, params: dict, store=None) -> ChapterRuns:
    """The DP grid, and chapter 02's baseline, grid and confirmed picks that F6 compares it with."""
    return _confirmed(profile, params, _per_dataset(profile, params, _baseline, _paper_grid, _dp_grid), store)


def _chapter02_stored(profile, dataset: str, seeds, store) -> bool:
    """Whether ``store`` holds chapter 02's runs of ``dataset`` (the baseline and the grid)."""
    needed = _baseline(profile, dataset, seeds) + _paper_grid(profile, dataset, seeds)
    return store is not None and all(store.exists(config.key()) for config in needed)


def combinations(profile, params: dict, store=None) -> ChapterRuns:
    """Chapter 02's runs, then distillation and cropping paired with every other mechanism at the
    settings :func:`mia_utils.book.findings.combination_specs` picks from chapter 02's results, and
    chapter 02's confirmed picks (the page reads chapter 02's results whole)."""
    from mia_utils.book import findings

    out, seeds = ChapterRuns(), _seeds(profile, params)
    for dataset in _datasets(profile, params):
        out.extend(_baseline(profile, dataset, seeds))
        out.extend(_paper_grid(profile, dataset, seeds))
        if not _chapter02_stored(profile, dataset, seeds, store):
            out.pending.append(f"04_combinations ({dataset}): the pairs follow chapter 02's selection; "
                               "they can be planned once chapter 02's runs are in the store")
            continue
        reg = findings.regularization_results(profile, dataset, seeds, store, confirm=False)
        for base_mechanism in findings.CONSISTENT:
            spec = findings.combination_specs(profile, reg, base_mechanism)
            if spec is None:
                continue
            base = {base_mechanism: spec["value"]}
            for partner, value in spec["pairs"].items():
                out.extend(_setting(profile, dataset, partner, value, seeds, mechanisms=base))
            for epoch in spec["epochs"]:
                out.extend(_setting(profile, dataset, "early_stopping", epoch, seeds, mechanisms=base))
    return _confirmed(profile, params, out, store)


def distance_to_confident(profile, params: dict, store=None) -> ChapterRuns:
    """DtC on chapter 02's baseline and RAD<15 % picks, and on the DP grid."""
    return _per_dataset(profile, params, _baseline, _paper_grid, _dp_grid)


def _populations(configs, count: int) -> list[RunConfig]:
    return [config.shadow(i, count) for config in configs for i in range(count)]


def generalization_lira(profile, params: dict, store=None) -> ChapterRuns:
    """A population of models per crop strength (each the target of the others)."""
    from mia_utils.book import generalization
    from mia_utils.book.chapters import related_shadow_count

    out, count = ChapterRuns(), related_shadow_count(params)
    for dataset in _datasets(profile, params):
        out.extend(_populations([generalization.crop_population_config(profile, dataset, params["seed"], crop)
                                 for crop in generalization.augmentation_strengths(profile)], count))
    return out


def mmd_mixup(profile, params: dict, store=None) -> ChapterRuns:
    """The baseline and the paper's grid (compared as chapter 02 compares them), populations of
    the baseline and of MMD + mix-up (final models only), and MMD + mix-up at every seed on both
    schedules."""
    from mia_utils.book import mmd_mixup
    from mia_utils.book.chapters import related_shadow_count

    out, seeds, count = ChapterRuns(), _seeds(profile, params), related_shadow_count(params)
    for dataset in _datasets(profile, params):
        final = profile.base_config(dataset, seed=params["seed"]).replace(snapshot_epochs=())
        out.extend(_baseline(profile, dataset, seeds))
        out.extend(_paper_grid(profile, dataset, seeds))
        out.extend(_populations([final, final.with_mechanisms(**mmd_mixup.mmd_defense(params))], count))
        for schedule in mmd_mixup.MMD_SCHEDULES:
            out.extend(config for config, _ in mmd_mixup.mmd_setting_configs(profile, dataset, params, seeds, schedule))
    return out


def prediction_scores_ood(profile, params: dict, store=None) -> ChapterRuns:
    """The baseline at every seed, and label smoothing at the values validation ECE chooses from."""
    from mia_utils.book import ood_scores, replicated

    out, seeds = ChapterRuns(), _seeds(profile, params)
    for dataset in _datasets(profile, params):
        out.extend(_setting(profile, dataset, replicated.BASELINE, None, seeds))
        for value in ood_scores.calibration_smoothings(profile):
            out.extend(_setting(profile, dataset, "label_smoothing", value, seeds))
    return out


def stronger_attacks(profile, params: dict, store=None) -> ChapterRuns:
    """On the chapter's first dataset: chapter 02's baseline and grid (its RAD selection reads them
    all), chapter 03's DP grid, chapter 01's shadow models of the first seed's baseline (RMIA's
    reference models for the adversary who does not know the recipe), and the recipe-aware
    adversary's reference models, trained with each defended setting's own recipe
    (:func:`mia_utils.book.stronger_attacks.aware_plan`). Those follow chapter 02's selection, so
    they are pending until chapter 02's runs are in ``store``."""
    from mia_utils.book.stronger_attacks import aware_plan

    out, seeds = ChapterRuns(), _seeds(profile, params)
    dataset = _datasets(profile, params)[0]
    for part in (_baseline, _paper_grid, _dp_grid):
        out.extend(part(profile, dataset, seeds))
    base = profile.base_config(dataset, seed=params["seed"])
    out.extend(base.shadow(i, profile.shadow_models) for i in range(profile.shadow_models))
    if _chapter02_stored(profile, dataset, seeds, store):
        out.extend(aware_plan(profile, params, store))
    else:
        out.pending.append(f"09_stronger_attacks ({dataset}): the recipe-aware reference models follow chapter "
                           "02's selection; they can be planned once chapter 02's runs are in the store")
    return out


def summary(profile, params: dict, store=None) -> ChapterRuns:
    """The findings page judges the ten findings on chapters 02 to 05's runs, so it lists theirs."""
    out = ChapterRuns()
    for chapter in (regularization, differential_privacy, combinations, distance_to_confident):
        listed = chapter(profile, params, store)
        out.extend(listed.configs)
        out.pending.extend(listed.pending)
    return out


RUNS: dict[str, Callable[..., ChapterRuns]] = {
    "00_primer": primer,
    "01_baselines": baselines,
    "02_regularization": regularization,
    "03_differential_privacy": differential_privacy,
    "04_combinations": combinations,
    "05_distance_to_confident": distance_to_confident,
    "06_generalization_lira": generalization_lira,
    "07_mmd_mixup": mmd_mixup,
    "08_prediction_scores_ood": prediction_scores_ood,
    "09_stronger_attacks": stronger_attacks,
    "findings": summary,
}
