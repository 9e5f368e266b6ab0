import math
from types import SimpleNamespace

import pytest
import scipy.stats
import torch

import mia_utils.defenses.mmd  # noqa: F401  (registers mixup and mmd)
from mia_utils.data import DatasetInfo, gather, load_dataset, make_split
from mia_utils.defenses import REGISTRY, Mechanism, TrainingContext, build
from mia_utils.defenses.mmd import (MMD, Mixup, beta_quantile, classwise_mmd_squared, mix, mmd_squared,
                           validation_available, validation_indices, validation_set)
from mia_utils.models import build_model


def _kernel(a, b, sigma):
    return math.exp(-sum((ai - bi) ** 2 for ai, bi in zip(a, b)) / (2 * sigma ** 2))


def _mmd_by_loops(x, y, sigma, unbiased=False):
    x, y = x.tolist(), y.tolist()
    n, m = len(x), len(y)
    if unbiased:
        kxx = sum(_kernel(x[i], x[j], sigma) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
        kyy = sum(_kernel(y[i], y[j], sigma) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    else:
        kxx = sum(_kernel(a, b, sigma) for a in x for b in x) / n ** 2
        kyy = sum(_kernel(a, b, sigma) for a in y for b in y) / m ** 2
    kxy = sum(_kernel(a, b, sigma) for a in x for b in y) / (n * m)
    return kxx + kyy - 2 * kxy


# --- the estimator --------------------------------------------------------------------------------

def test_mmd_squared_matches_the_formula_by_loops():
    x = torch.tensor([[0.0, 1.0], [0.5, 0.5], [0.2, 0.8]], dtype=torch.float64)
    y = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.3, 0.7], [0.6, 0.4]], dtype=torch.float64)
    for sigma in (0.3, 1.0, 2.5):
        for unbiased in (False, True):
            got = mmd_squared(x, y, sigma, unbiased=unbiased).item()
            assert got == pytest.approx(_mmd_by_loops(x, y, sigma, unbiased), rel=1e-12, abs=1e-14)


def test_mmd_squared_is_zero_for_one_distribution_and_positive_for_shifted_ones():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(400, 5, generator=g, dtype=torch.float64).softmax(1)
    b = torch.randn(400, 5, generator=g, dtype=torch.float64).softmax(1)
    shifted = (torch.randn(400, 5, generator=g, dtype=torch.float64) + torch.tensor([2.0, 0, 0, 0, 0],
                                                                                   dtype=torch.float64)).softmax(1)
    same, different = mmd_squared(a, b).item(), mmd_squared(a, shifted).item()
    assert 0 <= same < 2e-3
    assert different > 0.02 and different > 20 * same
    unbiased_same = mmd_squared(a, b, unbiased=True).item()
    assert abs(unbiased_same) < 1e-3  # expectation 0, may be slightly negative
    assert mmd_squared(a, shifted, unbiased=True).item() > 0.02


def test_biased_mmd_is_exactly_zero_for_identical_sets_and_has_finite_gradients():
    x = torch.tensor([[0.2, 0.8], [0.5, 0.5], [0.5, 0.5]], requires_grad=True)
    value = mmd_squared(x, x.detach().clone())
    assert value.item() == pytest.approx(0.0, abs=1e-7)
    value.backward()
    assert torch.isfinite(x.grad).all()
    with pytest.raises(ValueError, match="at least 2"):
        mmd_squared(x[:1], x, unbiased=True)


def test_classwise_mmd_is_the_frequency_weighted_sum_of_per_class_mmds():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64).softmax(1)
    y = torch.randn(12, 4, generator=g, dtype=torch.float64).softmax(1)
    labels = torch.tensor([0, 2, 2, 1, 0, 2, 3, 3, 2, 0, 1, 2])
    expected = sum((labels == c).sum().item() / 12 * _mmd_by_loops(x[labels == c], y[labels == c], 0.7)
                   for c in labels.unique().tolist())
    assert classwise_mmd_squared(x, y, labels, 0.7).item() == pytest.approx(expected, rel=1e-12)


# --- mix-up ---------------------------------------------------------------------------------------

def test_beta_quantile_samples_follow_the_beta_distribution():
    g = torch.Generator().manual_seed(2)
    for alpha in (0.2, 1.0, 5.0):
        lams = [beta_quantile(torch.rand((), generator=g, dtype=torch.float64).item(), alpha) for _ in range(400)]
        assert scipy.stats.kstest(lams, "beta", args=(alpha, alpha)).pvalue > 1e-3


