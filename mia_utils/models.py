"""VGG-style CNNs, one architecture per dataset, shared by every mechanism (DP-SGD included).

Each network is a stack of 3x3 convolutions (padding 1) with ReLU, 2x2 max-pooling after each
block (placed before the block's last ReLU when nothing sits between them: the two commute
exactly, and the ReLU then works on a quarter of the values), optional hidden linear layers
with ReLU, and a linear classifier. Counting weight layers (convolutions plus linear layers):

=========  ======  =========================================  ===============  ==========
dataset    layers  convolution channels (width 1.0)            hidden linear    classifier
=========  ======  =========================================  ===============  ==========
fmnist     4       128 | 256                                  12544 -> 1024    1024 -> 10
cifar10    7       64 64 | 128 128 | 256 256                  -                4096 -> 10
cifar100   9       64 64 | 128 128 | 256 256 | 512 512        -                2048 -> 100
=========  ======  =========================================  ===============  ==========

(``|`` marks a 2x2 max-pool.) The Fashion-MNIST network is the authors' own public layout (conv
128, conv 256, linear 1,024, linear 10; see ``reference/kaya2020/README.md``). Channels and hidden
units scale with ``width`` (rounded, at least 1). By default there is no normalization layer, so
one architecture serves every mechanism, DP-SGD included; ``norm="batch"`` puts a BatchNorm after
every convolution (what the authors used outside DP; DP-SGD cannot train it) and
``norm="group"`` a GroupNorm (what they used with DP).
``dropout`` p (:class:`Dropout`) and ``spatial_dropout`` q (``nn.Dropout2d``, whole channels)
follow every convolution's activation when non-zero. Inputs are floats in [0, 1], shape
(N, C, H, W); the model standardises them with fixed per-dataset constants. Weights and
activations are kept channels-last in memory (shapes are unchanged), which roughly halves the
CPU time of a training step for these small networks.
"""

from __future__ import annotations

import torch
from torch import nn

from mia_utils.data import DATASETS, to_unit_float

