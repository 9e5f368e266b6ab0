import json
import subprocess

import torch

from conftest import PYTHON, ROOT
from mia_utils.data import load_dataset
from mia_utils.train import train


def _train_in_fresh_process(env, store):
    out = subprocess.run([PYTHON, "-m", "mia_utils", "train", "--profile", "smoke", "--store", str(store), "-q"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["from_store"] is False
    report.pop("train_seconds")
    report.pop("from_store")
    return report


def test_same_config_twice_in_fresh_processes_gives_identical_metrics(cli_env, tmp_path):
    first = _train_in_fresh_process(cli_env, tmp_path / "a")
    second = _train_in_fresh_process(cli_env, tmp_path / "b")
    assert first == second
    weights = [open(tmp_path / s / "runs" / first["key"] / "weights.safetensors", "rb").read() for s in "ab"]
    assert weights[0] == weights[1]


def test_history_and_learning(tiny_config):
    data = load_dataset("fmnist")
    result = train(tiny_config.replace(epochs=4, lr=3e-3), data, progress=False)
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    for row in result.history:
        assert 0 <= row["train_acc"] <= 1 and 0 <= row["test_acc"] <= 1 and row["train_loss"] > 0
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]
    assert result.history[-1]["train_acc"] > 0.5  # it learns: 10 classes, chance is 0.1


def test_seed_changes_the_model(tiny_config):
    data = load_dataset("fmnist")
    a = train(tiny_config, data, progress=False).state_dict
    b = train(tiny_config.replace(seed=1), data, progress=False).state_dict
    assert not torch.equal(a["classifier.weight"], b["classifier.weight"])


def test_wrong_dataset_is_refused(tiny_config):
    data = load_dataset("fmnist")
    try:
        train(tiny_config.replace(dataset="cifar10"), data, progress=False)
    except ValueError as error:
        assert "data" in str(error)
    else:
        raise AssertionError("expected ValueError")


# --- several models in lockstep (the GPU path) -------------------------------------------------------

def _smoke_configs(mechanism=None, value=None, seeds=(0, 1, 2)):
    from mia_utils.book.profiles import get_profile

    profile = get_profile("smoke")
    configs = [profile.base_config("fmnist", seed=s) for s in seeds]
    return [c.with_mechanisms(**{mechanism: value}) for c in configs] if mechanism else configs


LOCKSTEP_TOLERANCE = 1e-4  # absolute, on weights and logits after the smoke profile's 2 epochs


def test_models_trained_in_lockstep_match_each_model_trained_alone(request):
    """Each model keeps its own seed, split, batch order and transforms: weights, snapshots,
    history and the objective loss agree with training alone, up to summation order."""
    from mia_utils.train import train_many

    data = load_dataset("fmnist")
    request.addfinalizer(lambda threads=torch.get_num_threads(): torch.set_num_threads(threads))  # restored after
    torch.set_num_threads(1)
    for mechanism, value in ((None, None), ("gaussian_noise", 0.1), ("label_smoothing", 0.5)):
        configs = _smoke_configs(mechanism, value)
        configs = [c.replace(snapshot_epochs=(1,)) for c in configs]
        together = train_many(configs, data, progress=False)
        for config, joint in zip(configs, together):
            alone = train(config, data, progress=False)
            for name, weight in alone.state_dict.items():
                assert torch.allclose(weight, joint.state_dict[name], atol=LOCKSTEP_TOLERANCE), (mechanism, name)
            for key in ("eval_logits", "member_losses"):
                assert torch.allclose(alone.snapshots[1][1][key], joint.snapshots[1][1][key], atol=LOCKSTEP_TOLERANCE)
            assert abs(alone.objective_loss - joint.objective_loss) < LOCKSTEP_TOLERANCE
            assert [h["epoch"] for h in joint.history] == [1, 2]
            assert abs(alone.history[-1]["test_loss"] - joint.history[-1]["test_loss"]) < LOCKSTEP_TOLERANCE
            assert torch.equal(alone.trained_on, joint.trained_on)  # integer indices
        # the models really are different models
        assert not torch.allclose(together[0].state_dict["classifier.weight"], together[1].state_dict["classifier.weight"])


def test_lockstep_refuses_runs_that_cannot_share_a_step():
    from mia_utils.train import lockstep_key, train_many

    plain, dropout = _smoke_configs(seeds=(0,))[0], _smoke_configs("dropout", 0.5, seeds=(0,))[0]
    assert lockstep_key(plain) == lockstep_key(_smoke_configs(seeds=(5,))[0])
    assert lockstep_key(plain) != lockstep_key(dropout)  # another network
    assert lockstep_key(_smoke_configs("dp_sgd", 1.0, seeds=(0,))[0]) is None  # wraps model and optimiser
    assert lockstep_key(plain.replace(norm="batch")) is None  # running statistics
    try:
        train_many([plain, dropout], load_dataset("fmnist"), progress=False)
    except ValueError as error:
        assert "configs" in str(error) and "lockstep" in str(error)
    else:
        raise AssertionError("incompatible runs were trained together")


def test_freed_memory_is_kept_once_per_process_on_glibc():
    import platform

    from mia_utils.train import keep_freed_memory

    applied = keep_freed_memory()
    assert applied == (platform.libc_ver()[0] == "glibc")
    assert keep_freed_memory() == applied  # idempotent
