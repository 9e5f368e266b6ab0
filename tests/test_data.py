"""Tests of mia_utils.data: dataset lookup and loading, error messages, membership splits.

Everything here runs without network access. Fashion-MNIST is read from Debian's
``dataset-fashion-mnist`` folder when it is installed (the test is skipped otherwise); every
other case uses tiny fake files written to ``tmp_path``: IDX files for Fashion-MNIST, and
pickled batches laid out exactly as torchvision's CIFAR10/CIFAR100 classes expect.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

import mia_utils.data as data
from mia_utils.data import (
    DATASETS,
    FMNIST_FILES,
    DataUnavailableError,
    load_cifar,
    load_dataset,
    load_fmnist,
    make_split,
    read_idx,
)

REAL_FMNIST = Path("/usr/share/datasets/fashion-mnist")


# --------------------------------------------------------------------------- helpers


def write_idx(path: Path, array: np.ndarray) -> Path:
    """Write ``array`` (uint8) as an IDX file; gzipped when ``path`` ends in ``.gz``."""
    array = np.ascontiguousarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(d).to_bytes(4, "big") for d in array.shape)
    payload = header + array.tobytes()
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        with gzip.open(path, "wb") as handle:
            handle.write(payload)
    else:
        path.write_bytes(payload)
    return path


def make_fake_fmnist(folder: Path, *, gz: bool = True, marker: int = 0, n_train: int = 6,
                     n_test: int = 4) -> Path:
    """A valid, tiny Fashion-MNIST folder. ``marker`` fills the first train pixel, so a test can
    tell which folder was loaded. Returns the folder."""
    suffix = ".gz" if gz else ""
    train_images = np.zeros((n_train, 28, 28), dtype=np.uint8)
    train_images[0, 0, 0] = marker
    train_images[-1, 27, 27] = 255
    test_images = np.full((n_test, 28, 28), 7, dtype=np.uint8)
    write_idx(folder / (FMNIST_FILES["train_images"] + suffix), train_images)
    write_idx(folder / (FMNIST_FILES["train_labels"] + suffix), np.arange(n_train) % 10)
    write_idx(folder / (FMNIST_FILES["test_images"] + suffix), test_images)
    write_idx(folder / (FMNIST_FILES["test_labels"] + suffix), (np.arange(n_test) + 3) % 10)
    return folder


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def write_pickle(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(obj, handle)
    return path


# torchvision opens the real (Python 2) CIFAR pickles with encoding="latin1", which turns their
# keys into str; it then reads entry["data"], entry["labels"] / entry["fine_labels"] and
# meta["label_names"] / meta["fine_label_names"]. A Python 3 pickle therefore needs str keys.


def make_fake_cifar10(root: Path, n_per_batch: int = 2, n_test: int = 3, seed: int = 0) -> dict:
    """Write cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta} under ``root``.
    Returns the raw arrays and the MD5 of each file."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    train_data, train_labels, md5s = [], [], {}
    for i in range(1, 6):
        batch = rng.integers(0, 256, size=(n_per_batch, 3072), dtype=np.uint8)
        labels = [int(x) for x in rng.integers(0, 10, size=n_per_batch)]
        name = f"data_batch_{i}"
        md5s[name] = md5(write_pickle(folder / name, {"batch_label": name, "data": batch, "labels": labels}))
        train_data.append(batch)
        train_labels += labels
    test_data = rng.integers(0, 256, size=(n_test, 3072), dtype=np.uint8)
    test_labels = [int(x) for x in rng.integers(0, 10, size=n_test)]
    md5s["test_batch"] = md5(write_pickle(folder / "test_batch", {"data": test_data, "labels": test_labels}))
    md5s["batches.meta"] = md5(write_pickle(
        folder / "batches.meta", {"label_names": [f"class{i}" for i in range(10)], "num_vis": 3072}))
    return {"train_data": np.vstack(train_data), "train_labels": train_labels,
            "test_data": test_data, "test_labels": test_labels, "md5": md5s, "folder": folder}


