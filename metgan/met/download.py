"""Download one Met image safely into ``<data_dir>/images/<object_id>/<seq>.jpg``.

Only URLs the image policy allows are fetched (``METGAN_IMAGE_HOSTS``, see
:mod:`metgan.urlpolicy`), on the first request and on every redirect. The URL's path is percent-encoded (the Met's
file names hold spaces, en-dashes and accents) without double-encoding escapes already present.
The body streams to a temp file in the destination folder while its size (``max_bytes``) and
sha256 are tracked; it must be declared an image, decode with Pillow, and stay under the pixel
cap (decompression bombs are refused before decoding); then it is renamed into place atomically.
A killed download leaves only a ``.part`` file that :func:`sweep_temp_files` removes.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import socket
import time
import uuid
import warnings
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from PIL import Image

from metgan.errors import ImageError, MetRetryableError
from metgan.files import writing_to
from metgan.met.client import Attempts, MetClient
from metgan.storage import file_sha256
from metgan.urlpolicy import UrlPolicy, encode_url, redact_url

__all__ = ["BadContent", "Downloaded", "ImageGone", "check_host", "download_image", "encode_url",
           "image_key", "inspect_image", "relative_path", "stored_intact", "sweep_temp_files"]

log = logging.getLogger(__name__)

CHUNK = 256 * 1024
TEMP_SUFFIX = ".part"
STALE_TEMP_SECONDS = 3600
# Bad content (undecodable, not an image) is re-requested this many times before it is
# refused: a truncated or mangled transfer looks the same as a broken file on the server.
CONTENT_ATTEMPTS = 3

_HOSTNAME = socket.gethostname()


class ImageGone(Exception):
    """The image host answered 404/410: the file is not there."""


class BadContent(Exception):
    """The body is not a usable image (wrong type, truncated, undecodable); may be transient."""


def check_host(url: str, allowed_hosts: tuple[str, ...] | list[str]) -> str:
    """The URL to fetch when ``url`` passes the image policy (http(s), an allowed host and port,
    no user name); raises ImageError with the reason otherwise."""
    return UrlPolicy.for_images(tuple(allowed_hosts), ImageError).check(url)


def relative_path(object_id: int, seq: int) -> str:
    """The path of an image relative to ``<data_dir>/images`` (what met_images.path stores)."""
    return f"{int(object_id)}/{int(seq)}.jpg"


def image_key(path: str) -> str:
    """The storage key of an image (``images/<object_id>/<seq>.jpg``) from its relative path."""
    return f"images/{path}"


def stored_intact(images_dir: Path, path: str | None, sha256: str | None, size: int | None) -> bool:
    """True when the file a row points at exists with the recorded size and sha256."""
    if not path or not sha256:
        return False
    file = images_dir / path
    try:
        if size is not None and file.stat().st_size != size:
            return False
        return file_sha256(file) == sha256
    except OSError:
        return False


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


_TEMP_NAME = re.compile(r"^\.\d+\.jpg\.(?P<host>.+)\.(?P<pid>\d+)\.[0-9a-f]{8}" + re.escape(TEMP_SUFFIX) + "$")
_LIVE_TEMPS: set[str] = set()  # temp files this process is writing right now


def sweep_temp_files(folder: Path) -> int:
    """Remove temp files a killed download left in ``folder``; returns how many.

    A temp file is ``.<seq>.jpg.<host>.<pid>.<random>.part``. It is stale when it is older than an
    hour, or when it was made on this host by a process that is gone (or by this process, which
    is not writing it any more).
    """
    removed = 0
    try:
        entries = [e for e in folder.iterdir() if e.name.endswith(TEMP_SUFFIX)]
    except OSError:
        return 0
    for entry in entries:
        match = _TEMP_NAME.match(entry.name)
        try:
            stale = match is None or time.time() - entry.stat().st_mtime > STALE_TEMP_SECONDS
        except FileNotFoundError:
            continue
        if not stale and match["host"] == _HOSTNAME:
            pid = int(match["pid"])
            stale = not _pid_alive(pid) or (pid == os.getpid() and str(entry) not in _LIVE_TEMPS)
        if stale:
            with contextlib.suppress(FileNotFoundError):
                entry.unlink()
                removed += 1
    return removed


@dataclass(frozen=True)
class Downloaded:
    path: str
    width: int
    height: int
    bytes: int
    sha256: str
    content_type: str


def inspect_image(path: Path, max_pixels: int) -> tuple[int, int, str]:
    """Decode ``path`` fully with Pillow; returns (width, height, format).

    Raises ImageError when the header declares more than ``max_pixels`` (checked before any pixel
    is decoded) and BadContent when it is not a decodable image.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as image:
                width, height = image.size
                if width * height > max_pixels:
                    raise ImageError(f"image is {width}x{height} = {width * height} pixels, over the "
                                     f"cap of {max_pixels} (METGAN_MAX_IMAGE_PIXELS)")
                image_format = image.format or "unknown"
                if image_format == "JPEG":
                    # DCT scaling decodes every coefficient (so truncation and corruption still
                    # fail) at an eighth of the pixels: the check costs little per image.
                    image.draft(image.mode, (max(1, width // 8), max(1, height // 8)))
                image.load()
    except Image.DecompressionBombError as exc:
        raise ImageError(f"decompression bomb refused (over the cap of {max_pixels} pixels, "
                         f"METGAN_MAX_IMAGE_PIXELS): {exc}") from None
    except ImageError:
        raise
    except (OSError, SyntaxError, ValueError) as exc:
        raise BadContent(f"not a decodable image: {exc}") from None
    return width, height, image_format


async def download_image(client: MetClient, url: str, *, object_id: int, seq: int, images_dir: Path,
                         allowed_hosts: tuple[str, ...], max_bytes: int, max_pixels: int,
                         attempts: Attempts | None = None) -> Downloaded:
    """Fetch ``url`` into ``images_dir/<object_id>/<seq>.jpg`` (``attempts`` counts requests).

    Raises ImageError (refused: URL, host, port, a redirect, size, pixels, or still bad after
    retries), ImageGone (404), MetRetryableError / MetBlockedError when the transfer kept failing,
    or DiskWriteError when the disk refused the file (the image is not at fault; the temp file is
    removed).
    """
    policy = UrlPolicy.for_images(tuple(allowed_hosts), ImageError)
    encoded = MetClient.checked_url(policy.check(url), policy)
    folder = images_dir / str(int(object_id))
    with writing_to(images_dir):
        folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"{int(seq)}.jpg"
    last_problem = ""
    for _ in range(CONTENT_ATTEMPTS):
        temp = folder / f".{int(seq)}.jpg.{_HOSTNAME}.{os.getpid()}.{uuid.uuid4().hex[:8]}{TEMP_SUFFIX}"
        _LIVE_TEMPS.add(str(temp))
        try:
            size, digest, content_type = await client.request(
                encoded, lambda response, temp=temp: _stream_to(response, temp, max_bytes), attempts=attempts,
                policy=policy)
            width, height, _format = await asyncio.to_thread(inspect_image, temp, max_pixels)
            os.replace(temp, final)
            return Downloaded(relative_path(object_id, seq), width, height, size, digest, content_type)
        except BadContent as exc:
            last_problem = str(exc)
            log.debug("bad image content from %s: %s", redact_url(url), exc)
        finally:
            _LIVE_TEMPS.discard(str(temp))
            with contextlib.suppress(FileNotFoundError):
                temp.unlink()
    raise ImageError(f"{last_problem} (after {CONTENT_ATTEMPTS} downloads)")


async def _stream_to(response: aiohttp.ClientResponse, temp: Path, max_bytes: int) -> tuple[int, str, str]:
    if response.status in (404, 410):
        raise ImageGone(f"HTTP {response.status}")
    MetClient.check_block(response)
    MetClient.raise_for_status(response)
    content_type = response.content_type or ""
    if not content_type.startswith("image/"):
        head = await response.content.read(4096)
        MetClient.check_block(response, head)
        raise BadContent(f"content type {content_type or 'missing'!r} is not an image")
    declared = response.content_length
    if declared is not None and declared > max_bytes:
        raise ImageError(f"image is {declared} bytes, over the cap of {max_bytes} (METGAN_MAX_IMAGE_BYTES)")
    digest = hashlib.sha256()
    size = 0
    try:
        with writing_to(temp.parent), open(temp, "wb") as handle:
            async for block in response.content.iter_chunked(CHUNK):
                size += len(block)
                if size > max_bytes:
                    raise ImageError(f"image is over the cap of {max_bytes} bytes (METGAN_MAX_IMAGE_BYTES)")
                digest.update(block)
                handle.write(block)
    except aiohttp.ClientPayloadError as exc:
        raise MetRetryableError(f"truncated image body: {exc}") from None
    if declared is not None and size != declared:
        raise MetRetryableError(f"image body is {size} bytes, {declared} declared")
    return size, digest.hexdigest(), content_type
