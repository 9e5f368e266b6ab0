"""The related-work experiments (mia_utils.related) on small hand-made or tiny trained cases."""

import math

import pytest
import torch
from scipy.stats import spearmanr

from mia_utils import related

pytestmark = pytest.mark.filterwarnings("ignore::scipy.stats.ConstantInputWarning")


def test_spearman_interval_matches_scipy_and_brackets_it():
    x = [0.1, 0.4, 0.2, 0.8, 0.5, 0.9, 0.3]
    y = [1.0, 3.0, 2.5, 6.0, 4.0, 5.5, 1.5]
    rho, low, high = related.spearman_interval(x, y, n_bootstrap=500, seed=1)
    assert rho == pytest.approx(spearmanr(x, y).statistic)
    assert -1 <= low <= rho <= high <= 1
    assert related.spearman_interval(x, y, n_bootstrap=500, seed=1) == (rho, low, high)  # seeded
    with pytest.raises(ValueError, match="at least 3 points"):
        related.spearman_interval([1, 2], [3, 4])


def test_confidence_attack_threshold_and_ood_false_positives():
    def probs(top):  # two classes, top probability ``top`` on class 0
        top = torch.tensor(top, dtype=torch.float64)
        return torch.stack([top, 1 - top], 1)

    adv = probs([0.99, 0.98, 0.97, 0.70, 0.60, 0.65])
    adv_member = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    evaluation = probs([0.99, 0.95, 0.60, 0.96, 0.55, 0.50])
    eval_member = torch.tensor([1, 1, 1, 0, 0, 0], dtype=torch.bool)
    ood = {"noise": probs([0.99, 0.99, 0.51, 0.52]), "calm": probs([0.5, 0.5, 0.6, 0.55])}
    result = related.confidence_attack_fprs(evaluation, eval_member, adv, adv_member, ood)
    assert 0.70 < result["threshold"] < 0.97  # between the adversary's non-members and members
    assert result["tpr"] == pytest.approx(2 / 3) and result["fpr"] == pytest.approx(1 / 3)
    assert result["advantage"] == pytest.approx(1 / 3)
    assert result["fpr_noise"] == pytest.approx(0.5) and result["fpr_calm"] == 0.0
    assert 0 <= result["auc"] <= 1


@pytest.mark.slow
def test_lira_at_epochs_uses_snapshots_of_target_and_shadows(tiny_config, store):
    target = tiny_config.replace(epochs=2, snapshot_epochs=(1,))
    rows = related.lira_at_epochs(target, 2, [1, 2], store, n_bootstrap=10)
    assert [r["epoch"] for r in rows] == [1, 2]
    for row in rows:
        assert 0 <= row["tpr_at_0.1%_fpr"] <= row["tpr_at_1%_fpr"] <= 1
        assert math.isfinite(row["gap"]) and 0 < row["test_acc"] <= 1
    # shadows keep the target's snapshots, so every run was trained once
    assert all(store.exists(c.key()) for c in (target, target.shadow(0, 2), target.shadow(1, 2)))
    with pytest.raises(ValueError, match=r"epochs: \[3\] are not among the target's snapshot epochs"):
        related.lira_at_epochs(target.replace(epochs=4), 2, [3], store)
