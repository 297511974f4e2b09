"""A FastGAN-style generator and discriminator (after Liu et al., ICLR 2021), in Keras 3 layers.

Written from the paper's description, sized for CPUs and for our non-square subsets:

* Generator: noise -> dense to the seed grid (``height / 2**g_blocks`` x ``width / 2**g_blocks``),
  batch norm, GLU; then ``g_blocks`` cheap blocks (nearest-neighbour x2 upsample, ``g_kernel``
  conv, batch norm, GLU, noise injection); skip-layer excitation lets each low-resolution map
  scale the channels of the map ``skip`` blocks above it (pooled globally, conv 1x1 -> Swish ->
  conv 1x1 -> sigmoid); a 3x3 conv and tanh make the image.
* Discriminator: two scales. The full image goes through ``d_blocks`` stride-2 blocks (spectrally
  normalised conv, optional batch norm, LeakyReLU), a half-size copy through ``d_blocks - 1``
  blocks to the same grid; each scale ends in a patch-logit map, and the logits of both are
  concatenated (shape ``(batch, patches)``). The model also returns its features at the last
  two block outputs before the final one (the "8 px" and "16 px" maps of the paper at 32x40 and
  3 blocks: 8x10 and 16x20), for the self-supervised decoders.
* Decoders: two small upsampling stacks (x2 nearest, 3x3 conv, batch norm, GLU) that rebuild,
  from the "8 px" map, the whole (augmented) real image at half size, and, from one random
  quarter of the "16 px" map, the matching quarter of the image at half size. Their MSE is added to D's loss
  on real images only (no LPIPS: nothing pretrained), which keeps D describing the images.

The training step lives in :class:`metgan.gan.model.GAN`; this module only builds models.
"""

from __future__ import annotations

from metgan.gan._tf import tensorflow
from metgan.gan.config import GanConfig

tf = tensorflow()
import keras  # noqa: E402  (after TensorFlow, which sets the log level)

layers = keras.layers
ops = keras.ops

MIN_FILTERS = 8
DECODER_DOUBLINGS = 3


