"""Chapter 06's page functions (mia_utils.book.generalization): its populations, table, figure,
correlations, glued values and the augmented-query comparison, on synthetic population rows
(population_lira replaced by a fake, so nothing trains)."""

import math

import matplotlib
import pandas as pd
import pytest

from mia_utils.attacks.evidence import HOLDS
from mia_utils.book import generalization
from mia_utils.book.profiles import get_profile

matplotlib.use("Agg")

PARAMS = {"profile": "smoke", "datasets": ["fmnist"], "seed": 0, "shadow_models": 4}

#: The page's glued names, in the order the page glues them.
KEY_VALUES = ["lead_dataset", "n_points", "n_shadows", "n_shadows_per_target", "shadow_power", "n_eval", "judged_on",
              "f06_predictor_claim", "f06_predictor_verdict", "f06_predictor_text", "f06_auc_claim",
              "f06_auc_verdict", "f06_auc_text", "f06_combination_claim", "f06_combination_verdict",
              "f06_combination_text", "f06_relative", "baseline_tpr1", "baseline_tpr01", "baseline_gap",
              "combined_acc", "baseline_acc", "median_tpr1", "fp_at_01"]


def _row(model: int, epoch: int, crop: float, last: int, n_nonmembers: int, queries: int = 1) -> dict:
    """One population_lira row: cropping and stopping early lower the TPR and the gap; more queries raise it."""
    gap = {0: 0.10, 4: 0.03, 12: 0.07}[int(crop)] * epoch / last  # no two configurations share a gap
    tpr = gap + 0.002 * model + 0.01 * (queries > 1)
    test_acc = 0.85 - 0.01 * (crop > 0) - 0.002 * model
    train_acc = test_acc + gap
    row = {"model": model, "epoch": epoch, "train_acc": train_acc, "test_acc": test_acc, "gap": train_acc - test_acc,
           "n_nonmembers": n_nonmembers, "queries": queries}
    for key, value in (("auc", 0.5 + tpr), ("tpr_at_0.1%_fpr", math.nan), ("tpr_at_1%_fpr", tpr),
                       ("advantage", tpr / 2)):
        row[key], row[f"{key}_std"] = value, (math.nan if math.isnan(value) else 0.004)
    return row


class FakeLira:
    """Stands in for population_lira: records its calls and returns :func:`_row` rows."""

    def __init__(self, n_nonmembers: int = 2000):
        self.calls, self.n_nonmembers = [], n_nonmembers

    def __call__(self, config, count, epochs, store=None, n_bootstrap=200, seed=0, augmented=False):
        crop = dict(config.mechanisms).get("random_crop", 0)
        self.calls.append({"crop": crop, "count": count, "epochs": list(epochs), "n_bootstrap": n_bootstrap,
                           "seed": seed, "augmented": augmented})
        return [_row(model, epoch, crop, config.epochs, self.n_nonmembers, 9 if augmented and crop else 1)
                for epoch in epochs for model in range(count)]


@pytest.fixture
def fake_lira(monkeypatch):
    fake = FakeLira()
    monkeypatch.setattr(generalization, "population_lira", fake)
    return fake


def test_chapter_populations_runs_every_crop_and_epoch(fake_lira):
    profile = get_profile("smoke")
    populations = generalization.chapter_populations(profile, PARAMS)
    assert populations.crops == (0, 12) and populations.n_shadows == 4 and populations.seed == 0
    assert [(c["crop"], c["epochs"], c["count"], c["n_bootstrap"], c["augmented"]) for c in fake_lira.calls] == \
        [(0, [1, 2], 4, profile.bootstrap, False), (12.0, [1, 2], 4, profile.bootstrap, False)]
    assert len(populations.points) == 2 * 2 * 4  # crops x epochs x models
    assert set(populations.points["dataset"]) == {"Fashion-MNIST"} and set(populations.points["key"]) == {"fmnist"}
    assert populations.lead_key == "fmnist" and populations.lead_title == "Fashion-MNIST"
    assert len(populations.lead_points) == 16 and populations.n_eval == 2000
    means = populations.lead_means
    assert list(zip(means["crop"], means["epoch"])) == [(0, 1), (0, 2), (12, 1), (12, 2)]
    assert means["models"].tolist() == [4] * 4
    assert means.iloc[1]["tpr_at_1%_fpr"] == pytest.approx(0.10 + 0.003)  # crop 0, last epoch: mean over models
    # the shadow_models parameter, when set, is the population size
    assert generalization.chapter_populations(profile, dict(PARAMS, shadow_models=6)).n_shadows == 6


def _populations(n_nonmembers: int = 2000, datasets=("fmnist",)) -> generalization.Populations:
    fake, profile, rows = FakeLira(n_nonmembers), get_profile("smoke"), []
    for key in datasets:
        for crop in (0, 4, 12):
            config = generalization.crop_population_config(profile, "fmnist", 0, crop)
            rows += [{"dataset": key.upper(), "key": key, "crop": crop, **row} for row in fake(config, 4, [1, 2])]
    points = pd.DataFrame(rows)
    means = {key: generalization.population_means(points[points["key"] == key]) for key in datasets}
    return generalization.Populations(points, means, 4, (0, 4, 12), 0)


def test_populations_table_stacks_the_datasets():
    table = generalization.populations_table(_populations(datasets=("fmnist", "cifar10")))
    assert table.index.names == ["dataset", "crop c", "epoch E"]
    assert list(table.index.get_level_values(0).unique()) == ["Fashion-MNIST", "CIFAR-10"]
    assert len(table) == 2 * 3 * 2
    assert list(table.columns) == list(generalization.POPULATION_COLUMNS.values())
    assert table.loc[("Fashion-MNIST", 0, 2), "TPR @ 1 % FPR (%)"].startswith("10.30 [")


