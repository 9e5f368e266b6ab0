"""Membership inference attacks and their measurement.

Attacks are functions of a target's stored per-sample outputs (and, for LiRA, of reference
models' outputs); every one returns an :class:`AttackResult`. The modules:

* :mod:`~mia_utils.attacks.inputs`: what an attack reads and returns, and the labelled
  adversary's threshold;
* :mod:`~mia_utils.attacks.blackbox`: Yeom et al.'s attack, one-score threshold attacks and
  Salem et al.'s attack model;
* :mod:`~mia_utils.attacks.shadow_models`: LiRA, online and offline;
* :mod:`~mia_utils.attacks.rmia`: RMIA (Zarifzadeh et al. 2024), a pairwise likelihood ratio
  against population samples, with few reference models;
* :mod:`~mia_utils.attacks.augmentation`: the augmentation-aware attack (Kaya & Dumitras 2021),
  which queries each sample under draws of the target's own training augmentation;
* :mod:`~mia_utils.attacks.label_only`: label-only attacks (Choquette-Choo et al. 2021): the gap
  attack, the count of correct labels under shifts and flips, and the distance to the boundary;
* :mod:`~mia_utils.attacks.suite`: the attacks run side by side and what each assumes;
* :mod:`~mia_utils.attacks.dtc`: distance-to-confident, the white-box metric of the paper's
  Section 6, and an attack on it;
* :mod:`~mia_utils.attacks.audit`: DP-SGD's certified epsilon against the lower bound an attack
  implies;
* :mod:`~mia_utils.attacks.metrics`: advantage, AUC, TPR at low FPR, with bootstrap and exact
  intervals;
* :mod:`~mia_utils.attacks.evidence`: intervals over seeds, paired differences and three-state
  verdicts;
* :mod:`~mia_utils.attacks.evaluation`: one run's metrics, cached in the result store;
* :mod:`~mia_utils.attacks.ood`: out-of-distribution inputs and calibration;
* :mod:`~mia_utils.attacks.plots`: figures of attacks.

The attack functions themselves are importable from here, e.g. ``attacks.yeom``,
``attacks.lira``, ``attacks.AttackInputs``.
"""

from mia_utils.attacks.blackbox import (
                                        BLACK_BOX_ATTACKS,
                                        YEOM_READINGS,
                                        confidence_score,
                                        confidence_threshold,
                                        entropy_score,
                                        entropy_threshold,
                                        log_one_minus_softmax,
                                        logit_scaled_confidence,
                                        loss_score,
                                        loss_threshold,
                                        modified_entropy_score,
                                        modified_entropy_threshold,
                                        salem,
                                        threshold_attack,
                                        top3_posteriors,
                                        yeom,
                                        yeom_on_run,
)
from mia_utils.attacks.inputs import (
                                        AttackInputError,
                                        AttackInputs,
                                        AttackResult,
                                        attack_result,
                                        best_threshold,
)
from mia_utils.attacks.shadow_models import (
                                        LIRA_OFFLINE_Z,
                                        LIRA_PROBABILITY_EPSILON,
                                        LIRA_STD_EPSILON,
                                        lira,
                                        lira_statistic,
                                        shifted_queries,
)
from mia_utils.attacks.suite import ATTACK_KNOWLEDGE, run_attacks
from mia_utils.attacks.augmentation import (AUGMENTATION_REDUCTIONS, augmentation_aware_attack,
                                            augmentation_aware_cost, augmented_losses)
from mia_utils.attacks.label_only import (BoundaryResult, boundary_distances, label_only_boundary, label_only_cost,
                                          label_only_gap, label_only_translation, translation_correctness)
from mia_utils.attacks.rmia import RMIA_GAMMA, RMIA_OFFLINE_A, RMIAPopulation, rmia, rmia_cost

__all__ = [
    "AttackInputError", "AttackInputs", "AttackResult", "attack_result", "best_threshold",
    "BLACK_BOX_ATTACKS", "YEOM_READINGS", "confidence_score", "confidence_threshold", "entropy_score",
    "entropy_threshold", "log_one_minus_softmax", "logit_scaled_confidence", "loss_score", "loss_threshold",
    "modified_entropy_score", "modified_entropy_threshold", "salem", "threshold_attack", "top3_posteriors", "yeom",
    "yeom_on_run", "LIRA_OFFLINE_Z", "LIRA_PROBABILITY_EPSILON", "LIRA_STD_EPSILON", "lira", "lira_statistic",
    "shifted_queries", "ATTACK_KNOWLEDGE", "run_attacks",
    "AUGMENTATION_REDUCTIONS", "augmentation_aware_attack", "augmentation_aware_cost", "augmented_losses",
    "BoundaryResult", "boundary_distances", "label_only_boundary", "label_only_cost", "label_only_gap",
    "label_only_translation", "translation_correctness",
    "RMIA_GAMMA", "RMIA_OFFLINE_A", "RMIAPopulation", "rmia", "rmia_cost",
]
