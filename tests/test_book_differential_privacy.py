"""Chapter 03's analysis (mia_utils.book.differential_privacy) on small synthetic settings: the
loaded sweep, the tables as the page shows them, the glued values and the sweep's figure."""

from __future__ import annotations

import math

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
import pytest

from mia_utils.attacks.metrics import epsilon_lower_bound_limit
from mia_utils.book import differential_privacy as dp
from mia_utils.book import findings
from mia_utils.book.replicated import Setting

matplotlib.use("Agg")

SEEDS = (0, 1)


def metric(value, variance=1e-4):
    return {"value": value, "variance": variance}


def make_setting(mechanism, value, acc, yeom, salem, epsilon=None, trained=0):
    """A setting over SEEDS whose second seed is 0.02 above the first on every metric; a DP
    setting certifies ``epsilon`` on the first seed and twice it on the second."""
    evaluations = [{"test_acc": metric(acc + 0.02 * i), "adv_yeom": metric(yeom + 0.02 * i),
                    "adv_salem": metric(salem + 0.02 * i)} for i in range(len(SEEDS))]
    facts = [{} for _ in SEEDS]
    if epsilon is not None:
        facts = [{"dp_epsilon": epsilon * (1 + i), "dp_delta": 2e-4, "dp_max_grad_norm": 1.0, "dp_sample_rate": 0.25,
                  "dp_steps": 6, "dp_grad_sample_mode": "hooks"} for i in range(len(SEEDS))]
    return Setting(mechanism, value, SEEDS, evaluations, facts, trained=trained)


def make_chapter(weak_yeom=0.30, strong_yeom=0.05):
    """Fashion-MNIST: a baseline, one regularizer picked at RAD<15% (Adv_Yeom 0.10) and two noise
    levels in grid order (σ_DP = 10 first, as a grid need not be sorted)."""
    baseline = make_setting("baseline", None, 0.80, 0.20, 0.15)
    regularizer = make_setting("random_crop", 4, 0.78, 0.10, 0.10)
    scenarios = pd.DataFrame([{"mechanism": "random_crop", "scenario": "rad15", "value": 4}])
    reg = findings.RegularizationResults("fmnist", SEEDS, baseline, [regularizer], scenarios)
    sweep = [make_setting("dp_sgd", 10.0, 0.40, strong_yeom, 0.01, epsilon=0.2, trained=1),
             make_setting("dp_sgd", 0.01, 0.75, weak_yeom, 0.12, epsilon=30000.0)]
    return dp.DPChapter(SEEDS, {"fmnist": sweep}, {"fmnist": reg})


def test_load_chapter_reads_both_sweeps_per_dataset_and_reports_each(monkeypatch):
    chapter = make_chapter()
    calls = []
    monkeypatch.setattr(findings, "dp_settings",
                        lambda profile, dataset, seeds, store=None: calls.append(("dp", dataset, seeds))
                        or chapter.dp["fmnist"])
    monkeypatch.setattr(findings, "regularization_results",
                        lambda profile, dataset, seeds, store=None: calls.append(("reg", dataset, seeds))
                        or chapter.regularization["fmnist"])
    lines = []
    loaded = dp.load_chapter(None, ["fmnist", "cifar10"], [0, 1], progress=lines.append)
    assert calls == [("dp", "fmnist", SEEDS), ("reg", "fmnist", SEEDS), ("dp", "cifar10", SEEDS),
                     ("reg", "cifar10", SEEDS)]
    assert list(loaded.dp) == ["fmnist", "cifar10"] and loaded.lead == "fmnist" and loaded.seeds == SEEDS
    assert lines == ["Fashion-MNIST: 2 noise levels x 2 seeds; 1 runs trained now",
                     "CIFAR-10: 2 noise levels x 2 seeds; 1 runs trained now"]


def test_baseline_text_and_f6_table():
    chapter = make_chapter()
    base = chapter.baseline("fmnist")
    assert dp.baseline_text("fmnist", base) == (
        f"Fashion-MNIST: baseline accuracy {base.estimate('test_acc')} %, Adv_Yeom {base.estimate('adv_yeom')} %, "
        f"Adv_Salem {base.estimate('adv_salem')} %")
    f6 = dp.f6_findings(chapter)
    assert list(f6) == ["fmnist"] and f6["fmnist"].id == "F6"
    table = dp.f6_table(f6)
    assert list(table.index.names) == ["finding", "dataset"] and list(table.index) == [("F6", "fmnist")]
    assert list(table.columns) == ["verdict", "ours (95 % interval)", "paper"]
    assert table.loc[("F6", "fmnist"), "verdict"] == f6["fmnist"].verdict


