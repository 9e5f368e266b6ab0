"""Run-or-load: the only way notebooks obtain trained models and their outputs.

``run(config)`` returns the stored entry when a valid one exists, and otherwise trains,
computes the per-sample outputs, writes the entry atomically and returns it. A run is a pure
function of its configuration, so a list of configurations can be handed to any process pool.
"""

from __future__ import annotations

import logging
import platform
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from mia_utils import __version__
from mia_utils.config import RunConfig
from mia_utils.data import gather, load_dataset, split_for
from mia_utils.models import build_model
from mia_utils.store import ResultStore
from mia_utils.data import training_indices
from mia_utils.models import predict_logits
from mia_utils.train import per_sample_outputs, train_many

log = logging.getLogger(__name__)

#: Every call of :func:`run` in this process, in order: dicts with ``key``, ``config``,
#: ``from_store``, ``train_seconds`` and ``device`` (see :mod:`mia_utils.book.provenance`).
RUN_LOG: list[dict] = []


#: The run keys the executing chapter lists (set by :func:`allow_only`), and the chapter's name;
#: None outside a chapter, where any run may be trained or read.
_ALLOWED: tuple[frozenset[str], str] | None = None


class UnlistedRunError(RuntimeError):
    """A chapter asked for a run that its ``runs()`` does not list (see :func:`allow_only`)."""


def allow_only(keys, chapter: str | None = None) -> None:
    """From now on, let :func:`run` train or read only the runs whose keys are in ``keys`` (a
    chapter's listed runs, :data:`mia_utils.book.runs.RUNS`), and fail with
    :class:`UnlistedRunError` naming ``chapter`` for any other; ``keys=None`` lifts the limit.
    This keeps each chapter's list of runs, which ``plan`` and ``sweep`` train ahead of the
    book, complete: a run missing from it stops the chapter instead of training unplanned."""
    global _ALLOWED
    _ALLOWED = None if keys is None else (frozenset(keys), chapter or "this chapter")


def _logged(result: "Run") -> "Run":
    RUN_LOG.append({"key": result.key, "config": result.config, "from_store": result.from_store,
                    "train_seconds": result.provenance.get("train_seconds", 0.0),
                    "device": result.provenance.get("device", "unknown")})
    return result


def git_commit() -> str:
    """The project's git commit (``+dirty`` when the tree has changes), or ``unknown``."""
    root = Path(__file__).resolve().parent.parent
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True,
                                text=True, check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _training_images(config: RunConfig, data) -> torch.Tensor:
    """uint8 images (N, C, H, W) that ``config`` trains on, in training order."""
    split = split_for(config, data.info)
    return gather(data, training_indices(config, data.info, split))[0]


def summary_metrics(outputs: dict[str, torch.Tensor]) -> dict[str, float]:
    """Accuracy and loss summaries from per-sample outputs (accuracies in [0, 1], losses in nats).

    ``train_*`` over all members, ``test_*`` over the whole test set; ``gap`` = train_acc - test_acc.
    """
    test_losses = F.cross_entropy(outputs["test_logits"], outputs["test_labels"], reduction="none")
    train_acc = outputs["member_correct"].float().mean().item()
    test_acc = (outputs["test_logits"].argmax(1) == outputs["test_labels"]).float().mean().item()
    return {
        "train_acc": train_acc,
        "test_acc": test_acc,
        "gap": train_acc - test_acc,
        "train_loss": outputs["member_losses"].mean().item(),
        "train_objective_loss": float(outputs["objective_loss"]) if "objective_loss" in outputs else float("nan"),
        "test_loss": test_losses.mean().item(),
    }


@dataclass
class Run:
    """A trained target model as read from (or just written to) the store.

    ``outputs``: per-sample tensors (see :func:`mia_utils.train.per_sample_outputs`).
    ``metrics``: :func:`summary_metrics`. ``history``: per-epoch dicts. ``from_store``: True
    when nothing was trained by this call.
    """

    config: RunConfig
    key: str
    metrics: dict
    history: list[dict]
    outputs: dict[str, torch.Tensor]
    provenance: dict
    from_store: bool
    path: Path
    _tensors: dict = field(default_factory=dict, repr=False)

    def model(self, epoch: int | None = None) -> torch.nn.Module:
        """The trained network in eval mode (final, or the snapshot after ``epoch``)."""
        name = "weights" if epoch is None else f"epoch_{epoch}_weights"
        if name not in self._tensors:
            raise KeyError(f"epoch: no snapshot for epoch {epoch}; kept: {list(self.config.snapshot_epochs)}")
        return load_model(self.config, self._tensors[name])

    def snapshot_outputs(self, epoch: int) -> dict[str, torch.Tensor]:
        """Per-sample outputs of the snapshot after ``epoch``."""
        name = f"epoch_{epoch}_outputs"
        if name not in self._tensors:
            raise KeyError(f"epoch: no snapshot for epoch {epoch}; kept: {list(self.config.snapshot_epochs)}")
        return self._tensors[name]


