"""RMIA: the scores of a small hand-made case against the paper's formula written out in plain
Python, online and offline, with its own population or the evaluation non-members; which
reference models each variant reads; the >= gamma convention; few reference models; separated
and identical distributions; the hard guesses; bad inputs; determinism and cost."""

import itertools
import math

import pytest
import torch

from mia_utils.attacks import AttackInputError, AttackInputs, best_threshold
from mia_utils.attacks.rmia import RMIA_GAMMA, RMIA_OFFLINE_A, RMIAPopulation, rmia, rmia_cost

# --- a hand-made case: 3 reference models, 4 targets, 3 population samples, 3 classes ------------

TARGET_LOGITS = [[3.0, 0.5, -1.0], [0.2, 2.5, 0.0], [0.5, 0.0, 0.3], [1.0, 0.8, 0.1]]
TARGET_LABELS = [0, 1, 2, 0]
TARGET_MEMBER = [True, True, False, False]
REFERENCE_LOGITS = [  # model -> target -> logits
    [[1.0, 0.5, 0.0], [0.0, 1.0, 0.5], [0.2, 0.1, 0.8], [0.9, 0.3, 0.2]],
    [[2.5, 0.0, 0.1], [0.3, 0.4, 0.2], [0.0, 0.6, 0.4], [1.5, 0.2, -0.5]],
    [[0.5, 1.0, 0.2], [-0.2, 2.0, 0.1], [0.4, 0.4, 1.2], [0.7, 0.9, 0.0]],
]
REFERENCE_IN = [[True, False, False, True], [False, True, True, False], [False, False, True, False]]
POPULATION_LOGITS = [[1.0, 0.2, 0.3], [1.4, 0.2, 0.0], [0.3, 0.5, 0.4]]
POPULATION_LABELS = [1, 0, 2]
POPULATION_REFERENCE_LOGITS = [
    [[0.3, 0.9, 0.1], [0.8, 0.4, 0.3], [0.1, 0.2, 0.6]],
    [[0.0, 1.5, 0.2], [1.1, 0.0, 0.4], [0.3, 0.1, 1.0]],
    [[0.2, 0.7, 0.5], [1.0, 0.6, -0.2], [-0.1, 0.4, 0.7]],
]
POPULATION_REFERENCE_IN = [[False, True, False], [False, False, False], [True, False, False]]


def softmax_of_label(logits, label, temperature):
    exps = [math.exp(value / temperature) for value in logits]
    return exps[label] / sum(exps)


def paper_probability(index, labels, reference_logits, reference_in, online, a, temperature):
    """Pr(x): the mean over all reference models (online), or ((1 + a) Pr_OUT(x) + (1 - a)) / 2
    with Pr_OUT the mean over the models that did not train on x (offline)."""
    values = []
    for model in range(len(reference_logits)):
        if online or not reference_in[model][index]:
            values.append(softmax_of_label(reference_logits[model][index], labels[index], temperature))
    mean = sum(values) / len(values)
    return mean if online else 0.5 * ((1 + a) * mean + (1 - a))


def paper_scores(online, a, gamma, temperature, population_logits, population_labels, population_reference,
                 population_in, same_set=False):
    """score(x) = |{z : LR(x, z) >= gamma}| / |Z|, LR(x, z) = (p(x|theta) / Pr(x)) / (p(z|theta) / Pr(z)),
    in plain loops. ``same_set``: the population is the targets' non-members, and x is not compared
    with itself. Also returns the smallest |LR - gamma| seen, to show that no pair is a near tie."""
    def ratio(logits, labels, reference, trained_in, index):
        p = softmax_of_label(logits[index], labels[index], temperature)
        return p / paper_probability(index, labels, reference, trained_in, online, a, temperature)

    scores, closest = [], math.inf
    for i in range(len(TARGET_LOGITS)):
        ratio_x = ratio(TARGET_LOGITS, TARGET_LABELS, REFERENCE_LOGITS, REFERENCE_IN, i)
        hits = total = 0
        for j in range(len(population_logits)):
            if same_set and population_logits[j] is TARGET_LOGITS[i]:
                continue
            ratio_z = ratio(population_logits, population_labels, population_reference, population_in, j)
            lr = ratio_x / ratio_z
            closest = min(closest, abs(lr - gamma))
            hits += lr >= gamma
            total += 1
        scores.append(hits / total)
    return scores, closest


