"""Precision, recall, density, coverage and KID on a fixed random CNN's features (numpy only)."""

from __future__ import annotations

import csv
import subprocess
import sys

import numpy as np
import pytest

from metgan import trialdir
from metgan.gan import features, metrics
from metgan.testing.vases import vase_images

K = metrics.PRDC_K


def gaussian(count: int, dim: int = 16, seed: int = 0, shift: float = 0.0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((count, dim)) + shift


# --- PRDC on hand-made features -----------------------------------------------------------------

def test_identical_sets_score_one_and_density_counts_each_point_in_its_own_ball():
    points = gaussian(200)
    scores = metrics.prdc(points, points.copy())
    assert scores["precision"] == scores["recall"] == scores["coverage"] == 1.0
    # every real ball holds its own point and its k neighbours: (k + 1) / k on the very same set
    assert scores["density"] == pytest.approx((K + 1) / K)


def test_two_samples_of_one_distribution_read_as_the_same():
    scores = metrics.prdc(gaussian(500, seed=1), gaussian(500, seed=2))
    assert scores["precision"] > 0.8 and scores["recall"] > 0.8 and scores["coverage"] > 0.9
    assert scores["density"] == pytest.approx(1.0, abs=0.2)  # E[density] = 1 for identical distributions


def test_fakes_collapsed_onto_one_real_point_are_faithful_but_not_diverse():
    reals = gaussian(200)
    scores = metrics.prdc(reals, np.repeat(reals[:1], 200, axis=0))
    assert scores["precision"] == 1.0  # every fake sits on a real image
    assert scores["recall"] == pytest.approx(1 / 200)  # a fake ball of radius 0 holds only that real
    assert scores["coverage"] < 0.1  # few reals have the one fake within their k-NN radius


def test_fakes_far_away_have_no_fidelity_and_cover_nothing():
    reals = gaussian(200)
    scores = metrics.prdc(reals, gaussian(200, seed=3, shift=100.0))
    assert scores == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_dropping_a_mode_keeps_fidelity_and_halves_coverage():
    reals = np.concatenate([gaussian(200, seed=4), gaussian(200, seed=5, shift=50.0)])
    one_mode = gaussian(400, seed=6)
    scores = metrics.prdc(reals, one_mode)
    assert scores["precision"] > 0.8 and scores["density"] > 0.8
    assert scores["coverage"] == pytest.approx(0.5, abs=0.05) and scores["recall"] <= 0.5


def test_prdc_refuses_too_few_points_and_mismatched_features():
    with pytest.raises(ValueError, match="more than 5 points"):
        metrics.prdc(gaussian(5), gaussian(20))
    with pytest.raises(ValueError, match="one D"):
        metrics.prdc(gaussian(20, dim=4), gaussian(20, dim=5))


# --- KID ----------------------------------------------------------------------------------------

def kid_by_hand(x: np.ndarray, y: np.ndarray) -> float:
    """The unbiased MMD² with k(a, b) = (a.b / d + 1)^3, written as its sums over index pairs."""
    def k(a, b):
        return (a @ b / x.shape[1] + 1) ** 3
    m, n = len(x), len(y)
    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(n)) / (m * n)
    return xx + yy - 2 * xy


def test_kid_is_the_unbiased_mmd_with_the_cubic_kernel():
    x, y = gaussian(12, dim=5, seed=1), gaussian(9, dim=5, seed=2, shift=0.3)
    assert metrics.kid(x, y) == pytest.approx(kid_by_hand(x, y), rel=1e-10)


def test_kid_is_near_zero_for_one_distribution_and_grows_with_a_shift():
    same = metrics.kid(gaussian(300, seed=1), gaussian(300, seed=2))
    shifted = metrics.kid(gaussian(300, seed=1), gaussian(300, seed=2, shift=0.5))
    further = metrics.kid(gaussian(300, seed=1), gaussian(300, seed=2, shift=1.0))
    assert abs(same) < 0.05 * shifted
    assert 0 < shifted < further


