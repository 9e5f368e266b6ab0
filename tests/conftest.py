import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


@pytest.fixture
def store(tmp_path):
    from mia_utils.store import ResultStore

    return ResultStore(tmp_path / "store")


@pytest.fixture
def tiny_config():
    """A configuration that trains in about a second on a CPU."""
    from mia_utils.book.profiles import get_profile

    return get_profile("smoke").base_config("fmnist").replace(n_members=300, n_eval=50, n_adversary=50,
                                                                epochs=1, batch_size=64)


@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    env["MIA_STORE"] = str(tmp_path / "store")
    env.pop("MIA_PROGRESS", None)
    return env


@pytest.fixture(scope="session")
def smoke_book(tmp_path_factory):
    """A copy of the book sources with every chapter executed under the smoke profile:
    ``(folder, environment)``; its store is ``folder/store``."""
    book = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, book / name)
    shutil.copytree(ROOT / "book", book / "book", ignore=shutil.ignore_patterns("executed"))
    env = {**os.environ, "MIA_STORE": str(book / "store")}
    result = subprocess.run([PYTHON, "-m", "mia_utils", "run", "--profile", "smoke", "-q",
                             "--out", str(book / "book" / "executed")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-5000:]
    return book, env


@pytest.fixture(scope="session")
def built_smoke_book(smoke_book):
    """The smoke book built into ``folder/_build/html`` with warnings as errors; the folder."""
    book, env = smoke_book
    result = subprocess.run([PYTHON, "-m", "mia_utils", "build", "--dir", str(book)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return book
