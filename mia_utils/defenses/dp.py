"""DP-SGD (differentially private SGD) as a :class:`~mia_utils.defenses.base.Mechanism`, built on Opacus.

The mechanism's one hyperparameter is the noise multiplier sigma_DP (``dp_sgd`` in
``RunConfig.mechanisms``; the paper sweeps it from 0.01 to 10). Each training step

1. draws a Poisson batch: every training example is included independently with probability
   q = batch_size / N (Opacus' ``UniformWithReplacementSampler`` fed the loop's seeded
   generator; int(1 / q) steps per epoch, as Opacus' ``DPDataLoader`` takes), so the batch
   size varies and may even be 0;
2. clips each example's whole gradient to L2 norm at most C = :attr:`DPSGD.MAX_GRAD_NORM` = 1.0
   (Opacus' ghost clipping finds the norms, see :func:`_ghost_clipping_class`), sums them, adds
   Gaussian noise N(0, (sigma_DP C)^2) to every coordinate and divides by the *expected* batch
   size q N (an Opacus ``DPOptimizerFastGradientClipping`` around the recipe's Adam);
3. records the step in an Opacus ``RDPAccountant``.

After training, :meth:`DPSGD.report` gives epsilon at delta = 1 / (10 N) (N: the number of
examples the model trains on), stored with the run in ``provenance["mechanisms"]``, twice: from
Opacus' Rényi-DP accountant (``dp_epsilon``) and from its PRV accountant (``dp_epsilon_prv``;
Gopi et al. 2021, numerical composition of privacy loss random variables, usually tighter).
:func:`epsilon` and :func:`epsilon_prv` compute the same numbers without training, for tables.

Both are *certified* upper bounds: no attack on the trained model can do better than they allow.
:mod:`mia_utils.attacks.audit` reads the other side, the lower bound that one attack's ROC on
the evaluation set implies, and puts the three side by side for a DP sweep.

An empty Poisson batch is handled as Opacus handles it: the step still happens and is
accounted for, with a zero clipped sum, so the update is noise only.

Opacus is imported lazily (inside the functions), so importing this module costs nothing until
DP-SGD is used.
"""

from __future__ import annotations

import logging
import math
import warnings

import torch
from torch import nn

from mia_utils.defenses.base import Mechanism, TrainingContext

logger = logging.getLogger(__name__)

# Offset added to the run's training seed for the noise generator; train() uses +0 (init),
# +1 (batch order) and +2 (augmentation).
NOISE_SEED_OFFSET = 3
GRAD_SAMPLE_MODES = ("ghost", "hooks", "ew", "functorch")

#: The largest discretization grid (number of points) on which :func:`epsilon_prv` lets Opacus'
#: PRV accountant run; 1 to 2 GB of memory and a few seconds at this size. Small noise needs far
#: more (sigma_DP = 0.01 on the quick profile: 5e10 points, 400 GB), so it is refused beforehand.
PRV_MAX_GRID = 1 << 23
#: How Opacus' PRV analysis (opacus/accountants/analysis/prv) signals that it cannot compute
#: epsilon: RuntimeError or ValueError messages starting with these.
PRV_FAILURES = ("Discrete mean differs significantly", "Cannot compute epsilon",
                "Floating point errors will dominate")


def delta_for(n: int) -> float:
    """The delta of a run that trains on ``n`` examples: 1 / (10 n)."""
    if n < 1:
        raise ValueError(f"n: need at least one training example, got {n}")
    return 1.0 / (10 * n)


def sample_rate_for(n: int, batch_size: int) -> float:
    """Poisson sampling rate q = batch_size / n (at most 1)."""
    if n < 1 or batch_size < 1:
        raise ValueError(f"n / batch_size: must be >= 1, got {n} / {batch_size}")
    return min(1.0, batch_size / n)


def steps_per_epoch(sample_rate: float) -> int:
    """Steps of one Poisson 'epoch': int(1 / q), as Opacus' DPDataLoader takes (at least 1)."""
    return max(1, int(1 / sample_rate))


