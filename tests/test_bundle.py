"""Store bundles: export, verified import, refusal of damaged bundles and of changed run keys."""

import gzip
import json
import shutil
import subprocess

import pytest
import torch

from conftest import PYTHON, ROOT
from mia_utils.store import BundleError, ResultStore, export_bundle, import_bundle


def snapshot(store: ResultStore) -> dict:
    """Every file under the store's root (hidden staging folders included), with its bytes."""
    root = store.root
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()} \
        if root.exists() else {}


@pytest.fixture
def source(tmp_path, tiny_config):
    """A store with one real run entry (its configuration's key) and one derived entry."""
    store = ResultStore(tmp_path / "source")
    key = tiny_config.key()
    store.save(key, {"config": tiny_config.to_dict(), "metrics": {"train_acc": 0.5}},
               {"weights": {"w": torch.arange(1000, dtype=torch.float32)}})
    store.save("eval-0123456789abcdef0123", {"evaluation": {"auc": 0.61}}, {})
    return store, [key, "eval-0123456789abcdef0123"]


def test_export_then_import_gives_the_same_entries_and_skips_present_ones(source, tmp_path):
    store, keys = source
    manifest = export_bundle(store, keys, tmp_path / "b.tar.gz", {"mia_utils": "0.1.0", "profile": "smoke"})
    assert set(manifest["entries"]) == set(keys) and manifest["profile"] == "smoke"
    target = ResultStore(tmp_path / "target")
    report = import_bundle(target, tmp_path / "b.tar.gz", version="0.1.0")
    assert sorted(report.imported) == sorted(keys) and report.skipped == []
    assert all(target.verify(key) for key in keys) and target.keys() == sorted(keys)
    for key in keys:  # byte for byte what was exported
        assert {p.name: p.read_bytes() for p in store.path(key).iterdir()} == \
               {p.name: p.read_bytes() for p in target.path(key).iterdir()}
    again = import_bundle(target, tmp_path / "b.tar.gz", version="0.1.0")
    assert again.imported == [] and sorted(again.skipped) == sorted(keys)
    assert not any(p.name.startswith(".") for p in target.runs.iterdir())  # no staging left behind


def test_export_refuses_a_corrupt_entry_and_writes_no_file(source, tmp_path):
    store, keys = source
    (store.path(keys[0]) / "metrics.json").write_text("{}")
    with pytest.raises(ValueError, match=f"entry {keys[0]} is corrupt"):
        export_bundle(store, keys, tmp_path / "b.tar.gz")
    assert not list(tmp_path.glob("*b.tar.gz*"))


def flip_byte(path, at):
    data = bytearray(path.read_bytes())
    data[at] ^= 0x01
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("where", [0.05, 0.5, 0.95])
def test_a_bundle_with_one_flipped_byte_is_refused_and_the_store_stays_as_it_was(source, tmp_path, where):
    store, keys = source
    bundle = tmp_path / "b.tar.gz"
    export_bundle(store, keys, bundle, {"mia_utils": "0.1.0"})
    flip_byte(bundle, int(bundle.stat().st_size * where))
    target = ResultStore(tmp_path / "target")
    target.save("eval-ffffffffffffffffffff", {"evaluation": {"auc": 0.5}}, {})
    before = snapshot(target)
    with pytest.raises(BundleError, match="nothing was imported"):
        import_bundle(target, bundle, version="0.1.0")
    assert snapshot(target) == before


