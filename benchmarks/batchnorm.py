"""What BatchNorm changes for the quick profile's Fashion-MNIST baseline.

Run from the repository root:

    .venv/bin/python benchmarks/batchnorm.py [--profile quick] [--seeds 0,1,2] [--out benchmarks/results]

For each seed s it runs ``profile.base_config("fmnist", seed=s)`` (``norm="none"``, the default)
and the same configuration with ``norm="batch"`` (a BatchNorm after each convolution, before the
ReLU), through the shared result store ``.mia_store`` (runs the book already trained are read,
not retrained; runs trained here serve the book). Per run it measures the test accuracy (whole
test set), the train accuracy (all members), Yeom's and Salem's membership advantages on the
balanced evaluation set (bootstrap over the evaluation samples, seeded with s) and the training
time (``provenance["train_seconds"]``, as recorded when the run was trained). Seeds are combined
with :func:`mia_utils.attacks.evidence.combine_seeds` (95 % interval, Student's t over seeds, with the
within-seed variance as a floor: the bootstrap variance for the advantages, p(1 - p)/n for the
accuracies), and batch against none with :func:`mia_utils.attacks.evidence.paired_difference` (seed s
against seed s, which share the split and the evaluation samples). Because the stored training
times come from whatever else the machine was running then, it also times training steps of the
two networks itself, interleaved (none, batch, none, batch, ...) in this process, and reports the
median milliseconds per step. Writes ``results/batchnorm.md``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from mia_utils import experiment
from mia_utils.attacks import AttackInputs, salem, yeom
from mia_utils.attacks.evidence import combine_seeds, paired_difference
from mia_utils.models import build_model
from mia_utils.book.profiles import get_profile
from mia_utils.store import ResultStore

NORMS = ("none", "batch")
# (key, label, scale for SeedEstimate.format, unit of the value columns, unit of the difference)
METRICS = (
    ("test_acc", "test accuracy", 100.0, "%", "pp"),
    ("train_acc", "train accuracy", 100.0, "%", "pp"),
    ("gap", "generalization gap (train - test)", 100.0, "pp", "pp"),
    ("yeom", "Adv_Yeom", 100.0, "%", "pp"),
    ("salem", "Adv_Salem", 100.0, "%", "pp"),
    ("train_seconds", "training time", 1.0, "s", "s"),
)


def accuracy(correct: torch.Tensor) -> tuple[float, float]:
    """Accuracy p of a bool tensor of per-sample correctness and its binomial variance p(1-p)/n."""
    n = correct.numel()
    p = correct.float().mean().item()
    return p, p * (1.0 - p) / n


def measure(run, seed: int, n_bootstrap: int) -> dict[str, tuple[float, float]]:
    """metric -> (value, within-seed variance) of one run; time has no within-seed variance."""
    outputs = run.outputs
    test = accuracy(outputs["test_logits"].argmax(1) == outputs["test_labels"])
    train = accuracy(outputs["member_correct"].bool())
    inputs = AttackInputs.from_outputs(outputs)
    y = yeom(inputs, n_bootstrap=n_bootstrap, seed=seed).metrics["advantage"]
    s = salem(inputs, n_bootstrap=n_bootstrap, seed=seed).metrics["advantage"]
    return {"test_acc": test, "train_acc": train, "gap": (train[0] - test[0], train[1] + test[1]),
            "yeom": (y.value, y.std ** 2), "salem": (s.value, s.std ** 2),
            "train_seconds": (float(run.provenance["train_seconds"]), 0.0)}


def step_timing(config, repeats: int, steps: int) -> dict[str, float]:
    """Median milliseconds of one training step (forward, backward, Adam) on a random batch of
    ``config.batch_size`` images, per norm; the norms alternate so that both see the same load."""
    torch.manual_seed(0)
    x = torch.rand(config.batch_size, 1, 28, 28)
    y = torch.randint(0, 10, (config.batch_size,))
    setups = {}
    for norm in NORMS:
        model = build_model(config.dataset, **{**config.model_options(), "norm": norm}).train()
        setups[norm] = (model, torch.optim.Adam(model.parameters(), lr=config.lr,
                                                weight_decay=config.weight_decay, amsgrad=config.amsgrad))
    times: dict[str, list[float]] = {norm: [] for norm in NORMS}
    for repeat in range(repeats + 1):  # the first round warms up and is not counted
        for norm in NORMS:
            model, optimizer = setups[norm]
            started = time.perf_counter()
            for _ in range(steps):
                loss = F.cross_entropy(model(x), y)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            if repeat:
                times[norm].append(1000 * (time.perf_counter() - started) / steps)
    return {norm: statistics.median(values) for norm, values in times.items()}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--profile", default="quick")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--bootstrap", type=int, default=200)
    parser.add_argument("--store", default=".mia_store")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    parser.add_argument("--timing-repeats", type=int, default=7, help="interleaved step-timing rounds (0: skip)")
    parser.add_argument("--timing-steps", type=int, default=20, help="training steps per round and norm")
    args = parser.parse_args(argv)
    profile = get_profile(args.profile)
    seeds = [int(s) for s in args.seeds.split(",")]
    store = ResultStore(Path(args.store))
    values = {norm: {key: [] for key, *_ in METRICS} for norm in NORMS}
    variances = {norm: {key: [] for key, *_ in METRICS} for norm in NORMS}
    per_run = []
    started_all = time.perf_counter()
    for seed in seeds:
        base = profile.base_config("fmnist", seed=seed)
        for norm in NORMS:
            config = base if norm == "none" else base.replace(norm="batch")
            started = time.perf_counter()
            run = experiment.run(config, store, progress=False)
            how = "read from the store" if run.from_store else f"trained in {time.perf_counter() - started:.0f} s"
            measured = measure(run, seed, args.bootstrap)
            for key, (value, variance) in measured.items():
                values[norm][key].append(value)
                variances[norm][key].append(variance)
            provenance = run.provenance
            per_run.append((seed, norm, run.key, measured, provenance.get("device", "?"),
                            provenance.get("threads", "?"), provenance.get("host", "?"), run.from_store))
            print(f"seed {seed} norm {norm} ({run.key}): {how}; test acc {measured['test_acc'][0]:.4f}, "
                  f"Adv_Yeom {measured['yeom'][0]:.4f}, Adv_Salem {measured['salem'][0]:.4f}, "
                  f"train {measured['train_seconds'][0]:.1f} s", flush=True)
    base = profile.base_config("fmnist", seed=seeds[0])
    timing = step_timing(base, args.timing_repeats, args.timing_steps) if args.timing_repeats else None
    lines = [
        f"# BatchNorm on the {profile.name} profile's Fashion-MNIST baseline ({time.strftime('%Y-%m-%d %H:%M')})", "",
        "Reproduce from the repository root: `.venv/bin/python benchmarks/batchnorm.py "
        f"--profile {profile.name} --seeds {args.seeds} --bootstrap {args.bootstrap}` "
        f"(runs are read from / written to the result store `{args.store}`, shared with the book).", "",
        f"- configuration: profile `{profile.name}`, {base.n_members} members, {base.n_eval} evaluation and "
        f"{base.n_adversary} adversary samples per side, width {base.width}, {base.epochs} epochs, lr {base.lr}, "
        f"batch {base.batch_size}, weight decay {base.weight_decay}, AMSGrad {base.amsgrad}; "
        "`norm=\"none\"` (no normalization) against `norm=\"batch\"` (BatchNorm2d after each convolution, "
        "before the ReLU); everything else identical, including the seed's split and evaluation samples",
        f"- seeds {', '.join(map(str, seeds))}; each cell: mean over seeds [95 % interval] "
        "(`evidence.combine_seeds`: Student's t over seeds, floored by the within-seed variance: "
        "bootstrap variance for the advantages, p(1-p)/n for the accuracies); the last column is the paired "
        "difference batch - none (`evidence.paired_difference`, seed against seed)",
        f"- accuracies: test over the whole test set ({int(run.outputs['test_labels'].numel())} "
        f"images), train over all {int(run.outputs['member_correct'].numel())} members; advantages: "
        f"Yeom's and Salem's attacks on the balanced evaluation set, {args.bootstrap} bootstrap replicates",
        "- training time: `provenance[\"train_seconds\"]` as recorded when each run was trained (see the "
        "per-run table for the device and threads); the CPU may have been shared with other jobs, so "
        "treat time differences as indicative", "",
        "| metric | none | batch | batch - none |", "|---|---|---|---|",
    ]
    for key, label, scale, unit, diff_unit in METRICS:
        none = combine_seeds(values["none"][key], variances["none"][key])
        batch = combine_seeds(values["batch"][key], variances["batch"][key])
        diff = paired_difference(values["batch"][key], values["none"][key],
                                 variances["batch"][key], variances["none"][key])
        lines.append(f"| {label} ({unit}) | {none.format(scale=scale)} | {batch.format(scale=scale)} | "
                     f"{diff.format(scale=scale, signed=True)} {diff_unit} |")
    ratio = [b / n for b, n in zip(values["batch"]["train_seconds"], values["none"]["train_seconds"])]
    lines += ["", f"Stored training time ratio batch / none per seed: {', '.join(f'{r:.2f}x' for r in ratio)}."]
    if timing:
        lines += ["", f"Training steps timed here, interleaved ({args.timing_repeats} rounds of {args.timing_steps} "
                  f"steps per norm, batch {base.batch_size}, {torch.get_num_threads()} torch threads, median): "
                  f"none {timing['none']:.1f} ms/step, batch {timing['batch']:.1f} ms/step, ratio "
                  f"{timing['batch'] / timing['none']:.2f}x."]
    lines += ["",
              "Per run:", "",
              "| seed | norm | run key | test acc (%) | train acc (%) | Adv_Yeom (%) | Adv_Salem (%) | train (s) "
              "| device, threads | from store |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for seed, norm, key, measured, device, threads, host, from_store in per_run:
        lines.append(
            f"| {seed} | {norm} | `{key}` | {100 * measured['test_acc'][0]:.1f} | {100 * measured['train_acc'][0]:.1f} "
            f"| {100 * measured['yeom'][0]:.1f} ± {100 * measured['yeom'][1] ** 0.5:.1f} "
            f"| {100 * measured['salem'][0]:.1f} ± {100 * measured['salem'][1] ** 0.5:.1f} "
            f"| {measured['train_seconds'][0]:.1f} | {device}, {threads} | {from_store} |")
    lines += ["", f"(± : bootstrap standard error. Wall time of this script: {time.perf_counter() - started_all:.0f} s.)"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "batchnorm.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
