"""The DCGAN of chapter 08 (mia_utils.generative) and the images it learns from: shapes, determinism,
the store round-trip, and bad parameters, on the smoke profile's sizes."""

import pytest
import torch

from mia_utils import generative
from mia_utils.attacks import ood
from mia_utils.book import ood_scores

SMOKE = ood_scores.GENERATORS["smoke"]


def striped_images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 (n, 1, 28, 28) images with one bright horizontal band each at a random row, on noise:
    a structured distribution a GAN can start to learn in a few steps."""
    rng = torch.Generator().manual_seed(seed)
    images = torch.randint(0, 40, (n, 1, 28, 28), generator=rng, dtype=torch.uint8)
    rows = torch.randint(0, 24, (n,), generator=rng)
    for image, row in zip(images, rows):
        image[0, row:row + 4] = 220
    return images


def weights_equal(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


@pytest.mark.parametrize("changes, named, allowed", [
    ({"epochs": 0}, "epochs: got 0", "allowed 1..1000"),
    ({"n_images": 1}, "n_images: got 1", "allowed 2..1000000"),
    ({"batch_size": 2.5}, "batch_size: got 2.5", "must be an integer"),
    ({"width": 7}, "width: got 7", "must be even"),
    ({"latent": 0}, "latent: got 0", "allowed 1..1024"),
    ({"lr": 0.0}, "lr: got 0.0", "allowed 0 < lr <= 1"),
    ({"beta1": 1.0}, "beta1: got 1.0", "allowed 0 <= beta1 < 1"),
    ({"seed": -1}, "seed: got -1", "allowed 0.."),
    ({"epochs": True}, "epochs: got True", "must be an integer"),
])
def test_bad_settings_name_the_parameter_value_and_what_is_allowed(changes, named, allowed):
    with pytest.raises(ValueError) as error:
        generative.GeneratorConfig(**changes)
    assert named in str(error.value) and allowed in str(error.value)
    with pytest.raises(ValueError, match="colour: not a generator setting; allowed: n_images, epochs"):
        SMOKE.replace(colour=3)


def test_networks_map_latents_to_images_and_images_to_logits():
    generator, discriminator = generative.Generator(latent=8, width=8), generative.Discriminator(width=8)
    images = generator(torch.randn(5, 8))
    assert images.shape == (5, 1, 28, 28) and images.min() >= -1 and images.max() <= 1
    assert discriminator(images).shape == (5,)


def test_training_is_deterministic_given_the_seed_and_changes_with_it():
    images = striped_images(96)
    torch.manual_seed(123)  # the global generator's state must not matter, only config.seed
    first = generative.train_gan(SMOKE, images)
    torch.manual_seed(456)
    again = generative.train_gan(SMOKE, images)
    assert weights_equal(first.generator, again.generator)
    def losses(result):
        return [{k: v for k, v in h.items() if k != "seconds"} for h in result.history]

    assert losses(first) == losses(again)
    assert len(first.history) == SMOKE.epochs and first.n_images == 96
    assert all(torch.isfinite(torch.tensor([h["d_loss"], h["g_loss"]])).all() for h in first.history)
    other = generative.train_gan(SMOKE.replace(seed=1), images)
    assert not weights_equal(first.generator, other.generator)
    # only the first n_images take part
    capped = generative.train_gan(SMOKE.replace(n_images=40), images)
    assert capped.n_images == 40
    assert weights_equal(capped.generator, generative.train_gan(SMOKE.replace(n_images=40), images[:40]).generator)


def test_training_moves_the_generator_towards_the_data():
    """After training on bright-band images, the generated images are brighter on average than those of
    the untrained generator (mean grey level): the loop learns something rather than nothing."""
    images = striped_images(512)
    config = SMOKE.replace(n_images=512, epochs=3)
    trained = generative.train_gan(config, images).generator
    with torch.random.fork_rng():
        torch.manual_seed(config.seed)
        untrained = generative.Generator(config.latent, config.width)
        untrained.apply(generative._dcgan_init)
    distance = {name: abs(generative.sample_images(g, 256, seed=3).float().mean() - images.float().mean())
                for name, g in (("trained", trained), ("untrained", untrained))}
    assert distance["trained"] < distance["untrained"]


def test_sampling_shapes_and_seeds():
    generator = generative.train_gan(SMOKE, striped_images(64)).generator
    images = generative.sample_images(generator, 7, seed=2)
    assert images.dtype == torch.uint8 and images.shape == (7, 1, 28, 28)
    assert torch.equal(images, generative.sample_images(generator, 7, seed=2))
    assert not torch.equal(images, generative.sample_images(generator, 7, seed=3))
    # an image does not depend on its batch (eval-mode batch norm), up to rounding: another batch
    # shape may take another CPU kernel, and a last-bit difference can move a pixel across a
    # quantization step, so uint8 pixels may differ by one level, never more
    rebatched = generative.sample_images(generator, 7, seed=2, batch_size=3)
    assert rebatched.shape == images.shape and (rebatched.int() - images.int()).abs().max().item() <= 1
    for bad in (0, -1, 2.0):
        with pytest.raises(ValueError, match=f"n: got {bad!r}; must be an integer >= 1"):
            generative.sample_images(generator, bad)


def test_bad_images_are_refused():
    with pytest.raises(ValueError, match=r"images: expected uint8 \(N, 1, 28, 28\), got torch.float32"):
        generative.train_gan(SMOKE, torch.zeros(4, 1, 28, 28))
    with pytest.raises(ValueError, match="images: need at least 2 training images, got 1"):
        generative.train_gan(SMOKE, striped_images(1))


def test_store_round_trip(store):
    images = striped_images(80)
    first = generative.trained_generator(SMOKE, images, store)
    assert not first.from_store and first.key.startswith("gan-") and first.n_images == 80
    assert store.keys() == [first.key] and store.run_keys() == []  # a derived entry, not a run
    assert store.verify(first.key)
    again = generative.trained_generator(SMOKE, images, store)
    assert again.from_store and again.key == first.key and again.history == first.history
    assert weights_equal(first.generator, again.generator)
    assert torch.equal(generative.sample_images(first.generator, 16, 1), generative.sample_images(again.generator, 16, 1))
    assert again.train_seconds == first.train_seconds > 0
    # other images or other settings: another entry
    assert generative.generator_key(SMOKE, striped_images(80, seed=1)) != first.key
    assert generative.generator_key(SMOKE.replace(epochs=2), images) != first.key
    # images beyond n_images do not change the key
    assert generative.generator_key(SMOKE.replace(n_images=50), images) == \
        generative.generator_key(SMOKE.replace(n_images=50), images[:50])


def test_an_interrupted_training_leaves_nothing(store, monkeypatch):
    def interrupted(config, images, device=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(generative, "train_gan", interrupted)
    with pytest.raises(KeyboardInterrupt):
        generative.trained_generator(SMOKE, striped_images(40), store)
    assert store.keys() == []
    assert not store.runs.exists() or not any(store.runs.iterdir())  # no staging folder either


def test_a_corrupt_entry_is_trained_again(store):
    images = striped_images(40)
    first = generative.trained_generator(SMOKE, images, store)
    (store.path(first.key) / "weights.safetensors").write_bytes(b"not weights")
    again = generative.trained_generator(SMOKE, images, store)
    assert not again.from_store and weights_equal(first.generator, again.generator)


def test_unused_population_leaves_out_members_and_evaluated_test_images():
    members, evaluated = torch.tensor([0, 3, 5]), torch.tensor([1, 2])
    pool = ood.unused_population(8, 4, members, evaluated, seed=0)
    assert sorted(pool.tolist()) == [1, 2, 4, 6, 7, 8 + 0, 8 + 3]
    assert torch.equal(pool, ood.unused_population(8, 4, members, evaluated, seed=0))
    assert not torch.equal(pool, ood.unused_population(8, 4, members, evaluated, seed=1))
    with pytest.raises(ValueError, match="members, evaluated_test: they cover all 2 \\+ 1 images"):
        ood.unused_population(2, 1, torch.tensor([0, 1]), torch.tensor([0]))


def test_generator_config_per_profile():
    from mia_utils.book.profiles import get_profile

    assert ood_scores.generator_config(get_profile("smoke"), 3) == SMOKE.replace(seed=3)
    assert set(ood_scores.GENERATORS) == {"smoke", "quick", "paper"}
    with pytest.raises(ValueError, match="profile: got 'huge'; chapter 08's generator is sized for smoke, quick, paper"):
        ood_scores.generator_config("huge", 0)


@pytest.mark.slow
def test_generated_inputs_on_the_smoke_profile(store, monkeypatch):
    """The smoke profile's path on Fashion-MNIST: the generator learns from the seed's unused population
    only (no member, no evaluated or adversary non-member), its images have the OOD sets' shape, and a
    second call reads it back."""
    from mia_utils.book.profiles import get_profile
    from mia_utils.data import gather, load_dataset, split_for

    profile, data = get_profile("smoke"), load_dataset("fmnist")
    split = split_for(profile.base_config("fmnist", seed=0), data.info)
    seen = []
    original = generative.trained_generator

    def spy(config, images, store=None, device=None):
        seen.append(images)
        return original(config, images, store, device)

    monkeypatch.setattr(generative, "trained_generator", spy)
    images, stored = ood_scores.generated_inputs(profile, 0, 30, data, split, store)
    assert images.dtype == torch.uint8 and images.shape == (30, 1, 28, 28)
    assert not stored.from_store and stored.n_images == SMOKE.n_images
    pool = ood.unused_population(data.info.n_train, data.info.n_test, split.members,
                                 torch.cat([split.eval_nonmembers, split.adv_nonmembers]), 0)
    assert torch.equal(seen[0], gather(data, pool[:SMOKE.n_images])[0])
    taken = set(split.members.tolist()) | {data.info.n_train + int(i) for i in
                                           torch.cat([split.eval_nonmembers, split.adv_nonmembers])}
    assert not taken & set(pool[:SMOKE.n_images].tolist())
    again, read = ood_scores.generated_inputs(profile, 0, 30, data, split, store)
    assert read.from_store and torch.equal(images, again)
    assert [k for k in store.keys() if k.startswith("gan-")] == [stored.key]
