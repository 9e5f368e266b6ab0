"""Chapter 07's page functions (mia_utils.book.mmd_mixup): tables, glue values and the figure, on
hand-made settings, attack results and population rows; the training is stubbed out."""

import math
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest

from mia_utils.attacks.evidence import CONTRADICTED, HOLDS, INCONCLUSIVE
from mia_utils.book import mmd_mixup, replicated
from mia_utils.book.profiles import get_profile
from mia_utils.book.replicated import Setting

matplotlib.use("Agg")

PARAMS = {"profile": "smoke", "datasets": ["fmnist"], "seed": 0, "mixup_alpha": 1.0, "mmd_lambda": 0.5,
          "shadow_models": 0}


def _setting(mechanism, value, seeds=(0, 1), facts=None, **metrics):
    """A Setting over ``seeds`` whose metrics are (values per seed or one for all, standard deviation) pairs."""
    evaluations = [{name: {"value": values[i] if isinstance(values, tuple) else values, "variance": std ** 2}
                    for name, (values, std) in metrics.items()} for i in range(len(seeds))]
    return Setting(mechanism, value, tuple(seeds), evaluations, facts or [{} for _ in seeds])


def _metrics(acc, yeom, gap=0.05, salem=0.01, auc=0.55, std=0.001):
    return {"test_acc": (acc, std), "adv_yeom": (yeom, std), "gap": (gap, std), "adv_salem": (salem, std),
            "auc": (auc, std)}


def _results():
    """Baseline over three seeds, MMD + mix-up over two, and two mechanisms at matched accuracy:
    dropout leaks more than the defense (holds), weight decay less (contradicted); distillation
    has no setting as accurate."""
    baseline = _setting("baseline", None, (0, 1, 2), **_metrics((0.80, 0.82, 0.81), (0.20, 0.22, 0.21)))
    defended = _setting("mmd", 0.5, **_metrics((0.78, 0.79), (0.10, 0.11), gap=(0.02, 0.03)))
    sweep = [_setting("dropout", 0.5, **_metrics((0.80, 0.80), (0.30, 0.31))),
             _setting("weight_decay", 0.01, **_metrics((0.79, 0.80), (0.02, 0.03))),
             _setting("distillation", 2, **_metrics((0.50, 0.50), (0.01, 0.01)))]
    mechanisms = ["dropout", "weight_decay", "distillation"]
    return mmd_mixup.MMDResults("fmnist", mmd_mixup.mmd_defense(PARAMS), baseline, defended,
                                mmd_mixup.mmd_versus_baseline(baseline.on_seeds(defended.seeds), defended),
                                mmd_mixup.matched_accuracy_comparison(defended, sweep, mechanisms))


def _estimate(value, std):
    return SimpleNamespace(value=value, std=std)


def _attack(advantage, tpr1=0.05):
    return SimpleNamespace(metrics={"advantage": _estimate(advantage, 0.05), "auc": _estimate(0.6, 0.01),
                                    "tpr_at_1%_fpr": _estimate(tpr1, 0.01),
                                    "tpr_at_0.1%_fpr": _estimate(math.nan, math.nan)})


def test_attack_rows_and_frame():
    rows = mmd_mixup.attack_rows({"yeom": _attack(0.2), "loss": _attack(0.1)}, "Fashion-MNIST", "baseline", 100)
    rows += mmd_mixup.attack_rows({"yeom": _attack(0.1), "loss": _attack(0.0)}, "Fashion-MNIST", "MMD + mix-up", 100)
    assert rows[0]["advantage (%)"] == "20.0 [10.2, 29.8]"  # normal interval: 20 ± 1.96 · 5
    assert rows[0]["TPR @ 1 % FPR (%)"] == "5.00 [3.04, 6.96]"
    assert rows[0]["TPR @ 0.1 % FPR (%)"] == "not resolvable at n = 100 non-members per side"
    table = mmd_mixup.attacks_frame(rows)
    assert table.index.names == ["dataset", "attack", "model"] and table.shape == (4, 4)  # turned: narrow
    assert [model for _, _, model in table.index[:2]] == ["baseline", "MMD + mix-up"]
    assert table.loc[("Fashion-MNIST", "yeom", "MMD + mix-up"), "advantage (%)"] == "10.0 [0.2, 19.8]"


