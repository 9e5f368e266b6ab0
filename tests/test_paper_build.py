"""The ``paper`` profile end to end, without training: every chapter's runs and data splits.

The book's plan for ``paper`` (:func:`mia_utils.book.plan.book_plan`) lists every run the chapters
train. For each of them this builds what its training would use, and checks it: the configuration
validates, the membership split has the sizes the setup page states and its sets are disjoint
where they must be, a LiRA shadow model's images lie in the population pool and outside the
adversary's set, a run with the MMD regularizer can draw its validation set, and chapter 08
finds its out-of-distribution sources and calibration images, until it asks for its first model.

The data are the real Fashion-MNIST (skipped where it is not installed) and fake CIFAR-10/100
files of the real sizes, laid out as torchvision expects (``tests/test_data.py`` writes them), in
one folder named by ``MIA_DATA_DIR``: every chapter's parameter check finds all three offline, and
:func:`mia_utils.data.load_dataset` loads them, as on a machine that has them. Nothing is trained.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest
import torch

import mia_utils.data as data
from mia_utils import experiment
from mia_utils.attacks import ood
from mia_utils.book import ood_scores, replicated
from mia_utils.defenses import mmd
from mia_utils.book.chapters import primer_config, validate
from mia_utils.book.chapters import toc_chapters
from mia_utils.config import RunConfig
from mia_utils.data import (DATASETS, DataUnavailableError, FMNIST_FILES, _find_idx_file, dataset_available, gather,
                            lira_pool, load_dataset, make_split)
from mia_utils.book.plan import book_plan
from mia_utils.book.profiles import get_profile
from mia_utils.data import training_indices
from test_data import make_fake_cifar10, make_fake_cifar100, patch_cifar10_md5s, patch_cifar100_md5s

SETUP = Path(__file__).resolve().parent.parent / "book" / "setup.md"
PROFILE = get_profile("paper")


def setup_page_sizes() -> dict[str, tuple[int, int, int]]:
    """The ``paper`` rows of the setup page's profile table: members, evaluation and adversary
    set per side, by dataset."""
    rows = re.findall(r"^\| `paper` \| `(\w+)` \| ([\d,]+) \| ([\d,]+) \| ([\d,]+) \|", SETUP.read_text(), re.M)
    return {dataset: tuple(int(n.replace(",", "")) for n in sizes) for dataset, *sizes in rows}


def setup_page_text() -> str:
    return " ".join(SETUP.read_text().split())


@pytest.fixture(scope="module")
def paper_data(tmp_path_factory):
    """Every dataset of ``paper`` loadable offline from one data folder (``MIA_DATA_DIR``): the
    real Fashion-MNIST files (linked) and fake CIFAR-10/100 of the real sizes. Yields the loaded
    datasets by name; the process-wide dataset cache is emptied before and restored after, and
    the files (about 400 MB) are removed."""
    try:
        fmnist = data.load_fmnist(download=False)
    except DataUnavailableError:
        pytest.skip("Fashion-MNIST is not installed (apt-get install dataset-fashion-mnist)")
    root = tmp_path_factory.mktemp("paper_data")
    for stem in FMNIST_FILES.values():
        found = _find_idx_file(Path(fmnist.source), stem)
        (root / found.name).symlink_to(found)
    cifar10 = make_fake_cifar10(root, n_per_batch=DATASETS["cifar10"].n_train // 5, n_test=DATASETS["cifar10"].n_test)
    cifar100 = make_fake_cifar100(root, n_train=DATASETS["cifar100"].n_train, n_test=DATASETS["cifar100"].n_test)
    with pytest.MonkeyPatch.context() as patch:
        patch_cifar10_md5s(patch, cifar10["md5"])
        patch_cifar100_md5s(patch, cifar100["md5"])
        patch.setenv("MIA_DATA_DIR", str(root))
        patch.setattr(data, "_LOADED", {})
        assert all(dataset_available(name) for name in PROFILE.datasets)
        loaded = {name: load_dataset(name, download=False) for name in PROFILE.datasets}
        for name, dataset in loaded.items():
            info = DATASETS[name]
            assert (len(dataset.train_labels), len(dataset.test_labels)) == (info.n_train, info.n_test), name
        assert Path(loaded["fmnist"].source) == root  # the real files, through the links
        yield loaded
    shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="module")
def paper_plan():
    return book_plan("paper")


@pytest.fixture(scope="module")
def splits():
    return Splits()


class Splits:
    """Membership splits and shadow models' training images, each built once (many planned runs
    share them: they differ only in their mechanisms)."""

    def __init__(self):
        self.splits, self.trained, self.pools = {}, {}, {}

    @staticmethod
    def split_key(config: RunConfig) -> tuple:
        return config.dataset, config.n_members, config.n_eval, config.n_adversary, config.split_seed

    def split(self, config: RunConfig):
        key = self.split_key(config)
        if key not in self.splits:
            self.splits[key] = make_split(DATASETS[config.dataset], *key[1:])
        return self.splits[key]

    def pool(self, config: RunConfig) -> torch.Tensor:
        key = self.split_key(config)
        if key not in self.pools:
            self.pools[key] = lira_pool(DATASETS[config.dataset], self.split(config), seed=config.split_seed)
        return self.pools[key]

    def training(self, config: RunConfig) -> torch.Tensor:
        key = self.split_key(config) + (config.shadow_count, config.shadow_index)
        if key not in self.trained:
            self.trained[key] = training_indices(config, DATASETS[config.dataset], self.split(config))
        return self.trained[key]


def global_sets(info, split) -> dict[str, torch.Tensor]:
    """A split's sets as global indices (see :func:`mia_utils.data.gather`)."""
    return {"members": split.members, "eval_members": split.eval_members, "adv_members": split.adv_members,
            "eval_nonmembers": info.n_train + split.eval_nonmembers,
            "adv_nonmembers": info.n_train + split.adv_nonmembers}


