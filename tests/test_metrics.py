import math

import numpy as np
import pytest
import torch
from scipy import stats
from sklearn import metrics as skm

from mia_utils.attacks import metrics
from mia_utils.attacks.metrics import Estimate


def sk_tpr_at_fpr(is_member, scores, target):
    """The LiRA reference (tensorflow/privacy research/mi_lira_2021/plot.py) on scikit-learn's ROC."""
    fpr, tpr, _ = skm.roc_curve(is_member, scores, drop_intermediate=False)
    return tpr[np.where(fpr < target)[0][-1]]


def make_case(seed, n, member_fraction, kind):
    rng = np.random.default_rng(seed)
    is_member = rng.random(n) < member_fraction
    is_member[:2] = [True, False]  # both classes present
    if kind == "continuous":
        scores = rng.normal(size=n) + 0.7 * is_member
    elif kind == "tied":
        scores = rng.integers(0, 6, size=n).astype(float) + is_member * (rng.random(n) < 0.3)
    else:  # a few distinct values with many ties at the top
        scores = np.round(rng.normal(size=n) + is_member, 1)
    return scores, is_member


CASES = [(seed, n, frac, kind)
         for seed, n, frac in [(0, 50, 0.5), (1, 1000, 0.5), (2, 3000, 0.1), (3, 2000, 0.85), (4, 20000, 0.5)]
         for kind in ("continuous", "tied", "rounded")]


@pytest.mark.parametrize("seed,n,frac,kind", CASES)
def test_roc_auc_and_tpr_at_fpr_agree_with_scikit_learn(seed, n, frac, kind):
    scores, is_member = make_case(seed, n, frac, kind)
    fpr, tpr, thresholds = metrics.roc_curve(scores, is_member)
    sk_fpr, sk_tpr, sk_thresholds = skm.roc_curve(is_member, scores, drop_intermediate=False)
    for ours, theirs in ((fpr, sk_fpr), (tpr, sk_tpr), (thresholds, sk_thresholds)):
        assert ours.dtype == np.float64 and ours.shape == theirs.shape
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert thresholds[0] == np.inf and (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert metrics.roc_auc(scores, is_member) == pytest.approx(skm.roc_auc_score(is_member, scores), abs=1e-9)
    for target in (0.001, 0.01, 0.1):
        assert metrics.tpr_at_fpr(scores, is_member, target) == pytest.approx(
            sk_tpr_at_fpr(is_member, scores, target), abs=1e-9)


@pytest.mark.parametrize("convert", [
    lambda s, m: (s, m),
    lambda s, m: (s, m.astype(np.int64)),
    lambda s, m: (torch.from_numpy(s), torch.from_numpy(m)),
    lambda s, m: (torch.from_numpy(s).float(), torch.from_numpy(m).to(torch.uint8)),
    lambda s, m: (list(s), list(m)),
], ids=["numpy-bool", "numpy-01", "torch-bool", "torch-float32-uint8", "lists"])
def test_input_types_give_the_same_results(convert):
    scores, is_member = make_case(5, 500, 0.4, "continuous")
    scores = scores.astype(np.float32).astype(np.float64)  # exact in float32 too
    expected = skm.roc_auc_score(is_member, scores)
    s, m = convert(scores, is_member)
    assert metrics.roc_auc(s, m) == pytest.approx(expected, abs=1e-9)
    assert metrics.tpr_at_fpr(s, m, 0.01) == pytest.approx(sk_tpr_at_fpr(is_member, scores, 0.01), abs=1e-9)


def test_roc_curve_by_hand_with_ties():
    scores = np.array([0.9, 0.8, 0.8, 0.3, 0.3, 0.1])
    is_member = np.array([1, 1, 0, 1, 0, 0])
    fpr, tpr, thresholds = metrics.roc_curve(scores, is_member)
    np.testing.assert_array_equal(thresholds, [np.inf, 0.9, 0.8, 0.3, 0.1])  # the scores themselves: exact
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1, 1])
    np.testing.assert_allclose(fpr, [0, 0, 1 / 3, 2 / 3, 1])
    # 9 (member, non-member) pairs: the member scores higher in 6, ties in 2 -> (6 + 2 / 2) / 9
    assert metrics.roc_auc(scores, is_member) == pytest.approx(7 / 9)
    assert metrics.tpr_at_fpr(scores, is_member, 0.1) == pytest.approx(1 / 3)
    assert metrics.tpr_at_fpr(scores, is_member, 1 / 3) == pytest.approx(1 / 3)  # the point at 1/3 is excluded
    assert metrics.tpr_at_fpr(scores, is_member, 0.5) == pytest.approx(2 / 3)
    assert metrics.tpr_at_fpr(scores, is_member, 1.0) == 1.0  # FPR 2/3 < 1


