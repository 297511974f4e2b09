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
* :func:`prdc` and :func:`kid`: precision, recall, density and coverage (Naeem et al. 2020) and
  the kernel inception distance (Bińkowski et al. 2018) on the features of a fixed random CNN
  (:mod:`metgan.gan.features`); :func:`prdc_kid_against_reals` scores generated images with them,
  beside the same scores between two halves of the real images.
* :func:`frechet_inception_distance`: only with a local Inception weights file; else ``None``.

The image functions take uint8 NHWC arrays; :func:`prdc` and :func:`kid` take feature matrices.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from metgan.gan.features import random_features

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
        raise ValueError(f"pyramid level {width}x{height} is smaller than the {size}x{size} neighbourhood")
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
    """SWD x1e3 between two uint8 NHWC image sets of equal count: {"levels": {"WxH": v}, "avg": v}."""
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
        key = f"{level_a.shape[2]}x{level_a.shape[1]}"
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


# --- precision, recall, density, coverage and KID on random-CNN features ----------------------

PRDC_K = 5  # the k of Naeem et al.'s experiments and code
KID_SUBSETS = 100  # subset draws and their size, torchmetrics' defaults; sets no larger than
KID_SUBSET_SIZE = 1000  # the size are used whole, once (every draw would be the whole set)
PRDC_KEYS = ("precision", "recall", "density", "coverage", "kid")
# each score beside its real-vs-real reference, as metrics.jsonl and model.json hold them
PRDC_LINE_KEYS = tuple(name for key in PRDC_KEYS for name in (key, f"{key}_real"))


