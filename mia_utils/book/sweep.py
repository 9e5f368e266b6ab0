"""Sweeps: train every run of the book's plan that the store lacks, here or on a Dask cluster.

:func:`sweep` walks the plan of :mod:`mia_utils.book.plan`. Each run is a task
:func:`train_task` (configuration and, for a distillation student, its teacher's weights in;
the finished store entry out), so it can run in this process (:class:`InProcessExecutor`) or
on any worker of a Dask ``distributed`` cluster (:class:`DaskExecutor`). Workers never touch
the store: they return the entry to this process, which verifies it and writes it atomically.
So no shared filesystem is needed, and a run is either wholly in the store or not at all.

Ordering: a student is submitted only once its teacher is in the store. Chapter 04's pairs
are planned from chapter 02's results, so the sweep plans again after each round until
nothing is missing. LiRA's scores are not runs: the chapters compute them from the stored
shadow models when they execute.

Faults: a task that raises, or whose worker dies (Dask reports ``KilledWorker``; the local
cluster allows no silent re-runs, so every retry is counted here), is submitted again up to
``retries`` times, then reported as failed with its error. Because every finished run is
already in the store, a sweep that is interrupted, even by SIGKILL, resumes where it stopped
when run again, and trains nothing twice.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mia_utils import __version__, experiment
from mia_utils.book.plan import Plan, PlannedRun, book_plan
from mia_utils.config import RunConfig
from mia_utils.store import ResultStore

log = logging.getLogger(__name__)


@contextlib.contextmanager
def planning_quietly():
    """Within the block, the package's loggers report warnings and errors only: planning reads
    every stored run (chapter 04 plans from chapter 02's results), and a line per run read
    (thousands for the quick book) would bury the sweep's own progress."""
    package = logging.getLogger("mia_utils")
    level = package.level
    package.setLevel(max(logging.WARNING, level))
    try:
        yield
    finally:
        package.setLevel(level)


def train_task(config: dict, teacher_weights: dict[str, torch.Tensor] | None,
               threads: int | None) -> tuple[dict, dict]:
    """One run, as a worker executes it: train ``config`` (a ``RunConfig.to_dict()``) with
    ``threads`` torch threads (None: leave the process's setting) and return its store entry
    ``(json_files, tensor_files)`` (see :func:`mia_utils.experiment.compute_entry`)."""
    if threads:
        torch.set_num_threads(threads)
    return experiment.compute_entry(RunConfig.from_dict(config), teacher_weights, progress=False)


def train_group_task(configs: list[dict], teacher_weights: list, threads: int | None) -> list[tuple[dict, dict]]:
    """Several runs trained together in lockstep on one worker (see
    :func:`mia_utils.train.train_many`): one store entry per configuration, in order."""
    if threads:
        torch.set_num_threads(threads)
    return experiment.compute_entries([RunConfig.from_dict(c) for c in configs], teacher_weights, progress=False)


def lockstep_groups(planned: list[PlannedRun], size: int) -> list[list[PlannedRun]]:
    """``planned`` cut into groups of at most ``size`` runs that can train in lockstep (equal
    :func:`mia_utils.train.lockstep_key`); a run that must train alone is a group of one."""
    from mia_utils.train import lockstep_key

    if size <= 1:
        return [[p] for p in planned]
    groups, open_groups = [], {}
    for p in planned:
        key = lockstep_key(p.config)
        if key is None:
            groups.append([p])
            continue
        group = open_groups.setdefault(key, [])
        group.append(p)
        if len(group) == size:
            groups.append(open_groups.pop(key))
    return groups + list(open_groups.values())


def _malloc_trim_threshold() -> str | None:
    """This process's ``MALLOC_TRIM_THRESHOLD_`` (run on each worker to check its setting)."""
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


def _malloc_arena_max() -> str | None:
    """This process's ``MALLOC_ARENA_MAX`` (run on each worker to check its setting)."""
    return os.environ.get("MALLOC_ARENA_MAX")


class InProcessExecutor:
    """Runs each task in this process, one at a time, when the sweep asks for the next result
    (so a finished run is stored before the next one starts)."""

    description = "in this process"

    def __init__(self):
        self._queue = collections.deque()

    def submit(self, function, *args):
        handle = object()
        self._queue.append((handle, function, args))
        return handle

    def running(self) -> int:
        return min(1, len(self._queue))

    def next_done(self, tick=None):
        """``(handle, result, error)`` of the next task: exactly one of result and error is None."""
        handle, function, args = self._queue.popleft()
        try:
            return handle, function(*args), None
        except Exception as error:  # reported to the sweep, which retries or gives up
            return handle, None, error

    def close(self) -> None:
        self._queue.clear()


class DaskExecutor:
    """Runs tasks on a Dask ``distributed`` cluster; results travel back to this process.

    Use :meth:`local` for a cluster of worker processes on this machine, or :meth:`connect`
    for an existing scheduler (e.g. one started by ``dask-jobqueue`` on SLURM).
    """

    def __init__(self, client, cluster=None, description: str = "on a Dask cluster"):
        from distributed import as_completed

        logging.getLogger("distributed").setLevel(logging.ERROR)  # the sweep reports its own progress
        self.client, self.cluster, self.description = client, cluster, description
        self._done = as_completed()
        self._pending = set()

    @classmethod
    def local(cls, workers: int, log=None) -> "DaskExecutor":
        """A local cluster of ``workers`` processes, one task each, on loopback. The scheduler
        re-runs no task whose worker died (``allowed_failures=0``): the sweep's own bounded
        retries handle it, so every retry is counted and reported. With ``log`` (a path), the
        cluster starts with its output, and so the workers' (the training's warnings and log
        lines), going to that file rather than to the console."""
        import dask
        from distributed import Client, LocalCluster

        logging.getLogger("distributed").setLevel(logging.ERROR)
        # Dask sets MALLOC_TRIM_THRESHOLD_ in its workers, which turns off glibc's adaptive mmap
        # threshold: every large tensor is then mmapped and unmapped again, and training spends
        # about half its time in the kernel (measured: 47 % system time). Leave malloc alone.
        # One malloc arena: the tasks run in a worker thread, and glibc serves a thread's large
        # blocks from mmap whatever the thresholds, unless it shares the main arena, where
        # mia_utils.train.keep_freed_memory can keep them (DP-SGD spent 60 % in the kernel).
        from mia_utils.book.console import output_to

        quiet = output_to(Path(log)) if log else contextlib.nullcontext()
        with quiet, dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None,  # None: unset
                                     "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX": "1"}):
            cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, host="127.0.0.1",
                                   dashboard_address=None, silence_logs=logging.ERROR,
                                   scheduler_kwargs={"allowed_failures": 0})
        return cls(Client(cluster), cluster, f"on a local Dask cluster of {workers} workers")

    @classmethod
    def connect(cls, address: str, timeout: float = 30.0) -> "DaskExecutor":
        """A client of the scheduler at ``address`` (e.g. ``tcp://10.0.0.5:8786``)."""
        from distributed import Client

        try:
            client = Client(address, timeout=timeout)
        except (OSError, TimeoutError) as error:
            raise ValueError(f"--cluster: no Dask scheduler answered at {address!r} within {timeout:.0f} s "
                             f"({error})") from None
        slowed = [worker for worker, value in client.run(_malloc_trim_threshold).items() if value is not None]
        if slowed:
            log.warning("%d of the cluster's workers run with MALLOC_TRIM_THRESHOLD_ set (Dask's default), which "
                        "makes training about twice as slow; start them with a Dask config that sets "
                        "distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_ to null (see the README)",
                        len(slowed))
        shared = [worker for worker, value in client.run(_malloc_arena_max).items() if value != "1"]
        if shared:
            log.warning("%d of the cluster's workers run without MALLOC_ARENA_MAX=1, so DP-SGD's large per-sample "
                        "gradients are mapped afresh at every step (several times slower on a CPU); set "
                        "distributed.nanny.pre-spawn-environ.MALLOC_ARENA_MAX to \"1\" (see the README)", len(shared))
        return cls(client, None, f"on the Dask cluster at {address}")

    def submit(self, function, *args):
        future = self.client.submit(function, *args, pure=False)
        self._done.add(future)
        self._pending.add(future)
        return future

    def running(self) -> int:
        """Tasks the workers are processing now."""
        try:
            return sum(len(keys) for keys in self.client.processing().values())
        except Exception:  # a lost scheduler shows as no progress, not as a crash of the display
            return 0

    def next_done(self, tick=None):
        """``(future, result, error)`` of the next finished task; calls ``tick()`` every two
        seconds while waiting (to refresh a progress display)."""
        from distributed import wait

        while True:
            try:
                finished = wait(list(self._pending), timeout=2.0, return_when="FIRST_COMPLETED").done
                break
            except TimeoutError:
                if tick:
                    tick()
        future = next(iter(finished))
        self._pending.discard(future)
        try:
            return future, future.result(), None
        except Exception as error:  # a task error or KilledWorker: the sweep retries or gives up
            return future, None, error
        finally:
            future.release()

    def close(self) -> None:
        self.client.close()
        if self.cluster is not None:
            self.cluster.close()


