"""Build a named training subset: select, deduplicate, convert in parallel, record, manifest.

``<data_dir>/subsets/<name>/`` holds ``images/<params_hash>/<sha256>.png`` (one per distinct
source image; the folder is the generation of one set of shape parameters), ``manifest.csv``
(the built images, paths relative to the subset folder) and ``subset.json`` (parameters and
counts), so the folder is portable. PostgreSQL holds the same facts in ``subsets`` and
``subset_images`` (built and skipped images, with the reason and the hash of the parameters
each output was made with).

A rebuild converts only what changed: an image already built (or skipped for good) with the
same source sha256 and the same shape parameters is not opened again; images no longer selected
are removed. New shape parameters build a new generation folder beside the current one, which
readers never look into until the manifest names it: ``manifest.csv`` and ``subset.json`` are
replaced (each atomically) only after a build that produced images, and only then are the old
generation and the dropped images removed. A reader that follows the manifest sees one
generation, never a mix. A build that produces no image fails (SubsetError) and changes neither
the manifest nor the stored parameters. A disk that refuses a write (full, over quota, read-only,
failing) stops the build with :class:`~metgan.errors.DiskWriteError`: the images it could not
write are not recorded at all, so the rerun converts them. Two builds of one subset at once are refused (a
PostgreSQL advisory lock).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from metgan import names
from metgan.config import Settings, get_settings
from metgan.db import get_engine
from metgan.db import subsets as repository
from metgan.errors import StorageError, SubsetError
from metgan.files import DISK_ERRNOS, write_text_atomic, writing_to
from metgan.images.resize import convert_many
from metgan.images.selection import (
    Selection,
    SourceImage,
    SubsetParams,
    candidate_images,
    candidate_object_ids,
)
from metgan.progress import Progress
from metgan.storage import STORE_CONCURRENCY, Store

log = logging.getLogger(__name__)

DEFAULT_NAME = "vases"
MANIFEST_FIELDS = ("file", "sha256", "object_id", "image_seq", "width", "height", "mode",
                   "source_width", "source_height")
_FLUSH_EVERY = 256
# Skips worth retrying on the next build (the file may be there by then).
_RETRY_REASONS = ("missing", "error")
_DISK_ERROR_MARKERS = tuple(f"[Errno {code}]" for code in DISK_ERRNOS)


def check_name(name: str) -> str:
    """A subset name is also a folder name (:func:`metgan.names.check_name`)."""
    return names.check_name(name, "subset name")


def subset_dir(name: str, settings: Settings | None = None) -> Path:
    """The folder of subset ``name``: ``<data_dir>/subsets/<name>``."""
    settings = settings or get_settings()
    return settings.subsets_dir / check_name(name)


def _is_done(row: dict | None, params_hash: str, output_stored: bool) -> bool:
    if row is None or row["params_hash"] != params_hash:
        return False
    if row["status"] == "ok":
        return output_stored
    reason = row["reason"] or ""
    # a skip for the disk's refusal of the output (recorded by builds before DiskWriteError) is retried
    return not (reason.startswith(_RETRY_REASONS) or any(marker in reason for marker in _DISK_ERROR_MARKERS))


def _generation(params_hash: str) -> str:
    """The folder of one generation's images, relative to the subset folder."""
    return f"images/{params_hash}"


def _remove_stale(images_root: Path, params_hash: str, keep: set[str]) -> None:
    """After the switch: other generations, pre-generation outputs, unlisted outputs, temp files."""
    for entry in os.scandir(images_root):
        if entry.is_dir(follow_symlinks=False):
            if entry.name != params_hash:
                shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)       # images/<sha256>.png of builds before generations, temp files
    for entry in os.scandir(images_root / params_hash):
        stem, _, suffix = entry.name.partition(".")
        stale_temp = entry.name.startswith(".") and entry.name.endswith(".tmp")
        if stale_temp or (suffix == "png" and stem not in keep):
            os.unlink(entry.path)