def test_kid_is_unbiased_so_samples_of_one_distribution_go_negative_too():
    # The unbiased estimate scatters around 0 (the biased V-statistic, diagonals included, never
    # goes below 0): over independent pairs some are negative and the mean is within noise of 0.
    values = np.array([metrics.kid(gaussian(40, dim=8, seed=2 * i), gaussian(40, dim=8, seed=2 * i + 1))
                       for i in range(40)])
    assert (values < 0).any() and (values > 0).any()
    assert abs(values.mean()) < 3 * values.std() / np.sqrt(len(values))


def test_kid_subsets_are_seeded_and_used_only_above_the_subset_size():
    x, y = gaussian(300, seed=1), gaussian(300, seed=2, shift=0.3)
    first = metrics.kid(x, y, subsets=10, subset_size=100, seed=7)
    assert first == metrics.kid(x, y, subsets=10, subset_size=100, seed=7)  # deterministic
    assert first != metrics.kid(x, y, subsets=10, subset_size=100, seed=8)  # other draws
    assert metrics.kid(x, y, subset_size=300) == metrics.kid(x, y)  # whole sets, once


# --- the random CNN -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vases():
    return vase_images(96, 80, 64, seed=1)


def test_features_have_the_documented_dimension_for_any_size(vases):
    assert features.FEATURE_DIM == 896
    for height, width in ((40, 32), (80, 64), (16, 48), (33, 17), (16, 16)):
        images = vase_images(3, height, width, seed=0)
        out = features.random_features(images)
        assert out.shape == (3, features.FEATURE_DIM) and out.dtype == np.float32
        assert np.isfinite(out).all() and out.std() > 0
    gray = vases[:4].mean(axis=-1, keepdims=True).astype(np.uint8)
    assert features.random_features(gray).shape == (4, features.FEATURE_DIM)
    with pytest.raises(ValueError, match="1 or 3 channels"):
        features.random_features(np.zeros((2, 16, 16, 4), np.uint8))


def test_features_are_deterministic_whatever_the_batch_and_the_global_rng(vases):
    first = features.random_features(vases[:20])
    np.random.seed(123)  # the global state plays no part
    features.weights.cache_clear()
    again = features.random_features(vases[:20], batch_size=7)
    np.testing.assert_allclose(again, first, rtol=1e-5, atol=1e-6)
    assert all(not kernel.flags.writeable for kernel in features.weights())


def test_the_weights_are_the_same_in_another_process():
    code = ("import hashlib; from metgan.gan import features; "
            "print(hashlib.sha256(b''.join(k.tobytes() for k in features.weights())).hexdigest())")
    other = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    import hashlib

    here = hashlib.sha256(b"".join(k.tobytes() for k in features.weights())).hexdigest()
    assert other == here


def test_features_tell_vases_from_noise(vases):
    reals = features.random_features(vases[:48])
    other_vases = features.random_features(vase_images(48, 80, 64, seed=2))
    noise = features.random_features(np.random.default_rng(0).integers(0, 256, (48, 80, 64, 3), dtype=np.uint8))
    like = metrics.prdc(reals, other_vases)
    unlike = metrics.prdc(reals, noise)
    assert like["precision"] > 0.7 and like["coverage"] > 0.7
    assert unlike["precision"] == 0.0 and unlike["coverage"] == 0.0
    assert metrics.kid(reals, noise) > 20 * max(metrics.kid(reals, other_vases), 1e-3)


# --- against the reals, as a trial scores its samples --------------------------------------------

