"""The related-work experiments (mia_utils.book) on small hand-made or tiny trained cases."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from mia_utils.book import generalization, mmd_mixup, ood_scores, verdicts

pytestmark = pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")


def test_spearman_interval_matches_scipy_and_brackets_it():
    x = [0.1, 0.4, 0.2, 0.8, 0.5, 0.9, 0.3]
    y = [1.0, 3.0, 2.5, 6.0, 4.0, 5.5, 1.5]
    rho, low, high = verdicts.spearman_interval(x, y, n_bootstrap=500, seed=1)
    assert rho == pytest.approx(spearmanr(x, y).statistic)
    assert -1 <= low <= rho <= high <= 1
    assert verdicts.spearman_interval(x, y, n_bootstrap=500, seed=1) == (rho, low, high)  # seeded
    with pytest.raises(ValueError, match="at least 3 points"):
        verdicts.spearman_interval([1, 2], [3, 4])


def test_confidence_attack_threshold_and_ood_false_positives():
    def probs(top):  # two classes, top probability ``top`` on class 0
        top = torch.tensor(top, dtype=torch.float64)
        return torch.stack([top, 1 - top], 1)

    adv = probs([0.99, 0.98, 0.97, 0.70, 0.60, 0.65])
    adv_member = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    evaluation = probs([0.99, 0.95, 0.60, 0.96, 0.55, 0.50])
    eval_member = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    ood = {"noise": probs([0.99, 0.99, 0.51, 0.52]), "calm": probs([0.5, 0.5, 0.6, 0.55])}
    result = ood_scores.confidence_attack_fprs(evaluation, eval_member, adv, adv_member, ood)
    assert 0.70 < result["threshold"] < 0.97  # between the adversary's non-members and members
    assert result["tpr"] == pytest.approx(2 / 3) and result["fpr"] == pytest.approx(1 / 3)
    assert result["advantage"] == pytest.approx(1 / 3)
    assert result["fpr_noise"] == pytest.approx(0.5) and result["fpr_calm"] == 0.0
    assert 0 <= result["auc"] <= 1


@pytest.mark.slow
def test_population_lira_attacks_each_model_with_the_others(tiny_config, store):
    from mia_utils import experiment
    from mia_utils.data import DATASETS, make_split
    from mia_utils.data import training_indices

    config = tiny_config.replace(epochs=2, snapshot_epochs=(1,))
    rows = generalization.population_lira(config, 4, [1, 2], store, n_bootstrap=10)
    assert [(r["epoch"], r["model"]) for r in rows] == [(e, m) for e in (1, 2) for m in range(4)]
    # computed once: a derived entry of the store, read back the same (values, NaNs and column order)
    cached = [key for key in store.keys() if key.startswith("lira-")]
    assert len(cached) == 1 and cached[0] not in store.run_keys()
    again = generalization.population_lira(config, 4, [2, 1], store, n_bootstrap=10)
    assert [list(r) for r in again] == [list(r) for r in rows]
    assert all(a == b or (math.isnan(a) and math.isnan(b)) for r, s in zip(rows, again) for a, b in
               zip(r.values(), s.values()))
    assert len([key for key in store.keys() if key.startswith("lira-")]) == 1
    info = DATASETS[config.dataset]
    split = make_split(info, config.n_members, config.n_eval, config.n_adversary, config.split_seed)
    for row in rows:
        run = experiment.run(config.shadow(row["model"], 4), store)
        outputs = generalization.outputs_at(run, row["epoch"])
        # the target's members are the evaluated examples it trained on, balanced against its non-members
        in_training = outputs["eval_in_training"]
        assert row["n_nonmembers"] == min(int(in_training.sum()), int((~in_training).sum()))
        assert 0 <= row["auc"] <= 1 and math.isnan(row["tpr_at_1%_fpr"])  # too few non-members for 1 %
        # test accuracy leaves out the test images the model trained on
        trained = training_indices(run.config, info, split)
        held_out = torch.ones(info.n_test, dtype=torch.bool)
        held_out[trained[trained >= info.n_train] - info.n_train] = False
        assert held_out.sum() < info.n_test  # the pool holds test images
        correct = outputs["test_logits"].argmax(1) == outputs["test_labels"]
        assert row["test_acc"] == pytest.approx(correct[held_out].double().mean().item())
        assert row["gap"] == pytest.approx(row["train_acc"] - row["test_acc"])
    # every population model was trained once, and no target run was needed
    assert all(store.exists(config.shadow(i, 4).key()) for i in range(4)) and not store.exists(config.key())
    with pytest.raises(ValueError, match=r"epochs: \[3\] are not among"):
        generalization.population_lira(config.replace(epochs=4), 4, [3], store)
    with pytest.raises(ValueError, match="count: a population needs an even number of at least 4"):
        generalization.population_lira(config, 2, [2], store)
    # augmented queries: none beyond the clean image without cropping, the nine shifts with it
    assert {r["queries"] for r in generalization.population_lira(config, 4, [2], store, n_bootstrap=10, augmented=True)} == {1}
    cropped = config.replace(epochs=1, snapshot_epochs=()).with_mechanisms(random_crop=2)
    rows = generalization.population_lira(cropped, 4, [1], store, n_bootstrap=10, augmented=True)
    assert {r["queries"] for r in rows} == {9} and all(0 <= r["auc"] <= 1 for r in rows)
    one = pd.DataFrame([dict(r, crop=2) for r in generalization.population_lira(cropped, 4, [1], store, n_bootstrap=10)])
    table = generalization.query_comparison(one, pd.DataFrame([dict(r, crop=2) for r in rows]))
    assert list(table.index) == [(2, 1)] and ("AUC (%)", "9 queries") in table.columns


def test_population_target_is_balanced_on_the_models_own_membership():
    trained_in = torch.tensor([1, 0, 1, 1, 0, 1, 1, 0], dtype=torch.bool)
    outputs = {"eval_in_training": trained_in, "eval_logits": torch.arange(16.0).reshape(8, 2),
               "eval_labels": torch.zeros(8, dtype=torch.long), "member_losses": torch.tensor([0.1, 0.3]),
               "adv_logits": torch.zeros(2, 2), "adv_labels": torch.zeros(2, dtype=torch.long),
               "adv_is_member": torch.tensor([True, False])}
    inputs, kept = generalization.population_target(outputs)
    assert kept.tolist() == [0, 2, 3, 1, 4, 7]  # the first three members, then the three non-members
    assert inputs.is_member.tolist() == [True] * 3 + [False] * 3
    assert torch.equal(inputs.logits, outputs["eval_logits"][kept].double())  # indexing and an exact widening
    assert inputs.average_train_loss == pytest.approx(0.2)


def _population_points(values_by_crop, epochs=(1, 2), std=0.005):
    """Rows of population_lira: per crop, per epoch, per model; ``values_by_crop[crop]`` gives
    (tpr at the last epoch per model, test accuracy); without cropping earlier epochs leak less,
    with it every epoch leaks alike."""
    rows = []
    for crop, (tprs, test_acc) in values_by_crop.items():
        for epoch in epochs:
            for model, tpr in enumerate(tprs):
                scale = epoch / max(epochs) if crop == 0 else 1.0
                rows.append({"crop": crop, "epoch": epoch, "model": model, "test_acc": test_acc, "train_acc": 0.99,
                             "gap": 0.99 - test_acc, "auc": 0.5 + tpr * scale, "auc_std": 0.01,
                             "tpr_at_1%_fpr": tpr * scale, "tpr_at_1%_fpr_std": std, "tpr_at_0.1%_fpr": math.nan,
                             "tpr_at_0.1%_fpr_std": math.nan, "n_nonmembers": 2000})
    return pd.DataFrame(rows)


def test_population_means_and_table():
    points = _population_points({0: ([0.10, 0.12, 0.14], 0.85)})
    means = generalization.population_means(points)
    last = means[means["epoch"] == 2].iloc[0]
    assert last["models"] == 3 and last["tpr_at_1%_fpr"] == pytest.approx(0.12)
    # t interval across the three models (sd 0.02), the bootstrap variance below it
    half = 4.302652729911275 * 0.02 / math.sqrt(3)
    assert last["tpr_at_1%_fpr_high"] - last["tpr_at_1%_fpr"] == pytest.approx(half)
    table = generalization.population_table(means)
    assert table.loc[(0, 2), "TPR @ 1 % FPR (%)"].startswith("12.00 [")
    assert table.loc[(0, 2), "TPR @ 0.1 % FPR (%)"] == "not resolvable at n = 2,000 non-members per side"


def test_query_comparison_pairs_the_same_models():
    one = _population_points({4: ([0.02, 0.03, 0.04], 0.84)})
    augmented = _population_points({4: ([0.05, 0.06, 0.07], 0.84)})
    augmented["queries"] = 9
    table = generalization.query_comparison(one, augmented[augmented["epoch"] == 2])
    assert list(table.index) == [(4, 2)]
    row = table.loc[(4, 2)]
    assert row[("TPR at 1 % FPR (%)", "one query")].startswith("3.00 [")
    assert row[("TPR at 1 % FPR (%)", "9 queries")].startswith("6.00 [")
    assert row[("TPR at 1 % FPR (%)", "difference (pp)")].startswith("+3.00 [")


def test_population_difference_pairs_models_and_checks_them():
    before = _population_points({0: ([0.10, 0.12, 0.14], 0.85)})
    lower = _population_points({0: ([0.05, 0.06, 0.07], 0.85)})
    finding = generalization.population_difference("lowers", lower[lower.epoch == 2], before[before.epoch == 2],
                                            "tpr_at_1%_fpr")
    assert finding.verdict == HOLDS and finding.estimate.mean == pytest.approx(-0.06) and "3 seeds" in finding.text
    with pytest.raises(ValueError, match="models"):
        generalization.population_difference("x", lower[(lower.epoch == 2) & (lower.model < 2)], before[before.epoch == 2],
                                      "tpr_at_1%_fpr")


# --- verdicts: synthetic cases whose truth is known ------------------------------------------

from mia_utils.attacks.evidence import CONTRADICTED, HOLDS, INCONCLUSIVE, combine_verdicts  # noqa: E402
from mia_utils.book.replicated import Setting  # noqa: E402


def test_gap_predicts_better_holds_is_inconclusive_and_is_contradicted():
    rng = np.random.default_rng(0)
    n = 30
    gap = rng.uniform(0, 0.3, n)
    noise = rng.uniform(0, 1, n)
    # success follows the gap exactly; test accuracy is unrelated noise
    clear = generalization.gap_predicts_better(gap, noise, 0.01 + gap, n_bootstrap=500)
    assert clear.verdict == HOLDS and clear.estimate.low > 0
    assert clear.parts["rho_gap"].mean == pytest.approx(1.0)
    assert "|ρ(gap)| − |ρ(test accuracy)|" in clear.text and "30 models of 1 seed" in clear.text
    # the opposite: success follows test accuracy (downwards: |rho| counts), the gap is noise
    opposite = generalization.gap_predicts_better(gap, noise, 1 - noise, n_bootstrap=500)
    assert opposite.verdict == CONTRADICTED and opposite.estimate.high < 0
    # both predict it equally well (the gap is a monotone function of test accuracy)
    same = generalization.gap_predicts_better(gap, 1 - gap, gap, n_bootstrap=500)
    assert same.verdict == INCONCLUSIVE and same.estimate.mean == pytest.approx(0.0)


def test_gap_predicts_better_with_too_few_points_or_nan_is_inconclusive_by_design():
    few = generalization.gap_predicts_better([0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6], [0.1, 0.2, 0.3, 0.4])
    assert few.verdict == INCONCLUSIVE and "too few" in few.text and "nan" not in few.text
    unresolved = generalization.gap_predicts_better(np.arange(8.0), np.arange(8.0)[::-1], [math.nan] * 8)
    assert unresolved.verdict == INCONCLUSIVE and "undefined" in unresolved.text


def test_rank_correlations_match_scipy_and_share_resamples():
    x = [0.1, 0.4, 0.2, 0.8, 0.5, 0.9, 0.3, 0.6]
    y = [1.0, 3.0, 2.5, 6.0, 4.0, 5.5, 1.5, 4.5]
    rhos, diff = verdicts.rank_correlations({"a": x, "b": y}, y, n_bootstrap=300, seed=3)
    assert rhos["a"].mean == pytest.approx(spearmanr(x, y).statistic)
    assert rhos["b"].mean == 1.0 and rhos["b"].low == pytest.approx(1.0) and rhos["b"].high == pytest.approx(1.0)
    assert rhos["a"].low <= rhos["a"].mean <= rhos["a"].high
    assert diff.mean == pytest.approx(rhos["a"].mean - 1.0) and diff.high <= 1e-12  # same resamples: never above 0
    single, none = verdicts.rank_correlations({"a": x}, y, n_bootstrap=50)
    assert none is None and single["a"].mean == rhos["a"].mean


def test_rank_finding_three_states_and_too_few_points():
    x = np.linspace(0, 1, 20)
    noise = np.random.default_rng(1).permutation(20) / 20
    assert verdicts.rank_finding("rises", x, x ** 2, "increase", n_bootstrap=300).verdict == HOLDS
    assert verdicts.rank_finding("rises", x, 1 - x, "increase", n_bootstrap=300).verdict == CONTRADICTED
    flat = verdicts.rank_finding("rises", x, noise, "increase", n_bootstrap=300)
    assert flat.verdict == INCONCLUSIVE and flat.estimate.low < 0 < flat.estimate.high
    four = ood_scores.tradeoff_finding([0.4, 0.3, 0.2, 0.1], [0.1, 0.2, 0.3, 0.4])
    assert four.verdict == INCONCLUSIVE and "inconclusive by design" in four.text
    assert four.estimate.mean == pytest.approx(-1.0)  # the rho is shown, without an interval
    assert ood_scores.tradeoff_finding(x, 1 - x, n_bootstrap=300).verdict == HOLDS  # enough versions: a test


def test_difference_finding_three_states_levels_and_nan():
    lower = verdicts.difference_finding("lowers", [0.10], [0.30], [0.02 ** 2], [0.02 ** 2])
    assert lower.verdict == HOLDS and "1 seed: the interval covers the evaluation samples only" in lower.text
    assert "-20.0 [" in lower.text and "95 % interval" in lower.text
    assert verdicts.difference_finding("lowers", [0.31], [0.30], [0.02 ** 2], [0.02 ** 2]).verdict == INCONCLUSIVE
    assert verdicts.difference_finding("lowers", [0.50], [0.30], [0.02 ** 2], [0.02 ** 2]).verdict == CONTRADICTED
    # a difference that holds at 95 % but not once adjusted for being the best of 20
    plain = verdicts.difference_finding("lowers", [0.24], [0.30], [0.02 ** 2], [0.02 ** 2])
    chosen = verdicts.difference_finding("lowers", [0.24], [0.30], [0.02 ** 2], [0.02 ** 2],
                                        level=verdicts.selection_level(20), candidates=20)
    assert plain.verdict == HOLDS and chosen.verdict == INCONCLUSIVE and "best of 20" in chosen.text
    assert verdicts.selection_level(1) == pytest.approx(0.95) and verdicts.selection_level(10) == pytest.approx(0.995)
    nan = verdicts.difference_finding("lowers", [math.nan], [0.3], [math.nan], [1e-4],
                                     nan_text="not resolvable at n = 100")
    assert nan.verdict == INCONCLUSIVE and nan.text.startswith("not resolvable at n = 100") and "nan" not in nan.text


def test_rate_text_and_rho_text():
    assert verdicts.rate_text(0.123, 0.01 ** 2) == "12.3 [10.3, 14.3]"
    assert verdicts.rate_text(math.nan, None, 100) == "not resolvable at n = 100 non-members per side"
    assert verdicts.rate_text(0.5, None, unit="%") == "50.0 %"
    assert verdicts.rate_text(math.nan, None, 100, unit="%").endswith("per side")  # no unit after the words
    assert verdicts.false_positives_allowed(2000, 0.001) == 1 and verdicts.false_positives_allowed(1000, 0.001) == 0
    assert verdicts.false_positives_allowed(100, 0.01) == 0 and verdicts.false_positives_allowed(2000, 0.01) == 19
    assert verdicts.rho_text(verdicts.nan_estimate()) == "undefined"
    assert verdicts.rho_text(verdicts.nan_estimate(0.5)) == "0.50 (no interval)"


def _three_crops(tpr_baseline, tpr_combined):
    """Populations of 4 models at crop 0, 4 and 12; crop 4 stopped early leaks ``tpr_combined``."""
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 0.004, 4)
    return _population_points({0: (tpr_baseline + noise, 0.85), 4: (tpr_combined + noise, 0.84),
                               12: ((tpr_baseline + tpr_combined) / 2 + noise, 0.83)}, epochs=(1, 2, 3))


def test_generalization_findings_on_synthetic_populations():
    clear = generalization.generalization_findings(_three_crops(0.10, 0.02), n_bootstrap=300)
    assert clear.metric == "tpr_at_1%_fpr" and clear.note == ""
    assert clear.combination.verdict == HOLDS and "best of" in clear.combination.text
    assert "4 seeds" in clear.combination.text  # paired model by model
    assert clear.combined["crop"] == 4 and clear.within_budget
    assert "configurations (each the mean of its 4 models)" in clear.predictor.text
    assert len(clear.means) == 9
    assert generalization.generalization_findings(_three_crops(0.10, 0.10), n_bootstrap=300).combination.verdict \
        == INCONCLUSIVE
    # every combination leaks more than the baseline: contradicted
    assert generalization.generalization_findings(_three_crops(0.02, 0.30), n_bootstrap=300).combination.verdict \
        == CONTRADICTED


def test_generalization_findings_fall_back_to_the_auc_when_the_tpr_is_not_resolvable():
    points = _three_crops(0.10, 0.02)
    points["n_nonmembers"] = 100
    result = generalization.generalization_findings(points, n_bootstrap=300)
    assert result.metric == "auc" and "not resolvable at n = 100" in result.note
    assert "LiRA's AUC" in result.combination.claim
    for finding in (result.predictor, result.auc, result.combination):
        assert finding.verdict in (HOLDS, CONTRADICTED, INCONCLUSIVE) and "nan" not in finding.text
    # resolvable set size but NaN values (an attack that produced none) also falls back
    assert generalization.lira_success_metric([0.1, math.nan], 2000)[0] == "auc"
    assert generalization.lira_success_metric([0.1, 0.2], 2000) == ("tpr_at_1%_fpr", "")


def _setting(mechanism, value, **metrics):
    """A one-seed Setting whose metrics are (value, standard deviation) pairs."""
    evaluation = {name: {"value": v, "variance": s ** 2} for name, (v, s) in metrics.items()}
    return Setting(mechanism, value, (0,), [evaluation])


def test_mmd_versus_baseline_three_states():
    baseline = _setting("baseline", None, adv_yeom=(0.20, 0.01), gap=(0.10, 0.005), test_acc=(0.85, 0.005))
    lowers = _setting("mmd", 1.0, adv_yeom=(0.10, 0.01), gap=(0.03, 0.005), test_acc=(0.84, 0.005))
    result = mmd_mixup.mmd_versus_baseline(baseline, lowers)
    assert result["adv_yeom"].verdict == HOLDS and result["gap"].verdict == HOLDS and result["all"].verdict == HOLDS
    same = _setting("mmd", 1.0, adv_yeom=(0.20, 0.01), gap=(0.03, 0.005), test_acc=(0.84, 0.005))
    result = mmd_mixup.mmd_versus_baseline(baseline, same)
    assert result["adv_yeom"].verdict == INCONCLUSIVE and result["all"].verdict == INCONCLUSIVE
    worse = _setting("mmd", 1.0, adv_yeom=(0.30, 0.01), gap=(0.03, 0.005), test_acc=(0.84, 0.005))
    result = mmd_mixup.mmd_versus_baseline(baseline, worse)
    assert result["adv_yeom"].verdict == CONTRADICTED and result["all"].verdict == CONTRADICTED
    with pytest.raises(ValueError, match="seeds"):
        mmd_mixup.setting_difference("x", Setting("mmd", 1.0, (1,), lowers.evaluations), baseline, "gap")


def test_matched_accuracy_comparison_per_mechanism():
    defended = _setting("mmd", 1.0, adv_yeom=(0.10, 0.01), test_acc=(0.80, 0.005))
    settings = [
        # leaks clearly more at matched accuracy: the claim holds
        _setting("dropout", 0.1, adv_yeom=(0.25, 0.01), test_acc=(0.85, 0.005)),
        _setting("dropout", 0.5, adv_yeom=(0.20, 0.01), test_acc=(0.82, 0.005)),
        # the same leakage: inconclusive
        _setting("weight_decay", 0.01, adv_yeom=(0.105, 0.01), test_acc=(0.81, 0.005)),
        # leaks clearly less: contradicted
        _setting("random_crop", 4, adv_yeom=(0.02, 0.01), test_acc=(0.83, 0.005)),
        # only a less accurate setting: no match
        _setting("label_smoothing", 0.9, adv_yeom=(0.01, 0.01), test_acc=(0.70, 0.005)),
    ]
    result = {c.mechanism: c for c in mmd_mixup.matched_accuracy_comparison(
        defended, settings, ["dropout", "weight_decay", "random_crop", "label_smoothing"])}
    assert result["dropout"].finding.verdict == HOLDS
    assert result["dropout"].setting.value == 0.5 and result["dropout"].candidates == 2  # the least leaking match
    assert "best of 2" in result["dropout"].finding.text
    assert result["weight_decay"].finding.verdict == INCONCLUSIVE
    assert result["random_crop"].finding.verdict == CONTRADICTED
    assert result["label_smoothing"].setting is None and result["label_smoothing"].finding.verdict == INCONCLUSIVE
    assert combine_verdicts([c.finding.verdict for c in result.values()]) == CONTRADICTED
    assert verdicts.verdict_counts([c.finding for c in result.values()]) == "1 holds, 1 contradicted, 2 inconclusive"


def test_proportion_difference_and_ood_findings():
    diff = verdicts.proportion_difference(300, 1000, 20, 1000)
    assert diff.mean == pytest.approx(0.28) and diff.low < 0.28 < diff.high
    assert verdicts.proportion_difference(0, 100, 0, 100).low < 0 < verdicts.proportion_difference(0, 100, 0, 100).high
    pooled, per_set = ood_scores.ood_exceeds_test({"noise": 0.30, "digits": 0.05, "inverted": 0.005}, 1000, 0.05, 1000,
                                               titles={"noise": "uniform noise"})
    assert per_set["noise"].verdict == HOLDS and "uniform noise" in per_set["noise"].claim
    assert per_set["digits"].verdict == INCONCLUSIVE
    assert per_set["inverted"].verdict == CONTRADICTED
    assert pooled.estimate.mean == pytest.approx((300 + 50 + 5) / 3000 - 0.05)
    assert "Clopper-Pearson" in pooled.text and verdicts.ONE_SEED in pooled.text
    # several seeds: the difference is taken within each seed and combined across seeds
    pooled, per_set = ood_scores.ood_exceeds_test({"noise": [0.30, 0.28, 0.33], "digits": [0.05, 0.07, 0.04]}, 1000,
                                               [0.05, 0.06, 0.04], 1000)
    assert per_set["noise"].verdict == HOLDS and "3 seeds" in per_set["noise"].text
    assert per_set["noise"].estimate.mean == pytest.approx(np.mean([0.25, 0.22, 0.29]))
    assert per_set["digits"].verdict == INCONCLUSIVE
    assert pooled.estimate.mean == pytest.approx(np.mean([(0.30 + 0.05) / 2 - 0.05, (0.28 + 0.07) / 2 - 0.06,
                                                          (0.33 + 0.04) / 2 - 0.04]))
    with pytest.raises(ValueError, match="one rate per seed"):
        ood_scores.ood_exceeds_test({"noise": [0.3, 0.2]}, 1000, [0.05, 0.06, 0.04], 1000)


def test_ood_summary_and_mean_fpr():
    from mia_utils.attacks import ood

    def table(shift):
        rows = {v: {"advantage": 0.1 + shift, "auc": 0.6, "fpr": 0.05, "tpr": 0.15, "threshold": 0.9,
                    **{f"fpr_{k}": 0.1 * (i + 1) + shift for i, k in enumerate(ood.OOD_SETS)}}
                for v in ood_scores.OOD_VARIANTS}
        return pd.DataFrame(rows).T

    per_seed = [ood_scores.OodSeed(s, table(0.01 * s), 1.0, {}, 100, 100) for s in range(3)]
    summary = ood_scores.ood_summary(per_seed)
    assert list(summary.index) == list(ood_scores.OOD_VARIANTS) and "threshold" not in summary.columns
    assert summary.loc["last-layer Laplace", "advantage"].mean == pytest.approx(0.11)
    assert ood_scores.ood_mean_fpr(per_seed[0].table, "no calibration (MAP)") == pytest.approx(0.25)
    assert summary.loc["no calibration (MAP)", "mean_ood_fpr"].mean == pytest.approx(0.26)
    # a rate's interval over three seeds stays within [0, 1]
    spread = [ood_scores.OodSeed(s, table(shift), 1.0, {}, 100, 100) for s, shift in enumerate((0.0, 0.6, -0.05))]
    fpr = ood_scores.ood_summary(spread).loc["no calibration (MAP)", "fpr_uniform_noise"]
    assert fpr.low == 0.0 and fpr.high <= 1.0 and fpr.mean == pytest.approx(np.mean([0.4, 1.0, 0.35]))


@pytest.mark.parametrize("profile", ["smoke", "quick", "paper"])
def test_lira_chapters_targets_and_shadows_train_on_equally_many_images(profile):
    """Chapters 06 and 07 attack population models only: every LiRA target there is itself one
    of the population, so targets and shadows train on about as many images (half the pool)."""
    from mia_utils.book.plan import book_plan, training_images

    plan = book_plan(profile, chapters=["06_generalization_lira", "07_mmd_mixup"])
    populations = {}
    for planned in plan.runs.values():
        config = planned.config
        if config.is_shadow:
            populations.setdefault(config.replace(shadow_count=0, shadow_index=0, snapshot_epochs=()).key(),
                                   []).append(training_images(config))
    assert populations  # every configuration of both chapters has one
    for sizes in populations.values():
        assert len(sizes) >= 4 and max(sizes) <= 1.1 * min(sizes), sizes
    # chapter 06 trains no target of its own: its LiRA targets are the population models
    assert all(p.config.is_shadow for p in book_plan(profile, chapters=["06_generalization_lira"]).runs.values())


@pytest.mark.slow
def test_ood_experiment_is_measured_once_and_read_back_unchanged(store):
    from mia_utils.book.profiles import get_profile

    profile = get_profile("smoke")
    first = ood_scores.ood_experiment(profile, 0, store=store)
    assert len([key for key in store.keys() if key.startswith("ood-")]) == 1
    trained = set(store.run_keys())
    again = ood_scores.ood_experiment(profile, 0, store=store)
    pd.testing.assert_frame_equal(first.table, again.table)  # values, dtypes and order
    assert list(first.table.columns) == list(again.table.columns)
    assert (first.temperature, first.smoothing, first.smoothing_eces, first.temperature_rank_correlation,
            first.n_ood, first.n_test) == (again.temperature, again.smoothing, again.smoothing_eces,
                                            again.temperature_rank_correlation, again.n_ood, again.n_test)
    assert first.ood_images.keys() == again.ood_images.keys()
    assert all(torch.equal(first.ood_images[k], again.ood_images[k]) for k in first.ood_images)  # uint8, read back
    assert set(store.run_keys()) == trained and len([k for k in store.keys() if k.startswith("ood-")]) == 1
