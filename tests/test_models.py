"""Tests of mia_utils.models: the VGG-style CNNs, their options, FLOP count, and the book's table."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import mia_utils.models as models
from mia_utils.config import ConfigError, RunConfig
from mia_utils.data import DATASETS as DATASET_INFO
from mia_utils.models import BLOCKS, HIDDEN, POOL, VGG, build_model, forward_flops, weight_layer_count

REPO = Path(__file__).resolve().parents[1]
SETUP_MD = REPO / "book" / "setup.md"

INPUT = {"fmnist": (1, 28, 28), "cifar10": (3, 32, 32), "cifar100": (3, 32, 32)}
CLASSES = {"fmnist": 10, "cifar10": 10, "cifar100": 100}
LAYERS = {"fmnist": 4, "cifar10": 7, "cifar100": 9}
DATASETS = list(BLOCKS)


def convs(model: nn.Module) -> list[nn.Conv2d]:
    return [m for m in model.modules() if isinstance(m, nn.Conv2d)]


def linears(model: nn.Module) -> list[nn.Linear]:
    return [m for m in model.modules() if isinstance(m, nn.Linear)]


def hidden_linears(model: VGG) -> list[nn.Linear]:
    return [m for m in model.hidden if isinstance(m, nn.Linear)]


def channels_of(dataset: str) -> list[int]:
    return [item for item in BLOCKS[dataset] if item != POOL]


def test_blocks_cover_the_datasets():
    assert set(BLOCKS) == {"fmnist", "cifar10", "cifar100"}
    assert set(models.INPUT_STATS) == set(BLOCKS)
    assert set(HIDDEN) == set(BLOCKS)


def test_fmnist_is_the_authors_layout():
    """conv 128, pool, conv 256, pool, linear 7*7*256 -> 1024 + ReLU, linear 1024 -> 10."""
    assert BLOCKS["fmnist"] == [128, POOL, 256, POOL]
    assert HIDDEN == {"fmnist": (1024,), "cifar10": (), "cifar100": ()}
    model = build_model("fmnist")
    assert [(c.in_channels, c.out_channels, c.kernel_size, c.padding) for c in convs(model)] == [
        (1, 128, (3, 3), (1, 1)), (128, 256, (3, 3), (1, 1))]
    assert [type(m) for m in model.hidden] == [nn.Linear, nn.ReLU]
    assert (model.hidden[0].in_features, model.hidden[0].out_features) == (7 * 7 * 256, 1024) == (12544, 1024)
    assert (model.classifier.in_features, model.classifier.out_features) == (1024, 10)


# --------------------------------------------------------------------------- shapes and layer counts


@pytest.mark.parametrize("dataset", DATASETS)
def test_weight_layer_count(dataset):
    model = build_model(dataset)
    assert weight_layer_count(model) == LAYERS[dataset]
    assert len(convs(model)) == LAYERS[dataset] - 1 - len(HIDDEN[dataset])
    assert len(linears(model)) == 1 + len(HIDDEN[dataset])
    assert len(hidden_linears(model)) == len(HIDDEN[dataset])


@pytest.mark.parametrize("dataset", DATASETS)
def test_output_shape(dataset):
    torch.manual_seed(0)
    model = build_model(dataset).eval()
    x = torch.rand(3, *INPUT[dataset])
    with torch.no_grad():
        out = model(x)
    assert out.shape == (3, CLASSES[dataset])
    assert out.dtype == torch.float32
    assert torch.isfinite(out).all()
    assert model.input_shape == INPUT[dataset]


@pytest.mark.parametrize("dataset", DATASETS)
def test_output_shape_small_width_with_every_option(dataset):
    model = build_model(dataset, width=0.25, dropout=0.3, spatial_dropout=0.2, norm="group")
    out = model.train()(torch.rand(2, *INPUT[dataset]))
    assert out.shape == (2, CLASSES[dataset])
    out.sum().backward()  # trainable end to end
    assert all(p.grad is not None for p in model.parameters())


def test_build_model_returns_vgg():
    model = build_model("fmnist")
    assert isinstance(model, VGG)
    assert isinstance(model.features, nn.Sequential)
    assert isinstance(model.hidden, nn.Sequential)
    assert isinstance(model.classifier, nn.Linear)
    assert model.classifier.in_features == 1024


@pytest.mark.parametrize("dataset", ["cifar10", "cifar100"])
def test_cifar_nets_have_no_hidden_layer(dataset):
    model = build_model(dataset)
    assert isinstance(model.hidden, nn.Sequential) and len(model.hidden) == 0
    x = torch.rand(4, 7)
    assert torch.equal(model.hidden(x), x)  # the identity: bitwise on any CPU


@pytest.mark.parametrize("dataset,in_features", [("fmnist", 1024), ("cifar10", 4096), ("cifar100", 2048)])
def test_classifier_sizes_match_docstring(dataset, in_features):
    model = build_model(dataset)
    assert model.classifier.in_features == in_features
    assert model.classifier.out_features == CLASSES[dataset]


@pytest.mark.parametrize("dataset,width,sizes", [
    ("fmnist", 1.0, [(12544, 1024)]),
    ("fmnist", 0.5, [(7 * 7 * 128, 512)]),
    ("fmnist", 0.25, [(7 * 7 * 64, 256)]),
    ("cifar10", 1.0, []),
    ("cifar100", 0.5, []),
])
def test_hidden_layer_sizes(dataset, width, sizes):
    model = build_model(dataset, width=width)
    assert [(m.in_features, m.out_features) for m in hidden_linears(model)] == sizes
    # each hidden linear layer is followed by a ReLU
    layers = list(model.hidden)
    assert [type(m) for m in layers] == [nn.Linear, nn.ReLU] * len(sizes)


# --------------------------------------------------------------------------- options


SETTINGS = [
    dict(),
    dict(norm="group"),
    dict(dropout=0.5),
    dict(spatial_dropout=0.25),
    dict(width=0.5, dropout=0.1, spatial_dropout=0.1, norm="group"),
    dict(width=2.0),
]


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("kwargs", SETTINGS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()) or "default")
def test_no_batchnorm_unless_asked(dataset, kwargs):
    model = build_model(dataset, **kwargs)
    bad = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert bad == [], "only norm='batch' adds BatchNorm (which DP-SGD cannot use)"


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("width", [0.25, 1.0])
def test_batch_norm_after_every_conv_before_relu(dataset, width):
    model = build_model(dataset, width=width, norm="batch")
    layers = list(model.features)
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    assert len(norms) == len(convs(model)) and all(type(m) is nn.BatchNorm2d for m in norms)
    assert not any(isinstance(m, nn.GroupNorm) for m in model.modules())
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            follower = layers[i + 1]
            assert isinstance(follower, nn.BatchNorm2d)
            assert follower.num_features == layer.out_channels
            assert follower.affine and follower.track_running_stats
            after = layers[i + 3] if isinstance(layers[i + 2], nn.MaxPool2d) else layers[i + 2]
            assert isinstance(after, nn.ReLU)  # normalize, then (pool and) activate
    # nothing normalizes the hidden linear layers
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.hidden.modules())


@pytest.mark.parametrize("dataset", DATASETS)
def test_batch_norm_output_shape_and_trainable(dataset):
    torch.manual_seed(0)
    model = build_model(dataset, width=0.25, norm="batch")
    out = model.train()(torch.rand(4, *INPUT[dataset]))
    assert out.shape == (4, CLASSES[dataset]) and torch.isfinite(out).all()
    out.sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        out = model.eval()(torch.rand(3, *INPUT[dataset]))
    assert out.shape == (3, CLASSES[dataset]) and torch.isfinite(out).all()


def test_batch_norm_train_and_eval_differ():
    """Train mode normalizes with the batch's statistics (so an image's logits depend on the
    other images of its batch) and updates the running statistics; eval mode uses the running
    statistics (so each image's logits are its own) and updates nothing."""
    torch.manual_seed(0)
    model = build_model("fmnist", width=0.25, norm="batch")
    bn = model.features[2]
    assert isinstance(bn, nn.BatchNorm2d)
    x = torch.rand(8, 1, 28, 28)
    other = torch.rand(8, 1, 28, 28)
    with torch.no_grad():
        mean_before = bn.running_mean.clone()
        train_out = model.train()(x)
        assert int(bn.num_batches_tracked) == 1
        assert not torch.equal(bn.running_mean, mean_before)  # running statistics updated
        alone = model(x[:4])
        assert not torch.allclose(train_out[:4], alone, atol=1e-5)  # depends on the batch
        state = {k: v.clone() for k, v in model.state_dict().items()}
        eval_out = model.eval()(x)
        assert not torch.allclose(train_out, eval_out, atol=1e-4)
        assert torch.allclose(model(x[:4]), eval_out[:4], atol=1e-5)  # independent of the batch
        assert torch.allclose(model(torch.cat([x[:4], other[:4]]))[:4], eval_out[:4], atol=1e-5)
        assert all(torch.equal(v, model.state_dict()[k]) for k, v in state.items())  # nothing updated (copies)
    assert model.training is False


def test_run_config_accepts_batch_norm_and_builds_it():
    config = RunConfig(norm="batch")
    assert config.model_options()["norm"] == "batch"
    model = build_model(config.dataset, **{**config.model_options(), "width": 0.25})
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) == 2
    assert config.key() != RunConfig(norm="none").key() != RunConfig(norm="group").key()
    RunConfig(norm="group", mechanisms=(("dp_sgd", 1.0),))  # GroupNorm is DP-SGD's normalization
    RunConfig(norm="batch", mechanisms=(("dropout", 0.5),))  # other mechanisms are fine with BatchNorm


