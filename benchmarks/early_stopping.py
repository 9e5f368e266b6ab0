"""Cost of the early-stopping sweep: one run with snapshots against one run per epoch E.

Run from the repository root:

    .venv/bin/python benchmarks/early_stopping.py [--profile quick] [--out benchmarks/results]

Both sides train the profile's Fashion-MNIST baseline in a fresh temporary store, one after the
other in the same process: (a) ONE run of ``epochs`` epochs that keeps snapshots at the grid's
epochs (what the book does), and (b) a separate run stopped at each E of the grid, plus the full
run (what a sweep without snapshots would cost). It checks that both give the same outputs and
writes the wall times and their ratio to ``results/early_stopping.md``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch

from mia_utils import experiment
from mia_utils.book.profiles import get_profile
from mia_utils.store import ResultStore


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    base = profile.base_config("fmnist").replace(snapshot_epochs=())
    grid = sorted(e for e in profile.grids["early_stopping"] if e < base.epochs)
    with tempfile.TemporaryDirectory() as folder:
        store = ResultStore(Path(folder) / "snapshots")
        started = time.perf_counter()
        sweep = experiment.early_stopping_sweep(base, grid + [base.epochs], store, progress=False)
        with_snapshots = time.perf_counter() - started
        print(f"one run with snapshots at {grid}: {with_snapshots:.1f} s")
        store = ResultStore(Path(folder) / "separate")
        started = time.perf_counter()
        separate = {e: experiment.run(base.replace(epochs=e), store, progress=False).outputs
                    for e in grid + [base.epochs]}
        one_per_epoch = time.perf_counter() - started
        print(f"one run per E: {one_per_epoch:.1f} s")
    identical = all(torch.equal(sweep[e]["eval_logits"], separate[e]["eval_logits"]) for e in sweep)
    lines = [f"# Early-stopping sweep cost ({time.strftime('%Y-%m-%d %H:%M')})", "",
             f"- profile {profile.name}, Fashion-MNIST, {base.n_members} members, {base.epochs} epochs; "
             f"grid E = {grid} plus the full {base.epochs}; cpu, {torch.get_num_threads()} threads",
             f"- outputs identical between the two ways: {identical}", "",
             "| way | wall time (s) |", "|---|---|",
             f"| one run, snapshots at every E | {with_snapshots:.1f} |",
             f"| one run per E | {one_per_epoch:.1f} |",
             f"| ratio (per-E / snapshots) | {one_per_epoch / with_snapshots:.2f}x |"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "early_stopping.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