def test_tpr_at_fpr_excludes_a_point_exactly_at_the_target():
    # 4 non-members: one false positive is FPR 0.25 exactly. Curve (FPR, TPR): (0, 0), (0, 1/4),
    # (1/4, 1/4), (1/4, 2/4), (1/4, 3/4), (2/4, 3/4), ... With FPR < 0.25 only the first two count.
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2])
    is_member = np.array([1, 0, 1, 1, 0, 1, 0, 0])
    fpr, tpr, _ = metrics.roc_curve(scores, is_member)
    assert 0.25 in fpr and tpr[fpr <= 0.25].max() == 0.75  # what "<=" would give
    assert metrics.tpr_at_fpr(scores, is_member, 0.25) == 0.25 == sk_tpr_at_fpr(is_member, scores, 0.25)
    assert metrics.tpr_at_fpr(scores, is_member, 0.2500001) == 0.75
    assert metrics.tpr_at_fpr(scores, is_member, 0.2499999) == 0.25


@pytest.mark.parametrize("seed", range(5))
def test_tpr_at_fpr_is_the_reference_formula_on_random_scores(seed):
    rng = np.random.default_rng(seed)
    n_members, n_nonmembers = 1500, 2000  # 2 false positives sit exactly at FPR 0.1 %, 20 at 1 %
    is_member = rng.permutation(np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)])
    scores = rng.normal(size=is_member.size) + 1.5 * is_member
    fpr, tpr, _ = skm.roc_curve(is_member, scores, drop_intermediate=False)
    differs = []
    for target in (0.001, 0.01, 0.05):
        expected = tpr[np.where(fpr < target)[0][-1]]
        assert metrics.tpr_at_fpr(scores, is_member, target) == pytest.approx(expected, abs=1e-12)
        differs.append(expected < tpr[fpr <= target].max())
    assert any(differs)  # the case does tell "<" from "<="


def test_infinite_scores_are_one_threshold():
    scores = np.array([np.inf, np.inf, 1.0, -np.inf, -np.inf])
    is_member = np.array([True, False, True, False, True])
    fpr, tpr, thresholds = metrics.roc_curve(scores, is_member)
    np.testing.assert_array_equal(thresholds, [np.inf, np.inf, 1.0, -np.inf])  # the scores themselves: exact
    np.testing.assert_allclose(tpr, [0, 1 / 3, 2 / 3, 1])
    np.testing.assert_allclose(fpr, [0, 1 / 2, 1 / 2, 1])


def test_perfect_and_reversed_scores():
    is_member = np.arange(100) < 30
    scores = is_member.astype(float)
    assert metrics.roc_auc(scores, is_member) == 1.0
    assert metrics.tpr_at_fpr(scores, is_member, 0.01) == 1.0
    assert metrics.roc_auc(-scores, is_member) == 0.0
    assert metrics.tpr_at_fpr(-scores, is_member, 0.01) == 0.0
    assert metrics.roc_auc(np.zeros(100), is_member) == 0.5


# ---------------------------------------------------------------------------------------------
# Validation
# ---------------------------------------------------------------------------------------------

GOOD_SCORES = np.array([0.1, 0.5, 0.3, 0.9])
GOOD_MEMBERS = np.array([True, False, True, False])

SCORE_FUNCTIONS = {
    "roc_curve": metrics.roc_curve,
    "roc_auc": metrics.roc_auc,
    "tpr_at_fpr": lambda s, m: metrics.tpr_at_fpr(s, m, 0.01),
    "summarize": lambda s, m: metrics.summarize(s, np.zeros(np.shape(m), dtype=bool), m, n_bootstrap=3),
}
PREDICTION_FUNCTIONS = {
    "inference_accuracy": metrics.inference_accuracy,
    "advantage": metrics.advantage,
    "true_and_false_positive_rates": metrics.true_and_false_positive_rates,
}

