import numpy as np
import pytest

from metgan.gan.config import GanConfig
from tests.gan_support import TINY


def tiny(**changes):
    return GanConfig.from_dict({**TINY, **changes})


@pytest.mark.parametrize(("height", "width"), [(32, 32), (40, 32), (80, 64)])
@pytest.mark.parametrize("preset", ["default", "origin"])
def test_builders_output_shapes_for_square_and_5_4_sizes(height, width, preset):
    from metgan.gan.model import build_discriminator, build_generator

    config = GanConfig.from_dict({**TINY, "preset": preset, "height": height, "width": width})
    generator, discriminator = build_generator(config), build_discriminator(config)
    assert generator.name == "generator" and discriminator.name == "discriminator"
    assert generator.output_shape == (None, height, width, 3)
    assert discriminator.output_shape == (None, 1)
    images = generator(np.zeros((2, config.noise_dim), np.float32), training=False)
    assert images.shape == (2, height, width, 3)
    assert discriminator(images, training=False).shape == (2, 1)


def test_a_resizing_generator_upsamples_without_transposed_convolutions():
    from metgan.gan.model import build_generator

    config = tiny(g_upsample="resize", g_kernel=3)
    generator = build_generator(config)
    kinds = {type(layer).__name__ for layer in generator.layers}
    assert "UpSampling2D" in kinds and "Conv2DTranspose" in kinds  # only the stride-1 layer to the image
    assert sum(type(layer).__name__ == "Conv2DTranspose" for layer in generator.layers) == 1
    assert generator(np.zeros((2, config.noise_dim), np.float32), training=False).shape == (2, 40, 32, 3)


def test_grayscale_and_spectral_norm_and_dense_layers_build():
    from metgan.gan.model import build_discriminator, build_generator

    config = tiny(channels=1, d_norm="spectral", g_dense=1, d_dense=1)
    assert build_generator(config).output_shape == (None, 40, 32, 1)
    names = [layer.name for layer in build_discriminator(config).layers]
    assert any(name.endswith("_sn") for name in names)


def test_diffaugment_is_differentiable_and_keeps_shapes():
    import tensorflow as tf

    from metgan.gan.augment import diff_augment

    images = tf.Variable(tf.random.uniform([4, 40, 32, 3], -1, 1))
    rng = tf.random.Generator.from_seed(1)
    with tf.GradientTape() as tape:
        out = diff_augment(images, ("color", "translation", "cutout"), rng)
        total = tf.reduce_sum(out)
    assert out.shape == images.shape
    grads = tape.gradient(total, images)
    assert grads is not None and float(tf.reduce_sum(tf.abs(grads))) > 0


def _breaker_for(gan, config, tmp_path, warmup=0):
    """A breaker with no warm-up by default: these tests count the patience epochs alone."""
    from metgan.gan.callbacks import CollapseBreaker, TrialState

    latents = np.random.default_rng(0).standard_normal((config.n_samples, config.noise_dim)).astype(np.float32)
    state = TrialState(trial_dir=tmp_path, config=config, latents=latents, reals=np.zeros((4, 40, 32, 3), np.uint8),
                       steps_per_epoch=1)
    breaker = CollapseBreaker(state, within_threshold=config.collapse_within_std,
                              across_threshold=config.collapse_across_std, patience=config.collapse_patience,
                              warmup=warmup)
    breaker.set_model(gan)
    return breaker, state


def test_collapse_breaker_stops_a_constant_generator_after_patience(tmp_path):
    from metgan.gan.model import build_gan

    config = tiny(collapse_patience=3)
    gan = build_gan(config)
    to_image = gan.generator.get_layer("to_image")
    kernel, bias = to_image.get_weights()
    to_image.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.3)])  # every z -> one flat colour
    breaker, state = _breaker_for(gan, config, tmp_path)
    for epoch in range(2):
        breaker.on_epoch_end(epoch)
        assert not gan.stop_training
    breaker.on_epoch_end(2)
    assert gan.stop_training and state.stop_reason == "collapsed"
    assert "within-image std 0.00" in state.stop_detail


