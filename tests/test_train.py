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
