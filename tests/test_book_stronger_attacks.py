"""Chapter 09's page functions (mia_utils.book.stronger_attacks): the verdicts and the sentences
built on them, the tables, the glued values, the outliers reading, slices and overlap, on hand-made
attack results; the cache and the reference models' outputs with stubbed runs (nothing trains)."""

import math
from types import SimpleNamespace

import matplotlib
import pandas as pd
import pytest
import torch

from mia_utils.attacks import AttackResult, attack_result
from mia_utils.attacks.evidence import CONTRADICTED, HOLDS, INCONCLUSIVE
from mia_utils.attacks.metrics import Estimate
from mia_utils.book import stronger_attacks as sa
from mia_utils.book.chapters import ParameterError, stronger_attack_options, validate
from mia_utils.book.profiles import get_profile
from mia_utils.book.replicated import Setting
from mia_utils.book.runs import RUNS

matplotlib.use("Agg")

N = 40  # evaluation samples per side of the hand-made runs
OPTIONS = {"augmentations": 2, "query_samples": 20, "boundary_samples": 10, "aware_references": 1}

#: The page's glued names (the figures are glued apart, by :func:`figures`).
KEY_VALUES = {"lead_dataset", "n_seeds", "n_defenses", "n_ch02", "n_dp", "n_references", "n_population",
              "augmentations", "query_samples", "boundary_samples", "translation_queries", "boundary_budget", "rmia_a",
              "rmia_gamma", "eval_per_side", "strongest_attack", "strongest_metric", "survival_sentence",
              "outliers_sentence", "slices_sentence", "overlap_sentence", "gallery_sentence", "power_sentence",
              "translation_queries_2", "boundary_searched", "boundary_seconds", "boundary_seconds_max",
              "boundary_per_sample_ms", "n_aware", "aware_m", "aware_models", "aware_runs", "aware_minutes",
              "aware_sentence", "resolution_sentence", "reference_count_sentence"}
KEY_VALUES |= {f"{prefix}_{attack}" for prefix in ("base", "holds") for attack in sa.ATTACKS}


def _estimate(value, std=0.005):
    """A metric with a bootstrap standard deviation (and, for the rates, an exact interval)."""
    if math.isnan(value):
        return Estimate(math.nan, math.nan, math.nan, math.nan, (math.nan, math.nan))
    return Estimate(value, std, value - 2 * std, value + 2 * std, (max(0.0, value - 2 * std), value + 2 * std))


def _result(name, n, metrics, seed):
    """An AttackResult over n members then n non-members: members score higher, and the guesses
    flag members more often than non-members; its ``metrics`` are replaced by the given values."""
    generator = torch.Generator().manual_seed(seed)
    is_member = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
    scores = torch.rand(2 * n, generator=generator, dtype=torch.float64) + 0.5 * is_member
    predicted = scores > 0.75
    values = {"accuracy": 0.6, "precision": 0.6, "recall": 0.6}
    values.update(metrics)
    return AttackResult(name, scores, predicted, 0.75, is_member, {k: _estimate(v) for k, v in values.items()})


def _run(seed, advantage=0.2, tpr=0.1, auc=0.6, overrides=None):
    """Every attack's result on one seed's model: each attack has ``advantage``, ``tpr`` (TPR at 1 %
    FPR) and ``auc`` unless ``overrides`` maps it to its own (advantage, tpr)."""
    overrides = overrides or {}
    samples = {"all": torch.arange(2 * N), "query": sa.subsample(2 * N, OPTIONS["query_samples"]),
               "boundary": sa.subsample(2 * N, OPTIONS["boundary_samples"])}
    results, rows = {}, {}
    for i, attack in enumerate(sa.ATTACKS):
        adv, low_tpr = overrides.get(attack, (advantage, tpr))
        rows[attack] = samples[sa.SAMPLE_SETS[attack]]
        results[attack] = _result(attack, len(rows[attack]) // 2, {"advantage": adv, "auc": auc,
                                                                   "tpr_at_1%_fpr": low_tpr,
                                                                   "tpr_at_0.1%_fpr": math.nan}, 100 * seed + i)
    labels = torch.arange(2 * N) % 2
    correct = torch.arange(2 * N) % 5 != 0
    notes = {"boundary_forward": 12.0, "boundary_gradients": 8.0, "augmentation_queries": 1,
             "augmentation_reduction": "clean loss"}
    seconds = {attack: 0.5 for attack in sa.ATTACKS}
    return sa.RunAttacks(f"run{seed}", seed, results, rows, seconds, labels, correct, notes)


