"""DP-SGD (mia_utils.dp): accounting, Opacus validation, clipping, noise, Poisson sampling,
empty batches, determinism and configuration ranges."""

import copy
import math

import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import RDPAccountant
from opacus.validators import ModuleValidator

from mia_utils import dp  # registers dp_sgd (mechanisms.py imports it too, once wired in)
from mia_utils.config import ConfigError, RunConfig
from mia_utils.data import load_dataset
from mia_utils.mechanisms import REGISTRY, TrainingContext
from mia_utils.models import build_model
from mia_utils.train import soft_cross_entropy, train

C = dp.DPSGD.MAX_GRAD_NORM
pytestmark = [
    pytest.mark.filterwarnings("ignore:Full backward hook is firing:UserWarning"),  # Opacus hooks, first layer
    pytest.mark.filterwarnings("ignore:Optimal order is the:UserWarning"),  # RDP orders at sigma = 10
]


@pytest.fixture(scope="module")
def fmnist():
    return load_dataset("fmnist")


def fresh_epsilon(sigma, q, steps, delta):
    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    return accountant.get_epsilon(delta)


def test_registered_with_the_papers_range():
    cls = REGISTRY["dp_sgd"]
    assert cls is dp.DPSGD
    assert (cls.symbol, cls.low, cls.high) == ("sigma_DP", 0.01, 10.0)
    assert C == 1.0 and dp.DPSGD.GRAD_SAMPLE_MODE in dp.GRAD_SAMPLE_MODES


def test_reported_epsilon_is_opacus_rdp_epsilon_after_a_real_run(tiny_config, store):
    from mia_utils.experiment import run

    config = tiny_config.with_mechanisms(dp_sgd=1.0)
    facts = run(config, store, progress=False).provenance["mechanisms"]
    n, q = config.n_members, config.batch_size / config.n_members
    assert facts["dp_noise_multiplier"] == 1.0 and facts["dp_max_grad_norm"] == C
    assert facts["dp_sample_rate"] == q
    assert facts["dp_delta"] == 1 / (10 * n)
    assert facts["dp_steps"] == int(1 / q) * config.epochs
    assert facts["dp_grad_sample_mode"] == dp.DPSGD.GRAD_SAMPLE_MODE
    expected = fresh_epsilon(facts["dp_noise_multiplier"], facts["dp_sample_rate"], facts["dp_steps"],
                             facts["dp_delta"])
    assert facts["dp_epsilon"] == expected
    assert facts["dp_epsilon"] == dp.epsilon(1.0, q, facts["dp_steps"], facts["dp_delta"])
    assert 0 < facts["dp_epsilon"] < math.inf
    assert run(config, store).provenance["mechanisms"] == facts  # stored and read back as is


def test_epsilon_falls_strictly_as_sigma_grows():
    eps = [dp.epsilon(sigma, 0.01, 1_000, 1e-5) for sigma in (0.5, 1, 2, 5, 10)]
    assert all(a > b > 0 for a, b in zip(eps, eps[1:])), eps
    assert dp.epsilon(1.0, 0.01, 0, 1e-5) == 0.0
    assert dp.epsilon(1.0, 0.01, 2_000, 1e-5) > dp.epsilon(1.0, 0.01, 1_000, 1e-5)  # more steps cost more
    with pytest.raises(ValueError, match="noise_multiplier"):
        dp.epsilon(0.0, 0.01, 10, 1e-5)


@pytest.mark.parametrize("dataset", ["fmnist", "cifar10", "cifar100"])
def test_models_pass_opacus_validator(dataset):
    for norm in ("none", "group"):
        for options in ({}, {"dropout": 0.5}, {"dropout": 0.5, "spatial_dropout": 0.25}):
            model = build_model(dataset, width=0.25, norm=norm, **options)
            assert ModuleValidator.validate(model, strict=True) == []
            dp.validate(model)
    with pytest.raises(Exception):
        dp.validate(torch.nn.Sequential(torch.nn.Conv2d(1, 4, 3), torch.nn.BatchNorm2d(4)))