def test_collapse_breaker_waits_out_the_warm_up(tmp_path):
    from metgan.gan.callbacks import collapse_warmup
    from metgan.gan.model import build_gan

    config = tiny(collapse_patience=1, epochs=5)
    gan = build_gan(config)
    to_image = gan.generator.get_layer("to_image")
    kernel, bias = to_image.get_weights()
    to_image.set_weights([np.zeros_like(kernel), np.full_like(bias, 0.3)])
    breaker, state = _breaker_for(gan, config, tmp_path, warmup=collapse_warmup(config.epochs))
    for epoch in range(breaker.warmup):
        breaker.on_epoch_end(epoch)
        assert not gan.stop_training, f"fired at epoch {epoch + 1}, inside the warm-up"
    breaker.on_epoch_end(breaker.warmup)
    assert gan.stop_training and state.stop_reason == "collapsed"


def test_collapse_breaker_catches_identical_detailed_images(tmp_path):
    from metgan.gan.model import build_gan

    config = tiny(collapse_patience=1)
    gan = build_gan(config)
    seed_layer = gan.generator.get_layer("seed")
    weights = seed_layer.get_weights()
    seed_layer.set_weights([np.zeros_like(weights[0])] + weights[1:])  # z ignored: one image for all z
    for _ in range(30):  # let batch-norm statistics settle as training would
        gan.generator(np.zeros((16, config.noise_dim), np.float32), training=True)
    breaker, state = _breaker_for(gan, config, tmp_path)
    breaker.on_epoch_end(0)
    assert state.stop_reason == "collapsed" and "across-sample std 0.00" in state.stop_detail


def test_collapse_breaker_leaves_a_healthy_generator_running(tmp_path):
    from metgan.gan.model import build_gan

    config = tiny(collapse_patience=1)
    gan = build_gan(config)
    rng = np.random.default_rng(0)
    for _ in range(30):  # batch-norm statistics as after some training steps
        gan.generator(rng.standard_normal((16, config.noise_dim)).astype(np.float32), training=True)
    breaker, state = _breaker_for(gan, config, tmp_path)
    for epoch in range(3):
        breaker.on_epoch_end(epoch)
    assert not gan.stop_training and state.stop_reason is None and state.collapse_streak == 0


def test_nan_guard_stops_at_once_and_records_the_reason(tmp_path):
    from metgan.gan.callbacks import NanGuard, TrialState
    from metgan.gan.model import build_gan

    config = tiny()
    gan = build_gan(config)
    state = TrialState(trial_dir=tmp_path, config=config, latents=np.zeros((1, 16), np.float32),
                       reals=np.zeros((4, 40, 32, 3), np.uint8), steps_per_epoch=1)
    guard = NanGuard(state)
    guard.set_model(gan)
    guard.on_train_batch_end(0, {"d_loss": 0.7, "g_loss": 0.7})
    assert not gan.stop_training
    guard.on_train_batch_end(1, {"d_loss": float("nan"), "g_loss": 0.7})
    assert gan.stop_training and state.stop_reason == "nan" and "d_loss" in state.stop_detail


