"""Choose the quick profile's width, members and epochs by measurement.

For each candidate (width, members) it trains the Fashion-MNIST baseline with several seeds
(snapshots after every epoch in --epochs-grid, so each run also measures the shorter schedules),
attacks every snapshot with Yeom's and Salem's attacks on the profile's evaluation sets, and
combines the seeds with :func:`mia_utils.attacks.evidence.combine_seeds`. A candidate qualifies when both
advantages reach the paper's Table 2 magnitudes and their 95 % half-widths are at most a quarter
of the value. Runs go to the result store, so the chosen candidate's runs serve the book.

    .venv/bin/python benchmarks/quick_sizing.py --widths 0.125,0.25 --seeds 3
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import pandas as pd
import torch

from mia_utils import experiment
from mia_utils.attacks import AttackInputs, salem, yeom
from mia_utils.config import RunConfig
from mia_utils.attacks.evidence import combine_seeds
from mia_utils.book.report import published
from mia_utils.store import ResultStore

RESULTS = Path(__file__).parent / "results"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="0.125,0.25")
    parser.add_argument("--members", default="4000")
    parser.add_argument("--eval", type=int, default=2000, help="evaluation and adversary samples per side")
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--epochs-grid", default="5,10,15,20,25")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--bootstrap", type=int, default=200)
    args = parser.parse_args()
    store = ResultStore(Path(".mia_store"))
    paper = published("table2_baselines").set_index("dataset").loc["fmnist"]
    snapshots = tuple(int(e) for e in args.epochs_grid.split(","))
    rows = []
    for width in (float(w) for w in args.widths.split(",")):
        for members in (int(m) for m in args.members.split(",")):
            per_epoch: dict[int, list[dict]] = {}
            seconds = []
            for seed in range(args.seeds):
                config = RunConfig(dataset="fmnist", n_members=members, n_eval=args.eval, n_adversary=args.eval,
                                   split_seed=seed, seed=seed, width=width, epochs=args.epochs, lr=args.lr,
                                   snapshot_epochs=snapshots)
                started = time.perf_counter()
                run = experiment.run(config, store)
                seconds.append(run.provenance["train_seconds"])
                print(f"width {width} members {members} seed {seed}: "
                      f"{'stored' if run.from_store else f'trained in {time.perf_counter() - started:.0f} s'}",
                      flush=True)
                for epoch in (*snapshots, args.epochs):
                    outputs = run.outputs if epoch == args.epochs else run.snapshot_outputs(epoch)
                    inputs = AttackInputs.from_outputs(outputs)
                    summary = experiment.summary_metrics(outputs)
                    y, s = yeom(inputs, n_bootstrap=args.bootstrap, seed=seed), salem(inputs, n_bootstrap=args.bootstrap, seed=seed)
                    per_epoch.setdefault(epoch, []).append({
                        "test_acc": summary["test_acc"], "gap": summary["gap"],
                        "yeom": y.metrics["advantage"], "salem": s.metrics["advantage"]})
            for epoch, seeds in sorted(per_epoch.items()):
                yeom_est = combine_seeds([r["yeom"].value for r in seeds], [r["yeom"].std ** 2 for r in seeds])
                salem_est = combine_seeds([r["salem"].value for r in seeds], [r["salem"].std ** 2 for r in seeds])
                acc = combine_seeds([r["test_acc"] for r in seeds])
                qualifies = all(e.mean * 100 >= paper_value and e.half_width <= e.mean / 4
                                for e, paper_value in ((yeom_est, paper["adv_yeom_pct"]),
                                                       (salem_est, paper["adv_salem_pct"])))
                rows.append({"width": width, "members": members, "epochs": epoch,
                             "train s / run (full)": round(sum(seconds) / len(seconds), 1),
                             "test acc (%)": acc.format(), "gap (pp)": f"{100 * sum(r['gap'] for r in seeds) / len(seeds):.1f}",
                             "Adv_Yeom (%)": yeom_est.format(), "Adv_Salem (%)": salem_est.format(),
                             "qualifies": qualifies})
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    RESULTS.mkdir(exist_ok=True)
    text = ["# Sizing the quick profile", "",
            f"Fashion-MNIST baseline, {args.seeds} seeds, {args.eval} evaluation samples per side (and as many for the "
            f"adversary), lr {args.lr}, {torch.get_num_threads()} torch threads. Intervals: 95 % over seeds "
            "(`evidence.combine_seeds`, bootstrap floor). Paper (Table 2): "
            f"Adv_Yeom {paper['adv_yeom_pct']} %, Adv_Salem {paper['adv_salem_pct']} %. A row qualifies when both "
            "advantages reach the paper's and their half-width is at most a quarter of the value.", "",
            "Reproduce: `.venv/bin/python benchmarks/quick_sizing.py " +
            f"--widths {args.widths} --members {args.members} --epochs {args.epochs} --epochs-grid {args.epochs_grid}`", "",
            table.to_markdown(index=False), ""]
    (RESULTS / "quick_sizing.md").write_text("\n".join(text))


if __name__ == "__main__":
    main()
