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
              "temperature_rho", "smoothing_grid", "smoothing_chosen", "f08_generated_verdict", "f08_generated_text",
              "map_generated_fpr", "map_tpr", "generated_lowest_name", "generated_lowest_fpr", "generated_highest_name",
              "generated_highest_fpr", "generator_images", "generator_epochs", "generator_width", "generator_latent",
              "generator_seconds", "n_generated"]
GENERATED = f"fpr_{ood_scores.GENERATED}"


def seed_table(shift: float) -> pd.DataFrame:
    """One seed's table: version i's OOD rates are 0.1 * (set index + 1) / (i + 1) + shift (the last
    version is fooled least), its advantage 0.1 * (i + 1) + shift, the test false-positive rate 0.05, the
    rate on generated images 0.2 - 0.04 * i + shift (the first version flags most of them)."""
    rows = {}
    for i, variant in enumerate(ood_scores.OOD_VARIANTS):
        rows[variant] = {"threshold": 0.9, "tpr": 0.15, "fpr": 0.05, "advantage": 0.1 * (i + 1) + shift, "auc": 0.6,
                         **{f"fpr_{k}": 0.1 * (j + 1) / (i + 1) + shift for j, k in enumerate(ood.OOD_SETS)},
                         GENERATED: 0.2 - 0.04 * i + shift, "validation_ece": 0.02}
    return pd.DataFrame(rows).T.loc[list(ood_scores.OOD_VARIANTS)]


def fake_seed(seed: int, shift: float = 0.0) -> ood_scores.OodSeed:
    images = {k: torch.full((2, 1, 4, 4), 40 * i, dtype=torch.uint8) for i, k in enumerate(ood.OOD_SETS)}
    generator = {"key": f"gan-{seed}", "n_images": 300, "epochs": 2, "width": 8, "latent": 4,
                 "train_seconds": 10.0 + seed, "from_store": False, "history": []}
    return ood_scores.OodSeed(seed, seed_table(shift), 1.5 + 0.1 * seed, images, 200, 100, smoothing=0.1,
                              smoothing_eces={0.1: 0.02, 0.5: 0.08}, temperature_rank_correlation=0.99,
                              generated_images=torch.full((50, 1, 4, 4), 100 + seed, dtype=torch.uint8),
                              generator=generator)


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
                                 "FPR, uniform noise (%)", "FPR, GAN images (%)"]
    assert table.loc["FPR, GAN images (%)", MAP].startswith("21.0 [")  # 0.20, 0.21, 0.22
    assert list(table.columns) == [ood_scores.variant_label(v) for v in ood_scores.OOD_VARIANTS]
    assert table.loc["AUC (%)", MAP] == "60.0 [60.0, 60.0]"  # the same on every seed: a zero-width interval
    assert table.loc["advantage (%)", TEMPERATURE].startswith("21.0 [")  # mean of 0.20, 0.21, 0.22