def test_the_breaker_hands_its_measurements_to_the_one_writer_through_keras_logs(tmp_path):
    from metgan import trialdir
    from metgan.gan.callbacks import EpochRecord, QualityMetrics
    from metgan.gan.model import build_gan

    config = tiny(collapse_patience=5)
    gan = build_gan(config)
    breaker, state = _breaker_for(gan, config, tmp_path)
    writer = EpochRecord(state)
    writer.set_model(gan)
    logs = {"d_loss": 0.7, "g_loss": 0.8, "epoch_seconds": 2.0, "epoch_images": 32,
            **dict.fromkeys(QualityMetrics.KEYS)}
    breaker.on_epoch_end(0, logs)
    writer.on_epoch_end(0, logs)
    [line] = trialdir.read_metrics(tmp_path)
    assert line["within_std"] == pytest.approx(logs["within_std"]) and line["within_std"] > 0
    assert line["across_std"] == pytest.approx(logs["across_std"]) and line["images_per_s"] == 16.0
    assert not hasattr(state, "last_metrics")  # no side channel between callbacks

    # The writer run before a producer refuses to write a line with silent gaps.
    with pytest.raises(RuntimeError, match=r"within_std \(from CollapseBreaker\)"):
        writer.on_epoch_end(1, {k: v for k, v in logs.items() if k not in ("within_std", "across_std")})
    assert len(trialdir.read_metrics(tmp_path)) == 1


# --- the FastGAN-style architecture -------------------------------------------------------------

FASTGAN_SIZES = [(40, 32, 3), (80, 64, 4), (160, 128, 5), (320, 256, 6)]  # (height, width, blocks)


@pytest.mark.parametrize(("height", "width", "blocks"), FASTGAN_SIZES)
@pytest.mark.parametrize("channels", [1, 3])
def test_fastgan_builders_output_shapes_for_every_subset_size(height, width, blocks, channels):
    from metgan.gan import fastgan

    config = GanConfig.from_dict({"preset": "fastgan", "height": height, "width": width, "channels": channels,
                                  "g_blocks": blocks, "d_blocks": blocks, "g_filters": 16, "g_seed_filters": 16,
                                  "d_filters": 4})
    generator = fastgan.build_generator(config)
    discriminator = fastgan.build_discriminator(config)
    decoder = fastgan.build_decoder(config)
    images = generator(np.zeros((2, config.noise_dim), np.float32), training=False)
    assert images.shape == (2, height, width, channels)
    logits, whole, part = discriminator(images, training=False)
    final_h, final_w = height // 2 ** blocks, width // 2 ** blocks
    assert logits.shape == (2, 2 * final_h * final_w)  # the patch logits of both scales
    assert whole.shape[1:3] == (2 * final_h, 2 * final_w) and part.shape[1:3] == (4 * final_h, 4 * final_w)
    whole_rec, part_rec = decoder([whole, fastgan.quarter(part, 3)], training=False)
    (whole_size, part_size) = fastgan.reconstruction_sizes(config)
    assert whole_rec.shape == (2, *whole_size, channels) and part_rec.shape == (2, *part_size, channels)
    assert height % whole_size[0] == 0 and (height // 2) % part_size[0] == 0  # targets shrink evenly
    names = [layer.name for layer in generator.layers]
    assert any(name.startswith("sle_") for name in names) and any(name.endswith("_noise") for name in names)
    assert all(isinstance(layer, __import__("keras").layers.SpectralNormalization)
               for layer in discriminator.layers if "conv" in layer.name or layer.name.startswith("down_")
               if not layer.name.endswith(("_lrelu", "_bn")))


def test_object_chroma_sees_a_grey_vase_that_color_distance_misses():
    from metgan.gan.metrics import color_distance, color_stats, object_chroma
    from tests.gan_support import vase_images

    coloured = vase_images(16)
    grey = coloured.mean(axis=-1, keepdims=True).repeat(3, axis=-1).astype(np.uint8)
    assert object_chroma(coloured) > 10 and object_chroma(grey) < 2
    assert object_chroma(grey[..., :1]) is None
    assert color_distance(color_stats(grey), color_stats(coloured)) < 60  # the background dominates it


def test_epoch_summary_prints_the_image_count_beside_the_swd_and_the_object_chroma():
    from metgan.gan.callbacks import epoch_summary

    text = epoch_summary({"swd": 81.2, "swd_real": 23.1, "swd_count": 64, "chroma": 20.0, "chroma_real": 42.0})
    assert "SWD 81.2 = 3.5x the data's floor (23.1): rough" in text and "[64 img a side]" in text
    assert "chroma 20 (real 42)" in text
