"""Membership-inference metrics on a labelled evaluation set.

``is_member``: bool tensor (N,); ``predicted``: bool tensor (N,) of the attack's guesses.
Rates are fractions in [0, 1]; the book prints them as percentages.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def per_sample_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in nats of each sample: logits (N, classes), labels (N,) -> (N,)."""
    return F.cross_entropy(logits.double(), labels, reduction="none")


def _check(predicted: torch.Tensor, is_member: torch.Tensor) -> None:
    if predicted.shape != is_member.shape or predicted.ndim != 1:
        raise ValueError(f"predicted {tuple(predicted.shape)} and is_member {tuple(is_member.shape)} "
                         "must be 1-D and of the same length")
    if not bool(is_member.any()) or bool(is_member.all()):
        raise ValueError("is_member: needs both members and non-members")


def inference_accuracy(predicted: torch.Tensor, is_member: torch.Tensor) -> float:
    """Fraction of correct membership guesses (the paper's Inf)."""
    _check(predicted, is_member)
    return (predicted.bool() == is_member.bool()).double().mean().item()


def advantage(predicted: torch.Tensor, is_member: torch.Tensor) -> float:
    """Yeom et al.'s advantage 2 x (Inf - 0.5), in [-1, 1]. On a balanced set this is TPR - FPR."""
    return 2.0 * (inference_accuracy(predicted, is_member) - 0.5)


def true_and_false_positive_rates(predicted: torch.Tensor, is_member: torch.Tensor) -> tuple[float, float]:
    """(TPR, FPR) of the guesses."""
    _check(predicted, is_member)
    predicted, is_member = predicted.bool(), is_member.bool()
    tpr = (predicted & is_member).double().sum() / is_member.sum()
    fpr = (predicted & ~is_member).double().sum() / (~is_member).sum()
    return tpr.item(), fpr.item()
