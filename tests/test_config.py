import pytest

from mia_utils.config import ConfigError, RunConfig


def test_key_is_stable_and_changes_with_every_field():
    base = RunConfig(n_members=10_000, n_eval=100, n_adversary=100)
    assert base.key() == RunConfig(n_members=10_000, n_eval=100, n_adversary=100).key()
    changes = dict(dataset="cifar10", n_members=1000, n_eval=10, n_adversary=20, split_seed=1, seed=1,
                   width=0.5, norm="group", mechanisms=(("dropout", 0.1),), epochs=3, batch_size=64,
                   lr=1e-3, weight_decay=0.0, amsgrad=False, shadow_count=2)
    keys = {base.replace(**{name: value}).key() for name, value in changes.items()}
    assert len(keys) == len(changes) and base.key() not in keys


def test_snapshots_do_not_change_the_key():
    assert RunConfig(snapshot_epochs=(1, 5)).key() == RunConfig().key()


def test_round_trip_through_dict():
    config = RunConfig(snapshot_epochs=(5, 1, 5))
    assert config.snapshot_epochs == (1, 5)
    assert RunConfig.from_dict(config.to_dict()) == config


@pytest.mark.parametrize("field, value, fragment", [
    ("dataset", "mnist", "allowed: fmnist, cifar10, cifar100"),
    ("n_members", 0, "n_members"),
    ("n_members", 70_000, "allowed 1..60000"),
    ("epochs", 0, "epochs"),
    ("lr", -1.0, "lr"),
    ("width", 0, "width"),
    ("mechanisms", (("dropout", 1.0),), "dropout p = 1.0 is out of range; allowed 0.05 <= p <= 0.95"),
    ("mechanisms", (("mixdown", 1.0),), "unknown mechanism 'mixdown'"),
    ("mechanisms", (("random_crop", 2.5),), "must be a whole number"),
    ("norm", "layer", "allowed: none, batch, group"),
    ("batch_size", 2.5, "batch_size"),
    ("snapshot_epochs", (0,), "snapshot_epochs"),
    ("amsgrad", "yes", "amsgrad"),
])
def test_bad_values_name_the_field(field, value, fragment):
    with pytest.raises(ConfigError) as error:
        RunConfig().replace(**{field: value})
    assert field in str(error.value) and fragment in str(error.value)


def test_eval_and_adversary_must_fit():
    with pytest.raises(ConfigError, match="n_eval \\+ n_adversary"):
        RunConfig(n_members=100, n_eval=60, n_adversary=60)


def test_mechanisms_are_canonical():
    a = RunConfig().with_mechanisms(random_crop=4, dropout=0.5)
    b = RunConfig().with_mechanisms(dropout=0.5).with_mechanisms(random_crop=4)
    assert a == b and a.key() == b.key() and a.mechanisms == (("dropout", 0.5), ("random_crop", 4))
    assert RunConfig.from_dict(a.to_dict()) == a
    assert a.model_options()["dropout"] == 0.5


def test_unknown_field_is_refused():
    with pytest.raises(ConfigError, match="unknown configuration field"):
        RunConfig.from_dict({"learning_rate": 0.1})


def test_whole_number_mechanism_values_name_the_same_run():
    as_int = RunConfig().with_mechanisms(random_crop=4, distillation=50)
    as_float = RunConfig().with_mechanisms(random_crop=4.0, distillation=50.0)
    assert as_int.key() == as_float.key()
    assert as_int.to_dict()["mechanisms"] == [["distillation", 50.0], ["random_crop", 4.0]]