def hand_made_inputs():
    logits, labels, member = torch.tensor(TARGET_LOGITS), torch.tensor(TARGET_LABELS), torch.tensor(TARGET_MEMBER)
    return AttackInputs(logits, labels, member, 0.5, logits, labels, member)


def hand_made_population(with_in=True):
    return RMIAPopulation(torch.tensor(POPULATION_LOGITS), torch.tensor(POPULATION_LABELS),
                          torch.tensor(POPULATION_REFERENCE_LOGITS),
                          torch.tensor(POPULATION_REFERENCE_IN) if with_in else None)


SETTINGS = [  # online, offline_a, gamma, temperature
    (True, 0.3, 2.0, 1.0), (False, 0.3, 2.0, 1.0), (True, 0.3, 1.0, 2.0), (False, 1.0, 1.0, 1.0),
    (False, 0.0, 0.9, 1.0), (True, 0.3, 1.2, 1.0),
]


@pytest.mark.parametrize("online, a, gamma, temperature", SETTINGS)
@pytest.mark.parametrize("with_in", [True, False])
def test_scores_equal_the_paper_formula_with_a_population(online, a, gamma, temperature, with_in):
    population_in = POPULATION_REFERENCE_IN if with_in else [[False] * 3] * 3
    expected, closest = paper_scores(online, a, gamma, temperature, POPULATION_LOGITS, POPULATION_LABELS,
                                     POPULATION_REFERENCE_LOGITS, population_in)
    assert closest > 1e-6  # no pair sits at the threshold, so rounding cannot flip a comparison
    result = rmia(hand_made_inputs(), torch.tensor(REFERENCE_LOGITS), torch.tensor(REFERENCE_IN), online=online,
                  offline_a=a, gamma=gamma, temperature=temperature, population=hand_made_population(with_in),
                  n_bootstrap=0)
    assert result.scores.tolist() == expected
    assert result.name == ("rmia_online" if online else "rmia_offline")


@pytest.mark.parametrize("online, a, temperature", [(True, 0.3, 1.0), (False, 0.3, 1.0), (False, 0.0, 1.0),
                                                     (False, 0.6, 2.0)])
def test_scores_equal_the_paper_formula_over_a_sweep_of_gamma(online, a, temperature):
    """With only 3 population samples a score moves in steps of 1/3; sweeping gamma over 80
    values from 0.2 to 9 pins every likelihood ratio between two neighbouring gammas (5 % apart),
    so a wrong Pr(x) (e.g. a wrong offline correction) shows."""
    changes = 0
    previous = None
    for k in range(80):
        gamma = 0.2 * 1.05 ** k
        expected, closest = paper_scores(online, a, gamma, temperature, POPULATION_LOGITS, POPULATION_LABELS,
                                         POPULATION_REFERENCE_LOGITS, POPULATION_REFERENCE_IN)
        if closest < 1e-9:
            continue
        result = rmia(hand_made_inputs(), torch.tensor(REFERENCE_LOGITS), torch.tensor(REFERENCE_IN), online=online,
                      offline_a=a, gamma=gamma, temperature=temperature, population=hand_made_population(),
                      n_bootstrap=0)
        assert result.scores.tolist() == expected, gamma
        changes += previous is not None and expected != previous
        previous = expected
    assert changes >= 8  # the sweep crosses many of the 12 ratios


def test_the_hand_made_case_is_not_trivial():
    """The scores differ between the targets and between the settings."""
    seen = set()
    for online, a, gamma, temperature in SETTINGS:
        scores, _ = paper_scores(online, a, gamma, temperature, POPULATION_LOGITS, POPULATION_LABELS,
                                 POPULATION_REFERENCE_LOGITS, POPULATION_REFERENCE_IN)
        assert len(set(scores)) >= 2
        seen.add(tuple(scores))
    assert len(seen) >= 4
    # offline, the population's IN models matter: (False, 0.3, 2.0, 1.0) scores x3 at 1/3 with
    # them and 0 without (an IN model of z0 is left out of its Pr_OUT)
    with_in, _ = paper_scores(False, 0.3, 2.0, 1.0, POPULATION_LOGITS, POPULATION_LABELS,
                              POPULATION_REFERENCE_LOGITS, POPULATION_REFERENCE_IN)
    without, _ = paper_scores(False, 0.3, 2.0, 1.0, POPULATION_LOGITS, POPULATION_LABELS,
                              POPULATION_REFERENCE_LOGITS, [[False] * 3] * 3)
    assert with_in != without