def test_attacks_table_attacks_both_final_models(monkeypatch):
    seen = []

    def fake_run(config, store=None):
        seen.append(config)
        return SimpleNamespace(outputs={"config": config})

    monkeypatch.setattr(mmd_mixup.experiment, "run", fake_run)
    monkeypatch.setattr(mmd_mixup.experiment, "shadow_outputs", lambda config, n, store=None: (n, None, []))
    monkeypatch.setattr(mmd_mixup.AttackInputs, "from_outputs", staticmethod(lambda outputs: outputs["config"]))
    monkeypatch.setattr(mmd_mixup, "run_attacks", lambda config, shadows, shadow_in, n_bootstrap, seed: {
        "yeom": _attack(0.1 if config.mechanisms else 0.2), "lira_online": _attack(float(shadows) / 100)})
    table = mmd_mixup.attacks_table(get_profile("smoke"), PARAMS)
    assert [dict(c.mechanisms) for c in seen] == [{}, {"mixup": 1.0, "mmd": 0.5}]
    assert all(c.snapshot_epochs == () for c in seen)
    assert table.loc[("Fashion-MNIST", "yeom", "baseline"), "advantage (%)"].startswith("20.0")
    assert table.loc[("Fashion-MNIST", "lira_online", "MMD + mix-up"), "advantage (%)"].startswith("4.0")  # 4 shadows


def test_mmd_results_reads_the_sweep_and_the_defense(monkeypatch):
    expected = _results()
    sweep = [c.setting for c in expected.matched if c.setting is not None]
    monkeypatch.setattr(replicated, "regularization_sweep", lambda profile, dataset, mechanisms, seeds, store:
                        (expected.baseline, sweep))
    monkeypatch.setattr(mmd_mixup, "mmd_setting", lambda profile, dataset, params, seeds, store: expected.defended)
    results = mmd_mixup.mmd_results(get_profile("smoke"), PARAMS, (0, 1))
    assert results.dataset == "fmnist" and results.defense == {"mixup": 1.0, "mmd": 0.5}
    assert results.paired_baseline.seeds == (0, 1) and results.baseline.seeds == (0, 1, 2)
    assert results.versus["adv_yeom"].verdict == HOLDS
    assert len(results.matched) == len(mmd_mixup.PAPER_MECHANISMS)


def test_comparison_table_rows_and_columns():
    table = mmd_mixup.comparison_table(_results())
    assert list(table.index) == ["baseline (3 seeds)", "MMD + mix-up (λ = 0.5, α = 1)", "dropout = 0.5",
                                 "weight_decay = 0.01"]
    assert list(table.columns) == ["test acc (%)", "gap (pp)", "Adv_Yeom (%)", "Adv_Salem (%)",
                                   "MMD + mix-up − this, Adv_Yeom (pp)", "MMD + mix-up leaks less"]
    assert list(table["MMD + mix-up leaks less"]) == ["", "", HOLDS, CONTRADICTED]
    assert table.loc["dropout = 0.5", "MMD + mix-up − this, Adv_Yeom (pp)"].startswith("-20.0 [")
    assert table.loc["baseline (3 seeds)", "test acc (%)"].startswith("81.0 [")


def _population(tpr, std=0.01, n=500):
    """Rows of population_lira for four models at epoch 2, TPR at 1 % FPR ``tpr`` per model."""
    return pd.DataFrame([{"model": i, "epoch": 2, "n_nonmembers": n, "train_acc": 0.9, "test_acc": 0.8, "gap": 0.1,
                          "auc": 0.6, "tpr_at_0.1%_fpr": 0.01, "tpr_at_1%_fpr": value,
                          **{f"{m}_std": std for m in ("train_acc", "test_acc", "gap", "auc", "tpr_at_0.1%_fpr",
                                                       "tpr_at_1%_fpr")}}
                         for i, value in enumerate(tpr)])


def test_population_finding_holds_and_unresolvable():
    populations = {"baseline": _population([0.20, 0.22, 0.21, 0.23]),
                   "MMD + mix-up": _population([0.05, 0.06, 0.04, 0.05], n=480)}
    result = mmd_mixup.population_finding(populations, 4)
    assert result.finding.verdict == HOLDS and result.n_nonmembers == 480
    assert result.finding.claim == "MMD + mix-up lowers LiRA's TPR at 1 % FPR"
    assert result.low["baseline"].startswith("21.50 [") and result.low["baseline"].endswith("] %")
    nan = {label: _population([math.nan] * 4, n=92) for label in ("baseline", "MMD + mix-up")}
    result = mmd_mixup.population_finding(nan, 4)
    assert result.finding.verdict == INCONCLUSIVE
    assert result.finding.text.startswith("not resolvable at n = 92 non-members")
    assert result.low["MMD + mix-up"] == "not resolvable at n = 92 non-members per side"


