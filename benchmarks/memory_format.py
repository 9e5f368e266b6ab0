"""Training-step choices of the book's networks, each measured side by side in one run.

Run from the repository root:

    .venv/bin/python benchmarks/memory_format.py                 # about 2 minutes on 2 cores
    .venv/bin/python benchmarks/memory_format.py --steps 40 --rounds 5

Each row times full training steps (forward, soft cross-entropy, backward, Adam with AMSGrad) on
batches of 128 random images, once the old way and once the new way; the two alternate for
``--rounds`` rounds so that drifting machine load hits both alike, and the table gives the median
images/s of each and their ratio. The rows:

* channels-last against the plain NCHW layout (the quick profile's old width 0.5, and the paper's
  full width);
* :class:`mia_utils.models.Dropout` (a ``torch.rand`` mask used in place) against
  ``torch.nn.Dropout`` (``bernoulli_`` masks);
* at the quick width (0.125), max-pooling before the ReLU (the book's network) against the
  textbook order, ReLU then pool (the two compute the same function and gradients bit for bit;
  tests/test_models.py);
* at the quick width, PyTorch's deterministic mode with and without its NaN fill of every newly
  allocated tensor (``torch.utils.deterministic.fill_uninitialized_memory``; the training loop
  turns the fill off, :func:`mia_utils.train.deterministic`).

Writes ``<out>/memory_format.md``.
"""

from __future__ import annotations

import argparse
import contextlib
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

from mia_utils.models import Dropout, build_model, textbook_order  # noqa: E402
from mia_utils.train import keep_freed_memory, soft_cross_entropy  # noqa: E402


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


@contextlib.contextmanager
def deterministic_mode(fill: bool):
    """PyTorch's deterministic mode, with or without its NaN fill of new tensors."""
    previous = torch.are_deterministic_algorithms_enabled(), torch.utils.deterministic.fill_uninitialized_memory
    torch.use_deterministic_algorithms(True, warn_only=True)
    torch.utils.deterministic.fill_uninitialized_memory = fill
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous[0])
        torch.utils.deterministic.fill_uninitialized_memory = previous[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per measurement")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per pair")
    parser.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    args = parser.parse_args()
    keep_freed_memory()  # as the training loop does

    cases = [
        ("quick fmnist (width 0.5)", lambda: build_model("fmnist", width=0.5).set_channels_last(False),
         lambda: build_model("fmnist", width=0.5), "NCHW", "channels-last"),
        ("paper fmnist (width 1.0)", lambda: build_model("fmnist", width=1.0).set_channels_last(False),
         lambda: build_model("fmnist", width=1.0), "NCHW", "channels-last"),
        ("quick fmnist, dropout 0.5", lambda: with_torch_dropout(build_model("fmnist", width=0.5, dropout=0.5)),
         lambda: build_model("fmnist", width=0.5, dropout=0.5), "nn.Dropout", "mia_utils Dropout"),
        ("quick fmnist (width 0.125)", lambda: textbook_order(build_model("fmnist", width=0.125)),
         lambda: build_model("fmnist", width=0.125), "ReLU, then pool", "pool, then ReLU"),
    ]
    fill_cases = [("quick fmnist (width 0.125), deterministic mode", lambda: build_model("fmnist", width=0.125),
                   "NaN fill of new tensors", "no fill")]
    lines = [f"# Training-step choices, side by side ({datetime.date.today()})", "",
             f"Device: CPU ({platform.processor() or platform.machine()}), {torch.get_num_threads()} threads, "
             f"torch {torch.__version__}. Median of {args.rounds} alternating rounds of {args.steps} steps "
             "(batch 128). Ratio = new / old images/s.", "",
             "| model | old | old images/s | new | new images/s | ratio |", "|---|---|---|---|---|---|"]
    rows = [(name, old_factory, new_factory, contextlib.nullcontext, contextlib.nullcontext, old_label, new_label)
            for name, old_factory, new_factory, old_label, new_label in cases]
    rows += [(name, factory, factory, lambda: deterministic_mode(True), lambda: deterministic_mode(False),
              old_label, new_label) for name, factory, old_label, new_label in fill_cases]
    for name, old_factory, new_factory, old_mode, new_mode, old_label, new_label in rows:
        old_rates, new_rates = [], []
        for _ in range(args.rounds):
            torch.manual_seed(0)
            with old_mode():
                old_rates.append(images_per_second(old_factory(), args.steps))
            torch.manual_seed(0)
            with new_mode():
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