@pytest.mark.parametrize("online, a, gamma, temperature", SETTINGS)
def test_scores_equal_the_paper_formula_with_the_evaluation_non_members(online, a, gamma, temperature):
    nonmembers = [i for i, member in enumerate(TARGET_MEMBER) if not member]
    population = [TARGET_LOGITS[i] for i in nonmembers]
    labels = [TARGET_LABELS[i] for i in nonmembers]
    reference = [[model[i] for i in nonmembers] for model in REFERENCE_LOGITS]
    trained_in = [[row[i] for i in nonmembers] for row in REFERENCE_IN]
    expected, closest = paper_scores(online, a, gamma, temperature, population, labels, reference, trained_in,
                                     same_set=True)
    assert closest > 1e-6
    result = rmia(hand_made_inputs(), torch.tensor(REFERENCE_LOGITS), torch.tensor(REFERENCE_IN), online=online,
                  offline_a=a, gamma=gamma, temperature=temperature, n_bootstrap=0)
    assert result.scores.tolist() == expected


def test_offline_reads_only_the_out_models_and_online_reads_all():
    reference = torch.tensor(REFERENCE_LOGITS)
    changed = reference.clone()
    changed[0, 0] = torch.tensor([6.0, 0.0, 0.0])  # model 0 trained on target 0: an IN model for it
    kwargs = dict(population=hand_made_population(), n_bootstrap=0, gamma=1.0)
    trained_in = torch.tensor(REFERENCE_IN)
    offline = [rmia(hand_made_inputs(), r, trained_in, online=False, **kwargs).scores for r in (reference, changed)]
    online = [rmia(hand_made_inputs(), r, trained_in, online=True, **kwargs).scores for r in (reference, changed)]
    # bitwise on any CPU: the changed entries are masked out before any reduction, same shapes
    assert torch.equal(offline[0], offline[1])
    assert online[0].tolist() == [1.0, 1.0, 2 / 3, 2 / 3] and online[1].tolist() == [2 / 3, 1.0, 2 / 3, 2 / 3]


def test_a_population_copy_of_x_counts_at_gamma_one():
    """LR(x, x) = 1 exactly: the paper's >= gamma counts it (the reference code's > gamma would not).
    The population is a copy of target 0 and a sample the target fits far better than the
    reference models do (ratio about 2.96 against target 0's 1.65), which is not counted."""
    inputs = hand_made_inputs()
    copy = RMIAPopulation(torch.cat([inputs.logits[:1], torch.tensor([[0.0, 5.0, 0.0]])]), torch.tensor([0, 1]),
                          torch.cat([torch.tensor(REFERENCE_LOGITS)[:, :1], torch.zeros(3, 1, 3)], dim=1))
    result = rmia(inputs, torch.tensor(REFERENCE_LOGITS), torch.tensor(REFERENCE_IN), online=True, gamma=1.0,
                  population=copy, n_bootstrap=0)
    assert result.scores[0] == 0.5


def test_population_order_does_not_matter_and_calls_are_deterministic():
    population = hand_made_population()
    order = torch.tensor([2, 0, 1])
    shuffled = RMIAPopulation(population.logits[order], population.labels[order],
                              population.shadow_logits[:, order], population.shadow_in[:, order])
    args = (hand_made_inputs(), torch.tensor(REFERENCE_LOGITS), torch.tensor(REFERENCE_IN))
    first = rmia(*args, population=population, n_bootstrap=10, seed=3)
    # bitwise on any CPU: the same call again; and a shuffled population only permutes the
    # population's values (each reduced over the models alone), which are sorted before counting
    assert torch.equal(first.scores, rmia(*args, population=population, n_bootstrap=10, seed=3).scores)
    assert first.metrics["auc"].std == rmia(*args, population=population, n_bootstrap=10, seed=3).metrics["auc"].std
    assert torch.equal(first.scores, rmia(*args, population=shuffled, n_bootstrap=10, seed=3).scores)