BAD_SCORE_INPUTS = {
    "empty": (np.array([]), np.array([], dtype=bool), "scores: is empty"),
    "lengths": (GOOD_SCORES[:3], GOOD_MEMBERS, "different lengths: scores has 3, is_member has 4"),
    "2-D scores": (GOOD_SCORES.reshape(2, 2), GOOD_MEMBERS, r"scores: must be 1-D, got shape \(2, 2\)"),
    "2-D membership": (GOOD_SCORES, GOOD_MEMBERS.reshape(2, 2), r"is_member: must be 1-D, got shape \(2, 2\)"),
    "scalar": (np.float64(0.5), GOOD_MEMBERS, r"scores: must be 1-D, got shape \(\)"),
    "NaN": (np.array([0.1, np.nan, 0.3, np.nan]), GOOD_MEMBERS, r"scores: contains 2 NaN value\(s\)"),
    "no members": (GOOD_SCORES, np.zeros(4, dtype=bool), "needs both members and non-members.*no members"),
    "no non-members": (GOOD_SCORES, np.ones(4, dtype=bool), "needs both members and non-members.*no non-members"),
    "non-binary membership": (GOOD_SCORES, np.array([0, 1, 2, 1]), "is_member: must be boolean or 0/1"),
    "text scores": (np.array(["a", "b", "c", "d"]), GOOD_MEMBERS, "scores: must be real numbers"),
}


@pytest.mark.parametrize("function", SCORE_FUNCTIONS)
@pytest.mark.parametrize("case", BAD_SCORE_INPUTS)
def test_score_metrics_refuse_bad_input(function, case):
    scores, is_member, message = BAD_SCORE_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        SCORE_FUNCTIONS[function](scores, is_member)


BAD_PREDICTION_INPUTS = {
    "empty": (np.array([], dtype=bool), np.array([], dtype=bool), "predicted: is empty"),
    "lengths": (GOOD_MEMBERS[:3], GOOD_MEMBERS, "different lengths: predicted has 3, is_member has 4"),
    "2-D": (torch.ones(2, 2, dtype=torch.bool), GOOD_MEMBERS, r"predicted: must be 1-D, got shape \(2, 2\)"),
    "no members": (GOOD_MEMBERS, torch.zeros(4, dtype=torch.bool), "needs both members and non-members.*no members"),
    "no non-members": (GOOD_MEMBERS, torch.ones(4, dtype=torch.bool), "no non-members"),
    "non-binary guesses": (np.array([0.2, 0.9, 0.1, 0.7]), GOOD_MEMBERS, "predicted: must be boolean or 0/1"),
}


@pytest.mark.parametrize("function", PREDICTION_FUNCTIONS)
@pytest.mark.parametrize("case", BAD_PREDICTION_INPUTS)
def test_prediction_metrics_refuse_bad_input(function, case):
    predicted, is_member, message = BAD_PREDICTION_INPUTS[case]
    with pytest.raises(ValueError, match=message):
        PREDICTION_FUNCTIONS[function](predicted, is_member)


def test_summarize_checks_predicted_and_n_bootstrap():
    with pytest.raises(ValueError, match="different lengths: scores has 4, predicted has 3, is_member has 4"):
        metrics.summarize(GOOD_SCORES, GOOD_MEMBERS[:3], GOOD_MEMBERS)
    with pytest.raises(ValueError, match=r"predicted: must be 1-D"):
        metrics.summarize(GOOD_SCORES, GOOD_MEMBERS.reshape(2, 2), GOOD_MEMBERS)
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="n_bootstrap: must be a non-negative integer"):
            metrics.summarize(GOOD_SCORES, GOOD_MEMBERS, GOOD_MEMBERS, n_bootstrap=bad)


@pytest.mark.parametrize("target", [-0.1, 0.0, 1.5, float("nan")])
def test_tpr_at_fpr_refuses_a_bad_target(target):
    with pytest.raises(ValueError, match=r"fpr: target false positive rate must be in \(0, 1\]"):
        metrics.tpr_at_fpr(GOOD_SCORES, GOOD_MEMBERS, target)
    with pytest.raises(ValueError, match=r"fpr: target false positive rate must be in \(0, 1\]"):
        metrics.tpr_interval(GOOD_SCORES, GOOD_MEMBERS, target)
    with pytest.raises(ValueError, match=r"target: target false positive rate must be in \(0, 1\]"):
        metrics.fpr_resolvable(2000, target)


def test_existing_metrics_accept_numpy_and_integer_membership():
    predicted = np.array([1, 0, 0, 1])
    is_member = torch.tensor([True, False, True, True])
    assert metrics.inference_accuracy(predicted, is_member) == pytest.approx(0.75)
    assert metrics.true_and_false_positive_rates(predicted, is_member) == pytest.approx((2 / 3, 0.0))


# ---------------------------------------------------------------------------------------------
# summarize
# ---------------------------------------------------------------------------------------------

def attack_case(seed=0, n=2000, member_fraction=0.5, shift=0.5):
    rng = np.random.default_rng(seed)
    is_member = rng.random(n) < member_fraction
    scores = rng.normal(size=n) + shift * is_member
    return scores, scores > 0.25, is_member


