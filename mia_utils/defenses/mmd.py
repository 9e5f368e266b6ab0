"""Mix-up training and the MMD set regularizer (Li, Li & Ribeiro, "Membership Inference
Attacks and Defenses in Classification Models", CODASPY 2021).

Three mechanisms (see :mod:`mia_utils.defenses.base`); mix-up combines with either MMD,
as in the paper:

* ``mixup`` (alpha): every batch is replaced by a convex combination of itself and a shuffled
  copy of itself, images and soft targets alike, with one weight
  lambda ~ Beta(alpha, alpha) per batch (Zhang et al. 2018).
* ``mmd`` (lambda): the loss gains lambda * MMD^2 between the model's softmax outputs on the
  training batch and on a class-matched batch drawn from a held-out *validation set*
  (:func:`validation_indices`), which pulls the distribution of outputs on members towards
  the distribution on non-members, class by class (:func:`classwise_mmd_squared`).
* ``mmd_gated`` (lambda): the same regularizer on the schedule of the authors' code, a pass of
  its own between epochs while the train-validation accuracy gap is at least 3 points
  (:class:`GatedMMD`).

Choices (fixed here, so that every run of a configuration means the same thing):

* Kernel: Gaussian, k(a, b) = exp(-||a - b||^2 / (2 sigma^2)) with a **fixed** bandwidth
  sigma = :data:`BANDWIDTH` = 1, as in the authors' code (``sigma_list=[1]``). Softmax vectors
  lie in the probability simplex, whose diameter is sqrt(2), so sigma = 1 is on the scale of
  the data; a fixed sigma keeps the loss a smooth function of the outputs (the median
  heuristic would make it depend on the batch through the bandwidth too).
* Estimator: the **biased** (V-statistic) estimate of MMD^2, the mean of k over all pairs
  within each set minus twice the mean across (:func:`mmd_squared` offers the unbiased one as
  well). It is >= 0 and exactly 0 for identical sets, and defined for one sample per class.
* Class matching: for every training example of the batch, one validation image of the same
  class is drawn (uniformly, with replacement, from the validation images of that class, with a
  generator seeded from the run's training seed, so training stays deterministic). The class
  is the example's true label: ``MMD.transform`` reads it from the batch's ``indices`` (the
  extra-loss hook gets no labels); only when ``extra_loss`` is called without a preceding
  ``transform`` does it fall back to ``targets.argmax(1)``. MMD^2 is computed per class and
  averaged with weights n_c / B (the class's share of the batch). Classes with no validation
  image are left out of the term.
* Which training outputs: the outputs on the batch *before mixing*. ``mmd`` runs at stage 34,
  after the input perturbations (30-31) and before ``mixup`` (35); its ``transform`` keeps the
  batch as it is then. When a later stage changed the images (mix-up), ``extra_loss`` runs the
  model once more on the kept images; otherwise it reuses the logits the loss was computed on.
  The attacks query clean images, so this is the distribution that must match the validation
  set's (the authors' code likewise runs its MMD pass on unmixed training batches).
* Validation outputs are computed without gradient (``torch.no_grad``), as in the authors' code:
  they are the target distribution, and the model is not trained through them. Both forward
  passes run in training mode (dropout active), like the training batch itself.
* Unlike the authors' code, the MMD term of ``mmd`` is added to every step's loss (no separate
  MMD pass per epoch, no "only while the train-validation accuracy gap exceeds 3 points" switch),
  and it is applied in the last epoch too: one hook, one loss, the same in every epoch.
  ``mmd_gated`` (:class:`GatedMMD`) is the code's schedule, for comparison.

The validation set is disjoint from the members, from the evaluation and adversary non-members
(and, for a LiRA shadow model, from the images it trains on): see :func:`validation_indices`.
Neither mechanism combines with a mechanism that wraps the model and optimiser (DP-SGD): MMD^2
is a set function and mix-up makes every example's gradient depend on another example, so
per-example clipping would no longer bound one example's influence.
"""

from __future__ import annotations

from typing import ClassVar

import torch
from scipy.special import betaincinv