def _check_accounting(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> None:
    if not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier: must be > 0, got {noise_multiplier}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate: must be in (0, 1], got {sample_rate}")
    if not 0 < delta < 1:
        raise ValueError(f"delta: must be in (0, 1), got {delta}")
    if steps < 0:
        raise ValueError(f"steps: must be >= 0, got {steps}")


def epsilon(noise_multiplier: float, sample_rate: float, steps: int, delta: float) -> float:
    """epsilon of ``steps`` DP-SGD steps with noise multiplier sigma and Poisson rate q at
    ``delta``, from a fresh Opacus ``RDPAccountant`` whose history is [(sigma, q, steps)].
    0.0 for zero steps."""
    from opacus.accountants import RDPAccountant

    _check_accounting(noise_multiplier, sample_rate, steps, delta)
    if steps == 0:
        return 0.0
    accountant = RDPAccountant()
    accountant.history = [(noise_multiplier, sample_rate, int(steps))]
    return float(accountant.get_epsilon(delta))


def _prv_epsilon(history: list[tuple[float, float, int]], delta: float,
                 max_grid: int = PRV_MAX_GRID) -> tuple[float, str]:
    """(epsilon, "") from an Opacus ``PRVAccountant`` with this ``history`` of (sigma, q, steps),
    at ``delta`` and Opacus' default accuracy (eps_error 0.01, delta_error delta / 1000), or
    (NaN, the reason) when it cannot be computed: a grid larger than ``max_grid`` points (checked
    before anything is allocated, with the accountant's own domain rule), memory exhausted, or
    one of Opacus' :data:`PRV_FAILURES`. Any other exception propagates."""
    from opacus.accountants import PRVAccountant
    from opacus.accountants.analysis.prv import PoissonSubsampledGaussianPRV

    accountant = PRVAccountant()
    accountant.history = [(float(sigma), float(q), int(steps)) for sigma, q, steps in history]
    eps_error, delta_error = 0.01, delta / 1000  # PRVAccountant.get_epsilon's defaults
    try:
        # The grid get_epsilon would discretize on (PRVAccountant._get_domain: its own rule,
        # from an RDP bound on the privacy loss and the number of compositions).
        with warnings.catch_warnings():  # its RDP bound's choice of orders does not matter here
            warnings.filterwarnings("ignore", message="Optimal order is the", category=UserWarning)
            domain = accountant._get_domain(
                prvs=[PoissonSubsampledGaussianPRV(q, sigma) for sigma, q, _ in accountant.history],
                num_self_compositions=[steps for _, _, steps in accountant.history],
                eps_error=eps_error, delta_error=delta_error)
        if domain.size > max_grid:
            return math.nan, (f"the PRV accountant's grid would have {domain.size:.3g} points "
                              f"(limit {max_grid:.3g}); the noise is too small for it")
        return float(accountant.get_epsilon(delta, eps_error=eps_error, delta_error=delta_error)), ""
    except MemoryError as error:
        return math.nan, f"the PRV accountant ran out of memory ({error})"
    except (RuntimeError, ValueError) as error:
        if not str(error).startswith(PRV_FAILURES):
            raise
        return math.nan, f"Opacus' PRV accountant failed: {error}"


def epsilon_prv(noise_multiplier: float, sample_rate: float, steps: int, delta: float,
                max_grid: int = PRV_MAX_GRID) -> float:
    """epsilon of ``steps`` DP-SGD steps with noise multiplier sigma and Poisson rate q at
    ``delta``, from a fresh Opacus ``PRVAccountant`` whose history is [(sigma, q, steps)] (its
    upper estimate, with eps_error 0.01 and delta_error delta / 1000, Opacus' defaults). 0.0 for
    zero steps.

    NaN, with the reason logged as a warning of this module's logger, when the accountant cannot
    give a number: for very small noise its discretization grid grows beyond ``max_grid`` points
    (:data:`PRV_MAX_GRID`; sigma_DP = 0.01 would need hundreds of GB), so it is not even tried;
    and when it runs out of memory or raises one of the failures :data:`PRV_FAILURES` names.
    The RDP epsilon (:func:`epsilon`) is finite in every such case.

    Args:
        noise_multiplier: sigma_DP, the Gaussian noise's standard deviation over the clipping
            norm (float > 0).
        sample_rate: q, the Poisson sampling rate of a batch (float in (0, 1]).
        steps: the number of DP-SGD steps (int >= 0).
        delta: the privacy parameter delta (float in (0, 1)).
        max_grid: largest PRV discretization grid tried, in points (int; default
            :data:`PRV_MAX_GRID`).
    """
    _check_accounting(noise_multiplier, sample_rate, steps, delta)
    if steps == 0:
        return 0.0
    value, reason = _prv_epsilon([(noise_multiplier, sample_rate, int(steps))], delta, max_grid)
    if reason:
        logger.warning("PRV epsilon is NaN for sigma_DP = %g, q = %g, %d steps, delta = %g: %s",
                       noise_multiplier, sample_rate, steps, delta, reason)
    return value


def certified_epsilons(facts: dict) -> dict:
    """The certified epsilons of one DP-SGD run from its mechanism facts (:meth:`DPSGD.report`,
    ``Setting.facts[i]``): ``{"rdp": dp_epsilon, "prv": dp_epsilon_prv, "prv_note": reason or ""}``.
    The PRV epsilon is recomputed with :func:`_prv_epsilon` from the run's sigma, q, steps and
    delta when the facts lack it (runs stored before it was reported) or hold NaN, so that the
    reason for a NaN is known."""
    rdp, prv = float(facts["dp_epsilon"]), float(facts.get("dp_epsilon_prv", math.nan))
    if not math.isnan(prv):
        return {"rdp": rdp, "prv": prv, "prv_note": ""}
    if facts["dp_steps"] == 0:
        return {"rdp": rdp, "prv": 0.0, "prv_note": ""}
    prv, note = _prv_epsilon([(facts["dp_noise_multiplier"], facts["dp_sample_rate"], facts["dp_steps"])],
                             facts["dp_delta"])
    return {"rdp": rdp, "prv": prv, "prv_note": note}


def poisson_batches(n: int, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """One epoch of Poisson batches (int64 index tensors, possibly empty): int(1 / q) draws of
    Opacus' ``UniformWithReplacementSampler`` with q = batch_size / n, from ``generator``."""
    from opacus.utils.uniform_sampler import UniformWithReplacementSampler

    q = sample_rate_for(n, batch_size)
    sampler = UniformWithReplacementSampler(num_samples=n, sample_rate=q, generator=generator,
                                            steps=steps_per_epoch(q))
    return [torch.tensor(indices, dtype=torch.int64) for indices in sampler]


def validate(model: nn.Module) -> None:
    """Opacus' strict model check (no BatchNorm or other unsupported layers); raises otherwise."""
    from opacus.validators import ModuleValidator

    ModuleValidator.validate(model, strict=True)


def _without_inplace_activations(model: nn.Module) -> nn.Module:
    """Switch every ``inplace=True`` activation of ``model`` (our VGGs' ReLUs) to out-of-place.
    The function computed is the same, the weights untouched; Opacus' "hooks" and "functorch"
    modes need it, because their full backward hooks refuse outputs that are modified in place."""
    for module in model.modules():
        if getattr(module, "inplace", False) is True:
            module.inplace = False
    return model


def _empty_safe(gsm_class):
    """A subclass of an Opacus GradSampleModule class whose forward runs the plain model in
    evaluation (eval mode or no_grad: expanded weights would otherwise take their slow
    per-sample path for nothing) and lets an empty training batch through without per-sample
    machinery (Opacus' expanded-weights and functorch paths fail on batch size 0);
    :class:`_DPOptimizer` then gives every parameter an empty per-sample gradient."""

    class EmptySafe(gsm_class):
        last_batch_size = None

        def forward(self, x, *args, **kwargs):
            if not (self.training and torch.is_grad_enabled()):
                return self._module(x, *args, **kwargs)  # evaluation: no per-sample machinery
            self.last_batch_size = x.shape[0]
            if x.shape[0] == 0:
                with torch.no_grad():
                    out = self._module(x, *args, **kwargs)
                return out.requires_grad_()  # loss.backward() works; no parameter is touched
            return super().forward(x, *args, **kwargs)

    EmptySafe.__name__ = EmptySafe.__qualname__ = f"EmptySafe{gsm_class.__name__}"
    return EmptySafe


#: PyTorch warns when a module's full backward hook fires without an input gradient, which is
#: always so for the first layer (the images need none); ghost clipping expects it.
_FIRST_LAYER_HOOK_WARNING = "Full backward hook is firing when gradients are computed with respect to module outputs"


def _ghost_clipping_class():
    """Opacus' fast gradient clipping module (``GradSampleModuleFastGradientClipping``) with ghost
    norms for the linear layers and book-keeping for the clipped sum: one backward pass per step.

    * Ghost norms (Goodfellow 2015; Li et al. 2022): for a linear layer without a sequence
      dimension, example i's weight gradient is the outer product g_i a_i^T of its output gradient
      and its input, so its norm is ||g_i|| ||a_i||, found without forming the gradient (Opacus'
      norm sampler for ``nn.Linear`` computes the same).
    * Other layers (convolutions, GroupNorm) get their per-example gradients from Opacus' grad
      samplers (convolutions from unfolded activations), and their norms from those.
    * Book-keeping (Bu et al. 2023): the clipped sum sum_i c_i grad_i, c_i = min(1, C / (||grad_i||
      + 1e-6)) over all layers at once, is formed from what the one backward pass left behind:
      (c * G)^T A for a linear layer, sum_i c_i grad_i for the others. Opacus instead runs a second
      backward pass with each example's loss weighted by c_i; the two agree to float rounding
      (tests/test_dp.py checks both against plain autograd).

    The loop's ``loss.backward()`` on its batch-mean loss is the one pass: Opacus' hooks multiply
    each output gradient by the batch size, which gives every example's own gradient.
    """
    from opacus.grad_sample import GradSampleModuleFastGradientClipping
    from opacus.utils.module_utils import trainable_parameters

    class GhostClipping(_empty_safe(GradSampleModuleFastGradientClipping)):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._kept = {}  # module -> what its clipped gradient is formed from

        def capture_activations_hook(self, module, forward_input, forward_output):
            # The network stays channels-last (twice as fast on the CPU); Opacus' convolution
            # sampler unfolds activations assuming the plain layout, so it gets that copy.
            inputs = [t.contiguous() if t.dim() == 4 else t for t in forward_input]
            return super().capture_activations_hook(module, inputs, forward_output)

        def capture_backprops_hook(self, module, _forward_input, forward_output, loss_reduction, batch_first):
            """Opacus' backward hook, replaced: per-example gradient norms of ``module``'s
            parameters (``p._norm_sample``, (B,)), ghost norms for a 2-D ``nn.Linear``, and what
            :meth:`clipped_backward` forms the clipped sum from. Does nothing while
            ``hooks_enabled`` is False.

            Args:
                module: the layer whose output gradient arrived (``nn.Module``).
                _forward_input: the gradients with respect to the layer's inputs (unused, as in
                    Opacus; the names are Opacus').
                forward_output: the gradients of the layer's outputs (tuple; the first, (B, ...),
                    is used).
                loss_reduction: how the loss was reduced over the batch, ``"mean"`` or ``"sum"``
                    (Opacus rescales ``"mean"`` by the batch size).
                batch_first: whether the batch is the first dimension (bool).
            """
            if not self.hooks_enabled:
                return
            activations, backprops = self.rearrange_grad_samples(
                module=module, backprops=forward_output[0].detach(), loss_reduction=loss_reduction,
                batch_first=batch_first)
            params = [p for _, p in trainable_parameters(module)]
            if type(module) is nn.Linear and backprops.dim() == 2:
                inputs = activations[0].to(backprops.dtype)
                output_norms = backprops.pow(2).sum(1)
                module.weight._norm_sample = (output_norms * inputs.pow(2).sum(1)).sqrt()
                if module.bias is not None:
                    module.bias._norm_sample = output_norms.sqrt()
                self._kept[module] = (inputs, backprops)
            else:
                samples = self.GRAD_SAMPLERS[type(module)](module, activations, backprops)
                for p, sample in samples.items():
                    p._norm_sample = sample.reshape(len(sample), -1).norm(2, dim=1)
                self._kept[module] = samples
            for p in params:
                p._forward_counter -= 1
            if not module.activations and hasattr(module, "max_batch_len"):
                del module.max_batch_len

        def clipped_backward(self) -> None:
            """Replace every ``p.grad`` by the sum over the batch of the clipped per-example
            gradients (zeros for an empty batch)."""
            kept, self._kept = self._kept, {}
            params = [p for p in self.parameters() if p.requires_grad]
            factors = self.get_clipping_coef() if kept else None
            for p in params:
                p.grad = torch.zeros_like(p) if factors is None else None
            for module, saved in kept.items():
                if isinstance(saved, tuple):
                    inputs, backprops = saved
                    weighted = backprops * factors.unsqueeze(1)
                    module.weight.grad = (weighted.T @ inputs).view_as(module.weight)
                    if module.bias is not None:
                        module.bias.grad = weighted.sum(0)
                else:
                    for p, sample in saved.items():
                        p.grad = torch.einsum("n,n...->...", factors, sample).view_as(p)

    warnings.filterwarnings("ignore", message=_FIRST_LAYER_HOOK_WARNING)
    return GhostClipping


def _dp_optimizer_class(ghost: bool = False):
    from opacus.optimizers import DPOptimizer, DPOptimizerFastGradientClipping

    if ghost:
        class _GhostOptimizer(DPOptimizerFastGradientClipping):
            """Opacus' optimiser for fast gradient clipping (``p.grad`` holds the clipped sum; noise
            is added and the sum divided by the expected batch size), which first has the module
            form that clipped sum."""

            private_module = None  # the GhostClipping module, set by DPSGD.wrap

            def pre_step(self, closure=None):
                self.private_module.clipped_backward()
                return super().pre_step(closure)

        return _GhostOptimizer

    class _DPOptimizer(DPOptimizer):
        """Opacus' DPOptimizer with two adjustments to our training loop, which runs the forward
        pass *before* ``zero_grad``: per-sample gradients are released right after each step
        (expanded weights refuse a forward pass while they are still set, and this frees their
        memory early), and on an empty batch every parameter gets a zero-length per-sample
        gradient, so that Opacus' own empty-batch path clips nothing and adds noise only."""

        private_module = None  # the EmptySafe module, set by DPSGD.wrap

        def pre_step(self, closure=None):
            if self.private_module is not None and self.private_module.last_batch_size == 0:
                for p in self.params:
                    p.grad_sample = p.new_zeros((0, *p.shape))
            return super().pre_step(closure)

        def step(self, closure=None):
            result = super().step(closure)
            for p in self.params:
                p.grad_sample = None
            return result

    return _DPOptimizer


class DPSGD(Mechanism):
    """DP-SGD with noise multiplier sigma_DP and per-example clipping norm C = 1.0 (Opacus).

    * Sampling: Poisson, each example in each batch with probability q = batch_size / N, int(1/q)
      steps per epoch (see :func:`poisson_batches`); the accountant assumes exactly this.
    * Clipping: each example's gradient (all parameters together) is scaled to L2 norm at most
      ``MAX_GRAD_NORM`` = C = 1.0, the value of Opacus' tutorials and of many DP-SGD papers; with
      C fixed, sigma_DP alone sets the noise (std sigma_DP C on the summed clipped gradient, then
      divided by the expected batch size q N).
    * Optimiser: the recipe's Adam (AMSGrad, weight decay) steps on the noised gradient.
    * Accounting: Opacus' ``RDPAccountant``; epsilon at delta = 1 / (10 N) in :meth:`report`,
      beside the PRV accountant's for the same sigma, q, steps and delta (:func:`epsilon_prv`).
    * Determinism: the noise comes from a torch.Generator seeded with the run's training seed +
      ``NOISE_SEED_OFFSET``, on the training device, and the batches from the loop's seeded
      order generator, so a configuration gives the same weights twice on the CPU.
    * Per-sample gradients: ``GRAD_SAMPLE_MODE = "ghost"``, Opacus' fast gradient clipping with
      ghost clipping (see :func:`_ghost_clipping_class`): the linear layers' per-example gradient
      norms without the per-example gradients, and the network kept channels-last. The other
      modes build every per-example gradient in the plain NCHW layout: "ew" (PyTorch's expanded
      weights, Opacus' ``GradSampleModuleExpandedWeights``), "hooks" and "functorch".
      ``benchmarks/dp.py`` times all four on the quick profile's model (results in
      benchmarks/results/dp.md); all four give the same clipped sums (tests/test_dp.py). For
      "ghost", "hooks" and "functorch" the mechanism switches the ReLUs to out-of-place on the
      model instance (same function, same weights; models.py unchanged), because Opacus' backward
      hooks refuse outputs modified in place.
    * Empty Poisson batches: handled as Opacus handles them (a noise-only step, accounted for).
    * The model must pass Opacus' ``ModuleValidator.validate(strict=True)``: our VGGs do (no
      BatchNorm; GroupNorm, Dropout, MaxPool and the buffer-only Standardize are fine).

    Note that DP-SGD's guarantee covers the training set only as far as the rest of the recipe is
    private: distillation's teacher, for one, trains without noise.
    """

    name, symbol, low, high, stage = "dp_sgd", "sigma_DP", 0.01, 10.0, 70
    description = "per-example gradients clipped to norm 1 and Gaussian noise added (DP-SGD)"

    MAX_GRAD_NORM = 1.0
    GRAD_SAMPLE_MODE = "ghost"

    def __init__(self, value: float, grad_sample_mode: str | None = None):
        super().__init__(value)
        self.grad_sample_mode = grad_sample_mode or self.GRAD_SAMPLE_MODE
        if self.grad_sample_mode not in GRAD_SAMPLE_MODES:
            raise ValueError(f"grad_sample_mode: got {self.grad_sample_mode!r}; "
                             f"allowed: {', '.join(GRAD_SAMPLE_MODES)}")
        self.n = None
        self.sample_rate = None
        self.delta = None
        self.accountant = None
        self.optimizer = None

    def prepare(self, context: TrainingContext) -> None:
        self.n = int(context.images.shape[0])
        self.sample_rate = sample_rate_for(self.n, context.config.batch_size)
        self.delta = delta_for(self.n)

    def wrap(self, model, optimizer, context: TrainingContext):
        from opacus.accountants import RDPAccountant
        from opacus.grad_sample.utils import get_gsm_class

        if self.n is None:
            self.prepare(context)
        validate(model)
        ghost = self.grad_sample_mode == "ghost"
        if not ghost:  # these modes' per-sample gradients assume the NCHW layout
            model.set_channels_last(False)
        if self.grad_sample_mode in ("ghost", "hooks", "functorch"):
            _without_inplace_activations(model)
        options = {"batch_first": True, "loss_reduction": "mean"}  # soft_cross_entropy is a batch mean
        if ghost:
            gsm_class = _ghost_clipping_class()
            # strict=False: Opacus' strict check refuses any buffer, and Standardize holds two
            # constants (validate() above has checked the layers themselves).
            options.update(max_grad_norm=self.MAX_GRAD_NORM, use_ghost_clipping=True, strict=False)
        else:
            gsm_class = _empty_safe(get_gsm_class(self.grad_sample_mode))
        if self.grad_sample_mode == "functorch":
            options["force_functorch"] = True
        private_model = gsm_class(model, **options)
        generator = torch.Generator(device=context.device)
        generator.manual_seed(context.config.training_seed() + NOISE_SEED_OFFSET)
        self.optimizer = _dp_optimizer_class(ghost)(
            optimizer, noise_multiplier=float(self.value), max_grad_norm=self.MAX_GRAD_NORM,
            expected_batch_size=max(1, round(self.sample_rate * self.n)),  # = batch_size unless q = 1
            loss_reduction="mean", generator=generator)
        self.optimizer.private_module = private_model
        self.accountant = RDPAccountant()
        self.optimizer.attach_step_hook(self.accountant.get_optimizer_hook_fn(self.sample_rate))
        return private_model, self.optimizer

    def batches(self, n, batch_size, generator):
        return poisson_batches(n, batch_size, generator)

    @property
    def steps(self) -> int:
        """DP-SGD steps taken so far (as the accountant recorded them)."""
        return sum(steps for _, _, steps in self.accountant.history) if self.accountant else 0

    def report(self) -> dict:
        if self.accountant is None:
            return {}
        return {
            "dp_epsilon": float(self.accountant.get_epsilon(self.delta)) if self.accountant.history else 0.0,
            "dp_epsilon_prv": (epsilon_prv(float(self.value), self.sample_rate, self.steps, self.delta)
                               if self.accountant.history else 0.0),
            "dp_delta": self.delta,
            "dp_noise_multiplier": float(self.value),
            "dp_max_grad_norm": self.MAX_GRAD_NORM,
            "dp_sample_rate": self.sample_rate,
            "dp_steps": self.steps,
            "dp_grad_sample_mode": self.grad_sample_mode,
        }
