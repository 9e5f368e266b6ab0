"""Experiments of the related-work chapters (06-08), kept out of the notebooks so they are tested.

* :func:`lira_at_epochs`: LiRA against one configuration stopped at several epochs, with shadow
  models trained by the same recipe and stopped at the same epochs (their snapshots).
* :func:`spearman_interval`: a rank correlation with a bootstrap interval over the points.
* :func:`confidence_attack_fprs`: the prediction-score attack's false-positive rate on
  out-of-distribution inputs, with its threshold set on the adversary's in-distribution data.
"""

from __future__ import annotations

import numpy as np
import torch

from mia_utils import attacks, experiment, metrics
from mia_utils.attacks import AttackInputs
from mia_utils.config import RunConfig


def outputs_at(run: experiment.Run, epoch: int) -> dict[str, torch.Tensor]:
    """Per-sample outputs of ``run`` after ``epoch`` (the final outputs for its last epoch)."""
    return run.outputs if epoch == run.config.epochs else run.snapshot_outputs(epoch)


def lira_at_epochs(target: RunConfig, shadow_count: int, epochs, store=None, n_bootstrap: int = 200,
                   seed: int = 0) -> list[dict]:
    """One row per epoch E in ``epochs``: LiRA (online, fixed variance) against ``target``
    stopped after E epochs, with ``shadow_count`` shadow models of the same recipe stopped
    after E epochs too, and the target's accuracies at E.

    ``target`` must keep snapshots at every E below its final epoch. Row keys: ``epoch``,
    ``train_acc``, ``test_acc``, ``gap`` (fractions), ``auc``, ``tpr_at_0.1%_fpr``,
    ``tpr_at_1%_fpr`` (fractions) and their bootstrap standard deviations (``*_std``).
    """
    epochs = sorted(set(int(e) for e in epochs))
    missing = [e for e in epochs if e != target.epochs and e not in target.snapshot_epochs]
    if missing:
        raise ValueError(f"epochs: {missing} are not among the target's snapshot epochs "
                         f"{list(target.snapshot_epochs)} (nor its final epoch {target.epochs})")
    target_run = experiment.run(target, store)
    shadow_runs = [experiment.run(target.shadow(i, shadow_count), store) for i in range(shadow_count)]
    rows = []
    for epoch in epochs:
        outputs = outputs_at(target_run, epoch)
        shadows = [outputs_at(r, epoch) for r in shadow_runs]
        result = attacks.lira(AttackInputs.from_outputs(outputs), torch.stack([s["eval_logits"] for s in shadows]),
                              torch.stack([s["eval_in_training"] for s in shadows]), online=True,
                              fixed_variance=True, n_bootstrap=n_bootstrap, seed=seed)
        summary = experiment.summary_metrics(outputs)
        row = {"epoch": epoch, "train_acc": summary["train_acc"], "test_acc": summary["test_acc"],
               "gap": summary["gap"]}
        for key in ("auc", "tpr_at_0.1%_fpr", "tpr_at_1%_fpr", "advantage"):
            row[key] = result.metrics[key].value
            row[f"{key}_std"] = result.metrics[key].std
        rows.append(row)
    return rows


def spearman_interval(x, y, n_bootstrap: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Spearman's rank correlation of the paired points (x, y), and a percentile bootstrap
    interval at ``level`` from resampling the points with replacement (resamples in which
    either variable is constant are skipped). Returns ``(rho, low, high)``."""
    from scipy.stats import spearmanr

    x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
    if x.shape != y.shape or x.ndim != 1 or len(x) < 3:
        raise ValueError(f"x, y: need two equal-length 1-D sequences of at least 3 points, got {x.shape} and {y.shape}")
    rho = float(spearmanr(x, y).statistic)
    rng = np.random.default_rng(seed)
    replicates = []
    for _ in range(n_bootstrap):
        pick = rng.integers(0, len(x), len(x))
        if np.ptp(x[pick]) == 0 or np.ptp(y[pick]) == 0:
            continue
        replicates.append(spearmanr(x[pick], y[pick]).statistic)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(replicates, [tail, 100 - tail]) if replicates else (np.nan, np.nan)
    return rho, float(low), float(high)


def max_probability(probabilities: torch.Tensor) -> torch.Tensor:
    """The prediction score: the largest class probability of each row of (N, classes)."""
    return probabilities.max(1).values


def confidence_attack_fprs(eval_probs: torch.Tensor, eval_is_member: torch.Tensor, adv_probs: torch.Tensor,
                           adv_is_member: torch.Tensor, ood_probs: dict[str, torch.Tensor]) -> dict[str, float]:
    """The prediction-score attack (member when the top probability is at least a threshold set on
    the adversary's own members and non-members) on the evaluation set and on OOD inputs.

    Probabilities are (N, classes). Returns fractions: ``tpr`` and ``fpr`` on the evaluation
    set, ``advantage`` (tpr - fpr), ``auc`` of the score, ``threshold``, and ``fpr_<name>``:
    the share of each OOD set called a member."""
    threshold = attacks.best_threshold(max_probability(adv_probs), adv_is_member)
    scores = max_probability(eval_probs)
    predicted = scores >= threshold
    members = eval_is_member.bool()
    tpr, fpr = predicted[members].double().mean().item(), predicted[~members].double().mean().item()
    result = {"threshold": threshold, "tpr": tpr, "fpr": fpr, "advantage": tpr - fpr,
              "auc": metrics.roc_auc(scores, members)}
    for name, probs in ood_probs.items():
        result[f"fpr_{name}"] = (max_probability(probs) >= threshold).double().mean().item()
    return result


# --- the settings the related-work chapters train (the book's plan reads these too) ----------

def augmentation_strengths(profile) -> tuple:
    """Random-crop strengths of chapter 06: none (0) and the profile's grid values >= 4."""
    return (0,) + tuple(c for c in profile.grids["random_crop"] if c >= 4)


def mmd_defense(params: dict) -> dict:
    """Chapter 07's defense as mechanism values, from its validated parameters."""
    return {"mixup": params["mixup_alpha"], "mmd": params["mmd_lambda"]}


def calibration_smoothing(profile) -> float:
    """Chapter 08's label-smoothing alpha: the largest value of the profile's grid."""
    return max(profile.grids["label_smoothing"])
