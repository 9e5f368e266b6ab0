"""DP-SGD training speed: each way of clipping per-example gradients against non-private training.

Run from the repository root:

    .venv/bin/python benchmarks/dp.py                 # ~30 s on 2 quiet CPU cores (minutes when busy)
    .venv/bin/python benchmarks/dp.py --epochs 4 --rounds 3 --max-members 5000

Trains the quick profile's Fashion-MNIST baseline (``get_profile("quick").base_config("fmnist")``,
``n_members`` capped at ``--max-members``) through the real loop, :func:`mia_utils.train.train`,
once without a mechanism and once with ``dp_sgd`` (sigma_DP = 1) for each mode of
:data:`mia_utils.defenses.dp.GRAD_SAMPLE_MODES`: "ghost" (Opacus' fast gradient clipping, ghost
norms and one backward pass), and Opacus' "hooks", "ew" (expanded weights) and "functorch"
(:attr:`mia_utils.defenses.dp.DPSGD.GRAD_SAMPLE_MODE` is switched for the run). A mode that fails is reported with its error. The rows are trained in
turn, ``--rounds`` times over (interleaved, so that a shared machine's load drifts over all rows
alike). Seconds per epoch are the minimum, over rounds and over the epochs after each run's
first (a warm-up), of the loop's per-epoch ``seconds`` (the median is shown too): on a shared
CPU, other processes only ever add time, so the minimum is the least disturbed estimate. They
include the evaluation pass the loop runs after every epoch, shrunk here to ``EVAL_PER_SIDE``
images per side. DP-SGD epochs are Poisson: int(1/q) steps of on average ``batch_size``
examples, i.e. about as many examples as a non-private epoch (images/s counts the examples
actually drawn). The device is :func:`mia_utils.train.default_device`.

Writes ``<out>/dp.md`` (the printed table).
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing mia_utils

from mia_utils.defenses import dp  # noqa: E402  (registers dp_sgd)
from mia_utils.data import load_dataset  # noqa: E402
from mia_utils.book.profiles import get_profile  # noqa: E402
from mia_utils.train import default_device, epoch_batches, train  # noqa: E402
from mia_utils.defenses import build  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import device_name  # noqa: E402

EVAL_PER_SIDE = 16
SIGMA = 1.0


def examples_per_epoch(config) -> list[int]:
    """Examples drawn in each epoch of ``config`` (Poisson sizes for DP-SGD), replaying the loop's
    order generator."""
    generator = torch.Generator().manual_seed(config.training_seed() + 1)
    mechanisms = build(config.mechanisms)
    return [sum(len(b) for b in epoch_batches(mechanisms, config.n_members, config.batch_size, generator))
            for _ in range(config.epochs)]


def measure(label: str, config, data, device) -> dict:
    """One training run of ``config``: per-epoch seconds and examples of the epochs after the first."""
    print(f"  {label:20s} ...", end="", flush=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Opacus' hooks warn that the first layer's input needs no grad
        result = train(config, data, progress=False, device=device)
    seconds = [h["seconds"] for h in result.history[1:]]
    examples = examples_per_epoch(config)[1:]
    print(" " + ", ".join(f"{s:.2f}" for s in seconds) + " s/epoch", flush=True)
    return {"seconds": seconds, "examples": examples, "facts": result.mechanism_facts}


def summarize(label: str, runs: list[dict]) -> dict:
    pairs = [(s, e) for run in runs for s, e in zip(run["seconds"], run["examples"])]
    best_seconds, best_examples = min(pairs)
    return {"mode": label, "seconds": best_seconds, "median": statistics.median(s for s, _ in pairs),
            "images/s": best_examples / best_seconds, "epochs measured": len(pairs)}


def markdown(meta: dict, rows: list[dict], failures: dict) -> str:
    base = rows[0]["seconds"]
    lines = [
        "# DP-SGD training speed by Opacus grad-sample mode",
        "",
        f"- date: {meta['date']}",
        f"- device: {meta['device']}; torch {torch.__version__}, opacus {meta['opacus']}",
        f"- model: quick profile, Fashion-MNIST, width {meta['width']:g}, batch {meta['batch']}, "
        f"{meta['n_members']:,} members (capped), {meta['epochs']} epochs per row (the first is warm-up)",
        f"- DP-SGD: sigma_DP = {SIGMA:g}, C = {dp.DPSGD.MAX_GRAD_NORM:g}, Poisson q = "
        f"{meta['batch'] / meta['n_members']:.4f}; epsilon after the run {meta['epsilon']:.3g} "
        f"(delta {meta['delta']:.2g})",
        f"- seconds/epoch: minimum over {meta['rounds']} interleaved rounds x {meta['epochs'] - 1} measured epochs of "
        f"the loop's per-epoch seconds (median in brackets; includes an evaluation pass of 2 x {EVAL_PER_SIDE} "
        "images); images/s: examples drawn in that epoch / its seconds; slowdown: seconds / non-private seconds",
        f"- default mode in `mia_utils.defenses.dp.DPSGD.GRAD_SAMPLE_MODE`: **{dp.DPSGD.GRAD_SAMPLE_MODE}**",
        f"- run time: {meta['run_seconds']:.0f} s",
        "",
        "| mode | seconds/epoch (median) | images/s | slowdown vs non-private |",
        "|---|---|---|---|",
    ]
    for row in rows:
        lines.append(f"| {row['mode']} | {row['seconds']:.2f} ({row['median']:.2f}) | {row['images/s']:,.0f} | "
                     f"{row['seconds'] / base:.2f}x |")
    for mode, error in failures.items():
        lines.append(f"| dp_sgd {mode} | failed: {error} | | |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3, help="epochs per row, the first is warm-up (>= 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved repetitions of every row")
    parser.add_argument("--max-members", type=int, default=2000)
    parser.add_argument("--modes", nargs="+", default=list(dp.GRAD_SAMPLE_MODES), choices=dp.GRAD_SAMPLE_MODES)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "results")
    args = parser.parse_args(argv)
    if args.epochs < 2:
        parser.error("--epochs must be at least 2 (the first epoch is a warm-up and not measured)")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")

    started = time.perf_counter()
    device = default_device()
    base = get_profile("quick").base_config("fmnist")
    n_members = min(base.n_members, args.max_members)
    config = base.replace(n_members=n_members, n_eval=EVAL_PER_SIDE, n_adversary=0, epochs=args.epochs,
                          batch_size=min(base.batch_size, n_members), snapshot_epochs=[])
    data = load_dataset("fmnist")
    print(f"device {device_name(device)}; quick fmnist, {n_members} members, batch {config.batch_size}")

    private = config.with_mechanisms(dp_sgd=SIGMA)
    labels = ["non-private"] + [f"dp_sgd {mode}" for mode in args.modes]
    runs = {label: [] for label in labels}
    failures, facts = {}, {}
    default_mode = dp.DPSGD.GRAD_SAMPLE_MODE
    try:
        for round_ in range(1, args.rounds + 1):
            print(f"round {round_}/{args.rounds}")
            for label in labels:
                mode = label.split()[-1]
                if mode in failures:
                    continue
                if label == "non-private":
                    runs[label].append(measure(label, config, data, device))
                    continue
                dp.DPSGD.GRAD_SAMPLE_MODE = mode
                try:
                    runs[label].append(measure(label, private, data, device))
                except Exception as error:  # a mode that fails on our models is reported, not fatal
                    traceback.print_exc()
                    failures[mode] = f"{type(error).__name__}: {str(error).splitlines()[0][:120]}"
                    continue
                facts = runs[label][-1]["facts"]
    finally:
        dp.DPSGD.GRAD_SAMPLE_MODE = default_mode
    rows = [summarize(label, runs[label]) for label in labels if runs[label]]

    meta = {"date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
            "device": device_name(device), "opacus": __import__("opacus").__version__,
            "width": config.width, "batch": config.batch_size, "n_members": n_members, "epochs": args.epochs,
            "rounds": args.rounds,
            "epsilon": facts.get("dp_epsilon", float("nan")), "delta": facts.get("dp_delta", float("nan")),
            "run_seconds": time.perf_counter() - started}
    table = markdown(meta, rows, failures)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "dp.md").write_text(table)
    print(f"wrote {args.out / 'dp.md'}")


if __name__ == "__main__":
    main()
