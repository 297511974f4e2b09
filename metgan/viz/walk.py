"""Latent walks as files: a looping GIF (always possible) or an MP4 (when imageio's ffmpeg plugin
is installed), and a still grid of every 10th frame.

The frames come from :func:`metgan.gan.generate.walk_images` (the trial's best snapshot);
``imageio-ffmpeg`` is optional (it ships its own ffmpeg binary on PyPI): without it an ``.mp4``
request writes a GIF beside it and says so.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from metgan import trialdir
from metgan.errors import RenderError
from metgan.viz.gifs import to_palette, write_gif

log = logging.getLogger(__name__)

DEFAULT_SEEDS = (0, 1, 2, 3)
DEFAULT_FRAMES = 60
DEFAULT_FPS = 15
FRAME_STEP = 10  # the still grid shows every 10th frame
DISPLAY_HEIGHT = 160  # render_trial's walk is scaled up (whole factors) to about this height


def mp4_available() -> bool:
    """Whether imageio can write MP4 here (its ffmpeg plugin, ``imageio-ffmpeg``, is importable)."""
    return importlib.util.find_spec("imageio_ffmpeg") is not None


def _pictures(frames: np.ndarray, scale: int) -> list[Image.Image]:
    pictures = []
    for frame in frames:
        picture = Image.fromarray(frame[..., 0] if frame.shape[-1] == 1 else frame).convert("RGB")
        if scale > 1:
            picture = picture.resize((picture.width * scale, picture.height * scale), Image.Resampling.LANCZOS)
        pictures.append(picture)
    return pictures


def write_walk(path: Path | str, frames: np.ndarray, *, fps: int = DEFAULT_FPS, scale: int = 1) -> Path:
    """Write uint8 NHWC ``frames`` as a looping walk; returns the path written.

    ``.mp4`` needs imageio's ffmpeg plugin; without it the walk goes to the ``.gif`` of the same
    name (logged). ``.gif`` always works (Pillow). Any other suffix is an error.
    """
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in (".gif", ".mp4"):
        raise RenderError(f"walk file {path.name} must end in .gif or .mp4")
    if not 1 <= fps <= 60:
        raise RenderError(f"fps must be 1 to 60, got {fps}")
    if len(frames) == 0:
        raise RenderError(f"no frames to write to {path}")
    pictures = _pictures(frames, scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".mp4" and mp4_available():
        import imageio.v2 as imageio

        with trialdir.atomic_path(path) as temp:
            # macro_block_size 2: H.264 in yuv420p needs even sides; 16 would resize most frames
            with imageio.get_writer(temp, format="FFMPEG", fps=fps, macro_block_size=2) as writer:
                for picture in pictures:
                    writer.append_data(np.asarray(picture))
        return path
    if suffix == ".mp4":
        log.warning("imageio's ffmpeg plugin is not installed (pip install imageio-ffmpeg): "
                    "writing the walk as a GIF instead of %s", path.name)
        path = path.with_suffix(".gif")
    # Each frame is shown as long as every other: a walk loops with no pause at the end.
    duration = 1.0 / fps
    return write_gif(path, [to_palette(p) for p in pictures], duration=duration, hold_last=duration)


def frames_grid(path: Path | str, frames: np.ndarray, *, step: int = FRAME_STEP, scale: int = 1) -> Path:
    """A PNG of every ``step``-th frame in one row per 10 (the walk at a glance, for a page or a note)."""
    from metgan.viz.grids import write_png

    chosen = _pictures(frames[::step], scale)
    width, height = chosen[0].size
    columns = min(len(chosen), 10)
    rows = -(-len(chosen) // columns)
    pad = 2
    sheet = Image.new("RGB", (columns * (width + pad) + pad, rows * (height + pad) + pad), (255, 255, 255))
    for index, picture in enumerate(chosen):
        row, column = divmod(index, columns)
        sheet.paste(picture, (pad + column * (width + pad), pad + row * (height + pad)))
    return write_png(sheet, Path(path))


def display_factor(height: int) -> int:
    return max(1, DISPLAY_HEIGHT // max(height, 1))


def render_walk(trial_dir: Path | str, *, seeds: Sequence[int] = DEFAULT_SEEDS, frames: int = DEFAULT_FRAMES,
                fps: int = DEFAULT_FPS) -> dict[str, str]:
    """``walk.gif`` and ``walk_frames.png`` of a trial with a best snapshot; {} for one without."""
    trial_dir = Path(trial_dir)
    if not trialdir.has_best_snapshot(trial_dir):
        log.info("trial %s has no best snapshot: no walk", trial_dir.name)
        return {}
    from metgan.gan.generate import walk_images

    images = walk_images(trial_dir, list(seeds), frames)
    scale = display_factor(images.shape[1])
    walk = write_walk(trial_dir / trialdir.WALK_GIF, images, fps=fps, scale=scale)
    grid = frames_grid(trial_dir / trialdir.WALK_FRAMES, images, scale=scale)
    return {trialdir.WALK_GIF: str(walk), trialdir.WALK_FRAMES: str(grid)}