def test_summarize_values_are_the_full_sample_metrics():
    scores, predicted, is_member = attack_case(member_fraction=0.3)
    summary = metrics.summarize(scores, predicted, is_member, n_bootstrap=50)
    assert tuple(summary) == metrics.SUMMARY_KEYS == (
        "accuracy", "advantage", "precision", "recall", "auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr")
    tpr, _ = metrics.true_and_false_positive_rates(predicted, is_member)
    expected = {
        "accuracy": metrics.inference_accuracy(predicted, is_member),
        "advantage": metrics.advantage(predicted, is_member),
        "precision": skm.precision_score(is_member, predicted),
        "recall": tpr,
        "auc": metrics.roc_auc(scores, is_member),
        "tpr_at_0.1%_fpr": metrics.tpr_at_fpr(scores, is_member, 0.001),
        "tpr_at_1%_fpr": metrics.tpr_at_fpr(scores, is_member, 0.01),
    }
    assert expected["recall"] == pytest.approx(skm.recall_score(is_member, predicted))
    for key, value in expected.items():
        estimate = summary[key]
        assert isinstance(estimate, Estimate)
        assert estimate.value == pytest.approx(value, abs=1e-12), key
        assert estimate.std > 0, key
        assert estimate.low <= estimate.value <= estimate.high, key


def test_summarize_is_deterministic_for_a_seed():
    scores, predicted, is_member = attack_case(seed=1)
    first = metrics.summarize(scores, predicted, is_member, n_bootstrap=40, seed=7)
    assert metrics.summarize(scores, predicted, is_member, n_bootstrap=40, seed=7) == first
    other = metrics.summarize(scores, predicted, is_member, n_bootstrap=40, seed=8)
    assert other["auc"].value == first["auc"].value and other["auc"].std != first["auc"].std


def test_summarize_without_bootstrap():
    scores, predicted, is_member = attack_case(seed=2)
    for key, estimate in metrics.summarize(scores, predicted, is_member, n_bootstrap=0).items():
        assert estimate.std == 0.0 and estimate.low == estimate.high == estimate.value, key


def test_summarize_of_a_perfectly_separating_score():
    # 2,001 non-members: enough to resolve 0.1 % FPR
    is_member = np.arange(3002) % 3 == 0
    scores = np.where(is_member, 1.0, -1.0) + np.random.default_rng(3).uniform(-0.5, 0.5, 3002)
    summary = metrics.summarize(scores, scores > 0.0, is_member, n_bootstrap=30)
    for key in metrics.SUMMARY_KEYS:
        expected = 1.0
        assert summary[key].value == expected and summary[key].std == 0.0, key
        assert summary[key].low == summary[key].high == expected, key
    for key in metrics.LOW_FPRS:
        assert summary[key].exact == (pytest.approx(metrics.clopper_pearson(1001, 1001)[0]), 1.0), key


def test_precision_is_zero_when_nothing_is_predicted_member():
    scores, _, is_member = attack_case(seed=4, n=200)
    summary = metrics.summarize(scores, np.zeros(200, dtype=bool), is_member, n_bootstrap=10)
    assert summary["precision"].value == 0.0 and summary["precision"].high == 0.0
    assert summary["recall"].value == 0.0


@pytest.mark.parametrize("n_members,n_nonmembers,decimals", [(None, None, 1), (400, 2000, 2), (300, 2000, None)])
def test_bootstrap_equals_metrics_of_explicit_stratified_resamples(n_members, n_nonmembers, decimals):
    """Rebuild each replicate from the generator's draws (members' indices, then non-members',
    for all replicates at once) and compare with the metrics computed on the explicit resample
    (the TPR at a low FPR by the reference formula, FPR strictly below the target). With 2,000
    non-members, 2 false positives in a replicate are an FPR of exactly 0.1 %."""
    if n_members is None:  # 175 non-members: 0.1 % FPR is not resolvable
        scores, predicted, is_member = attack_case(seed=5, n=300, member_fraction=0.4)
    else:
        rng = np.random.default_rng(5)
        is_member = rng.permutation(np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)])
        scores = rng.normal(size=is_member.size) + 1.5 * is_member
        predicted = scores > 0.75
    if decimals is not None:
        scores = np.round(scores, decimals)  # ties
    n_bootstrap, seed = 12, 3
    summary = metrics.summarize(scores, predicted, is_member, n_bootstrap=n_bootstrap, seed=seed)
    members, non_members = np.flatnonzero(is_member), np.flatnonzero(~is_member)
    rng = np.random.default_rng(seed)
    draws_members = rng.integers(0, members.size, size=(n_bootstrap, members.size))
    draws_non_members = rng.integers(0, non_members.size, size=(n_bootstrap, non_members.size))
    replicates = {key: [] for key in metrics.SUMMARY_KEYS}
    for dm, dn in zip(draws_members, draws_non_members):
        idx = np.r_[members[dm], non_members[dn]]
        s, p, m = scores[idx], predicted[idx], is_member[idx]
        replicates["accuracy"].append(metrics.inference_accuracy(p, m))
        replicates["advantage"].append(metrics.advantage(p, m))
        replicates["precision"].append(skm.precision_score(m, p, zero_division=0))
        replicates["recall"].append(skm.recall_score(m, p))
        replicates["auc"].append(skm.roc_auc_score(m, s))
        replicates["tpr_at_0.1%_fpr"].append(sk_tpr_at_fpr(m, s, 0.001))
        replicates["tpr_at_1%_fpr"].append(sk_tpr_at_fpr(m, s, 0.01))
    for key, values in replicates.items():
        if key in metrics.LOW_FPRS and not metrics.fpr_resolvable(int((~is_member).sum()), metrics.LOW_FPRS[key]):
            assert math.isnan(summary[key].std) and math.isnan(summary[key].low), key
            continue
        values = np.asarray(values)
        low, high = np.percentile(values, [2.5, 97.5])
        assert summary[key].std == pytest.approx(values.std(ddof=1), abs=1e-12), key
        assert (summary[key].low, summary[key].high) == pytest.approx((low, high), abs=1e-12), key


