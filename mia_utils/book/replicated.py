"""Sweeps over mechanisms and their values, replicated over seeds, as the chapters run them.

A :class:`Setting` is one (mechanism, value) trained once per seed; each seed draws its own
membership split and training (``Profile.base_config(dataset, seed)``). Every run is an ordinary
run of the result store and every evaluation is cached (:func:`mia_utils.attacks.evaluation.evaluate`),
so a sweep that was run before is read back, and one chapter's sweep is free for the next. Early
stopping reads per-epoch snapshots of the baseline runs.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from mia_utils import experiment
from mia_utils.attacks import evaluation
from mia_utils.attacks.evidence import (
    SeedEstimate,
    VariancePrior,
    combine_seeds,
    fit_prior,
    paired_difference,
    relative_change,
)
from mia_utils.book.profiles import Profile
from mia_utils.config import RunConfig

log = logging.getLogger(__name__)

BASELINE = "baseline"


def setting_config(base: RunConfig, mechanism: str, value) -> RunConfig:
    """The configuration of one (mechanism, value) setting on top of ``base`` (no snapshots)."""
    return base.with_mechanisms(**{mechanism: value}).replace(snapshot_epochs=())


def seed_list(profile: Profile, first_seed: int = 0, replicated: bool = True) -> tuple[int, ...]:
    """The seeds a setting is trained with: ``profile.seeds`` consecutive seeds from
    ``first_seed`` when the setting enters a verdict (``replicated``), else ``first_seed`` alone."""
    return tuple(range(first_seed, first_seed + (profile.seeds if replicated else 1)))


def baseline_seed_list(profile: Profile, seeds) -> tuple[int, ...]:
    """The seeds of the baseline that settings trained with ``seeds`` are compared with.

    The baseline anchors every paired comparison and the comparison with the paper's Table 2, so
    when ``seeds`` are the profile's replicated seeds they are extended to
    ``profile.baseline_seeds`` consecutive seeds (the extra seeds narrow the baseline's own
    interval; paired differences use the seeds both sides share). One-seed settings keep their
    seed."""
    seeds = tuple(seeds)
    if len(seeds) < profile.seeds:
        return seeds
    # at least twice the setting's seeds: the picks are confirmed on the seeds after them
    return tuple(range(seeds[0], seeds[0] + max(profile.baseline_seeds, 2 * len(seeds))))


@dataclass
class Setting:
    """One (mechanism, value) over seeds: ``evaluations[i]`` holds the metrics of seed
    ``seeds[i]`` (:func:`mia_utils.attacks.evaluation.evaluate_outputs`), ``facts[i]`` what its
    mechanisms reported (e.g. DP's epsilon), ``configs[i]`` its run's configuration and
    ``epochs[i]`` the snapshot epoch it was read at (None: the final model). ``priors``: metric
    -> the :class:`~mia_utils.attacks.evidence.VariancePrior` of the family this setting is
    compared in (set by :func:`moderate`; empty: no moderation)."""

    mechanism: str
    value: float | None
    seeds: tuple[int, ...]
    evaluations: list[dict]
    facts: list[dict] = field(default_factory=list)
    configs: list[RunConfig] = field(default_factory=list)
    epochs: list[int | None] = field(default_factory=list)
    trained: int = 0
    priors: dict[str, VariancePrior] = field(default_factory=dict, repr=False)

    def runs(self, store=None) -> list[tuple["experiment.Run", int | None]]:
        """(run, snapshot epoch or None) per seed, read back from the store."""
        return [(experiment.run(config, store), epoch) for config, epoch in zip(self.configs, self.epochs)]

    @property
    def label(self) -> str:
        return BASELINE if self.mechanism == BASELINE else f"{self.mechanism} = {self.value:g}"

    def values(self, metric: str) -> list[float]:
        return [e[metric]["value"] for e in self.evaluations]

    def variances(self, metric: str) -> list[float]:
        return [e[metric]["variance"] for e in self.evaluations]

    def estimate(self, metric: str) -> SeedEstimate:
        """Mean over seeds and 95 % interval of ``metric`` (see :mod:`mia_utils.attacks.evidence`)."""
        return combine_seeds(self.values(metric), self.variances(metric))

    def mean(self, metric: str) -> float:
        return self.estimate(metric).mean

    def on_seeds(self, seeds) -> "Setting":
        """This setting restricted to ``seeds``, in that order; each must be one of its seeds."""
        seeds = tuple(seeds)
        missing = [s for s in seeds if s not in self.seeds]
        if missing:
            raise ValueError(f"seeds: {missing} were not trained for {self.label} (its seeds: {self.seeds})")
        index = [self.seeds.index(s) for s in seeds]

        def pick(items):
            return [items[i] for i in index] if items else items

        return Setting(self.mechanism, self.value, seeds, pick(self.evaluations), pick(self.facts),
                       pick(self.configs), pick(self.epochs), self.trained, self.priors)

    def paired_variances(self, baseline: "Setting", metric: str) -> list[float]:
        """Per seed, the within-seed variance of this setting's ``metric`` minus ``baseline``'s
        (the baseline on this setting's seeds): the paired bootstrap's where both were resampled
        alike (:func:`mia_utils.attacks.evaluation.paired_variance`), else the sum."""
        baseline = baseline.on_seeds(self.seeds)
        return [evaluation.paired_variance(a[metric], b[metric], _resamples(a), _resamples(b))
                for a, b in zip(self.evaluations, baseline.evaluations)]

    def prior(self, metric: str, *others: "Setting") -> VariancePrior | None:
        """The family prior for ``metric``: this setting's, else the first of ``others`` that has one."""
        for setting in (self, *others):
            if metric in setting.priors:
                return setting.priors[metric]
        return None

    def change(self, baseline: "Setting", metric: str) -> SeedEstimate:
        """This setting minus ``baseline``, seed by seed, over this setting's seeds (the baseline
        must hold each of them; it may hold more, see :func:`baseline_seed_list`), with the paired
        within-seed variances and the family's prior (:func:`moderate`)."""
        paired = baseline.on_seeds(self.seeds)
        return paired_difference(self.values(metric), paired.values(metric),
                                 within=self.paired_variances(baseline, metric), prior=self.prior(metric, baseline))

    def relative_change(self, baseline: "Setting", metric: str) -> SeedEstimate:
        """(this - baseline) / baseline seed by seed (a fraction: -0.5 = halved), with each seed's
        within-seed variance from the paired replicates' ratios (the baseline's own sampling noise
        included) and the family's prior; see :func:`mia_utils.attacks.evidence.relative_change`."""
        paired = baseline.on_seeds(self.seeds)
        within = [_ratio_variance(a[metric], b[metric], _resamples(a) == _resamples(b))
                  for a, b in zip(self.evaluations, paired.evaluations)]
        return relative_change(self.values(metric), paired.values(metric), within, self.prior(metric, baseline))

    def change_text(self, baseline: "Setting", metric: str, digits: int = 1) -> str:
        """The change against ``baseline`` as the tables print it: relative ("-62.0 % [-80.1,
        -43.9]", :meth:`relative_change`) when every paired baseline seed is clearly above zero
        (its value more than twice its within-seed standard deviation) and the baseline's interval
        excludes zero; otherwise absolute, in points ("-3.1 pp [...]")."""
        from mia_utils.attacks.evidence import relative_text

        paired = baseline.on_seeds(self.seeds)
        clear = all(v > 2 * max(w, 0.0) ** 0.5 for v, w in zip(paired.values(metric), paired.variances(metric)))
        if clear and baseline.estimate(metric).excludes_zero and baseline.mean(metric) > 0:
            return relative_text(self.relative_change(baseline, metric), digits)
        return f"{self.change(baseline, metric).format(digits=digits, signed=True)} pp"


def _resamples(evaluation_: dict):
    entry = evaluation_.get("resamples")
    return None if entry is None else entry["value"]


def _ratio_variance(a: dict, b: dict, same_resamples: bool) -> float:
    """Within-seed variance of (a - b) / b for one metric of two runs: from the replicates' ratios
    when both were resampled alike, else by the delta method with independent samples."""
    ra, rb = a.get("replicates"), b.get("replicates")
    if same_resamples and ra is not None and rb is not None and len(ra) == len(rb) > 1:
        ra, rb = np.asarray(ra), np.asarray(rb)
        if (rb > 0).all():
            return float(np.var(ra / rb - 1.0, ddof=1))
    if not b["value"] > 0:
        return float("nan")
    return a["variance"] / b["value"] ** 2 + a["value"] ** 2 * b["variance"] / b["value"] ** 4


def moderate(baseline: Setting, settings: list[Setting], metrics=None) -> list[Setting]:
    """``settings`` with the priors of their family attached: for each metric, the
    :class:`~mia_utils.attacks.evidence.VariancePrior` fitted on every setting's paired change
    against ``baseline`` (:func:`mia_utils.attacks.evidence.fit_prior`). A metric with too few
    usable comparisons gets no prior. Returns new :class:`Setting` objects (the inputs are not
    changed).

    Args:
        baseline: the :class:`Setting` every setting of the family is compared with.
        settings: the family (list of :class:`Setting`), e.g. one chapter's grid.
        metrics: the metrics to fit (iterable of str), or None for
            :data:`mia_utils.attacks.evaluation.METRICS`.
    """
    from dataclasses import replace

    priors = {}
    for metric in (metrics or evaluation.METRICS):
        comparisons = []
        for setting in settings:
            paired = baseline.on_seeds(setting.seeds)
            differences = [a - b for a, b in zip(setting.values(metric), paired.values(metric))]
            comparisons.append((differences, setting.paired_variances(baseline, metric)))
        prior = fit_prior(comparisons)
        if prior is not None:
            priors[metric] = prior
    return [replace(setting, priors={**setting.priors, **priors}) for setting in settings]


def _evaluated(config: RunConfig, profile: Profile, store, epoch: int | None = None):
    run = experiment.run(config, store)
    return run, evaluation.evaluate(run, epoch=epoch, n_bootstrap=profile.bootstrap, seed=config.seed, store=store)


def setting_configs(profile: Profile, dataset: str, mechanism: str, value, seeds,
                    mechanisms: dict | None = None) -> list[tuple[RunConfig, int | None]]:
    """(run configuration, snapshot epoch or None) of ``mechanism = value`` on ``dataset`` for
    each seed in ``seeds``, trained by :func:`run_setting`.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile` (sizes and training settings).
        dataset: the dataset's name (``"fmnist"``, ``"cifar10"``, ``"cifar100"``), one of the
            profile's.
        mechanism: a mechanism's name, or ``"baseline"`` (value None) or ``"early_stopping"``
            (value E: the snapshot after E epochs of the run without it).
        value: the mechanism's value (its unit is the mechanism's: e.g. crop pixels, σ_DP,
            epochs for early stopping); None for the baseline.
        seeds: the seeds (iterable of int), one run each.
        mechanisms: other mechanisms applied underneath (for pairs), as ``{name: value}``, or None.
    """
    out = []
    for seed in seeds:
        base = profile.base_config(dataset, seed=seed)
        if mechanisms:
            base = base.with_mechanisms(**mechanisms).replace(snapshot_epochs=())
        if mechanism == BASELINE:
            out.append((base, None))
        elif mechanism == "early_stopping":
            epoch = int(value)
            final = epoch == base.epochs
            snapshots = set(profile.snapshot_epochs(base.epochs)) | (set() if final else {epoch})
            out.append((base.replace(snapshot_epochs=tuple(sorted(snapshots))), None if final else epoch))
        else:
            out.append((setting_config(base, mechanism, value), None))
    return out


def run_setting(profile: Profile, dataset: str, mechanism: str, value, seeds, store=None,
                mechanisms: dict | None = None) -> Setting:
    """Train (or read back) every run of :func:`setting_configs` and evaluate each one
    (:func:`mia_utils.attacks.evaluation.evaluate` with the profile's bootstrap, seeded by the run).

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        dataset: the dataset's name, one of the profile's.
        mechanism: a mechanism's name, ``"baseline"`` or ``"early_stopping"``
            (see :func:`setting_configs`).
        value: the mechanism's value (None for the baseline; E epochs for early stopping).
        seeds: the seeds (iterable of int), one run each.
        store: the :class:`mia_utils.store.ResultStore` runs are read from and written to
            (None = the default store).
        mechanisms: other mechanisms applied underneath, ``{name: value}``, or None.
    """
    evaluations, facts, configs, epochs, trained = [], [], [], [], 0
    for config, epoch in setting_configs(profile, dataset, mechanism, value, seeds, mechanisms):
        run, metrics = _evaluated(config, profile, store, epoch)
        trained += not run.from_store
        evaluations.append(metrics)
        facts.append(run.provenance.get("mechanisms", {}))
        configs.append(run.config)
        epochs.append(epoch)
    return Setting(mechanism, value, tuple(seeds), evaluations, facts, configs, epochs, trained)


def run_baseline(profile: Profile, dataset: str, seeds, store=None) -> Setting:
    """The unregularized setting over :func:`baseline_seed_list` of ``seeds``."""
    return run_setting(profile, dataset, BASELINE, None, baseline_seed_list(profile, seeds), store)


def mechanism_sweep(profile: Profile, dataset: str, mechanism: str, seeds, store=None, grid=None) -> list[Setting]:
    """A :class:`Setting` for every value of ``mechanism`` in ``grid`` (default: the profile's).

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        dataset: the dataset's name, one of the profile's.
        mechanism: the mechanism's name (a key of ``profile.grids`` when ``grid`` is None).
        seeds: the seeds (iterable of int) of every setting.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        grid: the values to sweep (iterable), or None for ``profile.grids[mechanism]``.
    """
    settings = []
    for value in (grid if grid is not None else profile.grids[mechanism]):
        setting = run_setting(profile, dataset, mechanism, value, seeds, store)
        log.info("%s: accuracy %.3f, Adv_Yeom %.3f", setting.label, setting.mean("test_acc"), setting.mean("adv_yeom"))
        settings.append(setting)
    return settings


def regularization_sweep(profile: Profile, dataset: str, mechanisms, seeds, store=None) -> tuple[Setting, list[Setting]]:
    """The baseline (over :func:`baseline_seed_list`) and every (mechanism, value) of the
    profile's grids, each over ``seeds``.

    Args:
        profile: the book's :class:`~mia_utils.book.profiles.Profile`.
        dataset: the dataset's name, one of the profile's.
        mechanisms: the mechanisms' names to sweep (iterable of str), each over its grid.
        seeds: the seeds (iterable of int) of every setting.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).

    Returns:
        (baseline :class:`Setting`, list of the mechanisms' settings in sweep order).
    """
    baseline = run_baseline(profile, dataset, seeds, store)
    settings = []
    for mechanism in mechanisms:
        settings += mechanism_sweep(profile, dataset, mechanism, seeds, store)
    return baseline, settings


def trained_count(*groups) -> int:
    """Runs trained now (not read from the store) over settings or lists of settings."""
    total = 0
    for group in groups:
        total += sum(s.trained for s in group) if isinstance(group, (list, tuple)) else group.trained
    return total


def means_frame(settings: list[Setting]) -> pd.DataFrame:
    """One row per setting with its ``mechanism``, ``value`` and the seed mean of every metric of
    :data:`mia_utils.attacks.evaluation.METRICS` (fractions): the input of the Max / RAD selection."""
    return pd.DataFrame([{"mechanism": s.mechanism, "value": s.value,
                          **{metric: s.mean(metric) for metric in evaluation.METRICS}} for s in settings])


def find(settings: list[Setting], mechanism: str, value) -> Setting:
    """The setting of ``mechanism`` at ``value`` in ``settings``."""
    for setting in settings:
        if setting.mechanism == mechanism and (value is None or setting.value == value):
            return setting
    raise KeyError(f"no setting {mechanism} = {value} among {len(settings)} settings")


def variance_components(baseline: Setting, settings: list[Setting], metrics) -> pd.DataFrame:
    """The variance components of every setting's paired change against ``baseline``, one row per
    (metric, setting): ``n`` seeds, ``spread`` (the sample variance of the per-seed differences,
    ddof 1), ``paired`` (the mean paired within-seed variance) and ``unpaired`` (the mean of
    ``w_a + w_b``); all in squared fractions. The input of ``benchmarks/verdict_calibration.py``."""
    rows = []
    for metric in metrics:
        for setting in settings:
            paired = baseline.on_seeds(setting.seeds)
            differences = [a - b for a, b in zip(setting.values(metric), paired.values(metric))]
            unpaired = [a + b for a, b in zip(setting.variances(metric), paired.variances(metric))]
            series = pd.Series(differences, dtype=float)
            rows.append({"metric": metric, "setting": setting.label, "n": len(differences),
                         "mean": float(series.mean()), "spread": float(series.var(ddof=1)),
                         "paired": float(pd.Series(setting.paired_variances(baseline, metric)).mean()),
                         "unpaired": float(pd.Series(unpaired).mean())})
    return pd.DataFrame(rows)
