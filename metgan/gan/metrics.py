"""Image-quality metrics that need no downloaded weights (numpy only).

* :func:`sliced_wasserstein`: the ProGAN SWD (Karras et al. 2018) on Laplacian pyramids, written
  from its description: levels from the full size down to 16 px, 128 random 7x7 neighbourhoods
  per image per level, per-set per-channel normalisation, 4 x 128 random unit projections,
  sorted-projection L1 distance, x1e3, reported per level and averaged. Rectangular images are
  supported (levels continue while the shorter side is >= 16).
* :func:`ms_ssim_diversity`: 1 - mean MS-SSIM of image pairs, with the number of scales and the
  window size shrunk to fit small images.
* :func:`color_stats`: per-channel mean and std, which SWD's normalisation hides.
* :func:`object_chroma`: the mean chroma of the object's pixels (not the background's), which
  sees grey samples that ``color_distance`` (dominated by the off-white background) misses.
* :func:`frechet_inception_distance`: only with a local Inception weights file; else ``None``.

All functions take uint8 NHWC arrays.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

_BINOMIAL = np.array([1.0, 4.0, 6.0, 4.0, 1.0], dtype=np.float32) / 16.0
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


# --- Laplacian pyramid ------------------------------------------------------------------------

def _blur(images: np.ndarray, gain: float = 1.0) -> np.ndarray:
    """Separable 5-tap binomial blur over H and W with mirror borders (scipy's mode="mirror")."""
    kernel = _BINOMIAL * gain
    out = images
    for axis in (1, 2):
        pad = [(0, 0)] * out.ndim
        pad[axis] = (2, 2)
        padded = np.pad(out, pad, mode="reflect")
        size = out.shape[axis]
        acc = np.zeros_like(out)
        for tap, weight in enumerate(kernel):
            acc += weight * np.take(padded, np.arange(tap, tap + size), axis=axis)
        out = acc
    return out


def _pyr_down(images: np.ndarray) -> np.ndarray:
    return _blur(images)[:, ::2, ::2]


def _pyr_up(images: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    up = np.zeros((images.shape[0], shape[0], shape[1], images.shape[3]), dtype=images.dtype)
    up[:, ::2, ::2] = images[:, : (shape[0] + 1) // 2, : (shape[1] + 1) // 2]
    return _blur(up, gain=2.0)


def laplacian_pyramid(images: np.ndarray, levels: int) -> list[np.ndarray]:
    gaussian = [images.astype(np.float32)]
    for _ in range(levels - 1):
        gaussian.append(_pyr_down(gaussian[-1]))
    pyramid = [g - _pyr_up(gaussian[i + 1], g.shape[1:3]) for i, g in enumerate(gaussian[:-1])]
    pyramid.append(gaussian[-1])
    return pyramid


def pyramid_levels(height: int, width: int, min_size: int = 16) -> int:
    levels, h, w = 0, height, width
    while min(h, w) >= min_size:
        levels += 1
        h, w = (h + 1) // 2, (w + 1) // 2
    return max(levels, 1)


# --- SWD --------------------------------------------------------------------------------------

def _descriptors(level: np.ndarray, per_image: int, size: int, rng: np.random.Generator) -> np.ndarray:
    count, height, width, channels = level.shape
    half = size // 2
    if height < size or width < size:
        raise ValueError(f"pyramid level {height}x{width} is smaller than the {size}x{size} neighbourhood")
    ys = rng.integers(half, height - half, size=(count, per_image))
    xs = rng.integers(half, width - half, size=(count, per_image))
    offsets = np.arange(-half, half + 1)
    rows = (ys[:, :, None, None] + offsets[None, None, :, None])
    cols = (xs[:, :, None, None] + offsets[None, None, None, :])
    image_index = np.arange(count)[:, None, None, None]
    patches = level[image_index, rows, cols]  # (count, per_image, size, size, channels)
    return patches.reshape(count * per_image, size, size, channels)


def _normalise(descriptors: np.ndarray) -> np.ndarray:
    mean = descriptors.mean(axis=(0, 1, 2), keepdims=True)
    std = descriptors.std(axis=(0, 1, 2), keepdims=True)
    return ((descriptors - mean) / np.maximum(std, 1e-8)).reshape(len(descriptors), -1)


def _swd(a: np.ndarray, b: np.ndarray, rng: np.random.Generator, repeats: int, directions: int) -> float:
    results = []
    for _ in range(repeats):
        dirs = rng.standard_normal((a.shape[1], directions)).astype(np.float32)
        dirs /= np.sqrt(np.sum(dirs * dirs, axis=0, keepdims=True))
        # (directions, N) rows: sorting along contiguous memory is several times faster.
        proj_a = np.sort(np.ascontiguousarray((a @ dirs).T), axis=1)
        proj_b = np.sort(np.ascontiguousarray((b @ dirs).T), axis=1)
        results.append(float(np.mean(np.abs(proj_a - proj_b))))
    return float(np.mean(results))


def sliced_wasserstein(images_a: np.ndarray, images_b: np.ndarray, *, seed: int = 0, nhoods_per_image: int = 128,
                       nhood_size: int = 7, repeats: int = 4, directions: int = 128,
                       min_size: int = 16) -> dict:
    """SWD x1e3 between two uint8 NHWC image sets of equal count: {"levels": {"HxW": v}, "avg": v}."""
    if images_a.shape != images_b.shape:
        raise ValueError(f"SWD needs two sets of the same shape; got {images_a.shape} and {images_b.shape}")
    height, width = images_a.shape[1:3]
    levels = pyramid_levels(height, width, min_size)
    pyr_a = laplacian_pyramid(images_a, levels)
    pyr_b = laplacian_pyramid(images_b, levels)
    results = {}
    for index, (level_a, level_b) in enumerate(zip(pyr_a, pyr_b, strict=True)):
        # The same neighbourhood positions for both sets (positions carry no information about
        # either set), so identical sets score exactly 0 and only content differences count.
        desc_a = _normalise(_descriptors(level_a, nhoods_per_image, nhood_size,
                                         np.random.default_rng([seed, index])))
        desc_b = _normalise(_descriptors(level_b, nhoods_per_image, nhood_size,
                                         np.random.default_rng([seed, index])))
        rng = np.random.default_rng([seed, index, 1])
        key = f"{level_a.shape[1]}x{level_a.shape[2]}"
        results[key] = _swd(desc_a, desc_b, rng, repeats, directions) * 1e3
    return {"levels": results, "avg": float(np.mean(list(results.values())))}


def split_reals(reals: np.ndarray, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two disjoint, equally sized random halves of the real images."""
    half = len(reals) // 2
    order = np.random.default_rng(seed).permutation(len(reals))
    return reals[order[:half]], reals[order[half: 2 * half]]


def swd_against_reals(fakes: np.ndarray, reals: np.ndarray, *, seed: int = 0,
                      real_baseline: float | None = None) -> dict:
    """SWD of fakes vs one half of the reals, and the real-vs-real baseline (the two halves).

    Returns {"swd", "swd_real", "swd_levels", "swd_count"}; the fakes are trimmed to the half's
    size, ``swd_count``, the images on each side of both scores (SWD falls as it grows, so a score
    means little without it). The baseline does not change during a trial: pass it back in as
    ``real_baseline`` to skip it.
    """
    real_a, real_b = split_reals(reals, seed)
    fake = sliced_wasserstein(fakes[: len(real_a)], real_a, seed=seed)
    if real_baseline is None:
        real_baseline = sliced_wasserstein(real_b, real_a, seed=seed)["avg"]
    return {"swd": fake["avg"], "swd_real": real_baseline, "swd_levels": fake["levels"],
            "swd_count": int(min(len(real_a), len(fakes)))}


# --- MS-SSIM ----------------------------------------------------------------------------------

def _gaussian(size: int, sigma: float = 1.5) -> np.ndarray:
    x = np.arange(size, dtype=np.float64) - (size - 1) / 2
    g = np.exp(-(x ** 2) / (2 * sigma ** 2))
    return g / g.sum()


def _filter_valid(images: np.ndarray, window: np.ndarray) -> np.ndarray:
    out = images
    size = len(window)
    for axis in (1, 2):
        length = out.shape[axis] - size + 1
        acc = np.zeros(out.shape[:axis] + (length,) + out.shape[axis + 1:], dtype=np.float64)
        for tap, weight in enumerate(window):
            acc += weight * np.take(out, np.arange(tap, tap + length), axis=axis)
        out = acc
    return out


def _ssim_parts(a: np.ndarray, b: np.ndarray, filter_size: int) -> tuple[np.ndarray, np.ndarray]:
    size = min(filter_size, a.shape[1], a.shape[2])
    window = _gaussian(size, 1.5 * size / 11)
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    mu_a, mu_b = _filter_valid(a, window), _filter_valid(b, window)
    var_a = _filter_valid(a * a, window) - mu_a ** 2
    var_b = _filter_valid(b * b, window) - mu_b ** 2
    cov = _filter_valid(a * b, window) - mu_a * mu_b
    cs = (2 * cov + c2) / (var_a + var_b + c2)
    luminance = (2 * mu_a * mu_b + c1) / (mu_a ** 2 + mu_b ** 2 + c1)
    return (luminance * cs).mean(axis=(1, 2, 3)), cs.mean(axis=(1, 2, 3))


def ms_ssim_scales(height: int, width: int, filter_size: int = 11) -> int:
    """As many scales (up to 5) as keep the coarsest at least ``filter_size // 2 + 1`` px."""
    scales, h, w = 1, height, width
    while scales < 5 and min(h, w) // 2 >= max(filter_size // 2 + 1, 4):
        scales += 1
        h, w = h // 2, w // 2
    return scales


def ms_ssim(a: np.ndarray, b: np.ndarray, *, filter_size: int = 11) -> np.ndarray:
    """MS-SSIM of each pair (a[i], b[i]) of uint8 NHWC images; scales fitted to the size."""
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    scales = ms_ssim_scales(a.shape[1], a.shape[2], filter_size)
    weights = np.array(MS_SSIM_WEIGHTS[:scales])
    weights = weights / weights.sum()
    values = np.ones(len(a))
    for scale in range(scales):
        ssim, cs = _ssim_parts(a, b, filter_size)
        part = ssim if scale == scales - 1 else cs
        values *= np.maximum(part, 0.0) ** weights[scale]
        if scale < scales - 1:
            h, w = a.shape[1] // 2 * 2, a.shape[2] // 2 * 2
            a = a[:, :h, :w].reshape(len(a), h // 2, 2, w // 2, 2, -1).mean(axis=(2, 4))
            b = b[:, :h, :w].reshape(len(b), h // 2, 2, w // 2, 2, -1).mean(axis=(2, 4))
    return values


def ms_ssim_diversity(images: np.ndarray, *, pairs: int = 64, seed: int = 0) -> float | None:
    """1 - mean MS-SSIM over random distinct pairs: 0 when every image is the same."""
    if len(images) < 2:
        return None
    rng = np.random.default_rng(seed)
    first = rng.integers(0, len(images), size=pairs)
    second = (first + rng.integers(1, len(images), size=pairs)) % len(images)
    return float(1.0 - ms_ssim(images[first], images[second]).mean())


# --- colour and spread ------------------------------------------------------------------------

def color_stats(images: np.ndarray) -> dict:
    """Per-channel mean and std on the 0-255 scale."""
    pixels = images.reshape(-1, images.shape[-1]).astype(np.float64)
    return {"mean": [round(float(v), 3) for v in pixels.mean(axis=0)],
            "std": [round(float(v), 3) for v in pixels.std(axis=0)]}


def color_distance(fake: dict, real: dict) -> float:
    """L2 distance between the per-channel (mean, std) vectors of two color_stats results."""
    a = np.array(fake["mean"] + fake["std"])
    b = np.array(real["mean"] + real["std"])
    return float(np.sqrt(np.sum((a - b) ** 2)))


BACKGROUND_TOLERANCE = 24.0


def object_chroma(images: np.ndarray, tolerance: float = BACKGROUND_TOLERANCE) -> float | None:
    """Mean chroma (max - min of R, G, B, on 0-255) of the object pixels of RGB images; None for grayscale.

    Each image's background colour is the median of its one-pixel border; a pixel within
    ``tolerance`` of it on every channel is background. Images with no object pixel are left out
    (None when all are). A grey vase on off-white reads near 0 however close the mean colour is.
    """
    if images.shape[-1] != 3:
        return None
    values = images.astype(np.float32)
    total, count = 0.0, 0
    for image in values:
        border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
        background = np.median(border, axis=0)
        is_object = np.abs(image - background).max(axis=-1) > tolerance
        if is_object.any():
            pixels = image[is_object]
            total += float((pixels.max(axis=-1) - pixels.min(axis=-1)).sum())
            count += int(is_object.sum())
    return round(total / count, 3) if count else None


def spread(images: np.ndarray) -> tuple[float, float]:
    """(mean within-image grayscale std, mean across-sample per-pixel std), on 0-255."""
    gray = images.astype(np.float64).mean(axis=-1)
    within = float(gray.reshape(len(gray), -1).std(axis=1).mean())
    across = float(gray.std(axis=0).mean()) if len(gray) > 1 else 0.0
    return within, across


# --- FID (optional) ---------------------------------------------------------------------------

def inception_model(weights_path: str | None):
    """InceptionV3 (pooled features) from a local weights file; ``None`` without one (never downloads).

    Building it takes seconds and a few hundred MB: a trial builds it once and passes it to
    every :func:`frechet_inception_distance` call.
    """
    if not weights_path:
        return None
    path = Path(weights_path)
    if not path.is_file():
        log.warning("no Inception weights file at %s: FID left null", path)
        return None
    from metgan.gan._tf import tensorflow

    tensorflow()
    import keras

    return keras.applications.InceptionV3(include_top=False, weights=str(path), pooling="avg",
                                          input_shape=(299, 299, 3))


def frechet_inception_distance(fakes: np.ndarray, reals: np.ndarray, weights_path: str | None = None, *,
                               model=None) -> float | None:
    """FID with ``model`` (from :func:`inception_model`), else one built from ``weights_path``;
    ``None`` when there is neither."""
    model = model if model is not None else inception_model(weights_path)
    if model is None:
        return None
    from metgan.gan._tf import tensorflow

    tf = tensorflow()
    import keras

    def features(images):
        out = []
        for start in range(0, len(images), 32):
            batch = tf.image.resize(tf.cast(images[start:start + 32], tf.float32), (299, 299))
            if batch.shape[-1] == 1:
                batch = tf.image.grayscale_to_rgb(batch)
            out.append(model(keras.applications.inception_v3.preprocess_input(batch), training=False).numpy())
        return np.concatenate(out).astype(np.float64)

    fa, fb = features(fakes), features(reals)
    mu_a, mu_b = fa.mean(0), fb.mean(0)
    cov_a, cov_b = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    # trace(sqrtm(A B)) = sum of the square roots of the eigenvalues of A B (real, non-negative).
    eig = np.linalg.eigvals(cov_a @ cov_b)
    trace_sqrt = float(np.sum(np.sqrt(np.clip(eig.real, 0, None))))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * trace_sqrt)
