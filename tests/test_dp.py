"""DP-SGD (mia_utils.defenses.dp): accounting (RDP and PRV), certified against empirical epsilon, Opacus
validation, clipping, noise, Poisson sampling, empty batches, determinism and configuration ranges."""

import copy
import logging
import math
import warnings
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.validators import ModuleValidator

from mia_utils.attacks import audit, metrics
from mia_utils.book import report
from mia_utils.defenses import dp
from mia_utils.config import ConfigError, RunConfig
from mia_utils.data import load_dataset
from mia_utils.defenses import REGISTRY, TrainingContext
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


def fresh_prv_epsilon(sigma, q, steps, delta):
    accountant = PRVAccountant()
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
    prv = fresh_prv_epsilon(facts["dp_noise_multiplier"], facts["dp_sample_rate"], facts["dp_steps"], facts["dp_delta"])
    assert facts["dp_epsilon_prv"] == prv == dp.epsilon_prv(1.0, q, facts["dp_steps"], facts["dp_delta"])
    assert 0 < facts["dp_epsilon_prv"] < math.inf
    assert run(config, store).provenance["mechanisms"] == facts  # stored and read back as is


def test_epsilon_falls_strictly_as_sigma_grows():
    eps = [dp.epsilon(sigma, 0.01, 1_000, 1e-5) for sigma in (0.5, 1, 2, 5, 10)]
    assert all(a > b > 0 for a, b in zip(eps, eps[1:])), eps
    assert dp.epsilon(1.0, 0.01, 0, 1e-5) == 0.0
    assert dp.epsilon(1.0, 0.01, 2_000, 1e-5) > dp.epsilon(1.0, 0.01, 1_000, 1e-5)  # more steps cost more
    with pytest.raises(ValueError, match="noise_multiplier"):
        dp.epsilon(0.0, 0.01, 10, 1e-5)


@pytest.mark.parametrize("sigma", [0.5, 1.0, 2.5, 10.0])
def test_prv_epsilon_is_opacus_prv_accountant_and_below_rdp(sigma):
    q, steps, delta = 128 / 4_000, 620, 1 / 40_000  # the quick profile's 20 epochs
    prv = dp.epsilon_prv(sigma, q, steps, delta)
    assert prv == fresh_prv_epsilon(sigma, q, steps, delta)
    assert 0 < prv < dp.epsilon(sigma, q, steps, delta)  # numerical composition is the tighter account


def test_prv_epsilon_of_zero_steps_and_bad_input():
    assert dp.epsilon_prv(1.0, 0.01, 0, 1e-5) == 0.0
    for args, name in [((0.0, 0.01, 10, 1e-5), "noise_multiplier"), ((1.0, 0.0, 10, 1e-5), "sample_rate"),
                       ((1.0, 0.01, -1, 1e-5), "steps"), ((1.0, 0.01, 10, 0.0), "delta")]:
        with pytest.raises(ValueError, match=name):
            dp.epsilon_prv(*args)


def test_prv_epsilon_is_nan_with_a_logged_reason_for_tiny_noise(caplog):
    q, steps, delta = 128 / 500, 6, 1 / 5_000  # the smoke profile; sigma = 0.01 needs a 4.8e7-point grid
    with caplog.at_level(logging.WARNING, logger="mia_utils.defenses.dp"):
        value = dp.epsilon_prv(0.01, q, steps, delta)
    assert math.isnan(value)
    assert "PRV epsilon is NaN for sigma_DP = 0.01" in caplog.text and "grid would have" in caplog.text
    assert math.isfinite(dp.epsilon(0.01, q, steps, delta))  # the RDP epsilon still exists
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="mia_utils.defenses.dp"):
        assert math.isnan(dp.epsilon_prv(1.0, q, steps, delta, max_grid=100))  # the limit is a parameter
        assert dp.epsilon_prv(1.0, q, steps, delta) == fresh_prv_epsilon(1.0, q, steps, delta)
    assert caplog.text.count("PRV epsilon is NaN") == 1


@pytest.mark.parametrize("error,reason", [(RuntimeError("Cannot compute epsilon"), "PRV accountant failed"),
                                          (RuntimeError("Discrete mean differs significantly from continuous mean."),
                                           "PRV accountant failed"),
                                          (ValueError("Floating point errors will dominate for such small values"),
                                           "PRV accountant failed"),
                                          (MemoryError("Unable to allocate 397. GiB"), "ran out of memory")])
