"""One source image -> one training image: odd modes, EXIF, alpha, shape policies, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from metgan.errors import ConfigError
from metgan.images.resize import Shape, convert_image, convert_many, crop_box, estimate_background, parse_size

RED, BLUE, WHITE = (220, 20, 20), (20, 20, 220), (255, 255, 255)
W, H = 200, 250                 # 5:4 portrait sources
TARGET = Shape(width=32, height=40)


def two_halves(mode_size=(W, H)) -> Image.Image:
    """Top half red, bottom half blue (as displayed)."""
    image = Image.new("RGB", mode_size, BLUE)
    image.paste(RED, (0, 0, mode_size[0], mode_size[1] // 2))
    return image


def odd_sources(folder) -> dict[str, object]:
    """Each odd kind of source file, written into ``folder``; name -> path."""
    paths = {}

    def save(name, image, **kwargs):
        path = folder / name
        image.save(path, **kwargs)
        paths[name] = path

    save("rgb.jpg", two_halves(), quality=92)
    save("cmyk.jpg", Image.new("CMYK", (W, H), (255, 0, 0, 0)), quality=92)        # cyan
    save("gray.jpg", two_halves().convert("L"), quality=92)
    save("bilevel.png", two_halves().convert("1"))
    palette = two_halves().convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    save("palette.png", palette)
    transparent = Image.new("P", (W, H), 0)
    transparent.putpalette([0, 0, 0] + list(RED) + [0] * 762)
    transparent.paste(1, (40, 50, 160, 200))
    save("palette_transparency.png", transparent, transparency=0)
    gradient = np.linspace(0, 65535, W * H).reshape(H, W).astype(np.uint16)
    save("sixteen_bit.png", Image.fromarray(gradient))
    rgba = Image.new("RGBA", (W, H), (0, 0, 0, 0))
    rgba.paste((*RED, 255), (40, 50, 160, 200))
    save("rgba.png", rgba)
    la = Image.new("LA", (W, H), (0, 0))
    la.paste((90, 255), (40, 50, 160, 200))
    save("la.png", la)
    # Stored landscape, displayed portrait: EXIF orientation 6 means "rotate 90 degrees clockwise".
    stored = two_halves().transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    save("exif_rotated.jpg", stored, exif=exif.tobytes(), quality=92)
    whole = (folder / "rgb.jpg").read_bytes()
    (folder / "truncated.jpg").write_bytes(whole[: len(whole) // 2])
    paths["truncated.jpg"] = folder / "truncated.jpg"
    (folder / "not_an_image.jpg").write_bytes(b"<html>blocked</html>")
    paths["not_an_image.jpg"] = folder / "not_an_image.jpg"
    save("landscape.jpg", Image.new("RGB", (H, W), RED))
    return paths


SKIPPED = {"truncated.jpg": "truncated", "not_an_image.jpg": "unreadable", "landscape.jpg": "ratio"}


@pytest.mark.parametrize("mode, pil_mode", [("rgb", "RGB"), ("grayscale", "L")])
@pytest.mark.parametrize("policy", ["pad", "crop", "stretch"])
def test_every_odd_source_comes_out_in_target_size_and_mode_or_is_skipped_with_a_reason(
        tmp_path, mode, pil_mode, policy):
    sources = odd_sources(tmp_path)
    shape = Shape(width=32, height=40, mode=mode, policy=policy)
    for name, path in sources.items():
        out = tmp_path / "out" / f"{name}.png"
        result = convert_image(path, out, shape)
        if name in SKIPPED:
            assert result.status == "skipped", name
            assert result.reason.startswith(SKIPPED[name] + ":"), (name, result.reason)
            assert not out.exists()
            continue
        assert result.status == "ok", (name, result.reason)
        with Image.open(out) as image:
            assert (image.size, image.mode) == ((32, 40), pil_mode), name
        assert (result.width, result.height, result.mode) == (32, 40, pil_mode)
        assert (result.source_width, result.source_height) == (W, H), name


def pixel(path, xy):
    with Image.open(path) as image:
        return image.convert("RGB").getpixel(xy)


def near(actual, expected, slack=40):
    return all(abs(a - e) <= slack for a, e in zip(actual, expected, strict=True))


def test_colours_survive_conversion(tmp_path):
    sources = odd_sources(tmp_path)
    out = tmp_path / "o.png"

    convert_image(sources["cmyk.jpg"], out, TARGET)
    assert near(pixel(out, (16, 20)), (0, 255, 255))

    # EXIF orientation is applied: red on top, blue below, as displayed.
    convert_image(sources["exif_rotated.jpg"], out, TARGET)
    assert near(pixel(out, (16, 4)), RED) and near(pixel(out, (16, 36)), BLUE)

    # Transparent surroundings become the estimated background (white for a cut-out), not black.
    for name in ("rgba.png", "palette_transparency.png"):
        convert_image(sources[name], out, TARGET)
        assert near(pixel(out, (0, 0)), WHITE), name
        assert near(pixel(out, (16, 20)), RED), name

    # 16-bit data is scaled, not clipped to white: the gradient spans dark to light.
    convert_image(sources["sixteen_bit.png"], out, TARGET)
    with Image.open(out) as image:
        low, high = image.convert("L").getextrema()
    assert low < 30 and high > 225


def test_pad_fills_with_the_border_colour_crop_cuts_the_centre(tmp_path):
    # A square red object on a beige ground, 1:1; target 5:4 with a wide tolerance.
    beige = (230, 220, 200)
    image = Image.new("RGB", (200, 200), beige)
    image.paste((200, 0, 0), (60, 60, 140, 140))
    source = tmp_path / "square.png"
    image.save(source)
    shape = Shape(width=32, height=40, policy="pad", ratio=1.25, tolerance=0.5)
    out = tmp_path / "pad.png"
    assert convert_image(source, out, shape).status == "ok"
    assert near(pixel(out, (16, 1)), beige, slack=6)          # padding band matches the ground
    crop = tmp_path / "crop.png"
    convert_image(source, crop, Shape(width=32, height=40, policy="crop", ratio=1.25, tolerance=0.5))
    assert near(pixel(crop, (16, 20)), (200, 0, 0), slack=10)
    assert near(pixel(crop, (0, 0)), beige, slack=10)


def test_ratio_tolerance_bounds():
    shape = Shape(width=128, height=160, ratio=1.25, tolerance=0.15)
    assert shape.accepts(1000, 1100) and shape.accepts(1000, 1400)
    assert not shape.accepts(1000, 1090) and not shape.accepts(1000, 1410)


def test_background_estimate_uses_the_border():
    image = Image.new("RGB", (100, 100), (10, 200, 30))
    image.paste((255, 0, 0), (10, 10, 90, 90))
    assert estimate_background(image) == (10, 200, 30)


def test_images_over_the_pixel_limit_are_skipped(tmp_path):
    source = tmp_path / "big.png"
    two_halves().save(source)
    result = convert_image(source, tmp_path / "o.png", TARGET, max_pixels=W * H - 1)
    assert result.status == "skipped" and result.reason.startswith("too large:")
    assert convert_image(source, tmp_path / "o.png", TARGET, max_pixels=W * H).status == "ok"


def test_missing_source_is_skipped(tmp_path):
    result = convert_image(tmp_path / "nope.jpg", tmp_path / "o.png", TARGET)
    assert result.status == "skipped" and result.reason.startswith("missing:")


def test_pool_returns_results_in_order(tmp_path):
    sources = odd_sources(tmp_path)
    names = sorted(sources)
    pairs = [(sources[n], tmp_path / "pool" / f"{n}.png") for n in names]
    results = list(convert_many(pairs, TARGET, workers=2))
    assert [r.status == "ok" for r in results] == [n not in SKIPPED for n in names]


@pytest.mark.parametrize("text, size", [("64x80", (64, 80)), ("128X160", (128, 160)), (" 384 x 480 ", (384, 480))])
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["128", "128x", "axb", "0x10", "128x160x3", "99999x10"])
def test_parse_size_refuses_malformed(bad):
    with pytest.raises(ConfigError, match="size"):
        parse_size(bad)


def test_shape_refuses_unknown_policy_and_mode():
    with pytest.raises(ConfigError, match="policy"):
        Shape(policy="squash")
    with pytest.raises(ConfigError, match="mode"):
        Shape(mode="cmyk")


def die_on_negative(value: int) -> int:
    """A task function whose worker process dies outright on a negative number."""
    import os

    if value < 0:
        os._exit(3)
    return value * 10


def test_a_worker_crash_costs_one_task_not_the_run():
    from metgan.images.pool import pooled

    tasks = [1, 2, -1, 3, -2, 4]
    results = list(pooled(die_on_negative, tasks, workers=2, crashed="crashed"))
    assert results == [t * 10 if t >= 0 else "crashed" for t in tasks]


def test_stopping_early_cancels_the_queued_tasks(tmp_path):
    from metgan.images.pool import pooled

    tasks = [(str(tmp_path), n) for n in range(200)]
    results = pooled(touch_slowly, tasks, workers=2, crashed=None)
    assert next(results) == 0
    results.close()
    ran = len(list(tmp_path.iterdir()))
    assert 1 <= ran < 20        # only the tasks already in flight finished; the queue was dropped


def touch_slowly(task: tuple[str, int]) -> int:
    """Leaves a marker file per task that ran, slowly enough that the queue is still full."""
    import time
    from pathlib import Path

    folder, number = task
    time.sleep(0.05)
    (Path(folder) / str(number)).touch()
    return number


@given(width=st.integers(1, 8192), height=st.integers(1, 8192),
       target_w=st.integers(1, 1024), target_h=st.integers(1, 1024))
def test_every_crop_box_lies_inside_the_image_with_the_target_ratio(width, height, target_w, target_h):
    left, top, right, bottom = crop_box(width, height, target_w, target_h)
    assert 0 <= left <= right <= width and 0 <= top <= bottom <= height
    # One side is whole, the other within a pixel of the target's ratio.
    assert right - left == width or bottom - top == height
    assert abs((right - left) * target_h / target_w - (bottom - top)) <= 1
    assert abs((bottom - top) * target_w / target_h - (right - left)) <= 1


@pytest.mark.parametrize("size", [(107, 137), (205, 245), (107, 122), (1500, 1771)])
def test_crop_keeps_sources_whose_box_used_to_start_below_zero(tmp_path, size):
    # The old arithmetic (target / (target / side)) put these boxes a rounding error before 0,
    # and Pillow refused them: the images were skipped as "unreadable".
    source = tmp_path / "source.png"
    two_halves(size).save(source)
    for target in ((32, 40), (512, 640)):
        shape = Shape(width=target[0], height=target[1], policy="crop", ratio=1.25, tolerance=0.15)
        result = convert_image(source, tmp_path / "out.png", shape)
        assert result.status == "ok", (size, target, result.reason)
        with Image.open(tmp_path / "out.png") as image:
            assert image.size == target


def shout(task: int) -> int:
    """Writes to stderr, as a converter's warning or a logged traceback would."""
    import sys

    print(f"converter says {task}", file=sys.stderr, flush=True)
    return task


def test_what_a_worker_writes_to_stderr_reaches_the_callers_stderr(capfd):
    from metgan.images.pool import pooled

    assert list(pooled(shout, [1, 2, 3], workers=2, crashed=None)) == [1, 2, 3]
    err = capfd.readouterr().err
    assert all(f"converter says {n}" in err for n in (1, 2, 3)), err
    assert "Traceback" not in err
