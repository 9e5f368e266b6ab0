import pytest

from mia_utils.data import DATASETS
from mia_utils.models import build_model, weight_layer_count
from mia_utils.book.profiles import PROFILES, get_profile
from mia_utils.book.report import published


def test_paper_profile_is_the_papers_setup():
    """Section 3 of the paper: Adam (AMSGrad variant of Reddi et al.), lr 0.0002, weight decay
    1e-6, batch 128, 30 epochs, no augmentation, whole training sets, 4/7/9-layer CNNs."""
    paper = get_profile("paper")
    assert paper.datasets == ("fmnist", "cifar10", "cifar100")
    for dataset in paper.datasets:
        config = paper.base_config(dataset)
        assert config.lr == 2e-4 and config.amsgrad is True and config.weight_decay == 1e-6
        assert config.batch_size == 128 and config.epochs == 30
        assert config.n_members == DATASETS[dataset].n_train
        assert config.width == 1.0 and config.mechanisms == ()
        assert 2 * config.n_eval + 2 * config.n_adversary <= config.n_members + DATASETS[dataset].n_test
    layers = {d: weight_layer_count(build_model(d)) for d in paper.datasets}
    assert layers == {"fmnist": 4, "cifar10": 7, "cifar100": 9}


def test_paper_grids_lie_in_table1_ranges_and_cover_the_reported_values():
    ranges = published("table1_hyperparameter_ranges").set_index("mechanism")
    grids = get_profile("paper").grids
    reported = published("tables3to5_regularization")
    for mechanism, row in ranges.iterrows():
        assert mechanism in grids, mechanism
        assert all(row["low"] <= v <= row["high"] for v in grids[mechanism]), mechanism
        used = reported[reported.mechanism == mechanism]["value"].astype(float)
        assert set(used) <= set(float(v) for v in grids[mechanism]), mechanism


@pytest.mark.parametrize("name", ["smoke", "quick"])
def test_small_profiles_use_fashion_mnist_only(name):
    assert PROFILES[name].datasets == ("fmnist",)
    config = PROFILES[name].base_config("fmnist")
    assert config.n_members < 60_000


def test_unknown_profile_and_dataset():
    with pytest.raises(ValueError, match="profile: unknown profile 'huge'; allowed: smoke, quick, paper"):
        get_profile("huge")
    with pytest.raises(ValueError, match="dataset: 'cifar10' is not in profile 'quick'"):
        get_profile("quick").base_config("cifar10")


def test_setup_page_states_the_lira_and_bootstrap_sizes():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "book" / "setup.md").read_text()
    sentence = (f"{PROFILES['smoke'].shadow_models} shadow models per target in `smoke`, "
                f"{PROFILES['quick'].shadow_models} in `quick` and {PROFILES['paper'].shadow_models} in `paper`")
    assert sentence in " ".join(text.split())
    assert f"{PROFILES['smoke'].bootstrap} (`smoke`) or {PROFILES['quick'].bootstrap} (`quick`, `paper`)" in " ".join(text.split())


def test_setup_page_profile_table_matches_the_code():
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "book" / "setup.md").read_text()
    for profile in PROFILES.values():
        for dataset, size in profile.sizes.items():
            row = (f"| `{profile.name}` | `{dataset}` | {size.n_members:,} | {size.n_eval:,} | {size.n_adversary:,} "
                   f"| {profile.width} | {profile.epochs} | {profile.lr:g} | {profile.batch_size} |")
            assert row in text, f"setup.md lacks the row {row}"
