"""DiffAugment (Zhao et al. 2020): differentiable colour, translation and cutout in TensorFlow.

The same random transform family is applied to real and fake images before every call of the
discriminator, in both the D and the G steps, so gradients flow through it to the generator.
Images are NHWC in [-1, 1]; randomness comes from the ``tf.random.Generator`` passed in, whose
state is checkpointed with the trial. With adaptive augmentation (``ada_target``) each policy
applies to a sample with a probability the training step adjusts (:class:`metgan.gan.model.GAN`).
"""

from __future__ import annotations

from metgan.gan._tf import tensorflow

tf = tensorflow()


def color(x, rng):
    """Random brightness, saturation and contrast per sample."""
    batch = tf.shape(x)[0]
    dtype = x.dtype
    x = x + tf.cast(rng.uniform([batch, 1, 1, 1]) - 0.5, dtype)
    if x.shape[-1] == 3:
        mean = tf.reduce_mean(x, axis=3, keepdims=True)
        x = (x - mean) * tf.cast(rng.uniform([batch, 1, 1, 1]) * 2.0, dtype) + mean
    mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
    x = (x - mean) * tf.cast(rng.uniform([batch, 1, 1, 1]) + 0.5, dtype) + mean
    return x


def translation(x, rng, ratio: float = 0.125):
    """Shift each sample by up to ``ratio`` of its size, filling with zeros (mid grey)."""
    height, width = x.shape[1], x.shape[2]
    batch = tf.shape(x)[0]
    shift_y, shift_x = int(height * ratio + 0.5), int(width * ratio + 0.5)
    ty = rng.uniform_full_int([batch, 1], dtype=tf.int32) % (2 * shift_y + 1) - shift_y
    tx = rng.uniform_full_int([batch, 1], dtype=tf.int32) % (2 * shift_x + 1) - shift_x
    padded = tf.pad(x, [[0, 0], [shift_y, shift_y], [shift_x, shift_x], [0, 0]])
    rows = tf.range(height)[None, :] + shift_y + ty
    cols = tf.range(width)[None, :] + shift_x + tx
    x = tf.gather(padded, rows, axis=1, batch_dims=1)
    return tf.gather(x, cols, axis=2, batch_dims=1)


def cutout(x, rng, ratio: float = 0.5):
    """Zero a random rectangle of ``ratio`` of each side in each sample."""
    height, width = x.shape[1], x.shape[2]
    batch = tf.shape(x)[0]
    cut_h, cut_w = int(height * ratio + 0.5), int(width * ratio + 0.5)
    cy = rng.uniform_full_int([batch, 1, 1], dtype=tf.int32) % (height + (1 - cut_h % 2))
    cx = rng.uniform_full_int([batch, 1, 1], dtype=tf.int32) % (width + (1 - cut_w % 2))
    ys = tf.range(height)[None, :, None]
    xs = tf.range(width)[None, None, :]
    inside = (tf.abs(ys - cy) <= cut_h // 2) & (tf.abs(xs - cx) <= cut_w // 2)
    mask = tf.cast(tf.logical_not(inside), x.dtype)[..., None]
    return x * mask


_POLICIES = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x, policies, rng, probability=None):
    """Apply the named policies in the canonical order colour, translation, cutout.

    With ``probability`` (a scalar tensor, adaptive augmentation) each policy transforms each
    sample with that probability and leaves it unchanged otherwise, as StyleGAN2-ADA does; at 0
    the images pass through untouched.
    """
    for name in ("color", "translation", "cutout"):
        if name not in policies:
            continue
        changed = _POLICIES[name](x, rng)
        if probability is None:
            x = changed
        else:
            chosen = rng.uniform([tf.shape(x)[0], 1, 1, 1]) < tf.cast(probability, tf.float32)
            x = tf.where(chosen, changed, x)
    return x
