"""Files at the edges: those a user names (read bounded) and those metgan writes (a disk's refusal
is the disk's fault, never the data's).

A file named on the command line (a grid, a config) must be a regular file of at most
:data:`MAX_INPUT_BYTES`: a FIFO would block the read for ever, ``/dev/zero`` or a huge file would
fill the memory. :func:`read_bounded_file` opens without blocking, checks what it opened and reads
at most the cap.

A write that fails with ENOSPC, EDQUOT, EROFS or EIO says nothing about the image or record being
written: :func:`writing_to` turns it into one :class:`~metgan.errors.DiskWriteError` line naming
the folder and the cause, so a build or download stops instead of blaming (and skipping) its input.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

from metgan.errors import ConfigError, DiskWriteError, MetganError

MAX_INPUT_BYTES = 1024 * 1024

# The errors a write gets from the disk itself, whatever is being written.
DISK_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EIO)
                        if code is not None)
_CAUSES = {errno.ENOSPC: "the disk is full", errno.EROFS: "the file system is read-only",
           errno.EIO: "an I/O error (a failing disk or a lost network mount)"}
if hasattr(errno, "EDQUOT"):
    _CAUSES[errno.EDQUOT] = "the disk quota is exhausted"


def is_disk_error(exc: BaseException) -> bool:
    """True for an OSError that is the disk's refusal (ENOSPC, EDQUOT, EROFS, EIO)."""
    return isinstance(exc, OSError) and exc.errno in DISK_ERRNOS


def disk_error(folder: str | os.PathLike, exc: OSError) -> DiskWriteError:
    """The one-line DiskWriteError for ``exc`` raised while writing into ``folder``."""
    name = errno.errorcode.get(exc.errno, str(exc.errno))
    cause = _CAUSES.get(exc.errno, exc.strerror or name)
    return DiskWriteError(f"cannot write to {folder}: {cause} ({name}); nothing was recorded as a bad "
                          "input: fix the disk, then rerun to finish")


@contextlib.contextmanager
def writing_to(folder: str | os.PathLike) -> Iterator[None]:
    """Turn a disk's refusal of a write in the block into a DiskWriteError naming ``folder``;
    every other error passes unchanged."""
    try:
        yield
    except OSError as exc:
        if is_disk_error(exc):
            raise disk_error(folder, exc) from exc
        raise


def write_text_atomic(path: Path, content: str) -> None:
    """Write ``content`` to ``path`` through a temp file and a rename; the temp file never
    survives a failure, and a disk's refusal is a DiskWriteError naming the folder."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with writing_to(path.parent):
        try:
            with open(temporary, "w", encoding="utf-8", newline="") as handle:
                handle.write(content)
                handle.flush()
                os.fsync(handle.fileno())  # ENOSPC on a lazily allocating file system shows here
            os.replace(temporary, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                temporary.unlink()


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def check_input_file(path: str | os.PathLike, what: str, *, cap: int = MAX_INPUT_BYTES,
                     error: type[MetganError] = ConfigError) -> None:
    """Refuse ``path`` unless it is a regular file of at most ``cap`` bytes (without opening it)."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    _check_stat(path, info, what, cap, error)


def _check_stat(path, info: os.stat_result, what: str, cap: int, error: type[MetganError]) -> None:
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{what} {path} is {_kind(info.st_mode)}; name a regular YAML or JSON file")
    if info.st_size > cap:
        raise error(f"{what} {path} is {info.st_size} bytes, over the cap of {cap}")


def read_bounded_file(path: str | os.PathLike, what: str, *, cap: int = MAX_INPUT_BYTES,
                      error: type[MetganError] = ConfigError) -> str:
    """The UTF-8 text of ``path``, a regular file of at most ``cap`` bytes; one-line ``error``
    otherwise (a FIFO, a folder or a device is refused without blocking on it)."""
    try:
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise error(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise error(f"{what} {path} is a folder; name a regular YAML or JSON file") from None
    except OSError as exc:
        raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        _check_stat(path, os.fstat(descriptor), what, cap, error)
    except MetganError:
        os.close(descriptor)
        raise
    with os.fdopen(descriptor, "rb") as handle:
        try:
            data = handle.read(cap + 1)
        except OSError as exc:
            raise error(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    if len(data) > cap:  # it grew since the check
        raise error(f"{what} {path} is over the cap of {cap} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise error(f"{what} {path} is not a text file; name a YAML or JSON file") from None


@functools.cache
def yaml_loader():
    """PyYAML's safe loader, reading floats as YAML 1.2 and Python do: ``1e-3`` is a float (YAML 1.1,
    PyYAML's default, reads it as a string and only ``1.0e-3`` as a number)."""
    import re

    import yaml

    class Loader(yaml.SafeLoader):
        pass

    Loader.add_implicit_resolver(
        "tag:yaml.org,2002:float",
        re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
                    |[-+]?\.(?:inf|Inf|INF)
                    |\.(?:nan|NaN|NAN))$""", re.X),
        list("-+0123456789."))
    return Loader


def load_yaml(text: str):
    """``yaml.safe_load`` with YAML 1.2 floats (see :func:`yaml_loader`)."""
    import yaml

    return yaml.load(text, Loader=yaml_loader())  # noqa: S506 - a SafeLoader subclass