def test_a_truncated_bundle_is_refused(source, tmp_path):
    store, keys = source
    bundle = tmp_path / "b.tar.gz"
    export_bundle(store, keys, bundle, {"mia_utils": "0.1.0"})
    bundle.write_bytes(bundle.read_bytes()[: bundle.stat().st_size // 2])
    target = ResultStore(tmp_path / "target")
    with pytest.raises(BundleError, match="damaged or truncated"):
        import_bundle(target, bundle, version="0.1.0")
    assert target.keys() == []


def test_a_file_that_matches_its_hash_but_not_the_manifest_is_refused(source, tmp_path):
    """A bundle rewritten with a consistent gzip stream but a changed file (a deliberate edit, not
    line noise) is caught by the per-file hashes."""
    import io
    import tarfile

    store, keys = source
    bundle = tmp_path / "b.tar.gz"
    export_bundle(store, keys, bundle, {"mia_utils": "0.1.0"})
    edited = tmp_path / "edited.tar.gz"
    with tarfile.open(bundle, "r:gz") as old, tarfile.open(edited, "w:gz") as new:
        for member in old:
            data = old.extractfile(member).read()
            if member.name.endswith("metrics.json"):
                data = data.replace(b"0.5", b"0.9")
            member.size = len(data)
            new.addfile(member, io.BytesIO(data))
    target = ResultStore(tmp_path / "target")
    with pytest.raises(BundleError, match="metrics.json does not match its hash"):
        import_bundle(target, edited, version="0.1.0")
    assert target.keys() == []


def test_another_version_is_accepted_when_its_run_keys_match_and_refused_naming_those_that_differ(
        source, tmp_path, tiny_config):
    store, keys = source
    bundle = tmp_path / "b.tar.gz"
    export_bundle(store, keys, bundle, {"mia_utils": "0.0.9"})
    assert sorted(import_bundle(ResultStore(tmp_path / "same"), bundle, version="0.1.0").imported) == sorted(keys)
    # a run stored under a key this version does not compute from its configuration
    odd = "0123456789abcdef01234567"
    store.save(odd, {"config": tiny_config.to_dict(), "metrics": {}}, {})
    export_bundle(store, keys + [odd], bundle, {"mia_utils": "0.0.9"})
    target = ResultStore(tmp_path / "target")
    with pytest.raises(BundleError, match=f"mia_utils 0.0.9, this is 0.1.0, and 1 of its run keys differ "
                                          f"here \\({odd} -> {tiny_config.key()}\\)"):
        import_bundle(target, bundle, version="0.1.0")
    assert target.keys() == []
    # the same bundle from this very version is not compared
    assert odd in import_bundle(ResultStore(tmp_path / "trusting"), bundle, version="0.0.9").imported


def test_a_file_that_is_not_a_bundle_is_refused(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(BundleError, match="damaged or truncated"):
        import_bundle(ResultStore(tmp_path / "s"), tmp_path / "notes.txt")
    plain = tmp_path / "plain.gz"
    plain.write_bytes(gzip.compress(b"x" * 2048))
    with pytest.raises(BundleError):
        import_bundle(ResultStore(tmp_path / "s"), plain)
    with pytest.raises(BundleError, match="is not a file"):
        import_bundle(ResultStore(tmp_path / "s"), tmp_path / "absent.tar.gz")


def cli(*args, env):
    return subprocess.run([PYTHON, "-m", "mia_utils", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


def test_a_smoke_bundle_imported_into_an_empty_store_leaves_nothing_to_train(smoke_book, tmp_path):
    """Export the smoke book's store, import it into an empty one: the sweep then trains 0 runs,
    and so does executing the book (it keeps every page whose inputs are unchanged)."""
    book, env = smoke_book
    bundle = tmp_path / "smoke.tar.gz"
    result = cli("store", "export", str(bundle), "--profile", "smoke", "--store", str(book / "store"), env=env)
    assert result.returncode == 0, result.stderr
    manifest = json.loads(subprocess.run(["tar", "-xOzf", str(bundle), "bundle.json"], capture_output=True,
                                         check=True).stdout)
    assert manifest["profile"] == "smoke" and manifest["mia_utils"] and "commit" in manifest
    empty = tmp_path / "store"
    result = cli("store", "import", str(bundle), "--store", str(empty), env=env)
    assert result.returncode == 0, result.stderr
    assert f"{len(manifest['entries'])} entries imported" in result.stderr
    env = {**env, "MIA_STORE": str(empty)}
    result = cli("sweep", "--profile", "smoke", "-q", env=env)
    assert result.returncode == 0 and "0 runs trained" in result.stderr, result.stderr
    pages = tmp_path / "executed"
    shutil.copytree(book / "book" / "executed", pages)
    result = cli("run", "--profile", "smoke", "-q", "--out", str(pages), env=env)
    assert result.returncode == 0, result.stderr
    # each page is kept (its inputs are the same) or, where the package changed since, executed
    # again reading every run from the store
    assert "[mia_utils] 0 runs trained;" in result.stderr, result.stderr
    chapters = [line for line in result.stderr.splitlines() if line.startswith("  ") and " runs" in line
                or " kept (same notebook" in line]
    assert len(chapters) == len(list(pages.glob("*.ipynb"))) and not any("trained" in line for line in chapters)


def test_cli_import_of_a_damaged_bundle_fails_with_a_message_and_no_traceback(source, tmp_path, cli_env):
    store, keys = source
    bundle = tmp_path / "b.tar.gz"
    export_bundle(store, keys, bundle, {"mia_utils": "0.1.0"})
    flip_byte(bundle, bundle.stat().st_size // 2)
    result = cli("store", "import", str(bundle), "--store", str(tmp_path / "target"), env=cli_env)
    assert result.returncode == 1 and "error: bundle:" in result.stderr and "nothing was imported" in result.stderr
    assert "Traceback" not in result.stderr
    assert ResultStore(tmp_path / "target").keys() == []