# --- synthetic statistics: the logit of p is a per-sample difficulty, +2 when trained on ---------

def to_logits(statistic):
    """Two-class logits whose softmax probability of class 0 is sigmoid(statistic)."""
    return torch.stack([statistic, torch.zeros_like(statistic)], dim=-1)


def balanced_masks(m, n, generator):
    """(m, n) bool: each sample IN for exactly m // 2 of the m models."""
    ranks = torch.rand(m, n, generator=generator).argsort(0).argsort(0)
    return ranks < m // 2


def synthetic_case(n, m, generator, effect=2.0, separated=True, population_size=500, masks=None):
    """n members and n non-members, m reference models, a held-out population."""
    def noise(*shape):
        return 0.5 * torch.randn(*shape, generator=generator, dtype=torch.float64)

    def side(size, trained_in):
        difficulty = 1.5 * torch.randn(size, generator=generator, dtype=torch.float64)
        target = difficulty + (effect * trained_in if separated else 0.0) + noise(size)
        return difficulty, target

    member = torch.arange(2 * n) < n
    difficulty, target = side(2 * n, member.double())
    shadow_in = balanced_masks(m, 2 * n, generator) if masks is None else masks(m, 2 * n)
    reference = difficulty + effect * shadow_in.double() + noise(m, 2 * n)
    labels = torch.zeros(2 * n, dtype=torch.long)
    # the reference models were trained on population data too: each z is IN for half of them
    # (online, Pr(z) must mix IN and OUT models as Pr(x) does, or the two are not comparable)
    population_difficulty, population_target = side(population_size, torch.zeros(population_size))
    population_in = balanced_masks(m, population_size, generator) if masks is None else masks(m, population_size)
    population = RMIAPopulation(to_logits(population_target), torch.zeros(population_size, dtype=torch.long),
                                to_logits(population_difficulty + effect * population_in.double()
                                          + noise(m, population_size)), population_in)
    inputs = AttackInputs(to_logits(target), labels, member, 0.5, to_logits(target), labels, member)
    return inputs, to_logits(reference), shadow_in, population


@pytest.mark.parametrize("online", [True, False])
def test_separated_members_are_detected_and_identical_ones_sit_at_chance(online):
    """n = 1000 per class: under the null the AUC's standard deviation is
    sqrt((2n + 1) / (12 n^2)) = 0.013, so 0.05 is about 4 sigma."""
    generator = torch.Generator().manual_seed(0)
    inputs, reference, trained_in, population = synthetic_case(1000, 4, generator)
    separated = rmia(inputs, reference, trained_in, online=online, population=population, n_bootstrap=0)
    assert separated.auc > 0.9
    inputs, reference, trained_in, population = synthetic_case(1000, 4, generator, separated=False)
    same = rmia(inputs, reference, trained_in, online=online, population=population, n_bootstrap=0)
    assert abs(same.auc - 0.5) < 0.05


@pytest.mark.parametrize("m, online", [(1, False), (1, True), (2, False), (2, True), (4, False), (4, True)])
def test_few_reference_models_suffice(m, online):
    """With one reference model (OUT for every sample offline; IN for a random half online), two
    or four, RMIA beats the target's plain confidence, whose AUC here is about 0.84 (the
    per-sample difficulty blurs it), except online with one model: a sample whose only reference
    model trained on it has an inflated Pr(x), so that variant is only required to work (AUC
    above 0.75); the paper runs one model offline."""
    generator = torch.Generator().manual_seed(m)
    masks = (lambda k, n: torch.zeros(k, n, dtype=torch.bool)) if (m == 1 and not online) else \
        (lambda k, n: torch.rand(k, n, generator=generator) < 0.5) if m == 1 else None
    inputs, reference, trained_in, population = synthetic_case(500, m, generator, masks=masks)
    result = rmia(inputs, reference, trained_in, online=online, population=population, n_bootstrap=0)
    from sklearn.metrics import roc_auc_score

    confidence_auc = roc_auc_score(inputs.is_member.numpy(), inputs.logits[:, 0].numpy())
    assert 0.75 < confidence_auc < 0.9
    if m == 1 and online:
        assert result.auc > 0.75
    else:
        assert result.auc > confidence_auc + 0.05


