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

A set of entries travels as a bundle (:func:`export_bundle`, :func:`import_bundle`): one
gzip-compressed tar file whose manifest lists every file's size and SHA-256, checked in full
before any entry enters the receiving store.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import platform
import shutil
import uuid
from dataclasses import dataclass, field
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


# --- Bundles: a store's entries in one verified file, to hand trained runs to a class ---------------

#: The bundle's manifest, the first member of the archive.
BUNDLE_MANIFEST = "bundle.json"
#: Version of the bundle layout (not of the package); a reader refuses any other.
BUNDLE_FORMAT = 1


class BundleError(ValueError):
    """A bundle that cannot be imported (tampered, truncated, of another layout, or of another
    package version whose run keys differ); nothing was written to the store."""


def export_bundle(store: ResultStore, keys, path: str | os.PathLike, info: dict | None = None) -> dict:
    """Write the entries ``keys`` of ``store`` into one gzip-compressed tar file at ``path``.

    The first member, ``bundle.json``, is the manifest: the layout version, ``info`` (package
    version, git commit, profile: whatever the caller records) and, for every entry, the size in
    bytes and SHA-256 of each of its files. Every entry is verified against its own manifest
    first; a corrupt or absent entry stops the export (ValueError naming it). The file is written
    beside ``path`` and renamed into place, so an interrupted export leaves no partial bundle.
    Returns the manifest."""
    import tarfile

    keys = sorted(set(keys))
    entries = {}
    for key in keys:
        if not store.verify(key):
            state = "corrupt (its files do not match its manifest)" if store.exists(key) else "not in the store"
            raise ValueError(f"keys: entry {key} is {state}; allowed: valid entries of {store.root}")
        folder = store.path(key)
        listed = json.loads((folder / MANIFEST).read_text())["files"]
        files = {name: {"bytes": int(meta["bytes"]), "sha256": meta["sha256"]} for name, meta in listed.items()}
        files[MANIFEST] = {"bytes": (folder / MANIFEST).stat().st_size, "sha256": _sha256(folder / MANIFEST)}
        entries[key] = files
    manifest = {"format": BUNDLE_FORMAT, **(info or {}), "entries": entries}
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        with tarfile.open(partial, "w:gz", compresslevel=6) as tar:
            data = json.dumps(manifest, indent=1, sort_keys=True).encode()
            member = tarfile.TarInfo(BUNDLE_MANIFEST)
            member.size = len(data)
            tar.addfile(member, io.BytesIO(data))
            for key, files in entries.items():
                for name in sorted(files):
                    tar.add(store.path(key) / name, arcname=f"runs/{key}/{name}", recursive=False)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return manifest


@dataclass
class BundleImport:
    """What :func:`import_bundle` did: the bundle's manifest, the keys written to the store and
    the keys skipped because the store already held a valid entry."""

    manifest: dict
    imported: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def changed_run_keys(manifest: dict, configs: dict[str, dict]) -> dict[str, str]:
    """Runs of a bundle whose key this package computes differently: ``{bundle key: key now}``,
    from each run's stored configuration ``configs[key]`` (its ``config.json``). Derived entries
    (:data:`DERIVED_PREFIXES`) have no configuration and are not compared."""
    from mia_utils.config import RunConfig

    changed = {}
    for key in manifest["entries"]:
        if key.startswith(DERIVED_PREFIXES):
            continue
        try:
            now = RunConfig.from_dict(configs[key]).key()
        except Exception as error:  # a configuration this version cannot read has no matching key
            now = f"unreadable here ({type(error).__name__}: {error})"
        if now != key:
            changed[key] = now
    return changed