def test_mixup_mixes_convexly_and_deterministically():
    g = torch.Generator().manual_seed(3)
    images = torch.rand(16, 1, 28, 28, generator=g)
    targets = torch.nn.functional.one_hot(torch.randint(0, 10, (16,), generator=g), 10).float()
    targets = 0.9 * targets + 0.01  # soft targets still summing to 1
    lams = []
    for seed in range(50):
        out_images, out_targets, lam, perm = mix(images, targets, 1.0, torch.Generator().manual_seed(seed))
        lams.append(lam)
        assert 0.0 <= lam <= 1.0
        assert sorted(perm.tolist()) == list(range(16))
        assert torch.allclose(out_images, lam * images + (1 - lam) * images[perm], atol=1e-6)
        assert torch.allclose(out_targets, lam * targets + (1 - lam) * targets[perm], atol=1e-6)
        assert out_images.min() >= 0 and out_images.max() <= 1
        assert torch.allclose(out_targets.sum(1), torch.ones(16), atol=1e-5) and (out_targets >= 0).all()
    assert len(set(lams)) == 50
    mechanism = Mixup(1.0)
    a = mechanism.transform(images, targets, torch.arange(16), torch.Generator().manual_seed(7))
    b = mechanism.transform(images, targets, torch.arange(16), torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])  # the same seeded draw and arithmetic, twice


def test_small_alpha_rarely_mixes_and_large_alpha_mixes_evenly():
    images, targets = torch.rand(4, 1, 2, 2), torch.eye(4)
    small = torch.tensor([mix(images, targets, 0.01, torch.Generator().manual_seed(s))[2] for s in range(200)])
    assert ((small < 0.01) | (small > 0.99)).float().mean() > 0.8
    large = torch.tensor([mix(images, targets, 10.0, torch.Generator().manual_seed(s))[2] for s in range(200)])
    assert abs(large.mean().item() - 0.5) < 0.05 and ((large > 0.2) & (large < 0.8)).all()


# --- the validation set ---------------------------------------------------------------------------

def test_validation_set_avoids_members_and_the_attack_sets():
    info = DatasetInfo("toy", "toy", (1, 2, 2), 3, n_train=100, n_test=50)
    split = make_split(info, n_members=80, n_eval=10, n_adversary=10, seed=0)
    forbidden = set(split.members.tolist()) | {100 + i for i in split.eval_nonmembers.tolist()} \
        | {100 + i for i in split.adv_nonmembers.tolist()}
    assert validation_available(info, split) == 20 + 30
    few = validation_indices(info, split, 15, seed=1)
    assert len(few) == 15 and (few < 100).all()  # training non-members first
    more = validation_indices(info, split, 35, seed=1)
    assert len(set(more.tolist())) == 35 and not forbidden & set(more.tolist())
    assert (more < 100).sum() == 20 and (more >= 100).sum() == 15  # then unused test images
    assert torch.equal(more, validation_indices(info, split, 35, seed=1))  # integer indices, seeded
    assert not torch.equal(more, validation_indices(info, split, 35, seed=2))
    with pytest.raises(ValueError, match=r"asked for 51 images, but only 50 are free.*80 members.*10 evaluation"):
        validation_indices(info, split, 51, seed=1)


def test_run_validation_set_is_disjoint_from_training_and_attack_images(tiny_config):
    from mia_utils.data import training_indices

    data = load_dataset("fmnist")
    for config in (tiny_config, tiny_config.shadow(1, 4)):
        split = make_split(data.info, config.n_members, config.n_eval, config.n_adversary, config.split_seed)
        images, labels = validation_set(config, data)
        assert images.shape == (config.n_members, 1, 28, 28) and images.dtype == torch.float32
        assert 0 <= images.min() and images.max() <= 1
        index = validation_indices(data.info, split, config.n_members, config.split_seed + 17,
                                   training_indices(config, data.info, split) if config.is_shadow else None)
        assert torch.equal(labels, gather(data, index)[1])  # integer labels
        forbidden = torch.cat([split.members, data.info.n_train + split.eval_nonmembers,
                               data.info.n_train + split.adv_nonmembers, training_indices(config, data.info, split)])
        assert not torch.isin(index, forbidden).any()


def _context(labels, validation_labels, num_classes=4, dim=3):
    validation = (torch.rand(len(validation_labels), dim), validation_labels)
    config = SimpleNamespace(mechanisms=(("mmd", 1.0),), training_seed=lambda: 0)
    return TrainingContext(config, torch.rand(len(labels), dim), labels, num_classes, torch.device("cpu"),
                           validation=validation)


def test_class_matched_draws_have_the_batch_classes():
    mechanism = MMD(1.0)
    validation_labels = torch.tensor([2, 0, 1, 0, 2, 2, 1, 0, 0])  # class 3 has no validation image
    mechanism.prepare(_context(torch.zeros(5, dtype=torch.long), validation_labels))
    labels = torch.tensor([0, 0, 2, 1, 3, 2, 0, 1, 1, 0])
    drawn = []
    for _ in range(30):
        positions, usable = mechanism.draw_validation(labels)
        assert torch.equal(usable, labels != 3)  # booleans and integer labels: bitwise on any CPU
        assert torch.equal(mechanism.validation_labels[positions], labels[usable])
        drawn.append(positions)
    assert len(torch.cat(drawn).unique()) == len(validation_labels)  # every validation image gets used


