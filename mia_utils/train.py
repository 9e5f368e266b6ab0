"""The one training loop.

Data live as tensors on the training device; batches are drawn by index from a seeded
permutation (no DataLoader, no per-sample Python). Every run is seeded and, on the CPU,
deterministic: the same configuration gives bit-identical weights on the same machine.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mia_utils.config import RunConfig
from mia_utils.data import (ImageDataset, MembershipSplit, evaluation_indices, gather, lira_pool, make_split,
                            shadow_in_masks, to_unit_float)
from mia_utils.models import build_model

# cuBLAS reads this when it starts, so it must be set before any CUDA work in the process.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def default_device() -> torch.device:
    """``$MIA_DEVICE`` if set, else CUDA when available, else the CPU."""
    if os.environ.get("MIA_DEVICE"):
        return torch.device(os.environ["MIA_DEVICE"])
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def show_progress(progress: bool | None) -> bool:
    """``None`` means: on when stderr is a terminal or ``$MIA_PROGRESS=1``."""
    if progress is not None:
        return progress
    return os.environ.get("MIA_PROGRESS") == "1" or sys.stderr.isatty()


@contextlib.contextmanager
def deterministic():
    """Deterministic kernels for the duration of a run; restores the previous setting."""
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


@dataclass
class TrainResult:
    """What training produced: final weights, per-epoch history, and kept snapshots.

    ``history``: one dict per epoch with ``epoch``, ``train_loss``/``train_acc`` (on the
    evaluation members) and ``test_loss``/``test_acc`` (on the evaluation non-members),
    losses in nats, accuracies in [0, 1], and ``seconds`` (wall time of the epoch, including
    that evaluation pass of 2 x n_eval forward passes).
    ``snapshots``: epoch -> (state_dict, per-sample outputs) for ``config.snapshot_epochs``.
    """

    state_dict: dict[str, torch.Tensor]
    history: list[dict]
    snapshots: dict[int, tuple[dict, dict]] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0
    trained_on: torch.Tensor | None = None


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, classes) in eval mode for uint8 or [0, 1] float images (N, C, H, W)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start: start + batch_size].to(device)
        if batch.dtype == torch.uint8:
            batch = to_unit_float(batch)
        chunks.append(model(batch).float().cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)


def training_indices(config: RunConfig, data: ImageDataset, split: MembershipSplit) -> torch.Tensor:
    """Global indices (see :func:`mia_utils.data.gather`) of the images ``config`` trains on:
    the target's members, or a shadow model's half of the LiRA population pool."""
    if not config.is_shadow:
        return split.members
    pool = lira_pool(data.info, split, seed=config.split_seed)
    masks = shadow_in_masks(len(pool), config.shadow_count, seed=config.split_seed)
    return pool[masks[config.shadow_index]].sort().values


def per_sample_outputs(model: nn.Module, data: ImageDataset, split: MembershipSplit,
                       trained_on: torch.Tensor) -> dict[str, torch.Tensor]:
    """Per-sample outputs the attacks need, all on the CPU.

    ``eval_logits`` (2 n_eval, classes), ``eval_labels``, ``eval_is_member`` (bool): the
    balanced evaluation set, target members first. ``eval_in_training`` (bool): whether this
    model trained on each evaluation sample (equal to ``eval_is_member`` for a target; a
    shadow model's own IN mask). ``adv_*``: the adversary's set, laid out the same way.
    ``member_losses`` / ``member_correct`` (len(trained_on),): cross-entropy in nats and
    correctness on every image the model trained on (``trained_on``: global indices), so that
    the adversary's "average training loss" is the true one. ``test_logits`` / ``test_labels``:
    the whole test set.
    """
    outputs = {}
    for prefix, members, nonmembers in (("eval", split.eval_members, split.eval_nonmembers),
                                        ("adv", split.adv_members, split.adv_nonmembers)):
        images = torch.cat([data.train_images[members], data.test_images[nonmembers]])
        outputs[f"{prefix}_logits"] = predict_logits(model, images)
        outputs[f"{prefix}_labels"] = torch.cat([data.train_labels[members], data.test_labels[nonmembers]])
        outputs[f"{prefix}_is_member"] = torch.cat([torch.ones(len(members), dtype=torch.bool),
                                                    torch.zeros(len(nonmembers), dtype=torch.bool)])
    outputs["eval_in_training"] = torch.isin(evaluation_indices(data.info, split), trained_on)
    train_images, train_labels = gather(data, trained_on)
    member_logits = predict_logits(model, train_images)
    outputs["member_losses"] = F.cross_entropy(member_logits, train_labels, reduction="none")
    outputs["member_correct"] = member_logits.argmax(1) == train_labels
    outputs["test_logits"] = predict_logits(model, data.test_images)
    outputs["test_labels"] = data.test_labels.clone()
    return outputs


def _loss_and_accuracy(model, images, labels):
    logits = predict_logits(model, images)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def train(config: RunConfig, data: ImageDataset, progress: bool | None = None,
          device: torch.device | None = None) -> TrainResult:
    """Train the target model of ``config`` on ``data``; see :class:`TrainResult`."""
    if data.info.name != config.dataset:
        raise ValueError(f"data: got {data.info.name}, but the configuration asks for {config.dataset}")
    device = device or default_device()
    split = make_split(data.info, config.n_members, config.n_eval, config.n_adversary, config.split_seed)
    started = time.perf_counter()
    with deterministic():
        torch.manual_seed(config.training_seed())
        model = build_model(config.dataset, config.width, config.dropout, config.spatial_dropout,
                            config.norm).to(device)
        optimizer = torch.optim.Adam(model.parameters(), lr=config.lr, weight_decay=config.weight_decay,
                                     amsgrad=config.amsgrad)
        trained_on = training_indices(config, data, split)
        train_images, train_labels = gather(data, trained_on)
        images, labels = to_unit_float(train_images).to(device), train_labels.to(device)
        n_train = len(trained_on)
        eval_members = (data.train_images[split.eval_members].to(device), data.train_labels[split.eval_members])
        eval_nonmembers = (data.test_images[split.eval_nonmembers].to(device), data.test_labels[split.eval_nonmembers])
        order_generator = torch.Generator().manual_seed(config.training_seed() + 1)
        history, snapshots = [], {}
        bar = None
        if show_progress(progress):
            from tqdm import tqdm

            bar = tqdm(total=config.epochs, desc=f"train {config.dataset} {config.key()[:8]}", unit="epoch",
                       file=sys.stderr, leave=False)
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            model.train()
            order = torch.randperm(n_train, generator=order_generator).to(device)
            for start in range(0, n_train, config.batch_size):
                batch = order[start: start + config.batch_size]
                loss = F.cross_entropy(model(images[batch]), labels[batch])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            train_loss, train_acc = _loss_and_accuracy(model, *eval_members)
            test_loss, test_acc = _loss_and_accuracy(model, *eval_nonmembers)
            history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                            "test_loss": test_loss, "test_acc": test_acc,
                            "seconds": time.perf_counter() - epoch_start})
            if epoch in config.snapshot_epochs:
                snapshots[epoch] = ({k: v.detach().cpu().clone() for k, v in model.state_dict().items()},
                                    per_sample_outputs(model, data, split, trained_on))
            if bar is not None:
                bar.set_postfix(train_acc=f"{train_acc:.3f}", test_acc=f"{test_acc:.3f}")
                bar.update()
        if bar is not None:
            bar.close()
        state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    return TrainResult(state, history, snapshots, device=str(device), seconds=time.perf_counter() - started,
                       trained_on=trained_on)
