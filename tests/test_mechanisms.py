"""Tests of mia_utils.defenses: each regularization mechanism against its definition on tiny
hand-made cases, their composition and validation, and a few short training runs (label
transforms, input perturbations, dropout, weight decay, early stopping via snapshots, and the
rule that the attacker only ever sees the original data)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mia_utils import experiment
from mia_utils.config import ConfigError, RunConfig
from mia_utils.data import load_dataset, make_split
from mia_utils.defenses import (MECHANISM_ORDER, REGISTRY, Distillation, GaussianNoise, LabelSmoothing,
                                  RandomCrop, TrainingContext, WeightDecay, add_gaussian_noise, build,
                                  check_mechanisms, random_crop, smooth, soft_labels)
from mia_utils.models import build_model
from mia_utils.book.report import published
from mia_utils.models import predict_logits
from mia_utils.train import train
from rounding import assert_equal_up_to_rounding

CPU = torch.device("cpu")

# torch.equal below compares exact values (dyadic numbers, copies, indexing, seeded draws,
# argmaxes far from a tie) or the same computation repeated in one process with the same shapes:
# bitwise on any CPU. The one comparison across batch shapes is up to rounding.


@pytest.fixture(autouse=True)
def one_thread():
    """Train on one thread: on the shared 2-core machine two threads per process oversubscribe the
    CPU and run about twice as slowly. Comparisons are always within one test, so same setting."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture
def quick(tiny_config):
    """``tiny_config`` without per-epoch snapshots (each one costs a pass over the test set)."""
    return tiny_config.replace(snapshot_epochs=())


