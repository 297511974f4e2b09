"""Turn one source image into one training image: shape policy, colour mode, fast decoding.

The work for one image is :func:`convert_image`, a pure function of a source path, an output path
and a :class:`Shape`; it never raises for a bad image, it returns ``status="skipped"`` with a
reason instead, so one bad file never stops a build. :func:`convert_many` runs it over a pool of
worker processes (all cores by default) and yields the results in order. The workers are fresh
interpreters started with ``python -c``, fed over pipes (:func:`pooled`), so the build works in
any host process: an Airflow or Celery worker, a notebook, ``python -c``, a script without a
``__main__`` guard. multiprocessing's spawn and forkserver children re-run the host's main
script instead, which in an Airflow worker fails in every child.

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

Why it is over 600 lines: the shape policy, the fast decoding and the worker pool that runs them are
one contract (what one image becomes, and how thousands are made at full speed); the pool is the
part to move out first if it grows.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import pickle
import re
import selectors
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from collections import Counter, deque
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageOps

from metgan.errors import ConfigError, DiskWriteError
from metgan.files import writing_to

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


CONVERTER_STARTUP_S = 120.0     # a worker that is not ready by then counts as one that could not start
_IN_FLIGHT = 2                  # tasks queued per worker: one converting, one waiting in its pipe
_PARENT_POLL_S = 0.2

# A worker is a fresh interpreter running this bootstrap, never a copy of the caller: spawn and
# forkserver children re-import the caller's ``__main__`` (an Airflow or Celery worker's main
# script, a notebook kernel), which fails or repeats its work there. A failed import is one line
# on a private stderr, which the caller reads back when the worker does not come up; once up, the
# worker writes to the caller's own stderr (argv[2], -1 for none), so the task log shows it.
_BOOTSTRAP = """
import sys
try:
    from metgan.images.resize import _serve
except BaseException as exc:
    sys.stderr.write(f"cannot import the converter: {type(exc).__name__}: {exc}\\n")
    sys.exit(3)
_serve(int(sys.argv[1]), int(sys.argv[2]))
"""


def _frame(message) -> bytes:
    data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return len(data).to_bytes(4, "big") + data


def _watch_parent(parent_pid: int) -> None:
    # The parent may die without closing anything (kill -9, the OOM killer): a worker that is
    # re-parented exits at once instead of converting on for nobody.
    while os.getppid() == parent_pid:
        time.sleep(_PARENT_POLL_S)
    os._exit(1)


def _reply(fd: int, frame: bytes) -> bool:
    """Write one whole frame; False when the caller has stopped listening (it stopped early)."""
    view = memoryview(frame)
    try:
        while view:
            view = view[os.write(fd, view):]
    except (BrokenPipeError, OSError):
        return False
    return True


def _serve(parent_pid: int, parent_stderr: int) -> None:
    """A worker's loop: read (function, task) frames from stdin, answer (ok, value) frames on stdout."""
    if parent_stderr >= 0:
        os.dup2(parent_stderr, 2)
        os.close(parent_stderr)
    replies = os.dup(1)
    os.dup2(2, 1)           # a stray print() in a converter must not corrupt the reply stream
    requests = sys.stdin.buffer
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True).start()
    if not _reply(replies, _frame("ready")):
        return
    while True:
        header = requests.read(4)
        if len(header) < 4:
            return          # the parent closed the pipe: it is done with us, or gone
        body = requests.read(int.from_bytes(header, "big"))
        try:
            function, task = pickle.loads(body)
            reply = (True, function(task))
        except Exception as exc:
            reply = (False, exc)
        try:
            frame = _frame(reply)
        except Exception as exc:       # an unpicklable result or exception
            frame = _frame((False, RuntimeError(f"{type(exc).__name__}: {exc} (sending back {reply[1]!r})")))
        if not _reply(replies, frame):
            return


def _import_path() -> str:
    """The caller's import path, so a worker imports the same code (a checkout first, a DAG folder)."""
    return os.pathsep.join(os.path.abspath(entry or os.curdir) for entry in sys.path)