def make_fake_cifar100(root: Path, n_train: int = 4, n_test: int = 3, seed: int = 1) -> dict:
    """Write cifar-100-python/{train, test, meta} under ``root``."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    out = {"md5": {}, "folder": folder}
    for name, n in (("train", n_train), ("test", n_test)):
        pixels = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        fine = [int(x) for x in rng.integers(0, 100, size=n)]
        coarse = [x // 5 for x in fine]
        out["md5"][name] = md5(write_pickle(
            folder / name, {"data": pixels, "fine_labels": fine, "coarse_labels": coarse}))
        out[f"{name}_data"], out[f"{name}_labels"] = pixels, fine
    out["md5"]["meta"] = md5(write_pickle(
        folder / "meta", {"fine_label_names": [f"fine{i}" for i in range(100)],
                          "coarse_label_names": [f"coarse{i}" for i in range(20)]}))
    return out


def patch_cifar10_md5s(monkeypatch, md5s: dict) -> None:
    from torchvision.datasets import CIFAR10

    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", md5s[f"data_batch_{i}"]] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", md5s["test_batch"]]])
    monkeypatch.setattr(CIFAR10, "meta", {"filename": "batches.meta", "key": "label_names",
                                          "md5": md5s["batches.meta"]})


def patch_cifar100_md5s(monkeypatch, md5s: dict) -> None:
    from torchvision.datasets import CIFAR100

    monkeypatch.setattr(CIFAR100, "train_list", [["train", md5s["train"]]])
    monkeypatch.setattr(CIFAR100, "test_list", [["test", md5s["test"]]])
    monkeypatch.setattr(CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5s["meta"]})


@pytest.fixture
def no_download(monkeypatch):
    """Make torchvision's Fashion-MNIST download fail at once instead of touching the network."""
    from torchvision.datasets import FashionMNIST

    def refuse(self):
        raise RuntimeError("network disabled in tests")

    monkeypatch.setattr(FashionMNIST, "download", refuse)


@pytest.fixture
def places(tmp_path, monkeypatch):
    """Isolate every lookup place: empty Debian folder, empty cache, no MIA_DATA_DIR, empty
    per-process cache of load_dataset. Returns the folders, for the test to fill."""
    debian = tmp_path / "debian"
    cache = tmp_path / "cache"
    debian.mkdir()
    cache.mkdir()
    monkeypatch.setattr(data, "DEBIAN_FMNIST_DIR", debian)
    monkeypatch.setenv("MIA_CACHE_DIR", str(cache))
    monkeypatch.delenv("MIA_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_LOADED", {})
    return {"debian": debian, "cache": cache, "env": tmp_path / "env", "root": tmp_path / "root"}


# --------------------------------------------------------------------------- real Fashion-MNIST


@pytest.fixture(scope="module")
def real_fmnist():
    if not all((REAL_FMNIST / (stem + ".gz")).is_file() or (REAL_FMNIST / stem).is_file()
               for stem in FMNIST_FILES.values()):
        pytest.skip(f"Fashion-MNIST is not installed in {REAL_FMNIST} (apt-get install dataset-fashion-mnist)")
    return load_fmnist(REAL_FMNIST, download=False)


def test_real_fmnist_shapes_and_dtypes(real_fmnist):
    ds = real_fmnist
    assert ds.info is DATASETS["fmnist"]
    assert tuple(ds.train_images.shape) == (60_000, 1, 28, 28)
    assert tuple(ds.test_images.shape) == (10_000, 1, 28, 28)
    assert ds.train_images.dtype == ds.test_images.dtype == torch.uint8
    assert ds.train_labels.dtype == ds.test_labels.dtype == torch.int64
    assert tuple(ds.train_labels.shape) == (60_000,)
    assert tuple(ds.test_labels.shape) == (10_000,)
    for labels in (ds.train_labels, ds.test_labels):
        assert int(labels.min()) == 0 and int(labels.max()) == 9
    # not all-zero / garbage: real images use the full byte range
    assert int(ds.train_images.max()) == 255
    assert Path(ds.source) == REAL_FMNIST


