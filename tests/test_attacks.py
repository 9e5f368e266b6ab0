import numpy as np
import pytest
import torch
from sklearn.metrics import accuracy_score, confusion_matrix

from mia_utils import metrics
from mia_utils.attacks import yeom_loss_threshold


def test_yeom_on_a_hand_made_case():
    losses = torch.tensor([0.1, 0.2, 0.9, 0.3, 1.5, 2.0], dtype=torch.float64)
    is_member = torch.tensor([True, True, True, False, False, False])
    result = yeom_loss_threshold(losses, is_member, average_train_loss=0.5)
    assert result.predicted.tolist() == [True, True, False, True, False, False]
    assert result.accuracy == pytest.approx(4 / 6)
    assert result.advantage == pytest.approx(2 * (4 / 6 - 0.5))
    assert (result.tpr, result.fpr) == pytest.approx((2 / 3, 1 / 3))


def test_metrics_agree_with_scikit_learn():
    rng = np.random.default_rng(0)
    is_member = torch.from_numpy(rng.random(1000) < 0.5)
    predicted = torch.from_numpy(rng.random(1000) < 0.4)
    accuracy = accuracy_score(is_member.numpy(), predicted.numpy())
    tn, fp, fn, tp = confusion_matrix(is_member.numpy(), predicted.numpy()).ravel()
    assert metrics.inference_accuracy(predicted, is_member) == pytest.approx(accuracy, abs=1e-12)
    assert metrics.advantage(predicted, is_member) == pytest.approx(2 * (accuracy - 0.5), abs=1e-12)
    assert metrics.true_and_false_positive_rates(predicted, is_member) == pytest.approx(
        (tp / (tp + fn), fp / (fp + tn)), abs=1e-12)


def test_balanced_advantage_is_tpr_minus_fpr():
    is_member = torch.tensor([True] * 50 + [False] * 50)
    predicted = torch.from_numpy(np.random.default_rng(1).random(100) < 0.5)
    tpr, fpr = metrics.true_and_false_positive_rates(predicted, is_member)
    assert metrics.advantage(predicted, is_member) == pytest.approx(tpr - fpr)


def test_metrics_refuse_one_sided_sets():
    with pytest.raises(ValueError, match="both members and non-members"):
        metrics.advantage(torch.ones(4, dtype=torch.bool), torch.ones(4, dtype=torch.bool))