def test_crop_label():
    assert generalization.crop_label(0) == "no augmentation"
    assert generalization.crop_label(4.0) == "crop c = 4"


@pytest.mark.parametrize("n_nonmembers, axis", [(2000, "LiRA TPR at 1 % FPR (%)"), (92, "LiRA AUC (%)")])
def test_lira_generalization_figure_plots_the_judged_measure(n_nonmembers, axis):
    import matplotlib.pyplot as plt
    from matplotlib.collections import PathCollection

    figure = generalization.lira_generalization_figure(_populations(n_nonmembers).lead_means)
    try:
        left, right = figure.axes[:2]
        assert left.get_ylabel() == axis and right.get_ylabel() == axis
        assert left.get_xlabel() == "train-test accuracy gap (percentage points)"
        assert right.get_xlabel() == "test accuracy (%)"
        assert left.get_legend() is None and right.get_legend() is not None
        points = [c for c in left.collections if isinstance(c, PathCollection)]
        assert sum(len(c.get_offsets()) for c in points) == 6  # one per (crop, epoch)
    finally:
        plt.close(figure)


def test_correlation_table_rows_and_unresolved_rates():
    table = generalization.correlation_table(_populations().lead_means, seed=0, n_bootstrap=200)
    assert table.index.names == ["attack success", "predictor"]
    assert list(table.columns) == ["Spearman ρ [95 % interval]"]
    assert len(table) == 9
    assert list(table.index.get_level_values(1)[:3]) == ["train-test gap", "test accuracy",
                                                         "|ρ gap| − |ρ test accuracy|"]
    column = table["Spearman ρ [95 % interval]"]
    # the 0.1 % rate is NaN everywhere: not resolvable, named with the evaluation set's size
    assert (column.loc["TPR @ 0.1 % FPR"] == "not resolvable at n = 2,000 non-members per side").all()
    assert column.loc[("TPR @ 1 % FPR", "train-test gap")].startswith("1.00")  # the TPR follows the gap exactly


def test_key_values_names_order_and_values():
    populations = _populations()
    found = generalization.generalization_findings(populations.lead_points, n_bootstrap=200)
    values = generalization.key_values(populations, found)
    assert list(values) == KEY_VALUES
    assert values["lead_dataset"] == "Fashion-MNIST" and values["n_points"] == 6
    assert values["n_shadows"] == 4 and values["n_shadows_per_target"] == 3
    assert values["shadow_power"].startswith("underpowered: 3 shadow models")
    assert values["n_eval"] == "2,000" and values["judged_on"] == "LiRA's TPR at 1 % FPR"
    assert values["f06_combination_verdict"] == found.combination.verdict == HOLDS
    assert values["f06_relative"].startswith("Relative to the baseline's TPR, the change is ")
    assert values["baseline_tpr1"].startswith("10.30 [") and values["baseline_tpr1"].endswith(" %")
    assert values["baseline_tpr01"] == "not resolvable at n = 2,000 non-members per side"
    assert values["baseline_gap"].startswith("10.0 [") and values["baseline_gap"].endswith(" points")
    assert values["fp_at_01"] == "at most 1 false positive"
    # too few non-members for 1 % FPR: the AUC is judged, and no relative change is given
    small = _populations(92)
    values = generalization.key_values(small, generalization.generalization_findings(small.lead_points,
                                                                                    n_bootstrap=200))
    assert values["judged_on"].startswith("LiRA's AUC (LiRA's TPR at 1 % FPR is not resolvable at n = 92")
    assert values["f06_relative"].startswith("A relative change is not meaningful for the AUC")
    assert values["fp_at_01"] == "not a single false positive, so that rate is not resolvable"


def test_findings_table():
    populations = _populations()
    found = generalization.generalization_findings(populations.lead_points, n_bootstrap=200)
    table = generalization.findings_table(found)
    assert table.index.name == "claim" and list(table.columns) == ["verdict", "evidence"]
    assert list(table.index) == [found.predictor.claim, found.auc.claim, found.combination.claim]
    assert table.loc[found.combination.claim, "verdict"] == HOLDS


def test_augmented_comparison_queries_the_cropped_populations(fake_lira):
    populations = _populations()
    found = generalization.generalization_findings(populations.lead_points, n_bootstrap=200)
    assert (found.combined["crop"], found.combined["epoch"]) == (4, 1)
    comparison = generalization.augmented_comparison(get_profile("smoke"), populations, found)
    # the baseline is not queried again; the chosen crop also at its stopping epoch
    assert [(c["crop"], c["epochs"], c["augmented"]) for c in fake_lira.calls] == [(4.0, [1, 2], True),
                                                                                   (12.0, [2], True)]
    assert comparison.n_queries == 9 and len(comparison.points) == 3 * 4
    values = comparison.key_values()
    assert list(values) == ["f06_aug_verdict", "f06_aug_text", "n_queries"] and values["n_queries"] == 9
    # the augmented queries raise the chosen TPR by 1 point, still far below the baseline's 10.3 %
    assert comparison.finding.verdict == HOLDS and comparison.finding.claim == found.combination.claim
    assert comparison.finding.estimate.mean == pytest.approx(0.03 * 0.5 + 0.01 - 0.10)
    assert list(comparison.table.index) == [(4, 1), (4, 2), (12, 2)]
    assert comparison.table.loc[(4, 1), ("TPR at 1 % FPR (%)", "difference (pp)")].startswith("+1.00 [")
