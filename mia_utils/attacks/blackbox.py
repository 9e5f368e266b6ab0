"""Black-box attacks that read only the target's outputs: Yeom et al.'s loss threshold, threshold
attacks on one per-sample score (loss, confidence, entropy, modified entropy) and Salem et al.'s
attack model on the top-3 posteriors, as in Kaya et al. (2020)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from mia_utils.attacks.inputs import (
    AttackInputError,
    AttackInputs,
    AttackResult,
    attack_result,
    best_threshold,
)


def loss_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy in nats (N,). Lower means more member-like."""
    return F.cross_entropy(logits.double(), labels, reduction="none")


def confidence_score(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Largest softmax probability (N,). Higher means more member-like."""
    return logits.double().softmax(1).max(1).values


def entropy_score(logits: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
    """Shannon entropy of the softmax in nats (N,). Lower means more member-like."""
    log_p = logits.double().log_softmax(1)
    return -(log_p.exp() * log_p).sum(1)


def log_one_minus_softmax(logits: torch.Tensor) -> torch.Tensor:
    """log(1 - p_i) for every class, computed stably as logsumexp over the other classes."""
    logits = logits.double()
    classes = logits.shape[1]
    others = logits.unsqueeze(1).expand(-1, classes, -1).masked_fill(torch.eye(classes, dtype=torch.bool), float("-inf"))
    return torch.logsumexp(others, dim=2) - torch.logsumexp(logits, dim=1, keepdim=True)


def modified_entropy_score(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Song & Mittal's modified entropy (N,), in nats: -(1 - p_y) log p_y - sum_{i != y} p_i log(1 - p_i).
    Lower means more member-like."""
    log_p = logits.double().log_softmax(1)
    log_q = log_one_minus_softmax(logits)
    p = log_p.exp()
    true = F.one_hot(labels, logits.shape[1]).bool()
    on_label = -(1 - p) * log_p
    off_label = -p * log_q
    return torch.where(true, on_label, off_label).sum(1)


def logit_scaled_confidence(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """LiRA's statistic log(p_y / (1 - p_y)) (N,), computed stably from logits."""
    logits = logits.double()
    true = logits.gather(1, labels[:, None]).squeeze(1)
    others = logits.scatter(1, labels[:, None], float("-inf"))
    return true - torch.logsumexp(others, dim=1)


def threshold_attack(name: str, member_like: str, score_fn, inputs: AttackInputs, n_bootstrap: int = 200,
                     seed: int = 0) -> AttackResult:
    """Threshold one per-sample score; the threshold is chosen on the adversary's samples only
    (:func:`mia_utils.attacks.inputs.best_threshold`) and applied to the evaluation set.

    Args:
        name: the result's name (str), e.g. ``"loss"``.
        member_like: ``"high"`` when larger scores indicate members, ``"low"`` otherwise (any
            other value counts as ``"low"``); the result's scores are negated for ``"low"``.
        score_fn: callable ``(logits (N, classes), labels (N,)) -> float tensor (N,)``, e.g.
            :func:`loss_score`.
        inputs: :class:`~mia_utils.attacks.inputs.AttackInputs`, the evaluation set and the
            adversary's samples.
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        seed: seed of the bootstrap resampling (int).
    """
    sign = 1.0 if member_like == "high" else -1.0
    scores = sign * score_fn(inputs.logits, inputs.labels)
    threshold = best_threshold(sign * score_fn(inputs.adv_logits, inputs.adv_labels), inputs.adv_is_member)
    return attack_result(name, scores, scores >= threshold, threshold, inputs.is_member, n_bootstrap, seed)


YEOM_READINGS = {
    "clean": "average loss on the training images with hard labels (reading a)",
    "objective": "average of the training objective: transformed images and targets (reading b)",
}


def yeom(inputs: AttackInputs, n_bootstrap: int = 200, seed: int = 0, reading: str = "clean") -> AttackResult:
    """Yeom et al. (2018) as the paper runs it: member when the loss (clean image, hard label) is
    below the target's "average training loss". The paper does not say which loss that average
    is; ``reading`` picks one of :data:`YEOM_READINGS`: ``"clean"`` (the mean clean loss over
    the training set, ``inputs.average_train_loss``) or ``"objective"`` (the mean of the training
    objective, ``inputs.objective_train_loss``, which differs under label smoothing,
    distillation, noise, cropping and mix-up). The result is named ``yeom`` or ``yeom_objective``."""
    if reading not in YEOM_READINGS:
        raise ValueError(f"reading: got {reading!r}; allowed: {', '.join(YEOM_READINGS)}")
    threshold = inputs.average_train_loss if reading == "clean" else inputs.objective_train_loss
    if not threshold >= 0:
        raise AttackInputError(f"objective_train_loss: this run did not record its training objective "
                               f"(got {threshold}); retrain it with this version of mia_utils")
    losses = loss_score(inputs.logits, inputs.labels)
    name = "yeom" if reading == "clean" else "yeom_objective"
    return attack_result(name, -losses, losses < threshold, -threshold, inputs.is_member, n_bootstrap, seed)


def loss_threshold(inputs, n_bootstrap=200, seed=0):
    """Yeom's loss attack with its threshold calibrated on the adversary's own samples."""
    return threshold_attack("loss", "low", loss_score, inputs, n_bootstrap, seed)


def confidence_threshold(inputs, n_bootstrap=200, seed=0):
    return threshold_attack("confidence", "high", confidence_score, inputs, n_bootstrap, seed)


def entropy_threshold(inputs, n_bootstrap=200, seed=0):
    return threshold_attack("entropy", "low", entropy_score, inputs, n_bootstrap, seed)


def modified_entropy_threshold(inputs, n_bootstrap=200, seed=0):
    return threshold_attack("modified_entropy", "low", modified_entropy_score, inputs, n_bootstrap, seed)


def top3_posteriors(logits: torch.Tensor) -> torch.Tensor:
    """The three largest softmax probabilities, sorted in decreasing order: (N, 3) float32
    (zero-padded when there are fewer than three classes)."""
    top = logits.double().softmax(1).topk(min(3, logits.shape[1]), dim=1).values.float()
    return F.pad(top, (0, 3 - top.shape[1]))


def salem(inputs: AttackInputs, n_bootstrap: int = 200, seed: int = 0, hidden: int = 64,
          steps: int = 500, lr: float = 1e-2) -> AttackResult:
    """The "Salem" attack as Kaya et al. (2020) run it, a variant of Salem et al.'s (2019) ML-Leaks.

    An MLP (3 -> ``hidden`` ReLU -> 1) on the three largest softmax probabilities (sorted) that
    *the target model itself* gives to the adversary's known members and non-members
    (``inputs.adv_*``), trained full-batch with Adam for ``steps`` steps (classes weighted
    equally), then applied to the target's outputs on the evaluation set. There is no shadow
    model: the adversary already holds labelled members of the target's training set. ML-Leaks'
    adversary 1 instead trains a shadow model on data from the same distribution and builds the
    attack classifier's training set from the shadow's posteriors, so its numbers are not
    directly comparable. The function keeps the name ``salem`` for the paper's Adv_Salem.
    Seeded and deterministic. A sample is guessed member when the MLP's logit is > 0.

    Args:
        inputs: :class:`~mia_utils.attacks.inputs.AttackInputs`; the MLP trains on ``adv_*`` and
            scores ``logits``.
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        seed: seed of the MLP's initialisation (under a forked RNG) and of the bootstrap (int).
        hidden: width of the MLP's hidden layer (int).
        steps: full-batch Adam steps (int).
        lr: Adam's learning rate (float).
    """
    features = top3_posteriors(inputs.adv_logits)
    target = inputs.adv_is_member.float()
    positive = target.mean()
    weights = torch.where(target > 0, 0.5 / positive, 0.5 / (1 - positive))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 3-64-1 network: extra threads only add synchronisation
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = torch.nn.Sequential(torch.nn.Linear(3, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, 1))
            optimizer = torch.optim.Adam(model.parameters(), lr=lr)
            for _ in range(steps):
                optimizer.zero_grad(set_to_none=True)
                loss = F.binary_cross_entropy_with_logits(model(features).squeeze(1), target, weight=weights)
                loss.backward()
                optimizer.step()
            with torch.no_grad():
                scores = model(top3_posteriors(inputs.logits)).squeeze(1).double()
    finally:
        torch.set_num_threads(threads)
    return attack_result("salem", scores, scores > 0, 0.0, inputs.is_member, n_bootstrap, seed)


BLACK_BOX_ATTACKS = {
    "yeom": yeom,
    "loss": loss_threshold,
    "confidence": confidence_threshold,
    "entropy": entropy_threshold,
    "modified_entropy": modified_entropy_threshold,
    "salem": salem,
}


def yeom_on_run(outputs: dict[str, torch.Tensor], n_bootstrap: int = 0) -> AttackResult:
    """Yeom's attack on a run's balanced evaluation set, threshold = mean loss over all members."""
    return yeom(AttackInputs.from_outputs(outputs), n_bootstrap=n_bootstrap)
