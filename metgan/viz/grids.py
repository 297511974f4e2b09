"""Sample grids and the text drawn beside them: fonts, scaling, wrapping, the frame palette."""

from __future__ import annotations

import functools
import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from metgan import trialdir
from metgan.errors import RenderError

# One palette for every frame, plot and the report, so a score has one colour everywhere.
INK = (34, 34, 38)
MUTED = (110, 112, 120)
PAPER = (255, 255, 255)
MAT = (241, 239, 234)
RULE = (222, 220, 214)
STATUS_COLOURS = {
    "completed": (46, 125, 50),
    "stopped": (191, 110, 0),
    "failed": (183, 28, 28),
    "running": (21, 101, 192),
    "pending": (110, 112, 120),
}
SCORE_COLOURS = {
    "d_loss": "#3b6fb6", "g_loss": "#e07b39", "d_acc_real": "#c0392b", "d_acc_fake": "#8e6cc0",
    "swd": "#2e8b57", "swd_real": "#8a8a8a", "diversity": "#a0722d", "images_per_s": "#d264a8",
    "wall_s": "#5a5a5a",
}


def _font_path(bold: bool) -> Path:
    import matplotlib

    name = "DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf"
    return Path(matplotlib.get_data_path()) / "fonts" / "ttf" / name


@functools.lru_cache(maxsize=32)
def font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont:
    """DejaVu Sans (shipped with matplotlib) at ``size`` pixels: legible, with real glyphs for ×, —."""
    return ImageFont.truetype(str(_font_path(bold)), size)


def text_width(text: str, typeface: ImageFont.FreeTypeFont) -> float:
    return typeface.getlength(text)


def fit_text(text: str, typeface: ImageFont.FreeTypeFont, width: float) -> str:
    """``text`` cut with an ellipsis so it fits in ``width`` pixels."""
    if text_width(text, typeface) <= width:
        return text
    while text and text_width(text + "…", typeface) > width:
        text = text[:-1]
    return text + "…"


def wrap_text(text: str, typeface: ImageFont.FreeTypeFont, width: float, max_lines: int = 4) -> list[str]:
    """``text`` broken at spaces into lines that fit ``width`` pixels (the last one cut if needed)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if text_width(candidate, typeface) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    if current:
        lines.append(current)
    if len(lines) > max_lines:
        lines = lines[:max_lines - 1] + [" ".join(lines[max_lines - 1:])]
    return [fit_text(line, typeface, width) for line in lines]


def load_grid(path: Path) -> Image.Image:
    try:
        with Image.open(path) as image:
            return image.convert("RGB")
    except OSError as exc:
        raise RenderError(f"sample grid {path} cannot be read: {exc}") from exc


def display_scale(size: tuple[int, int], min_height: int = 320, max_height: int = 720) -> float:
    """The factor a grid is shown at: a whole number up to ``min_height``, or shrunk past ``max_height``."""
    height = size[1]
    if height < min_height:
        return float(math.ceil(min_height / height))
    if height > max_height:
        return max_height / height
    return 1.0


def scaled(image: Image.Image, scale: float) -> Image.Image:
    """Grow with NEAREST (crisp pixels, no blur on tiny grids); shrink with LANCZOS."""
    if scale == 1:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.Resampling.NEAREST if scale > 1 else Image.Resampling.LANCZOS)


def placeholder(size: tuple[int, int], text: str) -> Image.Image:
    """A plain tile standing in for a missing sample grid (a trial that failed before epoch 0)."""
    image = Image.new("RGB", size, MAT)
    draw = ImageDraw.Draw(image)
    typeface = font(14)
    lines = wrap_text(text, typeface, size[0] - 20)
    y = size[1] // 2 - len(lines) * 10
    for line in lines:
        draw.text((10, y), line, font=typeface, fill=MUTED)
        y += 20
    return image


def write_png(image: Image.Image, path: Path) -> Path:
    """Save atomically: a temp name in the same folder, then rename."""
    with trialdir.atomic_path(path) as temp:
        image.save(temp, format="PNG")
    return path
