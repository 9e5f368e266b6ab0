"""Chapter 00, the primer: one small, deliberately overfit Fashion-MNIST model, its members' and
non-members' losses, Yeom's loss-threshold attack computed by hand (:func:`yeom_by_hand`) and
checked against :func:`mia_utils.attacks.yeom`, and the ROC curve by sorting (:func:`roc_by_sorting`)
checked against scikit-learn; with the page's figures and glued values (``*_values``)."""

from __future__ import annotations

from dataclasses import dataclass

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from mia_utils import attacks, experiment
from mia_utils.attacks import metrics

#: Tolerance of the checks that the hand computations equal the package's and scikit-learn's.
YEOM_TOLERANCE, AUC_TOLERANCE = 1e-12, 1e-9


def curves_figure(history: list[dict]) -> Figure:
    """Accuracy (%) after each epoch on members and non-members, one line each. ``history``: a
    run's per-epoch dicts with ``epoch``, ``train_acc`` and ``test_acc`` (fractions)."""
    curves = pd.DataFrame(history).melt(id_vars="epoch", value_vars=["train_acc", "test_acc"], var_name="set",
                                        value_name="accuracy")
    curves["set"] = curves["set"].map({"train_acc": "members (trained on)", "test_acc": "non-members (never seen)"})
    curves["accuracy"] *= 100
    fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    sns.lineplot(curves, x="epoch", y="accuracy", hue="set", marker="o", ax=ax)
    ax.set_xlabel("epoch")
    ax.set_ylabel("accuracy (%)")
    ax.legend(title=None, frameon=False)
    return fig


def training_values(run: experiment.Run) -> dict:
    """Section 1's glued values: the curves figure (``primer_curves``), the members and epochs, and
    the final training and test accuracy and their gap (percent, percentage points)."""
    summary = run.metrics
    return {
        "primer_curves": curves_figure(run.history),
        "primer_members": int(run.config.n_members),
        "primer_epochs": int(run.config.epochs),
        "primer_train_acc": float(100 * summary["train_acc"]),
        "primer_test_acc": float(100 * summary["test_acc"]),
        "primer_gap": float(100 * summary["gap"]),
    }


@dataclass(frozen=True)
class EvaluationLosses:
    """What the attacker sees of the balanced evaluation set: ``losses`` float64 (N,), the
    cross-entropy on the true label in nats; ``is_member`` bool (N,); ``threshold`` (nats), the
    model's average loss over all its members, which Yeom's adversary is assumed to know."""

    losses: np.ndarray
    is_member: np.ndarray
    threshold: float


def evaluation_losses(outputs: dict) -> EvaluationLosses:
    """:class:`EvaluationLosses` of a run's per-sample ``outputs`` (``eval_logits``, ``eval_labels``,
    ``eval_is_member``, ``member_losses``)."""
    losses = metrics.per_sample_loss(outputs["eval_logits"], outputs["eval_labels"]).numpy()
    is_member = outputs["eval_is_member"].numpy().astype(bool)
    return EvaluationLosses(losses, is_member, float(outputs["member_losses"].double().mean()))


def loss_figure(data: EvaluationLosses) -> Figure:
    """Density histograms (log-scale x, 50 bins) of the members' and non-members' losses, losses
    below 1e-6 nats drawn at 1e-6, and the threshold as a dashed line."""
    frame = pd.DataFrame({"loss (nats)": np.clip(data.losses, 1e-6, None),
                          "set": np.where(data.is_member, "members", "non-members")})
    fig, ax = plt.subplots(figsize=(7, 3.6), layout="constrained")
    sns.histplot(frame, x="loss (nats)", hue="set", log_scale=True, element="step", stat="density",
                 common_norm=False, bins=50, ax=ax)
    ax.axvline(data.threshold, color="0.2", linestyle="--", linewidth=1.2)
    ax.annotate("threshold: average\ntraining loss", xy=(data.threshold, ax.get_ylim()[1] * 0.9),
                xytext=(6, 0), textcoords="offset points", fontsize="small", va="top")
    ax.set_xlabel("cross-entropy loss on the true label (nats, log scale)")
    ax.set_ylabel("density")
    return fig


def loss_values(data: EvaluationLosses) -> dict:
    """Section 2's glued values: the loss histogram (``primer_losses``), the median member and
    non-member losses and the threshold (nats)."""
    return {
        "primer_losses": loss_figure(data),
        "primer_median_member_loss": float(np.median(data.losses[data.is_member])),
        "primer_median_nonmember_loss": float(np.median(data.losses[~data.is_member])),
        "primer_threshold": data.threshold,
    }


@dataclass(frozen=True)
class HandAttack:
    """Yeom's attack computed by hand: ``tpr`` (members called members), ``fpr`` (non-members
    called members) and ``advantage`` = tpr - fpr, all fractions."""

    tpr: float
    fpr: float
    advantage: float


def yeom_by_hand(data: EvaluationLosses) -> HandAttack:
    """Yeom's attack in four lines of NumPy: a member when the loss is below the threshold."""
    predicted = data.losses < data.threshold
    tpr = predicted[data.is_member].mean()
    fpr = predicted[~data.is_member].mean()
    return HandAttack(tpr, fpr, tpr - fpr)


