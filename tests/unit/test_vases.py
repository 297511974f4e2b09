"""The one vase drawer (metgan.testing.vases): what the fake Met serves, the GAN tests train on and
the trial-folder fixtures show."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from metgan.testing import vases

# The pixels of two fake-Met pictures as drawn before the drawer moved out of fakemet/images.py
# (tests/data/fake-met-*.png; these hashes are theirs): the pictures must not change for a given
# seed. numpy's float32 arctan2/sin take CPU-specific SIMD paths (AVX-512 or not) that differ in
# the last bit, which flips a few pixels on a threshold (6 of the plate's 5,120 here), so a
# picture must be the reference exactly or differ from it in a few edge pixels; a changed drawer
# changes most of them.
DATA = Path(__file__).resolve().parents[1] / "data"
PINNED = {"vase": "6480c1478d0db038cb5fd27c1002399fcb1c57beb180fc1c1799662a4b42f6e5",
          "plate": "cf37c6201f6b79363546e5cea117b8d6c350c5407cecd74e640dfeeb36f5728e"}


@pytest.mark.parametrize("kind", sorted(PINNED))
def test_the_fake_mets_pictures_are_unchanged_for_a_given_seed(kind):
    reference = Image.open(DATA / f"fake-met-{kind}-0-3.png")
    assert hashlib.sha256(reference.tobytes()).hexdigest() == PINNED[kind]
    drawn = np.asarray(vases.render(kind, 0, 3, 64, 80))
    differ = (drawn != np.asarray(reference)).any(axis=-1)
    assert differ.sum() <= 0.005 * differ.size, f"{differ.sum()} of {differ.size} pixels changed"


def test_the_fake_met_serves_this_drawer():
    from metgan.testing.fakemet import images

    assert images.render_jpeg is vases.render_jpeg


def test_vase_images_are_deterministic_distinct_uint8_nhwc():
    first = vases.vase_images(4, height=40, width=32, seed=5)
    assert first.shape == (4, 40, 32, 3) and first.dtype == np.uint8
    assert np.array_equal(first, vases.vase_images(4, height=40, width=32, seed=5))
    assert not np.array_equal(first, vases.vase_images(4, height=40, width=32, seed=6))
    assert len({image.tobytes() for image in first}) == 4
    # a vase, not a blank: the middle column differs from the corners (the ground)
    assert np.abs(first[:, 20, 16].astype(int) - first[:, 2, 2].astype(int)).sum() > 0


def test_grayscale_is_one_channel():
    gray = vases.vase_images(2, height=40, width=32, mode="L")
    assert gray.shape == (2, 40, 32, 1)
    assert vases.vase(0, 0, width=32, height=40, mode="L").shape == (40, 32)


def test_background_and_colour_replace_only_ground_and_glaze():
    plain = vases.vase(1, 2, width=64, height=80).astype(int)
    black_ground = vases.vase(1, 2, width=64, height=80, background=(0.0, 0.0, 0.0)).astype(int)
    red = vases.vase(1, 2, width=64, height=80, colour=(1.0, 0.0, 0.0)).astype(int)
    assert black_ground[1, 1].max() < 20 < plain[1, 1].min()          # the corner is ground
    assert np.array_equal(black_ground[40, 32], plain[40, 32])        # the vase's belly is not
    assert red[45, 32, 0] > red[45, 32, 1] + 50                        # a red glaze
    assert np.array_equal(red[1, 1], plain[1, 1])                      # on the same ground


def test_jpeg_bytes_decode_to_the_requested_size():
    data = vases.vase_jpeg(0, 1, width=48, height=60)
    with Image.open(io.BytesIO(data)) as image:
        assert (image.format, image.size, image.mode) == ("JPEG", (48, 60), "RGB")


@pytest.mark.parametrize(("call", "message"), [
    (lambda: vases.vase(mode="CMYK"), "unknown image mode 'CMYK'"),
    (lambda: vases.vase(width=4, height=40), "picture size 4x40 is too small"),
    (lambda: vases.vase_images(0), "vase count must be at least 1"),
    (lambda: vases.render("statue", 0, 0, 64, 64), "unknown picture kind 'statue'"),
])
def test_bad_input_is_one_clear_line(call, message):
    with pytest.raises(ValueError, match=message) as error:
        call()
    assert "\n" not in str(error.value)


def test_the_trial_folder_writer_draws_with_this_drawer(tmp_path):
    from metgan.testing.trialfolders import make_subset, make_trial

    subset = make_subset(tmp_path / "subset", count=9, seed=0)
    pixels = sorted(np.asarray(Image.open(path)).tobytes() for path in (subset / "images").glob("*.png"))
    assert pixels == sorted(image.tobytes() for image in vases.vase_images(9, seed=0))
    for path in (subset / "images").glob("*.png"):  # named by the file's hash, as the subset builder names them
        assert path.stem == hashlib.sha256(path.read_bytes()).hexdigest()

    # a finished trial's generated image 0 is vase 7 seen through a little noise: a near copy
    trial = make_trial(tmp_path / "t", epochs=2, generated=1)
    generated = np.asarray(Image.open(next((trial / "generated").glob("*.png")))).astype(int)
    assert np.abs(generated - vases.vase_images(8, seed=0)[7].astype(int)).mean() < 6
