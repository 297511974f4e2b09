"""Model builders and the ``GAN`` Keras model with its training step.

``build_generator`` and ``build_discriminator`` return named functional Keras models built from a
:class:`~metgan.gan.config.GanConfig`. ``GAN`` is a ``keras.Model`` with
``compile(d_optimizer=..., g_optimizer=..., loss=...)`` and a ``train_step`` (keras.io style), so
``fit`` drives it and callbacks do every side effect; the step itself only computes.

The discriminator always outputs a logit; the losses in :mod:`metgan.gan.losses` take logits.
With ``architecture: fastgan`` the builders are :mod:`metgan.gan.fastgan`'s: its discriminator
returns [patch logits, two feature maps] and a decoder model rebuilds real images from those
features; the same ``GAN`` trains both kinds (the reconstruction loss only where a decoder exists).
With ``architecture: r3gan`` the builders are :mod:`metgan.gan.r3gan`'s (one logit, like DCGAN's).
"""

from __future__ import annotations

from metgan.gan import augment as augment_lib
from metgan.gan import fastgan, losses, r3gan
from metgan.gan._tf import tensorflow
from metgan.gan.config import GanConfig

tf = tensorflow()
import keras  # noqa: E402  (after TensorFlow, which sets the log level)

layers = keras.layers