# --- on an object store (METGAN_DATA_DIR=s3://...) -------------------------------------------
# The build works in the worker's mirror of the store as on a local folder; around it, the source
# images it converts are fetched into the mirror first, and afterwards the new generation's PNGs
# are put, then subset.json, then manifest.csv (so a reader who finds the manifest finds every
# file it lists), and then the store's stale files are removed. On a local folder these are no-ops.

def _key(name: str, *parts: str) -> str:
    return "/".join(("subsets", name, *parts))


def _stored_outputs(store: Store, name: str, params_hash: str) -> set[str] | None:
    """The file names of the generation's PNGs on the store (None on a local folder: look there)."""
    if not store.is_remote:
        return None
    prefix = _key(name, _generation(params_hash))
    return {key.rsplit("/", 1)[1] for key in store.list(prefix)}


def _fetch_sources(store: Store, todo: list[SourceImage]) -> None:
    """Bring the originals about to be converted into the mirror (missing ones stay missing: the
    converter records them as skipped, to retry on the next build)."""
    if not store.is_remote or not todo:
        return

    def fetch(image: SourceImage) -> None:
        try:
            store.fetch(f"images/{image.path}")
        except StorageError as exc:
            log.warning("subset source %s not fetched: %s", image.path, exc)
    with ThreadPoolExecutor(STORE_CONCURRENCY) as pool:
        list(pool.map(fetch, todo))


def _publish(store: Store, name: str, params_hash: str, built: set[str]) -> None:
    if not store.is_remote:
        return
    generation = _key(name, _generation(params_hash))
    store.push(generation)
    store.publish(_key(name, "subset.json"))
    store.publish(_key(name, "manifest.csv"))  # last: the switch, for readers of the store
    keep = {f"{generation}/{sha}.png" for sha in built}
    store.remove_all(sorted(key for key in store.list(_key(name, "images")) if key not in keep))


def _manifest(rows: list[dict], params: SubsetParams, params_hash: str) -> str:
    lines: list[list[Any]] = [list(MANIFEST_FIELDS)]
    shape = params.shape
    for row in rows:
        if row["status"] == "ok":
            lines.append([f"{_generation(params_hash)}/{row['sha256']}.png", row["sha256"], row["object_id"],
                          row["image_seq"], shape.width, shape.height, shape.pil_mode, row["source_width"],
                          row["source_height"]])
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(lines)
    return buffer.getvalue()


def _describe(selection: Selection) -> str:
    parts = [f"include {', '.join(map(repr, selection.include)) or 'none'}",
             f"exclude {', '.join(map(repr, selection.exclude)) or 'none'}"]
    if selection.classifications:
        parts.append(f"classifications {', '.join(map(repr, selection.classifications))}")
    if selection.regex:
        parts.append("as regexes")
    return "; ".join(parts)


def _reason_kind(reason: str | None) -> str:
    return (reason or "unknown").split(":", 1)[0]


def _convert(engine: Engine, name: str, todo: list[SourceImage], folder: Path, params: SubsetParams,
             params_hash: str, settings: Settings, progress: Progress, workers: int | None) -> Counter:
    """Convert ``todo`` over the process pool, recording each result as it arrives."""
    progress.start(len(todo))
    pending: list[dict] = []
    processed: Counter = Counter()
    generation = _generation(params_hash)
    pairs = [(settings.images_dir / image.path, folder / generation / f"{image.sha256}.png") for image in todo]
    results = convert_many(pairs, params.shape, workers=workers, max_pixels=settings.max_image_pixels)
    try:
        with settings.data_store.uploads() as uploads:
            for image, result in zip(todo, results, strict=True):
                if result.status == "ok":
                    uploads.add(_key(name, generation, f"{image.sha256}.png"))
                _record(pending, processed, name, image, result, generation, params_hash, engine)
                progress.advance()
    finally:
        # also when an upload failed: the rows keep the conversions; the next build puts what the
        # store lacks (it checks the store's listing, not these rows)
        repository.upsert_images(engine, pending)
    progress.finish()
    return processed


