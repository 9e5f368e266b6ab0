"""Wall time of a whole sweep: in this process against a local Dask cluster, side by side.

Run from the repository root:

    .venv/bin/python benchmarks/sweep.py                                   # the quick profile (about 50 min on 2 cores)
    .venv/bin/python benchmarks/sweep.py --profile smoke --chapters 01_baselines --out /tmp/sweep   # a smoke check
    .venv/bin/python benchmarks/sweep.py --chapters 01_baselines --keep .mia_store   # one chapter; keep its runs

Runs ``python -m mia_utils sweep --profile P`` twice, one after the other, each into its own
empty store: first in-process (torch's default thread count), then with ``--workers N`` (each
worker gets cores / N torch threads). Reports each wall time (from launching the command to its
exit, cluster start-up included), the runs trained and runs per hour, the ratio of the two
wall times, and how far the two stores' per-sample outputs and test accuracies are apart (the
thread counts differ, so float rounding may differ; the smoke test compares equal thread counts
bit for bit). Writes ``<out>/sweep.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run without installing mia_utils

import torch  # noqa: E402

from mia_utils.store import ResultStore  # noqa: E402


def timed_sweep(profile: str, store: Path, extra: list[str], chapters: str | None) -> tuple[float, int, str]:
    """Wall seconds, runs trained and stderr's last line of one ``sweep`` command."""
    command = [sys.executable, "-m", "mia_utils", "sweep", "--profile", profile, "--store", str(store), "-q", *extra]
    if chapters:
        command += ["--chapters", chapters]
    print("$", " ".join(command[1:]), flush=True)
    started = time.perf_counter()
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - started
    summary = [line for line in result.stderr.splitlines() if "runs trained" in line]
    if result.returncode != 0 or not summary:
        raise SystemExit(f"sweep failed (exit {result.returncode}):\n{result.stderr[-3000:]}")
    trained = int(re.search(r"(\d+) runs trained", summary[-1]).group(1))
    print(f"  {seconds:.0f} s, {trained} runs trained", flush=True)
    return seconds, trained, summary[-1]


def compare(first: ResultStore, second: ResultStore) -> tuple[int, float, float]:
    """Runs in both stores, the largest absolute difference of any per-sample output, and of
    test accuracy (in [0, 1])."""
    keys = sorted(set(k for k in first.keys() if not k.startswith("dtc-"))
                  & set(k for k in second.keys() if not k.startswith("dtc-")))
    worst_output = worst_accuracy = 0.0
    for key in keys:
        a, b = first.load(key), second.load(key)
        for name, tensors in a["tensors"].items():
            if not name.endswith("outputs"):
                continue
            for tensor_name, tensor in tensors.items():
                other = b["tensors"][name][tensor_name]
                if tensor.numel():
                    worst_output = max(worst_output, (tensor.double() - other.double()).abs().max().item())
        worst_accuracy = max(worst_accuracy, abs(a["json"]["metrics"]["summary"]["test_acc"]
                                                 - b["json"]["metrics"]["summary"]["test_acc"]))
    return len(keys), worst_output, worst_accuracy


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chapters", help="comma-separated chapters (default: the whole book)")
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--keep", help="a result store to copy the cluster's runs into afterwards (e.g. .mia_store), "
                                       "so that the benchmark's training also serves the book")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="sweep-bench-") as scratch:
        local_store, cluster_store = Path(scratch) / "in_process", Path(scratch) / "cluster"
        local = timed_sweep(args.profile, local_store, [], args.chapters)
        cluster = timed_sweep(args.profile, cluster_store, ["--workers", str(args.workers)], args.chapters)
        shared, worst_output, worst_accuracy = compare(ResultStore(local_store), ResultStore(cluster_store))
        if args.keep:
            (Path(args.keep) / "runs").mkdir(parents=True, exist_ok=True)
            for entry in (cluster_store / "runs").iterdir():
                target = Path(args.keep) / "runs" / entry.name
                if not entry.name.startswith(".") and not target.exists():
                    staging = target.with_name(f".tmp-{entry.name}.copy")  # renamed into place: all or nothing
                    shutil.copytree(entry, staging)
                    staging.rename(target)

    scope = args.chapters or "every chapter"
    lines = [
        f"# Sweep wall time: in-process vs a local Dask cluster ({args.profile} profile)", "",
        f"Measured {datetime.datetime.now().isoformat(timespec='minutes')} on {os.cpu_count()} CPU cores "
        f"(torch {torch.__version__}, {'CUDA' if torch.cuda.is_available() else 'no GPU'}); chapters: {scope}. "
        "One after the other, each into an empty store.", "",
        "| executor | torch threads per run | wall time (s) | runs trained | runs per hour | time vs in-process |",
        "|---|---|---|---|---|---|",
        f"| in-process | {torch.get_num_threads()} | {local[0]:.0f} | {local[1]} | {3600 * local[1] / local[0]:.0f} | 1.00 |",
        f"| local cluster, {args.workers} workers | {max(1, (os.cpu_count() or 1) // args.workers)} | {cluster[0]:.0f} "
        f"| {cluster[1]} | {3600 * cluster[1] / cluster[0]:.0f} | {cluster[0] / local[0]:.2f} |", "",
        f"Both stores hold {shared} runs in common. Largest difference between them: "
        f"{worst_output:.2e} in any per-sample output, {100 * worst_accuracy:.2f} points of test accuracy.", "",
    ]
    text = "\n".join(lines)
    print(text)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "sweep.md").write_text(text)


if __name__ == "__main__":
    main()
