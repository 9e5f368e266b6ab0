import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable

#: ``MIA_TEST_ONEDNN=0`` turns oneDNN (mkldnn) off for the session in the test process (not in the
#: subprocesses that execute the book), so that convolutions run on PyTorch's own kernels: a test
#: that passes only one way depends on the kernel choice.
ONEDNN_SWITCH = "MIA_TEST_ONEDNN"

#: The /proc/cpuinfo flags that decide which kernels MKL and oneDNN pick.
KERNEL_FLAGS = ("avx", "fma", "avx2", "avx512f", "avx512bw", "avx512vl", "avx512_vnni", "avx512_bf16",
                "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")


def pytest_configure(config):
    value = os.environ.get(ONEDNN_SWITCH, "1")
    if value not in ("0", "1"):
        raise pytest.UsageError(f"{ONEDNN_SWITCH}: must be 0 (oneDNN off) or 1 (on, the default), got {value!r}")
    if value == "0":
        import torch

        torch.backends.mkldnn.enabled = False


def _cpuinfo() -> dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty where there is none)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return {}
    fields = {}
    for line in text.split("\n\n")[0].splitlines():
        name, _, value = line.partition(":")
        fields[name.strip()] = value.strip()
    return fields


def pytest_report_header(config):
    """The machine the suite runs on, so that a failure report says which one it came from:
    kernels, and so the last bits of results compared up to rounding, differ between CPUs."""
    import torch

    info = _cpuinfo()
    flags = set(info.get("flags", "").split())
    model = info.get("model name") or platform.processor() or "unknown"
    numbers = ", ".join(f"{name} {info[name]}" for name in ("cpu family", "model", "stepping") if name in info)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    onednn = "on" if torch.backends.mkldnn.is_available() and torch.backends.mkldnn.enabled else "off"
    vendor = info.get("vendor_id", "unknown vendor")
    return [
        f"cpu: {model}, {vendor} ({numbers}); {os.cpu_count()} logical CPUs, {usable} usable",
        f"cpu flags: {' '.join(f for f in KERNEL_FLAGS if f in flags) or 'none'}"
        f" (absent: {' '.join(f for f in KERNEL_FLAGS if f not in flags) or 'none'})",
        f"torch {torch.__version__}: cpu capability {torch.backends.cpu.get_cpu_capability()}, "
        f"threads {torch.get_num_threads()} (OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}), "
        f"MKL {torch.backends.mkl.is_available()}, oneDNN available {torch.backends.mkldnn.is_available()}, "
        f"oneDNN {onednn} ({ONEDNN_SWITCH}={os.environ.get(ONEDNN_SWITCH, 'unset')})",
    ]


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
    ``(folder, environment)``; its store is ``folder/store``, and what the execution printed is
    in ``folder/console.txt`` (the cells' output is in ``folder/book/executed/logs/``)."""
    book = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, book / name)
    shutil.copytree(ROOT / "book", book / "book", ignore=shutil.ignore_patterns("executed"))
    env = {**os.environ, "MIA_STORE": str(book / "store")}
    result = subprocess.run([PYTHON, "-m", "mia_utils", "run", "--profile", "smoke",
                             "--out", str(book / "book" / "executed")], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=1800)
    (book / "console.txt").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, result.stderr[-5000:]
    return book, env


@pytest.fixture(scope="session")
def built_smoke_book(smoke_book):
    """The smoke book built into ``folder/_build/html`` with warnings as errors; the folder. What
    the build printed is in ``folder/build-console.txt``, Sphinx's output in ``folder/_build/logs``."""
    book, env = smoke_book
    result = subprocess.run([PYTHON, "-m", "mia_utils", "build", "--dir", str(book)], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=900)
    (book / "build-console.txt").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    return book