def _setting(mechanism, value, seeds, selection, **run_kwargs):
    evaluations = [{"test_acc": {"value": 0.85, "variance": 1e-5}} for _ in seeds]
    setting = Setting(mechanism, value, tuple(seeds), evaluations, [{} for _ in seeds])
    return sa.AttackedSetting(setting, selection, [_run(seed, **run_kwargs) for seed in seeds])


SEEDS = (0, 1, 2)


def _results():
    """The baseline (Yeom 20 %, every attack alike), cropping that lowers every attack, distillation
    that lowers Yeom's advantage but raises RMIA's, and a DP setting that changes nothing."""
    baseline = _setting("baseline", None, SEEDS, "baseline")
    crop = _setting("random_crop", 4, SEEDS, "RAD<15%", advantage=0.05, tpr=0.02)
    distil = _setting("distillation", 50, SEEDS, "RAD<5% and RAD<15%", advantage=0.05, tpr=0.02,
                      overrides={"rmia": (0.3, 0.2)})
    dp = _setting("dp_sgd", 1.0, SEEDS, "DP-SGD grid")
    counts = {m: [{"advantage": _estimate(0.1 + 0.01 * m), "auc": _estimate(0.6)} for _ in SEEDS] for m in (1, 2)}
    return sa.StrongerAttacks("fmnist", SEEDS, baseline, [crop, distil, dp], dict(OPTIONS), 4, N, [1.0, 2.0, 3.0],
                              aware=[crop.title, distil.title], aware_runs=6, aware_train_seconds=180.0,
                              reference_counts=counts)


def test_subsample_takes_the_first_members_and_non_members():
    assert sa.subsample(10, 2).tolist() == [0, 1, 5, 6]
    assert sa.subsample(10, 50).tolist() == list(range(10))


def test_training_augmentation_and_titles():
    base = get_profile("smoke").base_config("fmnist")
    assert sa.training_augmentation(base) == (0, 0.0, True)
    assert sa.training_augmentation(base.with_mechanisms(random_crop=4, gaussian_noise=0.1)) == (4, 0.1, True)
    noisy = Setting("dp_sgd", 1.0, (0,), [{}])
    assert sa.setting_title(noisy) == "DP-SGD, σ_DP = 1"
    assert sa.setting_title(Setting("early_stopping", 5, (0,), [{}])) == "early stopping, E = 5"
    assert sa.setting_title(Setting("baseline", None, (0,), [{}])) == "baseline"


def test_verdicts_known_answers():
    found = {(v.setting, v.attack): v for v in sa.verdicts(_results())}
    assert found[("random crop, c = 4", "yeom")].verdict == HOLDS
    assert found[("random crop, c = 4", "yeom")].change.mean == pytest.approx(-0.15)
    assert found[("distillation, T = 50", "rmia")].verdict == CONTRADICTED
    assert found[("DP-SGD, σ_DP = 1", "yeom")].verdict == INCONCLUSIVE
    assert len(found) == 3 * len(sa.ATTACKS)


def test_survival_sentence_names_the_protection_that_does_not_survive():
    text = sa.survival_sentence(_results())
    assert text.startswith("Of the 3 defense settings, 2 lower Yeom's advantage")
    assert "random crop, c = 4 keeps its protection against every stronger attack that leaks." in text
    assert text.endswith("distillation, T = 50 lowers Yeom's advantage but not the advantage of "
                         "RMIA (baseline-recipe references) (contradicted).")
    assert "gains no advantage" not in text


def test_survival_sentence_when_nothing_holds_or_everything_survives():
    results = _results()
    results.defenses = [results.defenses[2]]
    assert sa.survival_sentence(results).endswith("There is no protection against Yeom's attack to test further.")
    results = _results()
    results.defenses = [results.defenses[0]]
    assert sa.survival_sentence(results).endswith(
        "Every one of them also lowers the advantage of every stronger attack that leaks.")