@dataclass
class SweepReport:
    """What :func:`sweep` did: runs stored, runs that failed (with their last error), every
    failed attempt that was retried, and how many tasks were submitted in all."""

    trained: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    retried: list[tuple[str, str]] = field(default_factory=list)
    submitted: int = 0


def sweep(profile_name: str, store: ResultStore, seed: int = 0, retries: int = 1, progress: bool = True,
          executor=None, chapters=None, threads: int | None = None, task=train_task, lockstep: int = 1,
          group_task=train_group_task, planner=None) -> SweepReport:
    """Train every run of ``book_plan(profile_name, seed, store, chapters)`` that ``store``
    lacks, with ``executor`` (default: this process), ``threads`` torch threads per task, and
    up to ``retries`` retries per run; plan again until nothing is missing. ``task`` is the
    function each run executes (:func:`train_task`; tests pass fakes). ``lockstep``: up to this
    many compatible runs train together as one task (``group_task``, :func:`train_group_task`),
    which pays on a GPU; a failed group's runs are retried one by one.

    Args:
        profile_name: the profile's name (``"smoke"``, ``"quick"``, ``"paper"``) whose book plan
            is trained (also shown on the progress bar).
        store: the :class:`~mia_utils.store.ResultStore` the finished runs are written to; its
            half-written entries are removed first.
        seed: the chapters' first seed, passed to :func:`~mia_utils.book.plan.book_plan` (int).
        retries: retries per failed run or group (int >= 0).
        progress: show a tqdm progress bar on stderr (bool).
        executor: where tasks run: :class:`InProcessExecutor` (the default, None) or
            :class:`DaskExecutor`; closed when the sweep ends.
        chapters: the chapters' names whose runs are planned (iterable of str), or None for
            those in ``_toc.yml``.
        threads: torch threads per task (int), or None to leave the worker's setting.
        task: the function each single run executes (default :func:`train_task`; tests pass fakes).
        lockstep: up to this many compatible runs train together as one task (int >= 1).
        group_task: the function a lockstep group executes (default :func:`train_group_task`).
        planner: a function of the store returning the :class:`~mia_utils.book.plan.Plan` to
            train, in place of the book's (:func:`train_chapter_runs` passes one chapter's), or None.

    Returns:
        a :class:`SweepReport` of the runs trained, failed and retried.
    """
    if lockstep < 1:
        raise ValueError(f"lockstep: must be >= 1, got {lockstep}")
    from tqdm import tqdm

    if retries < 0:
        raise ValueError(f"retries: must be >= 0, got {retries}")
    executor = executor or InProcessExecutor()
    removed = store.remove_stale_staging()
    if removed:
        log.info("removed %d half-written entries left by an interrupted writer", len(removed))
    report, attempted = SweepReport(), set()
    bar = tqdm(total=0, desc=f"sweep {profile_name} {executor.description}", unit="run", file=sys.stderr,
               disable=not progress, dynamic_ncols=True)
    try:
        while True:
            with planning_quietly():
                plan = planner(store) if planner else book_plan(profile_name, seed=seed, store=store,
                                                                 chapters=chapters)
            # a run planned again with more snapshots (chapter 04's early stopping) is a new attempt
            todo = [p for p in plan.missing(store) if p.key not in report.failed
                    and (p.key, p.config.snapshot_epochs) not in attempted]
            if not todo:
                return report
            attempted.update((p.key, p.config.snapshot_epochs) for p in todo)
            bar.total += len(todo)
            bar.refresh()
            _sweep_round(todo, store, executor, retries, threads, task, report, bar, lockstep, group_task)
    finally:
        bar.close()
        executor.close()