def _distances(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distances between the rows of ``a`` and of ``b`` (float64)."""
    squared = (a * a).sum(axis=1)[:, None] + (b * b).sum(axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.sqrt(np.maximum(squared, 0.0))


def knn_radii(features: np.ndarray, k: int = PRDC_K) -> np.ndarray:
    """Each point's distance to its k-th nearest other point (the point itself is the 0th)."""
    features = np.asarray(features, np.float64)
    if len(features) <= k:
        raise ValueError(f"k-nearest-neighbour radii with k={k} need more than {k} points; got {len(features)}")
    return np.partition(_distances(features, features), k, axis=1)[:, k]


def _prdc(real: np.ndarray, real_radii: np.ndarray, fake: np.ndarray, k: int) -> dict[str, float]:
    distances = _distances(real, fake)  # (reals, fakes)
    inside_real = distances <= real_radii[:, None]  # fake j in real i's k-NN ball
    inside_fake = distances <= knn_radii(fake, k)[None, :]  # real i in fake j's k-NN ball
    return {"precision": float(inside_real.any(axis=0).mean()),
            "recall": float(inside_fake.any(axis=1).mean()),
            "density": float(inside_real.sum(axis=0).mean() / k),
            "coverage": float(inside_real.any(axis=1).mean())}


def prdc(real_features: np.ndarray, fake_features: np.ndarray, k: int = PRDC_K) -> dict[str, float]:
    """Precision, recall, density and coverage of fakes against reals, as Naeem et al. 2020 define
    them (precision and recall after Kynkäänniemi et al. 2019, density and coverage their own).

    With B(x, r) the ball of radius r around x and NND_k(x) the distance from x to its k-th
    nearest neighbour in its own set:

    * precision: the share of fakes inside at least one real's ball B(X_i, NND_k(X_i)) (fidelity);
    * recall: the share of reals inside at least one fake's ball B(Y_j, NND_k(Y_j)) (diversity);
    * density: (1 / kM) sum_j sum_i 1[Y_j in B(X_i, NND_k(X_i))], how many real balls hold a fake
      on average, over k: about 1 when the fakes are distributed like the reals, above 1 when they
      crowd where the reals are dense, unbounded (fidelity, robust to real outliers);
    * coverage: the share of reals whose ball B(X_i, NND_k(X_i)) holds at least one fake
      (diversity, robust to fake outliers).

    The balls are closed (a point on the boundary counts). The authors' code
    (clovaai/generative-evaluation-prdc) uses open ones; the two differ only on exact ties, that is
    duplicate images, where a closed ball keeps two identical sets at precision, recall and
    coverage 1 (their issue #7).
    """
    real = np.asarray(real_features, np.float64)
    fake = np.asarray(fake_features, np.float64)
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"prdc needs two (N, D) feature matrices of one D; got {real.shape} and {fake.shape}")
    return _prdc(real, knn_radii(real, k), fake, k)


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² of Gretton et al. with the cubic kernel k(a, b) = (a·b / d + 1)³."""
    dim = x.shape[1]
    k_xx = (x @ x.T / dim + 1.0) ** 3
    k_yy = (y @ y.T / dim + 1.0) ** 3
    k_xy = (x @ y.T / dim + 1.0) ** 3
    m, n = len(x), len(y)
    return float((k_xx.sum() - np.trace(k_xx)) / (m * (m - 1)) + (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
                 - 2.0 * k_xy.mean())


def kid(real_features: np.ndarray, fake_features: np.ndarray, *, subsets: int = KID_SUBSETS,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> float:
    """The kernel inception distance (Bińkowski et al. 2018, "Demystifying MMD GANs") on these features.

    The unbiased estimate of the squared MMD with the polynomial kernel k(x, y) = (x·y / d + 1)³,
    averaged over ``subsets`` draws (without replacement, from a generator seeded by ``seed``) of
    ``subset_size`` points from each side; when both sets are no larger than ``subset_size`` it is
    the estimate on the whole sets, once. 0 in expectation for two samples of one distribution, so
    a single estimate can be slightly negative.
    """
    x = np.asarray(real_features, np.float64)
    y = np.asarray(fake_features, np.float64)
    if x.ndim != 2 or y.ndim != 2 or x.shape[1] != y.shape[1]:
        raise ValueError(f"kid needs two (N, D) feature matrices of one D; got {x.shape} and {y.shape}")
    if min(len(x), len(y)) < 2:
        raise ValueError(f"kid needs at least 2 points a side; got {len(x)} and {len(y)}")
    if len(x) <= subset_size and len(y) <= subset_size:
        return _mmd2_unbiased(x, y)
    size = min(subset_size, len(x), len(y))
    rng = np.random.default_rng(seed)
    values = [_mmd2_unbiased(x[rng.choice(len(x), size, replace=False)], y[rng.choice(len(y), size, replace=False)])
              for _ in range(subsets)]
    return float(np.mean(values))


@dataclass(frozen=True, eq=False)
class FeatureReference:
    """What :func:`prdc_kid_against_reals` needs of the reals, which does not change during a trial:
    the features of the half fakes are compared with, their k-NN radii, and the real-vs-real
    scores (``precision_real`` ... ``kid_real``)."""

    features: np.ndarray
    radii: np.ndarray | None
    scores: dict[str, float | None]
    k: int


def feature_reference(reals: np.ndarray, *, seed: int = 0, k: int = PRDC_K) -> FeatureReference:
    """The reals' two halves (:func:`split_reals`, as for SWD) embedded, and the second scored
    against the first: the real-vs-real reference of precision, recall, density, coverage and KID.
    Each is None when a half has too few images (k + 1 for PRDC, 2 for KID)."""
    real_a, real_b = split_reals(reals, seed)
    features_a, features_b = random_features(real_a), random_features(real_b)
    radii = knn_radii(features_a, k) if len(features_a) > k else None
    scores = _feature_scores(features_a, radii, features_b, k, seed)
    return FeatureReference(features=features_a, radii=radii,
                            scores={f"{key}_real": value for key, value in scores.items()}, k=k)


def _feature_scores(real: np.ndarray, radii: np.ndarray | None, fake: np.ndarray, k: int,
                    seed: int) -> dict[str, float | None]:
    real64, fake64 = real.astype(np.float64), fake.astype(np.float64)
    scores: dict[str, float | None] = dict.fromkeys(PRDC_KEYS)
    if radii is not None and len(fake64) > k:
        scores.update(_prdc(real64, radii, fake64, k))
    if min(len(real64), len(fake64)) >= 2:
        scores["kid"] = kid(real64, fake64, seed=seed)
    return scores


def prdc_kid_against_reals(fakes: np.ndarray, reals: np.ndarray, *, seed: int = 0, k: int = PRDC_K,
                           reference: FeatureReference | None = None) -> dict[str, float | None]:
    """Precision, recall, density, coverage and KID of fakes against one half of the reals, and
    each between the two halves: {"precision", ..., "kid", "precision_real", ..., "kid_real"}.

    Mirrors :func:`swd_against_reals`: the same halves, the fakes trimmed to the half's size (so
    the score and its reference are taken on as many images a side, ``swd_count``). The reference
    does not change during a trial: pass back :func:`feature_reference`'s result as ``reference``
    to skip embedding the reals again.
    """
    if reference is None:
        reference = feature_reference(reals, seed=seed, k=k)
    fake = random_features(fakes[: len(reference.features)])
    return {**_feature_scores(reference.features, reference.radii, fake, reference.k, seed), **reference.scores}


def describe_prdc(scores: Mapping[str, Any] | None) -> str | None:
    """One line of fidelity and diversity, each score with its real-vs-real reference:
    ``fidelity: precision 0.71 (real 0.78), density 0.90 (real 1.02) · diversity: recall 0.42
    (real 0.77), coverage 0.55 (real 0.96) · KID 0.012 (real 0.0001)``; None when none was measured."""
    scores = scores or {}

    def number(key: str) -> float | None:
        value = scores.get(key)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
            return None
        return float(value)

    def part(key: str, label: str, style: str) -> str | None:
        value = number(key)
        if value is None:
            return None
        real = number(f"{key}_real")
        return f"{label} {value:{style}}" + (f" (real {real:{style}})" if real is not None else "")

    groups = [("fidelity: ", [part("precision", "precision", ".2f"), part("density", "density", ".2f")]),
              ("diversity: ", [part("recall", "recall", ".2f"), part("coverage", "coverage", ".2f")]),
              ("", [part("kid", "KID", ".2g")])]
    text = [head + ", ".join(p for p in parts if p) for head, parts in groups if any(parts)]
    return " · ".join(text) or None


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