def test_real_fmnist_is_balanced(real_fmnist):
    assert torch.bincount(real_fmnist.train_labels, minlength=10).tolist() == [6000] * 10
    assert torch.bincount(real_fmnist.test_labels, minlength=10).tolist() == [1000] * 10


def test_real_fmnist_found_in_debian_folder_by_default(real_fmnist, monkeypatch):
    # With no root and no MIA_DATA_DIR, the Debian folder is where it comes from.
    monkeypatch.setattr(data, "DEBIAN_FMNIST_DIR", REAL_FMNIST)
    monkeypatch.delenv("MIA_DATA_DIR", raising=False)
    monkeypatch.setattr(data, "_LOADED", {})
    ds = load_dataset("fmnist", download=False)
    assert Path(ds.source) == REAL_FMNIST
    assert torch.equal(ds.test_labels, real_fmnist.test_labels)  # integers read from disk


# --------------------------------------------------------------------------- IDX reading


@pytest.mark.parametrize("gz", [True, False])
def test_read_idx_round_trip(tmp_path, gz):
    array = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    path = write_idx(tmp_path / ("x.idx" + (".gz" if gz else "")), array)
    out = read_idx(path)
    assert out.dtype == np.uint8
    assert out.shape == (2, 3, 5)
    assert np.array_equal(out, array)  # uint8 round trip


@pytest.mark.parametrize("gz", [True, False])
def test_truncated_idx_raises_clear_error(tmp_path, gz):
    path = tmp_path / ("train-images-idx3-ubyte" + (".gz" if gz else ""))
    write_idx(path, np.zeros((3, 28, 28), dtype=np.uint8))
    raw = gzip.decompress(path.read_bytes()) if gz else path.read_bytes()
    cut = raw[:-100]
    path.write_bytes(gzip.compress(cut) if gz else cut)
    with pytest.raises(ValueError, match="truncated") as info:
        read_idx(path)
    message = str(info.value)
    assert str(path) in message
    assert str(3 * 28 * 28) in message and str(3 * 28 * 28 - 100) in message


def test_truncated_idx_in_a_data_folder_fails_loudly(places):
    folder = make_fake_fmnist(places["root"], gz=False)
    path = folder / FMNIST_FILES["test_images"]
    path.write_bytes(path.read_bytes()[:-1])
    with pytest.raises(ValueError, match="truncated"):
        load_fmnist(folder, download=False)


def test_non_idx_file_is_rejected(tmp_path):
    path = tmp_path / "bogus"
    path.write_bytes(b"PK\x03\x04 this is a zip, not IDX")
    with pytest.raises(ValueError, match="not an unsigned-byte IDX file"):
        read_idx(path)


# --------------------------------------------------------------------------- lookup order


@pytest.mark.parametrize("gz", [True, False])
def test_fake_fmnist_loads(places, gz):
    folder = make_fake_fmnist(places["root"], gz=gz, marker=11)
    ds = load_fmnist(folder, download=False)
    assert Path(ds.source) == folder
    assert tuple(ds.train_images.shape) == (6, 1, 28, 28)
    assert tuple(ds.test_images.shape) == (4, 1, 28, 28)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert ds.train_labels.tolist() == [0, 1, 2, 3, 4, 5]
    assert ds.test_labels.tolist() == [3, 4, 5, 6]
    assert int(ds.train_images[0, 0, 0, 0]) == 11
    assert int(ds.train_images[-1, 0, 27, 27]) == 255
    assert bool((ds.test_images == 7).all())


def test_torchvision_layout_is_found(places):
    make_fake_fmnist(places["root"] / "FashionMNIST" / "raw", marker=5)
    ds = load_fmnist(places["root"], download=False)
    assert Path(ds.source) == places["root"] / "FashionMNIST" / "raw"
    assert int(ds.train_images[0, 0, 0, 0]) == 5


def test_explicit_root_beats_env_and_debian(places, monkeypatch):
    make_fake_fmnist(places["root"], marker=1)
    make_fake_fmnist(places["env"], marker=2)
    make_fake_fmnist(places["debian"], marker=3)
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    ds = load_fmnist(places["root"], download=False)
    assert Path(ds.source) == places["root"]
    assert int(ds.train_images[0, 0, 0, 0]) == 1


