"""Sweeps in this process and on a loopback Dask cluster: results equal, faults survived."""

import os
import platform
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
import torch

from conftest import PYTHON, ROOT
from mia_utils import __version__
from mia_utils.book.plan import book_plan
from mia_utils.store import ResultStore
from mia_utils.book.sweep import DaskExecutor, sweep

pytestmark = pytest.mark.slow


def stored_runs(store: ResultStore) -> set[str]:
    return set(store.run_keys())


def test_in_process_sweep_trains_the_plan_then_submits_nothing(tmp_path):
    store = ResultStore(tmp_path / "store")
    first = sweep("smoke", store, progress=False, chapters=["01_baselines"])
    plan = book_plan("smoke", store=store, chapters=["01_baselines"])
    assert not first.failed and set(first.trained) == set(plan.runs) == stored_runs(store)
    assert first.submitted == len(plan.runs)
    for key in plan.runs:  # the device and host are recorded with each run, and are not part of its key
        entry = store.load(key, tensors=False)
        assert entry["json"]["metrics"]["provenance"]["device"] == "cpu"
        assert entry["json"]["metrics"]["provenance"]["host"] == platform.node()
        assert "device" not in entry["json"]["config"]
    second = sweep("smoke", store, progress=False, chapters=["01_baselines"])
    assert second.submitted == 0 and second.trained == []
    # with nothing missing, the command line does not start a cluster
    result = subprocess.run([PYTHON, "-m", "mia_utils", "sweep", "--profile", "smoke", "--chapters", "01_baselines",
                             "--workers", "2", "--store", str(store.root), "-q"], cwd=ROOT, capture_output=True,
                            text=True, timeout=300)
    assert result.returncode == 0 and "nothing to train" in result.stderr, result.stderr[-2000:]


def test_two_worker_cluster_completes_the_smoke_plan_with_the_in_process_results(smoke_book, tmp_path):
    """The smoke book's store was filled in process by the chapters themselves; a 2-worker
    cluster sweep of the whole smoke plan must store the same runs with the same results."""
    book, _ = smoke_book
    reference = ResultStore(book / "store")
    store = ResultStore(tmp_path / "store")
    threads = torch.get_num_threads()  # the chapters' kernels ran with this machine's default
    report = sweep("smoke", store, progress=False, executor=DaskExecutor.local(2), threads=threads)
    assert not report.failed and not report.retried
    assert stored_runs(store) == stored_runs(reference)
    # each of chapter 04's two base runs may be retrained once, to add its early-stopping snapshots
    assert len(stored_runs(store)) <= len(report.trained) <= len(stored_runs(store)) + 2
    for key in stored_runs(store):
        ours, theirs = store.load(key), reference.load(key)
        assert ours["json"]["config"] == theirs["json"]["config"]
        assert set(ours["tensors"]) == set(theirs["tensors"])
        for name, tensors in theirs["tensors"].items():
            for tensor_name, expected in tensors.items():
                # same code, seed and thread count on this machine: bit for bit the same numbers
                # on any CPU (the same kernels run in the workers as in the chapters' process)
                assert torch.equal(ours["tensors"][name][tensor_name], expected), (key, name, tensor_name)
        assert ours["json"]["metrics"]["summary"] == theirs["json"]["metrics"]["summary"], key
        def without_times(history):
            return [{name: value for name, value in epoch.items() if name != "seconds"} for epoch in history]

        assert without_times(ours["json"]["metrics"]["history"]) == without_times(theirs["json"]["metrics"]["history"])
        assert ours["json"]["metrics"]["provenance"]["device"] == "cpu"
    again = sweep("smoke", store, progress=False, executor=DaskExecutor.local(2))
    assert again.submitted == 0 and again.trained == []  # a second sweep submits nothing


