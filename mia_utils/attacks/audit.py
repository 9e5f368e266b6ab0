"""Auditing DP-SGD with attacks: the certified epsilon of :mod:`mia_utils.defenses.dp` against the
lower bound that an attack's ROC on the evaluation set implies
(:func:`mia_utils.attacks.metrics.epsilon_lower_bound`), setting by setting and seed by seed."""

from __future__ import annotations

import math

import torch

from mia_utils.attacks import blackbox, metrics
from mia_utils.defenses.dp import certified_epsilons

#: The black-box scores whose ROC :func:`empirical_epsilon` reads: name -> (score of logits and
#: labels, higher = more likely a member). The negated loss is Yeom et al.'s statistic, the top
#: softmax probability the confidence attack's; both need nothing but the target's outputs.
EMPIRICAL_SCORES = {
    "loss": lambda logits, labels: -blackbox.loss_score(logits, labels),
    "confidence": blackbox.confidence_score,
}


def mean_epsilon(setting) -> float:
    """The RDP epsilon a DP-SGD setting's runs certified (``dp_epsilon`` of each seed's stored
    facts), averaged over its seeds (they differ only through Poisson batch counts, if at all)."""
    if not setting.facts:
        raise ValueError("setting: has no stored runs to read epsilon from")
    return float(sum(f["dp_epsilon"] for f in setting.facts) / len(setting.facts))


def empirical_epsilon(outputs: dict[str, torch.Tensor], alpha: float = 0.05,
                      delta: float = 0.0) -> dict[str, "metrics.EpsilonBound"]:
    """The empirical lower bound on epsilon implied by each of :data:`EMPIRICAL_SCORES` on a
    run's evaluation set: score name -> :func:`mia_utils.attacks.metrics.epsilon_lower_bound` of the
    score of ``outputs["eval_logits"]`` and ``outputs["eval_labels"]`` against
    ``outputs["eval_is_member"]``, at confidence 1 - ``alpha`` and ``delta``."""
    logits, labels = outputs["eval_logits"].double(), outputs["eval_labels"]
    is_member = outputs["eval_is_member"].bool()
    return {name: metrics.epsilon_lower_bound(score(logits, labels), is_member, alpha=alpha, delta=delta)
            for name, score in EMPIRICAL_SCORES.items()}


def epsilon_comparison(settings, alpha: float = 0.05, store=None):
    """Certified against empirical epsilon for a DP-SGD sweep: a pandas DataFrame, one row per
    (setting, seed), in order of sigma_DP then seed.

    ``settings``: DP-SGD :class:`mia_utils.book.replicated.Setting` objects (e.g.
    :func:`mia_utils.book.findings.dp_settings`); each seed's run is read back from ``store``.
    Columns: ``sigma_dp``, ``seed``, ``delta``; ``epsilon_rdp`` and ``epsilon_prv`` (certified,
    :func:`certified_epsilons`, with ``prv_note`` saying why a PRV value is NaN);
    ``epsilon_empirical``, the larger of the :func:`empirical_epsilon` bounds of the evaluated
    snapshot (the final model unless the setting reads an earlier epoch), taken at the run's own
    delta so that it bounds the same (epsilon, delta) as the accountants; ``attack``, the score
    that gave it, with ``tpr``, ``fpr`` and ``threshold`` at its ROC point (``"none"`` and NaN
    when no score gives a positive bound).

    Taking the larger of two scores, like the maximum over thresholds inside each, is chosen on
    the evaluation set itself, so the empirical bound is slightly optimistic (see
    :func:`mia_utils.attacks.metrics.epsilon_lower_bound`)."""
    import pandas as pd

    rows = []
    for setting in sorted(settings, key=lambda s: s.value):
        for seed, facts, (run, epoch) in zip(setting.seeds, setting.facts, setting.runs(store)):
            outputs = run.outputs if epoch is None or epoch == run.config.epochs else run.snapshot_outputs(int(epoch))
            delta = float(facts["dp_delta"])
            bounds = empirical_epsilon(outputs, alpha=alpha, delta=delta)
            attack = max(bounds, key=lambda name: bounds[name].epsilon)
            best = bounds[attack]
            point = ({"attack": attack, "tpr": best.tpr, "fpr": best.fpr, "threshold": best.threshold}
                     if best.epsilon > 0 else
                     {"attack": "none", "tpr": math.nan, "fpr": math.nan, "threshold": math.nan})
            certified = certified_epsilons(facts)
            rows.append({"sigma_dp": float(setting.value), "seed": seed, "delta": delta,
                         "epsilon_rdp": certified["rdp"], "epsilon_prv": certified["prv"],
                         "prv_note": certified["prv_note"], "epsilon_empirical": best.epsilon, **point})
    return pd.DataFrame(rows)
