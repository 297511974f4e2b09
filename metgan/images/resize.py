"""Turn one source image into one training image: shape policy, colour mode, fast decoding.

The work for one image is :func:`convert_image`, a pure function of a source path, an output path
and a :class:`Shape`; it never raises for a bad image, it returns ``status="skipped"`` with a
reason instead, so one bad file never stops a build. :func:`convert_many` runs it over a pool of
worker processes (all cores by default; :mod:`metgan.images.pool`, which works in any host
process) and yields the results in order.

Speed comes from three things: JPEG ``draft()`` (libjpeg decodes at 1/2, 1/4 or 1/8 scale, the
largest reduction that still leaves at least the pixels the target needs), a high-quality
LANCZOS resize of that much smaller image, and one process per core.

Aspect ratio is height / width (5:4 portrait is 1.25). An image whose ratio is further than
``tolerance`` (absolute, in the same units) from the target ratio is skipped with reason
``ratio``; the rest are fitted to the target size by the policy:

- ``pad``: scale to fit inside, fill the margins with the background colour estimated from the
  image's border pixels (the median of its outer ring);
- ``crop``: scale to cover, cut the centre;
- ``stretch``: scale each axis independently.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from metgan.errors import ConfigError, DiskWriteError
from metgan.files import writing_to
from metgan.images import pool

log = logging.getLogger(__name__)

# Bumped whenever the conversion changes what it writes, so old outputs are rebuilt.
CONVERTER_VERSION = 1

POLICIES = ("pad", "crop", "stretch")
MODES = {"rgb": "RGB", "grayscale": "L"}
_MODE_ALIASES = {"rgb": "rgb", "color": "rgb", "colour": "rgb", "grayscale": "grayscale",
                 "greyscale": "grayscale", "gray": "grayscale", "grey": "grayscale", "l": "grayscale"}
_SIZE = re.compile(r"^\s*(\d+)\s*[xX×]\s*(\d+)\s*$")
_EXIF_ORIENTATION = 0x0112
_SWAPPING_ORIENTATIONS = {5, 6, 7, 8}
_SIXTEEN_BIT_MODES = {"I;16", "I;16L", "I;16B", "I;16N", "I"}


def parse_size(value: str | tuple[int, int] | list[int]) -> tuple[int, int]:
    """``"128x160"`` (width x height) or ``(128, 160)`` -> ``(128, 160)``; ConfigError otherwise."""
    if isinstance(value, str):
        match = _SIZE.match(value)
        if not match:
            raise ConfigError(f"size {value!r} is not WIDTHxHEIGHT (e.g. 128x160)")
        width, height = int(match.group(1)), int(match.group(2))
    elif isinstance(value, (tuple, list)) and len(value) == 2 and all(isinstance(v, int) for v in value):
        width, height = value
    else:
        raise ConfigError(f"size {value!r} is not WIDTHxHEIGHT (e.g. 128x160)")
    if not (1 <= width <= 8192 and 1 <= height <= 8192):
        raise ConfigError(f"size {width}x{height} is out of range (each side 1..8192)")
    return width, height


def parse_mode(value: str) -> str:
    """``rgb`` or ``grayscale`` (aliases: RGB, L, gray, grey, color)."""
    mode = _MODE_ALIASES.get(str(value).strip().lower())
    if mode is None:
        raise ConfigError(f"mode {value!r} is not one of: rgb, grayscale")
    return mode


@dataclass(frozen=True)
class Shape:
    """What every output image looks like: size, colour mode, and how the shape is fitted."""

    width: int = 128
    height: int = 160
    mode: str = "rgb"
    policy: str = "pad"
    ratio: float = 1.25
    tolerance: float = 0.15

    def __post_init__(self):
        parse_size((self.width, self.height))
        if self.mode not in MODES:
            raise ConfigError(f"mode {self.mode!r} is not one of: {', '.join(MODES)}")
        if self.policy not in POLICIES:
            raise ConfigError(f"policy {self.policy!r} is not one of: {', '.join(POLICIES)}")
        if not (isinstance(self.ratio, (int, float)) and 0 < self.ratio < 100):
            raise ConfigError(f"ratio {self.ratio!r} must be a height/width ratio above 0 (5:4 portrait is 1.25)")
        if not (isinstance(self.tolerance, (int, float)) and 0 <= self.tolerance):
            raise ConfigError(f"tolerance {self.tolerance!r} must be a number >= 0")

    @property
    def size(self) -> tuple[int, int]:
        return self.width, self.height

    @property
    def pil_mode(self) -> str:
        return MODES[self.mode]

    @property
    def ratio_range(self) -> tuple[float, float]:
        return self.ratio - self.tolerance, self.ratio + self.tolerance

    def accepts(self, width: int, height: int) -> bool:
        low, high = self.ratio_range
        return low - 1e-9 <= height / width <= high + 1e-9

    def params_hash(self) -> str:
        """A short hash of everything that decides the output pixels (and the converter version)."""
        data = dict(asdict(self), converter=CONVERTER_VERSION)
        return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Result:
    """What became of one source image."""

    status: str                     # "ok" or "skipped"
    reason: str | None = None       # "<kind>: detail", kind in ratio/missing/truncated/unreadable/...
    source_width: int | None = None     # after EXIF orientation
    source_height: int | None = None
    width: int | None = None
    height: int | None = None
    mode: str | None = None


def _oriented_size(image: Image.Image) -> tuple[int, int]:
    orientation = image.getexif().get(_EXIF_ORIENTATION, 1)
    width, height = image.size
    return (height, width) if orientation in _SWAPPING_ORIENTATIONS else (width, height)


def _scaled_region(width: int, height: int, shape: Shape) -> tuple[int, int]:
    """Source pixels (oriented) the policy needs, so the decoder may drop everything beyond them."""
    target_w, target_h = shape.size
    if shape.policy == "stretch":
        return min(target_w, width), min(target_h, height)
    scale_w, scale_h = target_w / width, target_h / height
    scale = min(scale_w, scale_h) if shape.policy == "pad" else max(scale_w, scale_h)
    scale = min(scale, 1.0)
    return max(1, math.ceil(width * scale)), max(1, math.ceil(height * scale))


def _draft(image: Image.Image, width: int, height: int, shape: Shape) -> None:
    """Let libjpeg decode at the largest 1/2^k reduction that still covers what the target needs."""
    if image.format != "JPEG":
        return
    need_w, need_h = _scaled_region(width, height, shape)
    if (width, height) != image.size:       # EXIF rotation by 90 degrees: ask in stored axes
        need_w, need_h = need_h, need_w
    image.draft(shape.pil_mode, (need_w, need_h))


def _to_eight_bit(image: Image.Image) -> Image.Image:
    """16-bit / 32-bit integer and float images scaled into 0..255 grayscale."""
    array = np.asarray(image, dtype=np.float64)
    if image.mode == "F":
        top = 1.0 if array.size and float(np.nanmax(array)) <= 1.0 else 255.0
    else:
        top = 65535.0 if array.size and float(array.max()) > 255 else 255.0
    scaled = np.clip(np.nan_to_num(array) * (255.0 / top), 0, 255)
    return Image.fromarray(np.rint(scaled).astype(np.uint8), "L")


def _normalise_mode(image: Image.Image) -> Image.Image:
    """Any PIL mode -> one of RGB, L, RGBA, LA (alpha kept for compositing)."""
    mode = image.mode
    if mode in ("RGB", "L", "RGBA", "LA"):
        return image
    if mode in _SIXTEEN_BIT_MODES or mode == "F":
        return _to_eight_bit(image)
    if mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if mode in ("PA", "RGBa", "RGBX"):
        return image.convert("RGBA") if mode != "RGBX" else image.convert("RGB")
    if mode in ("La",):
        return image.convert("LA")
    if mode == "1":
        return image.convert("L")
    return image.convert("RGB")         # CMYK, YCbCr, LAB, HSV


def _border_pixels(array: np.ndarray) -> np.ndarray:
    """The image's outer ring (about 2% of the short side, at least one pixel), as rows of pixels."""
    height, width = array.shape[:2]
    ring = max(1, min(height, width) // 50)
    parts = [array[:ring], array[-ring:], array[:, :ring], array[:, -ring:]]
    channels = 1 if array.ndim == 2 else array.shape[2]
    return np.concatenate([p.reshape(-1, channels) for p in parts])


def estimate_background(image: Image.Image) -> tuple[int, ...]:
    """The background colour: the per-channel median of the border's (opaque) pixels.

    For an image with alpha only pixels at least half opaque count; a fully transparent border
    (a cut-out object) gives white, the usual museum photography background.
    """
    array = np.asarray(image)
    pixels = _border_pixels(array)
    bands = len(image.getbands())
    if image.mode in ("RGBA", "LA"):
        opaque = pixels[pixels[:, -1] >= 128][:, :-1]
        if len(opaque) == 0:
            return (255,) * (bands - 1)
        pixels = opaque
    return tuple(int(v) for v in np.median(pixels, axis=0))


def _flatten_alpha(image: Image.Image) -> Image.Image:
    if image.mode not in ("RGBA", "LA"):
        return image
    background = estimate_background(image)
    base_mode = image.mode[:-1]
    canvas = Image.new(base_mode, image.size, background if base_mode == "RGB" else background[0])
    canvas.paste(image.convert(base_mode), mask=image.getchannel("A"))
    return canvas


def crop_box(width: int, height: int, target_w: int, target_h: int) -> tuple[float, float, float, float]:
    """The centred box of a ``width`` x ``height`` image with the target's ratio, as large as fits.

    The side that fits is taken whole and only the other is derived, so the box never leaves the
    image: going through a scale factor and back (``target / (target / side)``) lands a rounding
    error beyond the edge, and Pillow refuses such a box.
    """
    if width * target_h >= height * target_w:       # wider than the target: full height, cut the sides
        box_w, box_h = min(float(width), height * target_w / target_h), float(height)
    else:
        box_w, box_h = float(width), min(float(height), width * target_h / target_w)
    # (w - b) / 2 and (w + b) / 2 with b <= w stay within 0..w under rounding; left + b may not.
    return (width - box_w) / 2, (height - box_h) / 2, (width + box_w) / 2, (height + box_h) / 2


def _fit(image: Image.Image, shape: Shape) -> Image.Image:
    target_w, target_h = shape.size
    width, height = image.size
    if shape.policy == "stretch":
        return image.resize((target_w, target_h), Image.Resampling.LANCZOS, reducing_gap=3.0)
    if shape.policy == "crop":
        return image.resize((target_w, target_h), Image.Resampling.LANCZOS,
                            box=crop_box(width, height, target_w, target_h), reducing_gap=3.0)
    scale = min(target_w / width, target_h / height)
    inner = (max(1, min(target_w, round(width * scale))), max(1, min(target_h, round(height * scale))))
    resized = image.resize(inner, Image.Resampling.LANCZOS, reducing_gap=3.0)
    if inner == (target_w, target_h):
        return resized
    background = estimate_background(resized)
    canvas = Image.new(image.mode, (target_w, target_h), background if image.mode == "RGB" else background[0])
    canvas.paste(resized, ((target_w - inner[0]) // 2, (target_h - inner[1]) // 2))
    return canvas


def _write_png(image: Image.Image, destination: Path) -> None:
    # zlib level 1: about 4x faster than the default 6 on grainy photographs, for ~10% more bytes.
    temporary = destination.with_name(f".{destination.name}.{os.getpid()}.tmp")
    try:
        image.save(temporary, format="PNG", compress_level=1)
        os.replace(temporary, destination)
    finally:
        if temporary.exists():
            temporary.unlink()


def _reason(exc: BaseException) -> str:
    message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "truncated" in message.lower() or isinstance(exc, EOFError):
        return f"truncated: {message}"
    if isinstance(exc, Image.DecompressionBombError):
        return f"too large: {message}"
    if isinstance(exc, Image.UnidentifiedImageError):
        return f"unreadable: {message}"
    return f"unreadable: {type(exc).__name__}: {message}"


def convert_image(source: str | os.PathLike, destination: str | os.PathLike, shape: Shape,
                  *, max_pixels: int | None = None) -> Result:
    """Convert one source image into ``destination`` (PNG, ``shape``); never raises for bad input.

    A disk that refuses the PNG (full, over quota, read-only, failing) raises DiskWriteError: that
    is the build's problem, not the image's.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        return Result("skipped", f"missing: no file {source.name}")
    width = height = None
    try:
        with warnings.catch_warnings():
            # Our own limit (max_pixels) decides; Pillow's still refuses beyond twice its default.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(source) as image:
                width, height = _oriented_size(image)
                if max_pixels is not None and width * height > max_pixels:
                    return Result("skipped", f"too large: {width}x{height} is over {max_pixels} pixels",
                                  width, height)
                if not shape.accepts(width, height):
                    low, high = shape.ratio_range
                    return Result("skipped", f"ratio: {height / width:.2f} outside {low:.2f}..{high:.2f}",
                                  width, height)
                _draft(image, width, height, shape)
                image.load()
                image = ImageOps.exif_transpose(image)
                image = _flatten_alpha(_normalise_mode(image))
                image = image.convert(shape.pil_mode) if image.mode != shape.pil_mode else image
                output = _fit(image, shape)
        with writing_to(destination.parent):  # a full disk stops the build; it is never the image's fault
            destination.parent.mkdir(parents=True, exist_ok=True)
            _write_png(output, destination)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError, MemoryError) as exc:
        return Result("skipped", _reason(exc), width, height)
    return Result("ok", None, width, height, output.width, output.height, output.mode)


def _convert_task(task: tuple[str, str, Shape, int | None]) -> Result:
    source, destination, shape, max_pixels = task
    try:
        return convert_image(source, destination, shape, max_pixels=max_pixels)
    except DiskWriteError:
        raise
    except Exception as exc:        # a converter bug must cost one image, not the build
        log.exception("converting %s failed", source)
        return Result("skipped", f"error: {type(exc).__name__}: {exc}")


def convert_many(pairs: Iterable[tuple[str | os.PathLike, str | os.PathLike]], shape: Shape, *,
                 workers: int | None = None, max_pixels: int | None = None) -> Iterator[Result]:
    """Convert each (source, destination) pair; yields one Result per pair, in order.

    ``workers`` defaults to every core; 1 converts in this process.
    """
    tasks = [(str(s), str(d), shape, max_pixels) for s, d in pairs]
    workers = workers or os.cpu_count() or 1
    workers = min(workers, max(1, len(tasks)))
    if workers == 1:
        for task in tasks:
            yield _convert_task(task)
        return
    yield from pool.pooled(_convert_task, tasks, workers=workers,
                      crashed=Result("skipped", "error: the converter process crashed on this file"))