@pytest.mark.parametrize("build", [
    lambda: RunConfig(norm="batch", mechanisms=(("dp_sgd", 1.0),)),
    lambda: RunConfig(norm="batch").with_mechanisms(dp_sgd=0.1),
    lambda: RunConfig(mechanisms=(("dp_sgd", 1.0),)).replace(norm="batch"),
])
def test_run_config_rejects_batch_norm_with_dp_sgd(build):
    with pytest.raises(ConfigError) as info:
        build()
    message = str(info.value)
    problems = [line.strip() for line in message.splitlines() if line.strip().startswith("- ")]
    assert len(problems) == 1, message
    assert problems[0].startswith("- norm:"), message
    assert "'batch'" in problems[0] and "DP-SGD" in problems[0]


@pytest.mark.parametrize("dataset", DATASETS)
def test_group_norm_after_every_conv(dataset):
    plain = build_model(dataset)
    assert not any(isinstance(m, nn.GroupNorm) for m in plain.modules())
    model = build_model(dataset, norm="group")
    layers = list(model.features)
    norms = [m for m in layers if isinstance(m, nn.GroupNorm)]
    assert len(norms) == len(convs(model))
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            follower = layers[i + 1]
            assert isinstance(follower, nn.GroupNorm)
            assert follower.num_channels == layer.out_channels
            assert layer.out_channels % follower.num_groups == 0