def mask_of(info, indices: torch.Tensor) -> torch.Tensor:
    mask = torch.zeros(info.n_train + info.n_test, dtype=torch.bool)
    mask[indices] = True
    return mask


def assert_distinct(indices: torch.Tensor, what: str) -> None:
    assert len(torch.unique(indices)) == len(indices), f"{what} repeats an image"


def check_split(info, split, sizes: tuple[int, int, int], what: str) -> None:
    n_members, n_eval, n_adversary = sizes
    assert len(split.members) == n_members, what
    assert len(split.eval_members) == len(split.eval_nonmembers) == n_eval, what
    assert len(split.adv_members) == len(split.adv_nonmembers) == n_adversary, what
    for name, indices in global_sets(info, split).items():
        assert_distinct(indices, f"{what}: {name}")
    members = mask_of(info, split.members)
    assert members[split.eval_members].all() and members[split.adv_members].all(), what
    assert not mask_of(info, split.eval_members)[split.adv_members].any(), what
    assert not mask_of(info, info.n_train + split.eval_nonmembers)[info.n_train + split.adv_nonmembers].any(), what
    assert int(split.members.max()) < info.n_train, what  # members are training images ...
    for nonmembers in (split.eval_nonmembers, split.adv_nonmembers):  # ... non-members test images
        assert 0 <= int(nonmembers.min()) and int(nonmembers.max()) < info.n_test, what


def test_every_chapter_validates_and_plans_its_runs(paper_data, paper_plan):
    chapters = toc_chapters()
    for chapter in chapters:  # with every dataset available offline, as on a machine that has them
        assert validate(chapter, {"profile": "paper", "seed": 0})["profile"] == "paper"
    planned = {chapter for run in paper_plan.runs.values() for chapter in run.chapters}
    assert planned == set(chapters)  # the findings page lists the runs of chapters 02-05 it reads
    assert {run.config.dataset for run in paper_plan.runs.values()} == set(PROFILE.datasets)
    # Chapter 04's pairs and the confirmation of chapter 02's picks wait for chapter 02's results: one
    # note of each kind per dataset (a note listed by several chapters counts once); chapter 09's
    # recipe-aware reference models too, on the one dataset that chapter attacks.
    assert len(paper_plan.pending) == 2 * len(PROFILE.datasets) + 1
    assert sum(note.startswith("09_stronger_attacks (") for note in paper_plan.pending) == 1
    assert sum(note.startswith("04_combinations (") for note in paper_plan.pending) == len(PROFILE.datasets)
    assert sum(note.startswith("confirmation seeds 3-5 (") for note in paper_plan.pending) == len(PROFILE.datasets)


