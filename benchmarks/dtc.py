"""Distance-to-Confident: the batched search against the one-sample-at-a-time loop.

Run from the repository root:

    .venv/bin/python benchmarks/dtc.py                       # 500 samples, 100 steps
    .venv/bin/python benchmarks/dtc.py --samples 20 --steps 10 --threads 1 --out /tmp/dtc   # a smoke check

Both implementations of :mod:`mia_utils.attacks.dtc` run on the same samples, in one process: the
quick profile's Fashion-MNIST baseline (``get_profile("quick").base_config("fmnist")``, read
from the result store; trained first if it is not there), its first ``samples / 2`` evaluation
members and first ``samples / 2`` evaluation non-members, threshold = the model's median training
loss, step 0.001, ``--steps`` steps at most. Reports samples/s of each, their ratio (the batched
one's speed-up), whether they agree, and the achieved rate as a fraction of the machine's fp32
``torch.mm`` rate (2048 x 2048, measured in the same run before and after).

FLOPs: each PGD step is a forward pass and a backward pass to the INPUT only (parameters do not
require gradients, so no weight gradient is computed): about 2 x forward FLOPs, and each sample
adds one last forward check, so DtC FLOPs = forward FLOPs x (2 x steps taken + samples), with
forward FLOPs from :func:`mia_utils.models.forward_flops`. (The training benchmarks' convention,
3 x forward per step, counts weight gradients that this search does not compute; its
figure is given too.) The batched search also does one backward pass per sample that the loop
skips (the step at which a sample is found confident, when others in its batch still move);
that work is not counted.

Writes ``<out>/dtc.md``.
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time
from pathlib import Path

os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import torch  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing mia_utils
sys.path.insert(0, str(Path(__file__).resolve().parent))

from mia_utils.attacks.dtc import (confident_loss, distance_to_confident, distance_to_confident_loop,  # noqa: E402
                           run_images)
from mia_utils.experiment import run  # noqa: E402
from mia_utils.models import forward_flops  # noqa: E402
from mia_utils.book.profiles import get_profile  # noqa: E402
from mia_utils.train import default_device  # noqa: E402
from train_throughput import MATMUL_SIZE, device_name, matmul_gflops, sync  # noqa: E402


def pick_samples(images, labels, is_member, samples: int):
    """The first ceil(samples / 2) members and first floor(samples / 2) non-members."""
    members = torch.nonzero(is_member).squeeze(1)[: (samples + 1) // 2]
    nonmembers = torch.nonzero(~is_member).squeeze(1)[: samples // 2]
    keep = torch.cat([members, nonmembers])
    return images[keep], labels[keep], is_member[keep]


def timed(device, fn):
    sync(device)
    start = time.perf_counter()
    result = fn()
    sync(device)
    return result, time.perf_counter() - start


def markdown(meta: dict, rows: list[dict]) -> str:
    lines = [
        "# Distance-to-Confident: batched vs per-sample",
        "",
        f"- date: {meta['date']}",
        f"- device: {meta['device']}",
        f"- torch {meta['torch']}, {meta['threads']} CPU threads",
        f"- model: the quick profile's Fashion-MNIST baseline (run {meta['run_key']}, "
        f"{'read from the store' if meta['from_store'] else 'trained by this run'}), "
        f"{meta['forward_mflops']:.2f} forward MFLOPs per image",
        f"- samples: {meta['samples']} ({meta['members']} evaluation members, {meta['nonmembers']} non-members); "
        f"threshold {meta['threshold']:.4f} nats (median training loss); step {meta['step']}, "
        f"at most {meta['max_steps']} steps; batch size {meta['batch_size']}",
        f"- outcome: {meta['already_confident']} already confident, {meta['reached']} reached "
        f"(already confident included), {meta['capped']} capped; {meta['total_steps']:,} steps taken in all "
        f"(mean {meta['mean_steps']:.1f} per sample)",
        f"- agreement (float32): {meta['same_steps']} of {meta['samples']} samples take the same number of steps "
        f"in both; max |DtC difference| {meta['max_distance_difference']:.3f} units",
        f"- fp32 matmul rate: {meta['matmul_gflops']:.1f} GFLOP/s (torch.mm {MATMUL_SIZE}x{MATMUL_SIZE}, "
        f"mean of {len(meta['matmul_samples'])} measurements: "
        f"{', '.join(f'{m:.1f}' for m in meta['matmul_samples'])})",
        f"- FLOPs = forward FLOPs x (2 x steps taken + samples): {meta['gflop']:.2f} GFLOP (forward + backward to "
        "the input per step, no weight gradients; one last forward check per sample)",
        f"- **speed-up of the batched search: {meta['speedup']:.1f}x**",
        f"- run time: {meta['run_seconds']:.0f} s",
        "",
        "| implementation | seconds | samples/s | GFLOP/s | fraction of matmul | fraction (3F/step convention) |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['name']} | {row['seconds']:.2f} | {row['samples/s']:,.1f} | {row['GFLOP/s']:.2f} | "
                     f"{row['fraction']:.3f} | {row['fraction 3F']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=500, help="samples measured (half members, half not)")
    parser.add_argument("--steps", type=int, default=100, help="PGD step budget (max_steps)")
    parser.add_argument("--batch-size", type=int, default=500, help="batch size of the batched search")
    parser.add_argument("--step", type=float, default=0.001, help="PGD step size in [0, 1] pixel units")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's own)")
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.samples < 2:
        parser.error("--samples must be at least 2")
    if args.steps < 0:
        parser.error("--steps must be >= 0")

    started = time.perf_counter()
    device = default_device()
    print(f"device {device_name(device)}, torch {torch.__version__}, {torch.get_num_threads()} threads", flush=True)
    target = run(get_profile("quick").base_config("fmnist"), progress=False)
    print(f"model: run {target.key} ({'read from the store' if target.from_store else 'trained now'})", flush=True)
    model = target.model().to(device)
    threshold = confident_loss(target.outputs["member_losses"])
    images, labels, is_member = pick_samples(*run_images(target, "eval"), args.samples)
    n = len(labels)
    flops_per_forward = forward_flops(target.model())  # on the CPU: forward_flops feeds a CPU tensor

    matmul = [matmul_gflops(device)]
    print(f"fp32 matmul {MATMUL_SIZE}x{MATMUL_SIZE}: {matmul[-1]:.1f} GFLOP/s", flush=True)
    settings = {"threshold": threshold, "step": args.step, "max_steps": args.steps}
    # Warm-up: a few samples through both, so neither timing pays for first-call set-up.
    distance_to_confident(model, images[:4], labels[:4], batch_size=args.batch_size, **settings)
    distance_to_confident_loop(model, images[:2], labels[:2], **settings)

    batched, batched_seconds = timed(device, lambda: distance_to_confident(model, images, labels,
                                                                            batch_size=args.batch_size, **settings))
    print(f"  batched:    {batched_seconds:.2f} s ({n / batched_seconds:,.1f} samples/s)", flush=True)
    loop, loop_seconds = timed(device, lambda: distance_to_confident_loop(model, images, labels, **settings))
    print(f"  per-sample: {loop_seconds:.2f} s ({n / loop_seconds:,.1f} samples/s)", flush=True)
    matmul.append(matmul_gflops(device))

    matmul_rate = statistics.mean(matmul)
    total_steps = batched.counts()["total_steps"]
    flops = flops_per_forward * (2 * total_steps + n)
    flops_3f = flops_per_forward * (3 * total_steps + n)
    rows = []
    for name, seconds in (("batched (`distance_to_confident`)", batched_seconds),
                          ("per-sample loop (`distance_to_confident_loop`)", loop_seconds)):
        rows.append({"name": name, "seconds": seconds, "samples/s": n / seconds,
                     "GFLOP/s": flops / seconds / 1e9, "fraction": flops / seconds / 1e9 / matmul_rate,
                     "fraction 3F": flops_3f / seconds / 1e9 / matmul_rate})
    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": device_name(device), "torch": torch.__version__, "threads": torch.get_num_threads(),
            "run_key": target.key, "from_store": target.from_store, "forward_mflops": flops_per_forward / 1e6,
            "samples": n, "members": int(is_member.sum()), "nonmembers": int((~is_member).sum()),
            "threshold": threshold, "step": args.step, "max_steps": args.steps, "batch_size": args.batch_size,
            "already_confident": batched.counts()["already_confident"], "reached": batched.counts()["reached"],
            "capped": batched.counts()["capped"], "total_steps": total_steps, "mean_steps": total_steps / n,
            "same_steps": int((batched.steps == loop.steps).sum()),
            "max_distance_difference": float((batched.distances - loop.distances).abs().max()),
            "matmul_gflops": matmul_rate, "matmul_samples": matmul, "gflop": flops / 1e9,
            "speedup": loop_seconds / batched_seconds, "run_seconds": time.perf_counter() - started}
    table = markdown(meta, rows)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dtc.md").write_text(table)
    print(f"wrote {args.out / 'dtc.md'}")


if __name__ == "__main__":
    main()
