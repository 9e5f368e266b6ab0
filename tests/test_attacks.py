import itertools
import math

import pytest
import torch

from mia_utils import attacks
from mia_utils.attacks import AttackInputError, AttackInputs


def logits_from_losses(losses):
    """Two-class logits whose true-label (class 0) cross-entropy equals ``losses`` exactly."""
    losses = torch.as_tensor(losses, dtype=torch.float64)
    # loss = log(1 + exp(z1 - z0)); with z0 = 0: z1 = log(exp(loss) - 1)
    return torch.stack([torch.zeros_like(losses), torch.log(torch.expm1(losses))], dim=1)


def make_inputs(eval_logits, eval_member, adv_logits=None, adv_member=None, average_train_loss=0.5):
    eval_logits = torch.as_tensor(eval_logits, dtype=torch.float64)
    if adv_logits is None:
        adv_logits, adv_member = eval_logits, eval_member
    adv_logits = torch.as_tensor(adv_logits, dtype=torch.float64)
    return AttackInputs(eval_logits, torch.zeros(len(eval_logits), dtype=torch.long),
                        torch.as_tensor(eval_member, dtype=torch.bool), average_train_loss,
                        adv_logits, torch.zeros(len(adv_logits), dtype=torch.long),
                        torch.as_tensor(adv_member, dtype=torch.bool))


def test_yeom_on_hand_made_losses():
    losses = [0.1, 0.2, 0.9, 0.3, 1.5, 2.0]
    member = [True, True, True, False, False, False]
    result = attacks.yeom(make_inputs(logits_from_losses(losses), member), n_bootstrap=0)
    assert result.predicted.tolist() == [True, True, False, True, False, False]
    assert result.accuracy == pytest.approx(4 / 6, abs=1e-12)
    assert result.advantage == pytest.approx(1 / 3, abs=1e-12)
    assert (result.tpr, result.fpr) == pytest.approx((2 / 3, 1 / 3))
    assert torch.allclose(-result.scores, torch.tensor(losses, dtype=torch.float64))


def test_calibrated_threshold_is_chosen_on_the_adversary_set_only():
    eval_losses, eval_member = [0.1, 0.2, 3.0, 0.15], [True, True, False, False]
    adv_losses, adv_member = [0.1, 0.2, 1.0, 2.0], [True, True, False, False]
    result = attacks.loss_threshold(make_inputs(logits_from_losses(eval_losses), eval_member,
                                                logits_from_losses(adv_losses), adv_member), n_bootstrap=0)
    assert -result.threshold == pytest.approx(0.6)  # midway between 0.2 and 1.0 on the adversary's set
    assert result.predicted.tolist() == [True, True, False, True]


def test_best_threshold_matches_brute_force():
    generator = torch.Generator().manual_seed(0)
    for _ in range(20):
        scores = torch.randint(0, 6, (40,), generator=generator).double()
        member = torch.rand(40, generator=generator) < 0.4
        t = attacks.best_threshold(scores, member)
        def balanced_gain(threshold):
            pred = scores >= threshold
            return (pred & member).sum() / member.sum() - (pred & ~member).sum() / (~member).sum()
        best = max(balanced_gain(c) for c in list(scores.unique()) + [math.inf])
        assert balanced_gain(t) == pytest.approx(float(best))


def test_scores_against_their_definitions():
    logits = torch.tensor([[2.0, 0.5, -1.0], [0.0, 0.0, 0.0], [-3.0, 4.0, 1.0]], dtype=torch.float64)
    labels = torch.tensor([0, 2, 0])
    p = logits.softmax(1)
    assert torch.allclose(attacks.confidence_score(logits), p.max(1).values)
    assert torch.allclose(attacks.entropy_score(logits), -(p * p.log()).sum(1))
    expected = []
    for row, y in zip(p, labels):
        value = -(1 - row[y]) * torch.log(row[y])
        value -= sum(row[i] * torch.log(1 - row[i]) for i in range(3) if i != y)
        expected.append(value)
    assert torch.allclose(attacks.modified_entropy_score(logits, labels), torch.stack(expected))
    phi = attacks.logit_scaled_confidence(logits, labels)
    py = p[torch.arange(3), labels]
    assert torch.allclose(phi, torch.log(py / (1 - py)))


def test_scores_stay_finite_for_extreme_logits():
    logits = torch.tensor([[200.0, 0.0, -50.0], [-200.0, 300.0, 0.0]], dtype=torch.float64)
    labels = torch.tensor([0, 0])
    for fn in (attacks.loss_score, attacks.modified_entropy_score, attacks.logit_scaled_confidence):
        assert torch.isfinite(fn(logits, labels)).all(), fn.__name__
    assert attacks.logit_scaled_confidence(logits, labels)[0] == pytest.approx(200.0)


def _posterior_logits(n, confident, generator):
    """Logits of 10 classes; confident rows put almost all mass on the true class 0."""
    logits = torch.randn(n, 10, generator=generator, dtype=torch.float64)
    logits[:, 0] += 8.0 if confident else 1.0
    return logits


@pytest.mark.parametrize("separated", [False, True])
def test_salem_is_chance_on_one_distribution_and_strong_on_separated_ones(separated):
    generator = torch.Generator().manual_seed(1)
    def sample(n):
        members = _posterior_logits(n, True, generator)
        nonmembers = _posterior_logits(n, separated is False, generator)
        return torch.cat([members, nonmembers]), [True] * n + [False] * n
    eval_logits, eval_member = sample(1000)
    adv_logits, adv_member = sample(1000)
    result = attacks.salem(make_inputs(eval_logits, eval_member, adv_logits, adv_member), n_bootstrap=0)
    if separated:
        assert result.accuracy > 0.9
    else:
        assert abs(result.accuracy - 0.5) < 0.05


