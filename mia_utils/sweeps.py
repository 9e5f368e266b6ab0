"""Sweeps over mechanisms and their values, as the chapters run them.

Every setting is an ordinary run of the result store, so a sweep that was run before is read
back, and one chapter's sweep is free for the next (the DP and DtC chapters reuse the
regularization chapter's runs). Early stopping reads snapshots of the baseline run.
"""

from __future__ import annotations

import logging

import pandas as pd

from mia_utils import experiment, report
from mia_utils.config import RunConfig
from mia_utils.profiles import Profile

log = logging.getLogger(__name__)


def setting_config(base: RunConfig, mechanism: str, value) -> RunConfig:
    """The configuration of one (mechanism, value) setting on top of ``base`` (no snapshots)."""
    return base.with_mechanisms(**{mechanism: value}).replace(snapshot_epochs=())


def mechanism_sweep(base: RunConfig, mechanism: str, grid, seed: int = 0, store=None) -> tuple[list[dict], int]:
    """Rows of :func:`mia_utils.report.result_row` for every value of ``mechanism`` in ``grid``,
    and how many runs were trained now (the rest came from the store). Early stopping reads the
    epochs from snapshots of one run of ``base``."""
    if mechanism == "early_stopping":
        sweep = experiment.early_stopping_sweep(base, grid, store)
        return [report.result_row(mechanism, epoch, outputs, seed=seed) for epoch, outputs in sweep.items()], 0
    rows, trained = [], 0
    for value in grid:
        run = experiment.run(setting_config(base, mechanism, value), store)
        trained += not run.from_store
        row = report.result_row(mechanism, value, run.outputs, seed=seed)
        row.update({f"fact_{k}": v for k, v in run.provenance.get("mechanisms", {}).items()})
        rows.append(row)
        log.info("%s = %g: accuracy %.3f, Adv_Yeom %.3f", mechanism, value, row["test_acc"], row["adv_yeom"])
    return rows, trained


def regularization_sweep(profile: Profile, dataset: str, mechanisms, seed: int = 0, store=None):
    """The baseline row and a DataFrame of every (mechanism, value) of the profile's grids.
    Returns ``(baseline_row, rows, trained_now)``."""
    base = profile.base_config(dataset, seed=seed)
    baseline = report.result_row("baseline", None, experiment.run(base, store).outputs, seed=seed)
    rows, trained = [], 0
    for mechanism in mechanisms:
        part, count = mechanism_sweep(base, mechanism, profile.grids[mechanism], seed, store)
        rows += part
        trained += count
    return baseline, pd.DataFrame(rows), trained