def _record(pending: list[dict], processed: Counter, name: str, image: SourceImage, result, generation: str,
            params_hash: str, engine: Engine) -> None:
    """Count one conversion result and queue its row, storing the queue every _FLUSH_EVERY rows."""
    processed[result.status] += 1
    pending.append({
        "subset_name": name, "sha256": image.sha256, "object_id": image.object_id,
        "image_seq": image.seq, "status": result.status, "reason": result.reason,
        "path": f"{generation}/{image.sha256}.png" if result.status == "ok" else None,
        "params_hash": params_hash,
        "source_width": result.source_width or image.width,
        "source_height": result.source_height or image.height,
    })
    if len(pending) >= _FLUSH_EVERY:
        repository.upsert_images(engine, pending)
        pending.clear()


def build_subset(name: str = DEFAULT_NAME, params: Mapping[str, Any] | None = None, *,
                 settings: Settings | None = None, progress: Progress | None = None,
                 workers: int | None = None) -> dict:
    """Build (or bring up to date) subset ``name``; returns a small JSON-able summary.

    ``params`` (see :mod:`metgan.images.selection`) are laid over the subset's stored
    parameters when it exists, else over the defaults (the vase subset). ``workers`` defaults
    to every core.
    """
    settings = settings or get_settings()
    check_name(name)
    engine = get_engine(settings)
    started = time.monotonic()
    with repository.build_lock(engine, name):
        subset_params = SubsetParams.from_dict(params, base=repository.stored_params(engine, name))
        shape = subset_params.shape
        params_hash = shape.params_hash()
        objects = candidate_object_ids(subset_params.to_dict(), engine=engine)
        images, duplicates = candidate_images(subset_params.selection, engine=engine)
        if not images:
            found = (f"{len(objects)} objects match but none has a downloaded image yet" if objects
                     else "no object matches")
            raise SubsetError(f"subset {name!r}: {found} ({_describe(subset_params.selection)}); nothing to build")
        folder = subset_dir(name, settings)
        store = settings.data_store
        location = store.url(_key(name))
        # Only a new subset gets its parameters here; an existing one keeps those of its
        # manifest until this build has produced images.
        repository.create_if_new(engine, name, subset_params.to_dict(), location)
        existing = repository.image_rows(engine, name)
        selected = {image.sha256 for image in images}
        dropped = [sha for sha in existing if sha not in selected]
        generation_dir = folder / _generation(params_hash)
        stored = _stored_outputs(store, name, params_hash)
        todo = [image for image in images
                if not _is_done(existing.get(image.sha256), params_hash,
                                f"{image.sha256}.png" in stored if stored is not None
                                else (generation_dir / f"{image.sha256}.png").exists())]
        log.info("subset %s: %d objects, %d distinct images (%d duplicates), %d to convert, %d up to date",
                 name, len(objects), len(images), duplicates, len(todo), len(images) - len(todo))
        progress = progress or Progress(f"subset {name}")
        _fetch_sources(store, todo)
        processed = _convert(engine, name, todo, folder, subset_params, params_hash, settings, progress,
                             workers)

        rows = repository.manifest_rows(engine, name, selected)
        built = {row["sha256"] for row in rows if row["status"] == "ok"}
        skipped_by_reason = Counter(_reason_kind(row["reason"]) for row in rows if row["status"] == "skipped")
        if not built:
            top = ", ".join(f"{kind} {count}" for kind, count in skipped_by_reason.most_common(3))
            raise SubsetError(f"subset {name!r}: all {len(images)} candidate images were skipped ({top}); "
                              "nothing was built")
        counts = {
            "objects": len(objects),
            "images": len(images),
            "duplicates": duplicates,
            "ok": len(built),
            "skipped": sum(skipped_by_reason.values()),
            "skipped_by_reason": dict(sorted(skipped_by_reason.items())),
        }
        # The switch: the manifest names the new generation; only then do the old files go.
        with writing_to(folder):
            (folder / _generation(params_hash)).mkdir(parents=True, exist_ok=True)  # nothing new on this worker
        write_text_atomic(folder / "subset.json", json.dumps({
            "name": name, "params": subset_params.to_dict(), "params_hash": params_hash, "counts": counts,
            "manifest": "manifest.csv", "images": _generation(params_hash),
            "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
        }, indent=2) + "\n")
        write_text_atomic(folder / "manifest.csv", _manifest(rows, subset_params, params_hash))
        _publish(store, name, params_hash, built)
        repository.finish_build(engine, name, params=subset_params.to_dict(), counts=counts, path=location,
                                dropped=dropped)
        _remove_stale(folder / "images", params_hash, built)
        wall = time.monotonic() - started
        summary = {
            "name": name, "path": location, "params_hash": params_hash, **counts,
            "processed": sum(processed.values()), "built": processed["ok"],
            "newly_skipped": processed["skipped"], "up_to_date": len(images) - len(todo),
            "removed": len(dropped), "wall_s": round(wall, 3),
        }
    log.info("subset %s: %d images ready, %d skipped, %d converted now in %.1fs",
             name, counts["ok"], counts["skipped"], summary["processed"], wall)
    return summary


