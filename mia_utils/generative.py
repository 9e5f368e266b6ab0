"""A small generative model of Fashion-MNIST images, for chapter 08's generated inputs.

Hintersdorf, Struppek & Kersting show that a prediction-score attack flags images drawn from a GAN
as training members, although no model was trained on them. This module trains such a GAN here: a
DCGAN (Radford, Metz & Chintala 2016) sized for 28 x 28 grey images, small enough to train in a
few minutes on two CPU cores.

* :class:`GeneratorConfig`: its sizes and optimiser, validated on construction (a bad value fails
  with a message naming the parameter, the value and what is allowed).
* :class:`Generator` and :class:`Discriminator`: the two networks. The generator maps a latent
  vector (``latent`` standard normal numbers) to one image; the discriminator maps an image to
  one logit (real vs generated).
* :func:`train_gan`: the training loop (non-saturating GAN loss, Adam), deterministic given
  ``config.seed`` on one device and thread setting.
* :func:`sample_images`: ``n`` images from a trained generator as uint8 (n, 1, 28, 28), drawn
  with a seed.
* :func:`trained_generator`: run-or-load through the result store. The entry's key hashes the
  configuration and the exact training images, and it is written atomically once (a ``gan-``
  derived entry, :func:`mia_utils.store.derived_key`), so an interrupted training leaves nothing
  behind and a second call trains nothing.

Images enter as uint8 (N, 1, 28, 28) in 0..255; the networks work on floats in [-1, 1] (the
generator ends in tanh).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn as nn
import torch.nn.functional as F

#: The image shape (C, H, W) the networks make and read.
IMAGE_SHAPE = (1, 28, 28)

#: Bump when a change to the code changes what a configuration trains or stores.
GENERATOR_FORMAT = 1


@dataclass(frozen=True)
class GeneratorConfig:
    """A DCGAN's training: ``n_images`` training images (at most; fewer when the pool it is given is
    smaller), ``epochs`` passes over them in batches of ``batch_size``, a latent vector of ``latent``
    numbers, ``width`` channels in the networks' widest convolution (the generator's first; the
    other layers have half of it), Adam with step size ``lr`` and first-moment decay ``beta1`` (the
    DCGAN paper's 2e-4 and 0.5) for both networks, and ``seed`` for the initial weights, the
    order of the images and the latent draws."""

    n_images: int = 10_000
    epochs: int = 5
    batch_size: int = 64
    latent: int = 64
    width: int = 64
    lr: float = 2e-4
    beta1: float = 0.5
    seed: int = 0

    def __post_init__(self):
        problems = list(self.problems())
        if problems:
            raise ValueError("invalid generator configuration:\n" + "\n".join(f"  - {p}" for p in problems))

    def problems(self):
        """One message per invalid field: its name, its value and what is allowed."""
        ranges = {"n_images": (2, 1_000_000), "epochs": (1, 1_000), "batch_size": (2, 4_096), "latent": (1, 1_024),
                  "width": (2, 1_024), "seed": (0, 2 ** 63 - 1)}
        for name, (low, high) in ranges.items():
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                yield f"{name}: got {value!r}; must be an integer in {low}..{high}"
            elif not low <= value <= high:
                yield f"{name}: got {value!r}; allowed {low}..{high}"
        if isinstance(self.width, int) and not isinstance(self.width, bool) and self.width % 2:
            yield f"width: got {self.width!r}; must be even (the narrower layers have width / 2 channels)"
        for name, low, high in (("lr", 0.0, 1.0), ("beta1", 0.0, 1.0)):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                yield f"{name}: got {value!r}; must be a number in ({low}, {high})" if name == "lr" else \
                      f"{name}: got {value!r}; must be a number in [{low}, {high})"
            elif name == "lr" and not low < value <= high:
                yield f"lr: got {value!r}; allowed 0 < lr <= 1"
            elif name == "beta1" and not low <= value < high:
                yield f"beta1: got {value!r}; allowed 0 <= beta1 < 1"

    def to_dict(self) -> dict:
        return asdict(self)

    def replace(self, **changes) -> "GeneratorConfig":
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ValueError(f"{', '.join(sorted(unknown))}: not a generator setting; allowed: "
                             f"{', '.join(f.name for f in fields(self))}")
        return GeneratorConfig(**{**self.to_dict(), **changes})


class Generator(nn.Module):
    """latent (N, latent) -> images (N, 1, 28, 28) in [-1, 1]: a linear layer to ``width`` maps of
    7 x 7, then two stride-2 transposed convolutions (7 -> 14 -> 28), batch norm and ReLU between."""

    def __init__(self, latent: int, width: int):
        super().__init__()
        self.latent, self.width = latent, width
        self.project = nn.Sequential(nn.Linear(latent, width * 7 * 7, bias=False), nn.BatchNorm1d(width * 7 * 7),
                                     nn.ReLU())
        self.upsample = nn.Sequential(
            nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False), nn.BatchNorm2d(width // 2), nn.ReLU(),
            nn.ConvTranspose2d(width // 2, 1, 4, 2, 1), nn.Tanh())

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.upsample(self.project(z).view(-1, self.width, 7, 7))


class Discriminator(nn.Module):
    """images (N, 1, 28, 28) in [-1, 1] -> logits (N,) of "real": two stride-2 convolutions
    (28 -> 14 -> 7) with leaky ReLU (slope 0.2), batch norm on the second, then a linear layer."""

    def __init__(self, width: int):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width // 2, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width // 2, width, 4, 2, 1, bias=False), nn.BatchNorm2d(width), nn.LeakyReLU(0.2))
        self.classify = nn.Linear(width * 7 * 7, 1)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.classify(self.features(images).flatten(1)).squeeze(1)


def _dcgan_init(module: nn.Module) -> None:
    """The DCGAN paper's initialisation: weights N(0, 0.02), batch-norm scales N(1, 0.02)."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
        nn.init.normal_(module.weight, 0.0, 0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
        nn.init.normal_(module.weight, 1.0, 0.02)
        nn.init.zeros_(module.bias)


def _checked_images(images: torch.Tensor) -> torch.Tensor:
    if images.dtype != torch.uint8 or images.dim() != 4 or tuple(images.shape[1:]) != IMAGE_SHAPE:
        raise ValueError(f"images: expected uint8 (N, 1, 28, 28), got {images.dtype} {tuple(images.shape)}")
    return images


def _to_signed(images: torch.Tensor) -> torch.Tensor:
    """uint8 0..255 -> float32 in [-1, 1]."""
    return images.to(torch.float32).div_(127.5).sub_(1.0)


def _to_uint8(images: torch.Tensor) -> torch.Tensor:
    """float in [-1, 1] -> uint8 0..255 (rounded)."""
    return ((images.detach().float().cpu() + 1.0) * 127.5).round_().clamp_(0, 255).to(torch.uint8)


@dataclass
class GanResult:
    """What :func:`train_gan` produced: the ``generator`` (eval mode, on the CPU), the per-epoch
    ``history`` (dicts with ``epoch``, ``d_loss`` and ``g_loss``, mean losses in nats over the epoch's
    batches, ``d_real`` and ``d_fake``, the discriminator's mean probability of "real" on the
    epoch's real and generated images, and ``seconds``, its wall time), the ``n_images`` it trained on
    and the total training ``seconds``."""

    generator: Generator
    history: list
    n_images: int
    seconds: float


def train_gan(config: GeneratorConfig, images: torch.Tensor, device: str | torch.device = "cpu") -> GanResult:
    """Train a DCGAN on ``images`` (uint8 (N, 1, 28, 28), N >= 2; the first ``config.n_images`` of them
    are used, so pass them already shuffled or chosen) with the non-saturating loss: the discriminator
    minimises the cross-entropy of real (label 1) vs generated (label 0), the generator the
    cross-entropy of its images labelled real. One discriminator step, then one generator step, per
    batch; an incomplete last batch is dropped (each epoch has at least one batch).

    On the CPU it trains on one thread (restored afterwards): the networks are too small to gain from
    a second, and two threads on two cores that other work also uses ran many times slower here.
    Deterministic given ``config.seed`` for a fixed device and PyTorch build: the seed sets the initial
    weights, the order of the images in each epoch and every latent draw."""
    images = _checked_images(images)[:config.n_images]
    if len(images) < 2:
        raise ValueError(f"images: need at least 2 training images, got {len(images)}")
    device = torch.device(device)
    if device.type == "cpu":
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return _train(config, images, device)
        finally:
            torch.set_num_threads(threads)
    return _train(config, images, device)


def _train(config: GeneratorConfig, images: torch.Tensor, device: torch.device) -> GanResult:
    batch_size = min(config.batch_size, len(images))
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(config.seed)
        generator, discriminator = Generator(config.latent, config.width), Discriminator(config.width)
        generator.apply(_dcgan_init)
        discriminator.apply(_dcgan_init)
    generator, discriminator = generator.to(device).train(), discriminator.to(device).train()
    options = {"lr": config.lr, "betas": (config.beta1, 0.999)}
    g_optimizer = torch.optim.Adam(generator.parameters(), **options)
    d_optimizer = torch.optim.Adam(discriminator.parameters(), **options)
    order_rng = torch.Generator().manual_seed(config.seed + 1)
    latent_rng = torch.Generator(device=device).manual_seed(config.seed + 2)
    real_all = _to_signed(images).to(device)
    history, started = [], time.perf_counter()
    for epoch in range(1, config.epochs + 1):
        epoch_start = time.perf_counter()
        sums = torch.zeros(4, dtype=torch.float64)
        order = torch.randperm(len(real_all), generator=order_rng).to(device)
        batches = order[:len(order) - len(order) % batch_size].split(batch_size)
        for batch in batches:
            real = real_all[batch]
            fake = generator(torch.randn(len(batch), config.latent, generator=latent_rng, device=device))
            real_logits, fake_logits = discriminator(real), discriminator(fake.detach())
            d_loss = (F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
                      + F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits)))
            d_optimizer.zero_grad(set_to_none=True)
            d_loss.backward()
            d_optimizer.step()
            fooled = discriminator(fake)
            g_loss = F.binary_cross_entropy_with_logits(fooled, torch.ones_like(fooled))
            g_optimizer.zero_grad(set_to_none=True)
            g_loss.backward()
            g_optimizer.step()
            sums += torch.tensor([d_loss.item(), g_loss.item(), real_logits.sigmoid().mean().item(),
                                  fake_logits.sigmoid().mean().item()], dtype=torch.float64)
        means = (sums / len(batches)).tolist()
        history.append({"epoch": epoch, "d_loss": means[0], "g_loss": means[1], "d_real": means[2], "d_fake": means[3],
                        "seconds": time.perf_counter() - epoch_start})
    return GanResult(generator.cpu().eval(), history, len(images), time.perf_counter() - started)


