"""The label-only attacks as Choquette-Choo et al. publish them (mia_utils.attacks.label_only):
the translation attack's attack model against a line-by-line port of the reference code's
training steps (``attacks.py`` ``train_model`` / ``AttackModel`` of type "d" / Keras's Adam, batch
size 1) on a tiny case, the choice of its learning rate, and the threshold fit against a port of
``get_threshold`` / ``get_max_accuracy`` (sklearn's ROC thresholds, ``score > t``). ART has no
translation attack to compare with (its label-only attacks are the gap and the decision boundary)."""

import math

import numpy as np
import pytest
import torch

from mia_utils.attacks.inputs import AttackInputError
from mia_utils.attacks.label_only import (
    ATTACK_MODEL_RATES,
    _glorot_normal,
    attack_model_probabilities,
    label_only_boundary,
    label_only_translation,
    label_only_translation_model,
    reference_threshold,
    train_attack_models,
)


def _reference_train(x, y, w, b, order, lr, epochs_orders):
    """A port of the reference's ``train_model`` for one class's ``AttackModel("d")``: Dense(10) ->
    LeakyReLU(0.01) -> Dense(10) -> LeakyReLU(0.01) -> Dense(2) -> softmax, sparse categorical
    cross-entropy, Keras's Adam (beta 0.9 / 0.999, epsilon 1e-7), batch size 1, in the given
    sample orders (one per epoch). Numpy, forward and backward by hand, float64."""
    w = [a.copy() for a in w]
    b = [a.copy() for a in b]
    m = [np.zeros_like(a) for a in w + b]
    v = [np.zeros_like(a) for a in w + b]
    t = 0
    for order in epochs_orders:
        for i in order:
            t += 1
            a0 = x[i][None, :]
            z1 = a0 @ w[0] + b[0]
            a1 = np.where(z1 > 0, z1, 0.01 * z1)
            z2 = a1 @ w[1] + b[1]
            a2 = np.where(z2 > 0, z2, 0.01 * z2)
            z3 = a2 @ w[2] + b[2]
            p = np.exp(z3 - z3.max()) / np.exp(z3 - z3.max()).sum()
            dz3 = p.copy()
            dz3[0, y[i]] -= 1.0
            gw2, gb2 = a2.T @ dz3, dz3
            dz2 = (dz3 @ w[2].T) * np.where(z2 > 0, 1.0, 0.01)
            gw1, gb1 = a1.T @ dz2, dz2
            dz1 = (dz2 @ w[1].T) * np.where(z1 > 0, 1.0, 0.01)
            gw0, gb0 = a0.T @ dz1, dz1
            grads = [gw0, gw1, gw2, gb0, gb1, gb2]
            params = w + b
            lr_t = lr * math.sqrt(1 - 0.999 ** t) / (1 - 0.9 ** t)
            for k, (param, grad) in enumerate(zip(params, grads)):
                m[k] = 0.9 * m[k] + 0.1 * grad
                v[k] = 0.999 * v[k] + 0.001 * grad * grad
                param -= lr_t * m[k] / (np.sqrt(v[k]) + 1e-7)
    return w, b


def _reference_predict(x, w, b):
    a = x
    for k in range(3):
        a = a @ w[k] + b[k]
        if k < 2:
            a = np.where(a > 0, a, 0.01 * a)
    e = np.exp(a - a.max(1, keepdims=True))
    return (e / e.sum(1, keepdims=True))[:, 1]


def _tiny_case(seed=0, n=60, queries=5, classes=3):
    generator = torch.Generator().manual_seed(seed)
    member = torch.arange(n) % 2 == 0
    labels = torch.randint(0, classes, (n,), generator=generator)
    rate = torch.where(member, 0.9, 0.6)
    correct = torch.rand(n, queries, generator=generator) < rate[:, None]
    return correct, member, labels


@pytest.mark.parametrize("epochs", [1, 2])
def test_attack_models_match_a_port_of_the_reference_training(epochs):
    """The batched models (all classes and learning rates at once) equal, to rounding, the
    reference's per-class Keras training replayed sample by sample with the same initial weights
    and sample orders."""
    correct, member, labels = _tiny_case()
    classes, seed = 3, 7
    trained = train_attack_models(correct, member, labels, classes, epochs=epochs, seed=seed)
    # replay the module's draws: Glorot-normal weights per layer for every (rate, class) model, then
    # one random order per model and epoch
    generator = torch.Generator().manual_seed(seed)
    g = len(ATTACK_MODEL_RATES) * classes
    weights = [_glorot_normal(generator, g, a, c) for a, c in ((5, 10), (10, 10), (10, 2))]
    rows = [torch.nonzero(labels == c).squeeze(1) for c in range(classes)]
    orders = [[rows[model % classes][torch.randperm(len(rows[model % classes]), generator=generator)].tolist()
               for model in range(g)] for _ in range(epochs)]
    x, y = correct.double().numpy(), member.long().numpy()
    for r, rate in enumerate(ATTACK_MODEL_RATES):
        for c in range(classes):
            model = r * classes + c
            w = [weights[k][model].numpy() for k in range(3)]
            b = [np.zeros((1, 10)), np.zeros((1, 10)), np.zeros((1, 2))]
            w, b = _reference_train(x, y, w, b, None, rate, [orders[e][model] for e in range(epochs)])
            expected = _reference_predict(x, w, b)
            ours = attack_model_probabilities([p[c:c + 1].expand(len(labels), -1, -1)[:1] if False else p
                                               for p in trained[r]], correct, torch.full_like(labels, c))
            np.testing.assert_allclose(ours.numpy(), expected, rtol=0, atol=1e-10)