def test_survival_sentence_leaves_out_attacks_that_do_not_leak_on_the_baseline():
    results = _results()
    results.baseline = _setting("baseline", None, SEEDS, "baseline", overrides={"boundary": (0.0, 0.1)})
    # cropping leaves the boundary attack at 5 %, above the baseline's 0 %: contradicted, but the
    # attack learns nothing from the baseline, so it cannot show the protection failing
    assert sa.leaking_attacks(results) == ["rmia", "augmentation", "gap", "translation", "translation_d2",
                                           "translation_count"]
    text = sa.survival_sentence(results)
    assert "Label-only boundary gains no advantage on the baseline itself" in text
    assert "advantage of label-only boundary" not in text and "random crop, c = 4 keeps its protection" in text
    # its verdicts are not judged: not resolvable at its sample size, counted for no defense
    found = {(v.setting, v.attack): v.verdict for v in sa.verdicts(results)}
    assert found[("random crop, c = 4", "boundary")] == "not resolvable at n = 10 per side"
    assert sa.verdict_counts(results).loc["label-only boundary", sa.NOT_JUDGED] == 3
    assert sa.verdict_counts(results).loc["label-only boundary", CONTRADICTED] == 0


def test_power_sentence_names_leaking_attacks_that_no_defense_lowers():
    assert sa.power_sentence(_results()) == ""  # cropping lowers every attack
    results = _results()
    results.defenses = [results.defenses[2]]  # DP here changes nothing
    text = sa.power_sentence(results)
    assert text.startswith("No defense is shown to lower every attack")
    assert "RMIA (baseline-recipe references) gains only 20.0 [" in text
    assert "measured on 20 members and non-members per side" in text


def test_advantage_and_verdict_tables_shapes():
    results = _results()
    table = sa.advantage_table(results)
    assert list(table.index) == ["baseline", "random crop, c = 4", "distillation, T = 50", "DP-SGD, σ_DP = 1"]
    assert list(table.columns) == ["selected as", "test acc (%)", "Yeom (%)", "RMIA (%)", "RMIA aware (%)",
                                   "aug. (%)"]
    assert table.loc["baseline", "Yeom (%)"].startswith("20.0 [")
    label_only = sa.advantage_table(results, sa.LABEL_ONLY_ATTACKS, accuracy=False)
    assert list(label_only.columns) == ["selected as", "gap (%)", "transl. d=1 (%)", "transl. d=2 (%)",
                                        "count d=1 (%)", "bound. (%)"]
    verdicts = sa.verdict_table(results)
    assert list(verdicts.index) == ["random crop, c = 4", "distillation, T = 50", "DP-SGD, σ_DP = 1"]
    assert verdicts.loc["distillation, T = 50", "Δ RMIA (pp)"].endswith(": contradicted")
    assert verdicts.loc["random crop, c = 4", "Δ Yeom (pp)"].startswith("-15.0 [")
    counts = sa.verdict_counts(results)
    assert counts.loc["Yeom"].tolist() == [2, 0, 1, 0]
    assert counts.loc["RMIA (baseline-recipe references)"].tolist() == [1, 1, 1, 0]


def test_an_attack_left_out_of_a_setting_is_not_measured_and_not_judged():
    results = _results()
    for run in results.defenses[2].runs:  # the DP setting has no recipe-aware references
        del run.results["rmia_aware"]
    assert math.isnan(results.defenses[2].estimate("rmia_aware").mean)
    found = {(v.setting, v.attack): v.verdict for v in sa.verdicts(results)}
    assert found[("DP-SGD, σ_DP = 1", "rmia_aware")] == sa.NOT_MEASURED
    assert sa.verdict_table(results).loc["DP-SGD, σ_DP = 1", "Δ RMIA aware (pp)"] == "n/a"
    assert sa.verdict_counts(results).loc["RMIA (recipe-aware references)", sa.NOT_JUDGED] == 1