# --- the regularizer in training ------------------------------------------------------------------

def test_mmd_loss_uses_the_unmixed_batch_and_has_a_gradient():
    torch.manual_seed(0)
    model = build_model("fmnist", width=0.25)
    g = torch.Generator().manual_seed(4)
    images, labels = torch.rand(20, 1, 28, 28, generator=g), torch.arange(20) % 4
    context = TrainingContext(SimpleNamespace(mechanisms=(("mixup", 1.0), ("mmd", 5.0)), training_seed=lambda: 0),
                              images, labels, 10, torch.device("cpu"),
                              validation=(torch.rand(12, 1, 28, 28, generator=g), torch.arange(12) % 4))
    mechanisms = build([("mixup", 1.0), ("mmd", 5.0)])
    assert [m.name for m in mechanisms] == ["mmd", "mixup"]  # MMD keeps the batch before mixing
    mmd = mechanisms[0]
    mmd.prepare(context)
    batch = torch.tensor([3, 1, 4, 15, 9, 2, 6, 5])
    inputs, targets = images[batch], torch.nn.functional.one_hot(labels[batch], 10).float()
    for mechanism in mechanisms:
        inputs, targets = mechanism.transform(inputs, targets, batch, torch.Generator().manual_seed(5))
    assert not torch.equal(inputs, images[batch])
    model.eval()  # no dropout here, but be explicit: the same weights give the same outputs
    generator_state = mmd.generator.get_state()
    loss = mmd.extra_loss(model, model(inputs), inputs, targets)
    # the same term, computed directly from the clean images and the true labels
    mmd.generator.set_state(generator_state)
    positions, usable = mmd.draw_validation(labels[batch])
    assert usable.all()
    expected = 5.0 * classwise_mmd_squared(model(images[batch]).softmax(1),
                                           model(mmd.validation_images[positions]).softmax(1), labels[batch])
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    model.zero_grad()
    loss.backward()
    assert sum(p.grad.abs().sum().item() for p in model.parameters() if p.grad is not None) > 0
    assert MMD(0.0).extra_loss(model, None, None, None) is None


def test_mixup_and_mmd_refuse_mechanisms_that_wrap_the_model():
    """A mechanism that wraps the model for per-example clipping declares what it excludes, and a
    configuration listing both is refused when it is built, before anything trains."""
    from mia_utils.config import ConfigError, RunConfig

    class Wrapping(Mechanism):
        name, low, high = "test_wrapping", 0.0, 10.0
        excludes = {"mixup": "per-example clipping", "mmd": "per-example clipping"}

        def wrap(self, model, optimizer, context):
            return model, optimizer

    REGISTRY[Wrapping.name] = Wrapping
    try:
        for other in ("mixup", "mmd"):
            with pytest.raises(ConfigError, match=f"{other} cannot be combined with test_wrapping|"
                                                  f"test_wrapping cannot be combined with {other}"):
                RunConfig(mechanisms=((other, 1.0), ("test_wrapping", 1.0)))
        for mechanism in (Mixup, MMD):  # and DP-SGD, the package's own wrapper, is declared
            assert "dp_sgd" in mechanism.excludes
    finally:
        del REGISTRY[Wrapping.name]


def test_run_with_mixup_and_mmd_is_deterministic(tiny_config, tmp_path):
    from mia_utils.experiment import run
    from mia_utils.store import ResultStore

    config = tiny_config.replace(n_members=128, n_eval=20, n_adversary=20, snapshot_epochs=())
    config = config.with_mechanisms(mixup=1.0, mmd=1.0)
    first = run(config, ResultStore(tmp_path / "a"), progress=False)
    second = run(config, ResultStore(tmp_path / "b"), progress=False)
    assert not first.from_store and not second.from_store
    for name, tensor in first._tensors["weights"].items():  # the same run twice in one process: bitwise
        assert torch.equal(tensor, second._tensors["weights"][name]), name
    assert first.provenance["mechanisms"] == {"mmd_validation_size": config.n_members, "mmd_bandwidth": 1.0}
    assert 0 <= first.metrics["train_acc"] <= 1


def test_mmd_zero_trains_exactly_the_baseline(tiny_config):
    from mia_utils.train import train

    data = load_dataset("fmnist")
    config = tiny_config.replace(n_members=64, n_eval=20, n_adversary=20, batch_size=32, snapshot_epochs=())
    baseline = train(config, data, progress=False).state_dict
    zero = train(config.with_mechanisms(mmd=0.0), data, progress=False).state_dict
    # bitwise on any CPU: with a weight of 0 the term is skipped, so the same kernels run on the same batches
    assert all(torch.equal(baseline[name], zero[name]) for name in baseline)