@pytest.mark.parametrize("width", [0.25, 0.5, 0.75, 1.0, 1.5])
@pytest.mark.parametrize("dataset", DATASETS)
def test_group_norm_builds_for_any_width(dataset, width):
    """Every width the config accepts (0 < width <= 16) must build with norm="group"."""
    model = build_model(dataset, width=width, norm="group")
    assert sum(isinstance(m, nn.GroupNorm) for m in model.modules()) == len(convs(model))


def _segments_after_convs(model: VGG) -> list[list[nn.Module]]:
    """For each conv in ``features``: the layers after it up to the next conv or pool."""
    layers = list(model.features)
    segments = []
    for i, layer in enumerate(layers):
        if isinstance(layer, nn.Conv2d):
            segment = []
            for follower in layers[i + 1:]:
                if isinstance(follower, (nn.Conv2d, nn.MaxPool2d)):
                    break
                segment.append(follower)
            segments.append(segment)
    return segments


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_after_every_conv(dataset, p):
    model = build_model(dataset, dropout=p)
    dropouts = [m for m in model.modules() if type(m) is models.Dropout]
    assert len(dropouts) == len(convs(model))
    assert all(m.p == p for m in dropouts)
    assert not any(isinstance(m, nn.Dropout2d) for m in model.modules())
    for segment in _segments_after_convs(model):
        kinds = [type(m) for m in segment]
        assert models.Dropout in kinds and nn.ReLU in kinds
        assert kinds.index(nn.ReLU) < kinds.index(models.Dropout)  # after the activation