def _from_entry(config: RunConfig, store: ResultStore, entry: dict, from_store: bool) -> Run:
    meta = entry["json"]["metrics"]
    return Run(config=config, key=config.key(), metrics=meta["summary"], history=meta["history"],
               outputs=entry["tensors"]["outputs"], provenance=meta["provenance"], from_store=from_store,
               path=store.path(config.key()), _tensors=entry["tensors"])


def load_model(config: RunConfig, weights: dict[str, torch.Tensor]) -> torch.nn.Module:
    """The network of ``config`` with ``weights`` (a state dict) loaded, in eval mode."""
    net = build_model(config.dataset, **config.model_options())
    net.load_state_dict(weights)
    return net.eval()


def compute_entry(config: RunConfig, teacher_weights: dict[str, torch.Tensor] | None = None,
                  progress: bool | None = None, data_root=None) -> tuple[dict, dict]:
    """Train ``config`` and return its store entry ``(json_files, tensor_files)`` without
    touching any store: the pure half of :func:`run`, which a sweep runs on a remote worker.

    ``teacher_weights``: the state dict of ``config.teacher()``, needed when the run distils.
    ``json_files`` holds ``config`` and ``metrics`` (summary, per-epoch history, provenance
    including the device); ``tensor_files`` the weights, the per-sample outputs and the snapshots.
    """
    return compute_entries([config], [teacher_weights], progress, data_root)[0]


def compute_entries(configs: list[RunConfig], teacher_weights: list, progress: bool | None = None,
                    data_root=None) -> list[tuple[dict, dict]]:
    """:func:`compute_entry` for several runs of one dataset trained together in lockstep
    (:func:`mia_utils.train.train_many`; they must share :func:`mia_utils.train.lockstep_key`).
    ``teacher_weights[i]``: the weights of ``configs[i].teacher()``, or None."""
    if len(teacher_weights) != len(configs):
        raise ValueError(f"teacher_weights: got {len(teacher_weights)} for {len(configs)} configurations")
    teachers = {}
    for config, weights in zip(configs, teacher_weights):
        teacher = config.teacher()
        if teacher is not None and weights is None:
            raise ValueError(f"teacher_weights: run {config.key()} distils, so it needs its teacher's weights "
                             f"(run {teacher.key()})")
        if teacher is not None:
            teachers[teacher.key()] = weights
    data = load_dataset(configs[0].dataset, data_root)
    for config in configs:
        log.info("run %s (%s): training %d epochs on %d members", config.key(), config.dataset, config.epochs,
                 config.n_members)
    started = time.perf_counter()

    def teacher_logits(teacher: RunConfig) -> torch.Tensor:
        return predict_logits(load_model(teacher, teachers[teacher.key()]), _training_images(teacher, data))

    results = train_many(configs, data, progress=progress, teacher_logits=teacher_logits)
    entries = []
    for config, result in zip(configs, results):
        split = split_for(config, data.info)
        outputs = per_sample_outputs(load_model(config, result.state_dict), data, split, result.trained_on)
        outputs["objective_loss"] = torch.tensor(result.objective_loss, dtype=torch.float64)
        provenance = {
            "mia_utils": __version__, "torch": torch.__version__, "python": platform.python_version(),
            "git_commit": git_commit(), "device": result.device, "threads": torch.get_num_threads(),
            "host": platform.node(), "train_seconds": result.seconds,
            "total_seconds": time.perf_counter() - started, "lockstep": len(configs),
            "data_source": data.source, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "platform": platform.platform(), "argv": sys.argv[:1], "mechanisms": result.mechanism_facts,
        }
        tensors = {"weights": result.state_dict, "outputs": outputs}
        for epoch, (state, snap_outputs) in result.snapshots.items():
            tensors[f"epoch_{epoch}_weights"] = state
            tensors[f"epoch_{epoch}_outputs"] = snap_outputs
        json_files = {"config": config.to_dict(),
                      "metrics": {"summary": summary_metrics(outputs), "history": result.history,
                                  "provenance": provenance}}
        entries.append((json_files, tensors))
    return entries