def test_both_adversaries_table_and_sentence():
    results = _results()
    # distillation: RMIA with baseline-recipe references gains (contradicted), recipe-aware lowered
    rows = {row["setting"]: row for row in sa.adversary_rows(results)}
    assert set(rows) == {"random crop, c = 4", "distillation, T = 50"}  # the DP setting has none
    assert rows["random crop, c = 4"]["rmia_aware_survival"] == sa.SURVIVES
    assert rows["distillation, T = 50"]["rmia_survival"] == sa.FAILS
    assert rows["distillation, T = 50"]["rmia_aware_survival"] == sa.SURVIVES
    table = sa.adversary_table(results)
    assert list(table.columns)[1:3] == ["Δ RMIA, recipe-aware (pp)", "survives? (recipe-aware)"]
    text = sa.aware_sentence(results)
    assert text.startswith("Of the 2 defense settings attacked with reference models trained with their own recipe, "
                           "2 lower Yeom's advantage.")
    assert "Against the adversary who knows the recipe, 2 keep it (random crop, c = 4 and distillation, T = 50)" in text
    assert "RMIA gains against distillation, T = 50" in text
    # Yeom not lowered: nothing to test
    results.aware.append("DP-SGD, σ_DP = 1")
    assert {row["setting"]: row for row in sa.adversary_rows(results)}["DP-SGD, σ_DP = 1"]["rmia_survival"] == \
        sa.UNTESTED


def test_resolution_and_reference_count_tables():
    results = _results()
    table = sa.resolution_table(results)
    assert list(table.index) == [sa.ATTACK_TITLES[a] for a in sa.LABEL_ONLY_ATTACKS]
    assert table.loc["label-only boundary", "per side"] == "10" and table.loc["label-only gap", "per side"] == "40"
    assert (table["on the baseline"] == "resolved").all()
    results.baseline = _setting("baseline", None, SEEDS, "baseline", overrides={"boundary": (0.0, 0.1)})
    assert sa.resolution_table(results).loc["label-only boundary", "on the baseline"] == \
        "not resolvable at n = 10 per side"
    assert "Not resolvable on the baseline" in sa.resolution_sentence(results)
    half = results.baseline.estimate("gap").half_width
    assert sa.resolution_table(results).loc["label-only gap", "smallest resolvable advantage (pp)"] == \
        f"{100 * half:.1f}"
    counts = sa.reference_count_table(results)
    assert list(counts.index) == [1, 2] and counts.loc[1, "chosen"] == "yes"
    assert counts.loc[2, "models trained per setting"] == 4
    assert "6 runs in all" in sa.reference_count_sentence(results)


def test_compact_table_splits_into_the_aucs_and_the_low_fpr_rates():
    table = sa.compact_table(_results())
    aucs, rates = sa.compact_views(_results())
    assert list(aucs.columns) + list(rates.columns) == list(table.columns)
    assert set(aucs.columns.get_level_values("metric")) == {"AUC (%)"}
    assert "AUC (%)" not in set(rates.columns.get_level_values("metric"))


def test_compact_table_leaves_out_unresolvable_rates():
    table = sa.compact_table(_results())
    metrics = list(dict.fromkeys(table.columns.get_level_values(0)))
    assert metrics == ["AUC (%)", "TPR @ 1 % FPR (%)"]  # no attack resolves 0.1 % here
    assert table.shape == (4, 2 * len(sa.ATTACKS))
    assert table.loc["baseline", ("TPR @ 1 % FPR (%)", "RMIA")] == "10.00"
    assert table.loc["baseline", ("AUC (%)", "Yeom")] == "60.0"


def test_cost_table_rows_and_reference_models():
    table = sa.cost_table(_results())
    assert list(table.index) == [sa.ATTACK_TITLES[a] for a in sa.ATTACKS]
    rmia = sa.ATTACK_TITLES["rmia"]
    assert table.loc[rmia, "reference models"] == 4 and table.loc[rmia, "once per seed (s)"] == "2.0"
    assert table.loc[sa.ATTACK_TITLES["rmia_aware"], "reference models"] == 2  # 2 m, m = 1
    assert table.loc["label-only translation (d = 1)", "target forward passes / sample"] == "5"
    assert table.loc["label-only translation (d = 2)", "target forward passes / sample"] == "9"
    assert table.loc["label-only boundary", "target forward passes / sample"] == "≤ 61 (mean 12.0)"
    assert table.loc["label-only boundary", "samples per side"] == OPTIONS["boundary_samples"]
    assert table.loc["label-only gap", "reads labels only"] == "yes"


def test_strongest_attack_prefers_the_low_fpr_rate():
    item = _setting("baseline", None, SEEDS, "baseline", overrides={"translation": (0.2, 0.3)})
    assert sa.strongest_attack(item) == ("translation", "tpr_at_1%_fpr")
    unresolved = _setting("baseline", None, SEEDS, "baseline", tpr=math.nan)
    assert sa.strongest_attack(unresolved)[1] == "auc"


