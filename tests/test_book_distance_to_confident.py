"""Chapter 05's analysis (mia_utils.book.distance_to_confident) on hand-made DtC gaps and attack
results: the loading order, Tables 7 and 8 beside the paper, the attack table, Figure 1's points,
the figures and the glued values; no model is trained or measured."""

from __future__ import annotations

from types import SimpleNamespace

import matplotlib
import matplotlib.pyplot as plt
import pytest
import torch

from mia_utils.attacks.evidence import combine_seeds
from mia_utils.book import distance_to_confident as dtc
from mia_utils.book import findings, report
from mia_utils.book.findings import DtCResults, GapSetting
from mia_utils.book.replicated import Setting

matplotlib.use("Agg")

SEEDS = (0, 1)


def make_setting(mechanism, value, yeom, epsilon=None):
    evaluations = [{"adv_yeom": {"value": yeom + 0.02 * i, "variance": 1e-4}} for i in range(len(SEEDS))]
    facts = [{"dp_epsilon": epsilon * (1 + i)} if epsilon else {} for i in range(len(SEEDS))]
    return Setting(mechanism, value, SEEDS, evaluations, facts)


def measured(d, s, threshold=0.5):
    """One seed's RunDtC as the chapter reads it: D and S means (both definitions), the gap, the
    evaluation set's paper distances (two members at s, two non-members at d) and the threshold."""
    gap = {"nonmembers_mean": d, "members_mean": s, "nonmembers_mean_zero_floor": d - 1,
           "members_mean_zero_floor": s - 1, "gap": (d - s) / d}
    distances = torch.tensor([s, s, d, d], dtype=torch.float64)
    return SimpleNamespace(gap=gap, threshold=threshold, eval_is_member=torch.tensor([True, True, False, False]),
                           eval=SimpleNamespace(paper_distances=distances, step=0.001, max_steps=100))


def gaps(setting, values):
    """A GapSetting whose seed i has gap values[i] (D = 10, S = 10 (1 - gap))."""
    parts = [{"value": v, "variance": 1e-4} for v in values]
    return GapSetting(setting, parts, parts, [measured(10.0, 10.0 * (1 - v), threshold=0.5 + i)
                                               for i, v in enumerate(values)])


def make_chapter(per_side=5):
    baseline = make_setting("baseline", None, 0.20)
    rad15 = {"random_crop": gaps(make_setting("random_crop", 4, 0.01), [0.1, 0.12]),
             "made_up": gaps(make_setting("made_up", 1, 0.02), [0.05, 0.07])}
    dp_gaps = [gaps(make_setting("dp_sgd", 0.01, 0.10, epsilon=3000.0), [0.3, 0.32]),
               gaps(make_setting("dp_sgd", 10.0, 0.01, epsilon=0.2), [0.01, 0.03])]
    results = DtCResults("fmnist", gaps(baseline, [0.4, 0.44]), rad15, dp_gaps)
    reg = SimpleNamespace(baseline=baseline)
    return dtc.DtCChapter(SEEDS, per_side, {"fmnist": reg}, {"fmnist": [g.setting for g in dp_gaps]},
                          {"fmnist": results})


def test_samples_per_side_prefers_the_parameter_then_the_profile():
    assert dtc.samples_per_side(SimpleNamespace(dtc_samples=5)) == 5
    assert dtc.samples_per_side(SimpleNamespace(dtc_samples=5), 3) == 3
    assert dtc.samples_per_side(SimpleNamespace(dtc_samples=0)) is None


def test_load_chapter_reads_the_sweeps_then_measures_each_dataset(monkeypatch):
    calls = []
    monkeypatch.setattr(findings, "regularization_results",
                        lambda profile, dataset, seeds, store=None, confirm=True: calls.append(("reg", dataset, seeds))
                        or "reg")
    monkeypatch.setattr(findings, "dp_settings",
                        lambda profile, dataset, seeds, store=None: calls.append(("dp", dataset)) or ["dp"])
    monkeypatch.setattr(findings, "dtc_results",
                        lambda profile, reg, dp, per_side, store=None: calls.append(("dtc", reg, dp, per_side)) or "m")
    chapter = dtc.load_chapter(SimpleNamespace(dtc_f9_samples=0), ["fmnist", "cifar10"], [0, 1], 7)
    assert calls == [("reg", "fmnist", SEEDS), ("dp", "fmnist"), ("dtc", "reg", ["dp"], 7),
                     ("reg", "cifar10", SEEDS), ("dp", "cifar10"), ("dtc", "reg", ["dp"], 7)]
    assert chapter.lead == "fmnist" and chapter.per_side == 7 and chapter.dtc == {"fmnist": "m", "cifar10": "m"}
    assert chapter.f9_per_side is None  # 0: F9's three settings are measured on every sample


def test_table7_sets_the_papers_baseline_beside_ours():
    chapter = make_chapter()
    table = dtc.table7(chapter)
    assert list(table.index) == ["Fashion-MNIST"]
    assert list(table.columns) == ["DtC D", "DtC S", "gap (%)", "zero-floor D", "zero-floor S", "zero-floor gap (%)",
                                   "Adv_Yeom (%)", "paper D", "paper S", "paper gap (%)", "paper Adv_Yeom (%)"]
    row = table.loc["Fashion-MNIST"]
    assert (row["DtC D"], row["DtC S"]) == (10.0, 5.8)
    paper = report.published("table7_dtc_baselines").set_index("dataset").loc["fmnist"]
    assert (row["paper D"], row["paper gap (%)"]) == (paper["dtc_test"], paper["dtc_gap_pct"])
    assert row["Adv_Yeom (%)"] == chapter.regularization["fmnist"].baseline.estimate("adv_yeom").format()