def _wrapped(mode, config, n=32, dataset="fmnist", **model_options):
    """A tiny model, its untouched copy, DP-wrapped model and optimizer (SGD lr 0: weights stay)."""
    torch.manual_seed(0)
    model = build_model(dataset, width=0.25, **model_options)
    reference = copy.deepcopy(model)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand((n, *model.input_shape), generator=generator)
    labels = torch.randint(0, model.classifier.out_features, (n,), generator=generator)
    mechanism = dp.DPSGD(1.0, grad_sample_mode=mode)
    context = TrainingContext(config, images, labels, model.classifier.out_features, torch.device("cpu"))
    mechanism.prepare(context)
    private, optimizer = mechanism.wrap(model, torch.optim.SGD(model.parameters(), lr=0.0), context)
    targets = F.one_hot(labels, model.classifier.out_features).float()
    return model, reference, private, optimizer, mechanism, images, targets


def _step(private, optimizer, images, targets, batch):
    loss = soft_cross_entropy(private(images[batch]), targets[batch])
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()


def _clipped_sum(reference, images, targets, batch):
    """Sum over the batch of each example's gradient clipped to norm C, by plain autograd."""
    params = list(reference.parameters())
    total, norms = [torch.zeros_like(p) for p in params], []
    for i in batch.tolist():
        grads = torch.autograd.grad(soft_cross_entropy(reference(images[i:i + 1]), targets[i:i + 1]), params)
        norm = torch.sqrt(sum(g.pow(2).sum() for g in grads))
        norms.append(norm.item())
        for t, g in zip(total, grads):
            t += g * min(1.0, C / (norm.item() + 1e-6))
    return total, norms


@pytest.mark.parametrize("norm", ["none", "group"])
@pytest.mark.parametrize("mode", dp.GRAD_SAMPLE_MODES)
def test_per_sample_gradients_are_clipped_to_C_and_divided_by_the_expected_batch(mode, norm, tiny_config):
    config = tiny_config.replace(batch_size=8)  # 32 examples: q = 1/4, expected batch 8
    model, reference, private, optimizer, _, images, targets = _wrapped(mode, config, norm=norm)
    optimizer.noise_multiplier = 0.0  # isolate clipping: the update is the clipped sum / 8
    batch = torch.tensor([0, 3, 4, 9, 17])  # 5 examples, not the expected 8
    with torch.no_grad():  # two targets close to the model's own output: gradient norms below C
        near = reference(images[[3, 9]]).softmax(1)
        targets[[3, 9]] = 0.99 * near + 0.01 * targets[[3, 9]]
    _step(private, optimizer, images, targets, batch)
    clipped, norms = _clipped_sum(reference, images, targets, batch)
    assert min(norms) < C < 2 * C < max(norms)  # both branches: left as is, and scaled down to C
    for p, expected in zip(model.parameters(), clipped):
        torch.testing.assert_close(p.grad, expected / 8, rtol=1e-4, atol=1e-6)
    total = math.sqrt(sum(p.grad.pow(2).sum().item() for p in model.parameters()))
    assert total <= C * len(batch) / 8 + 1e-5  # each example contributes at most C / expected batch