def test_opacus_prv_failures_give_nan_with_their_reason(monkeypatch, caplog, error, reason):
    def failing(self, delta, **kwargs):
        raise error

    monkeypatch.setattr(PRVAccountant, "get_epsilon", failing)
    with caplog.at_level(logging.WARNING, logger="mia_utils.defenses.dp"):
        assert math.isnan(dp.epsilon_prv(1.0, 0.01, 100, 1e-5))
    assert reason in caplog.text and str(error)[:20] in caplog.text


def test_other_prv_errors_are_not_swallowed(monkeypatch):
    def failing(self, delta, **kwargs):
        raise RuntimeError("something unexpected")

    monkeypatch.setattr(PRVAccountant, "get_epsilon", failing)
    with pytest.raises(RuntimeError, match="something unexpected"):
        dp.epsilon_prv(1.0, 0.01, 100, 1e-5)


def dp_facts(sigma, q=128 / 500, steps=6, delta=1 / 5_000, **extra):
    return {"dp_epsilon": dp.epsilon(sigma, q, steps, delta), "dp_delta": delta, "dp_noise_multiplier": sigma,
            "dp_sample_rate": q, "dp_steps": steps, **extra}


def test_certified_epsilons_read_or_recompute_the_prv_epsilon():
    old_run = dp_facts(1.0)  # stored before the PRV epsilon was reported
    expected = {"rdp": old_run["dp_epsilon"], "prv": dp.epsilon_prv(1.0, 128 / 500, 6, 1 / 5_000), "prv_note": ""}
    assert dp.certified_epsilons(old_run) == expected
    assert dp.certified_epsilons({**old_run, "dp_epsilon_prv": 1.5})["prv"] == 1.5
    facts = dp_facts(0.01, dp_epsilon_prv=math.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no stray warning from Opacus' RDP bound for the grid check
        tiny = dp.certified_epsilons(facts)
    assert math.isnan(tiny["prv"]) and "grid would have" in tiny["prv_note"] and tiny["rdp"] > 1_000


def fake_outputs(seed, separation, n=200, classes=10):
    """Evaluation outputs: members' logits favour their label by ``separation`` more."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, classes, (2 * n,), generator=generator)
    is_member = torch.arange(2 * n) < n
    logits = torch.randn(2 * n, classes, generator=generator, dtype=torch.float64)
    logits[torch.arange(2 * n), labels] += 1.0 + separation * is_member
    return {"eval_logits": logits.float(), "eval_labels": labels, "eval_is_member": is_member}


def fake_setting(sigma, seeds, separation, delta=1 / 5_000):
    runs = [(SimpleNamespace(outputs=fake_outputs(seed, separation), config=SimpleNamespace(epochs=2)), None)
            for seed in seeds]
    return SimpleNamespace(value=sigma, seeds=tuple(seeds), facts=[dp_facts(sigma, delta=delta) for _ in seeds],
                           runs=lambda store=None: runs)


def test_empirical_epsilon_reads_the_loss_and_confidence_rocs():
    outputs = fake_outputs(0, separation=3.0)
    bounds = audit.empirical_epsilon(outputs, alpha=0.1, delta=1e-3)
    assert set(bounds) == set(audit.EMPIRICAL_SCORES) == {"loss", "confidence"}
    logits, labels, is_member = (outputs[k] for k in ("eval_logits", "eval_labels", "eval_is_member"))
    loss = F.cross_entropy(logits.double(), labels, reduction="none")
    assert bounds["loss"] == metrics.epsilon_lower_bound(-loss, is_member, alpha=0.1, delta=1e-3)
    confidence = logits.double().softmax(1).max(1).values
    assert bounds["confidence"] == metrics.epsilon_lower_bound(confidence, is_member, alpha=0.1, delta=1e-3)
    assert bounds["loss"].epsilon > 0.5  # members' losses are far lower


def test_epsilon_comparison_has_a_row_per_setting_and_seed():
    settings = [fake_setting(10.0, (0, 1), separation=0.0), fake_setting(0.01, (0, 1), separation=4.0),
                fake_setting(1.0, (0, 1), separation=1.0)]
    table = audit.epsilon_comparison(settings)
    assert list(table["sigma_dp"]) == [0.01, 0.01, 1.0, 1.0, 10.0, 10.0] and list(table["seed"]) == [0, 1] * 3
    assert {"epsilon_rdp", "epsilon_prv", "prv_note", "epsilon_empirical", "attack", "tpr", "fpr",
            "threshold", "delta"} <= set(table.columns)
    first = table.iloc[2]  # sigma 1, seed 0
    bounds = audit.empirical_epsilon(fake_outputs(0, 1.0), delta=1 / 5_000)
    assert first["epsilon_empirical"] == max(b.epsilon for b in bounds.values())
    assert first["attack"] in bounds and bounds[first["attack"]].epsilon == first["epsilon_empirical"]
    assert first["epsilon_rdp"] == dp.epsilon(1.0, 128 / 500, 6, 1 / 5_000)
    assert first["epsilon_prv"] == dp.epsilon_prv(1.0, 128 / 500, 6, 1 / 5_000) and first["prv_note"] == ""
    tiny = table[table["sigma_dp"] == 0.01]
    assert tiny["epsilon_prv"].isna().all() and tiny["prv_note"].str.contains("grid").all()
    # the certified bound is never below what the attack showed; the separated runs show the most
    assert (table["epsilon_empirical"] <= table["epsilon_rdp"]).all()
    means = table.groupby("sigma_dp")["epsilon_empirical"].mean()
    assert means[0.01] > means[1.0] > means[10.0] >= 0
    chance = table[table["epsilon_empirical"] == 0]  # no separation: no point to report
    assert len(chance) > 0 and (chance["attack"] == "none").all() and chance[["tpr", "fpr", "threshold"]].isna().all().all()
    shown = table[table["epsilon_empirical"] > 0]
    assert shown["attack"].isin(["loss", "confidence"]).all() and shown["tpr"].notna().all()


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
    assert all(torch.equal(a, b) for a, b in zip(again[0], epochs[0]))  # integer indices from seeded draws
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
    # bitwise on any CPU: the same configuration trained twice in one process (same shapes and threads)
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


def test_closest_accountant_compares_ratios_and_skips_missing_values():
    assert report.closest_accountant(100.0, {"RDP": 110.0, "PRV": 50.0}) == "RDP"
    assert report.closest_accountant(0.15, {"RDP": 0.152, "PRV": 0.098}) == "RDP"
    assert report.closest_accountant(1.0, {"RDP": 3.0, "PRV": 0.4}) == "PRV"  # log scale: 0.4 is nearer than 3
    assert report.closest_accountant(1.0, {"RDP": float("nan"), "PRV": 5.0}) == "PRV"
    assert report.closest_accountant(1.0, {"RDP": float("nan")}) == "none"


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_paper_epsilons_put_the_papers_figures_beside_both_accountants():
    from opacus.accountants import RDPAccountant

    frame = report.paper_epsilons()
    assert list(frame["sigma_dp"]) == [0.1, 0.25, 10.0] and list(frame["paper"]) == [3000.0, 200.0, 0.15]
    assert frame["rdp"].is_monotonic_decreasing  # more noise, smaller epsilon
    n, q = 60_000, 128 / 60_000
    accountant = RDPAccountant()
    accountant.history = [(10.0, q, int(1 / q) * 30)]
    assert frame["rdp"].iloc[2] == pytest.approx(accountant.get_epsilon(1 / (10 * n)))
    assert frame["prv"].iloc[2] < frame["rdp"].iloc[2]  # PRV is the tighter accountant
    assert frame["prv"].iloc[:2].isna().all()  # its grid would be too large at sigma 0.1 and 0.25
    assert set(frame["closest"]) <= {"RDP", "PRV", "none"}


def test_mean_epsilon_averages_the_seeds_stored_facts():
    from types import SimpleNamespace

    assert audit.mean_epsilon(SimpleNamespace(facts=[{"dp_epsilon": 1.0}, {"dp_epsilon": 3.0}])) == 2.0
    with pytest.raises(ValueError, match="setting: has no stored runs"):
        audit.mean_epsilon(SimpleNamespace(facts=[]))
