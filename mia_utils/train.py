"""The one training loop, for one model or for several trained in lockstep (:func:`train_many`).

Data live as tensors on the training device; batches are drawn by index from a seeded
permutation (no DataLoader, no per-sample Python). Every run is seeded and, on the CPU,
deterministic: the same configuration gives bit-identical weights on the same machine with the
same number of threads (another CPU or thread count may run other kernels, which round otherwise).
"""

from __future__ import annotations

import contextlib
import copy
import os
import sys
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from mia_utils.config import RunConfig
from mia_utils.data import (DATASETS, ImageDataset, MembershipSplit, evaluation_indices, gather, split_for,
                            to_unit_float, training_indices)
from mia_utils.defenses import TrainingContext, build
from mia_utils.models import build_model, predict_logits

# Images per side watched after every epoch for the learning curves (``TrainResult.history``).
# The final per-sample outputs always cover the whole evaluation set.
HISTORY_PER_SIDE = 500

# cuBLAS reads this when it starts, so it must be set before any CUDA work in the process.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def default_device() -> torch.device:
    """``$MIA_DEVICE`` if set, else CUDA when available, else the CPU."""
    if os.environ.get("MIA_DEVICE"):
        return torch.device(os.environ["MIA_DEVICE"])
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


_MALLOC_TUNED = False


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to serve large blocks from its heap and to keep freed memory rather
    than hand it back to the OS (``mallopt`` M_MMAP_THRESHOLD and M_TRIM_THRESHOLD at their
    2 GiB maximum); once per process, a no-op off glibc. Returns whether it applied.

    Training allocates and frees equally large buffers at every step; DP-SGD's per-sample
    gradients are batch x parameters floats (about 100 MB per step at the quick width). By
    default each such block is a fresh ``mmap`` whose pages the kernel must fault in and zero
    again, which showed as 60 % system time in DP-SGD training here; a reused heap block costs
    nothing of the kind (an allocate-and-fill of 103 MB took 92 ms before, 21 ms after).
    The process keeps its peak memory, which a training process reaches every step anyway."""
    global _MALLOC_TUNED
    if _MALLOC_TUNED:
        return True
    import ctypes
    import platform

    if platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    largest = 2 ** 31 - 1
    # Threads created from now on share the main arena (a thread's own arena maps large blocks
    # whatever the thresholds); a worker whose thread already has one needs MALLOC_ARENA_MAX=1
    # in its environment (mia_utils.book.sweep sets it for the local cluster).
    _MALLOC_TUNED = all(libc.mallopt(option, value) for option, value in
                        ((m_mmap_threshold, largest), (m_trim_threshold, largest), (m_arena_max, 1)))
    return _MALLOC_TUNED


def show_progress(progress: bool | None) -> bool:
    """``None`` means: on when stderr is a terminal or ``$MIA_PROGRESS=1``."""
    if progress is not None:
        return progress
    return os.environ.get("MIA_PROGRESS") == "1" or sys.stderr.isatty()


@contextlib.contextmanager
def deterministic():
    """Deterministic kernels for the duration of a run; restores the previous settings.

    PyTorch's deterministic mode also fills every newly allocated tensor with NaN by default
    (``torch.utils.deterministic.fill_uninitialized_memory``), in case a kernel reads memory it
    never wrote. No kernel here does (outputs are bitwise the same without the fill), and the
    fill cost about 5 % of a quick training step and more of evaluation, so it is turned off."""
    previous = torch.are_deterministic_algorithms_enabled()
    previous_fill = torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = False
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)
        torch.utils.deterministic.fill_uninitialized_memory = previous_fill


@dataclass
class TrainResult:
    """What training produced: final weights, per-epoch history, and kept snapshots.

    ``history``: one dict per epoch with ``epoch``, ``train_loss``/``train_acc`` (on the first
    ``HISTORY_PER_SIDE`` evaluation members) and ``test_loss``/``test_acc`` (on as many
    evaluation non-members), losses in nats, accuracies in [0, 1], and ``seconds`` (wall time
    of the epoch, including that evaluation pass).
    ``snapshots``: epoch -> (state_dict, per-sample outputs) for ``config.snapshot_epochs``; each
    snapshot's outputs also hold ``objective_loss`` (a 0-d float64 tensor, nats), as
    ``objective_loss`` holds it for the final model (see :func:`training_objective_loss`).
    """

    state_dict: dict[str, torch.Tensor]
    history: list[dict]
    snapshots: dict[int, tuple[dict, dict]] = field(default_factory=dict)
    device: str = "cpu"
    seconds: float = 0.0
    trained_on: torch.Tensor | None = None
    mechanism_facts: dict = field(default_factory=dict)
    objective_loss: float = float("nan")


def _state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """CPU copy of the weights; unwraps a model that a mechanism wrapped (e.g. for DP-SGD)."""
    inner = getattr(model, "_module", model)
    return {k: v.detach().cpu().clone() for k, v in inner.state_dict().items()}




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
    # Each image is seen once: the whole test set (the non-members are test images) and every
    # training image that any of the sets uses; the sets' logits are read from those two.
    n_train = data.train_images.shape[0]
    test_logits = predict_logits(model, data.test_images)
    seen = torch.cat([split.eval_members, split.adv_members, trained_on[trained_on < n_train]]).unique()
    seen_logits = predict_logits(model, data.train_images[seen])

    def logits_at(global_indices: torch.Tensor) -> torch.Tensor:
        in_train = global_indices < n_train
        logits = torch.empty((len(global_indices), test_logits.shape[1]), dtype=test_logits.dtype)
        logits[in_train] = seen_logits[torch.searchsorted(seen, global_indices[in_train])]
        logits[~in_train] = test_logits[global_indices[~in_train] - n_train]
        return logits

    outputs = {}
    for prefix, members, nonmembers in (("eval", split.eval_members, split.eval_nonmembers),
                                        ("adv", split.adv_members, split.adv_nonmembers)):
        outputs[f"{prefix}_logits"] = logits_at(torch.cat([members, n_train + nonmembers]))
        outputs[f"{prefix}_labels"] = torch.cat([data.train_labels[members], data.test_labels[nonmembers]])
        outputs[f"{prefix}_is_member"] = torch.cat([torch.ones(len(members), dtype=torch.bool),
                                                    torch.zeros(len(nonmembers), dtype=torch.bool)])
    outputs["eval_in_training"] = torch.isin(evaluation_indices(data.info, split), trained_on)
    member_logits = logits_at(trained_on)
    _, train_labels = gather(data, trained_on)
    outputs["member_losses"] = F.cross_entropy(member_logits, train_labels, reduction="none")
    outputs["member_correct"] = member_logits.argmax(1) == train_labels
    outputs["test_logits"] = test_logits
    outputs["test_labels"] = data.test_labels.clone()
    return outputs


def _loss_and_accuracy(model, images, labels):
    logits = predict_logits(model, images)
    return F.cross_entropy(logits, labels).item(), (logits.argmax(1) == labels).float().mean().item()


def epoch_batches(mechanisms, n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Index batches of one epoch: a mechanism's own sampling if it has one, else a shuffled
    partition of range(n) into batches of ``batch_size`` (the last one may be smaller)."""
    for mechanism in mechanisms:
        custom = mechanism.batches(n, batch_size, generator)
        if custom is not None:
            return custom
    return list(torch.randperm(n, generator=generator).split(batch_size))


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean over the batch of -sum_c targets_c log softmax(logits)_c, in nats; targets (B, classes)."""
    return -(targets * logits.log_softmax(1)).sum(1).mean()


@torch.no_grad()
def training_objective_loss(model: nn.Module, mechanisms, images: torch.Tensor, targets: torch.Tensor,
                            batch_size: int, generator: torch.Generator) -> float:
    """Mean training loss over every training image, in nats, as the training objective sees it:
    the cross-entropy of the model's output on the image *after* the mechanisms' batch transforms
    (noise, cropping, mix-up) against the *transformed* targets (smoothed labels, a teacher's soft
    labels). The network is in eval mode (no dropout), so only the data and labels differ from the
    clean loss; penalty terms (MMD) are left out. This is the "average training loss" a training
    log reports: reading (b) of Yeom's threshold (:func:`mia_utils.attacks.yeom`).

    Batches are consecutive (no shuffling). The model's training flag is restored afterwards.

    Args:
        model: the network (``nn.Module``, logits out), evaluated in eval mode without gradients.
        mechanisms: the run's mechanisms (iterable of :class:`mia_utils.defenses.Mechanism`), whose
            ``transform`` is applied to every batch in order.
        images: float tensor (N, C, H, W) in [0, 1], every training image, on the model's device.
        targets: float tensor (N, classes), the training targets as probability rows, on the
            model's device.
        batch_size: images per batch (int).
        generator: the ``torch.Generator`` the transforms draw from (advanced in place).
    """
    was_training = model.training
    model.eval()
    total, n = 0.0, images.shape[0]
    for batch in torch.arange(n, device=images.device).split(batch_size):
        inputs, batch_targets = images[batch], targets[batch]
        for mechanism in mechanisms:
            inputs, batch_targets = mechanism.transform(inputs, batch_targets, batch, generator)
        total += soft_cross_entropy(model(inputs).float(), batch_targets).item() * len(batch)
    model.train(was_training)
    return total / n


@dataclass
class _Run:
    """One model's state while it trains (see :func:`train_many`): its configuration, split,
    mechanisms, network and optimiser, training tensors on the device (``images`` float (N, C, H,
    W) in [0, 1], ``one_hot`` (N, classes)), random streams, and what it has recorded so far."""

    config: RunConfig
    split: MembershipSplit
    mechanisms: list
    model: nn.Module
    optimizer: torch.optim.Optimizer
    optimizer_options: dict
    images: torch.Tensor
    one_hot: torch.Tensor
    trained_on: torch.Tensor
    eval_members: tuple
    eval_nonmembers: tuple
    order_generator: torch.Generator
    augment_generator: torch.Generator
    device: torch.device
    started: float
    history: list = field(default_factory=list)
    snapshots: dict = field(default_factory=dict)

    def epoch_batches(self) -> list[torch.Tensor]:
        return epoch_batches(self.mechanisms, len(self.trained_on), self.config.batch_size, self.order_generator)

    def batch(self, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and soft targets of one training batch, after the mechanisms' transforms."""
        indices = indices.to(self.device)
        inputs, targets = self.images[indices], self.one_hot[indices]
        for mechanism in self.mechanisms:
            inputs, targets = mechanism.transform(inputs, targets, indices, self.augment_generator)
        return inputs, targets

    def loss(self, logits: torch.Tensor, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """The training objective of one batch: soft cross-entropy plus the mechanisms' terms."""
        loss = soft_cross_entropy(logits, targets)
        for mechanism in self.mechanisms:
            extra = mechanism.extra_loss(self.model, logits, inputs, targets)
            if extra is not None:
                loss = loss + extra
        return loss

    def objective_loss(self) -> float:
        generator = torch.Generator(device=self.device).manual_seed(self.config.training_seed() + 3)
        return training_objective_loss(self.model, self.mechanisms, self.images, self.one_hot,
                                       self.config.batch_size, generator)

    def end_epoch(self, epoch: int, data: ImageDataset, epoch_start: float) -> None:
        """Record the learning curves and, when asked for, a snapshot after ``epoch``
        (``epoch_start``: ``time.perf_counter()`` when the epoch began)."""
        train_loss, train_acc = _loss_and_accuracy(self.model, *self.eval_members)
        test_loss, test_acc = _loss_and_accuracy(self.model, *self.eval_nonmembers)
        self.history.append({"epoch": epoch, "train_loss": train_loss, "train_acc": train_acc,
                             "test_loss": test_loss, "test_acc": test_acc,
                             "seconds": time.perf_counter() - epoch_start})
        if epoch in self.config.snapshot_epochs:
            outputs = per_sample_outputs(self.model, data, self.split, self.trained_on)
            outputs["objective_loss"] = torch.tensor(self.objective_loss(), dtype=torch.float64)
            self.snapshots[epoch] = (_state_dict(self.model), outputs)

    def result(self) -> TrainResult:
        state, objective = _state_dict(self.model), self.objective_loss()
        facts = {k: v for mechanism in self.mechanisms for k, v in mechanism.report().items()}
        return TrainResult(state, self.history, self.snapshots, device=str(self.device),
                           seconds=time.perf_counter() - self.started, trained_on=self.trained_on,
                           mechanism_facts=facts, objective_loss=objective)


def _optimizer_options(config: RunConfig, mechanisms) -> dict:
    """Adam's keyword arguments: the configuration's, with the mechanisms' changes (weight decay)."""
    options = {"lr": config.lr, "weight_decay": config.weight_decay, "amsgrad": config.amsgrad}
    for mechanism in mechanisms:
        options.update(mechanism.optimizer_options())
    return options


def _prepare(config: RunConfig, data: ImageDataset, device: torch.device, teacher_logits) -> _Run:
    """Seed, build and prepare one run exactly as a run trained alone would be."""
    if data.info.name != config.dataset:
        raise ValueError(f"data: got {data.info.name}, but the configuration asks for {config.dataset}")
    started = time.perf_counter()
    split = split_for(config, data.info)
    torch.manual_seed(config.training_seed())
    mechanisms = build(config.mechanisms)
    model = build_model(config.dataset, **config.model_options()).to(device)
    optimizer_options = _optimizer_options(config, mechanisms)
    optimizer = torch.optim.Adam(model.parameters(), **optimizer_options)
    trained_on = training_indices(config, data.info, split)
    train_images, train_labels = gather(data, trained_on)
    images, labels = to_unit_float(train_images).to(device), train_labels.to(device)
    context = TrainingContext(config, images, labels, data.info.num_classes, device, teacher_logits)
    # Preparing may train a teacher (which reseeds the RNG): keep this run's RNG stream intact.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        for mechanism in mechanisms:
            mechanism.prepare(context)
    for mechanism in mechanisms:
        model, optimizer = mechanism.wrap(model, optimizer, context)
    watched_members = split.eval_members[:HISTORY_PER_SIDE]
    watched_nonmembers = split.eval_nonmembers[:HISTORY_PER_SIDE]
    return _Run(config, split, mechanisms, model, optimizer, optimizer_options, images,
                F.one_hot(labels, data.info.num_classes).float(), trained_on,
                (data.train_images[watched_members].to(device), data.train_labels[watched_members]),
                (data.test_images[watched_nonmembers].to(device), data.test_labels[watched_nonmembers]),
                torch.Generator().manual_seed(config.training_seed() + 1),
                torch.Generator(device=device).manual_seed(config.training_seed() + 2), device, started)


class _Alone:
    """Steps one model: the ordinary path."""

    def __init__(self, runs: list[_Run]):
        (self.run,) = runs

    def step(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        (inputs, targets), run = batches[0], self.run
        loss = run.loss(run.model(inputs), inputs, targets)
        run.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        run.optimizer.step()

    def train(self) -> None:
        self.run.model.train()

    def sync(self) -> None:
        pass


class _Lockstep:
    """Steps K models of one architecture as one: their parameters stacked along a new first
    dimension (``torch.func.stack_module_state``), the forward pass vectorised over it
    (``torch.func.vmap`` of ``functional_call``; dropout masks drawn independently per model),
    and one Adam over the stacked tensors, which is K independent Adams since Adam is
    element-wise. Each model keeps its own batches, transforms and random streams; the loss is
    the sum of the K models' losses, so each model's gradient is its own. ``sync`` copies the
    stacked weights back into each run's network (for evaluation and snapshots)."""

    def __init__(self, runs: list[_Run]):
        from torch.func import functional_call, stack_module_state, vmap

        self.runs = runs
        self.params, self.buffers = stack_module_state([run.model for run in runs])
        # The stacked tensors carry the weights; the template only lends its structure. vmap cannot
        # query memory formats, so it runs in the plain layout.
        template = copy.deepcopy(runs[0].model).to("meta")
        if hasattr(template, "set_channels_last"):
            template.set_channels_last(False)

        def forward(params, buffers, inputs):
            return functional_call(template, (params, buffers), (inputs,))

        self.forward = vmap(forward, randomness="different")
        self.optimizer = torch.optim.Adam(list(self.params.values()), **runs[0].optimizer_options)

    def step(self, batches: list[tuple[torch.Tensor, torch.Tensor]]) -> None:
        inputs = torch.stack([b[0] for b in batches])
        logits = self.forward(self.params, self.buffers, inputs)
        loss = sum(run.loss(logits[k], *batches[k]) for k, run in enumerate(self.runs))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()

    def train(self) -> None:
        for run in self.runs:
            run.model.train()

    @torch.no_grad()
    def sync(self) -> None:
        for k, run in enumerate(self.runs):
            for name, tensor in run.model.named_parameters():
                tensor.copy_(self.params[name][k])


def lockstep_key(config: RunConfig) -> tuple | None:
    """Runs with equal keys can train together in :func:`train_many` (same architecture, data
    size, schedule and optimiser; only seeds, splits and batch-level mechanisms differ). None:
    this run must train alone (a mechanism wraps the model or optimiser, draws its own batches,
    adds a loss term that reads the model or runs a pass of its own between epochs; or the
    network has BatchNorm, whose running
    statistics a vectorised forward pass cannot update)."""
    from mia_utils.defenses import Mechanism

    mechanisms = build(config.mechanisms)
    alone = any(getattr(type(m), hook) is not getattr(Mechanism, hook) for m in mechanisms
                for hook in ("wrap", "batches", "extra_loss", "after_epoch"))
    options = config.model_options()
    if alone or options.get("norm", "none") == "batch":
        return None
    optimizer = _optimizer_options(config, mechanisms)
    info = DATASETS[config.dataset]
    split = split_for(config, info)
    return (config.dataset, tuple(sorted(options.items())), config.batch_size, config.epochs,
            tuple(sorted(optimizer.items())), len(training_indices(config, info, split)))


def train_many(configs: list[RunConfig], data: ImageDataset, progress: bool | None = None,
               device: torch.device | None = None, teacher_logits=None) -> list[TrainResult]:
    """Train the models of ``configs`` on ``data``, one :class:`TrainResult` each.

    One configuration trains alone: the ordinary path. Several train in lockstep
    (:class:`_Lockstep`): they must share :func:`lockstep_key` and train on equally many
    images. Each model is seeded, built, prepared and recorded exactly as it would be alone; only
    the arithmetic of the stacked forward and backward passes differs (summation order), so the
    outputs agree with training alone within float tolerance, and dropout masks are other draws
    from the same distribution. This pays where one model leaves the device idle (a GPU); on a
    2-core CPU it does not (``benchmarks/gpu.py`` measures it).

    The recipe's mechanisms (:mod:`mia_utils.defenses`) shape the model, the optimiser, every
    batch and the loss.

    Args:
        configs: the runs' :class:`~mia_utils.config.RunConfig` (list, at least one; several must
            share :func:`lockstep_key`).
        data: the :class:`~mia_utils.data.ImageDataset` they train and are evaluated on.
        progress: show a tqdm bar per epoch (bool); None = on when stderr is a terminal or
            ``$MIA_PROGRESS=1`` (:func:`show_progress`).
        device: the device to train on (``torch.device``; None = :func:`default_device`).
        teacher_logits: for distillation, a callable ``teacher_logits(config) -> (N, classes)``
            returning a stored teacher run's logits on the training images, or None.
    """
    if not configs:
        raise ValueError("configs: need at least one configuration")
    device = device or default_device()
    keep_freed_memory()
    with deterministic():
        runs = [_prepare(config, data, device, teacher_logits) for config in configs]
        if len(runs) > 1:
            keys = {lockstep_key(run.config) for run in runs}
            sizes = {len(run.trained_on) for run in runs}
            if None in keys or len(keys) > 1 or len(sizes) > 1:
                raise ValueError("configs: these runs cannot train in lockstep (they differ in architecture, "
                                 "schedule, optimiser or training-set size, or one must train alone); "
                                 "group them with lockstep_key")
        stepper = _Alone(runs) if len(runs) == 1 else _Lockstep(runs)
        config = configs[0]
        bar = None
        if show_progress(progress):
            from tqdm import tqdm

            label = config.key()[:8] if len(runs) == 1 else f"{len(runs)} models"
            bar = tqdm(total=config.epochs, desc=f"train {config.dataset} {label}", unit="epoch",
                       file=sys.stderr, leave=False)
        for epoch in range(1, config.epochs + 1):
            epoch_start = time.perf_counter()
            stepper.train()
            for step in zip(*[run.epoch_batches() for run in runs]):
                stepper.step([run.batch(indices) for run, indices in zip(runs, step)])
            stepper.sync()
            for run in runs:
                for mechanism in run.mechanisms:
                    mechanism.after_epoch(run.model, run.optimizer, epoch, config.epochs)
                run.end_epoch(epoch, data, epoch_start)
            if bar is not None:
                last = runs[0].history[-1]
                bar.set_postfix(train_acc=f"{last['train_acc']:.3f}", test_acc=f"{last['test_acc']:.3f}")
                bar.update()
        if bar is not None:
            bar.close()
        return [run.result() for run in runs]


def train(config: RunConfig, data: ImageDataset, progress: bool | None = None,
          device: torch.device | None = None, teacher_logits=None) -> TrainResult:
    """Train the model of ``config`` on ``data`` alone; see :func:`train_many`.

    Args:
        config: the run's :class:`~mia_utils.config.RunConfig`.
        data: the :class:`~mia_utils.data.ImageDataset` it trains and is evaluated on.
        progress: show a tqdm bar per epoch (bool); None = on when stderr is a terminal or
            ``$MIA_PROGRESS=1``.
        device: the device to train on (``torch.device``; None = :func:`default_device`).
        teacher_logits: for distillation, a callable ``teacher_logits(config) -> (N, classes)``,
            or None.
    """
    return train_many([config], data, progress, device, teacher_logits)[0]
