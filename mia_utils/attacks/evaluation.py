"""The metrics of one trained run, with their within-seed uncertainty, cached in the result store.

:func:`evaluate_outputs` reads a run's per-sample outputs and returns, for every metric the book's
tables and verdicts use, the point value and its variance over the evaluation samples:

=========================  ==========================================================  ============
metric                     what it is                                                  variance
=========================  ==========================================================  ============
``test_acc``               top-1 accuracy on the whole test set                        binomial
``train_acc``              top-1 accuracy on every training image                      binomial
``gap``                    ``train_acc - test_acc``                                    sum
``adv_yeom``               Yeom's advantage, threshold = mean clean training loss (a)  bootstrap
``adv_yeom_objective``     Yeom's advantage, threshold = mean training objective (b)   bootstrap
``adv_salem``              Salem's attack (Kaya et al.'s variant) advantage            bootstrap
``auc``                    ROC AUC of the loss (threshold-free; both Yeom readings)    bootstrap
``tpr_at_0.1%_fpr``        TPR of the loss at FPR strictly below 0.1 % (NaN: n/a)      see below
=========================  ==========================================================  ============

All values are fractions. Bootstrap variances are the squared standard deviations of
:func:`mia_utils.attacks.metrics.summarize` (members and non-members resampled separately). A TPR at a
low FPR often sits at or near 0, where the bootstrap variance collapses to 0; its variance is
therefore the larger of the bootstrap's and that implied by its exact Clopper-Pearson interval,
((high - low) / 3.92)^2. Per-seed values and variances feed
:func:`mia_utils.attacks.evidence.combine_seeds`.

Every metric also keeps its ``replicates``: its value on each bootstrap resample (fractions; for the
accuracies, resamples of the test set and of the training set, drawn from ``seed``), and the
evaluation keeps ``resamples``, a fingerprint of the samples and the resampling. Two runs of one
seed (a mechanism and its baseline) are scored on the same samples with the same resamples, so
the within-seed variance of their *paired* difference is the variance of the replicates'
differences (:func:`paired_variance`), not the sum of the two variances: the shared samples'
noise cancels.

:func:`evaluate` caches the result beside the run in the store (key ``eval-<hash>`` of the run's
key, the snapshot epoch and the settings), so re-rendering the book recomputes nothing.
"""

from __future__ import annotations

import hashlib
import math

import numpy as np
import torch

from mia_utils import attacks, experiment
from mia_utils.store import derived_key

EVALUATION_FORMAT = 3
METRICS = ("test_acc", "train_acc", "gap", "adv_yeom", "adv_yeom_objective", "adv_salem", "auc",
           "tpr_at_0.1%_fpr")
METRIC_TITLES = {
    "test_acc": "test accuracy", "train_acc": "training accuracy", "gap": "generalization gap",
    "adv_yeom": "Adv_Yeom (a: clean loss)", "adv_yeom_objective": "Adv_Yeom (b: training objective)",
    "adv_salem": "Adv_Salem", "auc": "loss AUC", "tpr_at_0.1%_fpr": "loss TPR @ 0.1 % FPR",
}


def _replicates(array) -> list[float] | None:
    return None if array is None else [float(x) for x in array]


def _binomial(correct: torch.Tensor, n_bootstrap: int, rng: np.random.Generator) -> dict:
    """A proportion with its binomial variance and ``n_bootstrap`` resampled proportions."""
    flags = correct.numpy().astype(np.float64)
    p = float(flags.mean())
    replicates = None
    if n_bootstrap > 0:
        replicates = flags[rng.integers(0, flags.size, size=(n_bootstrap, flags.size))].mean(1)
    return {"value": p, "variance": p * (1 - p) / flags.size, "replicates": _replicates(replicates)}


def _bootstrap(estimate) -> dict:
    return {"value": estimate.value, "variance": estimate.std ** 2, "replicates": _replicates(estimate.replicates)}


def _low_fpr(estimate) -> dict:
    if math.isnan(estimate.value):
        return {"value": float("nan"), "variance": float("nan"), "replicates": None}
    low, high = estimate.exact
    # No replicates: near 0 the bootstrap collapses, so a paired difference keeps the sum of the
    # variances, which include the exact interval.
    return {"value": estimate.value, "variance": max(estimate.std ** 2, ((high - low) / 3.92) ** 2),
            "replicates": None}


def resample_fingerprint(outputs: dict[str, torch.Tensor], n_bootstrap: int, seed: int) -> str:
    """A short hash of what a run's bootstrap resamples depend on: the evaluation set's labels and
    membership, the test labels, the number of members, ``n_bootstrap`` and ``seed``. Equal
    fingerprints mean that two runs' replicates were drawn on the same samples, resample by
    resample."""
    digest = hashlib.sha256()
    for name in ("eval_labels", "eval_is_member", "test_labels"):
        digest.update(outputs[name].to(torch.int64).numpy().tobytes())
    digest.update(f"{outputs['member_correct'].numel()}:{n_bootstrap}:{seed}".encode())
    return digest.hexdigest()[:16]