def test_a_worker_killed_mid_sweep_is_survived_through_retries(tmp_path):
    store = ResultStore(tmp_path / "store")
    executor = DaskExecutor.local(2)
    killed = []

    def kill_a_busy_worker():
        pids = executor.client.run(os.getpid)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            busy = [address for address, keys in executor.client.processing().items() if keys]
            if busy:
                os.kill(pids[busy[0]], signal.SIGKILL)
                killed.append(pids[busy[0]])
                return
            time.sleep(0.05)

    # Dask's MALLOC_TRIM_THRESHOLD_ and per-thread arenas would make training spend half its time in the kernel
    assert set(executor.client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
    assert set(executor.client.run(lambda: os.environ.get("MALLOC_ARENA_MAX")).values()) == {"1"}
    killer = threading.Thread(target=kill_a_busy_worker)
    killer.start()
    report = sweep("smoke", store, retries=2, progress=False, executor=executor, chapters=["01_baselines"])
    killer.join()
    plan = book_plan("smoke", store=store, chapters=["01_baselines"])
    assert killed, "no worker was busy to kill"
    assert any("KilledWorker" in error for _, error in report.retried), report.retried
    assert not report.failed and set(report.trained) == set(plan.runs) == stored_runs(store)
    assert all(store.verify(key) for key in plan.runs)


def test_client_killed_by_sigkill_then_rerun_trains_nothing_twice(tmp_path):
    store = ResultStore(tmp_path / "store")
    chapters = "01_baselines,03_differential_privacy"
    command = [PYTHON, "-m", "mia_utils", "sweep", "--profile", "smoke", "--chapters", chapters, "--workers", "2",
               "--store", str(store.root), "-q"]
    client = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                              start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while len(store.keys()) < 2 and client.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert client.poll() is None, "the sweep ended before it could be killed"
        os.kill(client.pid, signal.SIGKILL)
        client.wait()
    finally:
        time.sleep(1)  # its workers notice the lost client and exit; make sure none lingers
        try:
            os.killpg(client.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    before = {key: (store.path(key) / "manifest.json").stat() for key in store.keys() if store.verify(key)}
    assert before, "nothing was stored before the kill"
    # what a writer killed mid-write leaves: a staging folder named for its host and process
    half_written = store.runs / f".tmp-{next(iter(before))}.{platform.node()}.{client.pid}.deadbeef"
    half_written.mkdir()
    (half_written / "weights.safetensors").write_bytes(b"half")

    rerun = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    plan = book_plan("smoke", store=store, chapters=chapters.split(","))
    assert stored_runs(store) == set(plan.runs) and all(store.verify(key) for key in plan.runs)
    for key, stat in before.items():  # nothing stored before the kill was trained or written again
        now = (store.path(key) / "manifest.json").stat()
        assert (now.st_ino, now.st_mtime_ns) == (stat.st_ino, stat.st_mtime_ns), key
    assert f"sweep smoke: {len(plan.runs) - len(before)} runs trained, 0 failed" in rerun.stderr
    assert not [p.name for p in store.runs.iterdir() if p.name.startswith(".")]  # no partial entry left


def test_a_sweep_on_an_existing_scheduler(tmp_path):
    """``--cluster ADDRESS``: a scheduler and two workers started with Dask's own commands."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = tmp_path / "dask"
    config.mkdir()
    (config / "malloc.yaml").write_text(
        "distributed:\n  nanny:\n    pre-spawn-environ:\n      MALLOC_TRIM_THRESHOLD_: null\n"
        "      MALLOC_ARENA_MAX: \"1\"\n")
    env = {**os.environ, "DASK_CONFIG": str(config)}
    dask = [str(Path(PYTHON).parent / "dask")]
    address = f"tcp://127.0.0.1:{port}"
    processes = [subprocess.Popen(dask + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                                  env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)]
    try:
        time.sleep(2)
        processes.append(subprocess.Popen(dask + ["worker", address, "--nthreads", "1", "--nworkers", "2",
                                                  "--no-dashboard"], env=env, stdout=subprocess.DEVNULL,
                                          stderr=subprocess.DEVNULL))
        from distributed import Client

        with Client(address, timeout=60) as client:
            client.wait_for_workers(2, timeout=60)
            assert set(client.run(lambda: os.environ.get("MALLOC_TRIM_THRESHOLD_")).values()) == {None}
        store = ResultStore(tmp_path / "store")
        result = subprocess.run([PYTHON, "-m", "mia_utils", "sweep", "--profile", "smoke", "--chapters", "00_primer",
                                 "--cluster", address, "--store", str(store.root), "-q"], cwd=ROOT,
                                capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "MALLOC_TRIM_THRESHOLD_ set" not in result.stderr  # the configuration file unset it
        assert "without MALLOC_ARENA_MAX=1" not in result.stderr  # ... and set this
        plan = book_plan("smoke", store=store, chapters=["00_primer"])
        assert stored_runs(store) == set(plan.runs) and all(store.verify(key) for key in plan.runs)
    finally:
        for process in reversed(processes):
            process.terminate()
            process.wait(timeout=30)


def test_failures_are_retried_then_reported_and_students_of_failed_teachers_skipped(tmp_path):
    store = ResultStore(tmp_path / "store")
    plan = book_plan("smoke", store=store, chapters=["02_regularization"])
    student = next(p for p in plan.runs.values() if p.needs)
    teacher = student.needs[0]
    teachers = {need for p in plan.runs.values() for need in p.needs}  # one baseline per seed
    flaky = next(p.key for p in plan.runs.values() if p.key not in teachers and not p.needs)
    calls = {}

    def fake_task(config, teacher_weights, threads):
        from mia_utils.config import RunConfig

        key = RunConfig.from_dict(config).key()
        calls[key] = calls.get(key, 0) + 1
        if key == teacher:
            raise RuntimeError("out of memory")
        if key == flaky and calls[key] == 1:
            raise OSError("worker lost")
        return {"config": config, "metrics": {"provenance": {"mia_utils": __version__}}}, {}

    report = sweep("smoke", store, retries=2, progress=False, chapters=["02_regularization"], task=fake_task)
    assert calls[teacher] == 3 and report.failed[teacher] == "RuntimeError: out of memory"
    assert report.failed[student.key] == "its teacher failed" and student.key not in calls
    assert calls[flaky] == 2 and flaky in report.trained and flaky not in report.failed
    assert (flaky, "OSError: worker lost") in report.retried
    assert stored_runs(store) == set(report.trained)


def test_a_result_from_another_version_is_refused(tmp_path):
    store = ResultStore(tmp_path / "store")

    def stale_worker(config, teacher_weights, threads):
        return {"config": config, "metrics": {"provenance": {"mia_utils": "0.0.1"}}}, {}

    report = sweep("smoke", store, retries=0, progress=False, chapters=["00_primer"], task=stale_worker)
    assert len(report.failed) == 1 and "the worker runs mia_utils 0.0.1" in next(iter(report.failed.values()))
    assert store.keys() == []


def test_lockstep_groups_compatible_runs_and_retries_a_failed_group_run_by_run(tmp_path):
    from mia_utils.config import RunConfig
    from mia_utils.train import lockstep_key

    store = ResultStore(tmp_path / "store")
    groups, alone = [], []

    def entry(config):
        return {"config": config, "metrics": {"provenance": {"mia_utils": __version__}}}, {}

    def fake_task(config, teacher_weights, threads):
        alone.append(RunConfig.from_dict(config).key())
        return entry(config)

    def fake_group_task(configs, teacher_weights, threads):
        groups.append([RunConfig.from_dict(c) for c in configs])
        if len(groups) == 1:
            raise RuntimeError("CUDA out of memory")
        return [entry(c) for c in configs]

    report = sweep("smoke", store, retries=1, progress=False, chapters=["01_baselines"], task=fake_task,
                   lockstep=3, group_task=fake_group_task)
    plan = book_plan("smoke", chapters=["01_baselines"])
    assert not report.failed and set(report.trained) == set(plan.runs)
    for group in groups:
        assert 1 < len(group) <= 3 and len({lockstep_key(c) for c in group}) == 1
    failed = [c.key() for c in groups[0]]
    assert all(key in alone for key in failed)  # retried one by one
    assert {key for key, _ in report.retried} == set(failed)
    baselines = {key for key, planned in plan.runs.items() if not planned.config.is_shadow}
    # smoke's four baseline seeds (twice its two: chapter 02 confirms its picks on the next two): three of
    # them share one lockstep group, the fourth trains alone
    assert len(baselines) == 4 and len(failed) == 3 and set(failed) <= baselines
    with pytest.raises(ValueError, match="lockstep"):
        sweep("smoke", store, progress=False, chapters=["01_baselines"], lockstep=0)


def test_a_chapter_trains_its_listed_runs_then_may_use_no_other(monkeypatch, store, tiny_config):
    from mia_utils import experiment
    from mia_utils.book import runs
    from mia_utils.book.sweep import train_chapter_runs

    listed, unlisted = tiny_config, tiny_config.replace(seed=1)
    monkeypatch.setitem(runs.RUNS, "00_primer", lambda profile, params, store=None: runs.ChapterRuns([listed]))
    try:
        plan, trained = train_chapter_runs("00_primer", {"profile": "smoke", "seed": 0}, store)
        assert list(plan.runs) == trained == [listed.key()] and store.exists(listed.key())
        assert experiment.run(listed, store).from_store
        with pytest.raises(experiment.UnlistedRunError, match=rf"00_primer: run {unlisted.key()[:12]} .*seed 1"):
            experiment.run(unlisted, store)
        assert not store.exists(unlisted.key())
        # again on the full store: nothing to train
        assert train_chapter_runs("00_primer", {"profile": "smoke", "seed": 0}, store)[1] == []
    finally:
        experiment.allow_only(None)
    assert experiment.run(unlisted, store).from_store is False  # outside a chapter, anything goes


def test_a_chapter_whose_runs_stay_pending_stops_before_reading_any(monkeypatch, store):
    from mia_utils.book import runs
    from mia_utils.book.sweep import train_chapter_runs

    monkeypatch.setitem(runs.RUNS, "04_combinations",
                        lambda profile, params, store=None: runs.ChapterRuns([], ["pairs: chapter 02 is missing"]))
    with pytest.raises(RuntimeError, match="04_combinations: its runs cannot all be listed: pairs: chapter 02"):
        train_chapter_runs("04_combinations", {"profile": "smoke", "seed": 0}, store)