def test_env_beats_debian(places, monkeypatch):
    make_fake_fmnist(places["env"], marker=2, gz=False)
    make_fake_fmnist(places["debian"], marker=3)
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    ds = load_fmnist(download=False)
    assert Path(ds.source) == places["env"]
    assert int(ds.train_images[0, 0, 0, 0]) == 2


def test_env_in_torchvision_layout_beats_debian(places, monkeypatch):
    make_fake_fmnist(places["env"] / "FashionMNIST" / "raw", marker=2)
    make_fake_fmnist(places["debian"], marker=3)
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    ds = load_fmnist(download=False)
    assert Path(ds.source) == places["env"] / "FashionMNIST" / "raw"


def test_debian_folder_used_last_before_cache(places):
    make_fake_fmnist(places["debian"], marker=3)
    make_fake_fmnist(places["cache"] / "FashionMNIST" / "raw", marker=4)
    ds = load_fmnist(download=False)
    assert Path(ds.source) == places["debian"]
    assert int(ds.train_images[0, 0, 0, 0]) == 3


def test_cache_folder_is_searched(places):
    make_fake_fmnist(places["cache"] / "FashionMNIST" / "raw", marker=4)
    ds = load_fmnist(download=False)
    assert Path(ds.source) == places["cache"] / "FashionMNIST" / "raw"


def test_incomplete_folder_is_skipped(places, monkeypatch):
    # root lacks one of the four files: the lookup moves on to MIA_DATA_DIR.
    make_fake_fmnist(places["root"], marker=1)
    (places["root"] / (FMNIST_FILES["test_labels"] + ".gz")).unlink()
    make_fake_fmnist(places["env"], marker=2)
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    ds = load_fmnist(places["root"], download=False)
    assert Path(ds.source) == places["env"]


def test_empty_env_var_is_ignored(places, monkeypatch):
    monkeypatch.setenv("MIA_DATA_DIR", "")
    make_fake_fmnist(places["debian"], marker=3)
    assert data.fmnist_search_path() == [places["debian"], places["cache"]]
    assert Path(load_fmnist(download=False).source) == places["debian"]


def test_search_path_order(places, monkeypatch):
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    assert data.fmnist_search_path(places["root"]) == [
        places["root"], places["env"], places["debian"], places["cache"]]


def test_load_dataset_caches_per_process(places, monkeypatch):
    make_fake_fmnist(places["env"], marker=2)
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    first = load_dataset("fmnist", download=False)
    assert load_dataset("fmnist", download=False) is first
    assert len(data._LOADED) == 1
    # a different MIA_DATA_DIR is a different cache entry
    other = make_fake_fmnist(places["root"], marker=9)
    monkeypatch.setenv("MIA_DATA_DIR", str(other))
    second = load_dataset("fmnist", download=False)
    assert second is not first and int(second.train_images[0, 0, 0, 0]) == 9


def test_download_fallback_goes_to_cache(places, monkeypatch):
    """When nothing is local, torchvision's download is tried and its result (in the cache
    folder's FashionMNIST/raw) is loaded. The 'download' writes fake files, no network."""
    from torchvision.datasets import FashionMNIST

    calls = []

    def fake_download(self):
        calls.append(self.root)
        make_fake_fmnist(Path(self.raw_folder), gz=False, marker=42)

    monkeypatch.setattr(FashionMNIST, "download", fake_download)
    ds = load_fmnist(download=True)
    assert calls and Path(calls[0]) == places["cache"]
    assert Path(ds.source) == places["cache"] / "FashionMNIST" / "raw"
    assert int(ds.train_images[0, 0, 0, 0]) == 42


# --------------------------------------------------------------------------- missing data


def _assert_helpful(message: str, searched: list[Path]) -> None:
    for place in searched:
        assert str(place) in message, f"{place} is not named in:\n{message}"
    assert "apt-get install dataset-fashion-mnist" in message
    assert "MIA_DATA_DIR" in message


