"""The attacks the book runs side by side (:func:`run_attacks`) and what each assumes the adversary
knows (:data:`ATTACK_KNOWLEDGE`)."""

from __future__ import annotations

import torch

from mia_utils.attacks.blackbox import BLACK_BOX_ATTACKS
from mia_utils.attacks.inputs import AttackInputs, AttackResult
from mia_utils.attacks.shadow_models import lira

ATTACK_KNOWLEDGE = {
    "yeom": "the target's average training loss (clean images, hard labels)",
    "yeom_objective": "the target's average training objective (as a training log reports it)",
    "loss": "own labelled members and non-members (to set the loss threshold)",
    "confidence": "own labelled members and non-members (to set the threshold)",
    "entropy": "own labelled members and non-members (to set the threshold)",
    "modified_entropy": "own labelled members and non-members, and each sample's true label",
    "salem": "own labelled members and non-members (to train the attack model)",
    "lira_online": "the data distribution and training recipe; shadow models with and without each example",
    "lira_offline": "the data distribution and training recipe; shadow models without each example",
    "lira_online_fixed_variance": "as LiRA online, with one shared variance",
    "lira_offline_fixed_variance": "as LiRA offline, with one shared variance",
}


def run_attacks(inputs: AttackInputs, shadow_logits: torch.Tensor | None = None,
                shadow_in: torch.Tensor | None = None, n_bootstrap: int = 200, seed: int = 0) -> dict[str, AttackResult]:
    """Every black-box attack, plus the four LiRA variants when shadow outputs are given.

    Args:
        inputs: :class:`~mia_utils.attacks.inputs.AttackInputs`, the target's outputs on the
            evaluation set and the adversary's samples.
        shadow_logits: float tensor (K, N, classes), the shadow models' logits on the evaluation
            set, or None to skip LiRA.
        shadow_in: bool tensor (K, N), whether shadow k trained on example n (needed with
            ``shadow_logits``).
        n_bootstrap: bootstrap resamples for every attack's metrics (int >= 0).
        seed: seed of the bootstrap (and of Salem's attack model) (int).

    Returns:
        attack name (``yeom``, ``loss``, ..., ``lira_online``, ...) -> its
        :class:`~mia_utils.attacks.inputs.AttackResult`.
    """
    results = {name: attack(inputs, n_bootstrap=n_bootstrap, seed=seed) for name, attack in BLACK_BOX_ATTACKS.items()}
    if shadow_logits is not None:
        for online in (True, False):
            for fixed in (False, True):
                result = lira(inputs, shadow_logits, shadow_in, online=online, fixed_variance=fixed,
                              n_bootstrap=n_bootstrap, seed=seed)
                results[result.name] = result
    return results
