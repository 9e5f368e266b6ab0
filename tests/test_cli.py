import json
import re
import subprocess

import pytest

from conftest import PYTHON, ROOT
from mia_utils.book.chapters import toc_chapters


def cli(*args, env, timeout=120):
    return subprocess.run([PYTHON, "-m", "mia_utils", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


BAD_PARAMETERS = [
    ("01_baselines", ["-p", "sed", "1"], "parameter 'sed' is unknown for chapter 01_baselines; allowed: profile, datasets, seed"),
    ("01_baselines", ["-p", "seed", "one"], "parameter 'seed': got 'one'; allowed: int in [0,"),
    ("01_baselines", ["-p", "seed", "1.5"], "parameter 'seed': got '1.5'; allowed: int in [0,"),
    ("01_baselines", ["-p", "seed", "-3"], "parameter 'seed': got -3; allowed: int in [0,"),
    ("01_baselines", ["-p", "epochs", "5000"], "parameter 'epochs': got 5000; allowed: int in [0, 1000]"),
    ("01_baselines", ["--profile", "huge"], "parameter 'profile': got 'huge'; allowed: one of smoke, quick, paper"),
    ("01_baselines", ["-p", "datasets", "mnist"], "parameter 'datasets': got ['mnist']; allowed: one of fmnist, cifar10, cifar100"),
    ("01_baselines", ["-p", "datasets", "cifar10"], "parameter 'datasets': 'cifar10' is not part of profile 'smoke'"),
    ("01_baselines", ["--profile", "paper", "-p", "datasets", "cifar100"], "'cifar100' is not available offline"),
    ("01_baselines", ["-p", "shadow_models", "3"], "parameter 'shadow_models': got 3; allowed: 0 (the profile's value) or an even"),
    ("02_regularization", ["-p", "mechanisms", "dropout,bagging"], "parameter 'mechanisms': got ['dropout', 'bagging']; allowed: one of distillation,"),
    ("05_distance_to_confident", ["-p", "dtc_samples", "-1"], "parameter 'dtc_samples': got -1; allowed: int in [0, 60000]"),
    ("03_differential_privacy", ["-p", "epochs", "5"], "parameter 'epochs' is unknown for chapter 03_differential_privacy"),
]
BAD_SWEEPS = [
    (["sweep", "--profile", "smoke", "--retries", "-1"], "--retries: must be >= 0, got -1"),
    (["plan", "--profile", "huge"], "profile: unknown profile 'huge'; allowed: smoke, quick, paper"),
    (["sweep", "--profile", "huge", "--workers", "2"], "profile: unknown profile 'huge'; allowed: smoke, quick, paper"),
    (["sweep", "--profile", "smoke", "--workers", "0"], "--workers: must be >= 1, got 0"),
    (["sweep", "--profile", "smoke", "--lockstep", "0"], "--lockstep: must be >= 1, got 0"),
    (["sweep", "--profile", "smoke", "--workers", "2", "--threads", "0"], "--threads: must be >= 1, got 0"),
    (["sweep", "--profile", "smoke", "--workers", "2", "--cluster", "tcp://127.0.0.1:8786"],
     "argument --cluster: not allowed with argument --workers"),
    (["sweep", "--profile", "smoke", "--cluster", "my laptop"],
     "--cluster: got 'my laptop'; allowed: a Dask scheduler address such as tcp://10.0.0.5:8786"),
    (["sweep", "--profile", "smoke", "--chapters", "01_baselines,09_bagging"],
     "chapter: unknown chapter '09_bagging'; allowed: 00_primer,"),
]


@pytest.mark.parametrize("args, message", BAD_SWEEPS)
def test_bad_plan_and_sweep_options_fail_before_training(args, message, cli_env, tmp_path):
    result = cli(*args, "--store", str(tmp_path / "store"), env=cli_env)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "store" / "runs").exists() or not any((tmp_path / "store" / "runs").iterdir())


@pytest.mark.parametrize("chapter, args, message", BAD_PARAMETERS)
def test_bad_parameters_fail_before_training_and_leave_no_page(chapter, args, message, cli_env, tmp_path):
    out = tmp_path / "executed"
    result = cli("run", chapter, "--profile", "smoke", "--out", str(out), *args, env=cli_env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert not out.exists() or not any(out.iterdir())
    assert not (tmp_path / "store").exists()  # nothing was trained


def test_a_bad_parameter_keeps_the_previous_page(cli_env, tmp_path):
    out = tmp_path / "executed"
    out.mkdir()
    page = out / "01_baselines.ipynb"
    page.write_text("previous page")
    result = cli("run", "01_baselines", "--profile", "smoke", "--out", str(out), "-p", "seed", "x", env=cli_env)
    assert result.returncode == 2
    assert page.read_text() == "previous page" and sorted(p.name for p in out.iterdir()) == ["01_baselines.ipynb"]


def test_unknown_chapter(cli_env):
    result = cli("run", "99_nothing", env=cli_env)
    assert result.returncode == 2 and "chapter: unknown chapter '99_nothing'; allowed: 00_primer, 01_baselines" in result.stderr


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
    assert result.returncode == 2 and "-p widht: not a configuration field; allowed: " in result.stderr
    assert "width" in result.stderr.split("allowed: ")[1]


def test_toc_lists_the_chapters():
    assert toc_chapters()[:3] == ["findings", "00_primer", "01_baselines"]
    for name in toc_chapters():
        assert (ROOT / "notebooks" / f"{name}.ipynb").exists()


def test_rerun_page_lists_every_parameter_as_the_code_defines_it():
    from mia_utils.cli import parameters_markdown

    page = (ROOT / "book" / "rerun.md").read_text()
    embedded = page.split("<!-- parameters:start -->\n", 1)[1].split("<!-- parameters:end -->", 1)[0]
    assert embedded == parameters_markdown(), "regenerate with: python -m mia_utils params --update book/rerun.md"


def test_params_markdown_and_missing_chapter(cli_env):
    result = cli("params", "--markdown", env=cli_env)
    assert result.returncode == 0 and "| `shadow_models` | int |" in result.stdout
    result = cli("params", env=cli_env)
    assert result.returncode == 2 and "chapter: name a chapter" in result.stderr


def test_the_execution_fingerprint_follows_the_inputs_of_a_chapter(tmp_path):
    from mia_utils.cli import execution_fingerprint

    notebook = tmp_path / "chapter.ipynb"
    notebook.write_text("{}")
    store = tmp_path / "store"
    base = execution_fingerprint(notebook, {"profile": "smoke"}, store)
    assert execution_fingerprint(notebook, {"profile": "smoke"}, store) == base
    assert execution_fingerprint(notebook, {"profile": "quick"}, store) != base
    (store / "runs" / "eval-abc").mkdir(parents=True)
    (store / "runs" / "eval-abc" / "manifest.json").write_text("{}")  # a cached evaluation: derived, ignored
    assert execution_fingerprint(notebook, {"profile": "smoke"}, store) == base
    (store / "runs" / "abc").mkdir()
    (store / "runs" / "abc" / "manifest.json").write_text('{"weights": 1}')  # a new run
    with_run = execution_fingerprint(notebook, {"profile": "smoke"}, store)
    assert with_run != base
    (store / "runs" / "abc" / "manifest.json").write_text('{"weights": 2}')  # the same run, other bytes
    assert execution_fingerprint(notebook, {"profile": "smoke"}, store) != with_run
    notebook.write_text('{"cells": []}')
    assert execution_fingerprint(notebook, {"profile": "smoke"}, store) not in (base, with_run)


def test_an_unchanged_chapter_is_kept_and_force_executes_it_again(cli_env, tmp_path):
    out = tmp_path / "executed"
    first = cli("run", "00_primer", "--profile", "smoke", "--out", str(out), "-q", env=cli_env, timeout=600)
    assert first.returncode == 0, first.stderr
    page = out / "00_primer.ipynb"
    written = page.stat().st_mtime_ns
    assert json.loads(page.read_text())["metadata"]["mia_utils"]["fingerprint"]
    second = cli("run", "00_primer", "--profile", "smoke", "--out", str(out), "-q", env=cli_env, timeout=600)
    assert second.returncode == 0 and re.search(r"^  00_primer +kept \(", second.stderr, re.M)
    assert page.stat().st_mtime_ns == written
    changed = cli("run", "00_primer", "--profile", "smoke", "--out", str(out), "-q", "-p", "seed", "1",
                  env=cli_env, timeout=600)
    assert changed.returncode == 0 and re.search(r"^  00_primer +\d+ s", changed.stderr, re.M)
    assert page.stat().st_mtime_ns != written
    forced = cli("run", "00_primer", "--profile", "smoke", "--out", str(out), "-q", "-p", "seed", "1", "--force",
                 env=cli_env, timeout=600)
    assert forced.returncode == 0 and re.search(r"^  00_primer +\d+ s", forced.stderr, re.M)


def test_jobs_must_be_positive(cli_env, tmp_path):
    result = cli("run", "00_primer", "--profile", "smoke", "--out", str(tmp_path), "--jobs", "0", env=cli_env)
    assert result.returncode == 2 and "--jobs: must be >= 1, got 0" in result.stderr


def test_chapters_execute_side_by_side_with_jobs(cli_env, tmp_path):
    out = tmp_path / "executed"
    result = cli("run", "00_primer", "01_baselines", "--profile", "smoke", "--out", str(out), "-q", "--jobs", "2",
                 env=cli_env, timeout=900)
    assert result.returncode == 0, result.stderr
    assert len(re.findall(r"^  (00_primer|01_baselines) +\d+ s", result.stderr, re.M)) == 2
    # no partial left; each chapter's output in its log
    assert sorted(p.name for p in out.iterdir()) == ["00_primer.ipynb", "01_baselines.ipynb", "logs"]
    assert sorted(p.name for p in (out / "logs").iterdir()) == ["00_primer.log", "01_baselines.log"]
    for name in ("00_primer", "01_baselines"):
        assert json.loads((out / f"{name}.ipynb").read_text())["metadata"]["mia_utils"]["fingerprint"]