def _sweep_round(todo: list[PlannedRun], store: ResultStore, executor, retries: int, threads, task,
                 report: SweepReport, bar, lockstep: int = 1, group_task=train_group_task) -> None:
    """Run ``todo`` to the end: submit each run once its teacher is stored (in lockstep groups
    of up to ``lockstep``), store each result as it arrives, retry failures up to ``retries``
    times, each failed run alone."""
    waiting = {planned.key: planned for planned in todo}
    in_flight: dict[object, tuple[list[PlannedRun], list[bool], float]] = {}
    attempts = collections.Counter()

    def show():
        bar.set_postfix(done=len(report.trained), running=executor.running(), failed=len(report.failed),
                        refresh=False)
        bar.refresh()

    teachers: dict[str, dict | None] = {}  # teacher key -> weights, read once per round

    def teacher_weights(key: str) -> dict | None:
        if key not in teachers:
            entry = store.load(key)
            teachers[key] = entry["tensors"].get("weights") if entry else None
        return teachers[key]

    def submit(group: list[PlannedRun]) -> None:
        configs, replaces, weights = [], [], []
        for planned in group:
            config, replace = experiment.config_to_train(planned.config, store.load(planned.key, tensors=False))
            teacher = config.teacher()
            configs.append(config)
            replaces.append(replace)
            weights.append(teacher_weights(teacher.key()) if teacher else None)
        if len(group) == 1:
            handle = executor.submit(task, configs[0].to_dict(), weights[0], threads)
        else:
            handle = executor.submit(group_task, [c.to_dict() for c in configs], weights, threads)
        in_flight[handle] = (group, replaces, time.perf_counter())
        report.submitted += len(group)

    def give_up(key: str, error: str) -> None:
        report.failed[key] = error
        bar.update()

    def submit_ready() -> None:
        busy = set(waiting) | {planned.key for group, _, _ in in_flight.values() for planned in group}
        ready = []
        for key, planned in list(waiting.items()):
            if any(need in report.failed for need in planned.needs):
                del waiting[key]
                give_up(key, "its teacher failed")
            elif not any(need in busy for need in planned.needs):
                del waiting[key]
                if all(teacher_weights(need) is not None for need in planned.needs):
                    ready.append(planned)
                else:
                    give_up(key, "its teacher is not in the store")
        for group in lockstep_groups(ready, lockstep):
            submit(group)

    submit_ready()
    show()
    while in_flight:
        handle, result, error = executor.next_done(tick=show)
        group, replaces, started = in_flight.pop(handle)
        if error is None and len(group) > 1 and (not isinstance(result, list) or len(result) != len(group)):
            error = RuntimeError(f"the worker returned {type(result).__name__} for a group of {len(group)} runs")
        results = [result] if len(group) == 1 else (result if error is None else [None] * len(group))
        for planned, replace, entry in zip(group, replaces, results):
            failure = error
            if failure is None:
                try:
                    _store_result(planned, entry, store, replace)
                except Exception as caught:  # a malformed or unwritable result counts as a failed attempt
                    failure = caught
            if failure is None:
                report.trained.append(planned.key)
                log.debug("run %s stored after %.0f s", planned.key, time.perf_counter() - started)
                bar.update()
                continue
            message = f"{type(failure).__name__}: {failure}"
            attempts[planned.key] += 1
            if attempts[planned.key] <= retries:
                report.retried.append((planned.key, message))
                log.warning("run %s failed (%s); retry %d of %d", planned.key, message, attempts[planned.key], retries)
                submit([planned])
            else:
                give_up(planned.key, message)
        submit_ready()
        show()


