import json
import pickle

import pytest
import torch

from mia_utils import experiment
from mia_utils.store import MANIFEST, ResultStore


def test_round_trip_and_no_staging_left(store):
    tensors = {"outputs": {"a": torch.arange(5.0), "b": torch.ones(2, 3, dtype=torch.bool)}}
    store.save("k1", {"metrics": {"x": 1.5}}, tensors)
    entry = store.load("k1")
    assert entry["json"]["metrics"] == {"x": 1.5}
    # bitwise on any CPU here and below: tensors read back from disk, or runs of one configuration
    # trained again in the same process (same shapes and thread count)
    assert torch.equal(entry["tensors"]["outputs"]["a"], torch.arange(5.0))
    assert torch.equal(entry["tensors"]["outputs"]["b"], torch.ones(2, 3, dtype=torch.bool))
    assert [p.name for p in store.runs.iterdir()] == ["k1"]
    assert store.keys() == ["k1"]


def test_stale_staging_of_dead_writers_on_this_host_is_removed(store):
    import os
    import platform
    import subprocess
    import sys

    store.save("k1", {"metrics": {"x": 1}}, {"outputs": {"a": torch.ones(3)}})
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                          text=True, check=True)
    dead_pid = int(dead.stdout)  # a process that has exited
    host = platform.node()
    names = {"dead": f".tmp-k2.{host}.{dead_pid}.0a1b2c3d", "alive": f".tmp-k3.{host}.{os.getpid()}.0a1b2c3d",
             "other_host": f".tmp-k4.elsewhere.{dead_pid}.0a1b2c3d", "discarded": ".corrupt-k5-0a1b2c3d",
             "dtc_dead": f".tmp-dtc-k6.{host}.{dead_pid}.0a1b2c3d"}
    for name in names.values():
        (store.runs / name).mkdir()
        (store.runs / name / "weights.safetensors").write_bytes(b"half")
    removed = {path.name for path in store.remove_stale_staging()}
    assert removed == {names["dead"], names["discarded"], names["dtc_dead"]}
    left = {path.name for path in store.runs.iterdir()}
    assert left == {"k1", names["alive"], names["other_host"]}  # a live writer's or another host's: kept
    assert store.verify("k1")


@pytest.mark.parametrize("damage", ["truncate", "delete_manifest", "flip_byte", "delete_file"])
def test_damaged_entry_reads_as_absent(store, damage):
    store.save("k1", {"metrics": {"x": 1}}, {"outputs": {"a": torch.randn(100)}})
    tensor_file = store.path("k1") / "outputs.safetensors"
    if damage == "truncate":
        tensor_file.write_bytes(tensor_file.read_bytes()[:50])
    elif damage == "delete_manifest":
        (store.path("k1") / MANIFEST).unlink()
    elif damage == "flip_byte":
        data = bytearray(tensor_file.read_bytes())
        data[-1] ^= 0xFF
        tensor_file.write_bytes(bytes(data))
    else:
        tensor_file.unlink()
    assert store.load("k1") is None
    assert not store.exists("k1")


class _Exploit:
    def __reduce__(self):
        import pathlib

        return (pathlib.Path.touch, (pathlib.Path(_Exploit.marker),))


def test_store_never_unpickles(store, tmp_path):
    """A planted pickle with a matching manifest is rejected, and its payload never runs."""
    _Exploit.marker = str(tmp_path / "pwned")
    folder = store.path("evil")
    folder.mkdir(parents=True)
    payload = pickle.dumps(_Exploit())
    (folder / "weights.safetensors").write_bytes(payload)
    import hashlib

    (folder / MANIFEST).write_text(json.dumps({"files": {"weights.safetensors": {
        "bytes": len(payload), "sha256": hashlib.sha256(payload).hexdigest()}}}))
    assert store.load("evil") is None
    assert not (tmp_path / "pwned").exists()


def test_run_is_read_back_not_retrained(store, tiny_config):
    first = experiment.run(tiny_config, store, progress=False)
    second = experiment.run(tiny_config, store, progress=False)
    assert not first.from_store and second.from_store
    assert first.metrics == second.metrics
    for name, tensor in first.outputs.items():
        assert torch.equal(tensor, second.outputs[name])
    assert torch.equal(first.model().classifier.weight, second.model().classifier.weight)


def test_truncated_run_is_recomputed(store, tiny_config):
    first = experiment.run(tiny_config, store, progress=False)
    weights = first.path / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])
    again = experiment.run(tiny_config, store, progress=False)
    assert not again.from_store
    assert again.metrics == first.metrics
    assert experiment.run(tiny_config, store, progress=False).from_store


def test_snapshots_are_kept(store, tiny_config):
    config = tiny_config.replace(epochs=2, snapshot_epochs=(1,))
    result = experiment.run(config, store, progress=False)
    assert set(result.snapshot_outputs(1)) == set(result.outputs)
    assert not torch.equal(result.model(1).classifier.weight, result.model().classifier.weight)
    with pytest.raises(KeyError, match="epoch"):
        result.model(2)


def test_store_location_is_configurable(monkeypatch, tmp_path):
    monkeypatch.setenv("MIA_STORE", str(tmp_path / "elsewhere"))
    assert ResultStore().root == tmp_path / "elsewhere"


def test_a_request_for_more_snapshots_retrains_once_and_keeps_the_union(store, tiny_config):
    first = experiment.run(tiny_config.replace(epochs=3, snapshot_epochs=(1,)), store, progress=False)
    more = experiment.run(tiny_config.replace(epochs=3, snapshot_epochs=(2,)), store, progress=False)
    assert not more.from_store and more.config.snapshot_epochs == (1, 2)
    assert more.metrics == first.metrics
    again = experiment.run(tiny_config.replace(epochs=3, snapshot_epochs=(1, 2)), store, progress=False)
    assert again.from_store
    sweep = experiment.early_stopping_sweep(tiny_config.replace(epochs=3), [1, 2, 3], store)
    assert torch.equal(sweep[3]["eval_logits"], first.outputs["eval_logits"])
    assert torch.equal(sweep[1]["eval_logits"], first.snapshot_outputs(1)["eval_logits"])
    assert experiment.run(tiny_config.replace(epochs=3), store, progress=False).from_store


def test_derived_key_is_the_prefix_and_a_hash_of_the_settings():
    import hashlib
    import json

    from mia_utils.store import derived_key

    settings = {"run": "abc", "epoch": None, "seed": 0}
    expected = "eval-" + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]
    assert derived_key("eval-", settings) == expected  # the keys stores written before still match
    assert derived_key("eval-", dict(reversed(list(settings.items())))) == expected
    with pytest.raises(ValueError, match="prefix: got 'run-'"):
        derived_key("run-", settings)
