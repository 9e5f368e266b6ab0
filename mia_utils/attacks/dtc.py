"""Distance-to-Confident (DtC), the white-box metric of the paper's Section 6, and an attack on it.

A sample (x, y) is *not* in a confident region of a model F when its cross-entropy on its
true label exceeds a threshold: the median loss of F on its own training set
(:func:`confident_loss`). From x^0 = x, L-infinity PGD steps lower that loss::

    x^{t+1} = clamp(x^t - step * sign(grad_x L(F(x^t), y)), 0, 1)

and a sample stops as soon as L(F(x^t), y) <= threshold (checked before every step, so a sample
that is already confident takes no step). Distances are ||x^t - x||_inf x 1000 (:data:`SCALE`):
one step of the paper's 0.001 is one unit, and the paper's 100-step budget caps it at 100. A
sample that is still not confident after ``max_steps`` steps is *capped*: its distance is the one
after the last step. Two variants differ only for the already-confident samples:

* **DtC** (the paper's definition, :attr:`DtCResult.paper_distances`): an already-confident
  sample counts as ONE step, ``step x 1000`` (1.0 with the default step), so that
  0.001 <= C_F(x) <= 0.1 as the paper states, i.e. 1 <= DtC <= 100 after scaling (a sample
  whose steps were clamped by the [0, 1] box, or met a zero gradient, may still end below 1). Every
  summary (:func:`dtc_gap`'s ``members_mean`` / ``nonmembers_mean`` / ``gap``) and the attack
  (:func:`dtc_attack`) use this one.
* **DtC (zero floor)** (:attr:`DtCResult.distances`): the distance actually travelled, 0 for an
  already-confident sample (:func:`dtc_gap`'s ``*_zero_floor`` keys).

:func:`distance_to_confident` is the batched implementation (the hot loop: only the samples
still moving are forwarded, so the work shrinks as they finish); :func:`distance_to_confident_loop`
is the one-sample-at-a-time reference with the same arithmetic. :func:`dtc_gap` gives the paper's
Table 7 quantities (with bootstrap variances of the gap), :func:`dtc_on_run` measures a stored run
(:func:`stored_dtc` through the result store), and :func:`dtc_attack` turns DtC into
a membership inference attack (the paper leaves this as future work): members are closer to a
confident region, so the score is -DtC, thresholded on the adversary's own samples.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: DtC is reported in units of 1/1000 of the [0, 1] pixel range (one step of 0.001 = 1 unit).
SCALE = 1000.0


@dataclass(frozen=True)
class DtCResult:
    """Per-sample DtC and how each sample's search ended; every tensor is (N,) on the CPU.

    ``distances`` float64: DtC (zero floor), ||x^t - x||_inf x 1000 at the sample's last point
    (0 for the already confident); :attr:`paper_distances` is the paper's DtC. ``steps`` int64:
    PGD steps taken. ``already_confident`` bool: loss <= threshold at x (0 steps, distance 0,
    paper DtC one step). ``reached`` bool: became confident within ``max_steps`` steps (True for
    the already confident). ``capped`` bool: not confident after ``max_steps`` steps
    (= ~reached); their distance is the one after ``max_steps`` steps. ``initial_losses`` / ``final_losses``
    float64: the true-label cross-entropy (nats) at x and at the last point. ``final_images``:
    the last points (N, C, H, W), only when asked for. ``threshold``, ``step``, ``max_steps``:
    the settings used.
    """

    distances: torch.Tensor
    steps: torch.Tensor
    already_confident: torch.Tensor
    reached: torch.Tensor
    capped: torch.Tensor
    initial_losses: torch.Tensor
    final_losses: torch.Tensor
    threshold: float
    step: float
    max_steps: int
    final_images: torch.Tensor | None = field(default=None, repr=False)

    def __len__(self) -> int:
        return len(self.distances)

    @property
    def paper_distances(self) -> torch.Tensor:
        """The paper's DtC, float64 (N,), in units of 1/1000 of the pixel range: ``distances``
        for the samples that took at least one step, and one step (``step x 1000``, = 1.0 with
        the default step of 0.001) for the already-confident ones. (A sample that took no step
        without being confident, possible only with ``max_steps=0``, keeps its distance, 0.)"""
        one_step = torch.full_like(self.distances, self.step * SCALE, dtype=torch.float64)
        return torch.where(self.already_confident.bool(), one_step, self.distances.double())

    def counts(self) -> dict[str, int]:
        """How the search ended, counted over the samples: ``n`` samples, ``already_confident``
        (no step needed), ``reached`` (confident after stepping), ``capped`` (stopped at
        ``max_steps``), and ``total_steps``, the PGD steps taken over all samples (each a forward
        and a backward pass to the input)."""
        return {"n": len(self), "already_confident": int(self.already_confident.sum()),
                "reached": int(self.reached.sum()), "capped": int(self.capped.sum()),
                "total_steps": int(self.steps.sum())}

    def subset(self, index) -> "DtCResult":
        """The result restricted to ``index`` (a bool mask or integer indices)."""
        pick = {name: getattr(self, name)[index] for name in
                ("distances", "steps", "already_confident", "reached", "capped", "initial_losses", "final_losses")}
        images = None if self.final_images is None else self.final_images[index]
        return DtCResult(**pick, threshold=self.threshold, step=self.step, max_steps=self.max_steps,
                         final_images=images)


def _outcome_tensors(n: int):
    """Zeroed per-sample outcomes of a search over ``n`` samples: distance and initial and final
    losses (float64), steps taken (int64), and whether the confident region was reached (bool)."""
    return (torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.int64),
            torch.zeros(n, dtype=torch.float64), torch.zeros(n, dtype=torch.float64),
            torch.zeros(n, dtype=torch.bool))


def confident_loss(member_losses) -> float:
    """The model's median cross-entropy (nats) over its training set: the confidence threshold."""
    losses = torch.as_tensor(member_losses).detach().double().cpu().flatten().numpy()
    if losses.size == 0 or not np.isfinite(losses).all():
        raise ValueError("member_losses: need at least one loss, all finite")
    return float(np.median(losses))


