import math

import pandas as pd
import pytest

from mia_utils.book import report

BASELINE = {"test_acc": 0.90, "adv_yeom": 0.10, "adv_salem": 0.08}


def rows():
    return pd.DataFrame([
        # mechanism, value, test_acc, adv_yeom, adv_salem
        ("crop", 1, 0.91, 0.06, 0.05),   # max accuracy
        ("crop", 4, 0.87, 0.02, 0.00),   # RAD 3.3 %: smallest advantage within 5 %
        ("crop", 8, 0.80, 0.00, 0.00),   # RAD 11.1 %: smallest within 15 %
        ("crop", 16, 0.70, -0.01, 0.0),  # RAD 22 %: outside both
        ("smooth", 0.1, 0.905, 0.12, 0.10),  # max, and an increase of both attacks
        ("smooth", 0.9, 0.89, 0.11, 0.09),
    ], columns=["mechanism", "value", "test_acc", "adv_yeom", "adv_salem"])


def test_the_three_scenarios_follow_the_papers_rules():
    table = report.select_scenarios(rows(), BASELINE).set_index(["mechanism", "scenario"])
    assert table.loc[("crop", "max"), "value"] == 1
    assert table.loc[("crop", "rad5"), "value"] == 4
    assert table.loc[("crop", "rad15"), "value"] == 8
    assert table.loc[("smooth", "max"), "value"] == 0.1
    assert table.loc[("smooth", "rad5"), "value"] == 0.9  # smaller advantage, RAD 1.1 %
    assert table.loc[("crop", "rad5"), "rad_pct"] == pytest.approx(100 * 0.03 / 0.9)
    assert table.loc[("crop", "rad5"), "d_acc_pct"] == pytest.approx(100 * (0.87 - 0.9) / 0.9)
    assert table.loc[("crop", "rad15"), "d_adv_yeom_pct"] == pytest.approx(-100.0)
    assert table.loc[("smooth", "max"), "d_adv_salem_pct"] == pytest.approx(25.0)


def test_a_scenario_nothing_satisfies_is_left_out():
    only_bad = pd.DataFrame([("noise", 0.2, 0.5, 0.0, 0.0)], columns=["mechanism", "value", "test_acc", "adv_yeom", "adv_salem"])
    table = report.select_scenarios(only_bad, BASELINE)
    assert list(table["scenario"]) == ["max"]


def test_settings_print_as_the_paper_writes_them():
    from mia_utils.defenses import number_text, setting_text

    assert [setting_text(n, v) for n, v in (("distillation", 2.0), ("label_smoothing", 0.01), ("weight_decay", 1e-4),
                                            ("dp_sgd", 10.0), ("early_stopping", 5), ("gaussian_noise", 0.025))] == [
        "T = 2", "α = 0.01", "λ = 1e-4", "σ_DP = 10", "E = 5", "σ = 0.025"]
    assert [number_text(v) for v in (2.5e-5, 0.001, 0.0, 0.5, 100.0)] == ["2.5e-5", "0.001", "0", "0.5", "100"]


def test_relative_change_and_its_undefined_case():
    assert report.relative_change(0.05, 0.10) == pytest.approx(-50.0)
    assert math.isnan(report.relative_change(0.05, 0.0))


def test_the_table_sits_beside_the_papers_values():
    from test_evidence import make_setting, results

    settings = [make_setting("random_crop", 4, 0.87, 0.02, 0.0), make_setting("random_crop", 1, 0.91, 0.06, 0.05)]
    both = results(settings, make_setting("baseline", None, 0.90, 0.10, 0.08))
    table, paper = report.scenario_table(both), report.paper_scenario_table(both)
    assert paper.loc[("random_crop", "RAD<5%"), "setting"] == "c = 4"
    assert paper.loc[("random_crop", "RAD<5%"), "ΔAdv_Yeom (%)"] == pytest.approx(-90.7)
    assert table.loc[("random_crop", "RAD<5%"), "setting"] == "c = 4"
    assert list(paper.index) == [i for i in table.index if i in paper.index]  # the same rows, in order


def test_reading_agreement_counts_cells_against_the_papers_signs():
    from test_evidence import make_setting, results

    settings = [make_setting("random_crop", 4, 0.87, 0.02, 0.0), make_setting("random_crop", 1, 0.91, 0.06, 0.05)]
    agreement = report.reading_agreement(results(settings, make_setting("baseline", None, 0.90, 0.20, 0.08)))
    assert list(agreement.index) == ["(a) clean loss", "(b) training objective"]
    # random_crop Max (c = 1) and RAD<5%/15% (c = 4) are all falls in the paper, and all clear falls here
    assert agreement.loc["(a) clean loss", "agrees"] == agreement.loc["(a) clean loss", "cells"] == 3
    assert "agrees in 3 of 3" in report.reading_summary(agreement)


def test_missing_columns_are_named():
    with pytest.raises(ValueError, match="adv_salem"):
        report.select_scenarios(rows().drop(columns=["adv_salem"]), BASELINE)


def test_low_fpr_text_prints_the_exact_interval_or_why_it_cannot():
    from types import SimpleNamespace

    from mia_utils.book.report import low_fpr_text

    resolvable = SimpleNamespace(resolvable=True, format=lambda digits, exact: f"1.25 [0.5, 2.0] ({digits}, {exact})")
    assert low_fpr_text(resolvable, 2000) == "1.25 [0.5, 2.0] (2, True) %"
    assert low_fpr_text(SimpleNamespace(resolvable=False), 1500) == "not resolvable at n = 1,500"


def test_the_readings_table_splits_into_two_narrow_views():
    from test_evidence import make_setting, results

    settings = [make_setting("random_crop", 4, 0.87, 0.02, 0.0), make_setting("random_crop", 1, 0.91, 0.06, 0.05)]
    readings = report.yeom_readings(results(settings, make_setting("baseline", None, 0.90, 0.10, 0.08)))
    advantage, signal = report.reading_views(readings)
    assert len(advantage.columns) + len(signal.columns) == len(readings.columns)
    assert sorted(advantage.columns) == sorted(["value", "Adv_Yeom (a) (%)", "Δ (a)", "(a) lowered?",
                                                "Adv_Yeom (b) (%)", "Δ (b)", "(b) lowered?"])
    assert "AUC (%)" in signal and set(signal.columns) <= set(readings.columns)
    assert len(advantage.columns) <= 7 and len(signal.columns) <= 7


def test_the_papers_table_6_folds_the_values_into_its_labels():
    table = report.paper_table6()
    assert table.index.names == ["base", "row"] and list(table.columns) == ["ΔAcc (%)", "ΔAdv_Yeom (%)", "ΔAdv_Salem (%)"]
    assert ("distillation, T = 50", "single_rad5") in table.index
    assert table.loc[("distillation, T = 50", "single_rad5"), "ΔAdv_Yeom (%)"] == pytest.approx(-68.6)
    assert any(row.startswith("+ random_crop (c = ") for _, row in table.index)