def test_missing_fmnist_with_failing_download(places, monkeypatch, no_download):
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    with pytest.raises(DataUnavailableError) as info:
        load_fmnist(places["root"], download=True)
    message = str(info.value)
    _assert_helpful(message, [places["root"], places["env"], places["debian"], places["cache"]])
    assert "network disabled in tests" in message  # the download's own error is reported


def test_missing_fmnist_without_download(places):
    with pytest.raises(DataUnavailableError) as info:
        load_fmnist(download=False)
    message = str(info.value)
    _assert_helpful(message, [places["debian"], places["cache"]])
    assert "download=False" in message


def test_missing_fmnist_through_load_dataset(places, no_download):
    with pytest.raises(DataUnavailableError):
        load_dataset("fmnist")
    assert data._LOADED == {}  # failures are not cached
    assert data.dataset_available("fmnist") is False
    make_fake_fmnist(places["debian"])
    assert data.dataset_available("fmnist") is True


def test_data_unavailable_is_a_runtime_error():
    assert issubclass(DataUnavailableError, RuntimeError)


# --------------------------------------------------------------------------- CIFAR through torchvision


def test_cifar10_fake_files_load(tmp_path, places, monkeypatch):
    fake = make_fake_cifar10(tmp_path / "cifar")
    patch_cifar10_md5s(monkeypatch, fake["md5"])
    ds = load_cifar("cifar10", root=tmp_path / "cifar", download=False)
    assert ds.info is DATASETS["cifar10"]
    assert tuple(ds.train_images.shape) == (10, 3, 32, 32)
    assert tuple(ds.test_images.shape) == (3, 3, 32, 32)
    assert ds.train_images.dtype == ds.test_images.dtype == torch.uint8
    assert ds.train_labels.dtype == ds.test_labels.dtype == torch.int64
    assert ds.train_labels.tolist() == fake["train_labels"]
    assert ds.test_labels.tolist() == fake["test_labels"]
    assert ds.train_images.is_contiguous()
    # CIFAR rows are channel-major: 1024 red, 1024 green, 1024 blue, each row-major 32x32.
    # torchvision makes (N, 32, 32, 3); mia_utils must give back (N, 3, 32, 32).
    n, c, h, w = 7, 2, 5, 30
    assert int(ds.train_images[n, c, h, w]) == int(fake["train_data"][n, c * 1024 + h * 32 + w])
    # bitwise on any CPU: uint8 copies
    assert torch.equal(ds.train_images, torch.from_numpy(fake["train_data"].reshape(-1, 3, 32, 32)))
    assert torch.equal(ds.test_images, torch.from_numpy(fake["test_data"].reshape(-1, 3, 32, 32)))
    assert Path(ds.source) == tmp_path / "cifar"


def test_cifar100_fake_files_load(tmp_path, places, monkeypatch):
    fake = make_fake_cifar100(tmp_path / "cifar")
    patch_cifar100_md5s(monkeypatch, fake["md5"])
    ds = load_cifar("cifar100", root=tmp_path / "cifar", download=False)
    assert ds.info is DATASETS["cifar100"] and ds.info.num_classes == 100
    assert tuple(ds.train_images.shape) == (4, 3, 32, 32)
    assert tuple(ds.test_images.shape) == (3, 3, 32, 32)
    assert ds.train_images.dtype == torch.uint8 and ds.train_labels.dtype == torch.int64
    assert ds.train_labels.tolist() == fake["train_labels"]  # fine labels, not coarse
    assert ds.test_labels.tolist() == fake["test_labels"]
    n, c, h, w = 3, 1, 31, 0
    assert int(ds.train_images[n, c, h, w]) == int(fake["train_data"][n, c * 1024 + h * 32 + w])
    assert torch.equal(ds.test_images, torch.from_numpy(fake["test_data"].reshape(-1, 3, 32, 32)))


