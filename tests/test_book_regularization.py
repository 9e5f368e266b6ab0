"""Chapter 02's module (mia_utils.book.regularization) on synthetic settings: the lines it prints,
the values it glues, the trade-off figure's data and panels."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from mia_utils.attacks import evaluation  # noqa: E402
from mia_utils.attacks.evidence import CONTRADICTED, HOLDS, INCONCLUSIVE  # noqa: E402
from mia_utils.book import findings, regularization, replicated, report  # noqa: E402

SEEDS = (0, 1, 2)
#: Per-seed offsets added to every metric, so that seeds differ a little but the intervals stay tight.
JITTER = (-0.002, 0.0, 0.002)


def synthetic(mechanism, value, acc, yeom, salem, auc=None, seeds=SEEDS):
    """A Setting whose seed ``i`` has ``test_acc = acc + JITTER[i]`` and likewise for the advantages
    (fractions); ``auc`` defaults to ``0.5 + yeom / 2``. Each metric carries a small bootstrap variance."""
    auc = 0.5 + yeom / 2 if auc is None else auc
    evaluations = []
    for i, _ in enumerate(seeds):
        row = {name: {"value": 0.0, "variance": 1e-6} for name in evaluation.METRICS}
        row["n_nonmembers"] = {"value": 100.0, "variance": 0.0}
        for name, mean in (("test_acc", acc), ("adv_yeom", yeom), ("adv_yeom_objective", yeom),
                           ("adv_salem", salem), ("auc", auc)):
            row[name] = {"value": mean + JITTER[i], "variance": 1e-6}
        evaluations.append(row)
    return replicated.Setting(mechanism, value, tuple(seeds), evaluations)


def synthetic_results(settings, baseline, dataset="fmnist"):
    """RegularizationResults of ``settings`` against ``baseline`` with the paper's selection made."""
    scenarios = report.select_scenarios(replicated.means_frame(settings), replicated.means_frame([baseline]).iloc[0])
    return findings.RegularizationResults(dataset, SEEDS, baseline, settings, scenarios)


def sweep_result(dataset="fmnist"):
    """Baseline at 88 % accuracy and Adv_Yeom 20 %; cropping lowers Yeom's advantage and the AUC with
    it, label smoothing lowers the advantage but leaves the AUC where the baseline's is."""
    baseline = synthetic("baseline", None, 0.88, 0.20, 0.15)
    settings = [synthetic("random_crop", 2, 0.875, 0.05, 0.05),
                synthetic("random_crop", 8, 0.80, 0.01, 0.02),
                synthetic("distillation", 10, 0.87, 0.06, 0.05),
                synthetic("label_smoothing", 0.1, 0.878, 0.08, 0.30, auc=0.60),
                synthetic("weight_decay", 0.01, 0.86, 0.18, 0.20),
                synthetic("early_stopping", 5, 0.85, 0.10, 0.10)]
    return synthetic_results(settings, baseline, dataset)


@pytest.fixture(scope="module")
def result():
    return sweep_result()


def test_sweep_passes_every_dataset_in_order_and_all_mechanisms_for_an_empty_list(monkeypatch):
    calls = []

    def fake(profile, dataset, seeds, store=None, mechanisms=None):
        calls.append((dataset, tuple(seeds), mechanisms))
        return dataset.upper()

    monkeypatch.setattr(findings, "regularization_results", fake)
    swept = regularization.sweep("profile", ["cifar10", "fmnist"], SEEDS, mechanisms=[])
    assert list(swept) == ["cifar10", "fmnist"] and swept["fmnist"] == "FMNIST"
    assert calls == [("cifar10", SEEDS, None), ("fmnist", SEEDS, None)]
    regularization.sweep("profile", ["fmnist"], SEEDS, mechanisms=["dropout"])
    assert calls[-1][2] == ["dropout"]


def test_the_printed_lines_name_the_dataset_the_counts_and_the_baseline(result):
    assert regularization.sweep_line(result) == ("Fashion-MNIST: 6 settings x 3 seeds (0 runs trained now, "
                                                 "the rest read from the result store)")
    line = regularization.baseline_line(result)
    assert line.startswith("Fashion-MNIST baseline over 3 seeds: accuracy 88.0 [")
    assert "Adv_Yeom 20.0 [" in line and "Adv_Salem 15.0 [" in line and line.endswith(" %")


def test_key_values_glue_every_name_of_the_page_in_order(result):
    values = regularization.key_values({"fmnist": result, "cifar10": sweep_result("cifar10")})
    ids = [f"F{i}" for i in range(1, 6)]
    assert list(values) == (["lead_dataset", "n_settings", "n_seeds", "findings_table"]
                            + [f"{i}_{part}" for i in ids for part in ("verdict", "ours")]
                            + ["n_holds", "n_contradicted", "n_inconclusive", "findings_total",
                               "reading_summary", "threshold_moved_list", "signal_removed_list", "undecided_list",
                               "auc_margin"])
    assert values["lead_dataset"] == "Fashion-MNIST" and values["n_settings"] == 12 and values["n_seeds"] == 3
    table = values["findings_table"]
    assert list(table.index) == ids and list(table.columns) == regularization.FINDINGS_COLUMNS
    assert values["findings_total"] == 5
    assert values["n_holds"] + values["n_contradicted"] + values["n_inconclusive"] == 5
    assert all(values[f"{i}_verdict"] in (HOLDS, CONTRADICTED, INCONCLUSIVE) for i in ids)
    assert values["F2_verdict"] == table.loc["F2", "verdict"]
    assert values["reading_summary"].endswith(".") and "reading (a)" in values["reading_summary"]
    assert regularization.key_values({"fmnist": result, "cifar10": sweep_result("cifar10")},
                                     lead="cifar10")["lead_dataset"] == "CIFAR-10"


def test_a_fall_of_yeoms_advantage_without_a_fall_of_the_auc_is_a_moved_threshold(result):
    assert regularization.threshold_moved_text(result) == "label smoothing"
    honest = synthetic_results([synthetic("random_crop", 2, 0.875, 0.05, 0.05)],
                               synthetic("baseline", None, 0.88, 0.20, 0.15))
    assert regularization.threshold_moved_text(honest) == "none"
    assert regularization.threshold_moved_text(honest, state="signal removed") == "random crop"


def test_tradeoff_frame_has_one_row_per_setting_and_attack_in_percent(result):
    frame = regularization.tradeoff_frame(result.settings)
    assert len(frame) == 2 * len(result.settings)
    assert list(frame["attack"]) == ["Yeom"] * 6 + ["Salem"] * 6
    first = frame.iloc[0]
    assert first["mechanism"] == "random_crop" and first["value"] == 2
    assert first["test accuracy (%)"] == pytest.approx(87.5) and first["advantage (%)"] == pytest.approx(5.0)
    assert frame.iloc[6]["advantage (%)"] == pytest.approx(5.0)  # cropping's Salem advantage


def test_tradeoff_figure_has_a_panel_per_mechanism(result):
    assert regularization.mechanism_title("random_crop") == "random crop (c)"
    assert regularization.mechanism_title("early_stopping") == "early stopping (E)"
    figure = regularization.tradeoff_figure(result, max_columns=3)
    try:
        visible = [ax for ax in figure.axes if ax.get_visible()]
        assert len(figure.axes) == 6 and len(visible) == 5  # 2 rows of 3, one left empty
        assert [ax.get_title() for ax in visible][:2] == ["random crop (c)", "distillation (T)"]
        assert figure._suptitle.get_text() == "Fashion-MNIST (means over 3 seeds)"
    finally:
        plt.close(figure)
