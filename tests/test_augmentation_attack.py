"""Kaya & Dumitras's augmentation-aware attack: the queries are the recipe's own augmentations
(same generator draws; the batch size changes the losses by rounding only), the reductions and
the authors' choice among them, a hand-made model where only the augmented queries reveal
membership, chance on identical distributions, bad parameters, determinism and the cost in
forward passes."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mia_utils import attacks
from mia_utils.attacks import AttackInputError
from mia_utils.attacks.augmentation import (AUGMENTATION_REDUCTIONS, augment, augmentation_aware_attack,
                                            augmentation_aware_cost, augmented_losses)
from mia_utils.defenses.recipe import add_gaussian_noise, random_crop
from rounding import assert_equal_up_to_rounding
from test_dtc import one_thread  # noqa: F401 (one_thread: an autouse fixture)


def tiny_model(seed=0, classes=3):
    """Conv(1 -> 4, 3x3) + ReLU + Linear(256 -> classes) on 1x8x8 inputs, float64."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes))
    return model.double()


def uint8_samples(n=12, classes=3, seed=0):
    generator = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 256, (n, 1, 8, 8), generator=generator, dtype=torch.uint8)
    return images, torch.randint(0, classes, (n,), generator=generator)


class CountingModel(nn.Module):
    """Wraps a model and counts the images it is asked to label."""

    def __init__(self, inner):
        super().__init__()
        self.inner, self.rows = inner, 0

    def forward(self, x):
        self.rows += x.shape[0]
        return self.inner(x)


def test_losses_are_the_recipe_augmentations_drawn_in_order():
    model = tiny_model()
    images, labels = uint8_samples()
    losses = augmented_losses(model, images, labels, n_augmentations=3, crop=2, noise_std=0.1, seed=5)
    assert losses.shape == (12, 3) and losses.dtype == torch.float64
    generator = torch.Generator().manual_seed(5)
    x = images.float() / 255
    for k in range(3):
        # the training loop's order: noise (stage 30), then cropping (stage 31), one generator
        queried = random_crop(add_gaussian_noise(x, 0.1, generator, clamp=True), 2, generator)
        with torch.no_grad():
            expected = F.cross_entropy(model(queried.double()), labels, reduction="none")
        # bitwise on any CPU: the same 12 images in one forward pass of the same shape
        assert torch.equal(losses[:, k], expected)
    assert not torch.equal(losses[:, 0], losses[:, 1])  # fresh draws per query
    # the batch size only chunks the forward passes: chunks of 5 may run other matrix-product
    # kernels than one chunk of 12 (they did on an Intel Xeon), so the losses agree up to rounding
    small = augmented_losses(model, images, labels, n_augmentations=3, crop=2, noise_std=0.1, seed=5, batch_size=5)
    assert_equal_up_to_rounding(small, losses)


def test_each_augmentation_alone_and_the_noise_clamp():
    generator = torch.Generator().manual_seed(0)
    x = torch.full((4, 1, 6, 6), 0.5)
    noisy = augment(x, 0, 2.0, generator, clamp=True)
    assert noisy.min() == 0 and noisy.max() == 1  # clamped back to [0, 1], as training does
    assert augment(x, 0, 2.0, generator, clamp=False).abs().max() > 1
    cropped = augment(x, 1, 0.0, generator)
    assert set(cropped.unique().tolist()) <= {0.0, 0.5} and cropped.sum() < x.sum()  # zero-filled borders moved in
    with pytest.raises(ValueError, match="crop, noise_std: both are 0"):
        augmented_losses(tiny_model(), *uint8_samples(), crop=0, noise_std=0.0)


def test_same_seed_same_losses_and_another_seed_other_draws():
    model = tiny_model(1)
    images, labels = uint8_samples(seed=1)
    kwargs = dict(n_augmentations=4, crop=1, noise_std=0.05)
    first = augmented_losses(model, images, labels, seed=3, **kwargs)
    # bitwise on any CPU: the same call twice in one process
    assert torch.equal(first, augmented_losses(model, images, labels, seed=3, **kwargs))
    assert not torch.equal(first, augmented_losses(model, images, labels, seed=4, **kwargs))
    assert model.training  # the model's mode is restored (it was in training mode)


def test_cost_is_one_forward_pass_per_query():
    model = CountingModel(tiny_model())
    images, labels = uint8_samples(n=10)
    losses = augmented_losses(model, images, labels, n_augmentations=7, crop=1, batch_size=4)
    cost = augmentation_aware_cost(7)
    assert model.rows == 10 * cost["target_queries"] == losses.numel()
    assert cost["reference_models"] == 0 and cost["target_gradients"] == 0
    with pytest.raises(ValueError, match="n_augmentations: must be an integer >= 1, got 0"):
        augmentation_aware_cost(0)


def test_reductions_are_numpy_s():
    losses = torch.tensor([[1.0, 4.0, 2.0, 3.0], [0.5, 0.5, 2.5, 0.5]], dtype=torch.float64)
    import numpy as np

    for name, numpy_fn in (("median", np.median), ("min", np.min), ("max", np.max), ("std", np.std),
                           ("mean", np.mean)):
        assert AUGMENTATION_REDUCTIONS[name](losses).tolist() == pytest.approx(numpy_fn(losses.numpy(), axis=1))
    assert list(AUGMENTATION_REDUCTIONS) == ["median", "min", "max", "std", "mean"]  # the authors' order


