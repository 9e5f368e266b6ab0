"""How strong is LiRA with this book's shadow counts? Populations of 4, 8 and 18 models.

Run from the repository root (trains what the store lacks, one model at a time; about 20 s per
quick model on 2 CPU cores, so 18 models take about 6 minutes from scratch):

    .venv/bin/python benchmarks/lira_shadows.py                            # quick baseline, K = 4, 8, 18
    .venv/bin/python benchmarks/lira_shadows.py --store /tmp/cold/.mia_store --counts 4 8 18

The related-work chapters attack populations of K models, each the target of the other K - 1
(:func:`mia_utils.book.generalization.population_lira`, online LiRA with a fixed variance). Carlini et al.
use many more shadow models than the quick profile's K = 8, and the book labels results from
fewer than 16 shadows per target underpowered. This measures how much that costs: for each K in
``--counts`` it trains (or reads back) the quick baseline's population of K models and reports
LiRA's AUC and TPR at 1 % and 0.1 % FPR, the mean over the K targets with a 95 % interval across
them (:func:`mia_utils.book.generalization.population_means`), with one clean query per image.

Writes ``<out>/lira_shadows.md``.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run without installing mia_utils

from mia_utils.book import generalization, verdicts  # noqa: E402
from mia_utils.book.profiles import get_profile  # noqa: E402
from mia_utils.store import ResultStore  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from train_throughput import write_markdown  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--counts", type=int, nargs="+", default=[4, 8, 18], help="population sizes K (even, >= 4)")
    parser.add_argument("--store", default=None, help="result store (default: $MIA_STORE or .mia_store)")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    store = ResultStore(args.store) if args.store else ResultStore()
    base = profile.base_config("fmnist", seed=0).replace(snapshot_epochs=())
    lines = [f"# LiRA against populations of K models ({args.profile} profile, Fashion-MNIST baseline)", "",
             f"Measured {datetime.date.today().isoformat()} with `benchmarks/lira_shadows.py --profile {args.profile} "
             f"--counts {' '.join(map(str, args.counts))}`. Each of the K models is the target of the other K − 1 "
             "(online LiRA, fixed variance, one clean query); means over the K targets with 95 % intervals "
             "across them.", "",
             "| K (shadows per target) | LiRA AUC (%) | TPR @ 1 % FPR (%) | TPR @ 0.1 % FPR (%) | non-members per target |",
             "|---|---|---|---|---|"]
    for count in args.counts:
        started = time.perf_counter()
        rows = pd.DataFrame(generalization.population_lira(base, count, [base.epochs], store, n_bootstrap=200))
        means = generalization.population_means(rows, by=("epoch",)).iloc[0]
        n = int(means["n_nonmembers"])
        cells = [verdicts.estimate_text(means[f"{m}_estimate"], n, 2 if m.startswith("tpr") else 1)
                 for m in ("auc", "tpr_at_1%_fpr", "tpr_at_0.1%_fpr")]
        lines.append(f"| {count} ({count - 1}) | " + " | ".join(cells) + f" | {n:,} |")
        print(lines[-1], f"({time.perf_counter() - started:.0f} s)", flush=True)
    write_markdown(Path(args.out), "lira_shadows", lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
