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
])
def test_train_step_runs_and_reports_losses_and_accuracies(changes, mixed):
    from metgan.gan.data import training_dataset
    from metgan.gan.model import build_gan
    from tests.gan_support import vase_images

    config = GanConfig.from_dict({**TINY, **changes})
    gan = build_gan(config, precision=mixed)
    assert gan.generator.get_layer("up_0").dtype_policy.name == mixed
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