def test_bootstrap_keeps_class_counts():
    # Guessing "member" for everyone has accuracy = precision = member fraction, which varies
    # between resamples unless each resample keeps the class counts.
    scores, _, is_member = attack_case(seed=6, n=500, member_fraction=0.3)
    summary = metrics.summarize(scores, np.ones(500, dtype=bool), is_member, n_bootstrap=50)
    assert summary["accuracy"].std == 0.0 and summary["accuracy"].value == pytest.approx(is_member.mean())
    assert summary["precision"].std == 0.0


def test_summarize_runs_on_20000_samples_with_200_replicates():
    scores, predicted, is_member = attack_case(seed=7, n=20_000, shift=0.2)
    summary = metrics.summarize(torch.from_numpy(scores), torch.from_numpy(predicted),
                                torch.from_numpy(is_member), n_bootstrap=200)
    assert summary["auc"].std > 0 and summary["auc"].low < summary["auc"].value < summary["auc"].high
    assert 0.5 < summary["auc"].value < 0.6


def test_estimate_formatting():
    estimate = Estimate(value=0.0812, std=0.0091, low=0.064, high=0.098)
    assert str(estimate) == "8.1 ± 0.9" == estimate.format(pct=True)
    assert estimate.format(pct=False, digits=3) == "0.081 ± 0.009"
    assert estimate.format(interval=True) == "8.1 ± 0.9 [6.4, 9.8]"
    assert f"{estimate}" == "8.1 ± 0.9"
    assert math.isclose(Estimate(0.5, 0.0, 0.5, 0.5).value, 0.5)


def test_estimate_is_backward_compatible_and_formats_the_exact_interval():
    estimate = Estimate(0.0125, 0.002, 0.009, 0.016)
    assert estimate.exact is None and estimate == Estimate(value=0.0125, std=0.002, low=0.009, high=0.016)
    assert estimate.format(digits=2) == "1.25 ± 0.20"
    with pytest.raises(ValueError, match="exact: this estimate has no Clopper-Pearson interval"):
        estimate.format(exact=True)
    with_exact = Estimate(0.0125, 0.002, 0.009, 0.016, exact=(0.0084, 0.0179))
    assert with_exact.format(digits=2, exact=True) == "1.25 [0.84, 1.79]"
    assert with_exact.format() == "1.2 ± 0.2"
    nan = math.nan
    missing = Estimate(nan, nan, nan, nan, exact=(nan, nan))
    assert not missing.resolvable and with_exact.resolvable
    assert missing.format() == missing.format(digits=2, exact=True) == str(missing) == "not resolvable"


# ---------------------------------------------------------------------------------------------
# Evaluation sizes: resolvable FPRs, exact intervals
# ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("k,n,level", [(0, 10, 0.95), (10, 10, 0.95), (3, 10, 0.95), (1, 1, 0.95), (0, 1, 0.9),
                                       (25, 2000, 0.95), (1999, 2000, 0.99), (500, 1000, 0.5), (7, 123, 0.8)])
def test_clopper_pearson_matches_scipy(k, n, level):
    low, high = metrics.clopper_pearson(k, n, level)
    expected = stats.binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert 0.0 <= low <= k / n <= high <= 1.0
    assert (low == 0.0) == (k == 0) and (high == 1.0) == (k == n)
    assert isinstance(low, float) and isinstance(high, float)


