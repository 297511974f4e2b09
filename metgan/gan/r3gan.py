"""An R3GAN-style generator and discriminator (after Huang et al., NeurIPS 2024), in Keras 3 layers.

"The GAN is dead; long live the GAN! A Modern GAN Baseline" pairs a relativistic loss with both
zero-centred gradient penalties (``loss: relativistic`` with ``r1_weight`` and ``r2_weight``; see
:mod:`metgan.gan.losses`) and a plain, modern residual network. Written from the paper's
description, sized by the same config keys as our DCGAN so a grid can compare them:

* No normalisation layers anywhere. Every residual block is ``x + conv1x1(act(grouped conv3x3(
  act(conv1x1(x)))))``: the first 1x1 widens the channels ``R3_EXPANSION`` times, the 3x3 works on
  groups of ``group_size`` channels, the last 1x1 narrows back and starts at zero, so each block
  starts as the identity and the network trains stably without normalisation.
* Resampling is a fixed [1, 2, 1] x [1, 2, 1] blur (:class:`Blur`): up, nearest x2 then the blur;
  down, the blur at stride 2. A 1x1 convolution changes the width between stages.
* Generator: noise -> dense to the seed grid (``height / 2**g_blocks`` x ``width / 2**g_blocks`` x
  ``g_seed_filters``) -> ``res_blocks`` residual blocks; then ``g_blocks`` stages of (upsample,
  1x1 to the stage's width, ``res_blocks`` blocks), the width halving from ``g_filters``; a 1x1
  convolution to the image and tanh.
* Discriminator, the mirror: a 1x1 convolution from the image to ``d_filters``; ``d_blocks``
  stages of (``res_blocks`` blocks, downsample, 1x1 to twice the width); blocks at the seed grid,
  then flatten and a dense logit.

Activations are LeakyReLU(0.2). The training step is :class:`metgan.gan.model.GAN`'s; this
module only builds models.
"""

from __future__ import annotations

import numpy as np

from metgan.gan._tf import tensorflow
from metgan.gan.config import GanConfig

tensorflow()
import keras  # noqa: E402  (after TensorFlow, which sets the log level)

layers = keras.layers
ops = keras.ops

R3_EXPANSION = 2
LEAK = 0.2
MIN_WIDTH = 8


@keras.saving.register_keras_serializable(package="metgan")
class GroupedConv2D(layers.Conv2D):
    """A grouped convolution computed as one ordinary convolution per group, then concatenated.

    The same layer and weights as ``Conv2D(groups=...)``; TensorFlow's own grouped kernel on CPUs
    ran a residual block's training step 10x slower than the same block with one group (measured
    with bench/train.py's efficiency table), while one convolution per group runs at the speed of
    the ordinary kernels.
    """

    def convolution_op(self, inputs, kernel):
        if self.groups == 1:
            return super().convolution_op(inputs, kernel)
        per_group_in = kernel.shape[2]
        per_group_out = kernel.shape[3] // self.groups
        outputs = []
        for group in range(self.groups):
            part = inputs[..., group * per_group_in:(group + 1) * per_group_in]
            weights = kernel[..., group * per_group_out:(group + 1) * per_group_out]
            outputs.append(ops.conv(part, weights, strides=list(self.strides), padding=self.padding,
                                    dilation_rate=self.dilation_rate, data_format=self.data_format))
        return ops.concatenate(outputs, axis=-1)