@pytest.mark.parametrize("dataset", DATASETS)
@pytest.mark.parametrize("q", [0.05, 0.3])
def test_spatial_dropout_after_every_conv(dataset, q):
    model = build_model(dataset, spatial_dropout=q)
    spatial = [m for m in model.modules() if type(m) is nn.Dropout2d]
    assert len(spatial) == len(convs(model))
    assert all(m.p == q for m in spatial)
    assert not any(type(m) is nn.Dropout for m in model.modules())
    for segment in _segments_after_convs(model):
        kinds = [type(m) for m in segment]
        assert nn.Dropout2d in kinds
        assert kinds.index(nn.ReLU) < kinds.index(nn.Dropout2d)


@pytest.mark.parametrize("dataset", DATASETS)
def test_both_dropouts_together(dataset):
    model = build_model(dataset, dropout=0.2, spatial_dropout=0.4)
    for segment in _segments_after_convs(model):
        assert [m.p for m in segment if type(m) is models.Dropout] == [0.2]
        assert [m.p for m in segment if type(m) is nn.Dropout2d] == [0.4]


@pytest.mark.parametrize("dataset", DATASETS)
def test_no_dropout_by_default(dataset):
    model = build_model(dataset)
    assert not any(isinstance(m, nn.modules.dropout._DropoutNd) for m in model.modules())


@pytest.mark.parametrize("dataset", DATASETS)
def test_width_one_uses_documented_channels(dataset):
    assert [c.out_channels for c in convs(build_model(dataset))] == channels_of(dataset)