def test_key_values_name_the_strongest_and_weakest_noise_of_the_lead_dataset():
    chapter = make_chapter()
    values = dp.key_values(chapter, dp.f6_findings(chapter))
    assert list(values) == ["lead_dataset", "n_seeds", "strongest_sigma", "strongest_epsilon", "strongest_d_acc",
                            "strongest_d_yeom", "weakest_sigma", "weakest_epsilon", "f6_verdict", "f6_ours", "f6_note"]
    assert values["lead_dataset"] == "Fashion-MNIST" and values["n_seeds"] == 2
    assert values["strongest_sigma"] == 10.0 and values["weakest_sigma"] == 0.01
    assert values["strongest_epsilon"] == pytest.approx(0.3) and values["weakest_epsilon"] == pytest.approx(45000.0)
    strongest, base = chapter.dp["fmnist"][0], chapter.baseline("fmnist")
    # the relative change is the mean of the per-seed ratios (each seed over its own baseline)
    ratios = [(a - b) / b for a, b in zip(strongest.values("test_acc"), base.on_seeds(strongest.seeds).values("test_acc"))]
    assert values["strongest_d_acc"].startswith(f"{100 * sum(ratios) / len(ratios):+.1f} [")
    assert values["strongest_d_acc"].endswith("] %")
    # the weakest noise (Adv_Yeom 0.31 on average) does not match the regularizer's 0.11, the strongest does
    assert "σ_DP = 10 " in values["f6_ours"]
    assert values["f6_note"] == "The DP setting matched the regularizer's protection."


def test_key_values_pass_on_f6s_note_when_no_noise_matches():
    chapter = make_chapter(strong_yeom=0.25)
    values = dp.key_values(chapter, dp.f6_findings(chapter))
    assert values["f6_note"].startswith("no DP setting reached")


def test_sweep_frame_is_sorted_by_noise_and_holds_estimates():
    frame = dp.sweep_frame(make_chapter().dp["fmnist"])
    assert list(frame.columns) == ["σ_DP", "ε", "test accuracy", "Adv_Yeom", "Adv_Salem"]
    assert list(frame["σ_DP"]) == [0.01, 10.0]
    assert frame["ε"].tolist() == pytest.approx([45000.0, 0.3])
    assert frame["Adv_Yeom"].iloc[1].mean == pytest.approx(0.06)


def test_sweep_figure_plots_percent_against_noise_and_epsilon():
    chapter = make_chapter()
    figures = dp.sweep_figures(chapter)
    assert list(figures) == ["fmnist"]
    fig = figures["fmnist"]
    left, right = fig.axes
    assert fig._suptitle.get_text() == "Fashion-MNIST"
    assert left.get_xscale() == right.get_xscale() == "log"
    assert [t.get_text() for t in left.get_legend().get_texts()] == ["test accuracy", "Adv_Yeom", "Adv_Salem"]
    accuracy = left.containers[0].lines[0]
    assert list(accuracy.get_xdata()) == [0.01, 10.0]
    assert list(accuracy.get_ydata()) == pytest.approx([76.0, 41.0])  # seed means, percent
    assert left.lines[-1].get_ydata()[0] == pytest.approx(81.0)  # the baseline's mean accuracy, dotted
    assert list(right.containers[0].lines[0].get_xdata()) == pytest.approx([45000.0, 0.3])
    plt.close(fig)


def epsilon_table():
    """epsilon_comparison's shape: two noise levels x two seeds, the weakest without a PRV value."""
    rows = []
    for sigma, rdp, prv, empirical, note in ((0.01, 30000.0, math.nan, 0.04, "grid too large"),
                                             (10.0, 0.2, 0.15, 0.0, "")):
        for seed in SEEDS:
            rows.append({"sigma_dp": sigma, "seed": seed, "delta": 2e-4, "epsilon_rdp": rdp, "epsilon_prv": prv,
                         "prv_note": note, "epsilon_empirical": empirical + 0.02 * seed,
                         "attack": "loss", "tpr": 0.5, "fpr": 0.3, "threshold": -1.0})
    return pd.DataFrame(rows)


