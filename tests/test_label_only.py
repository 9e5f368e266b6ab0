"""Label-only attacks: the gap attack against ART's LabelOnlyGapAttack on the same torch model, the
reference's translation set and shifts (against a port of its code and scipy), exact counts on a
hand-made model, the boundary distance against the analytic distance of a linear model (L2 and
L-infinity) and against ART's HopSkipJump ranking, separated and identical distributions, bad
parameters, determinism and the cost in forward passes."""

import numpy as np
import pytest
import torch
from torch import nn

from mia_utils.attacks import AttackInputError, AttackInputs
from mia_utils.attacks.label_only import (BoundaryResult, boundary_distances, label_only_boundary, label_only_cost,
                                          label_only_gap, label_only_translation, shift_images, translated_queries,
                                          translation_correctness, translation_offsets)
from rounding import assert_equal_up_to_rounding
from test_dtc import one_thread, tiny_model  # noqa: F401 (one_thread: an autouse fixture)


def logits_with_correctness(correct, classes=4, generator=None):
    """Random logits (N, classes) whose argmax is class 0 exactly where ``correct``; labels are 0."""
    n = len(correct)
    logits = torch.randn(n, classes, generator=generator, dtype=torch.float64)
    top = logits.max(1).values
    wrong_class = 1 + torch.randint(0, classes - 1, (n,), generator=generator)
    logits[torch.arange(n), torch.where(correct, 0, wrong_class)] = top + 1.0
    return logits, torch.zeros(n, dtype=torch.long)


# --- the gap attack ------------------------------------------------------------------------------

def test_gap_is_the_accuracy_gap_and_separates_only_when_accuracies_differ():
    """n = 2000 per class. Members right with probability 0.95, non-members 0.6: the advantage is
    TPR - FPR = 0.35 in expectation (sd sqrt(.95 .05 / n + .6 .4 / n) = 0.012). Identical (0.8 and
    0.8): 0 in expectation, sd sqrt(2 x .8 x .2 / n) = 0.013, so 0.05 is about 4 sigma."""
    generator = torch.Generator().manual_seed(0)
    n = 2000
    member = torch.arange(2 * n) < n
    for p_member, p_nonmember, low, high in ((0.95, 0.6, 0.30, 0.40), (0.8, 0.8, -0.05, 0.05)):
        p = torch.where(member, p_member, p_nonmember)
        correct = torch.rand(2 * n, generator=generator) < p
        logits, labels = logits_with_correctness(correct, generator=generator)
        result = label_only_gap(AttackInputs(logits, labels, member, 0.5, logits, labels, member), n_bootstrap=0)
        gap = correct[member].double().mean() - correct[~member].double().mean()
        assert result.advantage == pytest.approx(float(gap), abs=1e-12)
        assert result.auc == pytest.approx((1 + float(gap)) / 2, abs=1e-12)
        assert low < result.advantage < high
        assert result.name == "label_only_gap" and result.threshold == 0.5
        # bitwise on any CPU: booleans, from logits whose top class leads the others by 1.0
        assert torch.equal(result.predicted, correct) and set(result.scores.tolist()) <= {0.0, 1.0}


def test_gap_agrees_with_art_label_only_gap_attack():
    art = pytest.importorskip("art")
    from art.attacks.inference.membership_inference import LabelOnlyGapAttack
    from art.estimators.classification import PyTorchClassifier

    from mia_utils.models import predict_logits

    model = tiny_model(dtype=torch.float32)
    generator = torch.Generator().manual_seed(1)
    images = torch.rand(40, 1, 8, 8, generator=generator)
    labels = torch.randint(0, 3, (40,), generator=generator)
    member = torch.arange(40) < 20
    classifier = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8), nb_classes=3,
                                   clip_values=(0.0, 1.0))
    theirs = LabelOnlyGapAttack(classifier).infer(images.numpy(), np.eye(3)[labels.numpy()])
    logits = predict_logits(model, images).double()
    ours = label_only_gap(AttackInputs(logits, labels, member, 0.5, logits, labels, member), n_bootstrap=0)
    assert 5 < theirs.sum() < 35  # both outcomes occur
    assert ours.predicted.int().tolist() == theirs.tolist()
    assert art.__version__