def yeom_checked(outputs: dict, by_hand: HandAttack, n_bootstrap: int = 200) -> attacks.AttackResult:
    """The package's Yeom attack (:func:`mia_utils.attacks.yeom`) on the same run, after checking that
    its advantage equals the hand computation's (within :data:`YEOM_TOLERANCE`)."""
    package = attacks.yeom(attacks.AttackInputs.from_outputs(outputs), n_bootstrap=n_bootstrap)
    if not abs(package.metrics["advantage"].value - by_hand.advantage) < YEOM_TOLERANCE:
        raise AssertionError(f"advantage: by hand {by_hand.advantage}, mia_utils.attacks.yeom "
                             f"{package.metrics['advantage'].value}")
    return package


def yeom_table(by_hand: HandAttack, package: attacks.AttackResult) -> pd.DataFrame:
    """The hand computation beside the package's: TPR, FPR and advantage (percent, 2 decimals)."""
    advantage = package.metrics["advantage"].value
    package_tpr = package.metrics["recall"].value  # recall = true-positive rate
    return pd.DataFrame({"by hand": [100 * by_hand.tpr, 100 * by_hand.fpr, 100 * by_hand.advantage],
                         "mia_utils.attacks.yeom": [100 * package_tpr, 100 * (package_tpr - advantage),
                                                    100 * advantage]},
                        index=["true-positive rate (%)", "false-positive rate (%)", "advantage (%)"]).round(2)


def yeom_values(by_hand: HandAttack, package: attacks.AttackResult) -> dict:
    """Section 3's glued values (percent): TPR, FPR, advantage, and the advantage's bootstrap
    standard error over the evaluation set."""
    return {
        "primer_tpr": float(100 * by_hand.tpr),
        "primer_fpr": float(100 * by_hand.fpr),
        "primer_advantage": float(100 * by_hand.advantage),
        "primer_advantage_se": float(100 * package.metrics["advantage"].std),
    }


@dataclass(frozen=True)
class SortedRoc:
    """The loss attack's ROC curve by sorting: ``fpr`` and ``tpr`` float64 (distinct losses + 1,),
    fractions, from (0, 0) at the strictest threshold; ``auc`` their trapezoid area (fraction)."""

    fpr: np.ndarray
    tpr: np.ndarray
    auc: float


def roc_by_sorting(losses: np.ndarray, is_member: np.ndarray) -> SortedRoc:
    """ROC of "member when the loss is at most t", for every t: sort the losses from the smallest;
    after each distinct loss, the TPR is the fraction of members at or below it and the FPR that of
    non-members. Tied losses enter together, so a tie between a member and a non-member is a
    diagonal step and counts one half in the area, as in scikit-learn's ``roc_auc_score``."""
    losses, is_member = np.asarray(losses), np.asarray(is_member, dtype=bool)
    order = np.argsort(losses, kind="stable")  # strictest threshold first
    last_of_value = np.r_[np.diff(losses[order]) != 0, True]
    tpr = np.r_[0.0, np.cumsum(is_member[order])[last_of_value] / is_member.sum()]
    fpr = np.r_[0.0, np.cumsum(~is_member[order])[last_of_value] / (~is_member).sum()]
    return SortedRoc(fpr, tpr, float(np.trapezoid(tpr, fpr)))


def sklearn_auc(data: EvaluationLosses, roc: SortedRoc) -> float:
    """scikit-learn's AUC of the minus-loss score (a fraction), after checking that it equals
    ``roc.auc`` within :data:`AUC_TOLERANCE`."""
    from sklearn.metrics import roc_auc_score

    auc = roc_auc_score(data.is_member, -data.losses)
    if not abs(roc.auc - auc) < AUC_TOLERANCE:
        raise AssertionError(f"auc: by sorting {roc.auc}, scikit-learn {auc}")
    return auc


def roc_figure(roc: SortedRoc, auc: float, by_hand: HandAttack) -> Figure:
    """The ROC curve (percent axes) with its AUC (fraction) in the legend, the chance diagonal, and
    Yeom's threshold as a dot whose height above the diagonal is marked as the advantage."""
    tpr, fpr = by_hand.tpr, by_hand.fpr
    fig, ax = plt.subplots(figsize=(4.8, 4.4), layout="constrained")
    ax.plot(100 * roc.fpr, 100 * roc.tpr, label=f"loss threshold (AUC {auc:.3f})")
    ax.plot([0, 100], [0, 100], linestyle="--", color="0.5", label="coin flip (AUC 0.5)")
    ax.scatter([100 * fpr], [100 * tpr], color="black", zorder=3, label="Yeom's threshold")
    ax.annotate("", xy=(100 * fpr, 100 * tpr), xytext=(100 * fpr, 100 * fpr),
                arrowprops={"arrowstyle": "<->", "color": "0.3"})
    ax.text(100 * fpr + 2, 100 * (fpr + tpr) / 2, "advantage", fontsize="small", va="center")
    ax.set_xlabel("false-positive rate (% of non-members)")
    ax.set_ylabel("true-positive rate (% of members)")
    ax.set_xlim(0, 100)
    ax.set_ylim(0, 100)
    ax.legend(loc="lower right", frameon=False, fontsize="small")
    return fig


def roc_values(data: EvaluationLosses, by_hand: HandAttack) -> dict:
    """Section 4's glued values: the ROC figure (``primer_roc``) and scikit-learn's AUC (percent),
    checked against the area by sorting (:func:`roc_by_sorting`, :func:`sklearn_auc`)."""
    roc = roc_by_sorting(data.losses, data.is_member)
    auc = sklearn_auc(data, roc)
    return {"primer_roc": roc_figure(roc, auc, by_hand), "primer_auc": float(100 * auc)}
