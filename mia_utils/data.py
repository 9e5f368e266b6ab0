"""Datasets as in-memory uint8 tensors, and seeded membership splits.

Images are ``uint8`` tensors of shape ``(N, C, H, W)`` (values 0-255), labels ``int64`` of
shape ``(N,)``. Models take float inputs in [0, 1]: see :func:`to_unit_float`.

Fashion-MNIST is looked up, in order, in an explicit ``root``, ``$MIA_DATA_DIR``,
``/usr/share/datasets/fashion-mnist`` (Debian's ``dataset-fashion-mnist``), and finally
downloaded by torchvision into a cache folder (``$MIA_CACHE_DIR``, default
``~/.cache/mia_utils``). CIFAR-10/100 come through torchvision, which checks the MD5 of
every file.
"""

from __future__ import annotations

import functools
import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

DEBIAN_FMNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FMNIST_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class DatasetInfo:
    """Static facts about a dataset: image shape (C, H, W) and class count."""

    name: str
    title: str
    shape: tuple[int, int, int]
    num_classes: int
    n_train: int
    n_test: int


DATASETS: dict[str, DatasetInfo] = {
    "fmnist": DatasetInfo("fmnist", "Fashion-MNIST", (1, 28, 28), 10, 60_000, 10_000),
    "cifar10": DatasetInfo("cifar10", "CIFAR-10", (3, 32, 32), 10, 50_000, 10_000),
    "cifar100": DatasetInfo("cifar100", "CIFAR-100", (3, 32, 32), 100, 50_000, 10_000),
}


class DataUnavailableError(RuntimeError):
    """A dataset could not be found locally nor fetched; the message says where we looked."""


@dataclass(frozen=True)
class ImageDataset:
    """A dataset held in memory. Images uint8 (N, C, H, W); labels int64 (N,)."""

    info: DatasetInfo
    train_images: torch.Tensor
    train_labels: torch.Tensor
    test_images: torch.Tensor
    test_labels: torch.Tensor
    source: str

    def __post_init__(self):
        for split in ("train", "test"):
            images, labels = getattr(self, f"{split}_images"), getattr(self, f"{split}_labels")
            if images.dtype != torch.uint8 or images.shape[1:] != self.info.shape:
                raise ValueError(
                    f"{self.info.name} {split} images must be uint8 of shape (N, "
                    f"{', '.join(map(str, self.info.shape))}); got {images.dtype} {tuple(images.shape)}"
                )
            if labels.shape != (images.shape[0],):
                raise ValueError(f"{self.info.name} {split} labels do not match the images")


