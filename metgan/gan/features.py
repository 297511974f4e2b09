"""A fixed, seeded, randomly initialised CNN that embeds images for PRDC and KID (numpy only).

Precision, recall, density, coverage (:func:`metgan.gan.metrics.prdc`) and KID
(:func:`metgan.gan.metrics.kid`) compare two sets of images as two clouds of points in a feature
space. The usual space is an ImageNet classifier's (Inception, VGG16), whose weights this project
never downloads. Here it is a small network whose weights are drawn, never trained:

* four 3x3 convolutions with stride 2 and zero padding, 3 -> 32 -> 64 -> 128 -> 256 channels, no
  bias, He-normal weights (scaled for the leaky ReLU's slope 0.2) drawn from
  ``np.random.default_rng(SEED)``, each followed by a leaky ReLU;
* on images scaled to [-1, 1] (grayscale repeated to three channels, so one set of weights serves
  both);
* the global average and global maximum of each of the last three feature maps (1/4, 1/8 and
  1/16 of the image's size), concatenated: :data:`FEATURE_DIM` (2 x (64 + 128 + 256) = 896)
  numbers per image, for any image size, non-square too (16 px a side and more: the last map is
  then at least 1x1).

Pooling three scales, not only the last map, is what lets the features see sharpness. On the
synthetic vases (64x80, 384 a side), with only the last map a blurred copy of real vases kept a
precision of 1.0 and a density of 2 (blur pulls the features into the dense middle of the reals'
cloud); with the three maps one 5-tap binomial blur lowers precision from 0.95 to 0.69 and three
blurs to 0.01, while eight sharp vases repeated 48 times each keep precision 1.0 and fall to
coverage 0.07: "varied but blurry" and "sharp but all alike" read apart.

Each convolution is one im2col and one matrix product, in batches of :data:`BATCH` images: 512
images at 64x80 take under 2 s on two CPU cores shared with another job. The weights depend on
:data:`SEED` alone (their own generator, never NumPy's global state): every process, every
trial, every machine embeds an image the same way (up to float32 rounding in the matrix products).

Why random features are a valid choice here. Naeem et al. 2020 ("Reliable Fidelity and Diversity
Metrics for Generative Models", ICML 2020) treat the embedding as part of the metric: features of
an ImageNet-trained network carry ImageNet's dataset bias, so they propose embeddings from a
randomly initialised CNN and report that these give more sensible evaluations when the data's
distribution differs much from ImageNet's statistics (their introduction and section 5, where
random embeddings are evaluated). Photographs of vases on studio backgrounds at 64x80 px are far
from ImageNet's scenes, and a downloaded classifier is ruled out here anyway. Lee, Kim and Lee
("Demystifying Randomly Initialized Networks for Evaluating Generative Models", AAAI 2023) study
such features further and find that random networks can evaluate generative models similarly to
trained ones.

Limits. Random filters respond to texture, colour, edges and shape statistics at a few scales,
not to semantics: a sample with the right colours and textures in the wrong arrangement can sit
close to real images here where a trained network would place it far. The numbers are comparable
only within this project and this extractor (its seed, widths and depth): a precision of 0.7
here is not a precision of 0.7 in a paper using VGG16 or Inception features, and changing
anything in this module makes the scores recorded before the change incomparable with those after.
"""

from __future__ import annotations

import functools
import math

import numpy as np

SEED = 20200224  # any fixed number would do; changing it changes every score
CHANNELS = (32, 64, 128, 256)
LEAK = 0.2
POOLED = (1, 2, 3)  # the layers whose maps are pooled into the features
FEATURE_DIM = 2 * sum(CHANNELS[layer] for layer in POOLED)  # global average and global max of each
BATCH = 64  # images per pass: at 64x80 the largest im2col buffer is about 24 MB


@functools.cache
def weights() -> tuple[np.ndarray, ...]:
    """The network's kernels, one (9 * in_channels, out_channels) float32 matrix per layer, read-only.

    Rows are ordered (ky, kx, in_channel) to match :func:`_conv`'s im2col. Drawn once per process
    from their own seeded generator.
    """
    rng = np.random.default_rng(SEED)
    kernels = []
    in_channels = 3
    for out_channels in CHANNELS:
        fan_in = 9 * in_channels
        std = math.sqrt(2.0 / ((1.0 + LEAK ** 2) * fan_in))  # He init for a leaky ReLU
        kernel = (rng.standard_normal((fan_in, out_channels)) * std).astype(np.float32)
        kernel.flags.writeable = False
        kernels.append(kernel)
        in_channels = out_channels
    return tuple(kernels)


def _conv(x: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """A 3x3 convolution, stride 2, zero padding 1, then the leaky ReLU: (N, H, W, C) -> (N, ceil(H/2), ceil(W/2), C')."""
    count, height, width, channels = x.shape
    out_h, out_w = (height + 1) // 2, (width + 1) // 2
    padded = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    columns = np.empty((count, out_h, out_w, 9, channels), np.float32)
    for dy in range(3):
        for dx in range(3):
            columns[:, :, :, 3 * dy + dx] = padded[:, dy:dy + 2 * out_h - 1:2, dx:dx + 2 * out_w - 1:2]
    out = columns.reshape(count * out_h * out_w, 9 * channels) @ kernel
    np.maximum(out, out * np.float32(LEAK), out=out)
    return out.reshape(count, out_h, out_w, kernel.shape[1])


def _embed(batch: np.ndarray) -> np.ndarray:
    x = batch.astype(np.float32) / np.float32(127.5) - np.float32(1.0)
    if x.shape[-1] == 1:
        x = np.repeat(x, 3, axis=-1)
    pooled = []
    for layer, kernel in enumerate(weights()):
        x = _conv(x, kernel)
        if layer in POOLED:
            flat = x.reshape(len(x), -1, x.shape[-1])
            pooled += [flat.mean(axis=1), flat.max(axis=1)]
    return np.concatenate(pooled, axis=1)


def random_features(images: np.ndarray, batch_size: int = BATCH) -> np.ndarray:
    """(N, :data:`FEATURE_DIM`) float32 features of uint8 NHWC images (1 or 3 channels, any size)."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"random_features takes NHWC images with 1 or 3 channels; got shape {images.shape}")
    out = np.empty((len(images), FEATURE_DIM), np.float32)
    for start in range(0, len(images), batch_size):
        out[start:start + batch_size] = _embed(images[start:start + batch_size])
    return out