def paired_variance(a: dict, b: dict, a_resamples: str | None, b_resamples: str | None) -> float:
    """Within-seed variance of ``a["value"] - b["value"]`` for one metric of two runs
    (each ``{"value", "variance", "replicates"}`` as :func:`evaluate_outputs` gives): the variance
    of the replicates' differences when both runs were resampled alike (equal ``*_resamples``
    fingerprints), otherwise ``a["variance"] + b["variance"]`` (independent samples)."""
    same = a_resamples is not None and a_resamples == b_resamples
    ra, rb = a.get("replicates"), b.get("replicates")
    if not same or ra is None or rb is None or len(ra) != len(rb) or len(ra) < 2:
        return a["variance"] + b["variance"]
    return float(np.var(np.asarray(ra) - np.asarray(rb), ddof=1))


def evaluate_outputs(outputs: dict[str, torch.Tensor], n_bootstrap: int = 200, seed: int = 0) -> dict[str, dict]:
    """Metric name -> ``{"value", "variance"}`` (fractions) for one run's per-sample outputs;
    see the module docstring. ``seed`` seeds the bootstrap and Salem's attack model."""
    inputs = attacks.AttackInputs.from_outputs(outputs)
    test_correct = outputs["test_logits"].argmax(1) == outputs["test_labels"]
    rng = np.random.default_rng([seed, 1])  # the accuracies' resamples; the attacks draw from ``seed``
    result = {"test_acc": _binomial(test_correct, n_bootstrap, rng),
              "train_acc": _binomial(outputs["member_correct"], n_bootstrap, rng)}
    train, test = result["train_acc"], result["test_acc"]
    result["gap"] = {"value": train["value"] - test["value"], "variance": train["variance"] + test["variance"],
                     "replicates": None if train["replicates"] is None else
                     [x - y for x, y in zip(train["replicates"], test["replicates"])]}
    clean = attacks.yeom(inputs, n_bootstrap=n_bootstrap, seed=seed)
    result["adv_yeom"] = _bootstrap(clean.metrics["advantage"])
    result["auc"] = _bootstrap(clean.metrics["auc"])
    result["tpr_at_0.1%_fpr"] = _low_fpr(clean.metrics["tpr_at_0.1%_fpr"])
    if math.isnan(inputs.objective_train_loss):
        result["adv_yeom_objective"] = {"value": float("nan"), "variance": float("nan")}
    else:
        objective = attacks.yeom(inputs, n_bootstrap=n_bootstrap, seed=seed, reading="objective")
        result["adv_yeom_objective"] = _bootstrap(objective.metrics["advantage"])
    result["adv_salem"] = _bootstrap(attacks.salem(inputs, n_bootstrap=n_bootstrap, seed=seed).metrics["advantage"])
    result["objective_loss"] = {"value": inputs.objective_train_loss, "variance": 0.0}
    result["train_loss"] = {"value": inputs.average_train_loss, "variance": 0.0}
    result["n_nonmembers"] = {"value": int((~inputs.is_member).sum()), "variance": 0.0}
    result["resamples"] = {"value": resample_fingerprint(outputs, n_bootstrap, seed), "variance": 0.0}
    return result


def evaluation_key(run_key: str, epoch: int | None, n_bootstrap: int, seed: int) -> str:
    settings = {"run": run_key, "epoch": epoch, "n_bootstrap": n_bootstrap, "seed": seed,
                "format": EVALUATION_FORMAT}
    return derived_key("eval-", settings)


def evaluate(run: "experiment.Run", epoch: int | None = None, n_bootstrap: int = 200, seed: int = 0,
             store=None) -> dict[str, dict]:
    """:func:`evaluate_outputs` of ``run`` (after ``epoch`` when given: a snapshot), computed
    once and kept in ``store`` (default: the run's store, ``$MIA_STORE``).

    Args:
        run: the trained :class:`mia_utils.experiment.Run`.
        epoch: evaluate the snapshot after this epoch (int); None or ``run.config.epochs`` = the
            final model.
        n_bootstrap: bootstrap resamples for the variances (int >= 0); part of the cache key.
        seed: seed of the bootstrap and of Salem's attack model (int); part of the cache key.
        store: the :class:`mia_utils.store.ResultStore` the result is cached in (None = default).

    Returns:
        metric name -> ``{"value", "variance"}`` (fractions), as :func:`evaluate_outputs`.
    """
    from mia_utils.store import ResultStore

    store = store or ResultStore()
    final = epoch is None or epoch == run.config.epochs
    key = evaluation_key(run.key, None if final else int(epoch), n_bootstrap, seed)
    entry = store.load(key, tensors=False)
    if entry is None:
        outputs = run.outputs if final else run.snapshot_outputs(int(epoch))
        metrics = evaluate_outputs(outputs, n_bootstrap=n_bootstrap, seed=seed)
        store.save(key, {"evaluation": {"run": run.key, "epoch": epoch, "metrics": metrics}}, {})
        return metrics
    return entry["json"]["evaluation"]["metrics"]