POOL = "M"
BLOCKS: dict[str, list] = {
    "fmnist": [128, POOL, 256, POOL],
    "cifar10": [64, 64, POOL, 128, 128, POOL, 256, 256, POOL],
    "cifar100": [64, 64, POOL, 128, 128, POOL, 256, 256, POOL, 512, 512, POOL],
}
# Per-channel mean and std of the training images, in [0, 1] units.
INPUT_STATS = {
    "fmnist": ((0.2860,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}
# Hidden linear layers (units at width 1.0) between the convolutions and the classifier.
HIDDEN: dict[str, tuple[int, ...]] = {"fmnist": (1024,), "cifar10": (), "cifar100": ()}
NORMS = ("none", "batch", "group")


class Dropout(nn.Dropout):
    """Element-wise dropout p, as :class:`torch.nn.Dropout`, with the mask drawn by
    ``torch.rand`` (several times faster on the CPU than ``bernoulli_``). Same distribution:
    each element is kept with probability 1 - p and scaled by 1 / (1 - p); identity in eval mode."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0:
            return x
        keep = torch.rand_like(x).ge_(self.p)  # 1.0 where kept, 0.0 where dropped
        # The same mask and arithmetic as x * (rand >= p) / (1 - p), bit for bit, without
        # converting a boolean mask or allocating the quotient (1.4x faster forward + backward).
        return (x * keep).div_(1.0 - self.p)


def scaled_channels(channels: int, width: float) -> int:
    return max(1, round(channels * width))


class Standardize(nn.Module):
    """(x - mean) / std with fixed per-channel constants; x in [0, 1], shape (N, C, H, W)."""

    def __init__(self, mean, std):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class VGG(nn.Module):
    """A VGG-style CNN: ``features`` (conv stack), ``hidden`` (linear + ReLU layers, possibly
    none), then ``classifier`` (the last linear layer)."""

    def __init__(self, dataset: str, width: float = 1.0, dropout: float = 0.0,
                 spatial_dropout: float = 0.0, norm: str = "none"):
        super().__init__()
        if dataset not in BLOCKS:
            raise ValueError(f"dataset: unknown dataset {dataset!r}; allowed: {', '.join(BLOCKS)}")
        if not width > 0:
            raise ValueError(f"width: must be > 0, got {width}")
        for name, value in (("dropout", dropout), ("spatial_dropout", spatial_dropout)):
            if not 0.0 <= value < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {value}")
        if norm not in NORMS:
            raise ValueError(f"norm: unknown normalization {norm!r}; allowed: {', '.join(NORMS)}")
        info = DATASETS[dataset]
        self.input_shape = info.shape
        in_channels, height, _ = info.shape
        layers: list[nn.Module] = [Standardize(*INPUT_STATS[dataset])]
        for item in BLOCKS[dataset]:
            if item == POOL:
                if isinstance(layers[-1], nn.ReLU):
                    # Max-pooling and ReLU commute exactly (ReLU is monotone and max picks the
                    # same element), in the forward pass and in the gradient. Pooling first lets
                    # the ReLU and its backward pass touch a quarter of the values (a quick-width
                    # training step measured 1.2x faster). A dropout layer between them blocks
                    # the swap: dropout then pool is not pool then dropout.
                    layers.insert(len(layers) - 1, nn.MaxPool2d(2))
                else:
                    layers.append(nn.MaxPool2d(2))
                height //= 2
                continue
            out_channels = scaled_channels(item, width)
            layers.append(nn.Conv2d(in_channels, out_channels, 3, padding=1))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(out_channels))
            elif norm == "group":
                groups = next(g for g in range(min(32, out_channels), 0, -1) if out_channels % g == 0)
                layers.append(nn.GroupNorm(groups, out_channels))
            layers.append(nn.ReLU(inplace=True))
            if dropout > 0:
                layers.append(Dropout(dropout))
            if spatial_dropout > 0:
                layers.append(nn.Dropout2d(spatial_dropout))
            in_channels = out_channels
        self.features = nn.Sequential(*layers)
        hidden: list[nn.Module] = []
        in_features = in_channels * height * height
        for units in HIDDEN[dataset]:
            out_features = scaled_channels(units, width)
            hidden += [nn.Linear(in_features, out_features), nn.ReLU(inplace=True)]
            in_features = out_features
        self.hidden = nn.Sequential(*hidden)
        self.classifier = nn.Linear(in_features, info.num_classes)
        self.set_channels_last(True)

    def set_channels_last(self, enabled: bool) -> "VGG":
        """Keep weights and activations channels-last (NHWC in memory; convolution and
        max-pooling run ~2x faster on the CPU) or in the plain NCHW layout (which Opacus'
        per-sample gradients need). Shapes and the computed function do not change."""
        self.channels_last = enabled
        return self.to(memory_format=torch.channels_last if enabled else torch.contiguous_format)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: float (N, C, H, W) in [0, 1] -> logits (N, num_classes)."""
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.classifier(self.hidden(torch.flatten(self.features(x), 1)))


def textbook_order(model: VGG) -> VGG:
    """A copy of ``model`` with every max-pool moved after the ReLU that follows it (conv, ReLU,
    pool), the order the paper's network is written in. It computes the same function and the
    same gradients as ``model``, bit for bit (tests/test_models.py); it exists to show that."""
    import copy

    textbook = copy.deepcopy(model)
    layers = list(textbook.features)
    for i in range(len(layers) - 1):
        if isinstance(layers[i], nn.MaxPool2d) and isinstance(layers[i + 1], nn.ReLU):
            layers[i], layers[i + 1] = layers[i + 1], layers[i]
    textbook.features = nn.Sequential(*layers)
    return textbook


def build_model(dataset: str, width: float = 1.0, dropout: float = 0.0,
                spatial_dropout: float = 0.0, norm: str = "none") -> VGG:
    """The dataset's VGG-style CNN; see the module docstring for the exact layers.

    Args:
        dataset: ``"fmnist"``, ``"cifar10"`` or ``"cifar100"``; fixes the layers, input shape
            and number of classes.
        width: multiplier of every layer's channels and hidden units (float > 0; rounded, at least 1).
        dropout: element-wise dropout probability p after every convolution's activation (float
            in [0, 1); 0 = none).
        spatial_dropout: whole-channel dropout probability q (``nn.Dropout2d``) after every
            convolution's activation (float in [0, 1); 0 = none).
        norm: normalization after every convolution, ``"none"``, ``"batch"`` (BatchNorm) or
            ``"group"`` (GroupNorm).
    """
    return VGG(dataset, width, dropout, spatial_dropout, norm)


def weight_layer_count(model: nn.Module) -> int:
    """Number of convolution and linear layers (the paper's 'N-layer' count)."""
    return sum(isinstance(m, (nn.Conv2d, nn.Linear)) for m in model.modules())


def forward_flops(model: VGG) -> int:
    """FLOPs (2 x multiply-accumulates) of one forward pass on one image, convs and linear."""
    flops = 0

    def count(module, inputs, output):
        nonlocal flops
        if isinstance(module, nn.Conv2d):
            kernel = module.kernel_size[0] * module.kernel_size[1]
            flops += 2 * (output.numel() // output.shape[0]) * module.in_channels * kernel
        else:
            flops += 2 * module.in_features * module.out_features

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    with torch.no_grad():
        model.eval()(torch.zeros(1, *model.input_shape, device=next(model.parameters()).device))
    model.train(was_training)
    for hook in hooks:
        hook.remove()
    return flops


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, batch_size: int = 1024) -> torch.Tensor:
    """Logits (N, classes) in eval mode for uint8 or [0, 1] float images (N, C, H, W)."""
    device = next(model.parameters()).device
    was_training = model.training
    model.eval()
    chunks = []
    for start in range(0, images.shape[0], batch_size):
        batch = images[start: start + batch_size].to(device)
        if batch.dtype == torch.uint8:
            batch = to_unit_float(batch)
        chunks.append(model(batch).float().cpu())
    model.train(was_training)
    return torch.cat(chunks) if chunks else torch.empty(0)
