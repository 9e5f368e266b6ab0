"""The paper profile's networks on whatever device is here, and the speed-up of lockstep training.

Run from the repository root (on a GPU machine, or on the CPU for the same table at small size):

    .venv/bin/python benchmarks/gpu.py                                  # K = 1, 2, 4, 8, 16 on a GPU; 1, 2 on a CPU
    .venv/bin/python benchmarks/gpu.py --models 1 4 16 --max-members 4096 --epochs 3
    .venv/bin/python benchmarks/gpu.py --profile quick --models 1 3 --max-members 4000 --out /tmp/quick

For each network of the profile (``paper``: Fashion-MNIST, CIFAR-10, CIFAR-100 at width 1) it
trains K models of the baseline configuration, seeds 0..K-1, through the real loop
(:func:`mia_utils.train.train_many`: K = 1 is the ordinary one-model path, K > 1 trains them in
lockstep) and reads the epoch time off the first model's history, after a warm-up epoch. It
reports images/s summed over the K models, the seconds one model of the profile's size would
take at that rate, and each K's speed-up over K = 1 in the same run. Members are capped at
``--max-members`` and the per-epoch evaluation pass shrunk to 16 images a side; CIFAR is
replaced by random images of the right shape when it is not on disk (the table says so).
Writes ``<out>/gpu.md`` and ``<out>/gpu.json``.
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))  # the sibling benchmark's helpers

from train_throughput import device_name, get_data, matmul_gflops, sync, write_results  # noqa: E402

import torch  # noqa: E402

from mia_utils.models import build_model, forward_flops  # noqa: E402
from mia_utils.book.profiles import PROFILES  # noqa: E402
from mia_utils.train import default_device, train_many  # noqa: E402

EVAL_PER_SIDE = 16


def measure(profile_name: str, dataset: str, models: int, epochs: int, max_members: int, device: torch.device,
            cache: dict) -> dict:
    """Train ``models`` baselines of the profile's ``dataset`` together; one table row."""
    profile = PROFILES[profile_name]
    base = profile.base_config(dataset)
    n_members = min(base.n_members, max_members)
    configs = [profile.base_config(dataset, seed=seed).replace(
        n_members=n_members, n_eval=EVAL_PER_SIDE, n_adversary=0, epochs=epochs, snapshot_epochs=())
        for seed in range(models)]
    data = get_data(dataset, cache)
    print(f"  {dataset:8s} K={models:<3d} {n_members:,} members x {epochs} epochs ...", end="", flush=True)
    sync(device)
    started = time.perf_counter()
    results = train_many(configs, data, progress=False, device=device)
    sync(device)
    epoch_seconds = statistics.median(h["seconds"] for h in results[0].history[1:])
    images_per_s = models * n_members / epoch_seconds
    seconds_per_model = base.n_members * base.epochs / images_per_s  # the K models share the rate
    print(f" {images_per_s:,.0f} images/s ({time.perf_counter() - started:.1f} s)", flush=True)
    return {"dataset": dataset, "models": models, "n_members": n_members, "epochs": epochs,
            "epoch seconds": round(epoch_seconds, 4), "images/s": round(images_per_s, 1),
            "paper seconds per model": round(seconds_per_model, 1),
            "forward MFLOPs per image": round(forward_flops(build_model(dataset, base.width)) / 1e6, 2),
            "data": "random images" if data.source == "random" else "real images"}


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [f"# The {meta['profile']} profile's networks, one model and several in lockstep", "",
             f"- date: {meta['date']}", f"- device: {meta['device']}",
             f"- torch {meta['torch']}, {meta['threads']} CPU threads",
             f"- fp32 matmul rate: {meta['matmul_gflops']:.1f} GFLOP/s (torch.mm 2048x2048, before the rows)",
             f"- members per model capped at {meta['max_members']:,}; {meta['epochs']} epochs, the first a warm-up; "
             f"evaluation pass {EVAL_PER_SIDE} images a side",
             "- images/s: all K models' training images per second (`mia_utils.train.train_many`); seconds per "
             "model: the profile's members x epochs at that rate (the K models share it)",
             f"- run time: {meta['run_seconds']:.0f} s", ""]
    if meta.get("notes"):
        lines.insert(-1, f"- note: {meta['notes']}")
    lines += ["| network | K models | images/s | seconds per model (profile size) | speed-up vs K = 1 | data |",
              "|---|---:|---:|---:|---:|---|"]
    for row in rows:
        lines.append(f"| {row['dataset']} ({row['forward MFLOPs per image']} MFLOP/image) | {row['models']} "
                     f"| {row['images/s']:,.0f} | {row['paper seconds per model']:,.0f} | {row['speed-up']:.2f}x "
                     f"| {row['data']} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    device = default_device()
    default_models = [1, 2, 4, 8, 16] if device.type == "cuda" else [1, 2]
    parser.add_argument("--models", nargs="+", type=int, default=default_models, help="values of K")
    parser.add_argument("--profile", default="paper", choices=list(PROFILES),
                        help="whose networks and schedule (default: paper)")
    parser.add_argument("--datasets", nargs="+", help="default: the profile's")
    parser.add_argument("--epochs", type=int, default=2, help="epochs per measurement, the first is warm-up (>= 2)")
    parser.add_argument("--max-members", type=int, default=None,
                        help="cap on members per model (default 8,192 on a GPU, 1,024 on a CPU)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs: must be at least 2 (the first epoch is a warm-up), got %d" % args.epochs)
    if any(k < 1 for k in args.models):
        parser.error(f"--models: every K must be >= 1, got {args.models}")
    allowed = PROFILES[args.profile].datasets
    args.datasets = args.datasets or list(allowed)
    unknown = sorted(set(args.datasets) - set(allowed))
    if unknown:
        parser.error(f"--datasets: unknown {unknown}; allowed for {args.profile}: {', '.join(allowed)}")
    max_members = args.max_members or (8192 if device.type == "cuda" else 1024)

    started = time.perf_counter()
    print(f"device {device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    matmul = matmul_gflops(device)
    rows, cache = [], {}
    for dataset in args.datasets:
        single = None
        for models in sorted(set(args.models)):
            row = measure(args.profile, dataset, models, args.epochs, max_members, device, cache)
            single = single or (row["images/s"] if models == 1 else None)
            row["speed-up"] = row["images/s"] / single if single else float("nan")
            rows.append(row)
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "matmul_gflops": matmul, "profile": args.profile, "epochs": args.epochs, "max_members": max_members,
            "run_seconds": time.perf_counter() - started}
    write_results(args.out, "gpu", markdown, meta, rows, device)

if __name__ == "__main__":
    main()