def test_cifar_found_through_mia_data_dir_and_load_dataset(tmp_path, places, monkeypatch):
    fake = make_fake_cifar10(places["env"])
    patch_cifar10_md5s(monkeypatch, fake["md5"])
    monkeypatch.setenv("MIA_DATA_DIR", str(places["env"]))
    ds = load_dataset("cifar10", download=False)
    assert Path(ds.source) == places["env"]
    assert ds.train_labels.tolist() == fake["train_labels"]
    assert load_dataset("cifar10", download=False) is ds


def test_cifar10_wrong_md5_is_unavailable(tmp_path, places):
    # Fake files, but torchvision's real MD5s are left in place: the check must fail.
    fake = make_fake_cifar10(tmp_path / "cifar")
    with pytest.raises(DataUnavailableError) as info:
        load_cifar("cifar10", root=tmp_path / "cifar", download=False)
    message = str(info.value)
    assert str(fake["folder"]) in message
    assert "CIFAR-10" in message
    assert "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz" in message
    assert "MIA_DATA_DIR" in message and "root=" in message
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "corrupted" in message  # torchvision's checksum complaint is passed on


def test_cifar100_wrong_md5_is_unavailable(tmp_path, places, monkeypatch):
    # only the meta file has a bad checksum
    fake = make_fake_cifar100(tmp_path / "cifar")
    patch_cifar100_md5s(monkeypatch, {**fake["md5"], "meta": "0" * 32})
    with pytest.raises(DataUnavailableError) as info:
        load_cifar("cifar100", root=tmp_path / "cifar", download=False)
    message = str(info.value)
    assert str(fake["folder"]) in message and "CIFAR-100" in message
    assert "cifar-100-python" in message and "MIA_DATA_DIR" in message


def test_cifar_missing_folder_is_unavailable(tmp_path, places):
    with pytest.raises(DataUnavailableError) as info:
        load_cifar("cifar10", root=tmp_path / "nothing", download=False)
    assert str(tmp_path / "nothing" / "cifar-10-batches-py") in str(info.value)
    assert data.dataset_available("cifar100", root=tmp_path / "nothing") is False


# --------------------------------------------------------------------------- load_dataset names


def test_load_dataset_unknown_name():
    with pytest.raises(ValueError, match="dataset") as info:
        load_dataset("nope")
    assert "nope" in str(info.value)
    for name in DATASETS:
        assert name in str(info.value)


def test_dataset_infos():
    assert DATASETS["fmnist"].shape == (1, 28, 28) and DATASETS["fmnist"].num_classes == 10
    assert DATASETS["cifar10"].shape == (3, 32, 32) and DATASETS["cifar10"].num_classes == 10
    assert DATASETS["cifar100"].shape == (3, 32, 32) and DATASETS["cifar100"].num_classes == 100
    assert (DATASETS["fmnist"].n_train, DATASETS["fmnist"].n_test) == (60_000, 10_000)
    assert (DATASETS["cifar10"].n_train, DATASETS["cifar100"].n_test) == (50_000, 10_000)


def test_image_dataset_validates_shapes():
    info = DATASETS["fmnist"]
    good_x, good_y = torch.zeros(2, 1, 28, 28, dtype=torch.uint8), torch.zeros(2, dtype=torch.long)
    data.ImageDataset(info, good_x, good_y, good_x, good_y, source="x")
    with pytest.raises(ValueError, match="uint8"):
        data.ImageDataset(info, good_x.float(), good_y, good_x, good_y, source="x")
    with pytest.raises(ValueError, match="shape"):
        data.ImageDataset(info, torch.zeros(2, 3, 28, 28, dtype=torch.uint8), good_y, good_x, good_y, "x")
    with pytest.raises(ValueError, match="labels"):
        data.ImageDataset(info, good_x, good_y, good_x, torch.zeros(3, dtype=torch.long), source="x")


def test_to_unit_float():
    x = torch.tensor([[[[0, 128, 255]]]], dtype=torch.uint8)
    y = data.to_unit_float(x)
    assert y.dtype == torch.float32
    assert torch.allclose(y, torch.tensor([[[[0.0, 128 / 255, 1.0]]]]))
    assert x.dtype == torch.uint8  # input untouched