def test_hard_guesses_use_the_adversary_samples_when_given_else_the_population_median():
    generator = torch.Generator().manual_seed(5)
    inputs, reference, trained_in, population = synthetic_case(300, 4, generator)
    adv_inputs, adv_reference, adv_in, _ = synthetic_case(300, 4, generator)
    combined = AttackInputs(inputs.logits, inputs.labels, inputs.is_member, 0.5, adv_inputs.logits,
                            adv_inputs.labels, adv_inputs.is_member)
    result = rmia(combined, reference, trained_in, population=population, adv_shadow_logits=adv_reference,
                  adv_shadow_in=adv_in, n_bootstrap=0)
    adv_scores = rmia(adv_inputs, adv_reference, adv_in, population=population, n_bootstrap=0).scores
    assert result.threshold == best_threshold(adv_scores, adv_inputs.is_member)
    assert torch.equal(result.predicted, result.scores >= result.threshold)  # the same comparison, repeated
    assert result.advantage > 0.5
    # without them: above the median of the population's own scores; on identical distributions
    # that flags about half of the non-members (n = 300: sd 0.029, 0.1 is over 3 sigma)
    inputs, reference, trained_in, population = synthetic_case(300, 4, generator, separated=False,
                                                               population_size=1000)
    median_rule = rmia(inputs, reference, trained_in, population=population, n_bootstrap=0)
    assert torch.equal(median_rule.predicted, median_rule.scores > median_rule.threshold)  # the same comparison
    assert abs(median_rule.fpr - 0.5) < 0.1


def test_cost_in_queries():
    cost = rmia_cost(4, 100)
    assert cost["target_queries"] == 1 and cost["reference_models"] == 4 and cost["reference_queries"] == 4
    assert cost["population_queries"] == 500
    with pytest.raises(ValueError, match="n_reference_models: must be an integer >= 1, got 0"):
        rmia_cost(0)
    assert (RMIA_GAMMA, RMIA_OFFLINE_A) == (2.0, 0.3)


@pytest.mark.parametrize("change, error, message", [
    (dict(gamma=0.0), ValueError, "gamma: must be a finite number > 0, got 0.0"),
    (dict(temperature=-1.0), ValueError, "temperature: must be a finite number > 0, got -1.0"),
    (dict(offline_a=1.5), ValueError, r"offline_a: must be a number in \[0, 1\], got 1.5"),
    (dict(online="yes"), ValueError, "online: must be True or False, got 'yes'"),
    (dict(shadow_logits=torch.zeros(3, 4, 2)), AttackInputError, r"shadow_logits: expected reference-model logits of shape \(M >= 1, 4, 3\)"),
    (dict(shadow_logits=torch.full((3, 4, 3), float("nan"))), AttackInputError, "shadow_logits: contain NaN"),
    (dict(shadow_in=torch.zeros(3, 5, dtype=torch.bool)), AttackInputError, r"shadow_in: expected shape \(3, 4\)"),
    (dict(shadow_in=torch.ones(3, 4, dtype=torch.bool), online=False), AttackInputError,
     "shadow_in: offline RMIA needs at least one OUT reference model for every sample; 4 have none"),
    (dict(population=RMIAPopulation(torch.zeros(2, 4), torch.zeros(2, dtype=torch.long), torch.zeros(3, 2, 4))),
     AttackInputError, r"population.logits: expected shape \(P >= 1, 3\)"),
    (dict(population=RMIAPopulation(torch.zeros(2, 3), torch.tensor([0, 3]), torch.zeros(3, 2, 3))),
     AttackInputError, r"population.labels: expected class indices in 0..2"),
    (dict(population=RMIAPopulation(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, 2, 3))),
     AttackInputError, r"population.shadow_logits: expected reference-model logits of shape \(3, 2, 3\)"),
    (dict(population="non-members"), ValueError, "population: expected an RMIAPopulation or None, got str"),
    (dict(adv_shadow_logits=torch.zeros(3, 4, 3)), AttackInputError, "adv_shadow_logits, adv_shadow_in: give both"),
])
def test_bad_inputs_are_named(change, error, message):
    arguments = dict(inputs=hand_made_inputs(), shadow_logits=torch.tensor(REFERENCE_LOGITS),
                     shadow_in=torch.tensor(REFERENCE_IN), n_bootstrap=0)
    arguments.update(change)
    with pytest.raises(error, match=message):
        rmia(**arguments)


