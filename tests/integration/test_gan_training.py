"""The GAN's train steps, trained for real: each test fits a tiny model for an epoch or a few
(seconds each, about a minute together), so they live here rather than in the unit tier."""

import numpy as np
import pytest

from metgan.gan.config import GanConfig
from tests.gan_support import TINY


def tiny(**changes):
    return GanConfig.from_dict({**TINY, **changes})


def _fastgan_tiny(**changes):
    return GanConfig.from_dict({**TINY, "preset": "fastgan", "d_blocks": 3, "g_blocks": 3, "g_filters": 16,
                                "g_seed_filters": 16, "d_filters": 8, **changes})


@pytest.mark.parametrize(("changes", "mixed"), [
    ({}, "float32"),
    ({"loss": "hinge", "d_norm": "spectral", "r1_weight": 1.0, "diffaugment": ["color", "translation", "cutout"]},
     "float32"),
    ({"loss": "wgan-gp", "d_norm": "none", "ema_decay": 0.0}, "float32"),
    ({"loss": "least-squares", "d_steps": 2, "preset": "origin"}, "float32"),
    ({}, "mixed_float16"),  # the GPU path (float16 compute, loss scaling) also runs on a CPU
    ({}, "mixed_bfloat16"),  # the CPU path of mixed_precision: on
    ({"loss": "relativistic", "d_norm": "none", "r1_weight": 1.0, "r2_weight": 1.0, "penalty_every": 2}, "float32"),
])
def test_train_step_runs_and_reports_losses_and_accuracies(changes, mixed):
    from metgan.gan.data import training_dataset
    from metgan.gan.model import build_gan
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**TINY, **changes})
    gan = build_gan(config, precision=mixed)
    assert gan.generator.get_layer("up_0").dtype_policy.name == mixed
    assert gan.penalty_every == config.penalty_every
    dataset, steps = training_dataset(vase_images(32), batch_size=16, seed=0, first_epoch=0, epochs=1, x_flip=True)
    before = [w.copy() for w in gan.generator.get_weights()]
    history = gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0).history
    assert set(history) == {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"}
    assert all(np.isfinite(values[0]) for values in history.values())
    assert any(not np.array_equal(a, b) for a, b in zip(before, gan.generator.get_weights(), strict=True))


def test_ema_generator_follows_a_short_trial_instead_of_keeping_its_random_start():
    """With ema_decay 0.999 and no warm-up, 8 steps would leave 99% of the random initial weights
    in the EMA (0.999**8): a demo's 240 steps still 79%, and every sample would come from a near-
    initial generator. The warm-up decay (1 + step) / (10 + step) lets it follow from the start."""
    from metgan.gan.data import training_dataset
    from metgan.gan.model import build_gan
    from tests.gan_support import vase_images

    gan = build_gan(tiny(ema_decay=0.999))
    initial = [w.copy() for w in gan.ema_generator.get_weights()]
    dataset, steps = training_dataset(vase_images(32), batch_size=16, seed=0, first_epoch=0, epochs=4, x_flip=True)
    gan.fit(dataset, epochs=4, steps_per_epoch=steps, verbose=0)
    raw_moved = sum(float(np.sum((w - w0) ** 2)) for w, w0 in zip(gan.generator.get_weights(), initial, strict=True))
    ema_moved = sum(float(np.sum((w - w0) ** 2)) for w, w0 in zip(gan.ema_generator.get_weights(), initial,
                                                                   strict=True))
    assert raw_moved > 0
    assert ema_moved ** 0.5 > 0.3 * raw_moved ** 0.5


@pytest.mark.parametrize("mixed", ["float32", "mixed_float16", "mixed_bfloat16"])  # float16: the GPU path
def test_fastgan_train_step_trains_generator_discriminator_and_decoders(mixed):
    from metgan.gan.data import training_dataset
    from metgan.gan.model import build_gan
    from tests.gan_support import vase_images

    gan = build_gan(_fastgan_tiny(), precision=mixed)
    # float16's loss scaling skips the steps whose scaled gradients overflow, halving the scale each
    # time: give it enough steps to settle before asking that every part has learned something.
    count = 128 if mixed == "mixed_float16" else 32
    dataset, steps = training_dataset(vase_images(count), batch_size=16, seed=0, first_epoch=0, epochs=1,
                                      x_flip=True)
    before = {name: [w.copy() for w in model.get_weights()]
              for name, model in (("g", gan.generator), ("d", gan.discriminator), ("dec", gan.decoder))}
    history = gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0).history
    assert set(history) == {"d_loss", "g_loss", "d_acc_real", "d_acc_fake", "recon_loss"}
    assert all(np.isfinite(values[0]) for values in history.values()) and history["recon_loss"][0] > 0
    for name, model in (("g", gan.generator), ("d", gan.discriminator), ("dec", gan.decoder)):
        assert any(not np.array_equal(a, b) for a, b in zip(before[name], model.get_weights(), strict=True)), name