def test_outlier_readings_known_answers():
    baseline = _setting("baseline", None, SEEDS, "baseline", advantage=0.20, tpr=0.10)
    average_only = _setting("dropout", 0.5, SEEDS, "RAD<5%", advantage=0.10, tpr=0.09)  # adv -50 %, TPR -10 %
    outliers_too = _setting("random_crop", 4, SEEDS, "RAD<15%", advantage=0.18, tpr=0.02)  # adv -10 %, TPR -80 %
    same = _setting("weight_decay", 0.01, SEEDS, "RAD<15%", advantage=0.10, tpr=0.05)  # both -50 %
    results = sa.StrongerAttacks("fmnist", SEEDS, baseline, [average_only, outliers_too, same], dict(OPTIONS), 4, N,
                                 [0.0])
    readings = sa.outlier_readings(results, "rmia")
    assert [r.reading for r in readings] == [sa.OUTLIERS_LESS, sa.OUTLIERS_MORE, INCONCLUSIVE]
    assert readings[0].advantage.mean == pytest.approx(-0.5) and readings[0].tpr.mean == pytest.approx(-0.1)
    text = sa.outliers_sentence(readings, 2000)
    assert text.startswith("Against RMIA (baseline-recipe references), the strongest attack on the baseline at 1 % "
                           "FPR: dropout, p = 0.5 protects")
    assert "random crop, c = 4 protects the most exposed members" in text
    assert "for weight decay, λ = 0.01 the two relative drops cannot be told apart" in text
    table = sa.outliers_table(readings)
    assert list(table.columns) == ["Δ TPR @ 1 % FPR (% of baseline)", "Δ advantage (% of baseline)", "reading"]


def test_outliers_are_inconclusive_when_the_baseline_rate_is_not_resolvable():
    baseline = _setting("baseline", None, SEEDS, "baseline", tpr=math.nan)
    defense = _setting("dropout", 0.5, SEEDS, "RAD<5%", advantage=0.1, tpr=math.nan)
    results = sa.StrongerAttacks("fmnist", SEEDS, baseline, [defense], dict(OPTIONS), 4, N, [0.0])
    readings = sa.outlier_readings(results, "yeom")
    assert readings[0].reading == INCONCLUSIVE
    assert "inconclusive for every one of them" in sa.outliers_sentence(readings, 100)


def test_slice_advantage_known_answer_and_small_slices():
    is_member = torch.tensor([True] * 20 + [False] * 20)
    predicted = is_member.clone()
    predicted[:5] = False  # 15 of 20 members flagged, no non-member
    result = attack_result("x", predicted.double(), predicted, 0.5, is_member, 0, 0)
    everything = torch.ones(40, dtype=torch.bool)
    assert sa.slice_advantage(result, everything) == pytest.approx(0.75)
    assert math.isnan(sa.slice_advantage(result, torch.arange(40) < 25))  # 5 non-members only


def test_slice_frame_has_every_attack_and_slice():
    frame = sa.slice_frame(_results().baseline, "fmnist", min_count=6)
    assert list(frame.index) == [sa.ATTACK_TITLES[a] for a in sa.ATTACKS]
    assert list(frame.columns) == ["T-shirt", "trouser", "correct", "misclassified"]
    # the boundary subsample holds 5 members per class and 2 misclassified ones: fewer than 6
    assert frame.loc["label-only boundary", ["T-shirt", "trouser", "misclassified"]].isna().all()
    assert not math.isnan(frame.loc["label-only boundary", "correct"])
    assert not frame.loc["Yeom"].isna().any()
    assert "gains most on the class" in sa.slices_sentence(_results())


