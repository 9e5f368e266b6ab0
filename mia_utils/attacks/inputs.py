"""What every attack reads and returns: :class:`AttackInputs` (a target's outputs on the balanced
evaluation set), :class:`AttackResult` (per-sample scores, guesses and metrics), and the threshold
that a labelled adversary picks (:func:`best_threshold`)."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from mia_utils.attacks import metrics


class AttackInputError(ValueError):
    """Attack inputs are empty, mis-shaped, unbalanced or non-finite."""


def membership_flags(name: str, is_member, n: int) -> torch.Tensor:
    """``is_member`` as a bool tensor (n,), checked: one flag per sample, and both members and
    non-members present. Errors name ``<name>_is_member`` (e.g. ``eval_is_member``)."""
    is_member = torch.as_tensor(is_member)
    if is_member.shape != (n,):
        raise AttackInputError(f"{name}_is_member: expected shape ({n},), got {tuple(is_member.shape)}")
    is_member = is_member.bool()
    members = int(is_member.sum())
    if members == 0 or members == n:
        raise AttackInputError(f"{name}_is_member: needs both members and non-members, got {members} of {n}")
    return is_member


def _check_outputs(name: str, logits: torch.Tensor, labels: torch.Tensor, is_member: torch.Tensor) -> None:
    if logits.ndim != 2 or logits.shape[0] == 0 or logits.shape[1] < 2:
        raise AttackInputError(f"{name}_logits: expected shape (N >= 1, classes >= 2), got {tuple(logits.shape)}")
    n = logits.shape[0]
    if labels.shape != (n,) or is_member.shape != (n,):
        raise AttackInputError(f"{name}: logits have {n} rows but labels have shape {tuple(labels.shape)} "
                               f"and is_member {tuple(is_member.shape)}; all must have N = {n} rows")
    if not torch.isfinite(logits).all():
        raise AttackInputError(f"{name}_logits: contain NaN or infinite values")
    if labels.min() < 0 or labels.max() >= logits.shape[1]:
        raise AttackInputError(f"{name}_labels: must lie in 0..{logits.shape[1] - 1}")
    membership_flags(name, is_member, n)


@dataclass(frozen=True)
class AttackInputs:
    """The target's outputs on the evaluation set, and the adversary's knowledge.

    ``logits`` float (N, classes), ``labels`` int64 (N,), ``is_member`` bool (N,): the balanced
    evaluation set (as many members as non-members). ``average_train_loss``: the target's mean
    cross-entropy over its training set, in nats (clean images, hard labels).
    ``objective_train_loss``: the mean of the training objective itself over the training set
    (transformed images and targets; see :func:`mia_utils.train.training_objective_loss`), or
    NaN when unknown. ``adv_*``: the adversary's own labelled samples (disjoint from the
    evaluation set), laid out the same way.
    """

    logits: torch.Tensor
    labels: torch.Tensor
    is_member: torch.Tensor
    average_train_loss: float
    adv_logits: torch.Tensor
    adv_labels: torch.Tensor
    adv_is_member: torch.Tensor
    objective_train_loss: float = float("nan")

    def __post_init__(self):
        _check_outputs("eval", self.logits, self.labels, self.is_member)
        _check_outputs("adv", self.adv_logits, self.adv_labels, self.adv_is_member)
        members = int(self.is_member.sum())
        if 2 * members != len(self.is_member):
            raise AttackInputError(f"is_member: the evaluation set must be balanced, got {members} members "
                                   f"and {len(self.is_member) - members} non-members")
        if self.adv_logits.shape[1] != self.logits.shape[1]:
            raise AttackInputError("adv_logits: must have as many classes as logits")
        if not (self.average_train_loss >= 0 and float(self.average_train_loss) < float("inf")):
            raise AttackInputError(f"average_train_loss: must be a finite loss >= 0, got {self.average_train_loss}")

    @classmethod
    def from_outputs(cls, outputs: dict[str, torch.Tensor]) -> "AttackInputs":
        """From a run's stored per-sample outputs (see :func:`mia_utils.train.per_sample_outputs`)."""
        return cls(logits=outputs["eval_logits"].double(), labels=outputs["eval_labels"],
                   is_member=outputs["eval_is_member"].bool(),
                   average_train_loss=outputs["member_losses"].double().mean().item(),
                   adv_logits=outputs["adv_logits"].double(), adv_labels=outputs["adv_labels"],
                   adv_is_member=outputs["adv_is_member"].bool(),
                   objective_train_loss=float(outputs.get("objective_loss", float("nan"))))


@dataclass(frozen=True)
class AttackResult:
    """Scores (N,) float64, higher = member; ``predicted`` bool (N,); ``threshold`` on the
    score scale; ``is_member`` bool (N,), the truth; ``metrics``: name ->
    :class:`mia_utils.attacks.metrics.Estimate` (fractions, with bootstrap uncertainty)."""

    name: str
    scores: torch.Tensor
    predicted: torch.Tensor
    threshold: float
    is_member: torch.Tensor = field(repr=False)
    metrics: dict = field(repr=False)

    @property
    def accuracy(self) -> float:
        return self.metrics["accuracy"].value

    @property
    def advantage(self) -> float:
        return self.metrics["advantage"].value

    @property
    def auc(self) -> float:
        return self.metrics["auc"].value

    @property
    def tpr(self) -> float:
        return metrics.true_and_false_positive_rates(self.predicted, self.is_member)[0]

    @property
    def fpr(self) -> float:
        return metrics.true_and_false_positive_rates(self.predicted, self.is_member)[1]


def attack_result(name, scores, predicted, threshold, is_member, n_bootstrap, seed) -> AttackResult:
    """An attack's :class:`AttackResult`: its scores and guesses with the metrics of
    :func:`mia_utils.attacks.metrics.summarize` (stratified bootstrap uncertainty).

    Args:
        name: the attack's name (str), e.g. ``"loss"``.
        scores: float tensor (N,), higher = member; stored as float64.
        predicted: bool (or 0/1) tensor (N,), the attack's guesses; stored as bool.
        threshold: the threshold on the score scale that gave ``predicted`` (float; may be +-inf).
        is_member: bool (or 0/1) tensor (N,), the truth; stored as bool.
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0; 0 = std 0).
        seed: seed of the bootstrap resampling (int).
    """
    scores = scores.double()
    summary = metrics.summarize(scores, predicted, is_member, n_bootstrap=n_bootstrap, seed=seed)
    return AttackResult(name, scores, predicted.bool(), float(threshold), is_member.bool(), summary)


def best_threshold(scores: torch.Tensor, is_member: torch.Tensor) -> float:
    """The threshold t maximising the accuracy of ``scores >= t`` on these labelled samples
    (each class weighted equally, so an unbalanced set does not bias it). Midpoints between
    consecutive distinct scores, or +-inf."""
    scores, is_member = scores.double(), is_member.bool()
    values, order = scores.sort(descending=True)
    member = is_member[order].double()
    tpr = member.cumsum(0) / member.sum()
    fpr = (1 - member).cumsum(0) / (1 - member).sum()
    last_of_value = torch.ones_like(values, dtype=torch.bool)
    last_of_value[:-1] = values[:-1] != values[1:]
    gain = torch.where(last_of_value, tpr - fpr, torch.tensor(-2.0, dtype=torch.float64))
    best = int(gain.argmax())
    if gain[best] <= 0:
        return float("inf")  # predicting nobody a member is as good as it gets
    below = values[best + 1] if best + 1 < len(values) else values[best] - 1.0
    return float((values[best] + below) / 2)
