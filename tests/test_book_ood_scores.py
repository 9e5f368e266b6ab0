"""Chapter 08's page functions (mia_utils.book.ood_scores): results over seeds, the table, the figures and
the glued values, on small synthetic per-seed measurements (nothing trains)."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from IPython.display import Markdown
from matplotlib.figure import Figure

from mia_utils.attacks import ood
from mia_utils.book import ood_scores

MAP, TEMPERATURE, LAPLACE, SMOOTHING = ood_scores.OOD_VARIANTS
N_BOOTSTRAP = 200  # the rank correlation's bootstrap: fewer replicates than the page's, for speed

#: The page's glue names, in the order the page glues them.
GLUE_NAMES = ["n_seeds", "f08_ood_verdict", "f08_ood_text", "f08_ood_sets", "f08_tradeoff_verdict",
              "f08_tradeoff_text", "map_mean_ood_fpr", "map_test_fpr", "map_worst_set", "map_worst_fpr",
              "map_advantage", "least_name", "least_mean_ood_fpr", "least_advantage", "temperature",
              "temperature_rho", "smoothing_grid", "smoothing_chosen"]


def seed_table(shift: float) -> pd.DataFrame:
    """One seed's table: version i's OOD rates are 0.1 * (set index + 1) / (i + 1) + shift (the last
    version is fooled least), its advantage 0.1 * (i + 1) + shift, the test false-positive rate 0.05."""
    rows = {}
    for i, variant in enumerate(ood_scores.OOD_VARIANTS):
        rows[variant] = {"threshold": 0.9, "tpr": 0.15, "fpr": 0.05, "advantage": 0.1 * (i + 1) + shift, "auc": 0.6,
                         **{f"fpr_{k}": 0.1 * (j + 1) / (i + 1) + shift for j, k in enumerate(ood.OOD_SETS)},
                         "validation_ece": 0.02}
    return pd.DataFrame(rows).T.loc[list(ood_scores.OOD_VARIANTS)]


def fake_seed(seed: int, shift: float = 0.0) -> ood_scores.OodSeed:
    images = {k: torch.full((2, 1, 4, 4), 40 * i, dtype=torch.uint8) for i, k in enumerate(ood.OOD_SETS)}
    return ood_scores.OodSeed(seed, seed_table(shift), 1.5 + 0.1 * seed, images, 200, 100, smoothing=0.1,
                              smoothing_eces={0.1: 0.02, 0.5: 0.08}, temperature_rank_correlation=0.99)


@pytest.fixture
def results() -> ood_scores.OodChapter:
    per_seed = [fake_seed(s, 0.01 * s) for s in range(3)]
    return ood_scores.OodChapter(per_seed, ood_scores.ood_summary(per_seed), (0.1, 0.5))


def test_variant_label_and_chapter_sizes(results):
    assert [ood_scores.variant_label(v) for v in ood_scores.OOD_VARIANTS] == [
        MAP, TEMPERATURE, LAPLACE, "label smoothing (α by validation ECE)"]
    assert (results.n_ood, results.n_test) == (200, 100)
    assert set(ood_scores.OOD_TITLES) == set(ood.OOD_SETS)


def test_ood_chapter_runs_every_seed_on_one_dataset(monkeypatch):
    calls = []

    def experiment(profile, seed, n_ood, store, data):
        calls.append((seed, n_ood, store, data))
        return fake_seed(seed)

    monkeypatch.setattr(ood_scores, "ood_experiment", experiment)
    profile, data = SimpleNamespace(grids={"label_smoothing": [0.1, 0.5]}), object()
    chapter = ood_scores.ood_chapter(profile, (4, 5), 30, store="store", data=data)
    assert calls == [(4, 30, "store", data), (5, 30, "store", data)]
    assert [r.seed for r in chapter.per_seed] == [4, 5] and chapter.smoothing_grid == (0.1, 0.5)
    assert list(chapter.summary.index) == list(ood_scores.OOD_VARIANTS)


def test_summary_table_rows_columns_and_cells(results):
    table = ood_scores.summary_table(results.summary)
    assert table.index.name == "measure"
    assert list(table.index) == ["advantage (%)", "AUC (%)", "ECE, validation (%)", "FPR, test non-members (%)",
                                 "FPR, MNIST digits (%)", "FPR, shuffled pixels (%)", "FPR, inverted (%)",
                                 "FPR, uniform noise (%)"]
    assert list(table.columns) == [ood_scores.variant_label(v) for v in ood_scores.OOD_VARIANTS]
    assert table.loc["AUC (%)", MAP] == "60.0 [60.0, 60.0]"  # the same on every seed: a zero-width interval
    assert table.loc["advantage (%)", TEMPERATURE].startswith("21.0 [")  # mean of 0.20, 0.21, 0.22


def test_flagged_shares_and_tradeoff_points(results):
    shares = ood_scores.flagged_shares(results.per_seed)
    assert list(shares.columns) == ["seed", "model", "inputs", "flagged as members (%)"]
    assert len(shares) == 3 * len(ood_scores.OOD_VARIANTS) * (1 + len(ood.OOD_SETS))
    assert list(shares["inputs"][:5]) == ["test non-members", "MNIST digits", "shuffled pixels", "inverted",
                                          "uniform noise"]
    row = shares[(shares.seed == 2) & (shares.model == LAPLACE) & (shares.inputs == "inverted")]
    assert row["flagged as members (%)"].item() == pytest.approx(100 * (0.3 / 3 + 0.02))

    points = ood_scores.tradeoff_points(results.per_seed)
    assert list(points.columns) == ["seed", "model", "mean OOD FPR (%)", "advantage (%)"]
    assert len(points) == 3 * len(ood_scores.OOD_VARIANTS)
    first = points.iloc[0]
    assert (first["seed"], first["model"]) == (0, MAP)
    assert first["mean OOD FPR (%)"] == pytest.approx(25.0) and first["advantage (%)"] == pytest.approx(10.0)


def test_figures(results):
    examples = ood_scores.ood_examples_figure(results.per_seed[0].ood_images)
    assert isinstance(examples, Figure)
    assert [ax.get_title() for ax in examples.axes] == [ood_scores.OOD_TITLES[k] for k in ood.OOD_SETS]
    one = ood_scores.ood_examples_figure({"uniform_noise": torch.zeros(1, 1, 3, 3, dtype=torch.uint8)})
    assert len(one.axes) == 1

    bars = ood_scores.ood_fpr_figure(results.per_seed)
    ax = bars.axes[0]
    assert ax.get_ylabel() == "share called a member (%), mean over seeds"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == [ood_scores.variant_label(v)
                                                                   for v in ood_scores.OOD_VARIANTS]
    tradeoff = ood_scores.tradeoff_figure(results.per_seed)
    assert tradeoff.axes[0].get_xlabel() == "mean false-positive rate on the OOD sets (%)"
    assert len(tradeoff.axes[0].collections[0].get_offsets()) == 3 * len(ood_scores.OOD_VARIANTS)
    for fig in (examples, one, bars, tradeoff):
        plt.close(fig)


def test_ood_findings(results):
    found = ood_scores.ood_findings(results.per_seed, bootstrap_seed=0, n_bootstrap=N_BOOTSTRAP)
    assert list(found.per_set) == list(ood.OOD_SETS)
    assert found.per_set["permuted"].claim.startswith("OOD set 'shuffled pixels'")
    # the uncalibrated model flags 25-27 % of the OOD inputs against 5 % of the test non-members
    assert found.pooled.estimate.mean == pytest.approx(np.mean([0.25, 0.26, 0.27]) - 0.05)
    assert "4 per seed, 3 seeds" in found.tradeoff.text
    # versions fooled less leak more, by construction: a strongly negative rank correlation
    assert found.tradeoff.estimate.mean < -0.5


def test_key_values(results):
    values = ood_scores.key_values(results, bootstrap_seed=0, n_bootstrap=N_BOOTSTRAP)
    assert list(values) == GLUE_NAMES
    assert values["n_seeds"] == 3
    assert values["map_worst_set"] == "uniform noise"  # the last set has the highest rates
    assert values["map_worst_fpr"].startswith("41.0 [")
    assert values["map_test_fpr"] == "5.0 [5.0, 5.0]"
    assert values["least_name"] == "label smoothing (α by validation ECE)"
    assert values["least_advantage"].startswith("41.0 [")
    assert values["temperature"].startswith("1.60 [")
    assert values["temperature_rho"] == "0.990 [0.990, 0.990]"
    assert values["smoothing_grid"] == "0.1, 0.5"
    assert values["smoothing_chosen"] == "0.1 (seed 0), 0.1 (seed 1), 0.1 (seed 2)"
    assert isinstance(values["f08_ood_sets"], Markdown)
    assert values["f08_ood_sets"].data.count("\n- ") == len(ood.OOD_SETS) - 1
    found = ood_scores.ood_findings(results.per_seed, n_bootstrap=N_BOOTSTRAP)
    assert (values["f08_ood_verdict"], values["f08_tradeoff_text"]) == (found.pooled.verdict, found.tradeoff.text)