@keras.saving.register_keras_serializable(package="metgan")
class Blur(layers.Layer):
    """A fixed [1, 2, 1] x [1, 2, 1] / 16 low-pass filter per channel; ``mode`` "up" first repeats
    each pixel 2x2 (nearest), "down" filters at stride 2, "same" only filters."""

    def __init__(self, mode: str = "same", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("up", "down", "same"):
            raise ValueError(f"Blur mode must be up, down or same; got {mode!r}")
        self.mode = mode

    def build(self, input_shape):
        taps = np.array([1.0, 2.0, 1.0], dtype="float32")
        kernel = np.outer(taps, taps) / 16.0
        channels = int(input_shape[-1])
        self._kernel = np.tile(kernel[:, :, None, None], (1, 1, channels, 1))

    def call(self, x):
        if self.mode == "up":
            x = ops.repeat(ops.repeat(x, 2, axis=1), 2, axis=2)
        kernel = ops.cast(self._kernel, x.dtype)
        return ops.depthwise_conv(x, kernel, strides=2 if self.mode == "down" else 1, padding="same")

    def compute_output_shape(self, input_shape):
        batch, height, width, channels = input_shape
        if self.mode == "up":
            return (batch, height * 2, width * 2, channels)
        if self.mode == "down":
            return (batch, (height + 1) // 2, (width + 1) // 2, channels)
        return tuple(input_shape)

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


def _groups(channels: int, group_size: int) -> int:
    """Groups of ``group_size`` channels, or one group when the channels are fewer or do not divide."""
    return channels // group_size if channels >= group_size and channels % group_size == 0 else 1


def residual_block(x, group_size: int, name: str):
    """x + 1x1(act(grouped 3x3(act(1x1(x))))), the last 1x1 initialised to zero."""
    channels = int(x.shape[-1])
    inner = channels * R3_EXPANSION
    y = layers.Conv2D(inner, 1, name=f"{name}_expand")(x)
    y = layers.LeakyReLU(negative_slope=LEAK, name=f"{name}_act1")(y)
    if group_size == 1:  # one channel per group: a depthwise convolution, TensorFlow's fast kernel for it
        y = layers.DepthwiseConv2D(3, padding="same", name=f"{name}_grouped")(y)
    else:
        y = GroupedConv2D(inner, 3, padding="same", groups=_groups(inner, group_size), name=f"{name}_grouped")(y)
    y = layers.LeakyReLU(negative_slope=LEAK, name=f"{name}_act2")(y)
    y = layers.Conv2D(channels, 1, kernel_initializer="zeros", name=f"{name}_narrow")(y)
    return layers.Add(name=f"{name}_add")([x, y])


def _stage_blocks(x, config: GanConfig, name: str):
    for index in range(config.res_blocks):
        x = residual_block(x, config.group_size, f"{name}_block{index}")
    return x


def generator_widths(config: GanConfig) -> list[int]:
    """The width of each generator stage after the seed grid, halving from ``g_filters``."""
    return [max(config.g_filters >> stage, MIN_WIDTH) for stage in range(config.g_blocks)]


def discriminator_widths(config: GanConfig) -> list[int]:
    """The width entering each discriminator stage, doubling from ``d_filters``; the last is the seed grid's."""
    return [config.d_filters << stage for stage in range(config.d_blocks + 1)]


def build_generator(config: GanConfig) -> keras.Model:
    noise = keras.Input(shape=(config.noise_dim,), name="noise")
    x = layers.Dense(config.seed_height * config.seed_width * config.g_seed_filters, name="seed")(noise)
    x = layers.Reshape((config.seed_height, config.seed_width, config.g_seed_filters), name="seed_grid")(x)
    x = _stage_blocks(x, config, "seed")
    for stage, width in enumerate(generator_widths(config)):
        x = Blur("up", name=f"up_{stage}")(x)
        x = layers.Conv2D(width, 1, name=f"up_{stage}_width")(x)
        x = _stage_blocks(x, config, f"up_{stage}")
    x = layers.LeakyReLU(negative_slope=LEAK, name="to_image_act")(x)
    x = layers.Conv2D(config.channels, 1, name="to_image")(x)
    image = layers.Activation("tanh", dtype="float32", name="tanh")(x)
    return keras.Model(noise, image, name="generator")


def build_discriminator(config: GanConfig) -> keras.Model:
    image = keras.Input(shape=(config.height, config.width, config.channels), name="image")
    widths = discriminator_widths(config)
    x = layers.Conv2D(widths[0], 1, name="from_image")(image)
    for stage in range(config.d_blocks):
        x = _stage_blocks(x, config, f"down_{stage}")
        x = Blur("down", name=f"down_{stage}")(x)
        x = layers.Conv2D(widths[stage + 1], 1, name=f"down_{stage}_width")(x)
    x = _stage_blocks(x, config, "seed")
    x = layers.LeakyReLU(negative_slope=LEAK, name="out_act")(x)
    x = layers.Flatten(name="flatten")(x)
    logit = layers.Dense(1, name="logit", dtype="float32")(x)
    return keras.Model(image, logit, name="discriminator")