def test_clopper_pearson_default_level_and_bad_input():
    expected = stats.binomtest(25, 2000).proportion_ci(method="exact")
    assert metrics.clopper_pearson(25, 2000) == pytest.approx((expected.low, expected.high), abs=1e-12)
    assert metrics.clopper_pearson(np.int64(25), np.int64(2000)) == metrics.clopper_pearson(25, 2000)
    for args, message in [((1, 0), "trials: must be an integer >= 1, got 0"),
                          ((-1, 5), "successes: must be an integer >= 0, got -1"),
                          ((6, 5), r"successes: must be <= trials \(5\), got 6"),
                          ((2.5, 5), "successes: must be an integer"),
                          ((True, 5), "successes: must be an integer"),
                          ((1, 5, 1.0), r"level: confidence level must be in \(0, 1\), got 1.0"),
                          ((1, 5, 0.0), r"level: confidence level must be in \(0, 1\)")]:
        with pytest.raises(ValueError, match=message):
            metrics.clopper_pearson(*args)


@pytest.mark.parametrize("n_nonmembers,target,expected", [
    (2000, 0.001, True), (1000, 0.001, False), (1001, 0.001, True), (999, 0.001, False), (1, 0.001, False),
    (100, 0.01, False), (101, 0.01, True), (200, 0.01, True), (2, 1.0, True), (1, 1.0, False)])
def test_fpr_resolvable(n_nonmembers, target, expected):
    assert metrics.fpr_resolvable(n_nonmembers, target) is expected


def test_fpr_resolvable_refuses_bad_counts():
    for bad in (0, -5, 10.0, True):
        with pytest.raises(ValueError, match="n_nonmembers: must be an integer >= 1"):
            metrics.fpr_resolvable(bad, 0.001)


def fixed_counts_case(n_members, n_nonmembers, seed=0, shift=1.5):
    rng = np.random.default_rng(seed)
    is_member = rng.permutation(np.r_[np.ones(n_members, bool), np.zeros(n_nonmembers, bool)])
    scores = rng.normal(size=is_member.size) + shift * is_member
    return scores, scores > 0.75, is_member


def test_tpr_interval_is_the_tpr_with_its_clopper_pearson_interval():
    scores, _, is_member = fixed_counts_case(1200, 2000)
    for target in (0.001, 0.01):
        tpr, low, high = metrics.tpr_interval(scores, is_member, target)
        assert tpr == metrics.tpr_at_fpr(scores, is_member, target) == sk_tpr_at_fpr(is_member, scores, target)
        expected = stats.binomtest(round(tpr * 1200), 1200).proportion_ci(method="exact")
        assert (low, high) == pytest.approx((expected.low, expected.high), abs=1e-12)
        assert low < tpr < high
    assert metrics.tpr_interval(torch.from_numpy(scores), torch.from_numpy(is_member), 0.01, level=0.5)[1] > low
    with pytest.raises(ValueError, match=r"level: confidence level must be in \(0, 1\)"):
        metrics.tpr_interval(scores, is_member, 0.01, level=95)


def test_tpr_interval_is_nan_when_not_resolvable():
    scores, _, is_member = fixed_counts_case(1000, 1000)
    assert all(math.isnan(x) for x in metrics.tpr_interval(scores, is_member, 0.001))
    assert not math.isnan(metrics.tpr_interval(scores, is_member, 0.01)[0])
    # the plain formula still gives a number: the TPR at zero false positives
    assert metrics.tpr_at_fpr(scores, is_member, 0.001) == sk_tpr_at_fpr(is_member, scores, 0.001)


@pytest.mark.parametrize("n_bootstrap", [0, 1, 20])
def test_summarize_is_nan_for_a_low_fpr_the_non_members_cannot_resolve(n_bootstrap):
    scores, predicted, is_member = fixed_counts_case(1000, 1000)
    summary = metrics.summarize(scores, predicted, is_member, n_bootstrap=n_bootstrap)
    missing = summary["tpr_at_0.1%_fpr"]
    assert all(math.isnan(x) for x in (missing.value, missing.std, missing.low, missing.high, *missing.exact))
    assert missing.format() == "not resolvable"
    resolved = summary["tpr_at_1%_fpr"]  # 1 / 1000 < 1 %
    assert resolved.value == metrics.tpr_at_fpr(scores, is_member, 0.01)
    assert resolved.exact == metrics.tpr_interval(scores, is_member, 0.01)[1:]
    for key in ("accuracy", "advantage", "precision", "recall", "auc"):
        assert not math.isnan(summary[key].value) and summary[key].exact is None, key