def test_glorot_normal_is_keras_s_truncated_normal():
    draws = _glorot_normal(torch.Generator().manual_seed(0), 200, 10, 10).flatten()
    std = math.sqrt(2 / 20) / 0.87962566103423978
    assert draws.abs().max() <= 2 * std + 1e-12
    assert draws.std().item() == pytest.approx(math.sqrt(2 / 20), rel=0.03)  # the truncation's 0.88 undone


def test_the_learning_rate_most_accurate_on_the_training_samples_is_kept():
    correct, member, labels = _tiny_case(seed=3, n=200)
    result = label_only_translation_model(correct, labels, member, correct, labels, member, seed=5, n_bootstrap=0)
    trained = train_attack_models(correct, member, labels, 3, seed=5)
    accuracies = [((attack_model_probabilities(p, correct, labels) > 0.5) == member).double().mean().item()
                  for p in trained]
    best = trained[int(np.argmax(accuracies))]  # the first on ties, as the reference's strict ">"
    assert torch.equal(result.scores, attack_model_probabilities(best, correct, labels))
    assert torch.equal(result.predicted, result.scores > 0.5)
    assert result.name == "label_only_translation"


def test_the_attack_model_finds_what_the_count_forgets():
    """Members are right on the unshifted copy, non-members wrong on it half the time; the shifted
    copies are right with the same probability for both. The count dilutes the unshifted copy's
    signal among four noisy ones; the attack model reads it."""
    generator = torch.Generator().manual_seed(11)
    n = 2000
    member = torch.arange(n) < n // 2
    labels = torch.randint(0, 2, (n,), generator=generator)
    correct = torch.rand(n, 5, generator=generator) < 0.5
    correct[:, 0] = member | (torch.rand(n, generator=generator) < 0.5)
    half = torch.arange(n) % 2 == 0
    model = label_only_translation_model(correct[half], labels[half], member[half], correct[~half], labels[~half],
                                         member[~half], n_bootstrap=0)
    count = label_only_translation(correct[half], member[half], correct[~half], member[~half], n_bootstrap=0)
    assert model.advantage > 0.4  # the unshifted copy alone gives 0.5
    assert model.advantage > count.advantage + 0.1


def test_translation_model_bad_inputs_are_named():
    correct, member, labels = _tiny_case()
    with pytest.raises(AttackInputError, match="adv_labels: .* none has class 2"):
        label_only_translation_model(correct, labels, member, correct, labels.clamp(max=1), member)
    with pytest.raises(AttackInputError, match="adv_correct: must have as many queries"):
        label_only_translation_model(correct, labels, member, correct[:, :3], labels, member)
    with pytest.raises(AttackInputError, match="eval_labels"):
        label_only_translation_model(correct, labels.double(), member, correct, labels, member)
    with pytest.raises(ValueError, match="learning_rates"):
        label_only_translation_model(correct, labels, member, correct, labels, member, learning_rates=(0.0,))


def _reference_get_threshold(source_m, source_stats, target_m, target_stats):
    """A port of the reference's ``get_threshold``: the ROC curve's threshold with the best accuracy
    of ``stats > t`` on the source samples (the first on ties), and the target's accuracy there."""
    from sklearn.metrics import accuracy_score, roc_curve

    _, _, thresholds = roc_curve(source_m, source_stats)
    accuracies = [accuracy_score(source_m, [1 if s > t else 0 for s in source_stats]) for t in thresholds]
    t = thresholds[int(np.argmax(accuracies))]
    return t, accuracy_score(target_m, [1 if s > t else 0 for s in target_stats])


@pytest.mark.parametrize("seed", range(5))
def test_threshold_fit_is_the_reference_s(seed):
    """On balanced samples with tied scores (distances rounded, many zeros as for misclassified
    samples), the threshold and the target's accuracy equal the reference's."""
    generator = torch.Generator().manual_seed(seed)
    n = 200
    member = torch.arange(n) < n // 2

    def distances():
        d = (torch.rand(n, generator=generator) + 0.3 * member).mul(10).round().div(10)
        return torch.where(torch.rand(n, generator=generator) < 0.15, torch.zeros(n), d).double()

    source, target = distances(), distances()
    expected_t, expected_accuracy = _reference_get_threshold(member.numpy(), source.numpy(), member.numpy(),
                                                             target.numpy())
    assert reference_threshold(source, member) == pytest.approx(float(expected_t))
    result = label_only_boundary(target, member, source, member, n_bootstrap=0)
    assert result.threshold == pytest.approx(float(expected_t))
    assert result.accuracy == pytest.approx(expected_accuracy)


def test_threshold_when_nothing_separates():
    scores = torch.ones(10, dtype=torch.float64)
    member = torch.arange(10) < 5
    assert reference_threshold(scores, member) == math.inf
