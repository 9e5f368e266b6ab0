"""Time every non-LiRA attack on 10,000 members + 10,000 non-members of stored outputs.

Run from the repository root:

    .venv/bin/python benchmarks/attacks.py [--repeats 3] [--out benchmarks/results]

A Fashion-MNIST model with 20,000 members and 5,000 + 5,000 evaluation and adversary samples
is trained once into the result store (a few seconds; read back on later runs). The timed
evaluation set is its stored evaluation outputs followed by its stored adversary outputs
(10,000 members + 10,000 non-members); the adversary's labelled set is the stored adversary
outputs. That overlap would be a methodological error in an accuracy study; here it only sets
the sizes being timed. Each attack is timed with the profiles' default 200 bootstrap replicates
and with none, median of ``--repeats`` runs; the table goes to ``results/attacks.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch

from mia_utils import experiment
from mia_utils.attacks import BLACK_BOX_ATTACKS, AttackInputs
from mia_utils.config import RunConfig


def stored_inputs() -> AttackInputs:
    config = RunConfig(dataset="fmnist", n_members=20_000, n_eval=5_000, n_adversary=5_000, width=0.5,
                       epochs=2, lr=1e-3)
    run = experiment.run(config, progress=False)
    out = run.outputs
    logits = torch.cat([out["eval_logits"], out["adv_logits"]])
    labels = torch.cat([out["eval_labels"], out["adv_labels"]])
    member = torch.cat([out["eval_is_member"], out["adv_is_member"]])
    order = torch.cat([torch.nonzero(member).squeeze(1), torch.nonzero(~member).squeeze(1)])
    return AttackInputs(logits[order].double(), labels[order], member[order],
                        out["member_losses"].double().mean().item(), out["adv_logits"].double(),
                        out["adv_labels"], out["adv_is_member"])


def time_call(function, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    inputs = stored_inputs()
    n_members = int(inputs.is_member.sum())
    print(f"timing on {n_members} members + {len(inputs.is_member) - n_members} non-members, "
          f"adversary set {len(inputs.adv_is_member)}", file=sys.stderr)
    rows = []
    for name, attack in BLACK_BOX_ATTACKS.items():
        bare = time_call(lambda: attack(inputs, n_bootstrap=0), args.repeats)
        with_bootstrap = time_call(lambda: attack(inputs, n_bootstrap=200), args.repeats)
        rows.append({"attack": name, "seconds": bare, "seconds_with_200_bootstrap": with_bootstrap})
        print(f"{name:18s} {bare:8.3f} s   with 200 bootstrap replicates {with_bootstrap:8.3f} s", file=sys.stderr)
    header = [f"# Attack timings ({time.strftime('%Y-%m-%d %H:%M')})", "",
              f"- device: cpu, {torch.get_num_threads()} threads, torch {torch.__version__}",
              f"- evaluation set: {n_members} members + {len(inputs.is_member) - n_members} non-members "
              f"(stored outputs); adversary set: {len(inputs.adv_is_member)} stored outputs",
              f"- median of {args.repeats} runs; 'seconds' = the attack and its point metrics, "
              "the last column adds 200 stratified bootstrap replicates of every metric", "",
              "| attack | seconds | seconds with 200 bootstrap replicates |", "|---|---|---|"]
    lines = header + [f"| {r['attack']} | {r['seconds']:.3f} | {r['seconds_with_200_bootstrap']:.3f} |" for r in rows]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "attacks.md").write_text("\n".join(lines) + "\n")
    (out / "attacks.json").write_text(json.dumps(rows, indent=1))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