def test_summarize_low_fpr_estimates_with_2000_non_members():
    scores, predicted, is_member = fixed_counts_case(1500, 2000, seed=1)
    summary = metrics.summarize(scores, predicted, is_member, n_bootstrap=200)
    for key, target in metrics.LOW_FPRS.items():
        estimate = summary[key]
        tpr, low, high = metrics.tpr_interval(scores, is_member, target)
        assert estimate.value == tpr == sk_tpr_at_fpr(is_member, scores, target), key
        assert estimate.exact == (low, high), key
        # bootstrap replicates use the same strict inequality, so they straddle the value
        assert estimate.std > 0 and estimate.low < estimate.value < estimate.high, key
        assert estimate.low < high and low < estimate.high, key


# ---------------------------------------------------------------------------------------------
# Empirical lower bound on epsilon
# ---------------------------------------------------------------------------------------------

def hand_epsilon_bound(member_scores, nonmember_scores, alpha, delta=0.0):
    """The bound enumerated directly: every threshold t (each score, and +inf), counts of scores
    >= t, scipy's exact intervals of the TPR, FPR, TNR and FNR at confidence 1 - alpha."""
    member_scores, nonmember_scores = np.asarray(member_scores), np.asarray(nonmember_scores)
    n1, n0 = member_scores.size, nonmember_scores.size
    best = -math.inf
    for t in [math.inf, *np.unique(np.r_[member_scores, nonmember_scores])]:
        tp, fp = int((member_scores >= t).sum()), int((nonmember_scores >= t).sum())
        ci = {name: stats.binomtest(k, n).proportion_ci(confidence_level=1 - alpha, method="exact")
              for name, k, n in (("tpr", tp, n1), ("fpr", fp, n0), ("tnr", n0 - fp, n0), ("fnr", n1 - tp, n1))}
        for numerator, denominator in ((ci["tpr"].low - delta, ci["fpr"].high), (ci["tnr"].low - delta, ci["fnr"].high)):
            if numerator > 0:
                best = max(best, math.log(numerator / denominator))
    return max(0.0, best)


def labelled(member_scores, nonmember_scores):
    scores = np.r_[member_scores, nonmember_scores].astype(float)
    return scores, np.r_[np.ones(len(member_scores), bool), np.zeros(len(nonmember_scores), bool)]


def test_epsilon_lower_bound_of_a_perfect_attack_in_closed_form():
    # every member scores 1 and every non-member 0: at threshold 1, TP = n and FP = 0, whose exact
    # limits are TPR_low = (alpha/2)^(1/n) and FPR_high = 1 - (alpha/2)^(1/n)
    n, alpha = 100, 0.05
    scores, is_member = labelled(np.ones(n), np.zeros(n))
    bound = metrics.epsilon_lower_bound(scores, is_member, alpha=alpha)
    c = (alpha / 2) ** (1 / n)
    assert bound.epsilon == pytest.approx(math.log(c / (1 - c)), rel=1e-12)
    assert (bound.threshold, bound.tpr, bound.fpr, bound.direction) == (1.0, 1.0, 0.0, "tpr/fpr")
    assert (bound.alpha, bound.delta) == (alpha, 0.0)
    # a wider interval (smaller alpha) gives a smaller bound
    assert metrics.epsilon_lower_bound(scores, is_member, alpha=0.01).epsilon < bound.epsilon


@pytest.mark.parametrize("alpha,delta", [(0.05, 0.0), (0.1, 0.0), (0.05, 0.01)])
def test_epsilon_lower_bound_matches_a_direct_enumeration(alpha, delta):
    members = [9, 8.5, 8, 8, 7, 7, 6, 6, 6, 5, 5, 4, 3, 2, 11, 10, 9.5, 9]
    nonmembers = [4, 3, 1, 0, 0, -1, 2, 0.5, 1.5, -2, -3]
    scores, is_member = labelled(members, nonmembers)
    bound = metrics.epsilon_lower_bound(scores, is_member, alpha=alpha, delta=delta)
    assert bound.epsilon > 0
    assert bound.epsilon == pytest.approx(hand_epsilon_bound(members, nonmembers, alpha, delta), rel=1e-9)
    # the reported point is a real threshold with its observed rates
    assert bound.tpr == np.mean(np.array(members) >= bound.threshold)
    assert bound.fpr == np.mean(np.array(nonmembers) >= bound.threshold)
    rng = np.random.default_rng(7)
    members, nonmembers = np.round(rng.normal(1.0, 1.0, 300), 1), np.round(rng.normal(0.0, 1.0, 250), 1)
    expected = hand_epsilon_bound(members, nonmembers, alpha, delta)
    assert metrics.epsilon_lower_bound(*labelled(members, nonmembers), alpha=alpha, delta=delta).epsilon == \
        pytest.approx(expected, rel=1e-9)