def test_the_mmd_term_pulls_training_outputs_towards_validation_outputs(tiny_config):
    from mia_utils.models import predict_logits
    from mia_utils.train import train

    data = load_dataset("fmnist")
    # 64 members, 3 epochs of 4 steps at a high learning rate: enough to overfit a little
    config = tiny_config.replace(n_members=64, n_eval=20, n_adversary=20, epochs=3, lr=3e-3, batch_size=16,
                                 snapshot_epochs=())
    split = make_split(data.info, config.n_members, config.n_eval, config.n_adversary, config.split_seed)
    member_images, member_labels = gather(data, split.members)
    validation_images, validation_labels = validation_set(config, data)

    def discrepancy(lam):
        c = config.with_mechanisms(mmd=lam)
        model = build_model(c.dataset, **c.model_options())
        model.load_state_dict(train(c, data, progress=False).state_dict)
        train_probs = predict_logits(model, member_images).softmax(1)
        validation_probs = predict_logits(model, validation_images).softmax(1)
        return sum((member_labels == k).float().mean().item()
                   * mmd_squared(train_probs[member_labels == k], validation_probs[validation_labels == k]).item()
                   for k in range(10))

    without, with_mmd = discrepancy(0.0), discrepancy(100.0)
    assert with_mmd < without / 3, (without, with_mmd)  # about 11x smaller here; 6-11x over seeds 0-3


def _gated(gap_points, epoch=1, epochs=3, lam=5.0):
    """A GatedMMD prepared on a tiny linear model whose training and validation accuracies differ
    by about ``gap_points`` (labels chosen so that the model, which predicts class 0 for every
    input, is right on that share of each set)."""
    from mia_utils.defenses.mmd import GatedMMD

    torch.manual_seed(0)
    n = 100
    right_train = round(n * (0.5 + gap_points / 100))
    train_labels = torch.tensor([0] * right_train + [1] * (n - right_train))
    validation_labels = torch.tensor([0] * 50 + [1] * 50)
    model = torch.nn.Linear(4, 2)
    with torch.no_grad():
        model.weight.mul_(0.5)  # outputs vary with the input, so MMD^2 has a gradient
        model.bias.copy_(torch.tensor([5.0, 0.0]))  # but class 0 wins for every input
    config = SimpleNamespace(mechanisms=(("mmd_gated", lam),), training_seed=lambda: 0, batch_size=32)
    context = TrainingContext(config, torch.rand(n, 4), train_labels, 2, torch.device("cpu"),
                              validation=(torch.rand(100, 4), validation_labels))
    mechanism = GatedMMD(lam)
    mechanism.prepare(context)
    return mechanism, model, torch.optim.SGD(model.parameters(), lr=0.5)


def test_gated_mmd_runs_its_pass_only_while_the_gap_lasts_and_never_in_the_last_epoch():
    for gap, epoch, passes in ((10.0, 1, 1), (2.0, 1, 0), (10.0, 3, 0)):
        mechanism, model, optimizer = _gated(gap, epoch)
        before = [p.detach().clone() for p in model.parameters()]
        mechanism.after_epoch(model, optimizer, epoch, 3)
        changed = any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
        assert mechanism.passes == passes and changed == bool(passes), (gap, epoch)
        assert mechanism.gaps == [pytest.approx(gap, abs=1.0)]
        assert model.training  # the mode it found
    # no per-step term: the regularizer lives in the pass only
    assert mechanism.extra_loss(model, torch.zeros(2, 2), None, None) is None
    assert mechanism.report()["mmd_gated_passes"] == 0


def test_gated_mmd_trains_alone_and_reports_its_passes(tiny_config):
    from mia_utils.train import lockstep_key, train

    data = load_dataset("fmnist")
    config = tiny_config.replace(n_members=64, n_eval=20, n_adversary=20, epochs=3, lr=3e-3, batch_size=16,
                                 snapshot_epochs=()).with_mechanisms(mixup=1.0, mmd_gated=1.0)
    assert lockstep_key(config) is None and lockstep_key(config.replace(mechanisms=(("mixup", 1.0),))) is not None
    first = train(config, data, progress=False)
    facts = first.mechanism_facts
    assert len(facts["mmd_gated_gaps"]) == 3 and 0 <= facts["mmd_gated_passes"] <= 2
    again = train(config, data, progress=False)  # deterministic, pass included: bitwise in one process
    assert all(torch.equal(first.state_dict[k], again.state_dict[k]) for k in first.state_dict)