@torch.no_grad()
def sample_images(generator: Generator, n: int, seed: int = 0, batch_size: int = 1024) -> torch.Tensor:
    """``n`` images (uint8 (n, 1, 28, 28), 0..255) from ``generator`` in eval mode (batch norm uses its
    running statistics, so an image does not depend on the others in its batch), from latent vectors
    drawn with ``seed`` (the same seed gives the same images)."""
    if not isinstance(n, int) or isinstance(n, bool) or n < 1:
        raise ValueError(f"n: got {n!r}; must be an integer >= 1")
    generator = generator.eval()
    rng = torch.Generator().manual_seed(seed)
    latents = torch.randn(n, generator.latent, generator=rng)
    device = next(generator.parameters()).device
    return torch.cat([_to_uint8(generator(chunk.to(device))) for chunk in latents.split(batch_size)])


def images_digest(images: torch.Tensor) -> str:
    """SHA-256 (hex) of uint8 ``images`` (their shape and bytes): names a training set in a store key."""
    images = _checked_images(images).contiguous()
    digest = hashlib.sha256(str(tuple(images.shape)).encode())
    digest.update(images.numpy().tobytes())
    return digest.hexdigest()


def generator_key(config: GeneratorConfig, images: torch.Tensor) -> str:
    """The store key of the generator ``config`` trains on ``images`` (the first ``config.n_images`` of
    them): a ``gan-`` derived key hashing the configuration, the images and :data:`GENERATOR_FORMAT`."""
    from mia_utils.store import derived_key

    used = _checked_images(images)[:config.n_images]
    return derived_key("gan-", {"config": config.to_dict(), "images": images_digest(used), "format": GENERATOR_FORMAT})


