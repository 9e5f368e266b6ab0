"""Run configurations: everything that determines a trained target model and its outputs.

A :class:`RunConfig` is frozen and validated on construction, so a bad value fails before
any training starts, with a message naming the field, the value and what is allowed. Its
:meth:`RunConfig.key` hashes the whole configuration plus the code version, and names the
run in the result store.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

from mia_utils import __version__
from mia_utils.data import DATASETS
from mia_utils.defenses import check_mechanisms
from mia_utils.models import NORMS

# Bump when a change to the code changes what a configuration trains or stores.
STORE_FORMAT = 3


class ConfigError(ValueError):
    """A configuration value is invalid. The message names the field, the value and the rule."""


@dataclass(frozen=True)
class RunConfig:
    """One target model: data split, architecture, optimiser and schedule.

    Sizes are counts of images. ``lr`` is Adam's step size; ``weight_decay`` the L2
    coefficient added to Adam's gradient (PyTorch's ``Adam(weight_decay=...)``).
    ``snapshot_epochs`` lists 1-based epochs after which weights and per-sample outputs are
    also kept, so that early stopping needs no extra training. ``mechanisms``: the
    regularization pieces of the recipe as (name, value) pairs (see :mod:`mia_utils.defenses`). ``shadow_count`` > 0 makes this
    run the ``shadow_index``-th of that many LiRA shadow models: it trains on its half of the
    population pool (:func:`mia_utils.data.lira_pool`) instead of the target's members, with
    everything else unchanged.
    """

    dataset: str = "fmnist"
    n_members: int = 60_000
    n_eval: int = 5_000
    n_adversary: int = 5_000
    split_seed: int = 0
    seed: int = 0
    width: float = 1.0
    norm: str = "none"
    epochs: int = 30
    batch_size: int = 128
    lr: float = 2e-4
    weight_decay: float = 1e-6
    amsgrad: bool = True
    snapshot_epochs: tuple[int, ...] = field(default_factory=tuple)
    shadow_count: int = 0
    shadow_index: int = 0
    mechanisms: tuple[tuple[str, float], ...] = field(default_factory=tuple)

    def __post_init__(self):
        object.__setattr__(self, "snapshot_epochs", tuple(sorted(set(int(e) for e in self.snapshot_epochs))))
        try:
            # Whole numbers are stored as floats, so that random_crop=4 and 4.0 name one run.
            mechanisms = tuple(sorted((str(name), float(value) if type(value) is int else value)
                                      for name, value in self.mechanisms))
        except (TypeError, ValueError):
            raise ConfigError(f"mechanisms: expected (name, value) pairs, got {self.mechanisms!r}") from None
        object.__setattr__(self, "mechanisms", mechanisms)
        problems = list(self.problems())
        if problems:
            raise ConfigError("invalid run configuration:\n" + "\n".join(f"  - {p}" for p in problems))

    def problems(self):
        """Yield one message per invalid field."""
        def bad(name, rule):
            return f"{name}: got {getattr(self, name)!r}; {rule}"

        for name in ("n_members", "n_eval", "n_adversary", "split_seed", "seed", "epochs", "batch_size",
                     "shadow_count", "shadow_index"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                yield bad(name, "must be an integer")
        for name in ("width", "lr", "weight_decay"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                yield bad(name, "must be a number")
                return
        if self.dataset not in DATASETS:
            yield bad("dataset", f"allowed: {', '.join(DATASETS)}")
            return
        info = DATASETS[self.dataset]
        if not 1 <= self.n_members <= info.n_train:
            yield bad("n_members", f"allowed 1..{info.n_train} for {self.dataset}")
        if not 1 <= self.n_eval:
            yield bad("n_eval", "must be at least 1")
        if not 0 <= self.n_adversary:
            yield bad("n_adversary", "must be at least 0")
        if self.n_eval + self.n_adversary > min(self.n_members, info.n_test):
            yield (f"n_eval + n_adversary: got {self.n_eval} + {self.n_adversary}; must not exceed "
                   f"n_members ({self.n_members}) nor the {info.n_test} test images")
        if self.split_seed < 0 or self.seed < 0:
            yield f"seed / split_seed: got {self.seed} / {self.split_seed}; must be >= 0"
        if not 0 < self.width <= 16:
            yield bad("width", "allowed 0 < width <= 16")
        if self.norm not in NORMS:
            yield bad("norm", f"allowed: {', '.join(NORMS)}")
        yield from check_mechanisms(self.mechanisms)
        if self.norm == "batch" and any(name == "dp_sgd" for name, _ in self.mechanisms):
            yield bad("norm", "DP-SGD cannot train BatchNorm (its statistics mix examples); use 'none' or 'group'")
        if not 1 <= self.epochs <= 1000:
            yield bad("epochs", "allowed 1..1000")
        if not 1 <= self.batch_size <= self.n_members:
            yield bad("batch_size", f"allowed 1..n_members ({self.n_members})")
        if not 0 < self.lr <= 1:
            yield bad("lr", "allowed 0 < lr <= 1")
        if not 0 <= self.weight_decay <= 10:
            yield bad("weight_decay", "allowed 0 <= weight_decay <= 10")
        if not isinstance(self.amsgrad, bool):
            yield bad("amsgrad", "must be true or false")
        if self.shadow_count and (self.shadow_count < 2 or self.shadow_count % 2):
            yield bad("shadow_count", "0 for the target model, or an even number >= 2")
        if self.shadow_count and not 0 <= self.shadow_index < self.shadow_count:
            yield bad("shadow_index", f"allowed 0..shadow_count-1 ({self.shadow_count - 1})")
        if not self.shadow_count and self.shadow_index:
            yield bad("shadow_index", "must be 0 when shadow_count is 0")
        if any(not 1 <= e <= self.epochs for e in self.snapshot_epochs):
            yield bad("snapshot_epochs", f"each epoch must be in 1..epochs ({self.epochs})")

    @property
    def is_shadow(self) -> bool:
        return self.shadow_count > 0

    def shadow(self, index: int, count: int) -> "RunConfig":
        """The ``index``-th of ``count`` LiRA shadow models of this (target) configuration,
        keeping the target's snapshot epochs so that LiRA can attack early-stopped targets too."""
        return self.replace(shadow_count=count, shadow_index=index)

    def teacher(self) -> "RunConfig | None":
        """The distillation teacher of this run (the same configuration without mechanisms or
        snapshots), or None when the run does not distil."""
        if not any(name == "distillation" for name, _ in self.mechanisms):
            return None
        return self.replace(mechanisms=(), snapshot_epochs=())

    def training_seed(self) -> int:
        """Seed of initialisation and batch order; shadow models each get their own."""
        return self.seed if not self.is_shadow else self.seed + 1_000_003 * (self.shadow_index + 1)

    def with_mechanisms(self, **values) -> "RunConfig":
        """This configuration plus the given mechanisms, e.g. ``with_mechanisms(random_crop=4)``."""
        merged = dict(self.mechanisms)
        merged.update(values)
        return self.replace(mechanisms=tuple(merged.items()))

    def model_options(self) -> dict:
        """Keyword arguments of :func:`mia_utils.models.build_model` implied by the mechanisms."""
        from mia_utils.defenses import build

        options = {"width": self.width, "norm": self.norm}
        for mechanism in build(self.mechanisms):
            options.update(mechanism.model_options())
        return options

    def to_dict(self) -> dict:
        data = asdict(self)
        data["snapshot_epochs"] = list(self.snapshot_epochs)
        data["mechanisms"] = [list(pair) for pair in self.mechanisms]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"unknown configuration field(s) {unknown}; allowed: {sorted(known)}")
        data = dict(data)
        if "snapshot_epochs" in data:
            data["snapshot_epochs"] = tuple(data["snapshot_epochs"])
        if "mechanisms" in data:
            data["mechanisms"] = tuple(tuple(pair) for pair in data["mechanisms"])
        return cls(**data)

    def replace(self, **changes) -> "RunConfig":
        data = self.to_dict()
        data.update(changes)
        return RunConfig.from_dict(data)

    def key(self) -> str:
        """Hex digest naming this run: hash of the config, store format and package version.

        ``snapshot_epochs`` is left out: it changes what is kept, not what is trained, so a run
        with more snapshots serves every request for fewer."""
        config = self.to_dict()
        del config["snapshot_epochs"]
        material = json.dumps(
            {"config": config, "store_format": STORE_FORMAT, "mia_utils": __version__},
            sort_keys=True,
        )
        return hashlib.sha256(material.encode()).hexdigest()[:24]