def test_overlap_known_answers():
    flags = {"a": frozenset({1, 2, 3}), "b": frozenset({2, 3, 4}), "c": frozenset()}
    pairs = sa.jaccard_pairs(flags)
    assert pairs[("a", "b")] == pytest.approx(0.5) and pairs[("a", "c")] == 0.0
    assert math.isnan(sa.jaccard_pairs({"x": frozenset(), "y": frozenset()})[("x", "y")])
    assert sa.intersections(flags) == [(("a", "b"), 2), (("a",), 1), (("b",), 1)]
    run = _results().baseline.runs[0]
    flagged = sa.flagged_members(run)
    query_members = set(range(OPTIONS["query_samples"]))
    assert set(flagged) == set(sa.OVERLAP_ATTACKS) and all(f <= query_members for f in flagged.values())
    low = sa.flagged_members(run, fpr=0.02)  # no false positive allowed among 20 or 40: above the top one
    for attack, members in low.items():
        result = run.results[attack]
        top = result.scores[~result.is_member].max()
        positions = run.samples[attack][(result.scores > top) & result.is_member].tolist()
        assert members == frozenset(p for p in positions if p in query_members)
    text = sa.overlap_sentence(_results())
    assert "at their own thresholds overlap with a mean pairwise Jaccard index of" in text


def test_key_values_and_figures(monkeypatch):
    results = _results()
    values = sa.key_values(results)
    assert set(values) == KEY_VALUES
    assert values["n_defenses"] == 3 and values["n_ch02"] == 2 and values["n_dp"] == 1
    assert values["holds_yeom"] == 2 and values["base_yeom"].startswith("20.0 [") and values["rmia_gamma"] == "2"
    monkeypatch.setattr(sa, "_evaluation_images", lambda config: torch.zeros(2 * N, 1, 28, 28, dtype=torch.uint8))
    for item in results.settings:
        item.setting.configs = [None] * len(item.runs)
    shown = sa.figures(results)
    assert set(shown) == {"exposed_gallery", "slices", "overlap"}
    assert len(sa.gallery_settings(results)) == 4  # baseline, two RAD<15 % picks, the DP setting
    assert [s.title for s in sa.slice_settings(results)] == ["baseline", "random crop, c = 4", "distillation, T = 50"]
    assert [s.title for s in sa.overlap_settings(results)] == ["baseline", "random crop, c = 4"]
    # the hand-made runs share their scores across settings (same seeds), so every top member stays
    assert sa.gallery_overlap(results) == {"random crop, c = 4": 8, "distillation, T = 50": 8, "DP-SGD, σ_DP = 1": 8}
    # every attack ties on the hand-made TPR, so the first, Yeom, is the strongest
    assert sa.gallery_sentence(results).startswith("Of the baseline's 8 members that Yeom scores highest")
    import matplotlib.pyplot as plt

    for figure in shown.values():
        plt.close(figure)


def test_chapter_settings_merges_scenarios_and_appends_dp():
    settings = [Setting("distillation", 50, SEEDS, []), Setting("dropout", 0.5, SEEDS, []),
                Setting("dropout", 0.9, SEEDS, [])]
    scenarios = pd.DataFrame([{"mechanism": "distillation", "scenario": s, "value": 50}
                              for s in ("max", "rad5", "rad15")]
                             + [{"mechanism": "dropout", "scenario": "rad5", "value": 0.5},
                                {"mechanism": "dropout", "scenario": "rad15", "value": 0.9}])
    reg = sa.findings.RegularizationResults("fmnist", SEEDS, Setting("baseline", None, SEEDS, []), settings, scenarios)
    dp = [Setting("dp_sgd", 1.0, SEEDS, [])]
    chosen = [(setting.label, selection) for setting, selection in sa.chapter_settings(reg, dp)]
    assert chosen == [("distillation = 50", "RAD<5% and RAD<15%"), ("dropout = 0.5", "RAD<5%"),
                      ("dropout = 0.9", "RAD<15%"), ("dp_sgd = 1", "DP-SGD grid")]


def _fake_run(key="r", seed=0):
    outputs = {"eval_is_member": torch.cat([torch.ones(N, dtype=torch.bool), torch.zeros(N, dtype=torch.bool)]),
               "eval_labels": torch.arange(2 * N) % 2, "eval_logits": torch.randn(2 * N, 2)}
    return SimpleNamespace(key=key, config=SimpleNamespace(seed=seed), outputs=outputs)


