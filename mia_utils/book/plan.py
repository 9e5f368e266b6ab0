"""The book's plan: every training run the chapters need under a profile.

:func:`book_plan` collects each chapter's runs, as the chapter defines them once
(:data:`mia_utils.book.runs.RUNS`), with each chapter's default parameters. A test executes the
smoke book and checks that its store holds exactly the planned runs, so the plan and the chapters
cannot drift apart.

Chapter 04 pairs mechanisms at the settings chapter 02 selects from its results. Those runs can
be planned only once chapter 02's runs are in the store; until then the plan lists them as
pending. Runs whose configuration is needed with different snapshot epochs are merged into one
run keeping the union (the store key ignores snapshots).
"""

from __future__ import annotations

import functools
import statistics
from dataclasses import dataclass, field

from mia_utils.config import RunConfig
from mia_utils.store import ResultStore


@dataclass
class PlannedRun:
    """One run of the plan: its configuration (with every snapshot any chapter needs), the
    chapters that use it, and the keys of runs it needs first (a distillation teacher)."""

    config: RunConfig
    chapters: list[str] = field(default_factory=list)
    needs: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return self.config.key()


@dataclass
class Plan:
    """Planned runs by key, in first-use order, and notes on runs that cannot be planned yet."""

    profile: str
    runs: dict[str, PlannedRun] = field(default_factory=dict)
    pending: list[str] = field(default_factory=list)

    def add(self, config: RunConfig, chapter: str) -> None:
        key = config.key()
        if key in self.runs:
            planned = self.runs[key]
            union = tuple(sorted(set(planned.config.snapshot_epochs) | set(config.snapshot_epochs)))
            planned.config = planned.config.replace(snapshot_epochs=union)
            if chapter not in planned.chapters:
                planned.chapters.append(chapter)
            return
        needs = []
        teacher = config.teacher()
        if teacher is not None:
            self.add(teacher, chapter)
            needs.append(teacher.key())
        self.runs[key] = PlannedRun(config, [chapter], needs)

    def missing(self, store: ResultStore) -> list[PlannedRun]:
        """Planned runs the store lacks, or holds without every planned snapshot; teachers
        come before their students."""
        out = []
        for planned in self.runs.values():
            entry = store.load(planned.key, tensors=False)
            kept = set(entry["json"]["config"].get("snapshot_epochs", ())) if entry else None
            if kept is None or not set(planned.config.snapshot_epochs) <= kept:
                out.append(planned)
        return out


def chapter_plan(chapter: str, params: dict, store: ResultStore | None = None, plan: Plan | None = None) -> Plan:
    """The runs one chapter needs with its validated ``params``: its :data:`mia_utils.book.runs.RUNS`
    entry, teachers included, added to ``plan`` (a new one by default). ``store`` lets chapter 04
    list its pairs, which follow chapter 02's results."""
    from mia_utils.book.profiles import get_profile
    from mia_utils.book.runs import RUNS

    plan = plan or Plan(params["profile"])
    listed = RUNS[chapter](get_profile(params["profile"]), params, store)
    for config in listed.configs:
        plan.add(config, chapter)
    plan.pending.extend(note for note in listed.pending if note not in plan.pending)
    return plan


def book_plan(profile_name: str, seed: int = 0, store: ResultStore | None = None, chapters=None) -> Plan:
    """Every run the book's chapters (``chapters``, default: those in ``_toc.yml``) need under
    ``profile_name`` with their default parameters and first seed ``seed``: the union of each
    chapter's :func:`chapter_plan`, in first-use order (the summary page, which reads the others'
    runs, counts last, as it runs last)."""
    from mia_utils.book.chapters import get_chapter, toc_chapters, validate

    plan = Plan(profile_name)
    for chapter in sorted(chapters or toc_chapters(), key=lambda name: get_chapter(name).summary):
        params = validate(chapter, {"profile": profile_name, "seed": seed}, check_available=False)
        chapter_plan(chapter, params, store, plan)
    return plan