@pytest.mark.parametrize("dataset", DATASETS)
def test_width_scales_channels(dataset):
    base = channels_of(dataset)
    half = build_model(dataset, width=0.5)
    assert [c.out_channels for c in convs(half)] == [c // 2 for c in base]
    # inputs chain: each conv reads the previous conv's output
    assert [c.in_channels for c in convs(half)] == [INPUT[dataset][0]] + [c // 2 for c in base[:-1]]
    double = build_model(dataset, width=2.0)
    assert [c.out_channels for c in convs(double)] == [2 * c for c in base]
    full = build_model(dataset)
    assert double.classifier.in_features == 2 * full.classifier.in_features
    assert half.classifier.in_features * 2 == full.classifier.in_features
    # hidden units scale too, and the first hidden layer reads the last conv's flattened output
    for scaled, factor in ((half, 0.5), (double, 2.0)):
        assert [m.out_features for m in hidden_linears(scaled)] == [round(u * factor) for u in HIDDEN[dataset]]
        assert [m.in_features for m in hidden_linears(scaled)][:1] == [
            round(m.in_features * factor) for m in hidden_linears(full)][:1]


def test_width_rounds_and_keeps_at_least_one_channel():
    assert models.scaled_channels(32, 0.3) == 10  # 9.6 rounds to 10
    assert models.scaled_channels(64, 0.001) == 1
    tiny = build_model("cifar100", width=0.001)
    assert all(c.out_channels == 1 for c in convs(tiny))
    assert tiny(torch.rand(1, 3, 32, 32)).shape == (1, 100)
    tiny = build_model("fmnist", width=0.0001)  # 1024 * 0.0001 = 0.1 hidden units -> 1
    assert all(c.out_channels == 1 for c in convs(tiny))
    assert [(m.in_features, m.out_features) for m in hidden_linears(tiny)] == [(49, 1)]
    assert tiny.classifier.in_features == 1
    assert tiny(torch.rand(2, 1, 28, 28)).shape == (2, 10)


def test_fmnist_half_width_sizes():
    """The quick profile's width: conv 64, conv 128, linear 6272 -> 512, classifier 512 -> 10."""
    model = build_model("fmnist", width=0.5)
    assert [c.out_channels for c in convs(model)] == [64, 128]
    assert [(m.in_features, m.out_features) for m in hidden_linears(model)] == [(6272, 512)]
    assert model.classifier.in_features == 512


# --------------------------------------------------------------------------- FLOPs


def _hand_flops(dataset: str, width: float = 1.0) -> int:
    """FLOPs from the documented layer list: per 3x3 conv (padding 1) 2*H*W*Cout*Cin*9,
    each pool halves H and W (floor), plus 2*in*out for each hidden linear layer and the
    linear classifier."""
    cin, size, _ = INPUT[dataset]
    total = 0
    for item in BLOCKS[dataset]:
        if item == POOL:
            size //= 2
            continue
        cout = max(1, round(item * width))
        total += 2 * size * size * cout * cin * 9
        cin = cout
    features = cin * size * size
    for units in HIDDEN[dataset]:
        out = max(1, round(units * width))
        total += 2 * features * out
        features = out
    return total + 2 * features * CLASSES[dataset]


def test_forward_flops_fmnist_by_hand():
    # 28x28 -> conv 1->128 -> pool 14x14 -> conv 128->256 -> pool 7x7 -> 12544 -> 1024 -> 10
    expected = (
        2 * 28 * 28 * 128 * 1 * 9
        + 2 * 14 * 14 * 256 * 128 * 9
        + 2 * 12544 * 1024
        + 2 * 1024 * 10
    )
    assert expected == 143_122_432
    assert forward_flops(build_model("fmnist")) == expected


def test_forward_flops_fmnist_half_width_by_hand():
    # 28x28 -> conv 1->64 -> pool 14x14 -> conv 64->128 -> pool 7x7 -> 6272 -> 512 -> 10
    expected = (
        2 * 28 * 28 * 64 * 1 * 9
        + 2 * 14 * 14 * 128 * 64 * 9
        + 2 * 6272 * 512
        + 2 * 512 * 10
    )
    assert expected == 36_237_312
    assert forward_flops(build_model("fmnist", width=0.5)) == expected


@pytest.mark.parametrize("dataset,width", [("fmnist", 0.5), ("fmnist", 1.0), ("fmnist", 0.3), ("cifar10", 1.0),
                                           ("cifar100", 1.0), ("cifar10", 0.25)])
def test_forward_flops_matches_layer_list(dataset, width):
    assert forward_flops(build_model(dataset, width=width)) == _hand_flops(dataset, width)


def test_forward_flops_ignores_options_and_keeps_mode():
    base = forward_flops(build_model("fmnist"))
    assert forward_flops(build_model("fmnist", norm="batch")) == base  # BatchNorm is not counted
    model = build_model("fmnist", dropout=0.5, spatial_dropout=0.5, norm="group").train()
    assert forward_flops(model) == base  # counts convs and linear only
    assert model.training
    model.eval()
    forward_flops(model)
    assert not model.training
    assert all(not m._forward_hooks for m in model.modules())  # hooks removed


# --------------------------------------------------------------------------- argument checks


@pytest.mark.parametrize("kwargs,param", [
    (dict(dataset="mnist"), "dataset"),
    (dict(dataset="fmnist", width=0.0), "width"),
    (dict(dataset="fmnist", width=-1.0), "width"),
    (dict(dataset="fmnist", width=float("nan")), "width"),
    (dict(dataset="fmnist", dropout=1.0), "dropout"),
    (dict(dataset="fmnist", dropout=-0.1), "dropout"),
    (dict(dataset="fmnist", spatial_dropout=1.0), "spatial_dropout"),
    (dict(dataset="fmnist", norm="layer"), "norm"),
    (dict(dataset="fmnist", norm="Batch"), "norm"),
])
def test_bad_arguments(kwargs, param):
    with pytest.raises(ValueError) as info:
        build_model(**kwargs)
    message = str(info.value)
    assert message.startswith(param + ":"), message


# --------------------------------------------------------------------------- seeding


@pytest.mark.parametrize("dataset", DATASETS)
def test_same_seed_same_weights(dataset):
    def state(seed):
        torch.manual_seed(seed)
        return build_model(dataset, width=0.5).state_dict()

    a, b, c = state(7), state(7), state(8)
    assert a.keys() == b.keys()
    # bitwise on any CPU: the same seeded draws
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if k.endswith("weight"))


def test_standardize_uses_fixed_constants():
    model = build_model("cifar10")
    standardize = model.features[0]
    assert isinstance(standardize, models.Standardize)
    mean, std = models.INPUT_STATS["cifar10"]
    x = torch.tensor(mean).view(1, 3, 1, 1).expand(1, 3, 32, 32)
    assert torch.allclose(standardize(x), torch.zeros(1, 3, 32, 32), atol=1e-6)
    # buffers, not parameters: never trained
    assert not any(name.startswith("features.0.") for name, _ in model.named_parameters())


# --------------------------------------------------------------------------- documentation


def expected_channel_text(dataset: str) -> str:
    """BLOCKS written the docstring's way: '64 64 | 128 128 | 256 256' (a '|' per pool)."""
    groups, current = [], []
    for item in BLOCKS[dataset]:
        if item == POOL:
            groups.append(" ".join(map(str, current)))
            current = []
        else:
            current.append(item)
    if current:
        groups.append(" ".join(map(str, current)))
    return " | ".join(groups)


def test_expected_channel_text():
    assert expected_channel_text("fmnist") == "128 | 256"
    assert expected_channel_text("cifar100") == "64 64 | 128 128 | 256 256 | 512 512"


@pytest.mark.parametrize("dataset", DATASETS)
def test_module_docstring_matches_blocks(dataset):
    rows = [line for line in models.__doc__.splitlines() if line.split()[:1] == [dataset]]
    assert len(rows) == 1, f"no single docstring row for {dataset}"
    fields = re.split(r"\s{2,}", rows[0].strip())
    assert fields[0] == dataset
    assert fields[1] == str(LAYERS[dataset])
    assert fields[2] == expected_channel_text(dataset)
    model = build_model(dataset)
    hidden = " ".join(f"{m.in_features} -> {m.out_features}" for m in hidden_linears(model)) or "-"
    assert fields[3] == hidden
    assert fields[4] == f"{model.classifier.in_features} -> {model.classifier.out_features}"


_SPLIT_CELLS = re.compile(r"(?<!\\)\|")
_PURE_GROUP = re.compile(r"^\d+(\s+\d+)*$")


def _clean(cell: str) -> str:
    return re.sub(r"\s+", " ", cell.replace("`", "").replace("\\|", "|")).strip()


def _row_has_channels(row: str, expected: str) -> bool:
    """Whether a markdown table row states ``expected`` (e.g. '32 | 64 | 128') as its channels.

    In a pipe table the '|' of the channel list is normally escaped ('32 \\| 64 \\| 128'), so
    the list is one cell. If it was not escaped, the list spans several cells: accept a run of
    consecutive cells equal to it, provided the next cell is not one more channel group (so a
    row does not pass by stating a longer list).
    """
    cells = [_clean(c) for c in _SPLIT_CELLS.split(row.strip().strip("|"))]
    if expected in cells:
        return True
    groups = expected.split(" | ")
    for start in range(len(cells) - len(groups) + 1):
        if cells[start:start + len(groups)] == groups:
            after = cells[start + len(groups)] if start + len(groups) < len(cells) else ""
            if not _PURE_GROUP.match(after):
                return True
    return False


@pytest.mark.parametrize("dataset", DATASETS)
def test_book_setup_table_matches_blocks(dataset):
    if not SETUP_MD.exists():
        pytest.skip("book/setup.md is not written yet")
    lines = SETUP_MD.read_text(encoding="utf-8").splitlines()
    rows = [line for line in lines if line.lstrip().startswith("|")]
    assert rows, "book/setup.md has no markdown table"
    key = re.compile(rf"(?<![\w-]){re.escape(dataset)}(?![\w-])")
    candidates = [row for row in rows if key.search(row.replace("`", ""))]
    assert candidates, f"no table row of book/setup.md names {dataset!r}"
    expected = expected_channel_text(dataset)
    assert any(_row_has_channels(row, expected) for row in candidates), (
        f"book/setup.md: no row for {dataset!r} lists the channels {expected!r} "
        f"(models.BLOCKS); rows found:\n" + "\n".join(candidates)
    )


def test_row_matcher():
    assert _row_has_channels(r"| `fmnist` | 4 | `32 \| 64 \| 128` | 1152 → 10 |", "32 | 64 | 128")
    assert _row_has_channels("| fmnist | 4 | 32 | 64 | 128 | 1152 -> 10 |", "32 | 64 | 128")
    cifar100_row = r"| cifar100 | 9 | 64 64 \| 128 128 \| 256 256 \| 512 512 | 2048 -> 100 |"
    assert not _row_has_channels(cifar100_row, expected_channel_text("cifar10"))
    assert _row_has_channels(cifar100_row, expected_channel_text("cifar100"))
    assert not _row_has_channels(cifar100_row.replace("\\|", "|"), expected_channel_text("cifar10"))
    assert not _row_has_channels("| fmnist | 4 | 32 | 64 | 256 | 2304 -> 10 |", "32 | 64 | 128")


def test_element_dropout_keeps_or_zeroes_each_element_at_rate_p():
    from mia_utils.models import Dropout

    layer = Dropout(0.3)
    x = torch.rand(64, 8, 14, 14) + 0.5  # no zeros in the input
    torch.manual_seed(0)
    out = layer.train()(x)
    dropped = out == 0
    assert torch.allclose(out[~dropped], x[~dropped] / 0.7)
    assert abs(dropped.float().mean().item() - 0.3) < 0.01
    assert torch.equal(layer.eval()(x), x)  # the identity: bitwise on any CPU


def test_channels_last_layout_does_not_change_the_function():
    import copy

    torch.manual_seed(0)
    model = build_model("fmnist", width=0.25).double().eval()
    assert all(p.is_contiguous(memory_format=torch.channels_last) for p in model.parameters() if p.dim() == 4)
    plain = copy.deepcopy(model)
    for parameter in plain.parameters():
        parameter.data = parameter.data.contiguous()  # ordinary NCHW layout
    x = torch.rand(5, 1, 28, 28, dtype=torch.float64)
    with torch.no_grad():
        expected = plain.classifier(plain.hidden(torch.flatten(plain.features(x), 1)))  # NCHW all the way
        got = model(x)
    assert got.shape == (5, 10)
    assert torch.allclose(got, expected, atol=1e-12)


@pytest.mark.parametrize("dataset", DATASETS)
def test_pool_sits_before_relu_only_where_nothing_is_between(dataset):
    for kwargs in ({}, {"norm": "batch"}, {"dropout": 0.3}, {"spatial_dropout": 0.3}):
        layers = list(build_model(dataset, width=0.125, **kwargs).features)
        pools = [i for i, layer in enumerate(layers) if isinstance(layer, nn.MaxPool2d)]
        assert len(pools) == BLOCKS[dataset].count(POOL)
        for i in pools:
            before = layers[i - 1]
            if kwargs.get("dropout") or kwargs.get("spatial_dropout"):
                assert isinstance(before, (models.Dropout, nn.Dropout2d))  # dropout, then pool
            else:
                assert isinstance(before, (nn.Conv2d, nn.BatchNorm2d)) and isinstance(layers[i + 1], nn.ReLU)


@pytest.mark.parametrize("dataset", ["fmnist", "cifar10"])
def test_pool_before_relu_is_exactly_the_textbook_order(dataset):
    """Forward outputs and every gradient equal bit for bit, on images whose many exact zeros
    make ties inside pooling windows (where max-pooling's choice of element could differ)."""
    torch.manual_seed(0)
    model = build_model(dataset, width=0.125)
    textbook = models.textbook_order(model)
    assert [type(m) for m in textbook.features] != [type(m) for m in model.features]
    info = DATASET_INFO[dataset]
    x = torch.rand(16, *info.shape)
    x[x < 0.6] = 0.0  # mostly background, as Fashion-MNIST is
    labels = torch.randint(0, info.num_classes, (16,))
    for net in (model, textbook):
        F.cross_entropy(net(x), labels).backward()
    # bitwise on any CPU: max and ReLU commute exactly, so every other layer runs the same kernel
    # on the same tensors (same shapes, weights and layout, one process)
    assert torch.equal(model(x), textbook(x))
    for (name, a), (_, b) in zip(model.named_parameters(), textbook.named_parameters()):
        assert torch.equal(a.grad, b.grad), name


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_element_dropout_is_the_textbook_formula_bit_for_bit(p):
    """x * (u >= p) / (1 - p) with u uniform from the same stream: forward and gradient equal."""
    x = torch.randn(4, 3, 5, 5).contiguous(memory_format=torch.channels_last)
    grad = torch.randn(4, 3, 5, 5)
    results = []
    for fast in (True, False):
        torch.manual_seed(0)
        inputs = x.clone().requires_grad_()
        out = models.Dropout(p)(inputs) if fast else inputs * (torch.rand_like(inputs) >= p) / (1.0 - p)
        out.backward(grad)
        results.append((out.detach(), inputs.grad))
    # bitwise on any CPU: the same elementwise IEEE operations on the same draws
    assert torch.equal(results[0][0], results[1][0]) and torch.equal(results[0][1], results[1][1])
