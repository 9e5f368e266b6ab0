"""Distance-to-Confident: the batched search against the per-sample reference, its stopping
rules, the [0, 1] box, the true label, the paper's DtC and its zero-floor variant, the gap and its
bootstrap variance, the DtC attack, and measuring a stored run (with and without the adversary's set)."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mia_utils.attacks import AttackInputError, best_threshold
import mia_utils.attacks.dtc as dtc_module
from mia_utils.attacks.dtc import (DtCResult, confident_loss, distance_to_confident, distance_to_confident_loop,
                           dtc_attack, dtc_gap, dtc_on_run, stored_dtc)


@pytest.fixture(autouse=True)
def one_thread():
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def tiny_model(seed=0, classes=3, dtype=torch.float64):
    """Conv(1 -> 4, 3x3) + ReLU + Linear(256 -> classes) on 1x8x8 inputs."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, classes))
    return model.to(dtype)


def random_samples(n=30, classes=3, seed=0, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    images = torch.rand(n, 1, 8, 8, generator=generator, dtype=dtype)
    labels = torch.randint(0, classes, (n,), generator=generator)
    return images, labels


def true_label_losses(model, images, labels):
    with torch.no_grad():
        return F.cross_entropy(model(images), labels, reduction="none")


class BoxChecker(nn.Module):
    """Wraps a model and records whether every input it saw lay in [0, 1]."""

    def __init__(self, inner):
        super().__init__()
        self.inner = inner
        self.calls = 0
        self.outside = 0

    def forward(self, x):
        self.calls += 1
        self.outside += int(((x < 0) | (x > 1)).any())
        return self.inner(x)


def test_batched_and_per_sample_agree_exactly_in_float64():
    model = tiny_model()
    images, labels = random_samples()
    threshold = float(true_label_losses(model, images, labels).quantile(0.3))
    reference = distance_to_confident_loop(model, images, labels, threshold, step=0.005, max_steps=20)
    # The case mix this test is meant to cover: already confident, reached after moving, capped.
    moved_and_reached = reference.reached & ~reference.already_confident
    counts = reference.counts()
    assert counts["already_confident"] > 0 and int(moved_and_reached.sum()) > 0 and counts["capped"] > 0
    for batch_size in (7, 30, 500):
        batched = distance_to_confident(model, images, labels, threshold, step=0.005, max_steps=20,
                                        batch_size=batch_size)
        # Other batch shapes may round the float64 losses and gradients otherwise (another
        # kernel), but the search only uses their signs and loss <= threshold: the same
        # decisions unless a value falls within rounding (~1e-16) of 0 or the threshold, which
        # random values all but never do. Equal decisions give bitwise equal points, steps and
        # distances.
        assert torch.equal(batched.distances, reference.distances)
        assert torch.equal(batched.steps, reference.steps)
        assert torch.equal(batched.reached, reference.reached)
        assert torch.equal(batched.capped, reference.capped)
        assert torch.equal(batched.already_confident, reference.already_confident)
        # The losses themselves may differ in the last bit (a vectorised reduction per batch size).
        assert torch.allclose(batched.final_losses, reference.final_losses, rtol=1e-12, atol=0)
    assert batched.distances.dtype == torch.float64 and batched.steps.dtype == torch.int64
    # The stopping rule: reached samples end at or under the threshold, capped ones above it.
    assert (batched.final_losses[batched.reached] <= threshold).all()
    assert (batched.final_losses[batched.capped] > threshold).all()
    assert (batched.steps[batched.capped] == 20).all()
    # Each step moves every pixel by at most 0.005 = 5 units.
    assert (batched.distances <= 5 * batched.steps.double() + 1e-9).all()


def test_uint8_images_equal_float_images_over_255():
    model = tiny_model()
    generator = torch.Generator().manual_seed(1)
    raw = torch.randint(0, 256, (12, 1, 8, 8), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, 3, (12,), generator=generator)
    threshold = float(true_label_losses(model, raw.double() / 255, labels).median())
    a = distance_to_confident(model, raw, labels, threshold, step=0.005, max_steps=10)
    b = distance_to_confident(model, raw.double() / 255, labels, threshold, step=0.005, max_steps=10)
    # bitwise on any CPU: the same float64 images (x / 255 either way), searched in the same batches
    assert torch.equal(a.distances, b.distances) and torch.equal(a.steps, b.steps)


def test_float32_runs_in_float32_and_mostly_matches_the_loop():
    model = tiny_model(dtype=torch.float32)
    images, labels = random_samples(dtype=torch.float32)
    threshold = float(true_label_losses(model, images, labels).quantile(0.3))
    batched = distance_to_confident(model, images, labels, threshold, step=0.005, max_steps=20, batch_size=8,
                                    return_images=True)
    reference = distance_to_confident_loop(model, images, labels, threshold, step=0.005, max_steps=20)
    assert batched.final_images.dtype == torch.float32
    # A near-zero gradient's sign may differ with the batch size in float32: allow rare disagreements.
    assert (batched.steps == reference.steps).float().mean() >= 0.9


def test_already_confident_sample_has_zero_distance_and_steps():
    model = tiny_model()
    images, labels = random_samples(n=5)
    whole = true_label_losses(model, images, labels)  # as the batched search computes them
    alone = torch.cat([true_label_losses(model, images[i: i + 1], labels[i: i + 1]) for i in range(5)])
    # Each search's own losses, as the threshold must be exact: one sample at a time may round
    # otherwise (another kernel; 8 of the first test's 30 losses differ in the last bit here).
    for fn, losses in ((distance_to_confident, whole), (distance_to_confident_loop, alone)):
        threshold = float(losses[2])  # sample 2 sits exactly at the threshold: confident (loss <= threshold)
        result = fn(model, images, labels, threshold, step=0.005, max_steps=10)
        assert result.already_confident[2] and result.reached[2] and not result.capped[2]
        assert result.steps[2] == 0 and result.distances[2] == 0.0
        # The paper's DtC counts it as one step of 0.005 = 5 units; the others keep their distance.
        assert result.paper_distances[2] == 5.0 and result.paper_distances.dtype == torch.float64
        moved = ~result.already_confident
        assert torch.equal(result.paper_distances[moved], result.distances[moved])  # a copy of those rows
        assert result.already_confident.tolist() == (losses <= threshold).tolist()
        assert result.counts()["already_confident"] == int((losses <= threshold).sum())
    everyone = distance_to_confident(model, images, labels, threshold=100.0)
    assert everyone.counts()["already_confident"] == 5 and everyone.counts()["total_steps"] == 0
    # bitwise on any CPU: no step is taken, and 0.001 x 1000 rounds to 1.0 in IEEE float64
    assert torch.equal(everyone.distances, torch.zeros(5, dtype=torch.float64))
    assert torch.equal(everyone.paper_distances, torch.ones(5, dtype=torch.float64))  # default step: 1 unit


@pytest.mark.parametrize("dtype, tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-3)])
def test_the_step_budget_is_a_cap(dtype, tolerance):
    model = tiny_model(dtype=dtype)
    images, labels = random_samples(n=6, dtype=dtype)
    for fn in (distance_to_confident, distance_to_confident_loop):
        result = fn(model, images, labels, threshold=1e-6, step=0.001, max_steps=5)  # unreachable in 5 steps
        assert result.counts()["capped"] == 6 and not result.reached.any() and not result.already_confident.any()
        assert (result.steps == 5).all()
        assert (result.distances <= 5.0 + tolerance).all() and (result.distances > 0).all()
    none = distance_to_confident(model, images, labels, threshold=1e-6, max_steps=0)
    assert (none.steps == 0).all() and none.counts()["capped"] == 6 and (none.distances == 0).all()


def test_inputs_stay_in_the_unit_box():
    model = BoxChecker(tiny_model())
    images, labels = random_samples(n=20)
    images[:, :, :4] = images[:, :, :4].round()  # half of each image at exactly 0 or 1: the clamp matters
    for fn, kwargs in ((distance_to_confident, {"batch_size": 6}), (distance_to_confident_loop, {})):
        model.calls = model.outside = 0
        result = fn(model, images, labels, threshold=1e-6, step=0.05, max_steps=8, return_images=True, **kwargs)
        assert model.calls > 0 and model.outside == 0
        assert result.final_images.shape == images.shape
        assert result.final_images.min() >= 0 and result.final_images.max() <= 1
        # The distance is the L-infinity distance of the returned final points, x 1000.
        expected = (result.final_images - images).abs().flatten(1).amax(1) * 1000
        assert torch.allclose(result.distances, expected)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        distance_to_confident(model, images * 2, labels, threshold=1.0)


class TwoClassLinear(nn.Module):
    """logits = (w.x, -w.x): lowering the loss of class 1 means moving against w, of class 0 along it."""

    def __init__(self, w):
        super().__init__()
        self.w = nn.Parameter(w)
        self.seen = []

    def forward(self, x):
        self.seen.append(x.detach().clone())
        score = x.flatten(1) @ self.w
        return torch.stack([score, -score], dim=1)


def test_the_gradient_is_taken_on_the_true_label():
    w = torch.linspace(-1, 1, 64, dtype=torch.float64).reshape(64)
    model = TwoClassLinear(w)
    x = (0.5 + 0.3 * torch.sign(w)).reshape(1, 1, 8, 8)  # w.x > 0: the model predicts class 0
    label = torch.tensor([1])  # ... but the true label is 1
    with torch.no_grad():
        assert model(x).argmax(1).item() == 0
    start = F.cross_entropy(model(x).detach(), label).item()
    threshold = start - 0.5
    model.seen.clear()
    result = distance_to_confident(model, x, label, threshold, step=0.01, max_steps=100)
    assert result.reached.all() and not result.already_confident.any()
    assert result.final_losses[0] <= threshold < result.initial_losses[0]
    # Along the path the true-label loss falls at every step (stepping on the predicted label's
    # loss would raise it and never reach the threshold).
    with torch.no_grad():
        path = torch.stack([F.cross_entropy(torch.stack([p.flatten(1) @ w, -(p.flatten(1) @ w)], 1), label)
                            for p in model.seen])
    assert len(path) == int(result.steps[0]) + 1
    assert (path[1:] < path[:-1]).all()
    # The direction: pixels move against w (where unclamped), as the true label's gradient says.
    moved = model.seen[-1] - x
    assert ((moved.flatten() * w) <= 0).all() and (moved != 0).any()
    assert model.w.grad is None and model.w.requires_grad


def test_model_state_is_restored():
    model = tiny_model().train()
    images, labels = random_samples(n=4)
    distance_to_confident(model, images, labels, threshold=1e-6, step=0.01, max_steps=3)
    distance_to_confident_loop(model, images, labels, threshold=1e-6, step=0.01, max_steps=3)
    assert model.training
    assert all(p.requires_grad and p.grad is None for p in model.parameters())


def test_bad_arguments_are_refused():
    model = tiny_model()
    images, labels = random_samples(n=4)
    for kwargs, match in (({"step": 0.0}, "step"), ({"max_steps": -1}, "max_steps"),
                          ({"batch_size": 0}, "batch_size"), ({"threshold": float("nan")}, "threshold")):
        arguments = {"threshold": 1.0, **kwargs}
        with pytest.raises(ValueError, match=match):
            distance_to_confident(model, images, labels, **arguments)
    with pytest.raises(ValueError, match="labels"):
        distance_to_confident(model, images, labels[:3], 1.0)
    empty = distance_to_confident(model, images[:0], labels[:0], 1.0)
    assert len(empty) == 0 and empty.counts()["n"] == 0


def test_confidence_threshold_is_the_median():
    assert confident_loss(torch.tensor([3.0, 1.0, 2.0])) == 2.0
    assert confident_loss(torch.tensor([1.0, 2.0, 3.0, 10.0])) == 2.5
    with pytest.raises(ValueError):
        confident_loss(torch.tensor([]))


def _result(distances, already=None, capped=None, step=0.001) -> DtCResult:
    d = torch.tensor(distances, dtype=torch.float64)
    n = len(d)
    already = torch.tensor(already) if already is not None else torch.zeros(n, dtype=torch.bool)
    capped = torch.tensor(capped) if capped is not None else torch.zeros(n, dtype=torch.bool)
    zeros = torch.zeros(n, dtype=torch.float64)
    return DtCResult(d, d.long(), already, ~capped, capped, zeros, zeros, 1.0, step, 100)


def test_dtc_gap_on_hand_made_distances():
    gap = dtc_gap(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([4.0, 4.0]))
    assert gap["members_mean"] == 2.0 and gap["nonmembers_mean"] == 4.0
    assert gap["gap"] == pytest.approx(0.5) and gap["n_members"] == 3 and gap["n_nonmembers"] == 2
    # Plain tensors are used as they are for both variants.
    assert gap["members_mean_zero_floor"] == 2.0 and gap["nonmembers_mean_zero_floor"] == 4.0
    assert gap["gap_zero_floor"] == gap["gap"]
    assert gap["gap_variance"] == 0.0 and gap["gap_zero_floor_variance"] == 0.0
    assert math.isnan(dtc_gap(torch.tensor([1.0]), torch.tensor([0.0, 0.0]))["gap"])
    members = _result([0.0, 0.0, 3.0, 100.0], already=[True, True, False, False], capped=[False, False, False, True])
    nonmembers = _result([0.0, 5.0, 7.0, 100.0], already=[True, False, False, False],
                         capped=[False, False, True, True])
    gap = dtc_gap(members, nonmembers)
    # The paper's DtC: the already confident count as one step (1 unit): members 1+1+3+100, non-members 1+5+7+100.
    assert gap["members_mean"] == pytest.approx(105 / 4) and gap["nonmembers_mean"] == pytest.approx(113 / 4)
    assert gap["gap"] == pytest.approx((113 - 105) / 113)
    # DtC (zero floor): they count as 0.
    assert gap["members_mean_zero_floor"] == pytest.approx(103 / 4)
    assert gap["nonmembers_mean_zero_floor"] == pytest.approx(112 / 4)
    assert gap["gap_zero_floor"] == pytest.approx((112 - 103) / 112)
    assert gap["members_already_confident"] == 2 and gap["nonmembers_already_confident"] == 1
    assert gap["members_capped"] == 1 and gap["nonmembers_capped"] == 2
    assert gap["members_mean_outside"] == pytest.approx(103 / 2)
    assert gap["nonmembers_mean_outside"] == pytest.approx(112 / 3)
    assert gap["gap_outside"] == pytest.approx((112 / 3 - 103 / 2) / (112 / 3))
    assert gap["gap_variance"] == 0.0 and gap["gap_zero_floor_variance"] == 0.0


def test_paper_and_zero_floor_dtc_differ_on_already_confident_samples():
    """A hand-made case with step 0.002: one step is 2 units."""
    members = _result([0.0, 0.0, 4.0, 6.0], already=[True, True, False, False], step=0.002)
    nonmembers = _result([0.0, 8.0, 10.0, 12.0], already=[True, False, False, False], step=0.002)
    assert members.paper_distances.tolist() == [2.0, 2.0, 4.0, 6.0]
    assert members.distances.tolist() == [0.0, 0.0, 4.0, 6.0]
    assert nonmembers.paper_distances.tolist() == [2.0, 8.0, 10.0, 12.0]
    # subset keeps the step, so a subset's paper DtC is the paper DtC's subset.
    assert members.subset(torch.tensor([0, 2])).paper_distances.tolist() == [2.0, 4.0]
    gap = dtc_gap(members, nonmembers)
    # Paper: S = (2 + 2 + 4 + 6) / 4 = 3.5, D = (2 + 8 + 10 + 12) / 4 = 8, gap = 4.5 / 8.
    assert gap["members_mean"] == 3.5 and gap["nonmembers_mean"] == 8.0
    assert gap["gap"] == pytest.approx(0.5625, abs=1e-15)
    # Zero floor: S = 10 / 4 = 2.5, D = 30 / 4 = 7.5, gap = 5 / 7.5.
    assert gap["members_mean_zero_floor"] == 2.5 and gap["nonmembers_mean_zero_floor"] == 7.5
    assert gap["gap_zero_floor"] == pytest.approx(2 / 3, abs=1e-15)
    # Outside the already confident both agree: S = 5, D = 10.
    assert gap["members_mean_outside"] == 5.0 and gap["nonmembers_mean_outside"] == 10.0
    assert gap["gap_outside"] == 0.5
    assert gap["members_already_confident"] == 2 and gap["nonmembers_already_confident"] == 1
    assert gap["n_members"] == 4 and gap["n_nonmembers"] == 4
    # The keys kept from before, and the new ones.
    assert set(gap) == {"members_mean", "nonmembers_mean", "gap", "members_mean_zero_floor",
                        "nonmembers_mean_zero_floor", "gap_zero_floor", "n_members", "n_nonmembers",
                        "members_already_confident", "members_capped", "nonmembers_already_confident",
                        "nonmembers_capped", "members_mean_outside", "nonmembers_mean_outside", "gap_outside",
                        "gap_variance", "gap_zero_floor_variance"}
    # A DtCResult on one side and plain distances on the other: the tensor is used as it is.
    mixed = dtc_gap(members, torch.tensor([8.0, 8.0]))
    assert mixed["members_mean"] == 3.5 and mixed["members_mean_zero_floor"] == 2.5
    assert mixed["nonmembers_mean"] == mixed["nonmembers_mean_zero_floor"] == 8.0


def _reference_gap_variance(members, nonmembers, n_bootstrap, seed):
    """The slow reference: one replicate at a time, means summed sample by sample; draws per
    replicate the member indices then the non-member indices from default_rng(seed)."""
    rng = np.random.default_rng(seed)
    members, nonmembers = [float(v) for v in members], [float(v) for v in nonmembers]
    gaps = []
    for _ in range(n_bootstrap):
        s_index = rng.integers(0, len(members), size=(1, len(members)))[0]
        d_index = rng.integers(0, len(nonmembers), size=(1, len(nonmembers)))[0]
        s = sum(members[i] for i in s_index) / len(members)
        d = sum(nonmembers[i] for i in d_index) / len(nonmembers)
        gaps.append((d - s) / d)
    mean = sum(gaps) / len(gaps)
    return sum((g - mean) ** 2 for g in gaps) / (len(gaps) - 1)


def _bootstrap_case(n=60, seed=3):
    generator = torch.Generator().manual_seed(seed)
    m_d = (20 * torch.rand(n, generator=generator)).double()
    n_d = (10 + 30 * torch.rand(n + 7, generator=generator)).double()
    m_already = torch.rand(n, generator=generator) < 0.4
    n_already = torch.rand(n + 7, generator=generator) < 0.15
    m_d[m_already], n_d[n_already] = 0.0, 0.0
    members = _result(m_d.tolist(), already=m_already.tolist())
    nonmembers = _result(n_d.tolist(), already=n_already.tolist())
    return members, nonmembers


def test_gap_variance_matches_the_reference_loop_draw_for_draw(monkeypatch):
    members, nonmembers = _bootstrap_case()
    # One replicate per chunk: the vectorised version then draws in the reference's order.
    monkeypatch.setattr(dtc_module, "_BOOTSTRAP_CELLS", 1)
    gap = dtc_gap(members, nonmembers, n_bootstrap=300, seed=7)
    paper = _reference_gap_variance(members.paper_distances, nonmembers.paper_distances, 300, 7)
    zero_floor = _reference_gap_variance(members.distances, nonmembers.distances, 300, 7)
    assert gap["gap_variance"] > 0 and gap["gap_zero_floor_variance"] > 0
    assert gap["gap_variance"] == pytest.approx(paper, rel=1e-9)
    assert gap["gap_zero_floor_variance"] == pytest.approx(zero_floor, rel=1e-9)
    assert gap["gap_variance"] != pytest.approx(gap["gap_zero_floor_variance"], rel=1e-3)
    # The bootstrap leaves the point values alone.
    plain = dtc_gap(members, nonmembers)
    assert {k: v for k, v in gap.items() if "variance" not in k} == {k: v for k, v in plain.items()
                                                                    if "variance" not in k}


def test_gap_variance_agrees_with_independent_estimates():
    members, nonmembers = _bootstrap_case(n=200, seed=5)
    gap = dtc_gap(members, nonmembers, n_bootstrap=4000, seed=0)  # default chunks: other draws
    assert gap == dtc_gap(members, nonmembers, n_bootstrap=4000, seed=0)  # deterministic
    assert gap["gap_variance"] != dtc_gap(members, nonmembers, n_bootstrap=4000, seed=1)["gap_variance"]
    for key, s_values, d_values in (("gap_variance", members.paper_distances, nonmembers.paper_distances),
                                    ("gap_zero_floor_variance", members.distances, nonmembers.distances)):
        # An independent bootstrap (other seed, the slow loop): within sampling error (about 3 %).
        reference = _reference_gap_variance(s_values, d_values, 4000, seed=12345)
        assert gap[key] == pytest.approx(reference, rel=0.12)
        # The delta method: var((D - S) / D) ~ var(S) / D^2 + S^2 var(D) / D^4, var of a mean = var / n.
        s, d = s_values.mean().item(), d_values.mean().item()
        var_s = s_values.var(unbiased=False).item() / len(s_values)
        var_d = d_values.var(unbiased=False).item() / len(d_values)
        assert gap[key] == pytest.approx(var_s / d ** 2 + s ** 2 * var_d / d ** 4, rel=0.15)
    # Plain tensors: both variances are the same.
    plain = dtc_gap(members.distances, nonmembers.distances, n_bootstrap=50, seed=2)
    assert plain["gap_variance"] == plain["gap_zero_floor_variance"] > 0


def test_gap_bootstrap_arguments_are_checked():
    s, d = torch.tensor([1.0, 2.0]), torch.tensor([3.0, 4.0])
    for bad in (-1, 1.5, True, None):
        with pytest.raises(ValueError, match="n_bootstrap"):
            dtc_gap(s, d, n_bootstrap=bad)
    with pytest.raises(ValueError, match="seed"):
        dtc_gap(s, d, n_bootstrap=3, seed=-1)
    assert dtc_gap(s, d, n_bootstrap=1)["gap_variance"] == 0.0  # one replicate: no spread
    with pytest.raises(ValueError, match="members"):
        dtc_gap(torch.tensor([]), d)


def _synthetic(n, seed, member_range=(0.0, 2.0), nonmember_range=(3.0, 8.0)):
    generator = torch.Generator().manual_seed(seed)
    members = member_range[0] + (member_range[1] - member_range[0]) * torch.rand(n, generator=generator)
    nonmembers = nonmember_range[0] + (nonmember_range[1] - nonmember_range[0]) * torch.rand(n, generator=generator)
    is_member = torch.cat([torch.ones(n, dtype=torch.bool), torch.zeros(n, dtype=torch.bool)])
    return torch.cat([members, nonmembers]).double(), is_member


def test_dtc_attack_separates_closer_members():
    eval_d, eval_m = _synthetic(200, seed=0, member_range=(0.0, 3.5), nonmember_range=(3.0, 8.0))
    adv_d, adv_m = _synthetic(200, seed=1, member_range=(0.0, 3.5), nonmember_range=(3.0, 8.0))
    result = dtc_attack(eval_d, eval_m, adv_d, adv_m, n_bootstrap=20, seed=0)
    assert result.name == "dtc" and result.advantage > 0.8 and result.auc > 0.9
    # bitwise on any CPU: a negation, and the comparison that made the predictions
    assert torch.equal(result.scores, -eval_d)
    assert torch.equal(result.predicted, result.scores >= result.threshold)
    assert set(result.metrics) >= {"advantage", "auc", "tpr_at_0.1%_fpr"}
    # The threshold comes from the adversary's samples only.
    assert result.threshold == best_threshold(-adv_d, adv_m)
    shifted = dtc_attack(eval_d + 1.0, eval_m, adv_d, adv_m, n_bootstrap=0)
    assert shifted.threshold == result.threshold
    # A DtCResult works as well as plain distances.
    wrapped = dtc_attack(_result(eval_d.tolist()), eval_m, _result(adv_d.tolist()), adv_m, n_bootstrap=20)
    assert wrapped.advantage == result.advantage and wrapped.threshold == result.threshold


def test_dtc_attack_scores_with_the_paper_dtc():
    # Already-confident samples have distance 0 but paper DtC 2 (step 0.002): the score is -2.
    eval_result = _result([0.0, 1.5, 3.0, 5.0], already=[True, False, False, False], step=0.002)
    adv_result = _result([0.0, 0.0, 2.5, 6.0], already=[True, True, False, False], step=0.002)
    membership = torch.tensor([True, True, False, False])
    attack = dtc_attack(eval_result, membership, adv_result, membership, n_bootstrap=0)
    assert attack.scores.tolist() == [-2.0, -1.5, -3.0, -5.0]
    assert attack.threshold == best_threshold(-adv_result.paper_distances, membership) == -2.25
    assert attack.predicted.tolist() == [True, True, False, False]


def test_dtc_attack_threshold_ignores_the_evaluation_set():
    adv_d = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    adv_m = torch.tensor([True, True, False, False])
    eval_d = torch.tensor([1.8, 0.2, 1.2, 5.0], dtype=torch.float64)  # member at 1.8 would move an eval-fit cut
    eval_m = torch.tensor([True, True, False, False])
    result = dtc_attack(eval_d, eval_m, adv_d, adv_m, n_bootstrap=0)
    assert result.threshold == -1.5  # midway between the adversary's member at 1 and non-member at 2
    assert result.predicted.tolist() == [False, True, True, False]
    with pytest.raises(AttackInputError):
        dtc_attack(eval_d, torch.ones(4, dtype=torch.bool), adv_d, adv_m)


def test_dtc_on_a_stored_run(tiny_config, store):
    from mia_utils.experiment import run

    result = run(tiny_config.replace(n_eval=20, n_adversary=20), store, progress=False)
    measured = dtc_on_run(result, max_samples=4, device="cpu", max_steps=3, batch_size=5)
    assert measured.threshold == confident_loss(result.outputs["member_losses"])
    assert len(measured.eval) == 8 and len(measured.adv) == 8
    assert measured.eval_is_member.tolist() == [True] * 4 + [False] * 4
    assert (measured.eval.steps <= 3).all() and (measured.eval.distances <= 3 + 1e-3).all()
    # The rebuilt images are the ones the stored logits came from: the starting losses agree.
    stored = F.cross_entropy(result.outputs["eval_logits"], result.outputs["eval_labels"], reduction="none")
    keep = torch.cat([torch.arange(4), 20 + torch.arange(4)])
    assert torch.allclose(measured.eval.initial_losses.float(), stored[keep], atol=1e-5)
    assert measured.gap["n_members"] == 4 and measured.gap["n_nonmembers"] == 4
    attack = measured.attack(n_bootstrap=0)
    assert attack.name == "dtc" and len(attack.scores) == 8
    assert torch.equal(attack.scores, -measured.eval.paper_distances)  # a negation: bitwise on any CPU
    assert measured.gap["members_mean"] == measured.eval.paper_distances[:4].mean().item()
    assert measured.gap["members_mean_zero_floor"] == measured.eval.distances[:4].mean().item()

    # Without the adversary's set: the same evaluation-set results, no adv part, no attack.
    alone = dtc_on_run(result, max_samples=4, device="cpu", max_steps=3, batch_size=5, adversary=False)
    assert alone.adv is None and alone.adv_is_member is None
    # bitwise on any CPU: the evaluation set is searched by the same call, in the same batches
    assert torch.equal(alone.eval.distances, measured.eval.distances)
    assert torch.equal(alone.eval.steps, measured.eval.steps)
    assert torch.equal(alone.eval_is_member, measured.eval_is_member)
    assert alone.gap == measured.gap
    with pytest.raises(ValueError, match="adversary"):
        alone.attack(n_bootstrap=0)
    with pytest.raises(ValueError, match="adversary"):
        dtc_on_run(result, max_samples=4, device="cpu", max_steps=3, adversary="no")


def test_stored_dtc_without_the_adversary(tiny_config, store, monkeypatch):
    from mia_utils.experiment import run

    result = run(tiny_config.replace(n_eval=20, n_adversary=20), store, progress=False)
    settings = dict(max_samples=4, device="cpu", max_steps=3, batch_size=5)
    before = {key for key in store.keys() if key.startswith("dtc-")}
    alone = stored_dtc(result, store, adversary=False, n_bootstrap=50, seed=1, **settings)
    assert alone.adv is None and alone.adv_is_member is None and len(alone.eval) == 8
    # the zero-floor gap is undefined (NaN variance) when a resample's non-members all start confident
    assert alone.gap["gap_variance"] >= 0 and not alone.gap["gap_zero_floor_variance"] < 0
    members, nonmembers = alone.eval.subset(alone.eval_is_member), alone.eval.subset(~alone.eval_is_member)
    assert alone.gap == pytest.approx(dtc_gap(members, nonmembers, 50, 1), nan_ok=True)
    with pytest.raises(ValueError, match="adversary"):
        alone.attack(n_bootstrap=0)
    added = {key for key in store.keys() if key.startswith("dtc-")} - before
    assert len(added) == 1

    # Read back from the store: nothing is measured again, and the entry has no adv part.
    def refuse(*args, **kwargs):
        raise AssertionError("measured again instead of read back")

    monkeypatch.setattr(dtc_module, "dtc_on_run", refuse)
    again = stored_dtc(result, store, adversary=False, n_bootstrap=50, seed=1, **settings)
    assert again.adv is None and again.adv_is_member is None
    # bitwise on any CPU: read back from the store
    assert torch.equal(again.eval.distances, alone.eval.distances)
    assert torch.equal(again.eval.paper_distances, alone.eval.paper_distances)
    assert torch.equal(again.eval_is_member, alone.eval_is_member)
    assert again.gap == pytest.approx(alone.gap, nan_ok=True) and again.threshold == alone.threshold
    # adversary, n_bootstrap and seed are part of the key: other values are other entries.
    for other in ({"adversary": True}, {"n_bootstrap": 0}, {"seed": 2}):
        with pytest.raises(AssertionError, match="measured again"):
            stored_dtc(result, store, **{"adversary": False, "n_bootstrap": 50, "seed": 1, **other}, **settings)
    monkeypatch.undo()
    with_adversary = stored_dtc(result, store, n_bootstrap=50, seed=1, **settings)
    assert len(with_adversary.adv) == 8 and with_adversary.attack(n_bootstrap=0).name == "dtc"
    # bitwise on any CPU: the evaluation set is searched by the same call, in the same batches
    assert torch.equal(with_adversary.eval.distances, alone.eval.distances)
    with pytest.raises(ValueError, match="n_bootstrap"):
        stored_dtc(result, store, n_bootstrap=-1, **settings)


def _run_dtc(member_distances, nonmember_distances) -> "dtc_module.RunDtC":
    """A RunDtC of hand-made distances (members first), none already confident or capped."""
    distances = list(member_distances) + list(nonmember_distances)
    is_member = torch.tensor([True] * len(member_distances) + [False] * len(nonmember_distances))
    result = _result(distances)
    gap = dtc_gap(result.subset(is_member), result.subset(~is_member))
    return dtc_module.RunDtC(result, is_member, None, None, 1.0, gap)


def _direct_paired_variance(a_members, a_nonmembers, b_members, b_nonmembers, n_bootstrap, seed):
    """Bootstrap of gap(a) - gap(b), written out sample by sample: each replicate draws one set of
    member positions and one of non-member positions and uses it for both runs (the paper's DtC
    of a sample that is not already confident is its distance)."""
    rng = np.random.default_rng(seed)
    differences = []
    for _ in range(n_bootstrap):
        s = rng.integers(0, len(a_members), len(a_members))
        d = rng.integers(0, len(a_nonmembers), len(a_nonmembers))
        gap_a = 1 - a_members[s].mean() / a_nonmembers[d].mean()
        gap_b = 1 - b_members[s].mean() / b_nonmembers[d].mean()
        differences.append(gap_a - gap_b)
    return float(np.var(differences, ddof=1))


def test_paired_gap_variance_is_the_bootstrap_of_the_difference_on_shared_resamples():
    rng = np.random.default_rng(3)
    a_members, a_nonmembers = rng.gamma(2.0, 10.0, 60), rng.gamma(3.0, 10.0, 80)
    # b: the same samples seen by a second model, strongly correlated with a's distances
    b_members = a_members * 0.9 + rng.gamma(2.0, 1.0, 60)
    b_nonmembers = a_nonmembers * 0.8 + rng.gamma(2.0, 1.0, 80)
    a, b = _run_dtc(a_members, a_nonmembers), _run_dtc(b_members, b_nonmembers)
    n = 4000
    paired = dtc_module.paired_gap_variance(a, b, n, seed=5)
    direct = _direct_paired_variance(a_members, a_nonmembers, b_members, b_nonmembers, n, seed=11)
    # two bootstraps of the same quantity with different draws: within Monte Carlo error
    # (the relative SE of a variance from 4000 replicates is about sqrt(2 / 4000) = 2.2 %)
    assert paired == pytest.approx(direct, rel=0.12)
    # the pairing cancels what the two runs share: far below the sum of the runs' own variances
    own = [dtc_gap(r.eval.subset(r.eval_is_member), r.eval.subset(~r.eval_is_member), n, 5)["gap_variance"]
           for r in (a, b)]
    assert paired < 0.3 * sum(own)
    # a run against itself: nothing is left
    assert dtc_module.paired_gap_variance(a, a, 200, seed=5) == 0.0


def test_paired_gap_variance_of_unrelated_runs_is_about_the_sum():
    rng = np.random.default_rng(4)
    a = _run_dtc(rng.gamma(2.0, 10.0, 100), rng.gamma(3.0, 10.0, 100))
    b = _run_dtc(rng.gamma(2.0, 10.0, 100), rng.gamma(3.0, 10.0, 100))
    n = 4000
    own = [dtc_gap(r.eval.subset(r.eval_is_member), r.eval.subset(~r.eval_is_member), n, 7)["gap_variance"]
           for r in (a, b)]
    assert dtc_module.paired_gap_variance(a, b, n, seed=7) == pytest.approx(sum(own), rel=0.15)


def test_paired_gap_variance_refuses_different_samples_and_too_few_resamples():
    a = _run_dtc([1.0, 2.0, 3.0], [4.0, 5.0])
    b = _run_dtc([1.0, 2.0], [4.0, 5.0, 6.0])
    with pytest.raises(ValueError, match="same evaluation samples"):
        dtc_module.paired_gap_variance(a, b, 100)
    with pytest.raises(ValueError, match="n_bootstrap"):
        dtc_module.paired_gap_variance(a, a, 1)