@functools.lru_cache(maxsize=None)
def forward_flops_of(dataset: str, width: float) -> int:
    """Forward FLOPs of one image through the dataset's network at ``width``."""
    from mia_utils.models import build_model, forward_flops

    return forward_flops(build_model(dataset, width=width))


def work(config: RunConfig) -> float:
    """Training work of ``config`` in forward-FLOP image-epochs: images x epochs x forward FLOPs."""
    return training_images(config) * config.epochs * forward_flops_of(config.dataset, config.width)


def measured_seconds_per_flop(store: ResultStore) -> float | None:
    """Median training seconds per unit of :func:`work` over the target runs in ``store``
    (None when it holds none): this machine's measured rate, used to estimate the rest."""
    rates = []
    for key in store.keys():
        entry = store.load(key, tensors=False)
        if entry is None or "metrics" not in entry["json"]:
            continue
        config = entry["json"].get("config")
        seconds = entry["json"]["metrics"].get("provenance", {}).get("train_seconds")
        if config and seconds and not config.get("shadow_count"):
            rates.append(seconds / work(RunConfig.from_dict(config)))
    return statistics.median(rates) if rates else None


def training_images(config: RunConfig) -> int:
    """How many images ``config`` trains on: its members, or half the LiRA pool for a shadow."""
    if not config.is_shadow:
        return config.n_members
    return _shadow_training_images(config.replace(mechanisms=(), snapshot_epochs=()))


@functools.lru_cache(maxsize=None)
def _shadow_training_images(config: RunConfig) -> int:
    """:func:`training_images` of a shadow run, cached: the count depends on the split and the
    shadow's index only, and the paper plan asks it for hundreds of shadow runs."""
    from mia_utils.data import DATASETS, split_for, training_indices

    info = DATASETS[config.dataset]
    split = split_for(config, info)
    return len(training_indices(config, info, split))


def describe(plan: Plan, store: ResultStore) -> str:
    """The plan as text: one line per run with its status, then totals and the cost of the rest
    in model-epochs, image-epochs and (from the store's measured rate) hours on this machine."""
    from mia_utils.defenses import describe_mechanisms

    missing = {p.key for p in plan.missing(store)}
    lines = [f"plan for profile {plan.profile!r}: {len(plan.runs)} runs", "",
             f"{'run key':<14}{'status':<10}{'role':<14}{'epochs':>7}{'images':>8}  {'snapshots':<20}  mechanisms  [chapters]"]
    cost_epochs = cost_image_epochs = cost_work = 0
    for planned in plan.runs.values():
        config = planned.config
        role = f"shadow {config.shadow_index + 1}/{config.shadow_count}" if config.is_shadow else "target"
        images = training_images(config)
        status = "missing" if planned.key in missing else "stored"
        if status == "missing":
            cost_epochs += config.epochs
            cost_image_epochs += config.epochs * images
            cost_work += work(config)
        snapshots = ",".join(map(str, config.snapshot_epochs)) or "-"
        lines.append(f"{planned.key[:12]:<14}{status:<10}{role:<14}{config.epochs:>7}{images:>8}  {snapshots:<20}  "
                     f"{describe_mechanisms(config.mechanisms)}  [{', '.join(planned.chapters)}]")
    lines += ["", f"stored: {len(plan.runs) - len(missing)}   missing: {len(missing)}   "
              f"cost of the missing runs: {cost_epochs} model-epochs, {cost_image_epochs:,} image-epochs"]
    rate = measured_seconds_per_flop(store)
    if rate is None:
        lines.append("estimated time: unknown (no run in the store yet to measure this machine's rate)")
    else:
        lines.append(f"estimated time on this machine: {cost_work * rate / 3600:.2f} h at the median measured rate "
                     f"of the stored runs ({1e-9 / rate:.1f} GFLOP/s of forward work, i.e. about three times that "
                     "in training FLOPs); DP-SGD and dropout runs train about 2x slower")
    for note in plan.pending:
        lines.append(f"pending: {note}")
    return "\n".join(lines)
