"""Reading (b) of Yeom's threshold: the mean of the training objective, checked on hand-made cases."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mia_utils.attacks import AttackInputError, AttackInputs, yeom
from mia_utils.defenses import add_gaussian_noise, build, smooth
from mia_utils.train import training_objective_loss


def tiny():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    images = torch.rand(6, 1, 2, 2)
    labels = torch.tensor([0, 1, 2, 0, 1, 2])
    return model, images, F.one_hot(labels, 3).float(), labels


def test_without_mechanisms_it_is_the_clean_mean_loss():
    model, images, targets, labels = tiny()
    got = training_objective_loss(model, build([]), images, targets, 4, torch.Generator().manual_seed(0))
    assert got == pytest.approx(F.cross_entropy(model(images), labels).item(), rel=1e-6)


def test_label_smoothing_scores_the_smoothed_targets():
    model, images, targets, _ = tiny()
    got = training_objective_loss(model, build([("label_smoothing", 0.5)]), images, targets, 4,
                                  torch.Generator().manual_seed(0))
    expected = -(smooth(targets, 0.5) * model(images).log_softmax(1)).sum(1).mean().item()
    assert got == pytest.approx(expected, rel=1e-6)


def test_gaussian_noise_scores_the_perturbed_images_batch_by_batch():
    model, images, targets, labels = tiny()
    got = training_objective_loss(model, build([("gaussian_noise", 0.2)]), images, targets, 4,
                                  torch.Generator().manual_seed(3))
    generator = torch.Generator().manual_seed(3)
    noisy = torch.cat([add_gaussian_noise(images[:4], 0.2, generator), add_gaussian_noise(images[4:], 0.2, generator)])
    assert got == pytest.approx(F.cross_entropy(model(noisy), labels).item(), rel=1e-6)
    assert got != pytest.approx(F.cross_entropy(model(images), labels).item(), rel=1e-6)


def test_dropout_is_off_so_the_network_is_the_one_the_attacker_queries():
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.9), nn.Linear(4, 3))
    _, images, targets, labels = tiny()
    model.train()
    got = training_objective_loss(model, build([]), images, targets, 6, torch.Generator().manual_seed(0))
    assert model.training  # the mode is restored
    assert got == pytest.approx(F.cross_entropy(model.eval()(images), labels).item(), rel=1e-6)


def attack_inputs(objective):
    logits = torch.tensor([[3.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 0.2]], dtype=torch.float64)
    labels = torch.tensor([0, 1, 1, 1])
    members = torch.tensor([True, True, False, False])
    return AttackInputs(logits, labels, members, 0.1, logits, labels, members, objective_train_loss=objective)


def test_yeom_objective_reading_thresholds_at_the_objective():
    losses = F.cross_entropy(attack_inputs(0.5).logits, attack_inputs(0.5).labels, reduction="none")
    clean = yeom(attack_inputs(0.5), n_bootstrap=0)
    objective = yeom(attack_inputs(0.5), n_bootstrap=0, reading="objective")
    # bitwise on any CPU: booleans from losses 0.05 or more from either threshold, and one score computed twice
    assert torch.equal(clean.predicted, losses < 0.1)
    assert torch.equal(objective.predicted, losses < 0.5)
    assert objective.name == "yeom_objective" and clean.name == "yeom"
    assert torch.equal(clean.scores, objective.scores)  # same score: the AUC is shared


def test_yeom_objective_needs_a_recorded_objective():
    with pytest.raises(AttackInputError, match="objective_train_loss"):
        yeom(attack_inputs(math.nan), n_bootstrap=0, reading="objective")
    with pytest.raises(ValueError, match="reading"):
        yeom(attack_inputs(0.5), n_bootstrap=0, reading="log")
