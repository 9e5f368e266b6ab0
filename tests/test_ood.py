"""Out-of-distribution sets and calibration (mia_utils.attacks.ood) on small, checkable cases."""

import numpy as np
import pytest
import torch
from torch import nn

from mia_utils.attacks import ood


def fake_test_images(n=64, seed=0):
    return torch.randint(0, 256, (n, 1, 28, 28), generator=torch.Generator().manual_seed(seed), dtype=torch.uint8)


def test_every_ood_set_is_well_formed_and_disjoint_from_members():
    members = fake_test_images(200, seed=1)
    nonmembers = fake_test_images(50, seed=2)
    sets = ood.ood_sets(nonmembers, 50, seed=3)
    assert set(sets) == set(ood.OOD_SETS)
    member_rows = {bytes(row.numpy()) for row in members.flatten(1)}
    for name, images in sets.items():
        assert images.dtype == torch.uint8 and images.shape == (50, 1, 28, 28), name
        assert int(images.min()) >= 0 and int(images.max()) <= 255
        assert not any(bytes(row.numpy()) in member_rows for row in images.flatten(1)), name


def test_digits_are_real_mnist_and_seeded():
    digits = ood.mnist_digits(20, seed=0)
    # bitwise on any CPU: uint8 images drawn with a seeded generator
    assert torch.equal(digits, ood.mnist_digits(20, seed=0))
    assert not torch.equal(digits, ood.mnist_digits(20, seed=1))
    # handwritten strokes on a black background: mostly zero pixels, some saturated ones
    assert (digits == 0).float().mean() > 0.6 and int(digits.max()) >= 250
    with pytest.raises(ValueError, match="n: must be in 1..5000"):
        ood.mnist_digits(0)


def test_permutation_keeps_the_pixels_and_inversion_flips_them():
    images = fake_test_images(8)
    permuted = ood.permuted_images(images, seed=4)
    # bitwise on any CPU: uint8 pixels moved, or inverted in integers
    assert torch.equal(permuted.flatten(1).sort(1).values, images.flatten(1).sort(1).values)
    assert not torch.equal(permuted, images)
    # one permutation for all images: the same source pixel lands in the same place
    order = torch.from_numpy(np.random.default_rng(4).permutation(784))
    assert torch.equal(permuted.flatten(1), images.flatten(1)[:, order])
    assert torch.equal(ood.inverted_images(images).int() + images.int(), torch.full(images.shape, 255, dtype=torch.int32))
    with pytest.raises(ValueError, match="images: expected uint8"):
        ood.inverted_images(images.float())


def test_uniform_noise_covers_the_range():
    noise = ood.uniform_noise(100, seed=0)
    assert abs(noise.float().mean().item() - 127.5) < 2 and int(noise.min()) == 0 and int(noise.max()) == 255


def test_fitted_temperature_minimises_validation_nll_against_a_grid():
    generator = torch.Generator().manual_seed(0)
    labels = torch.randint(0, 5, (400,), generator=generator)
    # overconfident logits: right 70 % of the time, but with large margins
    logits = torch.randn(400, 5, generator=generator)
    right = torch.rand(400, generator=generator) < 0.7
    logits[right, labels[right]] += 4.0
    logits *= 3.0
    fitted = ood.fit_temperature(logits, labels)
    grid = np.exp(np.linspace(np.log(0.05), np.log(20), 2001))
    losses = [ood.nll(logits, labels, t) for t in grid]
    best = grid[int(np.argmin(losses))]
    assert abs(np.log(fitted) - np.log(best)) < 0.01
    assert ood.nll(logits, labels, fitted) <= min(losses) + 1e-9
    assert fitted > 1.0  # overconfident logits are cooled down
    with pytest.raises(ValueError, match="labels: fitting a temperature needs"):
        ood.fit_temperature(logits[:0], labels[:0])


def test_laplace_confidence_falls_far_from_the_data():
    torch.manual_seed(0)
    generator = torch.Generator().manual_seed(0)
    centres = torch.tensor([[-2.0, 0.0], [2.0, 0.0]])
    labels = torch.arange(2).repeat_interleave(100)
    points = centres[labels] + 0.5 * torch.randn(200, 2, generator=generator)
    model = nn.Sequential(nn.Linear(2, 32), nn.ReLU(), nn.Linear(32, 2))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(300):
        loss = nn.functional.cross_entropy(model(points), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    from laplace import Laplace
    from torch.utils.data import DataLoader, TensorDataset

    laplace = Laplace(model.eval(), "classification", subset_of_weights="last_layer", hessian_structure="kron")
    laplace.fit(DataLoader(TensorDataset(points, labels), batch_size=50))
    laplace.optimize_prior_precision(method="marglik")
    near, far = torch.tensor([[2.0, 0.0]]), torch.tensor([[60.0, 60.0]])
    with torch.no_grad():
        map_far = model(far).softmax(1).max().item()
        laplace_near = laplace(near, pred_type="glm", link_approx="probit").max().item()
        laplace_far = laplace(far, pred_type="glm", link_approx="probit").max().item()
    assert map_far > 0.99  # the ReLU network is overconfident far away
    assert laplace_near > 0.9  # still confident on the data
    assert laplace_far < map_far - 0.05  # and less confident far from it


def test_expected_calibration_error_by_hand():
    # top probabilities 0.95 (right), 0.95 (wrong), 0.55 (right), 0.62 (right) with 10 bins:
    # bin (0.9, 1]: accuracy 1/2, confidence 0.95 -> gap 0.45, weight 2/4
    # bin (0.5, 0.6]: accuracy 1, confidence 0.55 -> gap 0.45, weight 1/4
    # bin (0.6, 0.7]: accuracy 1, confidence 0.62 -> gap 0.38, weight 1/4
    probabilities = torch.tensor([[0.95, 0.05], [0.95, 0.05], [0.45, 0.55], [0.62, 0.38]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 0])
    expected = 0.5 * 0.45 + 0.25 * 0.45 + 0.25 * 0.38
    assert ood.expected_calibration_error(probabilities, labels, bins=10) == pytest.approx(expected)
    # perfectly calibrated: confidence 0.75 and three of four right
    calibrated = torch.tensor([[0.75, 0.25]] * 4, dtype=torch.float64)
    assert ood.expected_calibration_error(calibrated, torch.tensor([0, 0, 0, 1]), bins=10) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="probabilities, labels"):
        ood.expected_calibration_error(calibrated, torch.tensor([0, 1]))


def test_free_test_split_avoids_the_used_images():
    used = torch.tensor([0, 2, 4, 6])
    source, validation = ood.free_test_split(10, used, n_ood=2, max_validation=3)
    assert source.tolist() == [1, 3] and validation.tolist() == [5, 7, 8]
    _, validation = ood.free_test_split(10, used, n_ood=5, max_validation=3)
    assert validation.tolist() == [9]
    with pytest.raises(ValueError, match="ood_samples: 6 leaves too few free test images"):
        ood.free_test_split(10, used, n_ood=6, max_validation=3)
