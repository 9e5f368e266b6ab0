"""The registry of mechanisms: name -> class, and the rules for combining them.

Every built-in mechanism is listed here explicitly; the modules that define them import only
:mod:`mia_utils.defenses.base`, so nothing imports in a circle. :func:`register` adds a
mechanism of your own. :func:`check_mechanisms` is what ``RunConfig`` runs when it is built:
unknown names, repeats, out-of-range values, and pairs that one of the two excludes
(``Mechanism.excludes``: name -> reason) are refused there, before any training.
"""

from __future__ import annotations

from mia_utils.defenses.base import Mechanism
from mia_utils.defenses.dp import DPSGD
from mia_utils.defenses.mmd import MMD, GatedMMD, Mixup
from mia_utils.defenses.recipe import (Distillation, Dropout, GaussianNoise, GaussianNoiseUnclamped,
                                       LabelSmoothing, RandomCrop, SpatialDropout, WeightDecay)

REGISTRY: dict[str, type[Mechanism]] = {cls.name: cls for cls in (
    Distillation, LabelSmoothing, GaussianNoise, GaussianNoiseUnclamped, RandomCrop, Dropout, SpatialDropout,
    WeightDecay, DPSGD, Mixup, MMD, GatedMMD)}

MECHANISM_ORDER = ("distillation", "label_smoothing", "gaussian_noise", "random_crop", "dropout",
                   "spatial_dropout", "weight_decay", "early_stopping")


def register(cls: type[Mechanism]) -> type[Mechanism]:
    """Add a mechanism class of your own under ``cls.name`` (usable as a class decorator)."""
    if not cls.name:
        raise ValueError(f"cls: {cls.__name__} has no name")
    REGISTRY[cls.name] = cls
    return cls


def exclusion(a: str, b: str) -> str | None:
    """Why mechanisms ``a`` and ``b`` cannot be combined, or None when they can."""
    for first, second in ((a, b), (b, a)):
        cls = REGISTRY.get(first)
        if cls is not None and second in cls.excludes:
            return cls.excludes[second]
    return None


#: How a mechanism's symbol prints: the registry's ASCII names as the paper writes them.
SYMBOLS = {"alpha": "α", "sigma": "σ", "lambda": "λ", "sigma_DP": "σ_DP"}


def number_text(value) -> str:
    """A hyperparameter in its natural form: ``2``, ``0.5``, ``0.01``, ``1e-4`` (no trailing
    zeros; powers of ten below 0.001 as ``1e-4``, ``2.5e-5``)."""
    value = float(value)
    if value != 0 and abs(value) < 1e-3:
        mantissa, exponent = f"{value:.3e}".split("e")
        return f"{mantissa.rstrip('0').rstrip('.')}e{int(exponent)}"
    return f"{value:.6g}"


def setting_text(name: str, value) -> str:
    """A mechanism's setting as the paper writes it, e.g. ``T = 2`` (distillation), ``α = 0.01``
    (label smoothing), ``λ = 1e-4`` (weight decay), ``E = 5`` (early stopping after E epochs)."""
    symbol = "E" if name == "early_stopping" else REGISTRY[name].symbol
    return f"{SYMBOLS.get(symbol, symbol)} = {number_text(value)}"


def describe_mechanisms(mechanisms) -> str:
    """A configuration's (name, value) pairs in words: 'baseline' or e.g.
    'distillation T = 50, random_crop c = 4' (values as :func:`setting_text` writes them)."""
    if not mechanisms:
        return "baseline"
    return ", ".join(f"{name} {setting_text(name, value)}" for name, value in mechanisms)


def check_mechanisms(pairs) -> list[str]:
    """Problems with a list of (name, value) pairs, one message each (empty when valid)."""
    problems, seen = [], set()
    for pair in pairs:
        if not (isinstance(pair, (tuple, list)) and len(pair) == 2 and isinstance(pair[0], str)):
            problems.append(f"mechanisms: each entry must be a (name, value) pair, got {pair!r}")
            continue
        name, value = pair
        if name not in REGISTRY:
            problems.append(f"mechanisms: unknown mechanism {name!r}; allowed: {', '.join(sorted(REGISTRY))}")
            continue
        if name in seen:
            problems.append(f"mechanisms: {name!r} is listed twice")
        seen.add(name)
        cls = REGISTRY[name]
        if not isinstance(value, (int, float)) or isinstance(value, bool) or not cls.low <= value <= cls.high:
            problems.append(f"mechanisms: {name} {cls.symbol} = {value!r} is out of range; allowed "
                            f"{cls.low:g} <= {cls.symbol} <= {cls.high:g}")
        elif cls.integer and value != int(value):
            problems.append(f"mechanisms: {name} {cls.symbol} must be a whole number, got {value!r}")
    names = [name for name in dict.fromkeys(pair[0] for pair in pairs if isinstance(pair, (tuple, list))
                                            and len(pair) == 2 and pair[0] in REGISTRY)]
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            reason = exclusion(a, b)
            if reason is not None:
                problems.append(f"mechanisms: {a} cannot be combined with {b}: {reason}")
    return problems


def build(pairs) -> list[Mechanism]:
    """Mechanism objects for (name, value) pairs, in the order the training loop applies them."""
    mechanisms = [REGISTRY[name](value) for name, value in pairs]
    return sorted(mechanisms, key=lambda m: (m.stage, m.name))
