"""Membership inference attacks as functions of per-sample model outputs.

No attack retrains or queries the target beyond the stored outputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from mia_utils import metrics


@dataclass(frozen=True)
class AttackResult:
    """An attack's per-sample scores (higher = more likely a member), its guesses and metrics."""

    name: str
    scores: torch.Tensor
    predicted: torch.Tensor
    threshold: float
    accuracy: float
    advantage: float
    tpr: float
    fpr: float


def yeom_loss_threshold(losses: torch.Tensor, is_member: torch.Tensor, average_train_loss: float) -> AttackResult:
    """Yeom et al. (2018): guess "member" when a sample's loss (nats, shape (N,)) is below the
    target's average training loss, which the adversary is assumed to know."""
    predicted = losses < average_train_loss
    tpr, fpr = metrics.true_and_false_positive_rates(predicted, is_member)
    return AttackResult(
        name="yeom", scores=-losses, predicted=predicted, threshold=float(average_train_loss),
        accuracy=metrics.inference_accuracy(predicted, is_member),
        advantage=metrics.advantage(predicted, is_member), tpr=tpr, fpr=fpr,
    )


def yeom_on_run(outputs: dict[str, torch.Tensor]) -> AttackResult:
    """Yeom's attack on a run's balanced evaluation set, threshold = mean loss over all members."""
    losses = metrics.per_sample_loss(outputs["eval_logits"], outputs["eval_labels"])
    return yeom_loss_threshold(losses, outputs["eval_is_member"], outputs["member_losses"].double().mean().item())
