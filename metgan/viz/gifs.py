"""Write frames to a looping GIF (Pillow's writer), atomically; imageio reads them back."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from PIL import Image

from metgan import trialdir
from metgan.errors import RenderError
from metgan.files import writing_to


def to_palette(frame: Image.Image) -> Image.Image:
    """One frame reduced to its own 256-colour palette (a third of the memory of RGB while we collect)."""
    return frame.convert("RGB").quantize(colors=256, method=Image.Quantize.FASTOCTREE)


def write_gif(path: Path, frames: Sequence[Image.Image], *, duration: float, hold_last: float = 2.0) -> Path:
    """Write ``frames`` (all one size) shown ``duration`` s each and the last ``hold_last`` s; loops forever.

    The GIF goes to a temp name beside ``path`` and is renamed, so a reader never sees half a file;
    a disk that refuses it (full, read-only, failing) is one DiskWriteError line naming the folder.
    """
    if not frames:
        raise RenderError(f"no frames to write to {path}")
    sizes = {frame.size for frame in frames}
    if len(sizes) != 1:
        raise RenderError(f"frames for {path.name} differ in size: {sorted(sizes)}")
    milliseconds = [max(20, round(duration * 1000))] * len(frames)
    milliseconds[-1] = max(milliseconds[-1], round(hold_last * 1000))
    with writing_to(path.parent), trialdir.atomic_path(path) as temp:
        frames[0].save(temp, format="GIF", save_all=True, append_images=list(frames[1:]),
                       duration=milliseconds, loop=0, disposal=1)
    return path