def test_epsilon_tables_are_shaped_for_the_page():
    table = epsilon_table()
    assert dp.epsilon_heading("fmnist", table) == "Fashion-MNIST: mean over 2 seeds, then each seed"
    means = dp.epsilon_means(table)
    assert means.index.name == "σ_DP" and list(means.index) == [0.01, 10.0]
    assert list(means.columns) == ["ε RDP (certified)", "ε PRV (certified)", "ε lower bound (attack)"]
    assert means.loc[0.01, "ε lower bound (attack)"] == pytest.approx(0.05)
    per_seed = dp.epsilon_per_seed(table)
    assert list(per_seed.index.names) == ["σ_DP", "seed"] and len(per_seed) == 4
    assert list(per_seed.columns) == [*means.columns, "score", "TPR", "FPR"]
    assert dp.prv_notes(table) == ["PRV ε not computed at σ_DP = 0.01: grid too large"]


def test_epsilon_tables_run_the_audit_on_each_dataset(monkeypatch):
    seen = []
    monkeypatch.setattr(dp, "epsilon_comparison",
                        lambda settings, alpha, store=None: seen.append((len(settings), alpha)) or epsilon_table())
    tables = dp.epsilon_tables(make_chapter(), alpha=0.1)
    assert list(tables) == ["fmnist"] and seen == [(2, 0.1)]


def test_epsilon_key_values_read_the_lead_datasets_means():
    values = dp.epsilon_key_values(make_chapter(), {"fmnist": epsilon_table()}, n_eval=100)
    assert values == {
        "strongest_rdp": pytest.approx(0.2), "strongest_prv": pytest.approx(0.15),
        "strongest_empirical": pytest.approx(0.01), "empirical_max": pytest.approx(0.05),
        "empirical_max_sigma": 0.01, "n_eval_per_side": 100, "epsilon_confidence": "95 %",
        "empirical_limit": pytest.approx(epsilon_lower_bound_limit(100, 100, 0.05))}


def paper_eps(closest):
    return pd.DataFrame({"sigma_dp": [0.1, 0.25, 10.0], "paper": [3000.0, 200.0, 0.15],
                         "rdp": [36000.0, 220.0, 0.16], "prv": [math.nan, math.nan, 0.1], "closest": closest})


def test_paper_epsilon_values_say_which_accountant_the_paper_resembles():
    values = dp.paper_epsilon_values(paper_eps(["RDP", "RDP", "RDP"]))
    assert values["paper_eps_rdp_10"] == 0.16 and values["paper_eps_prv_10"] == 0.1
    assert values["paper_eps_rdp_025"] == 220.0 and values["paper_eps_rdp_01"] == 36000.0
    assert values["paper_eps_closest"] == "RDP at σ_DP = 0.1, RDP at σ_DP = 0.25, RDP at σ_DP = 10"
    assert values["paper_eps_resembles"] == "resemble RDP accounting"
    assert values["paper_eps_ratio_01"] == pytest.approx(12.0)
    mixed = dp.paper_epsilon_values(paper_eps(["RDP", "none", "PRV"]))
    assert mixed["paper_eps_resembles"] == "resemble no single accountant"


def test_paper_epsilon_table_formats_and_names_the_missing_values():
    styler = dp.paper_epsilon_table(paper_eps(["RDP", "RDP", "PRV"]))
    assert styler.data.index.name == "σ_DP"
    assert list(styler.data.columns) == ["paper's ε (≈)", "ε, RDP", "ε, PRV", "nearest (log scale)"]
    html = styler.to_html()
    assert "not computable" in html and "3.6e+04" in html


def test_setting_table_describes_the_first_seeds_dp_setting():
    table = dp.setting_table(make_chapter().dp["fmnist"], (0.01, 10.0))
    assert list(table.columns) == ["DP-SGD setting"]
    column = table["DP-SGD setting"]
    assert column["steps"] == 6 and column["δ"] == 2e-4 and column["per-sample gradients"] == "hooks"
    assert column["σ_DP grid"] == "0.01, 10"
