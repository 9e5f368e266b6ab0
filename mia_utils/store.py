"""The result store: one folder per run, written atomically once, verified on every read.

Layout under the store root (``$MIA_STORE``, default ``.mia_store`` in the working folder)::

    runs/<key>/config.json           the RunConfig
    runs/<key>/metrics.json          per-epoch history, final metrics, provenance
    runs/<key>/weights.safetensors   final weights
    runs/<key>/outputs.safetensors   per-sample outputs (see train.per_sample_outputs)
    runs/<key>/epoch_<E>_{weights,outputs}.safetensors   snapshots, when asked for
    runs/<key>/manifest.json         size and SHA-256 of every file above; written last

An entry is written into a temporary folder beside ``runs/`` and renamed into place, so a
reader sees either nothing or a whole entry. An entry whose manifest is missing, or whose
files do not match it, is corrupt: :meth:`ResultStore.load` reports it as absent (and moves it
aside) so the caller recomputes it. Nothing is unpickled: tensors are read by safetensors and
everything else is JSON, so a shared store cannot run code on its readers.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import uuid
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

MANIFEST = "manifest.json"
#: Prefix of the folder an entry is written into before it is renamed into place:
#: ``.tmp-<key>.<host>.<pid>.<random>``.
STAGING = ".tmp-"


def default_store_root() -> Path:
    """``$MIA_STORE`` or ``./.mia_store``."""
    return Path(os.environ.get("MIA_STORE", ".mia_store"))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


#: Key prefixes of entries derived from runs (cached evaluations, DtC measurements, population
#: LiRA, chapter 08's OOD measurements and generative models, chapter 09's stronger attacks and their
#: reference outputs).
DERIVED_PREFIXES = ("dtc-", "eval-", "lira-", "ood-", "atk-", "gan-")


def derived_key(prefix: str, settings: dict) -> str:
    """The store key of a measurement derived from runs: ``prefix`` (one of
    :data:`DERIVED_PREFIXES`) and a hash of its ``settings`` (the runs it reads and how)."""
    if prefix not in DERIVED_PREFIXES:
        raise ValueError(f"prefix: got {prefix!r}; allowed: {', '.join(DERIVED_PREFIXES)}")
    return prefix + hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:20]


class ResultStore:
    """Run entries keyed by configuration hash. See the module docstring for the layout."""

    def __init__(self, root: str | os.PathLike | None = None):
        self.root = Path(root) if root is not None else default_store_root()

    @property
    def runs(self) -> Path:
        return self.root / "runs"

    def path(self, key: str) -> Path:
        return self.runs / key

    def verify(self, key: str) -> bool:
        """True when the entry exists and every file matches its manifest."""
        folder = self.path(key)
        try:
            manifest = json.loads((folder / MANIFEST).read_text())
            for name, expected in manifest["files"].items():
                path = folder / name
                if path.stat().st_size != expected["bytes"] or _sha256(path) != expected["sha256"]:
                    return False
            return True
        except (OSError, ValueError, KeyError, TypeError):
            return False

    def exists(self, key: str) -> bool:
        return self.path(key).exists()

    def load(self, key: str, tensors: bool = True) -> dict | None:
        """The entry as ``{"json": {name: obj}, "tensors": {name: {tensor name: Tensor}}}``,
        or None when absent or corrupt (a corrupt entry is moved to ``runs/.corrupt-*``).
        ``tensors=False`` skips reading the tensors (``"tensors"`` is then empty)."""
        folder = self.path(key)
        if not folder.exists():
            return None
        if not self.verify(key):
            self.discard(key)
            return None
        entry = {"json": {}, "tensors": {}}
        try:
            for path in sorted(folder.iterdir()):
                if path.suffix == ".json" and path.name != MANIFEST:
                    entry["json"][path.stem] = json.loads(path.read_text())
                elif path.suffix == ".safetensors" and tensors:
                    entry["tensors"][path.stem] = load_file(path)
        except Exception:  # unreadable despite a matching manifest: not ours to trust
            self.discard(key)
            return None
        return entry

    def discard(self, key: str) -> None:
        """Move an entry aside (never deleted in place while a reader might hold it)."""
        folder = self.path(key)
        if folder.exists():
            graveyard = self.runs / f".corrupt-{key}-{uuid.uuid4().hex[:8]}"
            os.replace(folder, graveyard)
            shutil.rmtree(graveyard, ignore_errors=True)

    def save(self, key: str, json_files: dict[str, object], tensor_files: dict[str, dict[str, torch.Tensor]],
             replace: bool = False) -> Path:
        """Write an entry atomically. If another writer got there first with a valid entry,
        keep theirs, unless ``replace`` (used to add snapshots to an entry). Returns the folder."""
        self.runs.mkdir(parents=True, exist_ok=True)
        staging = self.runs / f"{STAGING}{key}.{platform.node()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
        staging.mkdir()
        try:
            for name, obj in json_files.items():
                (staging / f"{name}.json").write_text(json.dumps(obj, indent=1, sort_keys=True))
            for name, tensors in tensor_files.items():
                save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()},
                          staging / f"{name}.safetensors")
            files = {p.name: {"bytes": p.stat().st_size, "sha256": _sha256(p)} for p in sorted(staging.iterdir())}
            manifest = staging / MANIFEST
            manifest.write_text(json.dumps({"key": key, "files": files}, indent=1))
            for path in staging.iterdir():
                with open(path, "rb") as handle:
                    os.fsync(handle.fileno())
            target = self.path(key)
            if target.exists() and (replace or not self.verify(key)):
                self.discard(key)
            try:
                os.rename(staging, target)
            except OSError:
                if not self.verify(key):  # lost a race to an entry that is not valid
                    raise
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return self.path(key)

    def remove_stale_staging(self) -> list[Path]:
        """Delete the half-written entries of writers on this host that died mid-write (their
        process is gone), and leftovers of discarded entries. Returns the folders removed."""
        removed = []
        if not self.runs.exists():
            return removed
        for path in self.runs.iterdir():
            if path.name.startswith(".corrupt-"):
                removed.append(path)
            elif path.name.startswith(STAGING):
                try:
                    host, pid, _ = path.name[len(STAGING):].split(".", 1)[1].rsplit(".", 2)
                    stale = host == platform.node() and not _process_alive(int(pid))
                except ValueError:  # not named by this version: leave it alone
                    stale = False
                if stale:
                    removed.append(path)
        for path in removed:
            shutil.rmtree(path, ignore_errors=True)
        return removed

    def keys(self) -> list[str]:
        """Every entry's key: trained runs and the results derived from them."""
        if not self.runs.exists():
            return []
        return sorted(p.name for p in self.runs.iterdir() if not p.name.startswith("."))

    def run_keys(self) -> list[str]:
        """The keys of trained runs only (not the cached evaluations and DtC measurements)."""
        return [key for key in self.keys() if not key.startswith(DERIVED_PREFIXES)]

    def clean(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