def build_generator(config: GanConfig) -> keras.Model:
    """Noise -> [dense layers] -> dense to the seed grid -> ``g_blocks`` x2 upsampling blocks -> tanh."""
    batch_norm = config.g_norm == "batch"
    noise = keras.Input(shape=(config.noise_dim,), name="noise")
    x = noise
    for index in range(config.g_dense):
        x = layers.Dense(config.g_dense_units, use_bias=not batch_norm,
                         name=f"dense_{index}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=config.g_bn_momentum, name=f"dense_{index}_bn")(x)
        x = layers.ReLU(name=f"dense_{index}_relu")(x)
    seed_units = config.seed_height * config.seed_width * config.g_seed_filters
    x = layers.Dense(seed_units, use_bias=not batch_norm, name="seed")(x)
    if batch_norm:
        x = layers.BatchNormalization(momentum=config.g_bn_momentum, name="seed_bn")(x)
    x = layers.ReLU(name="seed_relu")(x)
    x = layers.Reshape((config.seed_height, config.seed_width, config.g_seed_filters), name="seed_grid")(x)
    filters = config.g_filters
    for block in range(config.g_blocks):
        if config.g_upsample == "resize":
            x = layers.UpSampling2D(2, interpolation="nearest", name=f"up_{block}_resize")(x)
            x = layers.Conv2D(filters, config.g_kernel, padding="same", use_bias=not batch_norm,
                              name=f"up_{block}")(x)
        else:
            x = layers.Conv2DTranspose(filters, config.g_kernel, strides=2, padding="same",
                                       use_bias=not batch_norm, name=f"up_{block}")(x)
        if batch_norm:
            x = layers.BatchNormalization(momentum=config.g_bn_momentum, name=f"up_{block}_bn")(x)
        x = layers.ReLU(name=f"up_{block}_relu")(x)
        filters = max(filters // 2, 1)
    x = layers.Conv2DTranspose(config.channels, config.g_kernel, strides=1, padding="same",
                               name="to_image")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(noise, image, name="generator")


def build_discriminator(config: GanConfig) -> keras.Model:
    """Image -> ``d_blocks`` stride-2 conv blocks (doubling filters) -> [dense layers] -> one logit."""
    def wrap(layer):
        return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if config.d_norm == "spectral" else layer

    image = keras.Input(shape=(config.height, config.width, config.channels), name="image")
    x = image
    filters = config.d_filters
    for block in range(config.d_blocks):
        # As in the origin: batch norm after every block, the first convolution keeps its bias.
        batch_norm = config.d_norm == "batch"
        x = wrap(layers.Conv2D(filters, config.d_kernel, strides=2, padding="same",
                               use_bias=not batch_norm or block == 0,
                               name=f"down_{block}"))(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"down_{block}_bn")(x)
        x = layers.LeakyReLU(negative_slope=config.d_leak, name=f"down_{block}_lrelu")(x)
        filters *= 2
    x = layers.Flatten(name="flatten")(x)
    for index in range(config.d_dense):
        x = wrap(layers.Dense(config.d_dense_units, name=f"dense_{index}"))(x)
        if config.d_norm == "batch":
            x = layers.BatchNormalization(name=f"dense_{index}_bn")(x)
        x = layers.LeakyReLU(negative_slope=config.d_leak, name=f"dense_{index}_lrelu")(x)
    if config.d_dropout > 0:
        x = layers.Dropout(config.d_dropout, name="dropout")(x)
    logit = wrap(layers.Dense(1, name="logit", dtype="float32"))(x)
    return keras.Model(image, logit, name="discriminator")


def build_models(config: GanConfig) -> tuple[keras.Model, keras.Model, keras.Model | None]:
    """(generator, discriminator, decoder or None) of ``config``'s architecture."""
    if config.architecture == "fastgan":
        return fastgan.build_generator(config), fastgan.build_discriminator(config), fastgan.build_decoder(config)
    if config.architecture == "r3gan":
        return r3gan.build_generator(config), r3gan.build_discriminator(config), None
    return build_generator(config), build_discriminator(config), None


# Adaptive augmentation: steps between adjustments of p (StyleGAN2-ADA adjusts every 4 minibatches).
ADA_INTERVAL = 4


class GAN(keras.Model):
    """A generator and a discriminator trained adversarially by ``fit``.

    With ``ema_decay > 0`` an exponential moving average of the generator's weights is kept in
    ``ema_generator`` (used for samples and metrics). Noise and augmentation draw from ``rng``,
    a ``tf.random.Generator`` whose state is checkpointed so a resumed trial continues the
    same random stream.

    With ``ada_target > 0`` (adaptive augmentation, Karras et al. 2020) each augmentation policy
    applies to a sample with probability ``ada_p``: every ``ADA_INTERVAL`` steps the mean of
    r_t = E[sign(D(real))] (2 x ``d_acc_real`` - 1) over those steps is compared with the target,
    and p moves up (D is overfitting) or down by the images of those steps over ``ada_images``.
    ``ada_p`` is a variable of the model, so checkpoints save it and a resumed trial continues
    with the same strength; it is in every step's logs.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, noise_dim: int,
                 seed: int = 0, ema_decay: float = 0.0, decoder: keras.Model | None = None,
                 ada_target: float = 0.0, ada_images: int = 20_000, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.decoder = decoder
        self.noise_dim = noise_dim
        self.ema_decay = ema_decay
        self.rng = tf.random.Generator.from_seed(seed)
        self.ema_generator = None
        if ema_decay > 0:
            self.ema_generator = keras.models.clone_model(generator)
            self.ema_generator.set_weights(generator.get_weights())
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_acc_real_tracker = keras.metrics.Mean(name="d_acc_real")
        self.d_acc_fake_tracker = keras.metrics.Mean(name="d_acc_fake")
        self.recon_loss_tracker = keras.metrics.Mean(name="recon_loss") if decoder is not None else None
        self.ada_target = float(ada_target)
        self.ada_images = int(ada_images)
        if self.ada_target > 0:
            self.ada_p = keras.Variable(0.0, trainable=False, name="ada_p")
            self.ada_rt_sum = keras.Variable(0.0, trainable=False, name="ada_rt_sum")
            self.ada_steps = keras.Variable(0.0, trainable=False, name="ada_steps")
        # The GAN has no weights of its own and its parts are built by their builders; marked
        # built, Keras saves and loads the whole of it (G, D, EMA G, both optimizers) by name.
        self.built = True

    def compile(self, d_optimizer, g_optimizer, *, loss: str = "non-saturating",
                diffaugment: tuple[str, ...] = (), r1_weight: float = 0.0, r2_weight: float = 0.0,
                gp_weight: float = 10.0, penalty_every: int = 1,
                d_steps: int = 1, g_batch_factor: int = 1, recon_weight: float = 1.0, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_kind = loss
        self.diffaugment = tuple(diffaugment)
        self.r1_weight = float(r1_weight)
        self.r2_weight = float(r2_weight)
        self.penalty_every = int(penalty_every)
        self.gp_weight = float(gp_weight)
        self.d_steps = int(d_steps)
        self.g_batch_factor = int(g_batch_factor)
        self.recon_weight = float(recon_weight)
        self.d_optimizer.build(self.d_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        trackers = [self.d_loss_tracker, self.g_loss_tracker, self.d_acc_real_tracker, self.d_acc_fake_tracker]
        return trackers + ([self.recon_loss_tracker] if self.recon_loss_tracker is not None else [])

    @property
    def d_variables(self):
        """What the D optimizer trains: D, and the reconstruction decoder when there is one."""
        extra = self.decoder.trainable_variables if self.decoder is not None else []
        return self.discriminator.trainable_variables + extra

    def logits(self, images, training: bool = True):
        """D's logits alone (the FastGAN-style D also returns feature maps)."""
        out = self.discriminator(images, training=training)
        return out[0] if isinstance(out, (list, tuple)) else out

    @property
    def sample_generator(self) -> keras.Model:
        """The generator used for samples and metrics: the EMA one when enabled."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    # --- the step ---------------------------------------------------------------------------

    def _augment(self, images):
        if not self.diffaugment:
            return images
        probability = self.ada_p if self.ada_target > 0 else None
        return augment_lib.diff_augment(images, self.diffaugment, self.rng, probability)

    def _adapt_augmentation(self, acc_real, batch):
        """ADA's update, without branches: every ADA_INTERVAL steps move p by the sign of the
        interval's mean r_t minus the target, then start a new interval."""
        self.ada_rt_sum.assign_add(2.0 * acc_real - 1.0)
        self.ada_steps.assign_add(1.0)
        due = tf.cast(self.ada_steps >= ADA_INTERVAL, tf.float32)
        mean_rt = self.ada_rt_sum / self.ada_steps
        step = tf.sign(mean_rt - self.ada_target) * tf.cast(batch, tf.float32) * ADA_INTERVAL / self.ada_images
        self.ada_p.assign(tf.clip_by_value(self.ada_p + due * step, 0.0, 1.0))
        self.ada_rt_sum.assign(self.ada_rt_sum * (1.0 - due))
        self.ada_steps.assign(self.ada_steps * (1.0 - due))

    def _noise(self, count):
        return self.rng.normal([count, self.noise_dim])

    def _scaled(self, optimizer, loss):
        return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss

    def _d_step(self, real, fake):
        if self.decoder is not None:
            return self._d_step_self_supervised(real, fake)
        batch = tf.shape(real)[0]
        with tf.GradientTape() as tape:
            if self.discriminator_has_batch_norm:
                # Separate real and fake batches, as the origin and DCGAN do, so batch
                # statistics never mix the two.
                real_logits = self.discriminator(self._augment(real), training=True)
                fake_logits = self.discriminator(self._augment(fake), training=True)
            else:
                logits = self.discriminator(self._augment(tf.concat([real, tf.cast(fake, real.dtype)], 0)),
                                            training=True)
                real_logits, fake_logits = logits[:batch], logits[batch:]
            d_loss = losses.discriminator_loss(self.loss_kind, real_logits, fake_logits)
            d_loss += self._lazy_penalties(real, fake)
            scaled_loss = self._scaled(self.d_optimizer, d_loss)  # inside the tape: it must be recorded
        grads = tape.gradient(scaled_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables, strict=True))
        return d_loss, *self._accuracies(real_logits, fake_logits), None

    def _penalties(self, real, fake):
        penalty = tf.constant(0.0)
        augment = self._augment if self.diffaugment else None
        if self.loss_kind == "wgan-gp":
            penalty += self.gp_weight * losses.gradient_penalty(self.discriminator, real, fake, self.rng, augment)
        if self.r1_weight > 0:
            penalty += 0.5 * self.r1_weight * losses.r1_penalty(self.logits, real, augment)
        if self.r2_weight > 0:
            penalty += 0.5 * self.r2_weight * losses.r1_penalty(self.logits, tf.cast(fake, real.dtype), augment)
        return penalty

    def _lazy_penalties(self, real, fake):
        """The penalties every ``penalty_every`` D steps, weighted ``penalty_every`` times (0 between)."""
        if self.penalty_every == 1 or not (self.r1_weight or self.r2_weight or self.loss_kind == "wgan-gp"):
            return self._penalties(real, fake)
        due = tf.equal(self.d_optimizer.iterations % self.penalty_every, 0)
        return tf.cond(due, lambda: float(self.penalty_every) * self._penalties(real, fake), lambda: tf.constant(0.0))

    def _generator_loss(self, real, fake):
        """G's loss on D's logits for ``fake``; the relativistic loss pairs them with ``real``'s."""
        real_logits = self.logits(self._augment(real)) if self.loss_kind == "relativistic" else None
        return losses.generator_loss(self.loss_kind, self.logits(self._augment(fake)), real_logits)

    @staticmethod
    def _accuracies(real_logits, fake_logits):
        return (tf.reduce_mean(tf.cast(real_logits > 0, tf.float32)),
                tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32)))

    def _d_step_self_supervised(self, real, fake):
        """FastGAN's D step: adversarial loss on both, plus the decoders' MSE on the real images only.

        The real batch goes through D on its own (so its feature maps are the real images'
        alone, and batch norm, if any, never mixes real and fake); the decoders rebuild the same
        augmented real images D saw, whole and one random quarter (the same quarter for the batch).
        """
        real_seen = self._augment(real)
        fake_seen = self._augment(tf.cast(fake, real.dtype))
        index = self.rng.uniform_full_int([], dtype=tf.int32) % 4  # floor modulo: 0..3
        variables = self.d_variables
        with tf.GradientTape() as tape:
            real_logits, whole_features, part_features = self.discriminator(real_seen, training=True)
            fake_logits = self.logits(fake_seen)
            if self.loss_kind == "hinge":
                d_loss = losses.hinge_soft_real_loss(real_logits, fake_logits, self.rng)
            else:
                d_loss = losses.discriminator_loss(self.loss_kind, real_logits, fake_logits)
            d_loss += self._lazy_penalties(real, fake)
            recon = fastgan.reconstruction_loss(self.decoder, whole_features, part_features, real_seen, index)
            total = d_loss + self.recon_weight * recon
            scaled_loss = self._scaled(self.d_optimizer, total)
        grads = tape.gradient(scaled_loss, variables)
        self.d_optimizer.apply_gradients(zip(grads, variables, strict=True))
        return d_loss, *self._accuracies(real_logits, fake_logits), recon

    @property
    def discriminator_has_batch_norm(self) -> bool:
        return any(isinstance(layer, layers.BatchNormalization) for layer in self.discriminator.layers)

    def train_step(self, real):
        real = tf.cast(real, tf.float32)
        batch = tf.shape(real)[0]
        for _ in range(self.d_steps - 1):
            fake = self.generator(self._noise(batch), training=True)
            self._d_step(real, tf.stop_gradient(fake))
        if self.g_batch_factor == 1:
            # One generator forward serves both steps (as in the PyTorch DCGAN reference): the D
            # step sees it without gradient, the G step then scores it with the updated D.
            with tf.GradientTape() as g_tape:
                fake = self.generator(self._noise(batch), training=True)
                with g_tape.stop_recording():
                    d_loss, acc_real, acc_fake, recon = self._d_step(real, tf.stop_gradient(fake))
                g_loss = self._generator_loss(real, fake)
                scaled_loss = self._scaled(self.g_optimizer, g_loss)
        else:
            fake = self.generator(self._noise(batch), training=True)
            d_loss, acc_real, acc_fake, recon = self._d_step(real, tf.stop_gradient(fake))
            with tf.GradientTape() as g_tape:
                fake = self.generator(self._noise(batch * self.g_batch_factor), training=True)
                g_loss = self._generator_loss(real, fake)
                scaled_loss = self._scaled(self.g_optimizer, g_loss)
        grads = g_tape.gradient(scaled_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables, strict=True))
        if self.ema_generator is not None:
            self._update_ema()
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_acc_real_tracker.update_state(acc_real)
        self.d_acc_fake_tracker.update_state(acc_fake)
        if recon is not None:
            self.recon_loss_tracker.update_state(recon)
        logs = {m.name: m.result() for m in self.metrics}
        if self.ada_target > 0:
            self._adapt_augmentation(acc_real, batch)
            logs["ada_p"] = tf.identity(self.ada_p)
        return logs

    def _update_ema(self):
        # Warm-up (as tf.train.ExponentialMovingAverage with num_updates): early on the average
        # follows the generator closely, so short trials do not sample a near-initial model.
        step = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for ema_weight, weight in zip(self.ema_generator.weights, self.generator.weights, strict=True):
            ema_weight.assign(decay * ema_weight + (1.0 - decay) * tf.cast(weight, ema_weight.dtype))


