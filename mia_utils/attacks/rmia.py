"""RMIA, the relative membership inference attack of Zarifzadeh, Liu, Cheng & Shokri (ICML 2024,
"Low-Cost High-Power Membership Inference Attacks").

RMIA compares a target sample x with population samples z the adversary knows to be non-members.
With p(. | theta) the target model's softmax probability of the true label and Pr(.) the same
probability averaged over reference models:

    LR(x, z) = (p(x | theta) / Pr(x)) / (p(z | theta) / Pr(z))
    score(x) = the fraction of population samples z with LR(x, z) >= gamma

so x scores high when the target fits it better, relative to how reference models fit it, than
it fits most population samples relative to theirs. ``Pr(x)``:

* online: the mean of p(x | theta') over ALL reference models (with balanced IN/OUT masks, as
  :func:`mia_utils.data.shadow_in_masks` draws them, half were trained on x);
* offline: only the reference models that did NOT train on x, with the paper's linear correction
  for the missing IN models, Pr(x) = ((1 + a) Pr_OUT(x) + (1 - a)) / 2.

What the reference code does (``privacytrustlab/ml_privacy_meter``): the paper's code,
``research/2024_rmia/main.py`` at commit d327341 (``aggregate_signals``, lines 359-560), and the
current library, ``attacks.py`` at commit e384af8 (``run_rmia``, lines 91-138):

* The signal is the softmax of logits / T of the true label (``get_signals.py`` ``get_softmax``;
  ``signals.py`` ``convert_signals``, lines 176-184). The paper's configurations use T = 2 (and mostly a
  "soft-margin Taylor softmax" variant, not implemented here); the library uses T = 1.
* Online, ``main.py`` averages over the first ``num_ref_models // 2`` IN and as many OUT models of
  each sample (lines 388-400 and 439-440), with a trimmed mean (``scipy.stats.trim_mean``,
  ``proportiontocut`` 0.2, which trims nothing below 5 models); this module averages over all
  reference models (the same with balanced masks; no trimming).
* Offline, the mean over the OUT models, then ((1 + a) mean + (1 - a)) / 2 (``main.py`` lines
  508-510; ``attacks.py`` lines 117-118 and 131-132). ``a`` is 0.3 in the paper's CIFAR-10
  configurations (0.2 or 0.6 elsewhere); the library tunes it on a paired model over
  0, 0.1, ..., 1 (``tune_offline_a``, lines 42-88). Default here: 0.3.
* gamma: 2 in every configuration of the paper (``attack_configs/*/rmia_*.yaml``); the library
  fixes it at 1. Both count a population sample only when the ratio is STRICTLY above gamma
  (``score > gamma``, ``main.py`` line 551; ``ratios > 1.0``, ``attacks.py`` lines 135-136); the paper's
  definition, followed here, counts LR >= gamma. They differ only on exact ties.
* The population: the target's non-members of the audited dataset (``main.py`` line 1119). When
  x is itself one of them, ``main.py`` line 554 rescales its score to (count + 1) / (|Z| - 1);
  here x is simply not compared with itself (count / (|Z| - 1)).
* The paper's code can also query each sample under several augmentations and take a majority
  vote over them (lines 442-489); not implemented here.

Hard guesses (the reference only sweeps a ROC curve): when the reference models' logits on the
adversary's own labelled samples are given, the threshold maximising balanced accuracy on them
(:func:`mia_utils.attacks.inputs.best_threshold`), as the threshold attacks choose theirs.
Otherwise, member when the score is above the median score of the population's own samples (each
scored against the other population samples): a non-member drawn like the population is flagged
with probability about 1/2, as LiRA offline's hard guess flags half of the OUT Gaussian.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from mia_utils.attacks.inputs import AttackInputError, AttackInputs, AttackResult, attack_result, best_threshold

#: gamma in every RMIA configuration of the paper's code (``research/2024_rmia/attack_configs``).
RMIA_GAMMA = 2.0

#: The offline coefficient a of the paper's CIFAR-10 configurations.
RMIA_OFFLINE_A = 0.3


@dataclass(frozen=True)
class RMIAPopulation:
    """The population samples z the adversary compares with, all non-members of the target.

    ``logits`` float (P, classes): the target's logits on them; ``labels`` int64 (P,);
    ``shadow_logits`` float (M, P, classes): the same M reference models' logits on them;
    ``shadow_in`` bool (M, P) or None: whether reference model m trained on z (None: none did).

    Online, Pr(z) averages all reference models, as Pr(x) does; the two are comparable when the
    reference models trained on the population about as often as on the targets (half of them,
    as when they are trained on population data, the paper's setting). A population no reference
    model trained on gets a lower Pr(z) than a target's Pr(x): every target's score drops alike,
    so the ranking (AUC, TPR at low FPR) holds, but the median hard guess flags too few. Offline
    compares OUT models on both sides and has no such bias."""

    logits: torch.Tensor
    labels: torch.Tensor
    shadow_logits: torch.Tensor
    shadow_in: torch.Tensor | None = None


def log_true_probability(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> torch.Tensor:
    """log softmax(logits / T)[label], float64, for logits (..., classes) and labels of shape
    (...); the log of RMIA's p(x | theta)."""
    log_p = (logits.double() / temperature).log_softmax(-1)
    return log_p.gather(-1, labels.unsqueeze(-1)).squeeze(-1)


def _log_reference_probability(log_p: torch.Tensor, trained_in: torch.Tensor, online: bool,
                               offline_a: float) -> torch.Tensor:
    """log Pr(x) (S,) from the reference models' log p(x | theta') (M, S) and masks (M, S):
    online the mean over all models; offline the mean over the OUT models, corrected to
    ((1 + a) mean + (1 - a)) / 2. Computed in log space, so probabilities that underflow stay
    usable."""
    if online:
        return torch.logsumexp(log_p, dim=0) - math.log(log_p.shape[0])
    out = ~trained_in
    log_mean_out = (torch.logsumexp(log_p.masked_fill(~out, float("-inf")), dim=0)
                    - torch.log(out.sum(0).double()))
    terms = [log_mean_out + math.log((1 + offline_a) / 2)]
    if offline_a < 1:
        terms.append(torch.full_like(log_mean_out, math.log((1 - offline_a) / 2)))
    return torch.logsumexp(torch.stack(terms), dim=0)


def _check_reference(name: str, shadow_logits: torch.Tensor, shadow_in, n: int, classes: int, m: int | None,
                     online: bool) -> torch.Tensor:
    """Validates (M, S, classes) logits and (M, S) masks; returns the mask (all False when None)."""
    if (not isinstance(shadow_logits, torch.Tensor) or shadow_logits.ndim != 3 or shadow_logits.shape[0] == 0
            or shadow_logits.shape[1:] != (n, classes) or (m is not None and shadow_logits.shape[0] != m)):
        shape = tuple(shadow_logits.shape) if isinstance(shadow_logits, torch.Tensor) else type(shadow_logits).__name__
        expected = f"({'M >= 1' if m is None else m}, {n}, {classes})"
        raise AttackInputError(f"{name}: expected reference-model logits of shape {expected}, got {shape}")
    if not torch.isfinite(shadow_logits).all():
        raise AttackInputError(f"{name}: contain NaN or infinite values")
    mask_name = name.replace("logits", "in")
    if shadow_in is None:
        shadow_in = torch.zeros(shadow_logits.shape[:2], dtype=torch.bool)
    if not isinstance(shadow_in, torch.Tensor) or shadow_in.shape != shadow_logits.shape[:2]:
        shape = tuple(shadow_in.shape) if isinstance(shadow_in, torch.Tensor) else type(shadow_in).__name__
        raise AttackInputError(f"{mask_name}: expected shape {tuple(shadow_logits.shape[:2])}, got {shape}")
    shadow_in = shadow_in.bool()
    if not online and n and int((~shadow_in).sum(0).min()) < 1:
        raise AttackInputError(f"{mask_name}: offline RMIA needs at least one OUT reference model for every "
                               f"sample; {int(((~shadow_in).sum(0) == 0).sum())} have none")
    return shadow_in


def first_out_models(trained_in: torch.Tensor, count: int) -> torch.Tensor:
    """bool (M, S): the first ``count`` reference models (in reference order) that did NOT train on
    each sample, from ``trained_in`` (M, S); a sample with fewer OUT models keeps all of them. The
    paper's code averages each sample's first OUT models in the same way (``main.py`` lines 388-400)."""
    out = ~trained_in.bool()
    return out & (out.long().cumsum(0) <= count)


def _limit_out(trained_in: torch.Tensor, count: int | None) -> torch.Tensor:
    """``trained_in`` with every OUT model beyond each sample's first ``count`` marked as IN, so that
    offline RMIA (which averages the OUT models) uses only those ``count``; unchanged when None."""
    return trained_in if count is None else ~first_out_models(trained_in, count)


def _check_options(online, offline_a, gamma, temperature) -> None:
    """``online`` a bool, ``gamma`` and ``temperature`` finite and > 0, ``offline_a`` in [0, 1]."""
    if not isinstance(online, bool):
        raise ValueError(f"online: must be True or False, got {online!r}")
    for name, value in (("gamma", gamma), ("temperature", temperature)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name}: must be a finite number > 0, got {value!r}")
    if isinstance(offline_a, bool) or not isinstance(offline_a, (int, float)) or not 0 <= offline_a <= 1:
        raise ValueError(f"offline_a: must be a number in [0, 1], got {offline_a!r}")


def _relative_values(logits, labels, shadow_logits, shadow_in, online, offline_a, temperature) -> torch.Tensor:
    """log(p(. | theta) / Pr(.)) (S,) for S samples: the log of each side of LR(x, z)."""
    target = log_true_probability(logits, labels, temperature)
    reference = log_true_probability(shadow_logits, labels.expand(shadow_logits.shape[0], -1), temperature)
    return target - _log_reference_probability(reference, shadow_in, online, offline_a)


def _scores(values: torch.Tensor, population: torch.Tensor, log_gamma: float,
            self_index: torch.Tensor | None = None) -> torch.Tensor:
    """The fraction (S,) of population values v_z with v_x - v_z >= log gamma, counted as
    v_z <= v_x - log gamma (the same inequality; they can differ only by a rounding at an exact
    tie). ``self_index`` (S,) int64: the position of sample s in the population, or -1; that
    population sample is left out of s's comparison (denominator |Z| - 1)."""
    ordered = population.sort().values
    cut = values - log_gamma
    counts = torch.searchsorted(ordered, cut, right=True).double()
    total = torch.full_like(counts, float(len(population)))
    if self_index is not None:
        inside = self_index >= 0
        own = population[self_index.clamp(min=0)]
        counts -= (inside & (own <= cut)).double()
        total -= inside.double()
    return counts / total


def rmia(inputs: AttackInputs, shadow_logits: torch.Tensor, shadow_in: torch.Tensor, online: bool = True,
         offline_a: float = RMIA_OFFLINE_A, gamma: float = RMIA_GAMMA, temperature: float = 1.0,
         population: RMIAPopulation | None = None, adv_shadow_logits: torch.Tensor | None = None,
         adv_shadow_in: torch.Tensor | None = None, out_models: int | None = None, n_bootstrap: int = 200,
         seed: int = 0) -> AttackResult:
    """RMIA's scores on the evaluation set (see the module docstring for the definition and the
    reference code).

    Scores (N,) float64 in [0, 1], higher = member. Named ``rmia_online`` or ``rmia_offline``.
    Cost: :func:`rmia_cost`.

    Args:
        inputs: :class:`~mia_utils.attacks.inputs.AttackInputs`: the target's logits, labels and
            membership on the evaluation set (N samples) and on the adversary's samples (``adv_*``).
        shadow_logits: float tensor (M, N, classes): M >= 1 reference models' logits on the
            evaluation set, as :func:`mia_utils.attacks.shadow_models.lira` takes them (M = 1, 2,
            4 are fine).
        shadow_in: bool tensor (M, N): whether each reference model trained on each sample
            (None: none did).
        online: average p over all reference models (bool); offline (False) averages only over
            each sample's OUT models (at least one each), corrected with ``offline_a``.
        offline_a: the offline correction coefficient a (float in [0, 1]; default 0.3, the
            paper's CIFAR-10 configurations).
        gamma: the likelihood-ratio threshold (float > 0; default 2, the paper's).
        temperature: T (float > 0): p = softmax(logits / T) of the true label (1, plain softmax;
            the paper's configurations use 2).
        population: the non-members z compared with (:class:`RMIAPopulation`); None: the
            evaluation set's own non-members (as the reference code does), a sample not being
            compared with itself.
        adv_shadow_logits: float tensor (M, N_adv, classes): the same reference models on the
            adversary's samples (``inputs.adv_*``), or None. When given (with
            ``adv_shadow_in``), the hard guesses use the threshold maximising balanced accuracy
            there; otherwise the median score of the population's own samples (see the module
            docstring).
        adv_shadow_in: bool tensor (M, N_adv), or None; give both ``adv_*`` or neither.
        out_models: offline only: average at most this many OUT reference models per sample, the
            first in reference order (:func:`first_out_models`), for the targets, the population and
            the adversary's samples alike (int >= 1); None: every OUT model.
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        seed: seed of the bootstrap resampling (int).
    """
    _check_options(online, offline_a, gamma, temperature)
    if out_models is not None:
        if online:
            raise ValueError("out_models: limits the OUT models of offline RMIA; online RMIA averages every model")
        if isinstance(out_models, bool) or not isinstance(out_models, int) or out_models < 1:
            raise ValueError(f"out_models: must be an integer >= 1 or None, got {out_models!r}")
    n, classes = inputs.logits.shape
    shadow_in = _limit_out(_check_reference("shadow_logits", shadow_logits, shadow_in, n, classes, None, online),
                           out_models)
    m = shadow_logits.shape[0]
    values = _relative_values(inputs.logits, inputs.labels, shadow_logits, shadow_in, online, offline_a, temperature)
    if population is None:
        nonmembers = torch.nonzero(~inputs.is_member).squeeze(1)
        if len(nonmembers) < 2:
            raise AttackInputError("is_member: the evaluation set's non-members serve as the population, "
                                   f"and at least 2 are needed, got {len(nonmembers)}")
        population_values = values[nonmembers]
        self_index = torch.full((n,), -1, dtype=torch.int64)
        self_index[nonmembers] = torch.arange(len(nonmembers))
    else:
        if not isinstance(population, RMIAPopulation):
            raise ValueError(f"population: expected an RMIAPopulation or None, got {type(population).__name__}")
        p_logits, p_labels = population.logits, population.labels
        if (not isinstance(p_logits, torch.Tensor) or p_logits.ndim != 2 or p_logits.shape[0] < 1
                or p_logits.shape[1] != classes):
            shape = tuple(p_logits.shape) if isinstance(p_logits, torch.Tensor) else type(p_logits).__name__
            raise AttackInputError(f"population.logits: expected shape (P >= 1, {classes}), got {shape}")
        if not torch.isfinite(p_logits).all():
            raise AttackInputError("population.logits: contain NaN or infinite values")
        size = p_logits.shape[0]
        if (not isinstance(p_labels, torch.Tensor) or p_labels.shape != (size,) or p_labels.is_floating_point()
                or int(p_labels.min()) < 0 or int(p_labels.max()) >= classes):
            raise AttackInputError(f"population.labels: expected class indices in 0..{classes - 1} of shape ({size},)")
        p_in = _limit_out(_check_reference("population.shadow_logits", population.shadow_logits,
                                           population.shadow_in, size, classes, m, online), out_models)
        population_values = _relative_values(p_logits, p_labels.long(), population.shadow_logits, p_in, online,
                                             offline_a, temperature)
        self_index = None
    log_gamma = math.log(gamma)
    scores = _scores(values, population_values, log_gamma, self_index)
    if adv_shadow_logits is not None or adv_shadow_in is not None:
        if adv_shadow_logits is None or adv_shadow_in is None:
            raise AttackInputError("adv_shadow_logits, adv_shadow_in: give both or neither")
        n_adv = inputs.adv_logits.shape[0]
        adv_in = _limit_out(_check_reference("adv_shadow_logits", adv_shadow_logits, adv_shadow_in, n_adv, classes, m,
                                             online), out_models)
        adv_values = _relative_values(inputs.adv_logits, inputs.adv_labels, adv_shadow_logits, adv_in, online,
                                      offline_a, temperature)
        threshold = best_threshold(_scores(adv_values, population_values, log_gamma), inputs.adv_is_member)
        predicted = scores >= threshold
    else:
        if len(population_values) < 2:
            raise AttackInputError("population: the median population score needs at least 2 population "
                                   "samples (or give adv_shadow_logits and adv_shadow_in)")
        null = _scores(population_values, population_values, log_gamma, torch.arange(len(population_values)))
        threshold = float(torch.quantile(null, 0.5))
        predicted = scores > threshold
    name = f"rmia_{'online' if online else 'offline'}"
    return attack_result(name, scores, predicted, threshold, inputs.is_member, n_bootstrap, seed)


def rmia_cost(n_reference_models: int, n_population: int = 0) -> dict:
    """What RMIA costs: ``target_queries`` 1 forward pass of the target per evaluated sample;
    ``reference_models`` M trained reference models, each queried once per sample
    (``reference_queries`` = M per sample); and, once for the whole attack,
    ``population_queries`` = P target queries plus M x P reference queries on the population
    (``n_population``; 0 when the evaluation non-members serve as the population)."""
    for name, value in (("n_reference_models", n_reference_models), ("n_population", n_population)):
        if isinstance(value, bool) or not isinstance(value, int) or value < (1 if name == "n_reference_models" else 0):
            raise ValueError(f"{name}: must be an integer >= {1 if name == 'n_reference_models' else 0}, got {value!r}")
    return {"target_queries": 1, "target_gradients": 0, "reference_models": n_reference_models,
            "reference_queries": n_reference_models, "label_only": False,
            "population_queries": n_population * (1 + n_reference_models)}