def generator(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def entropy(p: torch.Tensor) -> torch.Tensor:
    """Row-wise Shannon entropy in nats (double precision)."""
    p = p.double()
    return -(p * p.clamp_min(1e-300).log()).sum(1)


# =========================================================================== label smoothing


def test_smooth_hand_case_exact():
    # alpha and 1/K are dyadic, so every number below is exact in float32.
    onehot = F.one_hot(torch.tensor([0, 2, 3]), 4).float()
    expected = torch.tensor([[0.625, 0.125, 0.125, 0.125],
                             [0.125, 0.125, 0.625, 0.125],
                             [0.125, 0.125, 0.125, 0.625]])
    out = smooth(onehot, 0.5)
    assert torch.equal(out, expected)
    assert torch.equal(out.sum(1), torch.ones(3))
    # (1 - alpha) * onehot + alpha / K with alpha = 0.25, K = 8
    onehot8 = F.one_hot(torch.tensor([5]), 8).float()
    expected8 = torch.full((1, 8), 0.03125)
    expected8[0, 5] = 0.78125
    assert torch.equal(smooth(onehot8, 0.25), expected8)


@pytest.mark.parametrize("alpha", [0.01, 0.1, 0.3, 0.99])
def test_smooth_matches_formula_and_sums_to_one(alpha):
    labels = torch.tensor([0, 1, 9, 4, 4, 7])
    onehot = F.one_hot(labels, 10).float()
    out = smooth(onehot, alpha)
    assert torch.allclose(out, (1 - alpha) * onehot + alpha / 10, atol=1e-7, rtol=0)
    assert torch.allclose(out.sum(1), torch.ones(len(labels)), atol=1e-6, rtol=0)
    assert (out > 0).all()
    # the true class keeps the largest share
    assert torch.equal(out.argmax(1), labels)


def test_smooth_of_soft_targets_keeps_rows_summing_to_one():
    soft = torch.tensor([[0.5, 0.25, 0.25, 0.0]])
    assert torch.equal(smooth(soft, 0.5), torch.tensor([[0.375, 0.25, 0.25, 0.125]]))


def test_label_smoothing_transform_leaves_images_and_smooths_targets():
    images = torch.rand(3, 1, 4, 4)
    onehot = F.one_hot(torch.tensor([0, 2, 3]), 4).float()
    out_images, out_targets = LabelSmoothing(0.5).transform(images, onehot, torch.arange(3), generator())
    assert out_images is images
    assert torch.equal(out_targets, smooth(onehot, 0.5))
    assert torch.equal(out_targets[1], torch.tensor([0.125, 0.125, 0.625, 0.125]))


# =========================================================================== distillation


def test_soft_labels_hand_case():
    # logits / 2 = (0, ln 2, ln 3) -> softmax = (1, 2, 3) / 6
    logits = torch.tensor([[0.0, 2 * math.log(2), 2 * math.log(3)]])
    out = soft_labels(logits, 2.0)
    assert out.dtype == torch.float32
    assert torch.allclose(out, torch.tensor([[1 / 6, 2 / 6, 3 / 6]]), atol=1e-7, rtol=0)
    # T = 1 is the plain softmax
    logits = torch.tensor([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    assert torch.allclose(soft_labels(logits, 1.0), logits.softmax(1), atol=1e-7, rtol=0)
    assert torch.allclose(soft_labels(logits, 1.0)[1], torch.full((3,), 1 / 3), atol=1e-7, rtol=0)


@pytest.mark.parametrize("temperature", [1.0, 3.0, 20.0, 100.0])
def test_soft_labels_rows_sum_to_one_and_match_softmax(temperature):
    logits = torch.randn(32, 10, generator=generator(1)) * 8
    out = soft_labels(logits, temperature)
    assert out.shape == (32, 10)
    assert torch.allclose(out.sum(1), torch.ones(32), atol=1e-6, rtol=0)
    assert torch.allclose(out, (logits / temperature).softmax(1), atol=1e-6, rtol=0)
    assert (out >= 0).all()


def test_soft_labels_flatten_as_temperature_grows():
    logits = torch.tensor([[3.0, 1.0, 0.0, -2.0], [0.0, 0.0, 5.0, 1.0], [10.0, -10.0, 0.0, 2.0]])
    temperatures = [1, 2, 5, 50]
    entropies = torch.stack([entropy(soft_labels(logits, t)) for t in temperatures])  # (T, rows)
    maxima = torch.stack([soft_labels(logits, t).max(1).values for t in temperatures])
    assert (entropies[1:] > entropies[:-1]).all(), entropies
    assert (maxima[1:] < maxima[:-1]).all(), maxima
    assert (entropies <= math.log(4) + 1e-9).all()
    # the argmax (the teacher's prediction) does not change with T
    for t in temperatures:
        assert torch.equal(soft_labels(logits, t).argmax(1), logits.argmax(1))


class FakeTeacher:
    """A ``teacher_logits`` callback that counts its calls and remembers the configurations."""

    def __init__(self, logits: torch.Tensor):
        self.logits = logits
        self.configs = []

    def __call__(self, config):
        self.configs.append(config)
        return self.logits


def test_distillation_prepare_uses_the_baseline_teacher_once_and_transform_indexes(tiny_config):
    config = tiny_config.with_mechanisms(distillation=4.0, label_smoothing=0.1, random_crop=2)
    n, k = 12, 10
    teacher = FakeTeacher(torch.randn(n, k, generator=generator(2)) * 5)
    context = TrainingContext(config, torch.rand(n, 1, 28, 28), torch.arange(n) % k, k, CPU, teacher)
    mechanism = Distillation(4.0)
    mechanism.prepare(context)
    assert len(teacher.configs) == 1
    # the same configuration stripped of its mechanisms (snapshots are not part of a run's key)
    assert teacher.configs[0].mechanisms == ()
    assert teacher.configs[0].key() == config.replace(mechanisms=()).key() == tiny_config.key()

    images = torch.rand(3, 1, 28, 28)
    indices = torch.tensor([7, 0, 11])
    one_hot = F.one_hot(context.labels[indices], k).float()
    out_images, out_targets = mechanism.transform(images, one_hot, indices, generator())
    assert out_images is images
    assert torch.equal(out_targets, soft_labels(teacher.logits, 4.0)[indices])  # the same table, indexed
    assert torch.allclose(out_targets, (teacher.logits[indices] / 4.0).softmax(1), atol=1e-6, rtol=0)
    # transform does not call the teacher again
    mechanism.transform(images, one_hot, indices, generator())
    assert len(teacher.configs) == 1


def test_distillation_without_teacher_is_an_error(tiny_config):
    context = TrainingContext(tiny_config, torch.rand(2, 1, 28, 28), torch.tensor([0, 1]), 10, CPU, None)
    with pytest.raises(RuntimeError, match="teacher"):
        Distillation(2.0).prepare(context)


def test_training_calls_the_teacher_exactly_once_per_run(quick):
    config = quick.replace(epochs=2).with_mechanisms(distillation=3.0)
    teacher = FakeTeacher(torch.randn(config.n_members, 10, generator=generator(3)))
    result = train(config, load_dataset("fmnist"), progress=False, device=CPU, teacher_logits=teacher)
    assert len(result.history) == 2
    assert len(teacher.configs) == 1
    assert teacher.configs[0].mechanisms == ()
    assert teacher.configs[0].key() == config.replace(mechanisms=()).key()


# =========================================================================== Gaussian noise


def test_gaussian_noise_has_the_right_mean_and_std():
    clean = torch.full((10, 1, 100, 100), 0.5)  # 10^5 pixels, 5 sigma from either clamp
    noisy = add_gaussian_noise(clean, 0.1, generator(0))
    delta = (noisy - clean).double()
    assert noisy.shape == clean.shape and noisy.dtype == clean.dtype
    assert abs(delta.std().item() - 0.1) < 0.002  # within 2 % of sigma
    assert abs(delta.mean().item()) < 0.002  # standard error is 3e-4
    assert torch.equal(clean, torch.full_like(clean, 0.5))  # input untouched


def test_gaussian_noise_stays_in_unit_interval():
    for value in (0.0, 1.0):
        clean = torch.full((4, 3, 16, 16), value)
        noisy = add_gaussian_noise(clean, 5.0, generator(1))
        assert noisy.min() >= 0 and noisy.max() <= 1
        # large sigma: most pixels leave [0, 1] and are clamped to its ends, but not all stay put
        assert ((noisy == 0) | (noisy == 1)).float().mean() > 0.8
        assert (noisy != value).any()
    mixed = torch.rand(8, 1, 28, 28, generator=generator(2))
    noisy = add_gaussian_noise(mixed, 0.25, generator(3))
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_unclamped_gaussian_noise_keeps_both_halves_of_the_noise():
    black = torch.zeros(4, 1, 28, 28)  # Fashion-MNIST's background
    clamped = REGISTRY["gaussian_noise"](0.2).transform(black, None, None, generator(5))[0]
    unclamped = REGISTRY["gaussian_noise_unclamped"](0.2).transform(black, None, None, generator(5))[0]
    assert clamped.min() == 0 and (clamped == 0).float().mean() > 0.45  # the negative half is cut off
    assert torch.equal(clamped, unclamped.clamp(0, 1))  # the same draw, clamped or not
    assert unclamped.min() < -0.4 and abs(unclamped.mean().item()) < 0.01
    assert abs(clamped.mean().item() - 0.2 / math.sqrt(2 * math.pi)) < 0.005  # E[max(0, X)] = sigma / sqrt(2 pi)


def test_gaussian_noise_is_reproducible_with_a_seeded_generator():
    clean = torch.rand(5, 1, 28, 28, generator=generator(4))
    a = add_gaussian_noise(clean, 0.1, generator(7))
    b = add_gaussian_noise(clean, 0.1, generator(7))
    c = add_gaussian_noise(clean, 0.1, generator(8))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # the generator advances: a second draw from the same generator differs
    g = generator(7)
    assert not torch.equal(add_gaussian_noise(clean, 0.1, g), add_gaussian_noise(clean, 0.1, g))


def test_gaussian_noise_transform_keeps_targets():
    images = torch.full((2, 1, 8, 8), 0.5)
    targets = torch.eye(10)[:2]
    out_images, out_targets = GaussianNoise(0.1).transform(images, targets, torch.arange(2), generator(5))
    assert out_targets is targets
    assert torch.equal(out_images, add_gaussian_noise(images, 0.1, generator(5)))


# =========================================================================== random crop


def shifted(image: torch.Tensor, sy: int, sx: int) -> torch.Tensor:
    """``image`` (C, H, W) with its content moved down by sy and right by sx (negative: up /
    left); pixels uncovered by the move are 0."""
    out = torch.zeros_like(image)
    h, w = image.shape[-2:]
    out[:, max(sy, 0): h + min(sy, 0), max(sx, 0): w + min(sx, 0)] = \
        image[:, max(-sy, 0): h + min(-sy, 0), max(-sx, 0): w + min(-sx, 0)]
    return out


def shifts_matching(output: torch.Tensor, image: torch.Tensor, c: int) -> list[tuple[int, int]]:
    return [(sy, sx) for sy in range(-c, c + 1) for sx in range(-c, c + 1)
            if torch.equal(output, shifted(image, sy, sx))]


def reference_crop(images: torch.Tensor, padding: int, gen: torch.Generator) -> torch.Tensor:
    """Per image: zero-pad by ``padding`` and slice at (dy, dx), drawing dy then dx like the
    vectorised version."""
    n, _, h, w = images.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=gen)
    out = []
    for i in range(n):
        padded = F.pad(images[i], (padding, padding, padding, padding))
        out.append(padded[:, dy[i]: dy[i] + h, dx[i]: dx[i] + w])
    return torch.stack(out)


def test_shifted_helper():
    image = torch.arange(1.0, 10.0).view(1, 3, 3)
    assert torch.equal(shifted(image, 1, 0), torch.tensor([[[0.0, 0, 0], [1, 2, 3], [4, 5, 6]]]))
    assert torch.equal(shifted(image, 0, -1), torch.tensor([[[2.0, 3, 0], [5, 6, 0], [8, 9, 0]]]))
    assert torch.equal(shifted(image, 0, 0), image)


def test_random_crop_moves_a_single_pixel_by_at_most_c_and_covers_every_shift():
    c, n = 3, 2000
    image = torch.zeros(1, 9, 9)
    image[0, 4, 4] = 1.0
    out = random_crop(image.expand(n, 1, 9, 9).contiguous(), c, generator(0))
    assert out.shape == (n, 1, 9, 9)
    # exactly one bright pixel survives (the centre never leaves a 9x9 image for c = 3)
    assert torch.equal(out.sum((1, 2, 3)), torch.ones(n))
    assert torch.equal((out != 0).sum((1, 2, 3)), torch.ones(n, dtype=torch.long))
    position = out.view(n, -1).argmax(1)
    sy, sx = position // 9 - 4, position % 9 - 4
    assert sy.abs().max() <= c and sx.abs().max() <= c
    seen = set(zip(sy.tolist(), sx.tolist()))
    assert seen == {(a, b) for a in range(-c, c + 1) for b in range(-c, c + 1)}


def test_random_crop_of_a_ramp_is_a_shift_with_zero_fill():
    c = 2
    image = torch.arange(1.0, 1.0 + 2 * 6 * 7).view(2, 6, 7) / 100  # two channels, distinct non-zero values
    images = image.expand(64, 2, 6, 7).contiguous()
    out = random_crop(images, c, generator(1))
    assert out.shape == images.shape and out.dtype == images.dtype
    observed = set()
    for i in range(len(out)):
        matches = shifts_matching(out[i], image, c)
        assert len(matches) == 1, (i, matches)  # exactly one shift, channels moved together
        observed.add(matches[0])
    assert len(observed) > 10  # offsets are independent per image
    assert torch.equal(images, image.expand(64, 2, 6, 7))  # input untouched


def test_random_crop_padding_zero_is_the_identity():
    images = torch.rand(4, 3, 8, 8, generator=generator(2))
    assert torch.equal(random_crop(images, 0, generator(3)), images)
    out_images, _ = RandomCrop(0).transform(images, torch.eye(4), torch.arange(4), generator(3))
    assert torch.equal(out_images, images)


@pytest.mark.parametrize("padding", [1, 3, 8])
def test_random_crop_matches_a_per_image_pad_and_slice_reference(padding):
    images = torch.rand(32, 3, 8, 10, generator=generator(padding))  # non-square: H and W not swapped
    out = random_crop(images, padding, generator(100 + padding))
    expected = reference_crop(images, padding, generator(100 + padding))
    assert out.shape == images.shape
    assert torch.equal(out, expected)


def test_random_crop_transform_uses_an_integer_padding_and_keeps_targets():
    images = torch.rand(6, 1, 10, 10, generator=generator(4))
    targets = torch.eye(10)[:6]
    out_images, out_targets = RandomCrop(2.0).transform(images, targets, torch.arange(6), generator(5))
    assert out_targets is targets
    assert torch.equal(out_images, reference_crop(images, 2, generator(5)))


# =========================================================================== dropout / spatial dropout


def test_dropout_model_has_dropout_layers_and_is_random_only_in_training():
    config = RunConfig(width=0.25).with_mechanisms(dropout=0.5)
    assert config.model_options()["dropout"] == 0.5
    model = build_model(config.dataset, **config.model_options())
    dropouts = [m for m in model.modules() if isinstance(m, nn.Dropout)]
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    assert len(dropouts) == len(convs) == 2  # the authors' Fashion-MNIST network has two convolutions
    assert all(m.p == 0.5 for m in dropouts)
    assert not any(isinstance(m, nn.Dropout2d) for m in model.modules())
    x = torch.rand(4, 1, 28, 28, generator=generator(0))
    torch.manual_seed(0)
    with torch.no_grad():
        model.eval()
        assert torch.equal(model(x), model(x))
        model.train()
        assert not torch.equal(model(x), model(x))
    # without the mechanism there is no dropout at all
    plain = build_model("fmnist", **RunConfig(width=0.25).model_options())
    assert not any(isinstance(m, nn.Dropout | nn.Dropout2d) for m in plain.modules())


def test_spatial_dropout_zeroes_whole_channels():
    config = RunConfig(width=0.25).with_mechanisms(spatial_dropout=0.5)
    assert config.model_options()["spatial_dropout"] == 0.5
    model = build_model(config.dataset, **config.model_options())
    spatial = [m for m in model.modules() if isinstance(m, nn.Dropout2d)]
    assert len(spatial) == 2 and all(m.p == 0.5 for m in spatial)
    captured = {}
    hook = spatial[0].register_forward_hook(
        lambda module, inputs, output: captured.update(input=inputs[0].clone(), output=output.clone()))
    x = torch.rand(8, 1, 28, 28, generator=generator(1))
    torch.manual_seed(1)
    with torch.no_grad():
        model.train()(x)
        hook.remove()
    inp, out = captured["input"], captured["output"]  # (8, channels, 28, 28)
    assert inp.shape == out.shape and inp.dim() == 4
    dropped = (out == 0).flatten(2).all(2)  # (N, C): whole channel zero
    kept_scaled = torch.isclose(out, inp * 2.0, rtol=1e-6, atol=0).flatten(2).all(2)
    # every channel is either zeroed as a whole or kept whole (scaled by 1 / (1 - q))
    assert (dropped | kept_scaled).all()
    live = inp.flatten(2).abs().amax(2) > 0
    assert (dropped & live).any()  # some channels with content were dropped
    assert (~dropped & live).any()  # and some kept
    # the same module in eval mode is the identity
    with torch.no_grad():
        assert torch.equal(spatial[0].eval()(inp), inp)


def test_spatial_dropout_module_directly():
    torch.manual_seed(2)
    module = nn.Dropout2d(0.5).train()
    out = module(torch.ones(16, 8, 5, 5))
    per_channel = out.flatten(2)
    assert ((per_channel == 0).all(2) | (per_channel == 2).all(2)).all()
    assert (per_channel == 0).all(2).any() and (per_channel == 2).all(2).any()


# =========================================================================== weight decay


def test_weight_decay_optimizer_options():
    assert WeightDecay(0.01).optimizer_options() == {"weight_decay": 0.01}
    assert WeightDecay(0.01).model_options() == {}


def test_weight_decay_shrinks_the_weights(quick):
    data = load_dataset("fmnist")

    def weight_norm(config):
        state = train(config, data, progress=False, device=CPU).state_dict
        return math.sqrt(sum(v.double().pow(2).sum().item() for k, v in state.items() if k.endswith("weight")))

    plain = weight_norm(quick)
    decayed = weight_norm(quick.with_mechanisms(weight_decay=0.5))
    assert decayed < plain, (decayed, plain)


# =========================================================================== early stopping


def test_early_stopping_snapshot_equals_a_run_stopped_there(tiny_config, store):
    long = experiment.run(tiny_config.replace(epochs=3, snapshot_epochs=(2,)), store, progress=False)
    short = experiment.run(tiny_config.replace(epochs=2, snapshot_epochs=()), store, progress=False)
    snapshot = long.snapshot_outputs(2)
    assert set(snapshot) == set(short.outputs)
    # bitwise on any CPU: two epochs of the same configuration, in one process on one thread
    for name, tensor in short.outputs.items():
        assert torch.equal(snapshot[name], tensor), name
    snap_weights, short_weights = long.model(2).state_dict(), short.model().state_dict()
    assert set(snap_weights) == set(short_weights)
    for name, tensor in short_weights.items():
        assert torch.equal(snap_weights[name], tensor), name
    # and the third epoch did change the weights
    assert not torch.equal(long.model().state_dict()["classifier.weight"], short_weights["classifier.weight"])
    with pytest.raises(KeyError, match="epoch"):
        long.snapshot_outputs(1)


# =========================================================================== composition and validation


def test_build_orders_mechanisms_by_stage():
    pairs = [("weight_decay", 0.01), ("random_crop", 2), ("dropout", 0.1), ("gaussian_noise", 0.1),
             ("spatial_dropout", 0.1), ("label_smoothing", 0.1), ("distillation", 2.0)]
    names = [m.name for m in build(pairs)]
    assert names == ["distillation", "label_smoothing", "gaussian_noise", "random_crop", "dropout",
                     "spatial_dropout", "weight_decay"]
    assert names == [name for name in MECHANISM_ORDER if name in dict(pairs)]
    assert [m.name for m in build(list(reversed(pairs)))] == names
    stages = [m.stage for m in build(pairs)]
    assert stages == sorted(stages)
    values = {m.name: m.value for m in build(pairs)}
    assert values == dict(pairs)


def test_composed_transforms_apply_in_stage_order(tiny_config):
    pairs = [("random_crop", 2), ("gaussian_noise", 0.1), ("label_smoothing", 0.5), ("distillation", 2.0)]
    mechanisms = build(pairs)
    n, k = 8, 4
    teacher = FakeTeacher(torch.randn(n, k, generator=generator(6)) * 3)
    context = TrainingContext(tiny_config.replace(mechanisms=tuple(pairs)), torch.rand(n, 1, 6, 6),
                              torch.arange(n) % k, k, CPU, teacher)
    for mechanism in mechanisms:
        mechanism.prepare(context)
    indices = torch.tensor([5, 1, 2])
    images = torch.full((3, 1, 6, 6), 0.5)
    targets = F.one_hot(context.labels[indices], k).float()
    g = generator(9)
    for mechanism in mechanisms:
        images, targets = mechanism.transform(images, targets, indices, g)
    # labels: the teacher's soft labels, then smoothed (smoothing does not undo distillation)
    assert torch.allclose(targets, smooth(soft_labels(teacher.logits, 2.0)[indices], 0.5), atol=1e-7, rtol=0)
    assert torch.allclose(targets.sum(1), torch.ones(3), atol=1e-6, rtol=0)
    # inputs: noise first, then the crop (so the uncovered border is exactly zero)
    g = generator(9)
    expected = random_crop(add_gaussian_noise(torch.full((3, 1, 6, 6), 0.5), 0.1, g), 2, g)
    assert torch.equal(images, expected)


def test_table1_ranges_are_registered():
    table = published("table1_hyperparameter_ranges")
    rows = table[~table["mechanism"].isin(["early_stopping", "dp_sgd"])]
    assert len(rows) == 7
    for row in rows.itertuples():
        assert row.mechanism in REGISTRY, row.mechanism
        cls = REGISTRY[row.mechanism]
        assert cls.name == row.mechanism
        # the paper's range, widened only where a profile's grid needs it (distillation's T)
        widened = {"distillation": 1000.0}
        assert (cls.low, cls.high) == (row.low, widened.get(row.mechanism, row.high)), row.mechanism
        assert cls.symbol == row.symbol, row.mechanism
        # the bounds themselves are valid, just outside them is not
        assert check_mechanisms([(row.mechanism, row.low)]) == []
        assert check_mechanisms([(row.mechanism, row.high)]) == []
        assert check_mechanisms([(row.mechanism, cls.high)]) == []
        assert check_mechanisms([(row.mechanism, row.low * 0.5)])
        assert check_mechanisms([(row.mechanism, cls.high * 2)])
    # the paper's seven (early stopping is a snapshot, not a training-time piece)
    assert set(rows["mechanism"]) == set(MECHANISM_ORDER) - {"early_stopping"}
    assert REGISTRY["random_crop"].integer and not REGISTRY["dropout"].integer


def test_check_mechanisms_reports_problems():
    assert check_mechanisms([]) == []
    assert check_mechanisms([("dropout", 0.5), ("random_crop", 4), ("weight_decay", 1e-3)]) == []

    [unknown] = check_mechanisms([("no_such_mechanism", 0.2)])
    assert "unknown mechanism 'no_such_mechanism'" in unknown and "dropout" in unknown  # lists what is allowed

    duplicate = check_mechanisms([("dropout", 0.5), ("dropout", 0.3)])
    assert len(duplicate) == 1 and "'dropout' is listed twice" in duplicate[0]

    for name, value in [("dropout", 0.99), ("dropout", 0.0), ("label_smoothing", 1.0),
                        ("distillation", 0.5), ("gaussian_noise", 0.3), ("random_crop", 25),
                        ("random_crop", 0), ("weight_decay", 1.0), ("spatial_dropout", -0.1)]:
        [problem] = check_mechanisms([(name, value)])
        assert "out of range" in problem and name in problem, problem
    [problem] = check_mechanisms([("dropout", 1.0)])
    assert "allowed 0.05 <= p <= 0.95" in problem

    for value in (True, "0.5", None):
        [problem] = check_mechanisms([("dropout", value)])
        assert "out of range" in problem

    [fractional] = check_mechanisms([("random_crop", 2.5)])
    assert "whole number" in fractional
    assert check_mechanisms([("random_crop", 3.0)]) == []

    [malformed] = check_mechanisms(["dropout"])
    assert "(name, value) pair" in malformed

    several = check_mechanisms([("no_such_mechanism", 1), ("dropout", 2.0), ("random_crop", 1.5)])
    assert len(several) == 3


def test_run_config_refuses_bad_mechanisms():
    with pytest.raises(ConfigError, match="unknown mechanism"):
        RunConfig().with_mechanisms(no_such_mechanism=4)
    with pytest.raises(ConfigError, match="whole number"):
        RunConfig().with_mechanisms(random_crop=1.5)
    with pytest.raises(ConfigError, match="listed twice"):
        RunConfig(mechanisms=(("dropout", 0.1), ("dropout", 0.2)))


def test_combined_mechanisms_train_through_experiment_run(quick, store):
    config = quick.with_mechanisms(distillation=5.0, label_smoothing=0.1, gaussian_noise=0.1,
                                         random_crop=2, dropout=0.2, weight_decay=0.01)
    teacher = config.replace(mechanisms=())
    assert not store.exists(teacher.key())
    result = experiment.run(config, store, progress=False)
    assert not result.from_store
    assert len(result.history) == 1
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert store.exists(config.key()) and store.exists(teacher.key())
    assert teacher.key() == quick.key()
    teacher_run = experiment.run(teacher, store, progress=False)
    assert teacher_run.from_store
    model = result.model()
    assert any(isinstance(m, nn.Dropout) and m.p == 0.2 for m in model.modules())
    # the student differs from its teacher
    assert not torch.equal(model.state_dict()["classifier.weight"],
                           teacher_run.model().state_dict()["classifier.weight"])
    # a second call reads everything back
    again = experiment.run(config, store, progress=False)
    assert again.from_store and torch.equal(again.outputs["eval_logits"], result.outputs["eval_logits"])


# =========================================================================== the attacker's view


def test_attacker_sees_only_the_original_images(quick, store):
    config = quick.with_mechanisms(gaussian_noise=0.25, random_crop=4)
    result = experiment.run(config, store, progress=False)
    data = load_dataset("fmnist")
    split = make_split(data.info, config.n_members, config.n_eval, config.n_adversary, config.split_seed)
    images = torch.cat([data.train_images[split.eval_members], data.test_images[split.eval_nonmembers]])
    labels = torch.cat([data.train_labels[split.eval_members], data.test_labels[split.eval_nonmembers]])
    model = result.model()
    logits = predict_logits(model, images)
    # The run's logits come from batches of the whole test set and of every image it used, these
    # from batches of the evaluation set alone: other shapes may run other kernels, so equal up
    # to rounding (perturbed images, below, move the logits by far more).
    assert_equal_up_to_rounding(result.outputs["eval_logits"], logits)
    assert torch.equal(result.outputs["eval_labels"], labels)  # integers
    adv_images = torch.cat([data.train_images[split.adv_members], data.test_images[split.adv_nonmembers]])
    assert_equal_up_to_rounding(result.outputs["adv_logits"], predict_logits(model, adv_images))
    # control: perturbed images would have given different logits
    unit = images.float() / 255
    noisy = add_gaussian_noise(unit, 0.25, generator(0))
    assert not torch.allclose(predict_logits(model, noisy), logits)
    assert not torch.allclose(predict_logits(model, random_crop(unit, 4, generator(0))), logits)


def test_a_distilled_run_does_not_depend_on_whether_its_teacher_was_stored(quick, store):
    """The same student must come out whether its teacher is trained during the student's run
    or read from the store. ``Distillation.prepare`` may train the teacher, which reseeds the
    global RNG; ``train`` therefore prepares inside ``fork_rng`` so that the student's dropout
    masks do not depend on it."""
    config = quick.with_mechanisms(distillation=5.0, dropout=0.3)
    trained_with_teacher = experiment.run(config, store, progress=False)  # teacher trained inside
    data = load_dataset("fmnist")
    teacher = experiment.run(config.replace(mechanisms=()), store, progress=False)
    assert teacher.from_store
    members = data.train_images[make_split(data.info, config.n_members, config.n_eval, config.n_adversary,
                                           config.split_seed).members]
    stored_teacher_logits = predict_logits(teacher.model(), members)
    again = train(config, data, progress=False, device=CPU, teacher_logits=lambda _: stored_teacher_logits)
    weights = trained_with_teacher.model().state_dict()
    # bitwise on any CPU: the same teacher logits (the same weights and images, in the same
    # batches) and the same training, in one process on one thread
    for name, tensor in again.state_dict.items():
        assert torch.equal(weights[name], tensor), name


@pytest.mark.parametrize("other", ["mixup", "mmd", "mmd_gated"])
def test_excluded_pairs_are_refused_when_the_config_is_built(other):
    """DP-SGD's per-example clipping cannot bound a batch-level term or a mixed example: refused at
    once, either way round, with the reason, before any training."""
    from mia_utils.defenses import exclusion

    for pairs in ((("dp_sgd", 1.0), (other, 1.0)), ((other, 1.0), ("dp_sgd", 1.0))):
        with pytest.raises(ConfigError, match="cannot be combined with .*per-example clipping"):
            RunConfig(mechanisms=pairs)
    assert exclusion("dp_sgd", other) == exclusion(other, "dp_sgd") is not None
    assert exclusion("dp_sgd", "random_crop") is None
    RunConfig().with_mechanisms(mixup=1.0, mmd=1.0)  # the two of Li et al. combine
