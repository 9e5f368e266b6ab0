"""Chapter 00's computations (mia_utils.book.primer) on small hand-made outputs."""

from types import SimpleNamespace

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
import torch
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from mia_utils.attacks import metrics
from mia_utils.book import primer


def fake_outputs(losses, is_member, member_losses, n_classes=3):
    """Per-sample outputs whose cross-entropy on label 0 is exactly ``losses`` (nats): logits
    (log p, log q, log q) with p = exp(-loss) and q = (1 - p) / (classes - 1)."""
    losses = torch.tensor(losses, dtype=torch.float64)
    p = torch.exp(-losses)
    rest = torch.log((1 - p) / (n_classes - 1)).unsqueeze(1).expand(-1, n_classes - 1)
    logits = torch.cat([torch.log(p).unsqueeze(1), rest], 1)
    members = torch.tensor(is_member, dtype=torch.bool)
    return {"eval_logits": logits, "eval_labels": torch.zeros(len(losses), dtype=torch.long),
            "eval_is_member": members, "member_losses": torch.tensor(member_losses, dtype=torch.float64),
            "adv_logits": logits, "adv_labels": torch.zeros(len(losses), dtype=torch.long),
            "adv_is_member": members}


LOSSES = [0.1, 0.2, 0.3, 1.5, 0.25, 1.0, 2.0, 3.0]
MEMBERS = [True, True, True, True, False, False, False, False]


def test_evaluation_losses_reads_losses_membership_and_threshold():
    data = primer.evaluation_losses(fake_outputs(LOSSES, MEMBERS, member_losses=[0.4, 0.8]))
    np.testing.assert_allclose(data.losses, LOSSES)
    assert data.is_member.dtype == bool and data.is_member.tolist() == MEMBERS
    assert data.threshold == pytest.approx(0.6)


def test_yeom_by_hand_known_rates_and_agrees_with_the_package():
    outputs = fake_outputs(LOSSES, MEMBERS, member_losses=[0.4, 0.8])  # threshold 0.6
    data = primer.evaluation_losses(outputs)
    by_hand = primer.yeom_by_hand(data)
    # members below 0.6: 0.1, 0.2, 0.3 (3 of 4); non-members below: 0.25 (1 of 4)
    assert (by_hand.tpr, by_hand.fpr) == (0.75, 0.25)
    assert by_hand.advantage == pytest.approx(0.5)
    package = primer.yeom_checked(outputs, by_hand, n_bootstrap=20)
    table = primer.yeom_table(by_hand, package)
    assert list(table.columns) == ["by hand", "mia_utils.attacks.yeom"]
    assert list(table.index) == ["true-positive rate (%)", "false-positive rate (%)", "advantage (%)"]
    np.testing.assert_allclose(table["by hand"], [75, 25, 50])
    np.testing.assert_allclose(table["mia_utils.attacks.yeom"], table["by hand"])
    values = primer.yeom_values(by_hand, package)
    assert list(values) == ["primer_tpr", "primer_fpr", "primer_advantage", "primer_advantage_se"]
    assert values["primer_advantage"] == pytest.approx(50) and values["primer_advantage_se"] >= 0


def test_yeom_checked_stops_when_the_hand_computation_disagrees():
    outputs = fake_outputs(LOSSES, MEMBERS, member_losses=[0.4, 0.8])
    with pytest.raises(AssertionError, match="advantage"):
        primer.yeom_checked(outputs, primer.HandAttack(0.75, 0.25, 0.4), n_bootstrap=0)


@pytest.mark.parametrize("losses, members", [
    (LOSSES, MEMBERS),
    # ties within members, within non-members, and across the two (each across-tie counts one half)
    ([0.5, 0.5, 0.2, 1.0, 0.5, 0.2, 1.0, 3.0], [True, True, True, True, False, False, False, False]),
    ([1.0] * 6, [True, False, True, False, True, False]),  # all tied: AUC 0.5
])
def test_roc_by_sorting_equals_sklearn_with_ties(losses, members):
    roc = primer.roc_by_sorting(np.array(losses), np.array(members))
    assert roc.auc == pytest.approx(roc_auc_score(members, -np.array(losses)), abs=1e-12)
    assert (roc.fpr[0], roc.tpr[0], roc.fpr[-1], roc.tpr[-1]) == (0, 0, 1, 1)
    assert len(roc.fpr) == len(set(losses)) + 1  # one point per distinct loss
    fpr, tpr, _ = metrics.roc_curve(-np.array(losses), np.array(members))  # the package's ROC, same points
    np.testing.assert_allclose(roc.fpr, fpr)
    np.testing.assert_allclose(roc.tpr, tpr)


def test_roc_by_sorting_counts_a_cross_tie_as_one_half():
    roc = primer.roc_by_sorting(np.array([0.1, 0.5, 0.5, 0.9]), np.array([True, True, False, False]))
    # pairs (member, non-member): 0.1<0.5, 0.1<0.9, 0.5=0.5 (half), 0.5<0.9 -> 3.5 / 4
    assert roc.auc == pytest.approx(0.875)


def test_random_scores_with_many_ties_agree_with_sklearn():
    rng = np.random.default_rng(0)
    losses = rng.integers(0, 20, size=500) / 10  # 20 distinct values: many ties
    members = rng.random(500) < 0.5
    data = primer.EvaluationLosses(losses, members, 1.0)
    roc = primer.roc_by_sorting(losses, members)
    assert primer.sklearn_auc(data, roc) == pytest.approx(roc.auc, abs=1e-12)
    with pytest.raises(AssertionError, match="auc"):
        primer.sklearn_auc(data, primer.SortedRoc(roc.fpr, roc.tpr, roc.auc + 0.01))


def test_glued_values_and_figures_have_the_page_names():
    data = primer.evaluation_losses(fake_outputs(LOSSES, MEMBERS, member_losses=[0.4, 0.8]))
    losses = primer.loss_values(data)
    assert list(losses) == ["primer_losses", "primer_median_member_loss", "primer_median_nonmember_loss",
                            "primer_threshold"]
    assert isinstance(losses["primer_losses"], Figure)
    assert losses["primer_median_member_loss"] == pytest.approx(0.25)  # median of 0.1, 0.2, 0.3, 1.5
    assert losses["primer_median_nonmember_loss"] == pytest.approx(1.5)  # median of 0.25, 1, 2, 3
    roc = primer.roc_values(data, primer.yeom_by_hand(data))
    assert list(roc) == ["primer_roc", "primer_auc"] and isinstance(roc["primer_roc"], Figure)
    assert roc["primer_auc"] == pytest.approx(100 * roc_auc_score(MEMBERS, -np.array(LOSSES)))
    history = [{"epoch": e, "train_acc": 0.5 + 0.1 * e, "test_acc": 0.5} for e in (1, 2, 3)]
    run = SimpleNamespace(metrics={"train_acc": 0.8, "test_acc": 0.5, "gap": 0.3}, history=history,
                          config=SimpleNamespace(n_members=100, epochs=3))
    training = primer.training_values(run)
    assert list(training) == ["primer_curves", "primer_members", "primer_epochs", "primer_train_acc",
                              "primer_test_acc", "primer_gap"]
    assert (training["primer_members"], training["primer_epochs"]) == (100, 3)
    assert training["primer_gap"] == pytest.approx(30)
    lines = training["primer_curves"].axes[0].get_lines()
    assert pd.Series(lines[0].get_ydata()).round(6).tolist() == [60, 70, 80]  # members' accuracy in percent
    plt.close("all")