# --- the translation attack ----------------------------------------------------------------------

def _reference_all_shifts(mshift):
    """cchoquette/membership-inference utils.py create_translates.all_shifts, as written there
    (4-tuples for scipy's shift on (N, H, W, C) arrays)."""
    if mshift == 0:
        return [(0, 0, 0, 0)]
    all_pairs = []
    start = (0, mshift, 0, 0)
    end = (0, mshift, 0, 0)
    vdir = -1
    hdir = -1
    first_time = True
    while (start[1] != end[1] or start[2] != end[2]) or first_time:
        all_pairs.append(start)
        start = (0, start[1] + vdir, start[2] + hdir, 0)
        if abs(start[1]) == mshift:
            vdir *= -1
        if abs(start[2]) == mshift:
            hdir *= -1
        first_time = False
    all_pairs = [(0, 0, 0, 0)] + all_pairs
    return all_pairs


@pytest.mark.parametrize("d", [0, 1, 2, 3, 5])
def test_translation_set_is_the_reference_s(d):
    assert translation_offsets(d) == [(dy, dx) for _, dy, dx, _ in _reference_all_shifts(d)]
    assert len(translation_offsets(d)) == 4 * d + 1
    assert all(abs(dy) + abs(dx) == d for dy, dx in translation_offsets(d)[1:])


