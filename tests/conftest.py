import os
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
    from mia_utils.profiles import get_profile

    return get_profile("smoke").base_config("fmnist").replace(n_members=300, n_eval=50, n_adversary=50,
                                                                epochs=1, batch_size=64)


@pytest.fixture
def cli_env(tmp_path):
    env = dict(os.environ)
    env["MIA_STORE"] = str(tmp_path / "store")
    env.pop("MIA_PROGRESS", None)
    return env