def test_epsilon_lower_bound_grows_with_separation():
    rng = np.random.default_rng(0)
    noise = rng.normal(size=4000)
    is_member = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    bounds = [metrics.epsilon_lower_bound(noise + shift * is_member, is_member).epsilon
              for shift in (0.0, 0.5, 1.0, 2.0, 3.0)]
    assert all(a < b for a, b in zip(bounds, bounds[1:])), bounds


def test_epsilon_lower_bound_of_an_attack_at_chance_is_about_zero():
    is_member = np.r_[np.ones(2000, bool), np.zeros(2000, bool)]
    for seed in range(5):
        scores = np.random.default_rng(seed).normal(size=4000)
        assert metrics.epsilon_lower_bound(scores, is_member).epsilon < 0.05, seed
    constant = metrics.epsilon_lower_bound(np.zeros(4000), is_member)  # one threshold: all or nobody
    assert constant.epsilon == 0.0


def test_epsilon_lower_bound_reads_both_directions():
    # the same attack seen from the other side (labels swapped, scores negated) gives the same bound
    # through the other inequality
    rng = np.random.default_rng(3)
    scores, is_member = labelled(rng.normal(1.0, 1.0, 500), rng.normal(0.0, 1.0, 400))
    forward = metrics.epsilon_lower_bound(scores, is_member)
    flipped = metrics.epsilon_lower_bound(-scores, ~is_member)
    assert flipped.epsilon == pytest.approx(forward.epsilon, rel=1e-9)
    assert {forward.direction, flipped.direction} == {"tpr/fpr", "tnr/fnr"}
    as_tensors = metrics.epsilon_lower_bound(torch.from_numpy(scores), torch.from_numpy(is_member))
    assert as_tensors == forward


def test_epsilon_lower_bound_refuses_bad_input():
    scores, is_member = labelled([3.0, 2.0], [1.0, 0.0])
    for args, kwargs, message in [
            ((scores[:3], is_member), {}, "different lengths: scores has 3, is_member has 4"),
            ((scores, np.zeros(4, bool)), {}, r"is_member: needs both members and non-members \(no members"),
            ((scores, np.ones(4, bool)), {}, r"is_member: needs both members and non-members \(no non-members"),
            ((scores.reshape(2, 2), is_member), {}, "scores: must be 1-D"),
            ((np.r_[scores[:3], np.nan], is_member), {}, "scores: contains 1 NaN"),
            ((scores, is_member), {"alpha": 0.5}, r"alpha: must be in \(0, 0.5\)"),
            ((scores, is_member), {"alpha": 0.0}, r"alpha: must be in \(0, 0.5\)"),
            ((scores, is_member), {"delta": -0.1}, r"delta: must be in \[0, 1\)"),
            ((scores, is_member), {"delta": 1.0}, r"delta: must be in \[0, 1\)")]:
        with pytest.raises(ValueError, match=message):
            metrics.epsilon_lower_bound(*args, **kwargs)


@pytest.mark.parametrize("n1,n0,alpha,delta", [(100, 100, 0.05, 0.0), (2000, 2000, 0.05, 0.0), (30, 70, 0.1, 0.0),
                                              (70, 30, 0.05, 0.01)])
def test_epsilon_lower_bound_limit_is_the_bound_of_a_perfect_attack(n1, n0, alpha, delta):
    limit = metrics.epsilon_lower_bound_limit(n1, n0, alpha, delta)
    perfect = metrics.epsilon_lower_bound(*labelled(np.ones(n1), np.zeros(n0)), alpha=alpha, delta=delta)
    assert limit == pytest.approx(perfect.epsilon, rel=1e-9) and limit > 0
    assert limit == pytest.approx(hand_epsilon_bound(np.ones(n1), np.zeros(n0), alpha, delta), rel=1e-9)
    rng = np.random.default_rng(0)
    attack = metrics.epsilon_lower_bound(*labelled(rng.normal(2, 1, n1), rng.normal(0, 1, n0)), alpha=alpha, delta=delta)
    assert attack.epsilon <= limit


def test_epsilon_lower_bound_limit_refuses_bad_input():
    for args, message in [((0, 10), "n_members: must be an integer >= 1"), ((10, 0), "n_nonmembers"),
                          ((10, 10, 0.6), r"alpha: must be in \(0, 0.5\)"), ((10, 10, 0.05, -1.0), "delta")]:
        with pytest.raises(ValueError, match=message):
            metrics.epsilon_lower_bound_limit(*args)
