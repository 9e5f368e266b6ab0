"""The defenses: regularization mechanisms as composable pieces of one training recipe.

* :mod:`~mia_utils.defenses.base`: the :class:`Mechanism` interface (the hooks a mechanism may
  use) and the :class:`TrainingContext` it prepares from.
* :mod:`~mia_utils.defenses.recipe`: the paper's seven training-time mechanisms.
* :mod:`~mia_utils.defenses.dp`: DP-SGD on Opacus, and its privacy accounting.
* :mod:`~mia_utils.defenses.mmd`: mix-up and the MMD regularizer (Li et al. 2021).
* :mod:`~mia_utils.defenses.registry`: name -> class for every mechanism, and the rules that a
  configuration's list of mechanisms must follow (checked when a ``RunConfig`` is built).
"""

from mia_utils.defenses.base import Mechanism, TrainingContext
from mia_utils.defenses.dp import DPSGD
from mia_utils.defenses.mmd import MMD, GatedMMD, Mixup
from mia_utils.defenses.recipe import (Distillation, Dropout, GaussianNoise, GaussianNoiseUnclamped, LabelSmoothing,
                                       RandomCrop, SpatialDropout, WeightDecay, add_gaussian_noise, random_crop,
                                       smooth, soft_labels)
from mia_utils.defenses.registry import (MECHANISM_ORDER, REGISTRY, build, check_mechanisms, describe_mechanisms,
                                         exclusion, number_text, register, setting_text)

__all__ = ["Mechanism", "TrainingContext", "REGISTRY", "MECHANISM_ORDER", "build", "check_mechanisms",
           "describe_mechanisms", "exclusion", "number_text", "setting_text",
           "register", "Distillation", "LabelSmoothing", "GaussianNoise", "GaussianNoiseUnclamped", "RandomCrop",
           "Dropout", "SpatialDropout", "WeightDecay", "DPSGD", "Mixup", "MMD", "GatedMMD", "soft_labels", "smooth",
           "add_gaussian_noise", "random_crop"]