class CentrePixel(nn.Module):
    """Two classes: logit 0 = 4 x (the centre pixel of a 1x8x8 image), logit 1 = 2."""

    def forward(self, x):
        centre = x[:, 0, 4, 4]
        return torch.stack([4 * centre, torch.full_like(centre, 2.0)], dim=1)

    def parameters(self, recurse=True):
        yield torch.zeros(1, dtype=torch.float64)


def blob_and_dot_images(n, generator):
    """``n`` "members" with a bright 3x3 blob on the centre (still covering it after any shift of
    one pixel) and ``n`` "non-members" with a single bright centre pixel, on dim random
    backgrounds (<= 0.2): the clean images give the same logits, shifted ones do not."""
    images = 0.2 * torch.rand(2 * n, 1, 8, 8, generator=generator, dtype=torch.float64)
    images[:n, :, 3:6, 3:6] = 1.0
    images[n:, :, 4, 4] = 1.0
    return images, torch.zeros(2 * n, dtype=torch.long), torch.arange(2 * n) < n


def test_only_the_augmented_queries_separate_members_on_a_hand_made_model():
    """The clean loss is identical for every sample (AUC exactly 0.5); under crops of one pixel
    a member's loss stays log(1 + e^-2) while a non-member's rises whenever the crop moves, so the
    mean over 20 queries separates them perfectly."""
    model = CentrePixel()
    generator = torch.Generator().manual_seed(0)
    eval_images, labels, eval_member = blob_and_dot_images(50, generator)
    adv_images, _, adv_member = blob_and_dot_images(50, generator)
    eval_losses = augmented_losses(model, eval_images, labels, crop=1, seed=1)
    adv_losses = augmented_losses(model, adv_images, labels, crop=1, seed=2)
    assert eval_losses.shape == (100, 20)
    assert torch.allclose(eval_losses[:50], torch.full((50, 20), math.log1p(math.exp(-2.0)), dtype=torch.float64))
    result = augmentation_aware_attack(eval_losses, eval_member, adv_losses, adv_member, "mean", n_bootstrap=0)
    assert result.name == "augmentation_aware_mean"
    assert result.auc == 1.0 and result.advantage == 1.0
    clean = attacks.AttackInputs(model(eval_images), labels, eval_member, 0.1, model(adv_images), labels, adv_member)
    assert attacks.loss_threshold(clean, n_bootstrap=0).auc == 0.5


def _synthetic_losses(n, k, member_level, generator):
    """Losses (2n, K): per-sample levels |N(level, 0.2)| plus per-query spread |N(0, 0.2)|;
    non-members at level 1."""
    def side(level):
        base = (level + 0.2 * torch.randn(n, 1, generator=generator, dtype=torch.float64)).abs()
        return base + 0.2 * torch.randn(n, k, generator=generator, dtype=torch.float64).abs()
    return torch.cat([side(member_level), side(1.0)]), torch.arange(2 * n) < n


@pytest.mark.parametrize("reduction", ["mean", "median", "min", "max", "best"])
def test_separated_losses_are_detected_and_identical_ones_sit_at_chance(reduction):
    """n = 1000 per class: under the null the AUC's standard deviation is
    sqrt((2n + 1) / (12 n^2)) = 0.013, so 0.05 is about 4 sigma; the advantage at a threshold
    chosen on an independent set has a standard deviation of at most sqrt(2 x 0.25 / n) = 0.022,
    so 0.09 is about 4 sigma."""
    generator = torch.Generator().manual_seed(7)
    eval_losses, eval_member = _synthetic_losses(1000, 8, 0.2, generator)
    adv_losses, adv_member = _synthetic_losses(1000, 8, 0.2, generator)
    separated = augmentation_aware_attack(eval_losses, eval_member, adv_losses, adv_member, reduction, n_bootstrap=0)
    assert separated.auc > 0.95 and separated.advantage > 0.75
    eval_losses, eval_member = _synthetic_losses(1000, 8, 1.0, generator)
    adv_losses, adv_member = _synthetic_losses(1000, 8, 1.0, generator)
    same = augmentation_aware_attack(eval_losses, eval_member, adv_losses, adv_member, reduction, n_bootstrap=0)
    assert abs(same.auc - 0.5) < 0.05 and abs(same.advantage) < 0.09


