"""Channels-last vs NCHW: training-step time of the book's networks, side by side in one run.

Run from the repository root:

    .venv/bin/python benchmarks/memory_format.py                 # quick and paper-fmnist models, ~1 min
    .venv/bin/python benchmarks/memory_format.py --steps 40 --rounds 5

For each model (the quick profile's half-width Fashion-MNIST network, the full-width one, and
the quick network with dropout p = 0.5) the script times full training steps (forward, soft
cross-entropy, backward, Adam with AMSGrad) on batches of 128 random images, once with the model
in the plain NCHW layout (``set_channels_last(False)``) and once channels-last (the default).
The two layouts alternate for ``--rounds`` rounds so that drifting machine load hits both
alike; the table gives the median images/s of each and their ratio. Dropout is timed twice:
``torch.nn.Dropout`` (``bernoulli_`` masks) against :class:`mia_utils.models.Dropout` (masks from
``torch.rand``), both channels-last.

Writes ``<out>/memory_format.md``.
"""

from __future__ import annotations

import argparse
import datetime
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mia_utils.models import Dropout, build_model  # noqa: E402
from mia_utils.train import soft_cross_entropy  # noqa: E402


def images_per_second(model: nn.Module, steps: int, batch: int = 128) -> float:
    """Training images per second over ``steps`` timed steps (after 3 warm-up steps)."""
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(batch, *model.input_shape, generator=generator)
    y = F.one_hot(torch.randint(0, model.classifier.out_features, (batch,), generator=generator),
                  model.classifier.out_features).float()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3, amsgrad=True)

    def step():
        loss = soft_cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for _ in range(3):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return steps * batch / (time.perf_counter() - started)


def with_torch_dropout(model: nn.Module) -> nn.Module:
    """The same model with every :class:`mia_utils.models.Dropout` replaced by ``nn.Dropout``."""
    for i, layer in enumerate(model.features):
        if isinstance(layer, Dropout):
            model.features[i] = nn.Dropout(layer.p)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per pair")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()

    cases = [
        ("quick fmnist (width 0.5)", lambda: build_model("fmnist", width=0.5).set_channels_last(False),
         lambda: build_model("fmnist", width=0.5), "NCHW", "channels-last"),
        ("paper fmnist (width 1.0)", lambda: build_model("fmnist", width=1.0).set_channels_last(False),
         lambda: build_model("fmnist", width=1.0), "NCHW", "channels-last"),
        ("quick fmnist, dropout 0.5", lambda: with_torch_dropout(build_model("fmnist", width=0.5, dropout=0.5)),
         lambda: build_model("fmnist", width=0.5, dropout=0.5), "nn.Dropout", "mia_utils Dropout"),
    ]
    lines = [f"# Channels-last and dropout masks: training step speed ({datetime.date.today()})", "",
             f"Device: CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, "
             f"torch {torch.__version__}. Median of {args.rounds} alternating rounds of {args.steps} steps "
             "(batch 128). Ratio = new / old images/s.", "",
             "| model | old | old images/s | new | new images/s | ratio |", "|---|---|---|---|---|---|"]
    for name, old_factory, new_factory, old_label, new_label in cases:
        old_rates, new_rates = [], []
        for _ in range(args.rounds):
            torch.manual_seed(0)
            old_rates.append(images_per_second(old_factory(), args.steps))
            torch.manual_seed(0)
            new_rates.append(images_per_second(new_factory(), args.steps))
        old, new = statistics.median(old_rates), statistics.median(new_rates)
        lines.append(f"| {name} | {old_label} | {old:,.0f} | {new_label} | {new:,.0f} | {new / old:.2f}x |")
        print(lines[-1], flush=True)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "memory_format.md").write_text("\n".join(lines) + "\n")
    print(f"wrote {out / 'memory_format.md'}")


if __name__ == "__main__":
    main()