def test_fastgan_decoders_are_trained_on_real_images_only():
    """The reconstruction loss depends on the real batch and not at all on the fake one."""
    import tensorflow as tf

    from metgan.gan.model import build_gan
    from tests.gan_support import vase_images

    gan = build_gan(_fastgan_tiny(diffaugment=[]))
    real = tf.constant(vase_images(8).astype(np.float32) / 127.5 - 1.0)
    fake = tf.Variable(tf.random.uniform(real.shape, -1, 1))
    real_var = tf.Variable(real)
    seen = []
    original = gan.decoder.call

    def spy(inputs, *args, **kwargs):
        seen.append(inputs)
        return original(inputs, *args, **kwargs)

    gan.decoder.call = spy
    with tf.GradientTape(persistent=True) as tape:
        _, _, _, recon = gan._d_step_self_supervised(real_var, fake)
    assert seen, "the decoders did not run"
    assert tape.gradient(recon, fake) is None
    real_grad = tape.gradient(recon, real_var)
    assert real_grad is not None and float(tf.reduce_sum(tf.abs(real_grad))) > 0
    # the features the decoders got are D's features of the real batch (batch 8), not of real + fake
    assert all(tensor.shape[0] == 8 for tensor in seen[0])


def _r3gan_tiny(**changes):
    return GanConfig.from_dict({**TINY, "preset": "r3gan", "g_filters": 16, "g_seed_filters": 16, "d_filters": 8,
                                "group_size": 8, **changes})


def test_r3gan_trains_both_networks_with_residual_blocks_that_start_as_the_identity():
    from metgan.gan.data import training_dataset
    from metgan.gan.model import build_gan
    from tests.gan_support import vase_images

    config = _r3gan_tiny(ada_target=0.0)
    gan = build_gan(config)
    narrow = gan.generator.get_layer("up_0_block0_narrow")
    assert not np.any(narrow.get_weights()[0])  # zero-initialised: the block adds nothing at first
    assert gan.discriminator.get_layer("down_0_block0_grouped").groups == 2  # 16 channels in groups of 8
    assert not any("batch_normalization" in type(layer).__name__.lower() for layer in gan.generator.layers)
    g_before = [w.copy() for w in gan.generator.get_weights()]
    d_before = [w.copy() for w in gan.discriminator.get_weights()]
    dataset, steps = training_dataset(vase_images(32), batch_size=16, seed=0, first_epoch=0, epochs=1, x_flip=True)
    history = gan.fit(dataset, epochs=1, steps_per_epoch=steps, verbose=0).history
    assert set(history) == {"d_loss", "g_loss", "d_acc_real", "d_acc_fake"}
    assert all(np.isfinite(values[0]) for values in history.values())
    assert any(not np.array_equal(a, b) for a, b in zip(g_before, gan.generator.get_weights(), strict=True))
    assert any(not np.array_equal(a, b) for a, b in zip(d_before, gan.discriminator.get_weights(), strict=True))
    assert gan.generator.output_shape == (None, 40, 32, 3)


def test_the_gpu_preset_of_r3gan_is_the_cpu_one_wider_with_groups_of_16():
    from metgan.gan.model import build_gan
    from metgan.gan.r3gan import GroupedConv2D

    cpu, gpu = GanConfig.from_dict({"preset": "r3gan"}), GanConfig.from_dict({"preset": "r3gan-gpu", "height": 40,
                                                                              "width": 32})
    assert (gpu.group_size, gpu.res_blocks, gpu.batch_size) == (16, 2, 64)
    assert gpu.g_filters == 4 * cpu.g_filters and gpu.d_filters == 4 * cpu.d_filters and gpu.loss == cpu.loss
    gan = build_gan(gpu)
    grouped = [layer for layer in gan.discriminator.layers if isinstance(layer, GroupedConv2D)]
    assert grouped and all(layer.groups > 1 for layer in grouped)
    images = gan.generator(np.zeros((2, gpu.noise_dim), np.float32), training=False)
    assert images.shape == (2, 40, 32, 3) and gan.discriminator(images, training=False).shape == (2, 1)


def test_adaptive_augmentation_rises_while_d_wins_and_falls_while_it_loses(monkeypatch):
    """ADA's rule: p rises by batch x interval / ada_images per interval while r_t (2 x the share of
    reals scored positive - 1) is above the target, falls while below, and stays within [0, 1]."""
    import tensorflow as tf

    from metgan.gan.model import ADA_INTERVAL, build_gan

    gan = build_gan(_r3gan_tiny(ada_target=0.6, ada_images=1000))
    for _ in range(ADA_INTERVAL * 5):
        gan._adapt_augmentation(tf.constant(1.0), tf.constant(16))  # D scores every real positive: r_t = 1
    assert float(gan.ada_p.numpy()) == pytest.approx(5 * 16 * ADA_INTERVAL / 1000)
    for _ in range(ADA_INTERVAL * 50):
        gan._adapt_augmentation(tf.constant(0.5), tf.constant(16))  # r_t = 0, below the target
    assert float(gan.ada_p.numpy()) == 0.0
    assert float(gan.ada_steps.numpy()) == 0.0


def test_relativistic_losses_pair_each_real_with_a_fake():
    import tensorflow as tf

    from metgan.gan import losses

    real = tf.constant([[2.0], [0.0]])
    fake = tf.constant([[0.0], [2.0]])
    softplus = lambda x: np.log1p(np.exp(x))  # noqa: E731
    d = float(losses.discriminator_loss("relativistic", real, fake))
    g = float(losses.generator_loss("relativistic", fake, real))
    assert d == pytest.approx((softplus(-2.0) + softplus(2.0)) / 2, rel=1e-5)
    assert g == pytest.approx((softplus(2.0) + softplus(-2.0)) / 2, rel=1e-5)
    swapped = float(losses.discriminator_loss("relativistic", real, tf.constant([[2.0], [0.0]])))
    assert swapped == pytest.approx(softplus(0.0), rel=1e-5)  # pairs, not every real against every fake