# --------------------------------------------------------------------------- make_split


FM = DATASETS["fmnist"]


# Splits are integer indices from seeded draws: torch.equal on them is bitwise on any CPU.
def _split_tensors(split):
    return (split.members, split.eval_members, split.eval_nonmembers, split.adv_members, split.adv_nonmembers)


def test_split_is_seeded():
    a = make_split(FM, 500, 100, 50, seed=3)
    b = make_split(FM, 500, 100, 50, seed=3)
    c = make_split(FM, 500, 100, 50, seed=4)
    for x, y in zip(_split_tensors(a), _split_tensors(b)):
        assert torch.equal(x, y)
    for x, z in zip(_split_tensors(a), _split_tensors(c)):
        assert not torch.equal(x, z)


@pytest.mark.parametrize("info,n_members,n_eval,n_adv", [
    (DATASETS["fmnist"], 500, 100, 50),
    (DATASETS["fmnist"], 60_000, 5_000, 5_000),  # every training image a member
    (DATASETS["cifar10"], 1_000, 1_000, 0),       # n_eval + n_adv == n_members
    (DATASETS["cifar100"], 10, 0, 0),
])
def test_split_sizes_and_disjointness(info, n_members, n_eval, n_adv):
    s = make_split(info, n_members, n_eval, n_adv, seed=0)
    for t in _split_tensors(s):
        assert t.dtype == torch.int64 and t.dim() == 1
    assert len(s.members) == n_members
    assert len(s.eval_members) == len(s.eval_nonmembers) == n_eval
    assert len(s.adv_members) == len(s.adv_nonmembers) == n_adv
    members = set(s.members.tolist())
    assert len(members) == n_members  # no repeats
    assert torch.equal(s.members, s.members.sort().values)
    eval_m, adv_m = set(s.eval_members.tolist()), set(s.adv_members.tolist())
    eval_n, adv_n = set(s.eval_nonmembers.tolist()), set(s.adv_nonmembers.tolist())
    assert len(eval_m) == n_eval and len(adv_m) == n_adv and len(eval_n) == n_eval and len(adv_n) == n_adv
    assert eval_m <= members and adv_m <= members
    assert not eval_m & adv_m
    assert not eval_n & adv_n
    for t in (s.members, s.eval_members, s.adv_members):
        assert t.numel() == 0 or (0 <= int(t.min()) and int(t.max()) < info.n_train)
    for t in (s.eval_nonmembers, s.adv_nonmembers):
        assert t.numel() == 0 or (0 <= int(t.min()) and int(t.max()) < info.n_test)


@pytest.mark.parametrize("kwargs,param", [
    (dict(n_members=0, n_eval=0, n_adversary=0), "n_members"),
    (dict(n_members=60_001, n_eval=10, n_adversary=10), "n_members"),
    (dict(n_members=100, n_eval=60, n_adversary=41), "n_eval + n_adversary"),
    (dict(n_members=50_000, n_eval=6_000, n_adversary=5_000), "n_eval + n_adversary"),
    (dict(n_members=100, n_eval=-1, n_adversary=5), "n_eval"),
    (dict(n_members=100, n_eval=5, n_adversary=-1), "n_adversary"),
])
def test_split_bad_sizes(kwargs, param):
    with pytest.raises(ValueError) as info:
        make_split(FM, seed=0, **kwargs)
    assert param in str(info.value)


def test_split_for_is_make_split_computed_once():
    from mia_utils.config import RunConfig
    from mia_utils.data import DATASETS, make_split, split_for

    config = RunConfig(n_members=200, n_eval=50, n_adversary=50, split_seed=3)
    info = DATASETS[config.dataset]
    first = split_for(config, info)
    assert split_for(config.replace(seed=9, epochs=1), info) is first  # training settings do not matter
    expected = make_split(info, 200, 50, 50, 3)
    for field in ("members", "eval_members", "eval_nonmembers", "adv_members", "adv_nonmembers"):
        assert torch.equal(getattr(first, field), getattr(expected, field))
    assert split_for(config.replace(split_seed=4), info) is not first