def import_bundle(store: ResultStore, path: str | os.PathLike, version: str | None = None) -> BundleImport:
    """Import the bundle at ``path`` (written by :func:`export_bundle`) into ``store``.

    Every file is unpacked into a staging folder inside ``store.runs`` and checked against the
    bundle's manifest (size and SHA-256; the gzip stream's CRC is checked to its end) and against
    its entry's own manifest before any entry enters the store. A tampered, truncated or
    malformed bundle raises :class:`BundleError` and imports nothing. A bundle made by another
    package ``version`` (default: this package's) is refused unless every run's key, computed
    again from its configuration, is unchanged; the error lists the keys that differ. Entries
    the store already holds (valid) are skipped; each other entry is renamed into place whole, so
    an interrupted import leaves whole entries and a staging folder that
    :meth:`ResultStore.remove_stale_staging` removes. Returns a :class:`BundleImport`."""
    import gzip
    import tarfile
    import zlib

    from mia_utils import __version__

    version = version or __version__
    path = Path(path)
    if not path.is_file():
        raise BundleError(f"bundle: {path} is not a file; allowed: a file written by `python -m mia_utils store export`")
    store.runs.mkdir(parents=True, exist_ok=True)
    staging = store.runs / f"{STAGING}import.{platform.node()}.{os.getpid()}.{uuid.uuid4().hex[:8]}"
    staged = ResultStore(staging)
    report = None
    try:
        with open(path, "rb") as raw, gzip.GzipFile(fileobj=raw) as stream:
            try:
                manifest, configs = _unpack_bundle(stream, staged.runs, path)
                while stream.read(1 << 20):  # to the end: gzip checks its CRC and length there
                    pass
            except (EOFError, OSError, zlib.error, tarfile.TarError) as error:
                raise BundleError(f"bundle: {path} is damaged or truncated ({type(error).__name__}: {error}); "
                                  "nothing was imported") from None
        bad = [key for key in manifest["entries"] if not staged.verify(key)]
        if bad:
            raise BundleError(f"bundle: {path}: the entries {', '.join(bad[:5])} do not match their own manifest; "
                              "nothing was imported")
        made_by = manifest.get("mia_utils")
        if made_by != version:
            changed = changed_run_keys(manifest, configs)
            if changed:
                listed = "; ".join(f"{old} -> {new}" for old, new in list(changed.items())[:10])
                raise BundleError(f"bundle: made by mia_utils {made_by}, this is {version}, and {len(changed)} of its "
                                  f"run keys differ here ({listed}{'; ...' if len(changed) > 10 else ''}); nothing "
                                  "was imported: export the bundle again with this version")
        report = BundleImport(manifest)
        for key in sorted(manifest["entries"]):
            if store.verify(key):
                report.skipped.append(key)
                continue
            if store.exists(key):
                store.discard(key)
            os.rename(staged.path(key), store.path(key))
            report.imported.append(key)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report


def _unpack_bundle(stream, runs: Path, path: Path) -> tuple[dict, dict[str, dict]]:
    """Unpack the tar ``stream`` of a bundle into ``runs/<key>/<file>``, checking every member
    against the manifest (its first member) as it is written. Returns the manifest and each
    run's configuration (its ``config.json``)."""
    import tarfile

    def refuse(reason: str):
        raise BundleError(f"bundle: {path}: {reason}; nothing was imported")

    manifest, configs, seen = None, {}, set()
    with tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if manifest is None:
                if member.name != BUNDLE_MANIFEST or not member.isfile():
                    refuse(f"its first member is {member.name!r}, not the manifest {BUNDLE_MANIFEST}")
                try:
                    manifest = json.loads(tar.extractfile(member).read())
                    entries = manifest["entries"]
                    if not isinstance(entries, dict):
                        raise TypeError("entries is not a mapping")
                except (ValueError, KeyError, TypeError) as error:
                    refuse(f"its manifest cannot be read ({error})")
                if manifest.get("format") != BUNDLE_FORMAT:
                    refuse(f"its layout is format {manifest.get('format')!r}; allowed: {BUNDLE_FORMAT}")
                continue
            parts = member.name.split("/")
            if (not member.isfile() or len(parts) != 3 or parts[0] != "runs" or parts[1] not in entries
                    or parts[2] not in entries[parts[1]] or member.name in seen):
                refuse(f"member {member.name!r} is not listed in its manifest")
            seen.add(member.name)
            expected = entries[parts[1]][parts[2]]
            target = runs / parts[1] / parts[2]
            target.parent.mkdir(parents=True, exist_ok=True)
            digest, size = hashlib.sha256(), 0
            source = tar.extractfile(member)
            with open(target, "wb") as out:
                for block in iter(lambda: source.read(1 << 20), b""):
                    digest.update(block)
                    size += len(block)
                    out.write(block)
                out.flush()
                os.fsync(out.fileno())
            if size != expected["bytes"] or digest.hexdigest() != expected["sha256"]:
                refuse(f"{member.name} does not match its hash in the manifest (tampered or damaged)")
            if parts[2] == "config.json":
                configs[parts[1]] = json.loads(target.read_text())
    if manifest is None:
        refuse("it is empty")
    absent = [f"runs/{key}/{name}" for key, files in manifest["entries"].items() for name in files
              if f"runs/{key}/{name}" not in seen]
    if absent:
        refuse(f"{len(absent)} listed files are missing (first: {absent[0]}); it is truncated")
    return manifest, configs