def test_scores_against_reals_come_with_the_real_reference_on_the_same_halves(vases):
    fakes = vase_images(48, 80, 64, seed=2)
    reference = metrics.feature_reference(vases, seed=3)
    scores = metrics.prdc_kid_against_reals(fakes, vases, seed=3, reference=reference)
    assert set(scores) == set(metrics.PRDC_LINE_KEYS)
    assert scores == metrics.prdc_kid_against_reals(fakes, vases, seed=3)  # the cached reference changes nothing
    assert len(reference.features) == len(metrics.split_reals(vases, 3)[0]) == 48
    assert scores["precision_real"] > 0.7 and scores["coverage_real"] > 0.7
    # a blurred copy of the reals loses fidelity ("varied but blurry"); one vase repeated keeps it
    # and loses diversity ("sharp but all alike"); KID sees both, far above the reals' own
    blurred = np.clip(metrics._blur(metrics._blur(metrics._blur(vases.astype(np.float32)))), 0, 255).astype(np.uint8)
    blurry = metrics.prdc_kid_against_reals(blurred, vases, seed=3, reference=reference)
    alike = metrics.prdc_kid_against_reals(np.repeat(fakes[:1], 48, axis=0), vases, seed=3, reference=reference)
    assert blurry["precision"] < 0.7 * scores["precision_real"] and blurry["density"] < 0.3 * scores["density_real"]
    assert alike["precision"] > 0.9 and alike["coverage"] < 0.2 and alike["recall"] < 0.1
    assert min(blurry["kid"], alike["kid"]) > 3 * max(abs(scores["kid_real"]), abs(scores["kid"]))


def test_too_few_reals_give_null_scores_not_an_error():
    reals = vase_images(8, 40, 32, seed=1)  # halves of 4: too few for k = 5, enough for KID
    scores = metrics.prdc_kid_against_reals(vase_images(8, 40, 32, seed=2), reals)
    assert scores["precision"] is None and scores["coverage_real"] is None
    assert isinstance(scores["kid"], float) and isinstance(scores["kid_real"], float)


def test_the_line_shows_each_score_beside_the_data():
    line = metrics.describe_prdc({"precision": 0.714, "precision_real": 0.78, "recall": 0.42, "recall_real": 0.77,
                                  "density": 0.9, "density_real": 1.01, "coverage": 0.55, "coverage_real": 0.96,
                                  "kid": 0.0123, "kid_real": -0.0004})
    assert line == ("fidelity: precision 0.71 (real 0.78), density 0.90 (real 1.01) · diversity: recall 0.42 "
                    "(real 0.77), coverage 0.55 (real 0.96) · KID 0.012 (real -0.0004)")
    assert metrics.describe_prdc({"kid": 0.5, "precision": None}) == "KID 0.5"
    assert metrics.describe_prdc({"swd": 3.0}) is None and metrics.describe_prdc(None) is None


# --- where a trial's scores are shown -----------------------------------------------------------

def test_the_report_shows_the_best_snapshots_fidelity_and_diversity(settings, tmp_path):
    from metgan.testing.trialfolders import make_search
    from metgan.viz.report import publish_report

    folder = make_search(tmp_path / "results" / "prdc-search", {"a1b2c3": {"epochs": 4}, "d4e5f6": {"epochs": 4}})
    best = {"precision": 0.71, "precision_real": 0.78, "recall": 0.42, "recall_real": 0.77, "density": 0.9,
            "density_real": 1.0, "coverage": 0.55, "coverage_real": 0.96, "kid": 0.012, "kid_real": 0.001}
    trial = folder / "a1b2c3"
    trialdir.best_generator_path(trial).parent.mkdir(parents=True)
    trialdir.best_generator_path(trial).write_bytes(b"not read by the report")
    trialdir.write_model_record(trial, trialdir.ModelRecord(
        trial_id="a1b2c3", epoch=4, objective="swd", direction="min", objective_value=7.0,
        metrics={"swd": 7.0, "swd_real": 4.5, **best}))
    written = publish_report(folder)
    page = (folder / trialdir.REPORT).read_text()
    assert page.count('class="prdc"') == 1  # the trial without a best snapshot shows none
    assert ("fidelity: precision 0.71 (real 0.78), density 0.90 (real 1.00) · diversity: recall 0.42 (real 0.77), "
            "coverage 0.55 (real 0.96) · KID 0.012 (real 0.001)") in page
    with open(written["leaderboard"], newline="") as handle:
        rows = {row["trial_id"]: row for row in csv.DictReader(handle)}
    assert float(rows["a1b2c3"]["coverage"]) == 0.55 and float(rows["a1b2c3"]["kid_real"]) == 0.001
    assert rows["d4e5f6"]["precision"] == ""