def _store_result(planned: PlannedRun, result, store: ResultStore, replace: bool) -> None:
    """Check that ``result`` is the entry of ``planned`` made by this version, then write it."""
    json_files, tensors = result
    made = RunConfig.from_dict(json_files["config"])
    if made.key() != planned.key:
        raise RuntimeError(f"the worker returned run {made.key()} for run {planned.key}")
    version = json_files["metrics"]["provenance"].get("mia_utils")
    if version != __version__:
        raise RuntimeError(f"the worker runs mia_utils {version}, this client {__version__}; install the same "
                           "version on every worker")
    store.save(planned.key, json_files, tensors, replace=replace)


def default_threads(workers: int) -> int:
    """Torch threads per task on a local cluster of ``workers``: this machine's cores shared out."""
    return max(1, (os.cpu_count() or 1) // workers)


def train_chapter_runs(chapter: str, params: dict, store: ResultStore) -> tuple[Plan, list[str]]:
    """Train, in this process, every run that ``chapter`` lists with its validated ``params``
    (:func:`mia_utils.book.plan.chapter_plan`) and ``store`` lacks, planning again until nothing
    is missing (chapter 04's pairs appear once chapter 02's runs are stored); then allow the
    chapter to read no other run (:func:`mia_utils.experiment.allow_only`). Returns the plan and
    the keys of the runs trained now. Raises RuntimeError when a run fails or the chapter's list
    stays incomplete."""
    from mia_utils.book.plan import chapter_plan

    plan, trained = chapter_plan(chapter, params, store), []
    if plan.missing(store) or plan.pending:
        report = sweep(params["profile"], store, progress=True,
                       planner=lambda current: chapter_plan(chapter, params, current))
        if report.failed:
            raise RuntimeError(f"{chapter}: {len(report.failed)} of its runs failed to train: "
                               + "; ".join(f"{key[:12]}: {error}" for key, error in report.failed.items()))
        plan, trained = chapter_plan(chapter, params, store), report.trained
    if plan.pending:
        raise RuntimeError(f"{chapter}: its runs cannot all be listed: " + "; ".join(plan.pending))
    experiment.allow_only(set(plan.runs), chapter)
    return plan, trained