def gather(data: "ImageDataset", global_indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Images and labels at global indices: ``i < n_train`` is training image ``i``, larger
    values are test image ``i - n_train``. Returns uint8 (N, C, H, W) and int64 (N,)."""
    n_train = data.train_images.shape[0]
    in_train = global_indices < n_train
    images = torch.empty((len(global_indices), *data.info.shape), dtype=torch.uint8)
    labels = torch.empty(len(global_indices), dtype=torch.long)
    images[in_train] = data.train_images[global_indices[in_train]]
    labels[in_train] = data.train_labels[global_indices[in_train]]
    images[~in_train] = data.test_images[global_indices[~in_train] - n_train]
    labels[~in_train] = data.test_labels[global_indices[~in_train] - n_train]
    return images, labels


def default_cache_dir() -> Path:
    """Where torchvision downloads go: ``$MIA_CACHE_DIR`` or ``~/.cache/mia_utils``."""
    return Path(os.environ.get("MIA_CACHE_DIR", Path.home() / ".cache" / "mia_utils"))


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (optionally gzipped) into a numpy array of its stored shape."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        raw = handle.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError(f"{path} is not an unsigned-byte IDX file")
    ndim = raw[3]
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    data = np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(dims)):
        raise ValueError(f"{path} is truncated: expected {int(np.prod(dims))} bytes of data, found {data.size}")
    return data.reshape(dims)


def _find_idx_file(folder: Path, stem: str) -> Path | None:
    for sub in (folder, folder / "FashionMNIST" / "raw"):
        for name in (stem, stem + ".gz"):
            if (sub / name).is_file():
                return sub / name
    return None


def _fmnist_from_folder(folder: Path) -> ImageDataset | None:
    files = {key: _find_idx_file(folder, stem) for key, stem in FMNIST_FILES.items()}
    if any(path is None for path in files.values()):
        return None
    arrays = {key: torch.from_numpy(read_idx(path).copy()) for key, path in files.items()}
    return ImageDataset(
        info=DATASETS["fmnist"],
        train_images=arrays["train_images"].unsqueeze(1),
        train_labels=arrays["train_labels"].long(),
        test_images=arrays["test_images"].unsqueeze(1),
        test_labels=arrays["test_labels"].long(),
        source=str(files["train_images"].parent),
    )


def fmnist_search_path(root: str | os.PathLike | None = None) -> list[Path]:
    """The local folders searched for Fashion-MNIST, in order."""
    places = []
    if root is not None:
        places.append(Path(root))
    if os.environ.get("MIA_DATA_DIR"):
        places.append(Path(os.environ["MIA_DATA_DIR"]))
    places.append(DEBIAN_FMNIST_DIR)
    places.append(default_cache_dir())
    return places


def load_fmnist(root: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """Fashion-MNIST: 60,000 train and 10,000 test images, (1, 28, 28) uint8."""
    places = fmnist_search_path(root)
    for folder in places:
        found = _fmnist_from_folder(folder)
        if found is not None:
            return found
    download_error = "download=False"
    if download:
        try:
            from torchvision.datasets import FashionMNIST

            for train in (True, False):
                FashionMNIST(str(default_cache_dir()), train=train, download=True)
            found = _fmnist_from_folder(default_cache_dir())
            if found is not None:
                return found
            download_error = "torchvision reported success but the files are missing"
        except Exception as error:  # network errors come in many types
            download_error = f"{type(error).__name__}: {error}"
    raise DataUnavailableError(
        "Fashion-MNIST was not found. Looked for the four IDX files "
        f"({', '.join(FMNIST_FILES.values())}, optionally .gz, directly or under FashionMNIST/raw/) in:\n"
        + "".join(f"  - {place}\n" for place in places)
        + f"and torchvision's download into {default_cache_dir()} failed ({download_error}).\n"
        "To get it: `apt-get install dataset-fashion-mnist` (Debian), or set MIA_DATA_DIR to a folder "
        "holding the files, or allow network access for torchvision's download."
    )


def load_cifar(name: str, root: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """CIFAR-10 or CIFAR-100 through torchvision (MD5-checked), as (3, 32, 32) uint8."""
    from torchvision.datasets import CIFAR10, CIFAR100

    dataset_class = {"cifar10": CIFAR10, "cifar100": CIFAR100}[name]
    folder = Path(root) if root is not None else Path(os.environ.get("MIA_DATA_DIR") or default_cache_dir())
    try:
        splits = [dataset_class(str(folder), train=train, download=download) for train in (True, False)]
    except Exception as error:
        raise DataUnavailableError(
            f"{DATASETS[name].title} was not found or failed its checksum in {folder / dataset_class.base_folder} "
            f"({type(error).__name__}: {error}).\n"
            f"To get it: run with network access (torchvision downloads {dataset_class.url}), or put "
            f"the extracted '{dataset_class.base_folder}' folder under {folder} "
            "(pass root=, or set MIA_DATA_DIR)."
        ) from error

    def as_tensors(split):
        images = torch.from_numpy(np.ascontiguousarray(split.data)).permute(0, 3, 1, 2).contiguous()
        return images, torch.as_tensor(split.targets, dtype=torch.long)

    (train_x, train_y), (test_x, test_y) = map(as_tensors, splits)
    return ImageDataset(DATASETS[name], train_x, train_y, test_x, test_y, source=str(folder))


def load_dataset(name: str, root: str | os.PathLike | None = None, download: bool = True) -> ImageDataset:
    """Load ``fmnist``, ``cifar10`` or ``cifar100`` into memory (cached per process)."""
    if name not in DATASETS:
        raise ValueError(f"dataset: unknown dataset {name!r}; allowed: {', '.join(DATASETS)}")
    key = (name, str(root), download, os.environ.get("MIA_DATA_DIR"))
    if key not in _LOADED:
        _LOADED[key] = load_fmnist(root, download) if name == "fmnist" else load_cifar(name, root, download)
    return _LOADED[key]


_LOADED: dict[tuple, ImageDataset] = {}


def dataset_available(name: str, root: str | os.PathLike | None = None) -> bool:
    """True when ``name`` can be loaded without any network access."""
    try:
        load_dataset(name, root, download=False)
        return True
    except DataUnavailableError:
        return False


def to_unit_float(images: torch.Tensor) -> torch.Tensor:
    """uint8 images (N, C, H, W) -> float32 in [0, 1]."""
    return images.to(torch.float32).div_(255.0)


@dataclass(frozen=True)
class MembershipSplit:
    """Index sets of one target model, drawn from a seed.

    ``members``: training-set indices the target trains on. ``eval_members`` (a subset of
    members) and ``eval_nonmembers`` (test-set indices) form the balanced evaluation set.
    ``adv_members`` / ``adv_nonmembers``: the adversary's own labelled samples, disjoint from
    the evaluation set. All are int64 tensors of indices.
    """

    members: torch.Tensor
    eval_members: torch.Tensor
    eval_nonmembers: torch.Tensor
    adv_members: torch.Tensor
    adv_nonmembers: torch.Tensor


def make_split(
    info: DatasetInfo, n_members: int, n_eval: int, n_adversary: int, seed: int
) -> MembershipSplit:
    """Draw a membership split.

    ``n_members`` training images become members. ``n_eval`` members and ``n_eval`` test
    images form the evaluation set; ``n_adversary`` further members and ``n_adversary``
    further test images form the adversary's labelled set.

    Args:
        info: the dataset's :class:`DatasetInfo` (its ``n_train`` and ``n_test`` image counts).
        n_members: training images that become members (int, 1..``info.n_train``).
        n_eval: members and test images per side of the evaluation set (int >= 0).
        n_adversary: members and test images per side of the adversary's set (int >= 0;
            ``n_eval + n_adversary`` at most ``n_members`` and ``info.n_test``).
        seed: seed of the CPU generator the split is drawn with (int).
    """
    if not 1 <= n_members <= info.n_train:
        raise ValueError(f"n_members: {n_members} is out of range; allowed 1..{info.n_train} for {info.name}")
    for name, value in (("n_eval", n_eval), ("n_adversary", n_adversary)):
        if value < 0:
            raise ValueError(f"{name}: must be >= 0, got {value}")
    if n_eval + n_adversary > n_members:
        raise ValueError(
            f"n_eval + n_adversary: {n_eval} + {n_adversary} exceeds n_members={n_members}; "
            "both sets are drawn from the members"
        )
    if n_eval + n_adversary > info.n_test:
        raise ValueError(
            f"n_eval + n_adversary: {n_eval} + {n_adversary} exceeds the {info.n_test} test images of {info.name}"
        )
    generator = torch.Generator().manual_seed(seed)
    members = torch.randperm(info.n_train, generator=generator)[:n_members]
    test_order = torch.randperm(info.n_test, generator=generator)
    member_order = members[torch.randperm(n_members, generator=generator)]
    return MembershipSplit(
        members=members.sort().values,
        eval_members=member_order[:n_eval],
        eval_nonmembers=test_order[:n_eval],
        adv_members=member_order[n_eval: n_eval + n_adversary],
        adv_nonmembers=test_order[n_eval: n_eval + n_adversary],
    )


def evaluation_indices(info: DatasetInfo, split: MembershipSplit) -> torch.Tensor:
    """Global indices (see :func:`gather`) of the evaluation set, members first."""
    return torch.cat([split.eval_members, info.n_train + split.eval_nonmembers])


def lira_pool(info: DatasetInfo, split: MembershipSplit, seed: int) -> torch.Tensor:
    """The population pool LiRA's shadow models train on, as global indices.

    It holds the whole evaluation set (so that every evaluated example is IN for half of the
    shadow models) plus other images of the training and test sets drawn with ``seed``, up to
    twice the number of members, so that each shadow model trains on about as many images as
    the target. The adversary's own labelled samples are left out.
    """
    n_members = len(split.members)
    evaluation = evaluation_indices(info, split)
    excluded = torch.zeros(info.n_train + info.n_test, dtype=torch.bool)
    excluded[evaluation] = True
    excluded[split.adv_members] = True
    excluded[info.n_train + split.adv_nonmembers] = True
    others = torch.nonzero(~excluded).squeeze(1)
    others = others[torch.randperm(len(others), generator=torch.Generator().manual_seed(seed))]
    size = min(2 * n_members, len(evaluation) + len(others))
    return torch.cat([evaluation, others[: max(0, size - len(evaluation))]])


def shadow_in_masks(pool_size: int, shadow_count: int, seed: int) -> torch.Tensor:
    """Bool (shadow_count, pool_size): which pool examples each shadow model trains on.

    Every example is IN for exactly half of the shadow models (Carlini et al. 2022), and each
    shadow model trains on half of the pool. ``shadow_count`` must be even.
    """
    if shadow_count < 2 or shadow_count % 2:
        raise ValueError(f"shadow_count: must be an even number >= 2, got {shadow_count}")
    noise = torch.rand(shadow_count, pool_size, generator=torch.Generator().manual_seed(seed))
    ranks = noise.argsort(dim=0).argsort(dim=0)
    return ranks < shadow_count // 2


def split_for(config, info: DatasetInfo) -> MembershipSplit:
    """The membership split of a :class:`~mia_utils.config.RunConfig` (its sizes and
    ``split_seed``) on the dataset ``info``: :func:`make_split`, computed once per distinct split
    and shared afterwards (treat it as read-only)."""
    return _cached_split(info, config.n_members, config.n_eval, config.n_adversary, config.split_seed)


def same_split(a, b) -> bool:
    """Whether configurations ``a`` and ``b`` draw the same membership split (the fields
    :func:`split_for` reads), so that their runs score the same evaluation samples."""
    fields = ("dataset", "n_members", "n_eval", "n_adversary", "split_seed")
    return all(getattr(a, name) == getattr(b, name) for name in fields)


@functools.lru_cache(maxsize=64)
def _cached_split(info: DatasetInfo, n_members: int, n_eval: int, n_adversary: int, seed: int) -> MembershipSplit:
    return make_split(info, n_members, n_eval, n_adversary, seed)


def training_indices(config, info: DatasetInfo, split: MembershipSplit) -> torch.Tensor:
    """Global indices (see :func:`mia_utils.data.gather`) of the images ``config`` trains on:
    the target's members, or a shadow model's half of the LiRA population pool. ``config``: a
    :class:`~mia_utils.config.RunConfig`; ``info``: the dataset's :class:`DatasetInfo` (no
    images are needed); ``split``: :func:`split_for` of the two."""
    if not config.is_shadow:
        return split.members
    pool = lira_pool(info, split, seed=config.split_seed)
    masks = shadow_in_masks(len(pool), config.shadow_count, seed=config.split_seed)
    return pool[masks[config.shadow_index]].sort().values
