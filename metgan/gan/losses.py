"""GAN losses on discriminator logits: non-saturating, hinge, WGAN(-GP), least squares, relativistic.

Each loss returns (d_loss, g_loss_fn): the discriminator loss from real and fake logits, and the
generator's loss from fake logits. The origin's "dense sigmoid + binary cross-entropy" is the
non-saturating loss; it is computed here from logits (the same value, without the float32
saturation of a sigmoid followed by a log).

``relativistic`` is RpGAN (Jolicoeur-Martineau 2019; R3GAN's loss): D scores each real image
against the generated image it is paired with, softplus(-(D(real) - D(fake))), and G the reverse;
the generator's loss therefore needs D's real logits too. With the zero-centred penalties R1 (on
real images) and R2 (on generated ones) it converges locally (Huang et al. 2024).
"""

from __future__ import annotations

from metgan.gan._tf import tensorflow

tf = tensorflow()


def _bce(logits, label: float):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.fill(tf.shape(logits), label), logits=logits))


def discriminator_loss(kind: str, real_logits, fake_logits):
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    if kind == "non-saturating":
        return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)
    if kind == "hinge":
        return (tf.reduce_mean(tf.nn.relu(1.0 - real_logits))
                + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits)))
    if kind == "wgan-gp":
        return tf.reduce_mean(fake_logits) - tf.reduce_mean(real_logits)
    if kind == "least-squares":
        return 0.5 * (tf.reduce_mean(tf.square(real_logits - 1.0)) + tf.reduce_mean(tf.square(fake_logits)))
    if kind == "relativistic":
        return tf.reduce_mean(tf.nn.softplus(fake_logits - real_logits))
    raise ValueError(f"unknown loss {kind!r}")


def hinge_soft_real_loss(real_logits, fake_logits, rng):
    """FastGAN's discriminator hinge: the real margin is drawn per logit from [0.8, 1.0], the fake one is 1."""
    real_logits = tf.cast(real_logits, tf.float32)
    fake_logits = tf.cast(fake_logits, tf.float32)
    margin = 0.8 + 0.2 * rng.uniform(tf.shape(real_logits))
    return tf.reduce_mean(tf.nn.relu(margin - real_logits)) + tf.reduce_mean(tf.nn.relu(1.0 + fake_logits))


def generator_loss(kind: str, fake_logits, real_logits=None):
    """G's loss from D's logits on its images (and, for ``relativistic``, on the paired real ones)."""
    fake_logits = tf.cast(fake_logits, tf.float32)
    if kind == "relativistic":
        return tf.reduce_mean(tf.nn.softplus(tf.cast(real_logits, tf.float32) - fake_logits))
    if kind == "non-saturating":
        return _bce(fake_logits, 1.0)
    if kind in ("hinge", "wgan-gp"):
        return -tf.reduce_mean(fake_logits)
    if kind == "least-squares":
        return 0.5 * tf.reduce_mean(tf.square(fake_logits - 1.0))
    raise ValueError(f"unknown loss {kind!r}")


def gradient_penalty(discriminator, real, fake, rng, augment=None):
    """WGAN-GP: (||grad D(x_hat)|| - 1)^2 on random interpolates of real and fake."""
    alpha = tf.cast(rng.uniform([tf.shape(real)[0], 1, 1, 1]), real.dtype)
    mixed = real + alpha * (tf.cast(fake, real.dtype) - real)
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        logits = discriminator(augment(mixed) if augment else mixed, training=True)
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
    grads = tf.cast(tape.gradient(total, mixed), tf.float32)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.reduce_mean(tf.square(norms - 1.0))


def r1_penalty(discriminator, real, augment=None):
    """R1: mean squared gradient norm of D on real images (zero-centred); on generated images it is R2."""
    with tf.GradientTape() as tape:
        tape.watch(real)
        logits = discriminator(augment(real) if augment else real, training=True)
        total = tf.reduce_sum(tf.cast(logits, tf.float32))
    grads = tf.cast(tape.gradient(total, real), tf.float32)
    return tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]))
