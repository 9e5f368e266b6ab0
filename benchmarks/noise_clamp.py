"""Gaussian noise with and without clamping to [0, 1]: what the choice changes.

Run from the repository root (trains what the store lacks; about 20 s per run on 2 CPU cores):

    .venv/bin/python benchmarks/noise_clamp.py                       # quick profile, its grid, 3 seeds
    .venv/bin/python benchmarks/noise_clamp.py --store /tmp/cold/.mia_store --seeds 3

The paper does not say whether noisy training images are clamped back to [0, 1]. The authors'
public code for their follow-up study clamps (``yigitcankaya/augmentation_mia``), and so does
``gaussian_noise``. On Fashion-MNIST's black background clamping cuts off the negative half of the
noise on most pixels, so the two readings may differ. For every value of the profile's
``gaussian_noise`` grid and every seed, this trains (or reads back) both ``gaussian_noise`` and
``gaussian_noise_unclamped`` with :func:`mia_utils.book.replicated.run_setting`, exactly as the
regularization chapter does, and reports each setting's test accuracy, Yeom's advantage and the
loss AUC as seed means with 95 % intervals, and the unclamped minus clamped difference paired by
seed (:meth:`mia_utils.book.replicated.Setting.change`).

Writes ``<out>/noise_clamp.md``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing mia_utils

from mia_utils.book import replicated  # noqa: E402
from mia_utils.book.profiles import get_profile  # noqa: E402
from mia_utils.store import ResultStore  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import write_markdown  # noqa: E402

METRICS = {"test_acc": "test accuracy (%)", "adv_yeom": "Adv_Yeom (%)", "auc": "loss AUC (%)"}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per setting (from 0)")
    parser.add_argument("--store", default=None, help="result store (default: $MIA_STORE or .mia_store)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    store = ResultStore(args.store) if args.store else ResultStore()
    seeds = tuple(range(args.seeds))
    lines = [f"# Gaussian noise, clamped or not ({args.profile} profile, Fashion-MNIST, {len(seeds)} seeds)", "",
             f"Measured {datetime.date.today().isoformat()} with `benchmarks/noise_clamp.py --profile {args.profile} "
             f"--seeds {args.seeds}`. Seed means with 95 % intervals; the last columns are unclamped minus clamped, "
             "paired by seed (same split, same noise draws before clamping).", "",
             "| sigma | reading | " + " | ".join(METRICS.values()) + " | " +
             " | ".join(f"Δ {name.replace('(%)', '(pp)')}" for name in METRICS.values()) + " |",
             "|---|---|" + "---|" * (2 * len(METRICS))]
    for value in profile.grids["gaussian_noise"]:
        clamped = replicated.run_setting(profile, "fmnist", "gaussian_noise", value, seeds, store)
        unclamped = replicated.run_setting(profile, "fmnist", "gaussian_noise_unclamped", value, seeds, store)
        for name, setting in (("clamped (the book's)", clamped), ("unclamped", unclamped)):
            cells = [setting.estimate(m).format() for m in METRICS]
            changes = ["" if setting is clamped else setting.change(clamped, m).format(signed=True) for m in METRICS]
            lines.append(f"| {value:g} | {name} | " + " | ".join(cells) + " | " + " | ".join(changes) + " |")
        print(lines[-2], lines[-1], sep="\n", flush=True)
    write_markdown(Path(args.out), "noise_clamp", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