def config_to_train(config: RunConfig, stored: dict | None) -> tuple[RunConfig, bool]:
    """What training ``config`` must produce given ``stored``, the store's entry of the same key
    (or None): the configuration with the union of both snapshot lists, and whether that entry
    must be replaced. (Training is deterministic, so retraining only adds snapshots.)"""
    if stored is None:
        return config, False
    kept = set(stored["json"]["config"].get("snapshot_epochs", ()))
    return config.replace(snapshot_epochs=tuple(kept | set(config.snapshot_epochs))), True


def run(config: RunConfig, store: ResultStore | None = None, progress: bool | None = None,
        data_root=None) -> Run:
    """Return the run of ``config``: read from ``store`` when present and valid, else trained now."""
    store = store or ResultStore()
    key = config.key()
    if _ALLOWED is not None and key not in _ALLOWED[0]:
        raise UnlistedRunError(
            f"{_ALLOWED[1]}: run {key[:12]} ({config.dataset}, mechanisms {dict(config.mechanisms) or 'none'}, seed "
            f"{config.seed}{', shadow model' if config.is_shadow else ''}) is not among the runs the chapter lists; "
            "add it to the chapter's entry in mia_utils.book.runs so that plan and sweep train it too")
    entry = store.load(key)
    if entry is not None:
        kept = tuple(entry["json"]["config"].get("snapshot_epochs", ()))
        if set(config.snapshot_epochs) <= set(kept):
            log.info("run %s (%s): read from the store", key, config.dataset)
            return _logged(_from_entry(config.replace(snapshot_epochs=kept), store, entry, from_store=True))
        log.info("run %s: the stored entry lacks snapshots %s; retraining to add them", key,
                 sorted(set(config.snapshot_epochs) - set(kept)))
    config, replace = config_to_train(config, entry)
    teacher = config.teacher()
    teacher_weights = run(teacher, store, progress, data_root)._tensors["weights"] if teacher else None
    json_files, tensors = compute_entry(config, teacher_weights, progress, data_root)
    store.save(key, json_files, tensors, replace=replace)
    entry = store.load(key)
    if entry is None:
        raise RuntimeError(f"the store entry {store.path(key)} could not be read back after writing")
    return _logged(_from_entry(config, store, entry, from_store=False))


def shadow_outputs(target: RunConfig, count: int, store: ResultStore | None = None,
                   progress: bool | None = None) -> tuple[torch.Tensor, torch.Tensor, list[Run]]:
    """Train (or read back) ``count`` LiRA shadow models of ``target`` and stack their outputs.

    Returns ``logits`` (count, N, classes) on the target's evaluation set, ``trained_in`` bool
    (count, N) (whether each shadow trained on each evaluated example), and the runs.
    """
    if target.is_shadow:
        raise ValueError("target: pass the target's configuration, not a shadow model's")
    runs = []
    for index in range(count):
        runs.append(run(target.shadow(index, count), store, progress=progress))
        log.info("shadow model %d/%d %s", index + 1, count, "read from the store" if runs[-1].from_store else "trained")
    logits = torch.stack([r.outputs["eval_logits"] for r in runs])
    trained_in = torch.stack([r.outputs["eval_in_training"] for r in runs])
    return logits, trained_in, runs


def early_stopping_sweep(config: RunConfig, epochs, store: ResultStore | None = None,
                         progress: bool | None = None) -> dict[int, dict[str, torch.Tensor]]:
    """Per-sample outputs of ``config`` stopped after each epoch E in ``epochs``, all read from
    the snapshots of ONE run of ``config`` (E equal to ``config.epochs`` is the final model)."""
    wanted = sorted(set(int(e) for e in epochs))
    if any(not 1 <= e <= config.epochs for e in wanted):
        raise ValueError(f"epochs: each must be in 1..{config.epochs}, got {wanted}")
    snapshots = tuple(e for e in wanted if e != config.epochs)
    result = run(config.replace(snapshot_epochs=tuple(set(config.snapshot_epochs) | set(snapshots))), store, progress)
    return {e: (result.outputs if e == config.epochs else result.snapshot_outputs(e)) for e in wanted}