def test_attack_run_is_computed_once_and_read_back(monkeypatch, store):
    calls = []
    made = _run(0)

    def fake_measure(run, epoch, references, options, n_bootstrap, aware=None):
        calls.append(references)
        return made.results, made.samples, made.seconds, made.notes

    monkeypatch.setattr(sa, "measure_run", fake_measure)
    first = sa.attack_run(_fake_run(), None, lambda: "refs", ["s0", "s1"], OPTIONS, 10, store)
    second = sa.attack_run(_fake_run(), None, lambda: pytest.fail("read back, not computed"), ["s0", "s1"], OPTIONS,
                           10, store)
    assert calls == ["refs"]
    for attack in sa.ATTACKS:  # bitwise on any CPU: the results themselves, then read back from the store
        assert torch.equal(first.results[attack].scores, made.results[attack].scores)
        assert torch.equal(second.results[attack].predicted, made.results[attack].predicted)
        assert torch.equal(second.samples[attack], made.samples[attack])
        assert second.results[attack].metrics["advantage"].value == made.results[attack].metrics["advantage"].value
        assert math.isnan(second.results[attack].metrics["tpr_at_0.1%_fpr"].value)
    assert second.notes == made.notes and second.seconds == made.seconds
    other = sa.attack_key("r", None, ["s0", "s1"], {**OPTIONS, "augmentations": 4}, 10)
    assert other != sa.attack_key("r", None, ["s0", "s1"], OPTIONS, 10) != sa.attack_key("r", 5, ["s0", "s1"],
                                                                                          OPTIONS, 10)


def test_references_read_stored_outputs_on_the_shared_split_and_query_elsewhere():
    """Shadow models that share the target's split give their stored outputs; on another seed's split
    they are queried; either way their IN masks come from their training sets."""
    from mia_utils.data import (
        evaluation_indices,
        gather,
        load_dataset,
        split_for,
        training_indices,
    )
    from mia_utils.models import build_model, predict_logits

    base = get_profile("smoke").base_config("fmnist")
    data = load_dataset("fmnist")
    torch.manual_seed(0)
    model = build_model("fmnist", width=0.0625).eval()
    shadows = []
    for i in range(2):
        config = base.shadow(i, 2)
        split = split_for(config, data.info)
        own = training_indices(config, data.info, split)
        eval_index = evaluation_indices(data.info, split)
        adv_index = torch.cat([split.adv_members, data.info.n_train + split.adv_nonmembers])
        outputs = {"eval_logits": predict_logits(model, gather(data, eval_index)[0]),
                   "adv_logits": predict_logits(model, gather(data, adv_index)[0]),
                   "eval_in_training": torch.isin(eval_index, own)}
        shadows.append(SimpleNamespace(config=config, key=f"s{i}", outputs=outputs, model=lambda epoch=None: model))
    shared = sa.compute_references(shadows, base)
    assert torch.equal(shared.eval_in, torch.stack([s.outputs["eval_in_training"] for s in shadows]))  # booleans
    assert not shared.adv_in.any()  # LiRA's pool leaves the adversary's samples out
    assert shared.eval_in.sum(0).max() <= 1 and shared.eval_in.float().mean() > 0.3
    other = base.replace(split_seed=1, seed=1)
    assert not sa.same_split(base, other)
    queried = sa.compute_references(shadows, other)
    split = split_for(other, data.info)
    expected = predict_logits(model, gather(data, evaluation_indices(data.info, split))[0])
    assert torch.allclose(queried.eval_logits[0], expected)
    assert queried.eval_logits.shape == (2, 2 * base.n_eval, 10)


def test_parameters_defaults_floors_and_maxima():
    params = validate("09_stronger_attacks", {"profile": "quick"}, check_available=False)
    assert stronger_attack_options(params) == {"augmentations": 8, "query_samples": 500, "boundary_samples": 500,
                                               "aware_references": 2}
    params = validate("09_stronger_attacks", {"profile": "smoke", "query_samples": 60, "augmentations": 3},
                      check_available=False)
    assert stronger_attack_options(params) == {"augmentations": 3, "query_samples": 60, "boundary_samples": 20,
                                               "aware_references": 1}
    with pytest.raises(ParameterError, match="'augmentations': got 1; allowed: 0 .* or at least 2"):
        validate("09_stronger_attacks", {"profile": "smoke", "augmentations": 1}, check_available=False)
    with pytest.raises(ParameterError, match="'boundary_samples': got 500; .* at most 100"):
        validate("09_stronger_attacks", {"profile": "smoke", "boundary_samples": 500}, check_available=False)


