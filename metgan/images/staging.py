"""A subset on an object store, staged into this worker's local cache for training.

Training reads thousands of small PNGs every epoch; it must read them from local disk. When
``METGAN_DATA_DIR`` is an object store, :func:`stage_subset` downloads the subset that
``subsets/<name>/manifest.csv`` describes into ``<cache>/staged/<manifest hash>/`` once; a second
trial on the same worker (or a retry) finds it there and downloads nothing. The manifest is
written last by the builder (:mod:`metgan.images.subset`), so what it lists is all there; a
staging folder appears under its final name only when complete (built under a temp name, then
renamed), so a trial never trains on half a subset. On a local data folder the subset folder is
used as it is.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
import os
import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from metgan import names
from metgan.config import Settings
from metgan.errors import StorageError, SubsetError
from metgan.files import writing_to
from metgan.storage import Store, check_key

log = logging.getLogger(__name__)

FETCH_THREADS = 16
_KEPT = ("manifest.csv", "subset.json")


def subset_key(name: str) -> str:
    return f"subsets/{names.check_name(name, 'subset name')}"


def manifest_files(manifest: bytes, where: str) -> list[str]:
    """The image files a manifest lists (relative to the subset folder), each checked to stay
    inside it."""
    reader = csv.DictReader(io.StringIO(manifest.decode("utf-8")))
    if reader.fieldnames is None or "file" not in reader.fieldnames:
        raise SubsetError(f"{where} has no 'file' column")
    files = []
    for row in reader:
        if row.get("file"):
            try:
                files.append(check_key(row["file"]))
            except StorageError:
                raise SubsetError(f"{where} names a file outside the subset: {row['file'][:100]!r}") from None
    return files


def stage_subset(name: str, settings: Settings) -> Path:
    """The local folder to train subset ``name`` from (see the module docstring)."""
    store = settings.data_store
    key = subset_key(name)
    if not store.is_remote:
        return store.path(key)
    subset = store.child(key)
    try:
        manifest = subset.read_bytes("manifest.csv")
    except StorageError:
        raise SubsetError(f"subset {name!r} has no manifest.csv at {subset.location}: build it first "
                          "(the vase_subset DAG or `metgan subset build`)") from None
    digest = hashlib.sha256(manifest).hexdigest()[:16]
    final = settings.cache_dir / "staged" / digest
    if (final / "manifest.csv").is_file():
        log.info("subset %s: staged copy %s reused", name, final)
        return final
    files = manifest_files(manifest, f"{subset.url('manifest.csv')}")
    temp = final.with_name(f".{digest}.{os.getpid()}.{uuid.uuid4().hex[:8]}")
    staging = Store(subset.location, temp, subset.options)
    try:
        with ThreadPoolExecutor(FETCH_THREADS) as pool:
            list(pool.map(staging.fetch, files))
        for extra in _KEPT[1:]:
            if subset.exists(extra):
                staging.fetch(extra)
        with writing_to(temp):  # a full cache disk stops the staging in one line, as a fetch's would
            (temp / "manifest.csv").write_bytes(manifest)
        try:
            os.rename(temp, final)
        except OSError:
            if not (final / "manifest.csv").is_file():  # not another trial's staging that won
                raise
    except StorageError as exc:
        raise SubsetError(f"subset {name!r} could not be staged: {exc}") from None
    finally:
        shutil.rmtree(temp, ignore_errors=True)
    log.info("subset %s: %d images staged into %s", name, len(files), final)
    return final