def test_population_comparison_trains_both_final_populations(monkeypatch):
    seen = []

    def fake_lira(config, count, epochs, store=None, n_bootstrap=200, seed=0):
        seen.append((config, count, epochs))
        return _population([0.1, 0.1, 0.1, 0.1]).to_dict("records")

    monkeypatch.setattr(mmd_mixup, "population_lira", fake_lira)
    result = mmd_mixup.population_comparison(get_profile("smoke"), PARAMS, "fmnist")
    assert [dict(c.mechanisms) for c, _, _ in seen] == [{}, {"mixup": 1.0, "mmd": 0.5}]
    assert all(c.snapshot_epochs == () and epochs == [c.epochs] and count == 4 for c, count, epochs in seen)
    assert result.n_shadows == 4 and set(result.populations) == {"baseline", "MMD + mix-up"}


def test_key_values_glue_names_and_values():
    lira = mmd_mixup.population_finding({"baseline": _population([0.2] * 4), "MMD + mix-up": _population([0.1] * 4)}, 4)
    values = mmd_mixup.key_values(_results(), lira)
    assert list(values) == [
        "lead_dataset", "n_seeds", "n_shadows", "n_shadows_per_target", "shadow_power",
        "f07_adv_yeom_verdict", "f07_adv_yeom_text", "f07_gap_verdict", "f07_gap_text", "f07_all_verdict",
        "f07_all_text", "f07_lira_verdict", "f07_lira_text", "base_acc", "mmd_acc", "base_gap", "mmd_gap",
        "base_yeom", "mmd_yeom", "base_lira_low", "mmd_lira_low", "n_mechanisms", "matched_counts",
        "matched_list", "f07_beats_verdict"]
    assert values["lead_dataset"] == "Fashion-MNIST" and values["n_seeds"] == 2
    assert values["n_shadows"] == 4 and values["n_shadows_per_target"] == 3
    assert values["shadow_power"].startswith("underpowered: 3 shadow models")
    assert values["base_acc"].startswith("81.0 [") and values["base_acc"].endswith("] %")  # seeds 0 and 1 only
    assert values["mmd_gap"].endswith(" points")
    assert values["n_mechanisms"] == 3 and values["matched_counts"] == "1 holds, 1 contradicted, 1 inconclusive"
    assert values["matched_list"].data.count("\n- ") == 2 and values["matched_list"].data.startswith("- ")
    assert values["f07_beats_verdict"] == CONTRADICTED


def test_comparison_figure_marks_every_setting():
    import matplotlib.pyplot as plt

    fig = mmd_mixup.comparison_figure(_results())
    try:
        ax = fig.axes[0]
        assert [t.get_text() for t in ax.get_legend().get_texts()] == ["baseline", "MMD + mix-up", "paper's mechanism"]
        assert [t.get_text() for t in ax.texts] == ["baseline", "MMD + mix-up", "dropout = 0.5", "weight_decay = 0.01"]
        assert ax.get_xlabel() == "test accuracy (%)" and ax.get_ylabel() == "Yeom's advantage (%)"
    finally:
        plt.close(fig)


def test_schedule_table_and_values():
    baseline = _results().baseline
    every = _setting("mmd", 0.5, **_metrics((0.78, 0.79), (0.20, 0.21)))
    gated = _setting("mmd_gated", 0.5, facts=[{"mmd_gated_passes": 1}, {"mmd_gated_passes": 0}],
                     **_metrics((0.80, 0.81), (0.10, 0.11)))
    schedules = {"every step": every, "authors' code": gated}
    assert mmd_mixup.gated_passes_text(every) == "every one" and mmd_mixup.gated_passes_text(gated) == "1, 0"
    table = mmd_mixup.schedule_table(schedules, baseline)
    assert table.index.name == "measure" and list(table.columns) == ["every step", "authors' code"]
    assert list(table.index) == ["test acc (%)", "gap (pp)", "Adv_Yeom (%)", "Adv_Salem (%)", "loss AUC (%)",
                                 "Δ Adv_Yeom vs baseline (pp)", "lowers Adv_Yeom", "narrows the gap",
                                 "epochs with an MMD pass"]
    assert table.loc["lowers Adv_Yeom", "authors' code"] == HOLDS
    assert table.loc["epochs with an MMD pass", "authors' code"] == "1, 0"
    values = mmd_mixup.schedule_values(schedules)
    assert list(values) == ["f07_schedule_verdict", "f07_schedule_text"] and values["f07_schedule_verdict"] == HOLDS
    with pytest.raises(KeyError):
        mmd_mixup.schedule_values({"every step": every})


def test_schedule_settings_one_per_schedule(monkeypatch):
    monkeypatch.setattr(mmd_mixup, "mmd_setting", lambda profile, dataset, params, seeds, store, schedule: schedule)
    assert mmd_mixup.schedule_settings(None, "fmnist", PARAMS, (0, 1)) == {
        "every step": "every step", "authors' code": "authors' code"}