from mia_utils.data import DatasetInfo, MembershipSplit, gather, load_dataset, split_for, to_unit_float
from mia_utils.defenses.base import Mechanism, TrainingContext

BANDWIDTH = 1.0
"""Gaussian kernel bandwidth sigma of the MMD regularizer (fixed; see the module docstring)."""

VALIDATION_SEED_OFFSET = 17
"""The validation set of a run is drawn with seed ``split_seed + 17``."""


# --- the estimator --------------------------------------------------------------------------------

def squared_distances(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(n, m) matrix of ||x_i - y_j||^2 for x (n, d), y (m, d); exact differences (no
    |a|^2 + |b|^2 - 2ab cancellation, no square root), so gradients are finite everywhere."""
    return (x[:, None, :] - y[None, :, :]).pow(2).sum(-1)


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor, bandwidth: float = BANDWIDTH) -> torch.Tensor:
    """(n, m) matrix of k(x_i, y_j) = exp(-||x_i - y_j||^2 / (2 bandwidth^2))."""
    return torch.exp(-squared_distances(x, y) / (2.0 * bandwidth ** 2))


def mmd_squared(x: torch.Tensor, y: torch.Tensor, bandwidth: float = BANDWIDTH,
                unbiased: bool = False) -> torch.Tensor:
    """Squared maximum mean discrepancy between the samples x (n, d) and y (m, d), Gaussian kernel.

    Biased (default, V-statistic): mean_ij k(x_i, x_j) + mean_ij k(y_i, y_j) - 2 mean_ij k(x_i, y_j),
    always >= 0 and 0 when the two sets are equal. Unbiased (U-statistic, ``unbiased=True``):
    the within-set means leave out the diagonal (i = j); it needs n, m >= 2, has expectation
    MMD^2 (0 for one distribution) and can be negative.
    """
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: expected (n, d) and (m, d), got {tuple(x.shape)} and {tuple(y.shape)}")
    n, m = x.shape[0], y.shape[0]
    kxx, kyy = gaussian_kernel(x, x, bandwidth), gaussian_kernel(y, y, bandwidth)
    kxy = gaussian_kernel(x, y, bandwidth)
    if not unbiased:
        if n == 0 or m == 0:
            raise ValueError(f"x, y: both sets must be non-empty, got {n} and {m} samples")
        return kxx.mean() + kyy.mean() - 2.0 * kxy.mean()
    if n < 2 or m < 2:
        raise ValueError(f"x, y: the unbiased estimator needs at least 2 samples per set, got {n} and {m}")
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
    return within_x + within_y - 2.0 * kxy.mean()


def classwise_mmd_squared(x: torch.Tensor, y: torch.Tensor, labels: torch.Tensor,
                          bandwidth: float = BANDWIDTH) -> torch.Tensor:
    """sum_c (n_c / B) * MMD^2(x[labels == c], y[labels == c]) (biased estimator), for x, y of
    shape (B, d) whose rows share the class vector ``labels`` (B,) (row i of y is a sample of
    the same class as row i of x). One kernel matrix for the whole batch, no loop over classes."""
    if x.shape != y.shape or labels.shape != (x.shape[0],):
        raise ValueError(f"x, y, labels: expected (B, d), (B, d), (B,), got {tuple(x.shape)}, "
                         f"{tuple(y.shape)}, {tuple(labels.shape)}")
    batch = x.shape[0]
    same = labels[:, None] == labels[None, :]
    counts = same.sum(1)  # n_c of each row's class
    weights = same.to(x.dtype) / (counts[:, None].to(x.dtype) * batch)
    kernels = (gaussian_kernel(x, x, bandwidth) + gaussian_kernel(y, y, bandwidth)
               - 2.0 * gaussian_kernel(x, y, bandwidth))
    return (weights * kernels).sum()


# --- the validation set ---------------------------------------------------------------------------

def _free_images(info: DatasetInfo, split: MembershipSplit, exclude: torch.Tensor | None):
    """Global indices of the training images outside the members, and of the test images outside
    the evaluation and adversary non-members, both less ``exclude`` (global indices)."""
    used = torch.zeros(info.n_train + info.n_test, dtype=torch.bool)
    used[split.members] = True
    used[info.n_train + split.eval_nonmembers] = True
    used[info.n_train + split.adv_nonmembers] = True
    if exclude is not None:
        used[exclude] = True
    free = torch.nonzero(~used).squeeze(1)
    return free[free < info.n_train], free[free >= info.n_train]


def validation_available(info: DatasetInfo, split: MembershipSplit, exclude: torch.Tensor | None = None) -> int:
    """How many images :func:`validation_indices` can draw from."""
    free_train, free_test = _free_images(info, split, exclude)
    return len(free_train) + len(free_test)


def validation_indices(info: DatasetInfo, split: MembershipSplit, size: int, seed: int,
                       exclude: torch.Tensor | None = None) -> torch.Tensor:
    """``size`` global indices (see :func:`mia_utils.data.gather`), sorted, of a validation set
    disjoint from the members, the evaluation non-members and the adversary non-members (and
    from ``exclude``, e.g. a shadow model's training images): first training images that are
    not members (drawn at random with ``seed``), then, when those run out, unused test images.
    Raises ValueError when fewer than ``size`` such images exist.

    Args:
        info: the dataset's :class:`~mia_utils.data.DatasetInfo` (its image counts).
        split: the run's :class:`~mia_utils.data.MembershipSplit`.
        size: the number of indices drawn (int >= 0).
        seed: seed of the CPU generator that orders the free images (int).
        exclude: int64 tensor of global indices also left out, or None.
    """
    if size < 0:
        raise ValueError(f"size: must be >= 0, got {size}")
    free_train, free_test = _free_images(info, split, exclude)
    if size > len(free_train) + len(free_test):
        raise ValueError(
            f"validation set: asked for {size} images, but only {len(free_train) + len(free_test)} are free "
            f"in {info.name}: {len(free_train)} of its {info.n_train} training images are not among the "
            f"{len(split.members)} members, and {len(free_test)} of its {info.n_test} test images are not "
            f"among the {len(split.eval_nonmembers)} evaluation + {len(split.adv_nonmembers)} adversary "
            "non-members" + (" (nor excluded)" if exclude is not None else "")
            + "; use fewer members (n_members) or smaller n_eval / n_adversary")
    generator = torch.Generator().manual_seed(seed)
    free_train = free_train[torch.randperm(len(free_train), generator=generator)]
    free_test = free_test[torch.randperm(len(free_test), generator=generator)]
    taken = free_train[:size]
    taken = torch.cat([taken, free_test[: size - len(taken)]])
    return taken.sort().values


def validation_set(config, data=None, device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """The validation set of a run configuration: float images (N, C, H, W) in [0, 1] and labels
    (N,), on ``device``. N = min(n_members, free images) (see :func:`validation_indices`), drawn
    with seed ``split_seed + 17``; a LiRA shadow model's own training images are excluded too.
    Where every training image is a member (the ``paper`` profile) the free images are the test
    images outside the evaluation and adversary sets: 4,000 for a target, and those of them a
    shadow model does not train on (about half) for a shadow model (see the setup page)."""
    from mia_utils.data import training_indices

    data = data if data is not None else load_dataset(config.dataset)
    split = split_for(config, data.info)
    exclude = training_indices(config, data.info, split) if config.is_shadow else None
    available = validation_available(data.info, split, exclude)
    if available == 0:
        validation_indices(data.info, split, 1, 0, exclude)  # raises, naming the sizes
    indices = validation_indices(data.info, split, min(config.n_members, available),
                                 config.split_seed + VALIDATION_SEED_OFFSET, exclude)
    images, labels = gather(data, indices)
    return to_unit_float(images).to(device), labels.to(device)


# --- the mechanisms -------------------------------------------------------------------------------

def beta_quantile(u: float, alpha: float) -> float:
    """The u-quantile of Beta(alpha, alpha), u in [0, 1] (scipy's inverse regularized
    incomplete beta function, in double precision)."""
    return float(betaincinv(alpha, alpha, u))


def mix(images: torch.Tensor, targets: torch.Tensor, alpha: float,
        generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, float, torch.Tensor]:
    """Mix-up of one batch: returns (lam x + (1 - lam) x[perm], lam t + (1 - lam) t[perm], lam, perm).

    lam ~ Beta(alpha, alpha), one per batch, by inversion: u ~ U[0, 1) is drawn with
    ``generator`` (one ``torch.rand`` call) and mapped through the Beta quantile function
    (:func:`beta_quantile`); then ``perm`` is ``torch.randperm`` with the same generator. All
    the randomness comes from the generator, so a seeded generator gives the same batches.
    Images in [0, 1] stay in [0, 1], and target rows that sum to 1 still do.
    """
    device = images.device
    u = torch.rand((), generator=generator, device=device, dtype=torch.float64).item()
    lam = beta_quantile(u, alpha)
    perm = torch.randperm(images.shape[0], generator=generator, device=device)
    mixed_images = lam * images + (1.0 - lam) * images[perm]
    mixed_targets = lam * targets + (1.0 - lam) * targets[perm]
    return mixed_images.clamp_(0.0, 1.0), mixed_targets, lam, perm


class Mixup(Mechanism):
    """Mix-up with alpha: each batch becomes lam * batch + (1 - lam) * shuffled batch, images and
    targets alike, with one lam ~ Beta(alpha, alpha) per batch (Zhang et al. 2018)."""

    name, symbol, low, high, stage = "mixup", "alpha", 0.01, 10.0, 35
    description = "each batch blended with a shuffled copy of itself, labels alike"
    excludes = {"dp_sgd": "every mixed example's gradient depends on another example, so per-example "
                          "clipping no longer bounds one example's influence"}

    def transform(self, images, targets, indices, generator):
        mixed_images, mixed_targets, _, _ = mix(images, targets, self.value, generator)
        return mixed_images, mixed_targets


class MMD(Mechanism):
    """MMD regularizer with weight lambda: the loss gains lambda * sum_c (n_c / B) MMD^2 between
    the softmax outputs on the batch's class-c examples and on as many validation images of
    class c (Gaussian kernel, sigma = 1, biased estimator; see the module docstring)."""

    name, symbol, low, high, stage = "mmd", "lambda", 0.0, 100.0, 34
    description = "outputs on training data pulled towards outputs on held-out data, per class"
    bandwidth: ClassVar[float] = BANDWIDTH
    excludes = {"dp_sgd": "MMD^2 is a function of the whole batch, not a sum of per-example losses, so "
                          "per-example clipping does not apply to it"}
    _batch = None  # (images, indices) of the batch as it was at this stage; set by transform

    def prepare(self, context: TrainingContext):
        config = context.config
        if context.validation is None:
            context.validation = validation_set(config, device=context.device)
        images, labels = context.validation
        order = labels.argsort(stable=True)
        self.validation_images = images[order]
        self.validation_labels = labels[order].cpu()
        counts = torch.bincount(self.validation_labels, minlength=context.num_classes)
        self.class_counts = counts
        self.class_starts = counts.cumsum(0) - counts
        self.labels = context.labels
        self.generator = torch.Generator().manual_seed(config.training_seed() + VALIDATION_SEED_OFFSET)
        self._batch = None

    def transform(self, images, targets, indices, generator):
        self._batch = (images, indices)
        return images, targets

    def draw_validation(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """For each label (B,), the position in ``validation_images`` of a random validation image
        of that class; returns (positions (B',), usable (B,) bool), leaving out classes that have
        no validation image. Uses (and advances) the mechanism's own seeded generator."""
        labels = labels.cpu()
        counts = self.class_counts[labels]
        usable = counts > 0
        u = torch.rand(len(labels), generator=self.generator, dtype=torch.float64)
        offsets = torch.minimum((u * counts).long(), (counts - 1).clamp_min(0))
        positions = self.class_starts[labels] + offsets
        return positions[usable], usable

    def extra_loss(self, model, logits, images, targets):
        batch, self._batch = self._batch, None
        if self.value == 0:
            return None
        if batch is None:  # called without transform: only the (possibly mixed) targets are known
            labels = targets.argmax(1)
        else:
            clean_images, indices = batch
            labels = self.labels[indices.to(self.labels.device)]
            if clean_images is not images:  # a later stage (mix-up) changed the batch
                logits = model(clean_images)
        positions, usable = self.draw_validation(labels)
        if len(positions) == 0:
            return None
        usable = usable.to(logits.device)
        validation_images = self.validation_images[positions.to(self.validation_images.device)]
        with torch.no_grad():
            validation_probs = model(validation_images).float().softmax(1)
        train_probs = logits[usable].float().softmax(1)
        return self.value * classwise_mmd_squared(train_probs, validation_probs, labels[usable], self.bandwidth)

    def report(self):
        return {"mmd_validation_size": int(len(self.validation_labels)), "mmd_bandwidth": self.bandwidth}


#: Li et al.'s code takes its MMD pass only while the training and validation accuracies differ
#: by at least this many percentage points.
GATE_POINTS = 3.0


class GatedMMD(MMD):
    """MMD as Li et al.'s public code schedules it (``colaalex111/MMD-mixup-Defense``,
    ``attack_exp.py``): not a term of every step's loss, but a pass of its own after each epoch.

    After the epoch's ordinary steps it measures the accuracy on the whole training set and on
    the validation set (:func:`validation_set`), the model in evaluation mode. When they differ
    by at least :data:`GATE_POINTS` points and the epoch is not the last, it walks the training
    set sorted by class, in order, in batches of the recipe's size, and for each batch takes one
    step of the run's optimiser on lambda * MMD^2 (biased, Gaussian kernel, sigma = 1) between the
    softmax outputs on the batch and on as many validation images of the same classes (drawn
    with replacement, without gradient). The MMD is taken over the whole batch, as there; since
    the batches come in class order, most hold one class. The model stays in evaluation mode
    during the pass, as in that code. Two things are not copied: its SGD with momentum (the run's
    optimiser is used, so the schedule is the only difference from ``mmd``), and its off-by-one
    class ranges in the validation draw.
    """

    name = "mmd_gated"
    description = "a pass pulling outputs on training data towards held-out data, run between epochs while the gap lasts"

    def prepare(self, context: TrainingContext):
        super().prepare(context)
        order = context.labels.argsort(stable=True)
        self.train_images, self.train_labels = context.images[order], context.labels[order]
        self.batch_size = context.config.batch_size
        self.passes, self.gaps = 0, []

    def transform(self, images, targets, indices, generator):
        return images, targets

    def extra_loss(self, model, logits, images, targets):
        return None

    def after_epoch(self, model, optimizer, epoch, epochs):
        from mia_utils.models import predict_logits

        if self.value == 0:
            return
        was_training = model.training
        model.eval()
        accuracy = [(predict_logits(model, images).argmax(1) == labels.cpu()).double().mean().item()
                    for images, labels in ((self.train_images, self.train_labels),
                                           (self.validation_images, self.validation_labels))]
        gap = 100 * (accuracy[0] - accuracy[1])
        self.gaps.append(round(gap, 2))
        if epoch < epochs and abs(gap) >= GATE_POINTS:
            self.passes += 1
            model.eval()  # predict_logits restores the mode it found
            for start in range(0, len(self.train_labels), self.batch_size):
                labels = self.train_labels[start:start + self.batch_size]
                positions, usable = self.draw_validation(labels)
                if len(positions) == 0:
                    continue
                train_probs = model(self.train_images[start:start + self.batch_size][usable.to(labels.device)]).softmax(1)
                with torch.no_grad():
                    validation_probs = model(self.validation_images[positions.to(self.validation_images.device)]).softmax(1)
                loss = self.value * mmd_squared(train_probs.float(), validation_probs.float(), self.bandwidth)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
        model.train(was_training)

    def report(self):
        return {**super().report(), "mmd_gated_passes": self.passes, "mmd_gated_gaps": list(self.gaps)}