def test_noise_has_std_sigma_C_over_the_expected_batch(tiny_config):
    config = tiny_config.replace(batch_size=8)
    model, reference, private, optimizer, _, images, targets = _wrapped(dp.DPSGD.GRAD_SAMPLE_MODE, config)
    batch = torch.arange(8)
    _step(private, optimizer, images, targets, batch)
    clipped, _ = _clipped_sum(reference, images, targets, batch)
    residual = torch.cat([(p.grad - s / 8).flatten() for p, s in zip(model.parameters(), clipped)])
    assert residual.numel() > 5_000
    assert abs(residual.mean().item()) < 0.01
    assert residual.std().item() == pytest.approx(1.0 * C / 8, rel=0.05)


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_wraps_and_steps_the_cifar_models(dataset, tiny_config):
    config = tiny_config.replace(batch_size=4)
    model, _, private, optimizer, mechanism, images, targets = _wrapped(
        dp.DPSGD.GRAD_SAMPLE_MODE, config, n=8, dataset=dataset, norm="group", dropout=0.25)
    before = [p.detach().clone() for p in model.parameters()]
    optimizer.param_groups[0]["lr"] = 0.1
    _step(private, optimizer, images, targets, torch.arange(4))
    assert all(not torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert mechanism.steps == 1


def test_poisson_batches_have_the_right_size_vary_and_reproduce():
    n, batch_size = 1_000, 50
    generator = torch.Generator().manual_seed(0)
    epochs = [dp.poisson_batches(n, batch_size, generator) for _ in range(100)]
    assert all(len(epoch) == 20 for epoch in epochs)  # int(1 / q) steps per epoch
    sizes = torch.tensor([len(b) for epoch in epochs for b in epoch], dtype=torch.float)
    assert abs(sizes.mean().item() - batch_size) < 1.0  # standard error ~0.15
    assert 5 < sizes.std().item() < 9  # binomial: sqrt(n q (1 - q)) ~ 6.9
    assert len(set(sizes.tolist())) > 15
    for batch in epochs[0]:
        assert batch.dtype == torch.int64 and len(batch.unique()) == len(batch)
        assert int(batch.min()) >= 0 and int(batch.max()) < n
    counts = torch.bincount(torch.cat([b for epoch in epochs for b in epoch]), minlength=n)
    assert counts.min() > 0  # every example is drawn, each with probability q per step
    again = [dp.poisson_batches(n, batch_size, torch.Generator().manual_seed(0)) for _ in range(1)]
    assert all(torch.equal(a, b) for a, b in zip(again[0], epochs[0]))
    other = dp.poisson_batches(n, batch_size, torch.Generator().manual_seed(1))
    assert not all(len(a) == len(b) and torch.equal(a, b) for a, b in zip(other, epochs[0]))


def test_empty_batches_take_a_noise_only_step(tiny_config, fmnist):
    config = tiny_config.replace(batch_size=1).with_mechanisms(dp_sgd=1.0)  # q = 1/300: ~37% empty
    generator = torch.Generator().manual_seed(config.training_seed() + 1)  # the loop's order generator
    sizes = [len(b) for b in dp.poisson_batches(config.n_members, 1, generator)]
    assert sizes.count(0) > 50
    result = train(config, fmnist, progress=False)
    assert result.mechanism_facts["dp_steps"] == len(sizes) == 300  # empty batches are steps too
    assert all(torch.isfinite(v).all() for v in result.state_dict.values())
    # direct: an empty batch moves the weights by noise only
    model, _, private, optimizer, mechanism, images, targets = _wrapped(dp.DPSGD.GRAD_SAMPLE_MODE,
                                                                       tiny_config.replace(batch_size=8))
    _step(private, optimizer, images, targets, torch.arange(0))
    noise = torch.cat([p.grad.flatten() for p in model.parameters()])
    assert torch.isfinite(noise).all() and noise.std().item() == pytest.approx(C / 8, rel=0.05)
    assert mechanism.steps == 1


def test_same_config_gives_identical_weights(tiny_config, fmnist):
    config = tiny_config.with_mechanisms(dp_sgd=1.0)
    first, second = (train(config, fmnist, progress=False) for _ in range(2))
    assert first.state_dict.keys() == second.state_dict.keys()
    assert all(torch.equal(first.state_dict[k], second.state_dict[k]) for k in first.state_dict)
    assert first.mechanism_facts == second.mechanism_facts
    noisier = train(tiny_config.with_mechanisms(dp_sgd=2.0), fmnist, progress=False)
    assert not torch.equal(first.state_dict["classifier.weight"], noisier.state_dict["classifier.weight"])


@pytest.mark.parametrize("sigma", [0, 0.005, 20, -1])
def test_out_of_range_sigma_is_refused(sigma):
    with pytest.raises(ConfigError, match="dp_sgd"):
        RunConfig().with_mechanisms(dp_sgd=sigma)


def test_in_range_sigma_is_accepted_and_nothing_reported_before_training():
    for sigma in (0.01, 1, 10):
        assert dict(RunConfig().with_mechanisms(dp_sgd=sigma).mechanisms) == {"dp_sgd": sigma}
    assert dp.DPSGD(1.0).report() == {}