def test_setup_page_states_the_paper_sizes():
    stated = setup_page_sizes()
    assert stated == {d: (s.n_members, s.n_eval, s.n_adversary) for d, s in PROFILE.sizes.items()}
    text = setup_page_text()
    for dataset, (n_members, n_eval, n_adversary) in stated.items():
        info = DATASETS[dataset]
        assert n_members == info.n_train  # the whole training set, as in the paper
        free = info.n_test - n_eval - n_adversary
        assert f"{free:,} test images" in text  # what the page says the chapters draw from
    n_eval = PROFILE.sizes["fmnist"].n_eval
    free = DATASETS["fmnist"].n_test - 2 * n_eval
    assert f"{n_eval:,} out-of-distribution source images and {free - n_eval:,} calibration images" in text


def test_every_planned_run_validates_and_has_the_stated_split(paper_plan, splits):
    stated = setup_page_sizes()
    shadows: dict[tuple, list[RunConfig]] = {}
    for key, planned in paper_plan.runs.items():
        config = planned.config
        assert list(config.problems()) == [] and RunConfig.from_dict(config.to_dict()) == config, key
        assert config.key() == key
        info = DATASETS[config.dataset]
        if planned.chapters == ["00_primer"]:  # the primer's own small model
            primer = primer_config(validate("00_primer", {"profile": "paper", "seed": 0}, check_available=False))
            sizes = (primer.n_members, primer.n_eval, primer.n_adversary)
        else:  # every other run shares its dataset's base configuration's split
            sizes = stated[config.dataset]
            assert config.split_seed == config.seed, key
        assert (config.n_members, config.n_eval, config.n_adversary) == sizes, key
        check_split(info, splits.split(config), sizes, f"{key} {planned.chapters}")
        if config.is_shadow:
            shadows.setdefault(Splits.split_key(config) + (config.shadow_count,), []).append(config)
    assert shadows, "the paper plan has LiRA shadow models"
    for group, configs in shadows.items():
        info = DATASETS[configs[0].dataset]
        split, pool = splits.split(configs[0]), splits.pool(configs[0])
        assert_distinct(pool, "the LiRA pool")
        sets = global_sets(info, split)
        adversary = mask_of(info, torch.cat([sets["adv_members"], sets["adv_nonmembers"]]))
        evaluation = torch.cat([sets["eval_members"], sets["eval_nonmembers"]])
        assert not adversary[pool].any(), group  # the adversary's own samples never enter the pool
        assert mask_of(info, pool)[evaluation].all(), group  # every evaluated example does
        count = configs[0].shadow_count
        times_in = torch.zeros(info.n_train + info.n_test, dtype=torch.long)
        for index in range(count):
            trained = splits.training(configs[0].shadow(index, count))
            assert_distinct(trained, f"shadow {index} of {group}")
            assert mask_of(info, pool)[trained].all(), (group, index)  # within the pool
            assert not adversary[trained].any(), (group, index)  # disjoint from the adversary's set
            times_in[trained] += 1
        assert (times_in[evaluation] == count // 2).all(), group  # each evaluated example IN for half
        # The images depend on the split and the shadow's index only, not on the mechanisms, so every
        # population (chapter 01's baseline, chapter 06's crops, chapter 07's defense) shares them.
        most = max(configs, key=lambda c: len(c.mechanisms))
        assert torch.equal(training_indices(most, info, split), splits.training(most)), most.key()  # integers


def uses_validation_set(config: RunConfig) -> bool:
    """Whether ``config`` trains with the MMD regularizer (``mmd``, or a variant of it named
    ``mmd_...``), which draws a held-out validation set (:func:`mia_utils.defenses.mmd.validation_set`)."""
    return any(name == "mmd" or name.startswith("mmd_") for name, _ in config.mechanisms)


def test_every_mmd_run_draws_a_free_validation_set(paper_data, paper_plan, splits, monkeypatch):
    drawn = []
    original = mmd.validation_indices

    def spy(*args, **kwargs):
        drawn.append(original(*args, **kwargs))
        return drawn[-1]

    monkeypatch.setattr(mmd, "validation_indices", spy)
    runs = [p.config for p in paper_plan.runs.values() if uses_validation_set(p.config)]
    # Chapter 07 trains MMD + mix-up on every dataset and seed, and a population of LiRA models.
    seeds = replicated.seed_list(PROFILE)
    assert {(c.dataset, c.seed) for c in runs if not c.is_shadow} == {(d, s) for d in PROFILE.datasets for s in seeds}
    for dataset in PROFILE.datasets:
        population = {c.shadow_index for c in runs if c.is_shadow and c.dataset == dataset}
        assert population == set(range(PROFILE.shadow_models)), dataset
    for config in runs:
        info = DATASETS[config.dataset]
        split = splits.split(config)
        trained = splits.training(config)
        exclude = trained if config.is_shadow else None
        available = mmd.validation_available(info, split, exclude)
        assert available > 0, config.key()
        drawn.clear()
        images, labels = mmd.validation_set(config, paper_data[config.dataset])  # as MMD.prepare draws it
        indices = drawn[-1]
        assert len(indices) == len(labels) == len(images) == min(config.n_members, available)
        assert torch.equal(labels, gather(paper_data[config.dataset], indices)[1])  # integer labels
        assert_distinct(indices, "a validation set")
        sets = global_sets(info, split)
        taken = mask_of(info, torch.cat([sets["members"], sets["eval_nonmembers"], sets["adv_nonmembers"], trained]))
        assert not taken[indices].any(), config.key()  # no member, evaluated, adversary's or trained-on image
        if not config.is_shadow:  # a target's validation set: every free test image
            assert len(indices) == info.n_test - config.n_eval - config.n_adversary


class NoTraining(Exception):
    """Raised where a chapter would train (or read back) its first model."""


def test_chapter_08_finds_free_ood_sources_and_calibration_images(paper_data, paper_plan, monkeypatch):
    calls, made = [], []
    original_split, original_sets = ood.free_test_split, ood.ood_sets

    def split_spy(n_test, used, n_ood, max_validation):
        calls.append((used, n_ood, original_split(n_test, used, n_ood, max_validation)))
        return calls[-1][2]

    def sets_spy(*args, **kwargs):
        made.append(original_sets(*args, **kwargs))
        return made[-1]

    def no_training(config, store=None, *args, **kwargs):
        raise NoTraining(config)

    monkeypatch.setattr(ood, "free_test_split", split_spy)
    monkeypatch.setattr(ood, "ood_sets", sets_spy)
    monkeypatch.setattr(experiment, "run", no_training)
    params = validate("08_prediction_scores_ood", {"profile": "paper", "seed": 0}, check_available=False)
    info = DATASETS["fmnist"]
    for seed in replicated.seed_list(PROFILE, params["seed"]):
        calls.clear()
        made.clear()
        with pytest.raises(NoTraining) as stopped:  # everything before the first model runs
            ood_scores.ood_experiment(PROFILE, seed, params["ood_samples"], data=load_dataset("fmnist"))
        base = PROFILE.base_config("fmnist", seed=seed)
        assert stopped.value.args[0] == base and base.key() in paper_plan.runs  # the planned baseline
        (used, n_ood, (source, calibration)), = calls
        split = make_split(info, base.n_members, base.n_eval, base.n_adversary, base.split_seed)
        # torch.equal here compares integer indices and uint8 images: bitwise on any CPU
        assert torch.equal(used.sort().values, torch.cat([split.eval_nonmembers, split.adv_nonmembers]).sort().values)
        assert n_ood == base.n_eval and len(source) == n_ood  # the default: the evaluation set's size
        assert len(calibration) == info.n_test - base.n_eval - base.n_adversary - n_ood > 0
        for part in (source, calibration):
            assert_distinct(part, "chapter 08's images")
            assert 0 <= int(part.min()) and int(part.max()) < info.n_test
        test_taken = torch.zeros(info.n_test, dtype=torch.bool)
        test_taken[used] = True
        assert not test_taken[source].any() and not test_taken[calibration].any()  # free
        assert not torch.isin(source, calibration).any()  # and disjoint
        (sets,) = made  # every OOD set has n_ood images; the shuffled and inverted come from the source
        assert {name: len(images) for name, images in sets.items()} == {name: n_ood for name in ood.OOD_SETS}
        assert torch.equal(sets["inverted"], 255 - paper_data["fmnist"].test_images[source])