def list_subsets(*, settings: Settings | None = None, engine: Engine | None = None) -> list[dict]:
    """Every subset with its parameters and counts, by name."""
    return repository.list_subsets(engine or get_engine(settings))


def subset_info(name: str, *, settings: Settings | None = None, engine: Engine | None = None) -> dict:
    """One subset: its row, the source sizes of its images, and the bytes its images take."""
    check_name(name)
    engine = engine or get_engine(settings)
    row = repository.get_subset(engine, name)
    if row is None:
        known = repository.subset_names(engine)
        raise SubsetError(f"no subset named {name!r}; known: {', '.join(known) or 'none (build one first)'}")
    sources = repository.image_sources(engine, name)
    store = (settings or get_settings()).data_store
    if store.is_remote:
        disk_bytes = sum(store.list(_key(name, "images")).values())
    else:
        images_dir = Path(row["path"]) / "images"
        disk_bytes = sum(path.stat().st_size for path in images_dir.rglob("*") if path.is_file())
    ratios = [(r["status"], r["source_height"] / r["source_width"]) for r in sources
              if r["source_width"] and r["source_height"]]
    return {**row, "disk_bytes": disk_bytes, "ratios": ratios}


def ratio_histogram(ratios: list[tuple[str, float]], *, low: float = 0.5, high: float = 2.5,
                    step: float = 0.1, width: int = 40) -> list[str]:
    """Text histogram of height/width ratios: one line per bin, '#' built, '.' skipped."""
    bins = round((high - low) / step)
    built, skipped = [0] * (bins + 2), [0] * (bins + 2)
    for status, ratio in ratios:
        if ratio < low:
            index = 0
        elif ratio >= high:
            index = bins + 1
        else:
            index = min(bins, 1 + int((ratio - low) / step + 1e-9))
        (built if status == "ok" else skipped)[index] += 1
    totals = [b + s for b, s in zip(built, skipped, strict=True)]
    used = [i for i, total in enumerate(totals) if total]
    if not used:
        return []
    top = max(totals)
    lines = []
    for index in range(used[0], used[-1] + 1):
        if index == 0:
            label = f"      < {low:.2f}"
        elif index == bins + 1:
            label = f"     >= {high:.2f}"
        else:
            start = low + (index - 1) * step
            label = f"{start:.2f}-{start + step:.2f}"
        total = totals[index]
        bar = "#" * round(width * built[index] / top) + "." * round(width * skipped[index] / top)
        lines.append(f"{label:>11} {total:>7} {bar}")
    return lines