@dataclass(frozen=True)
class StoredGenerator:
    """A generator kept in the store: its ``key``, ``config``, the trained ``generator`` (eval mode, CPU),
    its training ``history`` (see :class:`GanResult`), the ``n_images`` it trained on, its training
    ``train_seconds`` (wall time when it was trained, s) and ``from_store`` (read back, not trained now)."""

    key: str
    config: GeneratorConfig
    generator: Generator
    history: list
    n_images: int
    train_seconds: float
    from_store: bool


def _load(config: GeneratorConfig, key: str, entry: dict) -> StoredGenerator:
    saved = entry["json"]["generator"]
    generator = Generator(config.latent, config.width)
    generator.load_state_dict(entry["tensors"]["weights"])
    return StoredGenerator(key, config, generator.eval(), saved["history"], saved["n_images"], saved["train_seconds"],
                           from_store=True)


def trained_generator(config: GeneratorConfig, images: torch.Tensor, store=None, device=None) -> StoredGenerator:
    """The DCGAN of ``config`` trained on ``images`` (uint8 (N, 1, 28, 28); its first ``config.n_images``):
    read from ``store`` when a valid entry of :func:`generator_key` exists, else trained on ``device``
    (None: :func:`mia_utils.train.default_device`) by :func:`train_gan` and written once, atomically,
    with the generator's weights and its history (the discriminator is not kept). Training happens in
    memory before anything is written, so an interrupted call leaves no entry. ``store``: a
    :class:`mia_utils.store.ResultStore` (None = the default store)."""
    from mia_utils.store import ResultStore
    from mia_utils.train import default_device

    store = store or ResultStore()
    key = generator_key(config, images)
    entry = store.load(key)
    if entry is not None:
        return _load(config, key, entry)
    device = torch.device(device) if device is not None else default_device()
    result = train_gan(config, images, device)
    saved = {"config": config.to_dict(), "history": result.history, "n_images": result.n_images,
             "train_seconds": result.seconds, "device": str(device), "format": GENERATOR_FORMAT,
             "torch": torch.__version__}
    store.save(key, {"generator": saved}, {"weights": result.generator.state_dict()})
    entry = store.load(key)
    if entry is None:
        raise RuntimeError(f"the store entry {store.path(key)} could not be read back after writing")
    stored = _load(config, key, entry)
    return StoredGenerator(key, config, stored.generator, stored.history, stored.n_images, stored.train_seconds,
                           from_store=False)
