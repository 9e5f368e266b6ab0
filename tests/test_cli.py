import json
import subprocess

import pytest

from conftest import PYTHON, ROOT
from mia_utils.cli import toc_chapters


def cli(*args, env, timeout=120):
    return subprocess.run([PYTHON, "-m", "mia_utils", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


@pytest.mark.parametrize("args, message", [
    (["-p", "sed", "1"], "parameter 'sed' is unknown for chapter 01_baselines; allowed: profile, datasets, seed"),
    (["-p", "seed", "one"], "parameter 'seed': got 'one'; allowed: int in [0,"),
    (["-p", "seed", "-3"], "parameter 'seed': got -3; allowed: int in [0,"),
    (["-p", "epochs", "5000"], "parameter 'epochs': got 5000; allowed: int in [0, 1000]"),
    (["--profile", "huge"], "parameter 'profile': got 'huge'; allowed: one of smoke, quick, paper"),
    (["-p", "datasets", "mnist"], "parameter 'datasets': got ['mnist']; allowed: one of fmnist, cifar10, cifar100"),
    (["-p", "datasets", "cifar10"], "parameter 'datasets': 'cifar10' is not part of profile 'smoke'"),
    (["--profile", "paper", "-p", "datasets", "cifar100"], "'cifar100' is not available offline"),
    (["-p", "shadow_models", "3"], "parameter 'shadow_models': got 3; allowed: 0 (the profile's value) or an even"),
])
def test_bad_parameters_fail_before_training_and_leave_no_page(args, message, cli_env, tmp_path):
    out = tmp_path / "executed"
    result = cli("run", "01_baselines", "--profile", "smoke", "--out", str(out), *args, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "store").exists()  # nothing was trained


def test_unknown_chapter(cli_env):
    result = cli("run", "99_nothing", env=cli_env)
    assert result.returncode == 2 and "chapter: unknown chapter '99_nothing'; allowed: 01_baselines" in result.stderr


def test_params_lists_every_parameter(cli_env):
    result = cli("params", "01_baselines", env=cli_env)
    assert result.returncode == 0
    for name in ("profile", "datasets", "seed", "epochs", "shadow_models"):
        assert f"  {name} (" in result.stdout


def test_train_prints_metrics_and_reuses_the_store(cli_env, tmp_path):
    args = ["train", "--profile", "smoke", "-q", "-p", "epochs", "1", "-p", "n_members", "300",
            "-p", "n_eval", "50", "-p", "n_adversary", "50"]
    first = json.loads(cli(*args, env=cli_env).stdout)
    second = json.loads(cli(*args, env=cli_env).stdout)
    assert first["from_store"] is False and second["from_store"] is True
    assert first["test_acc"] == second["test_acc"] and 0 <= first["adv_yeom"] <= 1


def test_train_refuses_bad_field(cli_env):
    result = cli("train", "--profile", "smoke", "-p", "widht", "2", env=cli_env)
    assert result.returncode == 2 and "parameter 'widht' is not a configuration field" in result.stderr


def test_toc_lists_the_chapters():
    assert toc_chapters()[0] == "01_baselines"
    for name in toc_chapters():
        assert (ROOT / "notebooks" / f"{name}.ipynb").exists()