@keras.saving.register_keras_serializable(package="metgan")
class GLU(layers.Layer):
    """Gated linear unit over the channel axis: the first half times the sigmoid of the second."""

    def call(self, x):
        a, b = ops.split(x, 2, axis=-1)
        return a * ops.sigmoid(b)

    def compute_output_shape(self, input_shape):
        return (*input_shape[:-1], input_shape[-1] // 2)


@keras.saving.register_keras_serializable(package="metgan")
class NoiseInjection(layers.Layer):
    """x + w * N(0, 1) per pixel (one noise channel, broadcast), w a learned scalar starting at 0."""

    def __init__(self, seed: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def build(self, input_shape):
        self.strength = self.add_weight(shape=(1,), initializer="zeros", name="strength")

    def call(self, x):
        shape = ops.shape(x)
        noise = keras.random.normal((shape[0], shape[1], shape[2], 1), seed=self.seed_generator)
        return x + ops.cast(self.strength, x.dtype) * ops.cast(noise, x.dtype)

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="metgan")
class ChannelScale(layers.Layer):
    """Skip-layer excitation's last step: a high-resolution map times per-channel gates (B, 1, 1, C)."""

    def call(self, inputs):
        features, gates = inputs
        return features * ops.cast(gates, features.dtype)

    def compute_output_shape(self, input_shapes):
        return input_shapes[0]


def generator_filters(config: GanConfig, level: int) -> int:
    """Channels of the generator's map after ``level`` blocks (0 = the seed grid)."""
    if level == 0:
        return config.g_seed_filters
    return max(config.g_filters // 2 ** (level - 1), MIN_FILTERS)


def excitation_pairs(g_blocks: int) -> list[tuple[int, int]]:
    """(source level, target level) of each skip-layer excitation: ``skip`` levels apart."""
    skip = max(2, g_blocks // 2)
    return [(level, level + skip) for level in range(0, g_blocks + 1 - skip)]


def _excitation(source, target_channels: int, name: str):
    # The paper pools to 4x4 and convolves 4x4 to one pixel; TensorFlow's area resize has no
    # gradient and our grids (5x4, 8x10, ...) do not pool evenly to 4x4, so we pool globally.
    x = layers.GlobalAveragePooling2D(keepdims=True, name=f"{name}_pool")(source)
    x = layers.Conv2D(target_channels, 1, name=f"{name}_conv_a")(x)
    x = layers.Activation("swish", name=f"{name}_swish")(x)
    x = layers.Conv2D(target_channels, 1, name=f"{name}_conv_b")(x)
    return layers.Activation("sigmoid", name=f"{name}_gate")(x)


def build_generator(config: GanConfig) -> keras.Model:
    """Noise -> seed grid -> ``g_blocks`` upsampling GLU blocks with skip-layer excitation -> tanh."""
    batch_norm = config.g_norm == "batch"

    def norm(x, name):
        return layers.BatchNormalization(momentum=config.g_bn_momentum, name=name)(x) if batch_norm else x

    noise = keras.Input(shape=(config.noise_dim,), name="noise")
    seed_filters = generator_filters(config, 0)
    # He init in G, not Glorot: Glorot's fan-out term (the whole seed grid, the doubled GLU
    # channels) makes each layer's values small, and until batch norm's moving variance has
    # decayed from 1 the inference-mode samples (what the collapse breaker and the grids see)
    # shrink layer by layer: flat grey for the first few dozen steps.
    x = layers.Dense(config.seed_height * config.seed_width * seed_filters * 2, use_bias=not batch_norm,
                     kernel_initializer="he_normal", name="seed")(noise)
    x = layers.Reshape((config.seed_height, config.seed_width, seed_filters * 2), name="seed_grid")(x)
    x = GLU(name="seed_glu")(norm(x, "seed_bn"))
    maps = [x]
    gates = {target: source for source, target in excitation_pairs(config.g_blocks)}
    for level in range(1, config.g_blocks + 1):
        filters = generator_filters(config, level)
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"up_{level}_upsample")(x)
        x = layers.Conv2D(filters * 2, config.g_kernel, padding="same", use_bias=not batch_norm,
                          kernel_initializer="he_normal", name=f"up_{level}_conv")(x)
        x = NoiseInjection(seed=config.seed * 1000 + level, name=f"up_{level}_noise")(norm(x, f"up_{level}_bn"))
        x = GLU(name=f"up_{level}_glu")(x)
        if level in gates:
            gate = _excitation(maps[gates[level]], filters, f"sle_{gates[level]}_{level}")
            x = ChannelScale(name=f"sle_{gates[level]}_{level}_scale")([x, gate])
        maps.append(x)
    x = layers.Conv2D(config.channels, 3, padding="same", name="to_image")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(noise, image, name="generator")


def feature_levels(config: GanConfig) -> tuple[int, int]:
    """The D block outputs (1-based) the decoders read: the "8 px" map and the "16 px" map."""
    return config.d_blocks - 1, config.d_blocks - 2


def decoder_doublings(config: GanConfig) -> tuple[int, int]:
    """Upsampling steps of the whole-image and the quarter decoders.

    The reconstructions stay at half the resolution of what they rebuild (FastGAN rebuilds
    128 px from 1024 px images): at full size the decoders cost more than G and D together on a
    CPU (measured at 64x80: about 1 s a batch of 32, against 0.4 s for G).
    """
    whole_level, part_level = feature_levels(config)
    return min(DECODER_DOUBLINGS, whole_level - 1), min(DECODER_DOUBLINGS, part_level - 1)


def reconstruction_sizes(config: GanConfig) -> tuple[tuple[int, int], tuple[int, int]]:
    """(height, width) of the whole-image and of the quarter reconstruction."""
    whole_level, _ = feature_levels(config)
    whole, part = decoder_doublings(config)
    feature_h, feature_w = config.height // 2 ** whole_level, config.width // 2 ** whole_level
    return (feature_h * 2 ** whole, feature_w * 2 ** whole), (feature_h * 2 ** part, feature_w * 2 ** part)


def build_discriminator(config: GanConfig) -> keras.Model:
    """Image -> [patch logits of both scales (B, P), "8 px" features, "16 px" features]."""
    spectral = config.d_norm in ("spectral", "batch")

    def wrap(layer):
        return layers.SpectralNormalization(layer, name=f"{layer.name}_sn") if spectral else layer

    def down(x, filters, name):
        x = wrap(layers.Conv2D(filters, config.d_kernel, strides=2, padding="same", name=name))(x)
        if config.d_norm == "batch":
            x = layers.BatchNormalization(name=f"{name}_bn")(x)
        return layers.LeakyReLU(negative_slope=config.d_leak, name=f"{name}_lrelu")(x)

    def head(x, filters, name):
        x = wrap(layers.Conv2D(filters, 3, padding="same", name=f"{name}_conv"))(x)
        x = layers.LeakyReLU(negative_slope=config.d_leak, name=f"{name}_lrelu")(x)
        x = wrap(layers.Conv2D(1, 1, name=f"{name}_logit", dtype="float32"))(x)
        return layers.Flatten(name=f"{name}_flatten")(x)

    image = keras.Input(shape=(config.height, config.width, config.channels), name="image")
    whole_level, part_level = feature_levels(config)
    x = image
    features = {}
    for block in range(1, config.d_blocks + 1):
        x = down(x, config.d_filters * 2 ** (block - 1), f"down_{block}")
        features[block] = x
    big = head(x, config.d_filters * 2 ** (config.d_blocks - 1), "big")
    small = layers.AveragePooling2D(2, name="half_size")(image)
    for block in range(1, config.d_blocks):
        small = down(small, config.d_filters * 2 ** block, f"small_down_{block}")
    small = head(small, config.d_filters * 2 ** (config.d_blocks - 1), "small")
    logits = layers.Concatenate(name="logits", dtype="float32")([big, small])
    return keras.Model(image, [logits, features[whole_level], features[part_level]], name="discriminator")


def _decoder_stack(x, doublings: int, filters: int, channels: int, name: str):
    for step in range(doublings):
        x = layers.UpSampling2D(2, interpolation="nearest", name=f"{name}_{step}_upsample")(x)
        x = layers.Conv2D(filters * 2, 3, padding="same", use_bias=False, name=f"{name}_{step}_conv")(x)
        x = layers.BatchNormalization(name=f"{name}_{step}_bn")(x)
        x = GLU(name=f"{name}_{step}_glu")(x)
        filters = max(filters // 2, MIN_FILTERS)
    x = layers.Conv2D(channels, 3, padding="same", name=f"{name}_to_image")(x)
    return layers.Activation("tanh", dtype="float32", name=f"{name}_tanh")(x)


def build_decoder(config: GanConfig) -> keras.Model:
    """[the "8 px" features, a quarter of the "16 px" features] -> [whole image, quarter] reconstructions."""
    whole_level, part_level = feature_levels(config)
    whole_doublings, part_doublings = decoder_doublings(config)
    whole_shape = (config.height // 2 ** whole_level, config.width // 2 ** whole_level,
                   config.d_filters * 2 ** (whole_level - 1))
    part_shape = (config.height // 2 ** part_level // 2, config.width // 2 ** part_level // 2,
                  config.d_filters * 2 ** (part_level - 1))
    whole_in = keras.Input(shape=whole_shape, name="whole_features")
    part_in = keras.Input(shape=part_shape, name="part_features")
    filters = max(config.d_filters, MIN_FILTERS)
    whole = _decoder_stack(whole_in, whole_doublings, filters, config.channels, "whole")
    part = _decoder_stack(part_in, part_doublings, filters, config.channels, "part")
    return keras.Model([whole_in, part_in], [whole, part], name="decoder")


def quarter(tensor, index):
    """Quarter ``index`` (0..3: top-left, top-right, bottom-left, bottom-right) of an NHWC tensor."""
    height, width = tensor.shape[1] // 2, tensor.shape[2] // 2
    row, col = index // 2, index % 2
    return tf.slice(tensor, tf.stack([0, row * height, col * width, 0]),
                    tf.stack([-1, height, width, -1]))


def shrink(images, size: tuple[int, int]):
    """Area-average ``images`` down to ``size`` (an integer factor of their size)."""
    factor = images.shape[1] // size[0]
    if factor == 1:
        return images
    return tf.nn.avg_pool2d(images, factor, factor, "VALID")


def reconstruction_loss(decoder, whole_features, part_features, real, index):
    """MSE of both decoders against the real images they were asked to rebuild."""
    whole_size, part_size = reconstruction_sizes_from(decoder)
    whole_rec, part_rec = decoder([whole_features, quarter(part_features, index)], training=True)
    real = tf.cast(real, tf.float32)
    whole_target = shrink(real, whole_size)
    part_target = shrink(quarter(real, index), part_size)
    return (tf.reduce_mean(tf.square(tf.cast(whole_rec, tf.float32) - whole_target))
            + tf.reduce_mean(tf.square(tf.cast(part_rec, tf.float32) - part_target)))


def reconstruction_sizes_from(decoder) -> tuple[tuple[int, int], tuple[int, int]]:
    whole, part = decoder.output_shape
    return (whole[1], whole[2]), (part[1], part[2])