def test_best_takes_the_reduction_that_wins_on_the_adversary_samples():
    """Members' K losses are all equal to a per-sample level; non-members' alternate 0.5 above
    and below theirs. Levels are spread over [0.5, 3], so mean and median sit at chance and min /
    max separate only partly, while std separates perfectly: the authors' choice is std."""
    generator = torch.Generator().manual_seed(3)

    def draw(n=300, k=6):
        level = 0.5 + 2.5 * torch.rand(2 * n, 1, generator=generator, dtype=torch.float64)
        wiggle = 0.5 * torch.tensor([1.0, -1.0] * (k // 2), dtype=torch.float64)
        losses = level + torch.where(torch.arange(2 * n)[:, None] < n, 0.0, wiggle)
        return losses, torch.arange(2 * n) < n

    eval_losses, eval_member = draw()
    adv_losses, adv_member = draw()
    best = augmentation_aware_attack(eval_losses, eval_member, adv_losses, adv_member, "best", n_bootstrap=0)
    assert best.name == "augmentation_aware_best_std" and best.advantage == 1.0
    mean = augmentation_aware_attack(eval_losses, eval_member, adv_losses, adv_member, "mean", n_bootstrap=0)
    assert abs(mean.auc - 0.5) < 0.1
    one_query = augmentation_aware_attack(eval_losses[:, :1], eval_member, adv_losses[:, :1], adv_member, "best",
                                          n_bootstrap=0)
    assert one_query.name == "augmentation_aware_best_median"  # std is left out with K = 1; all others tie


def test_attack_is_deterministic():
    generator = torch.Generator().manual_seed(11)
    eval_losses, eval_member = _synthetic_losses(200, 5, 0.6, generator)
    adv_losses, adv_member = _synthetic_losses(200, 5, 0.6, generator)
    first = augmentation_aware_attack(eval_losses, eval_member, adv_losses, adv_member, "best", n_bootstrap=20, seed=1)
    second = augmentation_aware_attack(eval_losses, eval_member, adv_losses, adv_member, "best", n_bootstrap=20, seed=1)
    # bitwise on any CPU: the same call twice in one process
    assert torch.equal(first.scores, second.scores) and first.threshold == second.threshold
    assert first.metrics["auc"].std == second.metrics["auc"].std


@pytest.mark.parametrize("change, error, message", [
    (dict(n_augmentations=0), ValueError, "n_augmentations: must be an integer >= 1, got 0"),
    (dict(crop=-1), ValueError, "crop: must be an integer >= 0, got -1"),
    (dict(crop=1.5), ValueError, "crop: must be an integer >= 0, got 1.5"),
    (dict(noise_std=-0.1), ValueError, "noise_std: must be a finite number >= 0, got -0.1"),
    (dict(noise_std=float("nan")), ValueError, "noise_std: must be a finite number >= 0"),
    (dict(batch_size=0), ValueError, "batch_size: must be an integer >= 1, got 0"),
    (dict(seed=1.0), ValueError, "seed: must be an integer, got 1.0"),
    (dict(clamp=1), ValueError, "clamp: must be True or False, got 1"),
    (dict(images=torch.rand(3, 8, 8)), ValueError, r"images: expected a tensor of shape \(N, C, H, W\)"),
    (dict(images=torch.full((12, 1, 8, 8), 2.0)), ValueError, r"images: float images must be finite and lie in \[0, 1\]"),
    (dict(images=torch.zeros(12, 1, 8, 8, dtype=torch.int32)), ValueError, "images: expected uint8 or float"),
    (dict(labels=torch.zeros(11, dtype=torch.long)), ValueError, r"labels: expected integer class indices of shape \(12,\)"),
    (dict(labels=torch.full((12,), 3)), ValueError, r"labels: must lie in 0..2"),
])
def test_bad_parameters_of_the_queries_are_named(change, error, message):
    images, labels = uint8_samples()
    arguments = dict(images=images, labels=labels, n_augmentations=2, crop=1, noise_std=0.0)
    arguments.update(change)
    with pytest.raises(error, match=message):
        augmented_losses(tiny_model(), **arguments)


@pytest.mark.parametrize("change, error, message", [
    (dict(reduction="sum"), ValueError, "reduction: got 'sum'; allowed: median, min, max, std, mean, best"),
    (dict(eval_losses=torch.ones(4)), AttackInputError, r"eval_losses: expected shape \(N >= 1, K >= 1\)"),
    (dict(eval_losses=torch.tensor([[1.0, float("nan")]] * 4)), AttackInputError, "eval_losses: contain NaN"),
    (dict(adv_losses=torch.ones(4, 3)), AttackInputError, r"adv_losses: must have as many queries per sample as eval_losses \(2\)"),
    (dict(eval_is_member=torch.tensor([True, True, True])), AttackInputError, r"eval_is_member: expected shape \(4,\)"),
    (dict(adv_is_member=torch.tensor([False] * 4)), AttackInputError, "adv_is_member: needs both members and non-members"),
])
def test_bad_inputs_of_the_attack_are_named(change, error, message):
    arguments = dict(eval_losses=torch.rand(4, 2), eval_is_member=torch.tensor([True, True, False, False]),
                     adv_losses=torch.rand(4, 2), adv_is_member=torch.tensor([True, False, True, False]))
    arguments.update(change)
    with pytest.raises(error, match=message):
        augmentation_aware_attack(**arguments)


def test_std_needs_two_queries():
    member = torch.tensor([True, True, False, False])
    with pytest.raises(ValueError, match="reduction: 'std' needs at least 2 queries per sample, got K = 1"):
        augmentation_aware_attack(torch.rand(4, 1), member, torch.rand(4, 1), member, "std")