# The Keras dtype policies a trial may train under: float32, float16 compute with loss scaling
# (GPUs), bfloat16 compute (CPUs with native bf16, TPUs; its float32 exponent needs no scaling).
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")


def make_optimizers(config: GanConfig, precision: str = "float32"):
    d_opt = keras.optimizers.Adam(config.d_lr, beta_1=config.d_beta1, beta_2=config.d_beta2, name="d_adam")
    g_opt = keras.optimizers.Adam(config.g_lr, beta_1=config.g_beta1, beta_2=config.g_beta2, name="g_adam")
    if precision == "mixed_float16":
        d_opt = keras.optimizers.LossScaleOptimizer(d_opt, name="d_loss_scale")
        g_opt = keras.optimizers.LossScaleOptimizer(g_opt, name="g_loss_scale")
    return d_opt, g_opt


def build_gan(config: GanConfig, *, precision: str = "float32", jit_compile: bool = False) -> GAN:
    """Builders + optimizers + compile: a GAN ready for ``fit``.

    ``precision`` is one of PRECISIONS: under a mixed policy the layers compute in float16 or
    bfloat16 while the variables, the tanh output and the logit stay float32; float16 adds
    dynamic loss scaling to both optimizers.
    """
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy(precision)
    try:
        generator, discriminator, decoder = build_models(config)
        gan = GAN(generator, discriminator, noise_dim=config.noise_dim, seed=config.seed,
                  ema_decay=config.ema_decay, decoder=decoder, ada_target=config.ada_target,
                  ada_images=config.ada_images, name="gan")
    finally:
        keras.config.set_dtype_policy(previous_policy)
    d_opt, g_opt = make_optimizers(config, precision)
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss=config.loss, diffaugment=config.diffaugment,
                r1_weight=config.r1_weight, r2_weight=config.r2_weight, gp_weight=config.gp_weight,
                penalty_every=config.penalty_every, d_steps=config.d_steps,
                g_batch_factor=config.g_batch_factor, recon_weight=config.recon_weight, jit_compile=jit_compile,
                steps_per_execution=config.steps_per_execution)
    return gan
