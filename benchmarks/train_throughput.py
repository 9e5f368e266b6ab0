"""Training throughput of each profile, as a fraction of the machine's fp32 matmul rate.

Run from the repository root:

    .venv/bin/python benchmarks/train_throughput.py                    # all profiles, ~2-3 min on 2 CPU cores
    .venv/bin/python benchmarks/train_throughput.py --profiles smoke quick --epochs 3

For every profile and every dataset in it, the script trains the profile's baseline
configuration through the real loop, :func:`mia_utils.train.train`, for a few epochs and
reads images/s off the per-epoch ``seconds`` of the epochs after the first (the first is a
warm-up). Sizes are changed only for speed, and the table says so:

* ``n_members`` is capped at ``--max-members`` (the paper profile's 50,000-60,000 members
  would take hours on a CPU);
* the evaluation set the loop scores after every epoch is shrunk to ``EVAL_PER_SIDE``
  images per side (``n_adversary`` 0, which training does not use). That pass still runs
  and is included in ``seconds``; the notes give its estimated share of an epoch's FLOPs.

Achieved GFLOP/s = images/s x 3 x forward FLOPs of one image (forward + backward ~ 3 x
forward; FLOPs = 2 x multiply-accumulates of the convolutions and the linear layer, from
:func:`mia_utils.models.forward_flops`). The machine's fp32 matrix-multiply rate is measured
in the same run (``torch.mm`` of two 2048 x 2048 float32 matrices, median of several timed
repetitions after warm-up) just before and just after every training run, and each row is
reported as a fraction of the mean of those two rates: shared machines are noisy (and their
load drifts), so compare ratios from one run rather than absolute numbers across runs.

Datasets not available offline (CIFAR here) are replaced by random uint8 images and labels
of the right shapes; throughput does not depend on pixel values. The device is
:func:`mia_utils.train.default_device` (CUDA when present, or ``$MIA_DEVICE``).

Writes ``<out>/train_throughput.md`` (the printed table) and ``<out>/train_throughput.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

# The training loop sets this for deterministic cuBLAS; set it before our own matmul creates
# the cuBLAS handle so that training runs exactly as in a fresh process.
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing mia_utils

from mia_utils.data import DATASETS, ImageDataset, dataset_available, load_dataset  # noqa: E402
from mia_utils.models import build_model, forward_flops  # noqa: E402
from mia_utils.book.profiles import PROFILES  # noqa: E402
from mia_utils.train import default_device, train  # noqa: E402

EVAL_PER_SIDE = 16  # images per side in the per-epoch evaluation pass (train() needs >= 1)
MATMUL_SIZE = 2048
COLUMNS = ["profile", "dataset", "width", "batch", "images measured", "images/s", "GFLOP/s",
           "fraction of matmul", "notes"]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def matmul_gflops(device: torch.device, warmup: int = 2, repeats: int = 5) -> float:
    """fp32 GFLOP/s of torch.mm on two MATMUL_SIZE x MATMUL_SIZE matrices (median of ``repeats``)."""
    n = MATMUL_SIZE
    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator).to(device)
    b = torch.randn(n, n, generator=generator).to(device)
    calls = 20 if device.type == "cuda" else 1  # one CPU call takes ~0.1 s; one GPU call ~0.1 ms
    rates = []
    for i in range(warmup + repeats):
        sync(device)
        start = time.perf_counter()
        for _ in range(calls):
            torch.mm(a, b)
        sync(device)
        if i >= warmup:
            rates.append(calls * 2 * n ** 3 / (time.perf_counter() - start) / 1e9)
    return statistics.median(rates)


def random_dataset(name: str, seed: int = 0) -> ImageDataset:
    """Random uint8 images and labels with the shapes and counts of dataset ``name``."""
    info = DATASETS[name]
    g = torch.Generator().manual_seed(seed)
    return ImageDataset(
        info,
        torch.randint(0, 256, (info.n_train, *info.shape), dtype=torch.uint8, generator=g),
        torch.randint(0, info.num_classes, (info.n_train,), generator=g),
        torch.randint(0, 256, (info.n_test, *info.shape), dtype=torch.uint8, generator=g),
        torch.randint(0, info.num_classes, (info.n_test,), generator=g),
        source="random",
    )


def get_data(name: str, cache: dict) -> ImageDataset:
    """The real dataset when it is available offline, else random data of the same shape."""
    if name not in cache:
        cache[name] = load_dataset(name, download=False) if dataset_available(name) else random_dataset(name)
    return cache[name]


def measure(profile_name: str, dataset: str, epochs: int, max_members: int, device: torch.device,
            cache: dict) -> dict:
    """Train one profile's baseline on ``dataset`` for ``epochs`` epochs; one table row.

    The fraction of matmul is left to the caller, who measures the matmul rate around it.
    """
    profile = PROFILES[profile_name]
    base = profile.base_config(dataset)
    n_members = min(base.n_members, max_members)
    n_eval = min(base.n_eval, EVAL_PER_SIDE, n_members)
    config = base.replace(n_members=n_members, n_eval=n_eval, n_adversary=0, epochs=epochs,
                          batch_size=min(base.batch_size, n_members), snapshot_epochs=[])
    data = get_data(dataset, cache)
    flops = forward_flops(build_model(dataset, config.width))  # on the CPU: forward_flops feeds a CPU tensor

    print(f"  {profile_name:6s} {dataset:8s} width {config.width:g}, batch {config.batch_size}, "
          f"{n_members:,} members x {epochs} epochs ...", end="", flush=True)
    result = train(config, data, progress=False, device=device)
    seconds = [entry["seconds"] for entry in result.history[1:]]  # drop the warm-up epoch
    images_per_s = n_members / statistics.median(seconds)
    gflops = images_per_s * 3 * flops / 1e9
    print(f" {images_per_s:,.0f} images/s, {gflops:.1f} GFLOP/s ({result.seconds:.1f} s)", flush=True)

    notes = []
    if data.source == "random":
        notes.append("random uint8 data (not available offline)")
    if n_members < base.n_members:
        notes.append(f"n_members {base.n_members:,} -> {n_members:,}")
    eval_share = 2 * n_eval / (2 * n_eval + 3 * n_members)  # in forward-pass FLOP units
    notes.append(f"eval pass 2x{n_eval} images/epoch included (~{100 * eval_share:.1f}% of FLOPs)")
    return {"profile": profile_name, "dataset": dataset, "width": config.width,
            "batch": config.batch_size, "images measured": n_members * len(seconds),
            "images/s": round(images_per_s, 1), "GFLOP/s": round(gflops, 2),
            "notes": "; ".join(notes),
            "forward MFLOPs per image": round(flops / 1e6, 3), "epoch seconds": seconds,
            "n_members": n_members, "epochs": epochs, "data": data.source}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as handle:
            model = next(line.split(":", 1)[1].strip() for line in handle if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"cpu ({model}, {os.cpu_count()} logical cores)"


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Training throughput",
        "",
        f"- date: {meta['date']}",
        f"- device: {meta['device']}",
        f"- torch {meta['torch']}, {meta['threads']} CPU threads",
        f"- fp32 matmul rate: {meta['matmul_gflops']:.1f} GFLOP/s (torch.mm {MATMUL_SIZE}x{MATMUL_SIZE}; median of "
        f"{len(meta['matmul_samples'])} measurements taken before and after each row, range "
        f"{min(meta['matmul_samples']):.1f}-{max(meta['matmul_samples']):.1f}); each row's fraction uses "
        "the mean of the rates measured just before and just after it",
        "- images/s: members / median epoch seconds of the epochs after the first (warm-up), through "
        "`mia_utils.train.train`",
        "- GFLOP/s = images/s x 3 x forward FLOPs per image (forward + backward ~ 3 x forward; "
        "FLOPs = 2 x multiply-accumulates of convs and linear)",
        f"- run time: {meta['run_seconds']:.0f} s",
    ]
    if meta.get("notes"):
        lines.append(f"- note: {meta['notes']}")
    lines += ["", "| " + " | ".join(COLUMNS) + " |", "|" + "|".join("---" for _ in COLUMNS) + "|"]
    for row in rows:
        cells = [row["profile"], row["dataset"], f"{row['width']:g}", str(row["batch"]),
                 f"{row['images measured']:,}", f"{row['images/s']:,.0f}", f"{row['GFLOP/s']:.1f}",
                 f"{row['fraction of matmul']:.2f}", row["notes"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profiles", nargs="+", choices=list(PROFILES), default=list(PROFILES))
    parser.add_argument("--epochs", type=int, default=2, help="epochs per run, the first is warm-up (>= 2)")
    parser.add_argument("--max-members", type=int, default=2048, help="cap on n_members, for speed")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is a warm-up and not measured)")
    if args.max_members < 1:
        parser.error("--max-members must be at least 1")

    started = time.perf_counter()
    device = default_device()
    print(f"device {device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    matmul = [matmul_gflops(device)]
    print(f"fp32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: {matmul[-1]:.1f} GFLOP/s", flush=True)

    rows, cache = [], {}
    for name in args.profiles:
        for dataset in PROFILES[name].datasets:
            row = measure(name, dataset, args.epochs, args.max_members, device, cache)
            matmul.append(matmul_gflops(device))
            row["matmul GFLOP/s"] = round((matmul[-2] + matmul[-1]) / 2, 1)  # just before and just after
            row["fraction of matmul"] = round(row["GFLOP/s"] / row["matmul GFLOP/s"], 3)
            print(f"    fp32 matmul now {matmul[-1]:.1f} GFLOP/s; fraction {row['fraction of matmul']:.2f}",
                  flush=True)
            rows.append(row)

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "matmul_gflops": statistics.median(matmul), "matmul_samples": [round(m, 1) for m in matmul],
            "epochs": args.epochs,
            "max_members": args.max_members, "eval_per_side": EVAL_PER_SIDE,
            "run_seconds": time.perf_counter() - started}
    write_results(args.out, "train_throughput", markdown, meta, rows, device)


def write_results(out: Path, name: str, markdown, meta: dict, rows: list[dict], device: torch.device) -> None:
    """Note CUDA's precision settings in ``meta``, print ``markdown(meta, rows)`` and write it to
    ``out/<name>.md``, with ``{"meta": meta, "rows": rows}`` as ``out/<name>.json``."""
    if device.type == "cuda":
        meta["notes"] = (f"cuDNN TF32 for convolutions {'on' if torch.backends.cudnn.allow_tf32 else 'off'}, "
                         f"matmul TF32 {'on' if torch.backends.cuda.matmul.allow_tf32 else 'off'}; "
                         "the loop runs with deterministic algorithms")
    table = markdown(meta, rows)
    print()
    print(table)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text(table)
    (out / f"{name}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=2) + "\n")
    print(f"wrote {out / f'{name}.md'} and {out / f'{name}.json'}")

def write_markdown(out: Path, name: str, lines: list[str]) -> None:
    """Write ``lines`` as ``out/<name>.md`` (a benchmark that has no JSON rows) and say where."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / f'{name}.md'}")


if __name__ == "__main__":
    main()