def test_table8_adds_the_papers_values_where_it_reports_the_mechanism():
    table = dtc.table8(make_chapter())["fmnist"]
    assert list(table.index) == ["random_crop = 4", "made_up = 1"]
    paper = report.published("table8_dtc_regularized_rad15")
    crop = paper[(paper["dataset"] == "fmnist") & (paper["mechanism"] == "random_crop")].iloc[0]
    assert table.loc["random_crop = 4", "paper gap (%)"] == crop["dtc_gap_pct"]
    assert table.loc["random_crop = 4", "paper Adv_Yeom (%)"] == crop["adv_yeom_pct"]
    assert table.loc["made_up = 1", "paper gap (%)"] != table.loc["made_up = 1", "paper gap (%)"]  # NaN
    assert table.loc["random_crop = 4", "DtC S"] == pytest.approx(8.9)


def fake_attack(advantage, n=4):
    return SimpleNamespace(scores=list(range(n)), metrics={"advantage": SimpleNamespace(value=advantage, std=0.01),
                                                           "auc": SimpleNamespace(value=0.5 + advantage, std=0.02)})


def test_attack_table_combines_each_attack_over_the_baseline_seeds(monkeypatch):
    chapter = make_chapter()
    runs = [(SimpleNamespace(outputs={"seed": seed}, config=SimpleNamespace(seed=seed)), None) for seed in SEEDS]
    chapter.regularization["fmnist"] = SimpleNamespace(baseline=SimpleNamespace(runs=lambda store=None: runs))
    for i, m in enumerate(chapter.dtc["fmnist"].baseline.measured):
        m.attack = lambda n_bootstrap, seed, i=i: fake_attack(0.3 + 0.1 * i, n=2)
    monkeypatch.setattr(dtc.AttackInputs, "from_outputs", staticmethod(lambda outputs: outputs["seed"]))
    monkeypatch.setattr(dtc, "yeom", lambda inputs, n_bootstrap, seed: fake_attack(0.1 + 0.1 * inputs))
    monkeypatch.setattr(dtc, "salem", lambda inputs, n_bootstrap, seed: fake_attack(0.05))
    table = dtc.attack_table(chapter, n_bootstrap=10)
    assert list(table.index) == [("Fashion-MNIST", name) for name in dtc.ATTACKS]
    assert list(table.columns) == ["samples per seed", "advantage (%)", "AUC (%)"]
    yeom = table.loc[("Fashion-MNIST", "Yeom (loss, black box)")]
    assert yeom["samples per seed"] == 4
    assert yeom["advantage (%)"] == combine_seeds([0.1, 0.2], [1e-4, 1e-4]).format()
    assert table.loc[("Fashion-MNIST", "DtC threshold (white box)"), "samples per seed"] == 2
    assert table.loc[("Fashion-MNIST", "DtC threshold (white box)"), "AUC (%)"] == \
        combine_seeds([0.8, 0.9], [4e-4, 4e-4]).format()


def test_dp_frame_holds_two_quantities_per_noise_level_in_percent():
    frame = dtc.dp_frame(make_chapter())
    assert list(frame.columns) == ["dataset", "σ_DP", "ε", "quantity", "percent", "low", "high"]
    assert list(frame["quantity"]) == ["DtC gap", "Adv_Yeom"] * 2
    assert list(frame["σ_DP"]) == [0.01, 0.01, 10.0, 10.0]
    assert frame["ε"].tolist() == pytest.approx([4500.0, 4500.0, 0.3, 0.3])
    assert frame["percent"].tolist() == pytest.approx([31.0, 11.0, 2.0, 2.0])
    assert (frame["low"] < frame["percent"]).all() and (frame["high"] > frame["percent"]).all()


def test_the_figures_show_each_dataset_and_quantity():
    chapter = make_chapter()
    histogram = dtc.histogram_figure(chapter)
    assert len(histogram.axes) == 1
    assert histogram.axes[0].get_title() == "Fashion-MNIST, seed 0: gap 40.0 %"
    plt.close(histogram)
    figure = dtc.dp_figure(dtc.dp_frame(chapter))
    left, right = figure.axes
    assert left.get_xscale() == right.get_xscale() == "log"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["DtC gap (Fashion-MNIST)",
                                                                     "Adv_Yeom (Fashion-MNIST)"]
    assert list(right.containers[0].lines[0].get_xdata()) == pytest.approx([0.3, 4500.0])
    plt.close(figure)


def test_key_values_glue_f8_to_f10_on_the_lead_dataset():
    chapter = make_chapter()
    values = dtc.key_values(chapter)
    assert list(values) == ["lead_dataset", "per_side", "n_seeds", "F8_verdict", "F8_ours", "F9_verdict", "F9_ours",
                            "F10_verdict", "F10_ours"]
    assert (values["lead_dataset"], values["per_side"], values["n_seeds"]) == ("Fashion-MNIST", 5, 2)
    expected = {f.id: f for f in findings.dtc_findings(chapter.dtc["fmnist"])}
    assert values["F10_ours"] == expected["F10"].ours and values["F8_verdict"] == expected["F8"].verdict
    assert dtc.key_values(make_chapter(per_side=None))["per_side"] == "all"


def test_setting_table_reads_the_first_seeds_measurement():
    column = dtc.setting_table(make_chapter(per_side=None))["DtC setting"]
    assert column["DtC samples per side"] == "all"
    assert (column["PGD step"], column["max steps"]) == (0.001, 100)
    assert column["threshold (median training loss, nats), first seed"] == 0.5