@pytest.mark.parametrize("dy, dx", [(1, 0), (0, -1), (-2, 1), (3, 3), (0, 0)])
def test_shifts_match_scipy_nearest_and_constant(dy, dx):
    from scipy import ndimage

    images = torch.rand(2, 3, 6, 7, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    array = images.numpy()
    nearest = ndimage.shift(array, (0, 0, dy, dx), mode="nearest", order=0)
    zeros = ndimage.shift(array, (0, 0, dy, dx), mode="constant", cval=0.0, order=0)
    # bitwise on any CPU: both only copy pixels (or write zeros), no arithmetic
    assert np.array_equal(shift_images(images, dy, dx, "nearest").numpy(), nearest)
    assert np.array_equal(shift_images(images, dy, dx, "zeros").numpy(), zeros)
    # the reference calls shift with its default cubic spline, which is exact at whole pixels
    np.testing.assert_allclose(shift_images(images, dy, dx, "nearest").numpy(),
                               ndimage.shift(array, (0, 0, dy, dx), mode="nearest"), atol=1e-9)


class HalfBrightness(nn.Module):
    """Two classes on 1x8x8 images: logit 0 = sum of the left four columns, logit 1 = the right four."""

    def forward(self, x):
        return torch.stack([x[:, 0, :, :4].sum((1, 2)), x[:, 0, :, 4:].sum((1, 2))], dim=1)

    def parameters(self, recurse=True):
        yield torch.zeros(1, dtype=torch.float64)


def test_counts_on_a_hand_made_model():
    """A bright pixel in row 4 at column 1 stays in the left half under every shift of d = 1 (5 of
    5 correct); at column 3 the shift to the right moves it across (4 of 5). Mirrored copies put
    column c at 7 - c: only the right-shifted copy of the second image comes back left."""
    images = torch.zeros(2, 1, 8, 8, dtype=torch.uint8)
    images[0, 0, 4, 1] = images[1, 0, 4, 3] = 255
    labels = torch.tensor([0, 0])
    correct = translation_correctness(HalfBrightness(), images, labels, max_shift=1)
    assert correct.tolist() == [[True] * 5, [True, True, True, True, False]]
    flipped = translation_correctness(HalfBrightness(), images, labels, max_shift=1, flip=True)
    assert flipped.shape == (2, 10) and flipped[:, :5].tolist() == correct.tolist()
    assert flipped[0, 5:].tolist() == [False] * 5
    assert flipped[1, 5:].tolist() == [False, False, False, False, True]
    assert translated_queries(images, 2, flip=True).shape == (2, 18, 1, 8, 8)


def _bernoulli_tables(n, a, p_member, p_nonmember, generator):
    member = torch.arange(2 * n) < n
    p = torch.where(member, p_member, p_nonmember)[:, None].expand(-1, a)
    return torch.rand(2 * n, a, generator=generator) < p, member


def test_translation_counts_separate_members_and_sit_at_chance_on_identical_tables():
    """n = 1000 per class, 5 queries: members right with probability 0.9 per query, non-members
    0.6, so the counts differ (AUC about 0.86); identical tables: AUC 0.5 with sd 0.013 and an
    advantage with sd at most 0.022 (see test_augmentation_attack), so 0.05 and 0.09 are ~4 sigma."""
    generator = torch.Generator().manual_seed(4)
    eval_correct, eval_member = _bernoulli_tables(1000, 5, 0.9, 0.6, generator)
    adv_correct, adv_member = _bernoulli_tables(1000, 5, 0.9, 0.6, generator)
    separated = label_only_translation(eval_correct, eval_member, adv_correct, adv_member, n_bootstrap=0)
    assert separated.auc > 0.8 and separated.advantage > 0.5
    assert separated.name == "label_only_translation_count"
    assert torch.equal(separated.scores, eval_correct.double().sum(1))  # sums of 0/1: exact in any order
    eval_correct, eval_member = _bernoulli_tables(1000, 5, 0.8, 0.8, generator)
    adv_correct, adv_member = _bernoulli_tables(1000, 5, 0.8, 0.8, generator)
    same = label_only_translation(eval_correct, eval_member, adv_correct, adv_member, n_bootstrap=0)
    assert abs(same.auc - 0.5) < 0.05 and abs(same.advantage) < 0.09


def test_translation_is_deterministic_and_costs_one_pass_per_query():
    model = tiny_model()
    images = torch.randint(0, 256, (6, 1, 8, 8), generator=torch.Generator().manual_seed(3), dtype=torch.uint8)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    first = translation_correctness(model, images, labels, max_shift=2, flip=True, fill="nearest")
    # Chunks of 7 may round the logits otherwise than one chunk of 108 (another kernel); the
    # correctness, an argmax, is still the same on any CPU as no query's top two logits are close.
    with torch.no_grad():
        top = model(translated_queries(images.double() / 255, 2, True, "nearest").flatten(0, 1)).topk(2).values
    assert (top[:, 0] - top[:, 1]).min() > 1e-9
    assert torch.equal(first, translation_correctness(model, images, labels, max_shift=2, flip=True, fill="nearest",
                                                      batch_size=7))
    assert first.shape[1] == label_only_cost("translation", max_shift=2, flip=True)["target_queries"] == 18


# --- the boundary distance -----------------------------------------------------------------------

def linear_case(n=12, seed=0):
    """A two-class linear model on 1x4x4 inputs, with margin (w0 - w1) . (x - 0.5), and images
    in [0.3, 0.7] whose margins lie in [-0.3, 0.3]: the boundary is reached long before any pixel
    leaves [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 2)).double()
    with torch.no_grad():
        model[1].weight.copy_(torch.randn(2, 16, generator=generator, dtype=torch.float64))
        w = model[1].weight[0] - model[1].weight[1]
        model[1].bias.copy_(torch.stack([-0.5 * w.sum(), torch.zeros((), dtype=torch.float64)]))  # margin 0 at 0.5
    images = 0.5 + 0.02 * torch.randn(n, 1, 4, 4, generator=generator, dtype=torch.float64)
    margins = 0.3 * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
    with torch.no_grad():  # move each image along w so that its margin is the chosen one
        current = (images.flatten(1) - 0.5) @ w
        images = images + ((margins - current) / (w @ w))[:, None, None, None] * w.view(1, 1, 4, 4)
    assert images.min() > 0.3 and images.max() < 0.7
    return model, images, torch.zeros(n, dtype=torch.long), margins, w.detach()


@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_boundary_distance_of_a_linear_model_is_the_analytic_one(norm):
    """Margin m = (w0 - w1) . x > 0 for the correctly labelled samples: the smallest change of the
    label is at m / ||w0 - w1||_2 in L2 and m / ||w0 - w1||_1 in L-infinity (the dual norm).
    Misclassified samples (m < 0) get 0."""
    model, images, labels, margins, w = linear_case()
    result = boundary_distances(model, images, labels, norm=norm, step=0.01, max_steps=200, refine_steps=40)
    dual = w.norm() if norm == "l2" else w.abs().sum()
    expected = torch.where(margins > 0, margins / dual, 0.0)
    # bitwise on any CPU: booleans; the margins (0.03 or more from 0 here) dwarf any rounding
    assert torch.equal(result.misclassified, margins < 0) and not result.capped.any()
    assert torch.allclose(result.distances, expected, rtol=1e-6, atol=1e-9)
    assert (result.distances[margins > 0] >= expected[margins > 0] * (1 - 1e-9)).all()  # an upper bound
    assert result.forward_passes[result.misclassified].tolist() == [1] * int(result.misclassified.sum())
    flipped = result.flipped
    # bitwise on any CPU: integer counts
    assert torch.equal(result.forward_passes[flipped], 1 + result.steps[flipped] + 40)
    assert torch.equal(result.backward_passes, result.steps)
    bound = label_only_cost("boundary", max_steps=200, refine_steps=40)
    assert int(result.forward_passes.max()) <= bound["target_queries"]


def test_capped_samples_get_the_budget():
    model, images, labels, margins, _ = linear_case()
    result = boundary_distances(model, images, labels, norm="l2", step=0.001, max_steps=3)
    capped = result.capped
    assert capped.any() and torch.equal(capped, ~(result.flipped | result.misclassified))  # booleans
    assert torch.allclose(result.distances[capped], torch.full((int(capped.sum()),), 0.003, dtype=torch.float64))
    assert (result.distances[result.flipped] <= 0.003 + 1e-12).all()


def test_boundary_search_is_deterministic_and_independent_of_the_batching():
    model = tiny_model()
    generator = torch.Generator().manual_seed(5)
    images = torch.rand(13, 1, 8, 8, generator=generator, dtype=torch.float64)
    with torch.no_grad():
        labels = model(images).argmax(1)
    labels[:3] = (labels[:3] + 1) % 3  # three misclassified samples
    whole = boundary_distances(model, images, labels, max_steps=60)
    # bitwise on any CPU: the same call twice in one process
    assert torch.equal(whole.distances, boundary_distances(model, images, labels, max_steps=60).distances)
    pieces = boundary_distances(model, images, labels, max_steps=60, batch_size=4)
    # Chunks of 4 may run other kernels than one chunk of 13: the L2 steps (normalised gradients),
    # hence the distances, agree up to rounding. The outcomes and counts are decisions on float64
    # logits, which rounding would flip only at a near tie: compared exactly.
    assert_equal_up_to_rounding(pieces.distances, whole.distances)
    for name in ("misclassified", "flipped", "steps", "forward_passes"):
        assert torch.equal(getattr(whole, name), getattr(pieces, name)), name
    assert whole.misclassified[:3].all() and (whole.distances[:3] == 0).all()
    assert (whole.distances[3:] > 0).all() and len(whole) == 13


def test_boundary_attack_separates_far_members_and_sits_at_chance_otherwise():
    """On the linear model, members with margins in [0.15, 0.3] and non-members in [-0.3, 0.15]:
    every member is farther from the boundary, AUC 1. Identical distance distributions
    (n = 1000 per class): AUC within 0.05 of 0.5 (about 4 sigma)."""
    model, images, labels, margins, _ = linear_case(n=200, seed=2)
    member = margins > 0.15
    k = int(min(member.sum(), (~member).sum()))
    keep = torch.cat([torch.nonzero(member).squeeze(1)[:k], torch.nonzero(~member).squeeze(1)[:k]])
    result = boundary_distances(model, images[keep], labels[keep], step=0.01, max_steps=200)
    is_member, to_adversary = member[keep], torch.arange(2 * k) % 2 == 0
    attack = label_only_boundary(result.distances[~to_adversary], is_member[~to_adversary],
                                 result.distances[to_adversary], is_member[to_adversary], n_bootstrap=0)
    assert k > 20 and attack.auc == 1.0 and attack.advantage == 1.0
    generator = torch.Generator().manual_seed(6)
    same = torch.rand(2000, generator=generator, dtype=torch.float64)
    flags = torch.arange(2000) < 1000
    chance = label_only_boundary(same, flags, torch.rand(2000, generator=generator, dtype=torch.float64), flags,
                                 n_bootstrap=0)
    assert abs(chance.auc - 0.5) < 0.05 and chance.name == "label_only_boundary"
    named = label_only_boundary(result, is_member, result, is_member, n_bootstrap=0)
    assert named.name == "label_only_boundary_l2"


def test_boundary_ranking_agrees_with_art_hop_skip_jump():
    """ART's LabelOnlyDecisionBoundary (HopSkipJump, label-only, a small budget) on the same tiny
    model: the distances rank the samples alike, and the gradient walk's distances are no larger
    than HopSkipJump's (median ratio <= 1). ART returns sigmoid(distance - tau) with
    probabilities=True, inverted here. HopSkipJump is a randomized search whose distances move
    with floating-point noise (its result changes with the torch thread count even when seeded),
    so 40 samples are ranked: Spearman 0.76 to 0.83 measured across thread counts; 0.5 required."""
    pytest.importorskip("art")
    from art.attacks.inference.membership_inference import LabelOnlyDecisionBoundary
    from art.estimators.classification import PyTorchClassifier
    from scipy.stats import spearmanr

    model = tiny_model(dtype=torch.float32)
    images = torch.rand(40, 1, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        labels = model(images).argmax(1)  # all correctly labelled: every distance is positive

    class Float32(nn.Module):  # HopSkipJump mixes float64 and float32 arrays
        def __init__(self, inner):
            super().__init__()
            self.inner = inner

        def forward(self, x):
            return self.inner(x.float())

    classifier = PyTorchClassifier(model=Float32(model), loss=nn.CrossEntropyLoss(), input_shape=(1, 8, 8),
                                   nb_classes=3, clip_values=(0.0, 1.0))
    np.random.seed(0)  # HopSkipJump draws from numpy's and torch's global generators
    torch.manual_seed(0)
    tau = 1.0
    probabilities = LabelOnlyDecisionBoundary(classifier, distance_threshold_tau=tau).infer(
        images.numpy(), np.eye(3)[labels.numpy()], probabilities=True, max_iter=5, max_eval=200, init_eval=50,
        verbose=False)[:, 1]
    theirs = tau + np.log(probabilities / (1 - probabilities))
    ours = boundary_distances(model, images, labels, norm="l2", step=0.02, max_steps=200, refine_steps=20)
    assert not ours.capped.any() and (theirs > 0).all()
    assert spearmanr(theirs, ours.distances.numpy()).statistic > 0.5
    assert np.median(ours.distances.numpy() / theirs) <= 1.0


# --- bad parameters ------------------------------------------------------------------------------

@pytest.mark.parametrize("change, message", [
    (dict(norm="l1"), "norm: got 'l1'; allowed: l2, linf"),
    (dict(step=0.0), "step: must be a finite number > 0, got 0.0"),
    (dict(step=float("inf")), "step: must be a finite number > 0"),
    (dict(max_steps=-1), "max_steps: must be an integer >= 0, got -1"),
    (dict(refine_steps=2.5), "refine_steps: must be an integer >= 0, got 2.5"),
    (dict(batch_size=0), "batch_size: must be an integer >= 1, got 0"),
    (dict(images=torch.full((4, 1, 8, 8), -0.5)), r"images: float images must be finite and lie in \[0, 1\]"),
    (dict(labels=torch.zeros(3, dtype=torch.long)), r"labels: expected integer class indices of shape \(4,\)"),
    (dict(labels=torch.full((4,), 5)), r"labels: must lie in 0..2"),
])
def test_bad_boundary_parameters_are_named(change, message):
    arguments = dict(images=torch.rand(4, 1, 8, 8, dtype=torch.float64), labels=torch.zeros(4, dtype=torch.long))
    arguments.update(change)
    with pytest.raises(ValueError, match=message):
        boundary_distances(tiny_model(), **arguments)


@pytest.mark.parametrize("call, error, message", [
    (lambda: translation_offsets(-1), ValueError, "max_shift: must be an integer >= 0, got -1"),
    (lambda: shift_images(torch.zeros(1, 1, 4, 4), 1, 0, "reflect"), ValueError, "fill: got 'reflect'; allowed: zeros, nearest"),
    (lambda: translated_queries(torch.zeros(1, 1, 4, 4), 1, flip="yes"), ValueError, "flip: must be True or False"),
    (lambda: translated_queries(torch.zeros(4, 4), 1), ValueError, r"images: expected shape \(N, C, H, W\)"),
    (lambda: label_only_cost("hsj"), ValueError, "attack: got 'hsj'; allowed: gap, translation, boundary"),
    (lambda: translation_correctness(tiny_model(), torch.zeros(2, 1, 8, 8), torch.tensor([0, 3])), ValueError,
     r"labels: must lie in 0..2 \(the model's classes\), got 3"),
    (lambda: label_only_translation(torch.ones(4, 5, dtype=torch.bool), torch.tensor([1, 1, 0, 0]),
                                    torch.ones(4, 3, dtype=torch.bool), torch.tensor([1, 0, 1, 0])),
     AttackInputError, r"adv_correct: must have as many queries per sample as eval_correct \(5\)"),
    (lambda: label_only_translation(torch.ones(4, dtype=torch.bool), torch.tensor([1, 1, 0, 0]),
                                    torch.ones(4, 3, dtype=torch.bool), torch.tensor([1, 0, 1, 0])),
     AttackInputError, r"eval_correct: expected a bool table of shape \(N >= 1, A >= 1\)"),
    (lambda: label_only_boundary(torch.rand(4), torch.tensor([1, 1, 1, 1]), torch.rand(4), torch.tensor([1, 0, 1, 0])),
     AttackInputError, "eval_is_member: needs both members and non-members, got 4 of 4"),
    (lambda: label_only_boundary(torch.tensor([0.1, float("nan"), 0.2, 0.3]), torch.tensor([1, 1, 0, 0]),
                                 torch.rand(4), torch.tensor([1, 0, 1, 0])),
     AttackInputError, "eval_distances: contain NaN or infinite values"),
    (lambda: label_only_boundary(torch.rand(4), torch.tensor([1, 1, 0, 0]), torch.rand(3), torch.tensor([1, 0, 1, 0])),
     AttackInputError, r"adv_is_member: expected shape \(3,\)"),
])
def test_bad_inputs_are_named(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_boundary_attack_needs_one_norm():
    model, images, labels, _, _ = linear_case()
    l2 = boundary_distances(model, images, labels, norm="l2", max_steps=5)
    linf = boundary_distances(model, images, labels, norm="linf", max_steps=5)
    member = torch.arange(12) < 6
    assert isinstance(l2, BoundaryResult)
    with pytest.raises(AttackInputError, match=r"adv_distances: measured in \['l2', 'linf'\]"):
        label_only_boundary(l2, member, linf, member)