# --- the search -------------------------------------------------------------------------------

@contextlib.contextmanager
def input_gradients_only(model: nn.Module):
    """Eval mode, and no parameter requires a gradient (so backward computes only the input's
    gradient and nothing accumulates in ``.grad``); both restored afterwards."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with torch.enable_grad():
            yield
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)


def _forward(model: nn.Module, x: torch.Tensor, y: torch.Tensor, track: bool):
    """True-label cross-entropy (B,) at x, and x as the leaf to differentiate (when ``track``)."""
    x = x.detach().requires_grad_(track)
    return F.cross_entropy(model(x), y, reduction="none"), x


def _input_gradient(losses: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """d(sum of losses)/dx: each sample's own gradient, as the model has no batch-coupled layer
    in eval mode."""
    (gradient,) = torch.autograd.grad(losses.sum(), x)
    return gradient


def pgd_step(x: torch.Tensor, gradient: torch.Tensor, step: float) -> torch.Tensor:
    """One L-infinity step down the loss, kept in [0, 1]."""
    return (x - step * gradient.sign()).clamp_(0.0, 1.0)


def _prepare(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threshold, step: float,
             max_steps: int, batch_size: int):
    if images.ndim != 4:
        raise ValueError(f"images: expected shape (N, C, H, W), got {tuple(images.shape)}")
    if labels.shape != (images.shape[0],):
        raise ValueError(f"labels: expected shape ({images.shape[0]},), got {tuple(labels.shape)}")
    threshold = float(threshold)
    if not math.isfinite(threshold):
        raise ValueError(f"threshold: must be finite, got {threshold}")
    if not (step > 0 and math.isfinite(step)):
        raise ValueError(f"step: must be > 0, got {step}")
    if isinstance(max_steps, bool) or int(max_steps) != max_steps or max_steps < 0:
        raise ValueError(f"max_steps: must be an integer >= 0, got {max_steps}")
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size: must be an integer >= 1, got {batch_size}")
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    if images.dtype == torch.uint8:
        scale = 255.0
    elif images.is_floating_point():
        if images.numel() and (images.min() < 0 or images.max() > 1):
            raise ValueError("images: float images must lie in [0, 1]")
        scale = None
    else:
        raise ValueError(f"images: expected uint8 or float in [0, 1], got {images.dtype}")

    def convert(chunk: torch.Tensor) -> torch.Tensor:
        chunk = chunk.to(device=device, dtype=dtype)
        return chunk / scale if scale is not None else chunk

    return convert, labels.to(device=device, dtype=torch.long), threshold, float(step), int(max_steps), int(batch_size)


def _dtc_result(distance, steps, initial, final, already, reached, threshold, step, max_steps, images) -> DtCResult:
    return DtCResult(distances=distance.double() * SCALE, steps=steps, already_confident=already,
                     reached=reached, capped=~reached, initial_losses=initial.double(),
                     final_losses=final.double(), threshold=threshold, step=step, max_steps=max_steps,
                     final_images=images)


def distance_to_confident(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threshold: float,
                          step: float = 0.001, max_steps: int = 100, batch_size: int = 500,
                          return_images: bool = False) -> DtCResult:
    """DtC of every sample, batched; see the module docstring for the definition.

    ``images`` (N, C, H, W), uint8 or float in [0, 1] (any device: chunks of ``batch_size`` are
    moved to the model's device and converted to its dtype, so a float64 model runs in float64);
    ``labels`` (N,) the TRUE labels; ``threshold`` in nats (:func:`confident_loss`).
    Within a chunk only the samples still moving are forwarded and stepped: each step is one
    forward and one backward pass to the input of the active samples, the last check (after
    ``max_steps`` steps) a forward pass alone. Per-sample results depend on the batching only
    through rounding: another batch size may run other kernels, so the losses are equal up to
    rounding, and the steps and distances, which follow from the gradients' signs and the checks
    loss <= threshold alone, the same unless such a value lies within rounding of 0 or of the
    threshold (rare in float64; in float32 a near-zero gradient's sign does differ at times).

    Args:
        model: the target ``nn.Module`` (logits out); put in eval mode with its parameters'
            ``requires_grad`` off during the search, both restored afterwards.
        images: tensor (N, C, H, W), uint8 in 0..255 or float in [0, 1], on any device.
        labels: int tensor (N,), the TRUE labels.
        threshold: the confidence threshold, a true-label cross-entropy in nats (finite float),
            usually :func:`confident_loss`.
        step: PGD step in pixel-range units (float > 0; the paper's 0.001 = one DtC unit of 1/1000).
        max_steps: the step budget per sample (int >= 0; the paper's 100).
        batch_size: samples per chunk sent to the model's device (int >= 1); may change the
            per-sample results by rounding (see above).
        return_images: also return the final points, (N, C, H, W) on the CPU, in
            :attr:`DtCResult.final_images` (bool).
    """
    from mia_utils.train import keep_freed_memory

    convert, labels, threshold, step, max_steps, batch_size = _prepare(model, images, labels, threshold, step,
                                                                      max_steps, batch_size)
    keep_freed_memory()  # each step frees and re-allocates ~25 MB blocks: 67 -> 40 ms per quick step
    n = images.shape[0]
    distance, steps, initial, final, reached = _outcome_tensors(n)
    finals = [] if return_images else None
    with input_gradients_only(model):
        for start in range(0, n, batch_size):
            x0 = convert(images[start: start + batch_size])
            y = labels[start: start + batch_size]
            m = x0.shape[0]
            device = x0.device
            chunk_steps = torch.zeros(m, dtype=torch.int64, device=device)
            chunk_initial = torch.zeros(m, dtype=x0.dtype, device=device)
            chunk_final = torch.zeros(m, dtype=x0.dtype, device=device)
            chunk_reached = torch.zeros(m, dtype=torch.bool, device=device)
            x_end = x0.clone()
            # The active samples, compacted: their chunk positions, current points and labels.
            active = torch.arange(m, device=device)
            x, y_active = x0, y
            for t in range(max_steps + 1):
                last = t == max_steps
                losses, leaf = _forward(model, x, y_active, track=not last)
                values = losses.detach()
                if t == 0:
                    chunk_initial.copy_(values)
                done = values <= threshold
                if last:
                    chunk_final[active] = values
                    chunk_reached[active] = done
                    x_end[active] = x
                    break
                n_done = int(done.sum())
                if n_done:
                    finished = active[done]
                    chunk_final[finished] = values[done]
                    chunk_reached[finished] = True
                    x_end[finished] = x[done]
                    if n_done == len(active):
                        break
                # One backward pass for the whole active batch (the rows just finished included:
                # dropping them first would need a second forward pass).
                gradient = _input_gradient(losses, leaf)
                del losses, leaf
                if n_done:
                    moving = ~done
                    active, x, y_active, gradient = active[moving], x[moving], y_active[moving], gradient[moving]
                x = pgd_step(x.detach(), gradient, step)
                chunk_steps[active] += 1
            rows = slice(start, start + m)
            distance[rows] = (x_end - x0).abs().flatten(1).amax(1).double().cpu()
            steps[rows] = chunk_steps.cpu()
            initial[rows] = chunk_initial.double().cpu()
            final[rows] = chunk_final.double().cpu()
            reached[rows] = chunk_reached.cpu()
            if finals is not None:
                finals.append(x_end.cpu())
    already = (steps == 0) & reached
    images_out = (torch.cat(finals) if finals else torch.empty(0)) if return_images else None
    return _dtc_result(distance, steps, initial, final, already, reached, threshold, step, max_steps, images_out)


def distance_to_confident_loop(model: nn.Module, images: torch.Tensor, labels: torch.Tensor, threshold: float,
                               step: float = 0.001, max_steps: int = 100, return_images: bool = False) -> DtCResult:
    """The reference: the same search as :func:`distance_to_confident`, one sample at a time.

    Args:
        model: the target ``nn.Module`` (logits out); eval mode and frozen parameters during the
            search, both restored afterwards.
        images: tensor (N, C, H, W), uint8 in 0..255 or float in [0, 1].
        labels: int tensor (N,), the TRUE labels.
        threshold: the confidence threshold, a true-label cross-entropy in nats (finite float).
        step: PGD step in pixel-range units (float > 0; 0.001 = one DtC unit of 1/1000).
        max_steps: the step budget per sample (int >= 0).
        return_images: also return the final points, (N, C, H, W) on the CPU (bool).
    """
    convert, labels, threshold, step, max_steps, _ = _prepare(model, images, labels, threshold, step, max_steps, 1)
    n = images.shape[0]
    distance, steps, initial, final, reached = _outcome_tensors(n)
    finals = []
    with input_gradients_only(model):
        for i in range(n):
            x0 = convert(images[i: i + 1])
            y = labels[i: i + 1]
            x = x0
            for t in range(max_steps + 1):
                last = t == max_steps
                losses, leaf = _forward(model, x, y, track=not last)
                value = losses.detach()[0]
                done = bool(value <= threshold)  # compared as the batched version does
                if t == 0:
                    initial[i] = float(value)
                if done or last:
                    final[i] = float(value)
                    reached[i] = done
                    break
                x = pgd_step(x.detach(), _input_gradient(losses, leaf), step)
                steps[i] += 1
            distance[i] = float((x - x0).abs().max())
            if return_images:
                finals.append(x.detach().cpu())
    already = (steps == 0) & reached
    images_out = (torch.cat(finals) if finals else torch.empty(0)) if return_images else None
    return _dtc_result(distance, steps, initial, final, already, reached, threshold, step, max_steps, images_out)


# --- summaries --------------------------------------------------------------------------------

def _distances(result, paper: bool = True) -> torch.Tensor:
    """float64 (N,): the paper's DtC (``paper``) or DtC (zero floor) of a :class:`DtCResult`; a
    plain tensor (or anything :func:`torch.as_tensor` takes) as it is."""
    if isinstance(result, DtCResult):
        return (result.paper_distances if paper else result.distances).double().flatten()
    return torch.as_tensor(result).double().flatten()


#: Bootstrap replicates of :func:`dtc_gap` are drawn in chunks of about this many (replicate,
#: sample) cells, to bound the memory.
_BOOTSTRAP_CELLS = 1 << 21


def _check_bootstrap(n_bootstrap, seed) -> tuple[int, int]:
    if isinstance(n_bootstrap, bool) or not isinstance(n_bootstrap, (int, np.integer)) or n_bootstrap < 0:
        raise ValueError(f"n_bootstrap: must be a non-negative integer, got {n_bootstrap!r}")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed: must be a non-negative integer, got {seed!r}")
    return int(n_bootstrap), int(seed)


def _relative_gaps(d: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Elementwise (d - s) / d, NaN where d is 0 or either is NaN (as :func:`_relative_gap`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(d != 0, (d - s) / np.where(d != 0, d, 1.0), np.nan)


def _bootstrap_gap_replicates(members: np.ndarray, nonmembers: np.ndarray, n_bootstrap: int,
                              seed: int) -> np.ndarray:
    """The relative gap (D - S) / D on each of ``n_bootstrap`` resamples, for each column of
    ``members`` (n_S, K) and ``nonmembers`` (n_D, K) (the K variants of the distances share the
    resamples): (n_bootstrap, K). Members and non-members are resampled separately with
    replacement, ``numpy.random.default_rng(seed)``: per chunk of replicates, first the (b, n_S)
    member indices, then the (b, n_D) non-member indices. So two runs measured on the same
    samples and resampled with the same seed get the same resamples (see
    :func:`paired_gap_variance`). A replicate is NaN where its D is 0."""
    rng = np.random.default_rng(seed)
    n_s, n_d = members.shape[0], nonmembers.shape[0]
    gaps = np.empty((n_bootstrap, members.shape[1]))
    chunk = max(1, _BOOTSTRAP_CELLS // (n_s + n_d))
    for start in range(0, n_bootstrap, chunk):
        b = min(chunk, n_bootstrap - start)
        s_means = members[rng.integers(0, n_s, size=(b, n_s))].mean(axis=1)  # (b, K)
        d_means = nonmembers[rng.integers(0, n_d, size=(b, n_d))].mean(axis=1)
        gaps[start: start + b] = _relative_gaps(d_means, s_means)
    return gaps


def _bootstrap_gap_variances(members: np.ndarray, nonmembers: np.ndarray, n_bootstrap: int,
                             seed: int) -> np.ndarray:
    """Variances (ddof=1; 0 for a single replicate) of :func:`_bootstrap_gap_replicates` per
    column: (K,). A NaN replicate (D = 0) makes the variance NaN."""
    if n_bootstrap < 2:
        return np.zeros(members.shape[1])
    return _bootstrap_gap_replicates(members, nonmembers, n_bootstrap, seed).var(axis=0, ddof=1)


def _gap_columns(result: RunDtC) -> tuple[np.ndarray, np.ndarray]:
    """A run's evaluation-set distances as (members (n_S, 2), non-members (n_D, 2)) arrays, the
    paper's DtC in column 0 and the zero-floor variant in column 1 (as :func:`dtc_gap` uses them)."""
    columns = []
    for side in (result.eval_is_member, ~result.eval_is_member):
        part = result.eval.subset(side)
        columns.append(torch.stack([_distances(part, paper=True), _distances(part, paper=False)], dim=1).numpy())
    return columns[0], columns[1]


def paired_gap_variance(a: RunDtC, b: RunDtC, n_bootstrap: int, seed: int = 0, zero_floor: bool = False) -> float:
    """The bootstrap variance (ddof=1, fraction squared) of gap(a) - gap(b), the relative DtC gaps
    (D - S) / D of two runs measured on the same evaluation samples (two models of one split):
    both gaps are recomputed on the same ``n_bootstrap`` resamples of the samples (drawn as
    :func:`dtc_gap` draws them from ``seed``), so what the two runs share cancels. Where the
    runs' distances were stored with ``dtc_gap(..., n_bootstrap, seed)``, each gap's own variance
    over these replicates equals its stored ``gap_variance``.

    Args:
        a: :class:`RunDtC` of the first run.
        b: :class:`RunDtC` of the second run, on the same samples in the same order (their
            ``eval_is_member`` must be equal; which samples they are is the caller's to ensure,
            e.g. by comparing the runs' splits with :func:`mia_utils.data.same_split`).
        n_bootstrap: resamples (int >= 2).
        seed: seed of the resamples (int >= 0).
        zero_floor: the zero-floor variant's gap instead of the paper's (bool).

    Raises:
        ValueError: when the two runs' evaluation sets differ in size or membership order.
    """
    n_bootstrap, seed = _check_bootstrap(n_bootstrap, seed)
    if n_bootstrap < 2:
        raise ValueError(f"n_bootstrap: a variance needs at least 2 resamples, got {n_bootstrap}")
    if a.eval_is_member.shape != b.eval_is_member.shape or not torch.equal(a.eval_is_member, b.eval_is_member):
        raise ValueError("a, b: the two runs were not measured on the same evaluation samples "
                         f"({int(a.eval_is_member.sum())} + {int((~a.eval_is_member).sum())} against "
                         f"{int(b.eval_is_member.sum())} + {int((~b.eval_is_member).sum())} members + non-members)")
    column = int(zero_floor)
    replicates = [_bootstrap_gap_replicates(*_gap_columns(run), n_bootstrap, seed)[:, column] for run in (a, b)]
    return float(np.var(replicates[0] - replicates[1], ddof=1))


def dtc_gap(member_distances, nonmember_distances, n_bootstrap: int = 0, seed: int = 0) -> dict:
    """The paper's Table 7 quantities from DtC on members (S) and non-members (D).

    Takes :class:`DtCResult` (either side may also be a plain distance tensor, (N,), in units of
    1/1000 of the pixel range, used as it is for both variants). Returns, with C the mean DtC:

    * ``members_mean`` (C_S), ``nonmembers_mean`` (C_D): the paper's DtC
      (:attr:`DtCResult.paper_distances`); ``gap`` = (C_D - C_S) / C_D as a fraction (NaN when
      C_D is 0);
    * ``members_mean_zero_floor``, ``nonmembers_mean_zero_floor``, ``gap_zero_floor``: the same
      for DtC (zero floor) (:attr:`DtCResult.distances`; equal to the above for plain tensors);
    * ``n_members`` / ``n_nonmembers``;
    * ``gap_variance`` / ``gap_zero_floor_variance``: the variance (ddof=1, fraction squared)
      of the gap over ``n_bootstrap`` resamples (members and non-members resampled separately
      with replacement, ``numpy.random.default_rng(seed)``; both variants share the resamples);
      0.0 when ``n_bootstrap`` is 0 or 1, NaN when a resample has C_D = 0;
    * when given DtCResults, ``members_already_confident``, ``members_capped``,
      ``nonmembers_already_confident``, ``nonmembers_capped`` (counts), and
      ``members_mean_outside`` / ``nonmembers_mean_outside`` / ``gap_outside``: the means over
      the samples that were not already confident only, where both variants agree (NaN for an
      empty group).
    """
    n_bootstrap, seed = _check_bootstrap(n_bootstrap, seed)
    out = {}
    columns = {}
    for name, result in (("members", member_distances), ("nonmembers", nonmember_distances)):
        paper, zero_floor = _distances(result, paper=True), _distances(result, paper=False)
        if paper.numel() == 0:
            raise ValueError(f"{name}: need at least one distance")
        columns[name] = torch.stack([paper, zero_floor], dim=1).numpy()  # (N, 2)
        out[f"{name}_mean"] = float(paper.mean())
        out[f"{name}_mean_zero_floor"] = float(zero_floor.mean())
        out[f"n_{name}"] = int(paper.numel())
        if isinstance(result, DtCResult):
            counts = result.counts()
            out[f"{name}_already_confident"] = counts["already_confident"]
            out[f"{name}_capped"] = counts["capped"]
            outside = zero_floor[~result.already_confident.bool()]
            out[f"{name}_mean_outside"] = float(outside.mean()) if outside.numel() else float("nan")
    out["gap"] = _relative_gap(out["nonmembers_mean"], out["members_mean"])
    out["gap_zero_floor"] = _relative_gap(out["nonmembers_mean_zero_floor"], out["members_mean_zero_floor"])
    if "members_mean_outside" in out and "nonmembers_mean_outside" in out:
        out["gap_outside"] = _relative_gap(out["nonmembers_mean_outside"], out["members_mean_outside"])
    variances = (_bootstrap_gap_variances(columns["members"], columns["nonmembers"], n_bootstrap, seed)
                 if n_bootstrap else np.zeros(2))
    out["gap_variance"], out["gap_zero_floor_variance"] = float(variances[0]), float(variances[1])
    return out


def _relative_gap(d: float, s: float) -> float:
    if d == 0 or math.isnan(d) or math.isnan(s):
        return float("nan")
    return (d - s) / d


@dataclass(frozen=True)
class RunDtC:
    """DtC of a stored run: ``eval`` on the balanced evaluation set and ``adv`` on the adversary's
    set (members first in both, as the bool (N,) ``eval_is_member`` / ``adv_is_member`` say), the
    confidence ``threshold`` (nats) and ``gap``: :func:`dtc_gap` on the evaluation set. ``adv``
    and ``adv_is_member`` are None when the adversary's set was not measured
    (``adversary=False``)."""

    eval: DtCResult
    eval_is_member: torch.Tensor
    adv: DtCResult | None
    adv_is_member: torch.Tensor | None
    threshold: float
    gap: dict

    def attack(self, n_bootstrap: int = 200, seed: int = 0):
        """:func:`dtc_attack` on this run (needs the adversary's set for the threshold)."""
        if self.adv is None or self.adv_is_member is None:
            raise ValueError("attack: the adversary's set was not measured (adversary=False), and the DtC "
                             "attack needs it to choose its threshold; measure with adversary=True")
        return dtc_attack(self.eval, self.eval_is_member, self.adv, self.adv_is_member, n_bootstrap, seed)


def _balanced_head(is_member: torch.Tensor, max_samples: int | None) -> torch.Tensor:
    """Indices of the first ``max_samples`` members and first ``max_samples`` non-members."""
    members, nonmembers = torch.nonzero(is_member).squeeze(1), torch.nonzero(~is_member).squeeze(1)
    if max_samples is not None:
        members, nonmembers = members[:max_samples], nonmembers[:max_samples]
    return torch.cat([members, nonmembers])


def run_images(run, prefix: str = "eval", data_root=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """The uint8 images (N, C, H, W), labels (N,) and membership (N,) of a stored run's balanced
    evaluation set (``prefix="eval"``) or the adversary's set (``"adv"``), members first, rebuilt
    from the run's split; checked against the run's stored labels."""
    from mia_utils.data import load_dataset, split_for

    if prefix not in ("eval", "adv"):
        raise ValueError(f"prefix: must be 'eval' or 'adv', got {prefix!r}")
    c = run.config
    data = load_dataset(c.dataset, data_root)
    split = split_for(c, data.info)
    members, nonmembers = ((split.eval_members, split.eval_nonmembers) if prefix == "eval"
                           else (split.adv_members, split.adv_nonmembers))
    images = torch.cat([data.train_images[members], data.test_images[nonmembers]])
    labels = torch.cat([data.train_labels[members], data.test_labels[nonmembers]])
    is_member = run.outputs[f"{prefix}_is_member"].bool()
    if not torch.equal(labels, run.outputs[f"{prefix}_labels"]) or len(is_member) != len(labels):
        raise RuntimeError(f"the rebuilt {prefix} set does not match the run's stored labels")
    return images, labels, is_member


def dtc_on_run(run, max_samples: int | None = None, device: torch.device | str | None = None,
               data_root=None, adversary: bool = True, **kwargs) -> RunDtC:
    """DtC of a stored :class:`mia_utils.experiment.Run` (a target, not a shadow model).

    Rebuilds the evaluation and adversary images from the run's split (:func:`run_images`),
    uses the median of the run's ``member_losses`` as the threshold and ``run.model()`` on
    ``device`` (default :func:`mia_utils.train.default_device`). ``max_samples``: keep at most
    this many members and this many non-members of each set (the first ones), for speed.
    ``adversary``: also measure the adversary's set (needed by :meth:`RunDtC.attack`); False
    halves the time and leaves ``adv`` / ``adv_is_member`` None. ``gap`` is :func:`dtc_gap`
    without bootstrap.

    Args:
        run: the stored target run (:class:`mia_utils.experiment.Run`, or anything with its
            ``config``, ``outputs`` and ``model()``); a shadow model's run is refused.
        max_samples: keep at most this many members and this many non-members of each set (the
            first ones), for speed (int >= 1; None = all).
        device: the device the model runs on (``torch.device`` or str; None =
            :func:`mia_utils.train.default_device`).
        data_root: folder the dataset is loaded from (path or None for the default search, see
            :func:`mia_utils.data.load_dataset`).
        adversary: also measure the adversary's set (bool).
        **kwargs: passed to :func:`distance_to_confident` (``step``, ``max_steps``, ``batch_size``).
    """
    from mia_utils.train import default_device

    if max_samples is not None and max_samples < 1:
        raise ValueError(f"max_samples: must be >= 1, got {max_samples}")
    if not isinstance(adversary, (bool, np.bool_)):
        raise ValueError(f"adversary: must be True or False, got {adversary!r}")
    if getattr(run.config, "is_shadow", False):
        raise ValueError("run: DtC is measured on target models, not shadow models")
    threshold = confident_loss(run.outputs["member_losses"])
    model = run.model().to(device or default_device())
    results = {"adv": (None, None)}
    for prefix in ("eval", "adv") if adversary else ("eval",):
        images, labels, is_member = run_images(run, prefix, data_root)
        keep = _balanced_head(is_member, max_samples)
        results[prefix] = (distance_to_confident(model, images[keep], labels[keep], threshold, **kwargs),
                           is_member[keep])
    eval_result, eval_is_member = results["eval"]
    adv_result, adv_is_member = results["adv"]
    gap = dtc_gap(eval_result.subset(eval_is_member), eval_result.subset(~eval_is_member))
    return RunDtC(eval_result, eval_is_member, adv_result, adv_is_member, threshold, gap)


def dtc_attack(eval_result, eval_is_member: torch.Tensor, adv_result, adv_is_member: torch.Tensor,
               n_bootstrap: int = 200, seed: int = 0):
    """A white-box membership inference attack on DtC: members are closer to a confident region,
    so the score is -DtC (higher = member); the threshold maximising balanced accuracy is chosen
    on the adversary's own labelled samples (``adv_*``) only, and applied to the evaluation set.
    Takes :class:`DtCResult` (scored with the paper's DtC, :attr:`DtCResult.paper_distances`) or
    plain distance tensors (N,) (scored as they are), with bool (N,) membership; returns an
    :class:`mia_utils.attacks.AttackResult` named ``dtc`` (advantage, AUC, TPR at low FPR, ... with
    bootstrap uncertainty).

    Args:
        eval_result: :class:`DtCResult` or float tensor (N,) of distances (units of 1/1000 of the
            pixel range) for the evaluation set; finite.
        eval_is_member: bool tensor (N,), the evaluation set's membership (both classes present).
        adv_result: :class:`DtCResult` or float tensor (M,) of distances for the adversary's
            samples; finite.
        adv_is_member: bool tensor (M,), the adversary's samples' membership (both classes present).
        n_bootstrap: bootstrap resamples for the metrics' uncertainty (int >= 0).
        seed: seed of the bootstrap resampling (int).
    """
    from mia_utils.attacks.inputs import AttackInputError, attack_result, best_threshold, membership_flags

    eval_scores, adv_scores = -_distances(eval_result, paper=True), -_distances(adv_result, paper=True)
    for name, scores in (("eval", eval_scores), ("adv", adv_scores)):
        if not torch.isfinite(scores).all():
            raise AttackInputError(f"{name}: distances contain NaN or infinite values")
    eval_is_member = membership_flags("eval", eval_is_member, eval_scores.numel())
    adv_is_member = membership_flags("adv", adv_is_member, adv_scores.numel())
    threshold = best_threshold(adv_scores, adv_is_member)
    return attack_result("dtc", eval_scores, eval_scores >= threshold, threshold, eval_is_member, n_bootstrap, seed)


class _Snapshot:
    """A run seen at the snapshot after ``epoch``: its config, outputs and model."""

    def __init__(self, run, epoch: int):
        self.config, self.epoch = run.config, epoch
        self.outputs = run.snapshot_outputs(epoch)
        self._run = run

    def model(self):
        return self._run.model(self.epoch)


_TENSOR_FIELDS = ("distances", "steps", "already_confident", "reached", "capped", "initial_losses", "final_losses")


def stored_dtc(run, store=None, epoch: int | None = None, max_samples: int | None = None, adversary: bool = True,
               n_bootstrap: int = 0, seed: int = 0, **kwargs) -> RunDtC:
    """:func:`dtc_on_run` through the result store: computed once per (run, epoch, settings),
    written atomically beside the runs, and read back afterwards. ``epoch``: measure the
    snapshot after that epoch (early stopping) instead of the final model. ``adversary``: also
    measure the adversary's set (False: ``adv`` / ``adv_is_member`` are None). The stored
    ``gap`` is :func:`dtc_gap` on the evaluation set with ``n_bootstrap`` resamples from
    ``seed`` (its ``gap_variance`` / ``gap_zero_floor_variance``). ``adversary``,
    ``n_bootstrap``, ``seed`` and ``kwargs`` (for :func:`dtc_on_run`) are all part of the key.

    Args:
        run: the stored target run (:class:`mia_utils.experiment.Run`); its ``key`` names the entry.
        store: the :class:`mia_utils.store.ResultStore` (None = the default store).
        epoch: measure the snapshot after this epoch (int) instead of the final model (None).
        max_samples: at most this many members and this many non-members per set (int >= 1;
            None = all), see :func:`dtc_on_run`.
        adversary: also measure the adversary's set (bool).
        n_bootstrap: bootstrap resamples for the stored gap's variance (int >= 0).
        seed: seed of those resamples (int >= 0).
        **kwargs: passed to :func:`dtc_on_run` (e.g. ``step``, ``max_steps``, ``batch_size`` for
            :func:`distance_to_confident`); part of the store key.
    """
    from mia_utils.store import ResultStore, derived_key

    n_bootstrap, seed = _check_bootstrap(n_bootstrap, seed)
    if not isinstance(adversary, (bool, np.bool_)):
        raise ValueError(f"adversary: must be True or False, got {adversary!r}")
    adversary = bool(adversary)
    store = store or ResultStore()
    settings = {"run": run.key, "epoch": epoch, "max_samples": max_samples, **kwargs, "adversary": adversary,
                "n_bootstrap": n_bootstrap, "seed": seed, "format": 2}
    key = derived_key("dtc-", settings)
    entry = store.load(key)
    if entry is None:
        measured = dtc_on_run(run if epoch is None else _Snapshot(run, epoch), max_samples=max_samples,
                              adversary=adversary, **kwargs)
        tensors = {}
        for prefix in ("eval", "adv"):
            result = getattr(measured, prefix)
            if result is None:
                continue
            tensors[prefix] = {name: getattr(result, name) for name in _TENSOR_FIELDS}
            tensors[prefix]["is_member"] = getattr(measured, f"{prefix}_is_member")
        is_member = measured.eval_is_member
        gap = dtc_gap(measured.eval.subset(is_member), measured.eval.subset(~is_member), n_bootstrap, seed)
        meta = {"settings": settings, "threshold": measured.threshold, "gap": gap,
                "step": measured.eval.step, "max_steps": measured.eval.max_steps}
        store.save(key, {"dtc": meta}, tensors)
        entry = store.load(key)
        if entry is None:
            raise RuntimeError(f"the DtC entry {key} could not be read back from the store")
    meta = entry["json"]["dtc"]
    parts = {"adv": (None, None)}
    for prefix in ("eval", "adv"):
        saved = entry["tensors"].get(prefix)
        if saved is None:
            if prefix == "eval":
                raise RuntimeError(f"the DtC entry {key} has no evaluation-set part")
            continue
        parts[prefix] = (DtCResult(**{name: saved[name] for name in _TENSOR_FIELDS}, threshold=meta["threshold"],
                                   step=meta["step"], max_steps=meta["max_steps"]), saved["is_member"].bool())
    return RunDtC(parts["eval"][0], parts["eval"][1], parts["adv"][0], parts["adv"][1], meta["threshold"], meta["gap"])