def test_underflowing_probabilities_stay_finite():
    """Logit gaps of 800 underflow softmax to 0 in float64; the log-space computation keeps the
    ratios finite and ordered."""
    inputs = hand_made_inputs()
    extreme = torch.tensor(REFERENCE_LOGITS) + torch.tensor([0.0, 800.0, 0.0])
    for online, a in itertools.product([True, False], [0.3, 1.0]):
        result = rmia(inputs, extreme, torch.tensor(REFERENCE_IN), online=online, offline_a=a, n_bootstrap=0)
        assert torch.isfinite(result.scores).all()


# --- limiting the OUT models per sample (the recipe-aware adversary's m) ---------------------------

def test_first_out_models_keeps_each_sample_s_first_out_models():
    from mia_utils.attacks.rmia import first_out_models

    trained_in = torch.tensor([[True, False, False], [False, False, True], [False, True, False],
                               [False, False, False]])
    assert first_out_models(trained_in, 1).tolist() == [[False, True, True], [True, False, False],
                                                        [False, False, False], [False, False, False]]
    assert first_out_models(trained_in, 2).tolist() == [[False, True, True], [True, True, False],
                                                        [True, False, True], [False, False, False]]
    assert torch.equal(first_out_models(trained_in, 10), ~trained_in)


def test_out_models_equals_dropping_the_other_out_models_by_hand(monkeypatch):
    """With at most one OUT model per sample, offline RMIA equals the paper's formula where every
    later OUT model of each sample is treated as IN (so that it is not averaged)."""
    import sys

    reference = torch.tensor(REFERENCE_LOGITS)
    trained_in, population_in = torch.tensor(REFERENCE_IN), torch.tensor(POPULATION_REFERENCE_IN)
    kwargs = dict(online=False, gamma=1.0, n_bootstrap=0, population=hand_made_population())
    limited = rmia(hand_made_inputs(), reference, trained_in, out_models=1, **kwargs)

    def by_hand(mask):  # the first OUT model of each column stays OUT, every other model counts as IN
        keep = torch.zeros_like(mask)
        for column in range(mask.shape[1]):
            keep[torch.nonzero(~mask[:, column]).squeeze(1)[0], column] = True
        return (~keep).tolist()

    monkeypatch.setattr(sys.modules[__name__], "REFERENCE_IN", by_hand(trained_in))  # paper_scores reads it
    expected, _ = paper_scores(False, RMIA_OFFLINE_A, 1.0, 1.0, POPULATION_LOGITS, POPULATION_LABELS,
                               POPULATION_REFERENCE_LOGITS, by_hand(population_in))
    assert limited.scores.tolist() == pytest.approx(expected)
    every = rmia(hand_made_inputs(), reference, trained_in, **kwargs)
    many = rmia(hand_made_inputs(), reference, trained_in, out_models=3, **kwargs)
    assert torch.equal(every.scores, many.scores)  # no sample has more than 3 OUT models
    assert not torch.equal(limited.scores, every.scores)  # the hand-made case is not trivial


@pytest.mark.parametrize("kwargs, message", [
    ({"online": True, "out_models": 1}, "out_models: limits the OUT models of offline RMIA"),
    ({"online": False, "out_models": 0}, "out_models: must be an integer >= 1"),
    ({"online": False, "out_models": True}, "out_models: must be an integer >= 1"),
])
def test_bad_out_models_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        rmia(hand_made_inputs(), torch.tensor(REFERENCE_LOGITS), torch.tensor(REFERENCE_IN),
             population=hand_made_population(), n_bootstrap=0, **kwargs)
