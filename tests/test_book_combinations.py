"""Chapter 04's module (mia_utils.book.combinations) on synthetic settings: the chosen values, the
lines it prints, Section 5's glued values, the early-stopping table and the figure's points."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
from test_book_regularization import SEEDS, sweep_result, synthetic  # noqa: E402

from mia_utils.attacks.evidence import HOLDS, INCONCLUSIVE  # noqa: E402
from mia_utils.book import combinations, findings  # noqa: E402


@pytest.fixture(scope="module")
def result():
    return sweep_result()


def combo(base, value, rad15_yeom, pair_yeom, early_accs):
    """A base at ``value`` with its RAD<15% single (Adv_Yeom ``rad15_yeom``, the base turned up), one
    pair with dropout (Adv_Yeom ``pair_yeom``) and early stops E -> test accuracy ``early_accs``."""
    singles = {"rad5": synthetic(base, value, 0.87, 0.06, 0.05),
               "rad15": synthetic(base, value * 2, 0.84, rad15_yeom, 0.05)}
    pairs = {"dropout": synthetic("dropout", 0.5, 0.86, pair_yeom, 0.05)}
    early = {e: synthetic("early_stopping", e, acc, 0.05, 0.05) for e, acc in early_accs.items()}
    return findings.Combinations(base, value, singles, pairs, early, turned_up=singles["rad15"])


def test_chosen_values_show_each_mechanisms_value_and_drop_by_scenario(result):
    table = combinations.chosen_values(result)
    assert table.index.name == "mechanism" and "random_crop" in table.index
    assert set(table.columns.get_level_values(0)) == {"value", "rad_pct"}
    assert table.loc["random_crop", ("value", "rad5")] == 2
    assert table.loc["random_crop", ("rad_pct", "rad5")] == pytest.approx(100 * 0.005 / 0.88)


def test_base_combinations_asks_for_each_base_in_order(monkeypatch, result):
    monkeypatch.setattr(findings, "combinations", lambda profile, reg, base, store=None: f"{base} on {reg.dataset}")
    assert combinations.base_combinations("profile", result) == {"distillation": "distillation on fmnist",
                                                                 "random_crop": "random_crop on fmnist"}


def test_a_base_line_gives_its_value_or_why_it_is_skipped(result):
    assert combinations.combination_line(result, "distillation", None) == (
        "Fashion-MNIST: distillation has no setting within 5 % relative accuracy drop; skipped")
    line = combinations.combination_line(result, "random_crop", combo("random_crop", 2, 0.06, 0.02, {}))
    assert line == "Fashion-MNIST: random_crop = 2 (0 runs trained now)"


def test_key_values_without_a_distillation_base(result):
    judged = combinations.section5(result, {"distillation": None,
                                            "random_crop": combo("random_crop", 2, 0.06, 0.02, {5: 0.8})})
    values = combinations.key_values(judged)
    assert list(values) == ["lead_dataset", "n_seeds", "f7_verdict", "f7_ours", "crop_pair_verdict",
                            "crop_pair_ours", "early_epochs", "early_summary"]
    assert values["lead_dataset"] == "Fashion-MNIST" and values["n_seeds"] == len(SEEDS)
    assert values["f7_verdict"] == INCONCLUSIVE and values["f7_ours"] == "the base has no RAD<5% setting to pair"
    assert values["crop_pair_verdict"] == HOLDS  # the pair's 2 % is well below the RAD<15% single's 6 %
    assert values["crop_pair_ours"].startswith("random_crop = 2 + dropout = 0.5: Adv_Yeom 2.0 [")
    assert values["early_epochs"] == "none" and values["early_summary"] == combinations.NO_EARLY_COMPARISON


def test_key_values_compare_early_stopping_epoch_by_epoch(result):
    distillation = combo("distillation", 10, 0.06, 0.08, {5: 0.85, 10: 0.86})
    cropping = combo("random_crop", 2, 0.06, 0.02, {5: 0.70, 10: 0.70})
    judged = combinations.section5(result, {"distillation": distillation, "random_crop": cropping})
    values = combinations.key_values(judged)
    assert values["early_epochs"] == "5, 10"
    assert values["early_summary"].startswith("E = 5: holds (+15.0 [") and "; E = 10: holds (+16.0 [" in values["early_summary"]
    table = combinations.early_table(judged.early)
    assert table.index.name == "E" and list(table.index) == [5, 10] and "estimate" not in table.columns
    assert list(table["verdict"]) == [HOLDS, HOLDS]


def test_combination_points_are_changes_against_the_baseline_in_points(result):
    combos = {"distillation": None, "random_crop": combo("random_crop", 2, 0.06, 0.02, {5: 0.70})}
    points = combinations.combination_points(combos, result.baseline)
    assert list(points.columns) == combinations.POINT_COLUMNS
    assert list(points["kind"]) == ["single", "single", "pair", "early stopping"]
    assert points["accuracy change (pp)"].tolist() == pytest.approx([-1.0, -4.0, -2.0, -18.0])
    assert points["Adv_Yeom change (pp)"].tolist() == pytest.approx([-14.0, -14.0, -18.0, -15.0])
    assert combinations.combination_points({"distillation": None}, result.baseline).empty


def test_combinations_figure_draws_the_points_and_the_zero_lines(result):
    combos = {"random_crop": combo("random_crop", 2, 0.06, 0.02, {5: 0.70})}
    for given in (combos, {"distillation": None}):
        figure = combinations.combinations_figure(given, result.baseline)
        try:
            ax = figure.axes[0]
            assert ax.get_xlabel() == "accuracy change against the baseline (points, seed mean)"
            assert sum(len(c.get_offsets()) for c in ax.collections) == (4 if given is combos else 0)
            assert any(list(line.get_ydata()) == [0, 0] for line in ax.lines)  # the zero line of the y axis
        finally:
            plt.close(figure)
