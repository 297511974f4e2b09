"""Model builders and the ``GAN`` Keras model with its training step.

``build_generator`` and ``build_discriminator`` return named functional Keras models built from a
:class:`~metgan.gan.config.GanConfig`. ``GAN`` is a ``keras.Model`` with
``compile(d_optimizer=..., g_optimizer=..., loss=...)`` and a ``train_step`` (keras.io style), so
``fit`` drives it and callbacks do every side effect; the step itself only computes.

The discriminator always outputs a logit; the losses in :mod:`metgan.gan.losses` take logits.
"""

from __future__ import annotations

from metgan.gan import augment as augment_lib
from metgan.gan import losses
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


class GAN(keras.Model):
    """A generator and a discriminator trained adversarially by ``fit``.

    With ``ema_decay > 0`` an exponential moving average of the generator's weights is kept in
    ``ema_generator`` (used for samples and metrics). Noise and augmentation draw from ``rng``,
    a ``tf.random.Generator`` whose state is checkpointed so a resumed trial continues the
    same random stream.
    """

    def __init__(self, generator: keras.Model, discriminator: keras.Model, *, noise_dim: int,
                 seed: int = 0, ema_decay: float = 0.0, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
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
        # The GAN has no weights of its own and its parts are built by their builders; marked
        # built, Keras saves and loads the whole of it (G, D, EMA G, both optimizers) by name.
        self.built = True

    def compile(self, d_optimizer, g_optimizer, *, loss: str = "non-saturating",
                diffaugment: tuple[str, ...] = (), r1_weight: float = 0.0, gp_weight: float = 10.0,
                d_steps: int = 1, g_batch_factor: int = 1, **kwargs):
        super().compile(**kwargs)
        self.d_optimizer = d_optimizer
        self.g_optimizer = g_optimizer
        self.loss_kind = loss
        self.diffaugment = tuple(diffaugment)
        self.r1_weight = float(r1_weight)
        self.gp_weight = float(gp_weight)
        self.d_steps = int(d_steps)
        self.g_batch_factor = int(g_batch_factor)
        self.d_optimizer.build(self.discriminator.trainable_variables)
        self.g_optimizer.build(self.generator.trainable_variables)

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_acc_real_tracker, self.d_acc_fake_tracker]

    @property
    def sample_generator(self) -> keras.Model:
        """The generator used for samples and metrics: the EMA one when enabled."""
        return self.ema_generator if self.ema_generator is not None else self.generator

    def generate(self, latents, batch_size: int = 64):
        """uint8-ready float images in [-1, 1] from the sample generator, in inference mode."""
        return self.sample_generator.predict(latents, batch_size=batch_size, verbose=0)

    # --- the step ---------------------------------------------------------------------------

    def _augment(self, images):
        if not self.diffaugment:
            return images
        return augment_lib.diff_augment(images, self.diffaugment, self.rng)

    def _noise(self, count):
        return self.rng.normal([count, self.noise_dim])

    def _scaled(self, optimizer, loss):
        return optimizer.scale_loss(loss) if hasattr(optimizer, "scale_loss") else loss

    def _d_step(self, real, fake):
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
            if self.loss_kind == "wgan-gp":
                d_loss += self.gp_weight * losses.gradient_penalty(
                    self.discriminator, real, fake, self.rng, self._augment if self.diffaugment else None)
            if self.r1_weight > 0:
                d_loss += 0.5 * self.r1_weight * losses.r1_penalty(
                    self.discriminator, real, self._augment if self.diffaugment else None)
            scaled_loss = self._scaled(self.d_optimizer, d_loss)  # inside the tape: it must be recorded
        grads = tape.gradient(scaled_loss, self.discriminator.trainable_variables)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_variables, strict=True))
        acc_real = tf.reduce_mean(tf.cast(real_logits > 0, tf.float32))
        acc_fake = tf.reduce_mean(tf.cast(fake_logits < 0, tf.float32))
        return d_loss, acc_real, acc_fake

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
                    d_loss, acc_real, acc_fake = self._d_step(real, tf.stop_gradient(fake))
                g_loss = losses.generator_loss(
                    self.loss_kind, self.discriminator(self._augment(fake), training=True))
                scaled_loss = self._scaled(self.g_optimizer, g_loss)
        else:
            fake = self.generator(self._noise(batch), training=True)
            d_loss, acc_real, acc_fake = self._d_step(real, tf.stop_gradient(fake))
            with tf.GradientTape() as g_tape:
                fake = self.generator(self._noise(batch * self.g_batch_factor), training=True)
                g_loss = losses.generator_loss(
                    self.loss_kind, self.discriminator(self._augment(fake), training=True))
                scaled_loss = self._scaled(self.g_optimizer, g_loss)
        grads = g_tape.gradient(scaled_loss, self.generator.trainable_variables)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_variables, strict=True))
        if self.ema_generator is not None:
            self._update_ema()
        self.d_loss_tracker.update_state(d_loss)
        self.g_loss_tracker.update_state(g_loss)
        self.d_acc_real_tracker.update_state(acc_real)
        self.d_acc_fake_tracker.update_state(acc_fake)
        return {m.name: m.result() for m in self.metrics}

    def _update_ema(self):
        # Warm-up (as tf.train.ExponentialMovingAverage with num_updates): early on the average
        # follows the generator closely, so short trials do not sample a near-initial model.
        step = tf.cast(self.g_optimizer.iterations, tf.float32)
        decay = tf.minimum(self.ema_decay, (1.0 + step) / (10.0 + step))
        for ema_weight, weight in zip(self.ema_generator.weights, self.generator.weights, strict=True):
            ema_weight.assign(decay * ema_weight + (1.0 - decay) * tf.cast(weight, ema_weight.dtype))


def make_optimizers(config: GanConfig, mixed_precision: bool):
    d_opt = keras.optimizers.Adam(config.d_lr, beta_1=config.d_beta1, beta_2=config.d_beta2, name="d_adam")
    g_opt = keras.optimizers.Adam(config.g_lr, beta_1=config.g_beta1, beta_2=config.g_beta2, name="g_adam")
    if mixed_precision:
        d_opt = keras.optimizers.LossScaleOptimizer(d_opt, name="d_loss_scale")
        g_opt = keras.optimizers.LossScaleOptimizer(g_opt, name="g_loss_scale")
    return d_opt, g_opt


def build_gan(config: GanConfig, *, mixed_precision: bool = False, jit_compile: bool = False) -> GAN:
    """Builders + optimizers + compile: a GAN ready for ``fit``.

    With ``mixed_precision`` the layers compute in float16 (variables, the tanh output and the
    logit stay float32) and both optimizers scale the loss dynamically.
    """
    previous_policy = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed_precision else "float32")
    try:
        generator = build_generator(config)
        discriminator = build_discriminator(config)
        gan = GAN(generator, discriminator, noise_dim=config.noise_dim, seed=config.seed,
                  ema_decay=config.ema_decay, name="gan")
    finally:
        keras.config.set_dtype_policy(previous_policy)
    d_opt, g_opt = make_optimizers(config, mixed_precision)
    gan.compile(d_optimizer=d_opt, g_optimizer=g_opt, loss=config.loss, diffaugment=config.diffaugment,
                r1_weight=config.r1_weight, gp_weight=config.gp_weight, d_steps=config.d_steps,
                g_batch_factor=config.g_batch_factor, jit_compile=jit_compile,
                steps_per_execution=config.steps_per_execution)
    return gan
