"""The one exception hierarchy of metgan.

    MetganError
    ├── ConfigError             a setting or option is malformed (names the variable or key)
    ├── DatabaseError              PostgreSQL could not be reached or used
    │   └── MigrationError      a migration failed, or an applied one was changed
    ├── MetApiError             the Met Collection API misbehaved
    │   ├── MetRetryableError   5xx, 429, timeouts, resets: worth retrying later
    │   ├── MetBlockedError     the CDN's HTML block page (Imperva): cool down, then retry
    │   └── ObjectGoneError     404 / "Not a valid object": mark the object gone, never retry
    ├── ImageError              an image was refused (host, size, pixels, content type, decode)
    ├── SubsetError             a subset could not be selected or built
    ├── GanConfigError          a GAN config or search grid is invalid (names the key)
    ├── TrainingError           a trial failed while training
    ├── TrialFolderError        a trial or search folder file is not what the contract says
    ├── RenderError             a GIF, grid or report could not be rendered
    ├── StorageError            the file store (a local folder or an object store) refused a file
    └── DiskWriteError          a disk refused a write (full, over quota, read-only, failing): never
                                an input's fault; names the folder and the cause

A user mistake raises a subclass with one clear line of message; the CLI prints that line and
exits non-zero, without a traceback.
"""


class MetganError(Exception):
    """Base class of every error metgan raises on purpose."""


class ConfigError(MetganError):
    """A setting or option is malformed; the message names it."""


class DatabaseError(MetganError):
    """The PostgreSQL store could not be reached or used."""


class MigrationError(DatabaseError):
    """A migration failed, or an already-applied migration file was changed."""


class MetApiError(MetganError):
    """The Met Collection API answered with something we cannot use."""


class MetRetryableError(MetApiError):
    """A transient failure (5xx, 429, timeout, reset, truncated body): retry later."""

    def __init__(self, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class MetBlockedError(MetRetryableError):
    """The CDN answered with its HTML block page: cool down before the next request."""


class ObjectGoneError(MetApiError):
    """The object does not exist (404) or is not a valid object (a loan): never retry."""


class ImageError(MetganError):
    """An image was refused: host not allowed, too large, too many pixels, not an image."""


class SubsetError(MetganError):
    """A training subset could not be selected or built."""


class GanConfigError(MetganError):
    """A GAN config or search grid is invalid; the message names the key or combination."""


class TrainingError(MetganError):
    """A trial failed while training."""


class TrialFolderError(MetganError):
    """A trial.json, config.json or search.json is unreadable or not a JSON object; the message names it."""


class RenderError(MetganError):
    """A GIF, image grid or report could not be rendered."""


class StorageError(MetganError):
    """A file could not be read from or written to the store (a folder or an object store); the
    message names the operation, the key and the location."""


class DiskWriteError(MetganError):
    """A file could not be written because of the disk, not the data: no space left (ENOSPC), over
    quota (EDQUOT), a read-only file system (EROFS) or an I/O error (EIO). The message names the
    folder and the cause; the step stops, and a rerun once the disk is fixed does the rest."""