class _Worker:
    """One converter process, talking length-prefixed pickles over its stdin and stdout."""

    def __init__(self):
        self.ready = False
        self.deadline = time.monotonic() + CONVERTER_STARTUP_S
        self.in_flight: deque[int] = deque()
        self._buffer = bytearray()
        self._stderr = tempfile.TemporaryFile()
        try:
            parent_stderr = os.dup(2)
        except OSError:         # no stderr at all (a daemon): the worker keeps its private one
            parent_stderr = -1
        try:
            self.process = subprocess.Popen(
                [sys.executable, "-P", "-c", _BOOTSTRAP, str(os.getpid()), str(parent_stderr)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr,
                env={**os.environ, "PYTHONPATH": _import_path()}, close_fds=True,
                pass_fds=(parent_stderr,) if parent_stderr >= 0 else ())
        finally:
            if parent_stderr >= 0:
                os.close(parent_stderr)

    def fileno(self) -> int:
        return self.process.stdout.fileno()

    def send(self, function, task) -> bool:
        """Queue one task; False when the worker is gone (its death is noticed on its stdout)."""
        try:
            self.process.stdin.write(_frame((function, task)))
            self.process.stdin.flush()
        except (BrokenPipeError, OSError):
            return False
        return True

    def receive(self) -> list | None:
        """The complete replies now readable, or None at end of file (the worker exited)."""
        chunk = os.read(self.fileno(), 1 << 16)
        if not chunk:
            return None
        self._buffer += chunk
        messages = []
        while len(self._buffer) >= 4:
            size = int.from_bytes(self._buffer[:4], "big")
            if len(self._buffer) < 4 + size:
                break
            messages.append(pickle.loads(bytes(self._buffer[4:4 + size])))
            del self._buffer[:4 + size]
        return messages

    def close_pipes(self) -> None:
        """Tell the worker to exit after the task it is running (its stdin ends)."""
        for stream in (self.process.stdin, self.process.stdout):
            try:
                stream.close()
            except OSError:
                pass

    def stop(self) -> str:
        """Let the worker end (killed after 5 s); its last line on stderr, or how it exited."""
        self.close_pipes()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._stderr.seek(0)
        lines = [line.strip() for line in self._stderr.read().decode(errors="replace").splitlines() if line.strip()]
        self._stderr.close()
        code = self.process.returncode
        if lines:
            return lines[-1]
        return f"killed by signal {-code}" if code < 0 else f"exit status {code}"


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
    yield from pooled(_convert_task, tasks, workers=workers,
                      crashed=Result("skipped", "error: the converter process crashed on this file"))


def pooled(function, tasks: list, *, workers: int, crashed) -> Iterator:
    """``map(function, tasks)`` over ``workers`` fresh processes, in order, surviving worker crashes.

    Works from any host process: workers are new interpreters that import ``function``'s module,
    never the caller's main script. A worker that dies (a decoder crash, the OOM killer) costs
    the task it was running a second try on another worker; if that dies too, its result is
    ``crashed``. Workers that cannot start at all are one warning, and the tasks then run in this
    process: a broken pool is a problem of the build, never a reason to skip an image. Workers
    exit when this process does, however it ends. An exception raised by ``function`` is raised here.
    """
    results: dict[int, Any] = {}
    queue = deque(range(len(tasks)))
    tries: Counter = Counter()
    pool: list[_Worker] = []
    start_failures: list[str] = []
    selector = selectors.DefaultSelector()
    following = 0

    def start() -> None:
        try:
            worker = _Worker()
        except OSError as exc:
            start_failures.append(f"{type(exc).__name__}: {exc}")
            return
        pool.append(worker)
        selector.register(worker.process.stdout, selectors.EVENT_READ, worker)

    def lost(worker: _Worker) -> None:
        selector.unregister(worker.process.stdout)
        pool.remove(worker)
        words = worker.stop()
        if not worker.ready:
            start_failures.append(words)
            return
        start()
        if worker.in_flight:        # the first task in flight is the one it was running
            suspect = worker.in_flight.popleft()
            tries[suspect] += 1
            queue.extendleft(reversed(worker.in_flight))
            if tries[suspect] >= 2:
                log.warning("a worker process died on task %d again (%s); recording it as failed", suspect, words)
                results[suspect] = crashed
            else:
                log.warning("a worker process died on task %d (%s); retrying it in a fresh worker", suspect, words)
                queue.appendleft(suspect)

    try:
        for _ in range(workers):
            start()
        warned = False
        while following < len(tasks):
            while following in results:
                yield results.pop(following)
                following += 1
            if following >= len(tasks):
                break
            ready = [w for w in pool if w.ready]
            left = len(tasks) - following - len(results)
            if start_failures and not warned and all(w.ready for w in pool):
                warned = True
                log.warning("%d of %d converter processes could not start (%s)%s", len(start_failures), workers,
                            start_failures[0], "" if pool else f"; converting {left} tasks in this process")
                if not pool:
                    break   # the rest run here, below
            if not pool:
                log.warning("no converter process is left (%s); converting the remaining %d tasks in this process",
                            start_failures[-1], left)
                break
            for worker in ready:
                while len(worker.in_flight) < _IN_FLIGHT and queue:
                    index = queue.popleft()
                    worker.in_flight.append(index)
                    if not worker.send(function, tasks[index]):
                        break
            timeout = None if ready else max(0.0, min(w.deadline for w in pool) - time.monotonic())
            events = selector.select(timeout)
            if not events and not ready:
                for worker in [w for w in pool if w.deadline <= time.monotonic()]:
                    worker.process.kill()
                    lost(worker)
                continue
            for key, _ in events:
                worker = key.data
                messages = worker.receive()
                if messages is None:
                    lost(worker)
                    continue
                for message in messages:
                    if message == "ready" and not worker.ready:
                        worker.ready = True
                        continue
                    ok, value = message
                    index = worker.in_flight.popleft()
                    if not ok:
                        raise value
                    results[index] = value
    finally:
        # A caller that stops early (an error while recording) must not wait for the queue.
        for worker in pool:
            worker.close_pipes()
        for worker in pool:
            worker.stop()
        selector.close()
    for index in range(following, len(tasks)):
        yield results.pop(index) if index in results else function(tasks[index])