def test_salem_is_deterministic():
    generator = torch.Generator().manual_seed(2)
    logits = torch.cat([_posterior_logits(200, True, generator), _posterior_logits(200, False, generator)])
    inputs = make_inputs(logits, [True] * 200 + [False] * 200)
    assert torch.equal(attacks.salem(inputs, n_bootstrap=0).scores, attacks.salem(inputs, n_bootstrap=0).scores)


def test_lira_separates_members_on_a_synthetic_gaussian_case():
    """Per-example statistics: OUT ~ N(d_n, 0.5), IN ~ N(d_n + 1.5, 0.5), d_n ~ N(0, 2).
    A global threshold suffers from the spread of d_n; LiRA, which fits each example's own
    Gaussians from shadow models, nearly matches the oracle likelihood ratio."""
    generator = torch.Generator().manual_seed(3)
    n, k = 2000, 16
    difficulty = 2.0 * torch.randn(n, generator=generator, dtype=torch.float64)
    member = torch.arange(n) < n // 2
    def draw(is_in):
        return difficulty + 1.5 * is_in + 0.5 * torch.randn(is_in.shape, generator=generator, dtype=torch.float64)
    shadow_in = attacks_shadow_masks(k, n, generator)
    shadow_phi = draw(shadow_in.double())
    target_phi = draw(member.double())
    to_logits = lambda phi: torch.stack([phi, torch.zeros_like(phi)], dim=-1)
    inputs = make_inputs(to_logits(target_phi), member, average_train_loss=0.3)
    results = attacks.run_attacks(inputs, to_logits(shadow_phi), shadow_in, n_bootstrap=0)
    oracle = -((target_phi - difficulty - 1.5) ** 2) + (target_phi - difficulty) ** 2
    from sklearn.metrics import roc_auc_score
    oracle_auc = roc_auc_score(member.numpy(), oracle.numpy())
    assert results["lira_online"].auc > oracle_auc - 0.02
    assert results["lira_online_fixed_variance"].auc > oracle_auc - 0.02
    assert results["lira_offline"].auc > oracle_auc - 0.05
    assert results["lira_online"].auc > results["loss"].auc + 0.1
    assert results["lira_online"].advantage > 0.6


def attacks_shadow_masks(k, n, generator):
    ranks = torch.rand(k, n, generator=generator).argsort(0).argsort(0)
    return ranks < k // 2


def test_lira_needs_in_and_out_models():
    inputs = make_inputs(logits_from_losses([0.1, 0.2, 1.0, 2.0]), [True, True, False, False])
    logits = torch.zeros(2, 4, 2, dtype=torch.float64)
    with pytest.raises(AttackInputError, match="OUT shadow"):
        attacks.lira(inputs, logits, torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(AttackInputError, match="must be \\(K, N, classes\\)"):
        attacks.lira(inputs, torch.zeros(2, 3, 2), torch.zeros(2, 3, dtype=torch.bool))


@pytest.mark.parametrize("change, message", [
    (dict(eval_logits=torch.zeros(0, 2)), "expected shape"),
    (dict(eval_logits=torch.zeros(4)), "expected shape"),
    (dict(eval_member=[True, True, True, False]), "must be balanced"),
    (dict(eval_member=[True, True, True, True]), "needs both members and non-members"),
    (dict(eval_member=[True, False]), "all must have N = 4 rows"),
    (dict(eval_logits=torch.tensor([[0.0, float("nan")]] * 4)), "NaN"),
    (dict(adv_member=[True] * 4), "adv_is_member: needs both"),
    (dict(average_train_loss=float("nan")), "average_train_loss"),
])
def test_bad_inputs_are_named(change, message):
    arguments = dict(eval_logits=logits_from_losses([0.1, 0.2, 1.0, 2.0]), eval_member=[True, True, False, False],
                     adv_logits=logits_from_losses([0.1, 0.2, 1.0, 2.0]), adv_member=[True, True, False, False],
                     average_train_loss=0.5)
    arguments.update(change)
    with pytest.raises(AttackInputError, match=message):
        make_inputs(**arguments)


def test_every_attack_runs_on_a_real_run(store, tiny_config):
    from mia_utils import experiment

    target = experiment.run(tiny_config, store, progress=False)
    logits, trained_in, shadows = experiment.shadow_outputs(tiny_config, 2, store, progress=False)
    assert logits.shape == (2, 2 * tiny_config.n_eval, 10)
    assert torch.equal(trained_in[0], ~trained_in[1])  # with K = 2 each example is IN exactly once
    results = attacks.run_attacks(AttackInputs.from_outputs(target.outputs), logits, trained_in, n_bootstrap=10)
    assert set(results) >= set(attacks.BLACK_BOX_ATTACKS) | {"lira_online", "lira_offline"}
    for result in results.values():
        assert result.scores.shape == (2 * tiny_config.n_eval,) and -1 <= result.advantage <= 1
    assert all(not s.from_store for s in shadows)
    assert all(s.from_store for s in experiment.shadow_outputs(tiny_config, 2, store, progress=False)[2])