def test_flagged_shares_and_tradeoff_points(results):
    shares = ood_scores.flagged_shares(results.per_seed)
    assert list(shares.columns) == ["seed", "model", "inputs", "flagged as members (%)"]
    assert len(shares) == 3 * len(ood_scores.OOD_VARIANTS) * (2 + len(ood.OOD_SETS))
    assert list(shares["inputs"][:6]) == ["test non-members", "MNIST digits", "shuffled pixels", "inverted",
                                          "uniform noise", "GAN images"]
    generated = shares[(shares.seed == 1) & (shares.model == TEMPERATURE) & (shares.inputs == "GAN images")]
    assert generated["flagged as members (%)"].item() == pytest.approx(100 * (0.2 - 0.04 + 0.01))
    # seeds without generated images: no such bars
    bare = [ood_scores.OodSeed(s, seed_table(0.0).drop(columns=GENERATED), 1.0, {}, 200, 100) for s in range(2)]
    assert "GAN images" not in set(ood_scores.flagged_shares(bare)["inputs"])
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
    grid = ood_scores.generated_grid_figure(results.per_seed[0].generated_images, rows=2, columns=5)
    assert len(grid.axes) == 10 and all(len(ax.images) == 1 for ax in grid.axes)
    assert grid.axes[0].images[0].get_array()[0, 0] == 100  # the first seed's images, grey levels as given
    few = ood_scores.generated_grid_figure(torch.zeros(3, 1, 4, 4, dtype=torch.uint8), rows=4, columns=5)
    assert len(few.axes) == 5 and sum(len(ax.images) for ax in few.axes) == 3  # one row, three images
    with pytest.raises(ValueError, match="images: need at least one image"):
        ood_scores.generated_grid_figure(torch.zeros(0, 1, 4, 4, dtype=torch.uint8))
    for fig in (examples, one, bars, tradeoff, grid, few):
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
    # the uncalibrated model flags 20-22 % of the generated images against 5 % of the test non-members
    assert found.generated.claim.startswith("the uncalibrated attack calls images generated by a GAN")
    assert found.generated.estimate.mean == pytest.approx(0.21 - 0.05)
    assert found.generated.verdict == "holds" and "generated images" in found.generated.text
    # the mean OOD rate and the trade-off do not read the generated images
    assert ood_scores.ood_mean_fpr(results.per_seed[0].table, MAP) == pytest.approx(0.25)


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
    assert (values["f08_generated_verdict"], values["f08_generated_text"]) == (found.generated.verdict,
                                                                               found.generated.text)
    assert values["map_generated_fpr"].startswith("21.0 [") and values["map_tpr"] == "15.0 [15.0, 15.0]"
    assert (values["generated_lowest_name"], values["generated_highest_name"]) == (
        "label smoothing (α by validation ECE)", MAP)
    assert values["generated_lowest_fpr"].startswith("9.0 [")  # 0.2 - 0.12 + 0.01
    assert (values["generator_images"], values["generator_epochs"], values["generator_width"],
            values["generator_latent"], values["generator_seconds"], values["n_generated"]) == ("300", 2, 8, 4, "11",
                                                                                                 "200")
    # seeds without generated images cannot fill the page's generated values
    bare = [ood_scores.OodSeed(s, seed_table(0.0).drop(columns=GENERATED), 1.0, {}, 200, 100) for s in range(3)]
    with pytest.raises(ValueError, match="results: every seed needs generated images"):
        ood_scores.key_values(ood_scores.OodChapter(bare, ood_scores.ood_summary(bare), (0.1,)),
                              n_bootstrap=N_BOOTSTRAP)


@pytest.mark.slow
def test_the_chapter_on_the_smoke_profile_measures_generated_images(store):
    """Chapter 08 on one smoke seed, trained here: every version's rate on the generated images is
    measured beside the OOD sets', the page's generated values come from it (the one-seed interval), and
    executing it again reads everything back (the generator included) and gives the same table."""
    from mia_utils.book.profiles import get_profile
    from mia_utils.data import load_dataset

    profile, data = get_profile("smoke"), load_dataset("fmnist")
    chapter = ood_scores.ood_chapter(profile, (1,), 0, store, data)
    (first,) = chapter.per_seed
    n_eval = profile.base_config("fmnist", seed=1).n_eval
    assert first.generated_images.dtype == torch.uint8 and first.generated_images.shape == (n_eval, 1, 28, 28)
    rates = first.table[GENERATED]
    assert list(rates.index) == list(ood_scores.OOD_VARIANTS) and rates.between(0, 1).all()
    # the rate is the share of generated images at or above the threshold: a multiple of 1 / n_eval
    assert np.allclose(rates * n_eval, np.round(rates * n_eval))
    assert not first.generator["from_store"] and first.generator["n_images"] == ood_scores.GENERATORS["smoke"].n_images
    assert [k for k in store.keys() if k.startswith("gan-")] == [first.generator["key"]]
    values = ood_scores.key_values(chapter, n_bootstrap=N_BOOTSTRAP)
    assert values["map_generated_fpr"] == chapter.summary.loc[MAP, GENERATED].format()
    assert "Clopper-Pearson" in values["f08_generated_text"]  # one seed: the two-binomial interval
    expected = ood_scores.generated_exceeds_test(rates[MAP], n_eval, first.table.loc[MAP, "fpr"], n_eval)
    assert values["f08_generated_verdict"] == expected.verdict

    again = ood_scores.ood_chapter(profile, (1,), 0, store, data)
    assert again.per_seed[0].generator["from_store"]
    pd.testing.assert_frame_equal(first.table, again.per_seed[0].table)
    assert torch.equal(first.generated_images, again.per_seed[0].generated_images)
    assert [k for k in store.keys() if k.startswith("gan-")] == [first.generator["key"]]