def test_runs_list_the_grids_and_the_reference_models():
    profile = get_profile("smoke")
    params = validate("09_stronger_attacks", {"profile": "smoke"}, check_available=False)
    configs = RUNS["09_stronger_attacks"](profile, params).configs
    shadows = [c for c in configs if c.is_shadow]
    assert len(shadows) == profile.shadow_models and {c.split_seed for c in shadows} == {0}
    dp = {dict(c.mechanisms)["dp_sgd"] for c in configs if "dp_sgd" in dict(c.mechanisms)}
    assert dp == set(profile.grids["dp_sgd"])
    baselines = [c for c in configs if not c.mechanisms and not c.is_shadow]
    # the baseline's seeds: the profile's, and at least twice the settings' (chapter 02 confirms on them)
    assert len(baselines) == max(profile.baseline_seeds, 2 * profile.seeds)
    assert len({c.key() for c in configs}) == len(configs)


def test_aware_settings_take_the_named_mechanisms_picks_and_one_dp_setting():
    settings = [Setting(m, v, SEEDS, []) for m, v in (("distillation", 50), ("distillation", 100),
                                                       ("random_crop", 4), ("dropout", 0.5), ("early_stopping", 5))]
    scenarios = pd.DataFrame([{"mechanism": m, "scenario": s, "value": v} for m, s, v in (
        ("distillation", "rad5", 50), ("distillation", "rad15", 100), ("random_crop", "rad5", 4),
        ("random_crop", "rad15", 4), ("dropout", "rad5", 0.5), ("early_stopping", "rad5", 5))])
    reg = sa.findings.RegularizationResults("fmnist", SEEDS, Setting("baseline", None, SEEDS, []), settings, scenarios)
    dp = [Setting("dp_sgd", sigma, SEEDS, []) for sigma in (0.1, 1.0)]
    chosen = [s.label for s in sa.aware_settings(reg, dp, 1.0)]
    assert chosen == ["distillation = 50", "distillation = 100", "random_crop = 4", "early_stopping = 5",
                      "dp_sgd = 1"]  # dropout is not attacked with recipe-aware references


def test_aware_reference_configs_keep_the_recipe_on_the_shadow_halves():
    base = get_profile("smoke").base_config("fmnist").with_mechanisms(distillation=50.0)
    configs = sa.aware_reference_configs(base.replace(snapshot_epochs=(1,)), 4)
    assert [(c.shadow_index, c.shadow_count) for c in configs] == [(0, 4), (1, 4), (2, 4), (3, 4)]
    assert all(c.mechanisms == base.mechanisms and c.snapshot_epochs == () for c in configs)
    assert configs[0].teacher() == base.replace(mechanisms=(), snapshot_epochs=()).shadow(0, 4)
    with pytest.raises(ValueError, match="count: must be an even number >= 2"):
        sa.aware_reference_configs(base, 3)
    assert sa.aware_count({"aware_references": 2}) == 4


def test_aware_dp_sigma_defaults_and_checks():
    from mia_utils.book.chapters import aware_dp_sigma

    quick = validate("09_stronger_attacks", {"profile": "quick"}, check_available=False)
    assert aware_dp_sigma(quick) == 1.0
    smoke = validate("09_stronger_attacks", {"profile": "smoke"}, check_available=False)
    assert aware_dp_sigma(smoke) == 0.01  # the smoke grid holds 0.01 and 10
    assert aware_dp_sigma({**quick, "aware_dp_sigma": 0.25}) == 0.25
    with pytest.raises(ParameterError, match="'aware_dp_sigma': got 0.3; allowed: 0 .* 0.01, 0.1, 0.25, 1, 10"):
        aware_dp_sigma({**quick, "aware_dp_sigma": 0.3})


def test_rmia_scoring_every_sample_alike_tests_nothing():
    results = _results()
    distil = results.defenses[1]
    for run in distil.runs:
        result = run.results["rmia_aware"]
        run.results["rmia_aware"] = AttackResult(result.name, torch.zeros_like(result.scores), result.predicted,
                                                 math.inf, result.is_member, result.metrics)
    assert sa.constant_scores(distil, "rmia_aware") and not sa.constant_scores(distil, "rmia")
    rows = {row["setting"]: row for row in sa.adversary_rows(results)}
    assert rows["distillation, T = 50"]["rmia_aware_survival"] == sa.DEGENERATE
    text = sa.aware_sentence(results)
    assert "against distillation, T = 50 RMIA gives every sample the same score" in text
    assert "The two adversaries disagree on distillation, T = 50 (RMIA's change +10.0" in text
