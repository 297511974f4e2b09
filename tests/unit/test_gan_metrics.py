import numpy as np
import pytest

from metgan.gan import metrics
from tests.gan_support import vase_images


@pytest.fixture(scope="module")
def reals():
    return vase_images(64, seed=1)


def test_swd_of_identical_sets_is_zero(reals):
    result = metrics.sliced_wasserstein(reals[:32], reals[:32].copy())
    assert result["avg"] == pytest.approx(0.0, abs=1e-6)
    assert set(result["levels"]) == {"32x40", "16x20"}  # rectangular pyramid down to 16 px


def test_swd_real_vs_real_is_below_real_vs_noise(reals):
    noise = np.random.default_rng(0).integers(0, 256, reals.shape, dtype=np.uint8)
    real = metrics.swd_against_reals(vase_images(64, seed=2), reals)
    fake = metrics.swd_against_reals(noise, reals)
    assert real["swd"] < fake["swd"] / 2
    assert real["swd_real"] == fake["swd_real"]  # the same baseline: two halves of the reals
    assert real["swd_real"] < fake["swd"]


def test_swd_scores_a_blurred_copy_worse_than_the_original(reals):
    reference, others = reals[:32], reals[32:]
    blurred = np.clip(metrics._blur(metrics._blur(others.astype(np.float32))), 0, 255).astype(np.uint8)
    assert metrics.sliced_wasserstein(blurred, reference)["avg"] > metrics.sliced_wasserstein(others, reference)["avg"]


def test_ms_ssim_fits_small_images_and_measures_diversity(reals):
    assert metrics.ms_ssim_scales(40, 32) == 3 and metrics.ms_ssim_scales(256, 256) == 5
    same = np.repeat(reals[:1], 8, axis=0)
    assert metrics.ms_ssim_diversity(same) == pytest.approx(0.0, abs=1e-9)
    assert metrics.ms_ssim_diversity(reals) > 0.1


def test_color_stats_catch_what_swd_normalises_away(reals):
    darker = (reals * 0.5).astype(np.uint8)
    stats, dark = metrics.color_stats(reals), metrics.color_stats(darker)
    assert len(stats["mean"]) == 3 and len(stats["std"]) == 3
    assert dark["mean"][0] == pytest.approx(stats["mean"][0] / 2, abs=1.0)
    assert metrics.color_distance(dark, stats) > 50 > metrics.color_distance(stats, stats)


def test_spread_separates_flat_identical_and_varied_sets(reals):
    flat = np.full((8, 40, 32, 3), 128, np.uint8)
    identical = np.repeat(reals[:1], 8, axis=0)
    assert metrics.spread(flat) == (0.0, 0.0)
    within, across = metrics.spread(identical)
    assert within > 10 and across == pytest.approx(0.0, abs=1e-9)
    assert min(metrics.spread(reals)) > 10


def test_fid_is_null_without_a_local_weights_file(reals, tmp_path):
    assert metrics.frechet_inception_distance(reals, reals, None) is None
    assert metrics.frechet_inception_distance(reals, reals, str(tmp_path / "missing.h5")) is None
