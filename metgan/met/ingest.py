"""Ingest steps over the Met API and its CDN: the functions :mod:`metgan.pipeline` sequences.

    discover_object_ids(mode, ...)  -> {"run_id", "total", "batches": [...]}   (a scrape run)
    fetch_records(batch)            -> counts        (records of one batch, upserted in bulk)
    download_images(batch)          -> counts        (images of one batch, into the image volume)
    finish_run(run_id)              -> counts        (marks success: the incremental watermark)

Each is a sync function (Airflow tasks are) that runs the async client with ``asyncio.run``, and
each is idempotent: a batch's items already fetched in its run are skipped, images stored intact
are not downloaded again. Transient failures left after the client's retries are recorded with
their reason, then raised as MetRetryableError once the rest of the batch is stored, so Airflow's
own retries (or a rerun) pick up exactly what is missing.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any, TypeVar

from metgan.config import Settings, get_settings
from metgan.db import get_engine
from metgan.db import met as repository
from metgan.db.met import FetchOutcome, ImageOutcome
from metgan.errors import (
    ConfigError,
    DiskWriteError,
    ImageError,
    MetApiError,
    MetBlockedError,
    MetRetryableError,
    ObjectGoneError,
    StorageError,
)
from metgan.met.client import Attempts, MetClient, run_sync
from metgan.met.download import ImageGone, download_image, image_key, stored_intact, sweep_temp_files
from metgan.met.parse import parse_record
from metgan.progress import Progress
from metgan.storage import STORE_CONCURRENCY, Store
from metgan.urlpolicy import redact_url

log = logging.getLogger(__name__)

MODES = ("full", "incremental", "search", "department")
RUN_MODES = (*MODES, "targeted", "ids")
MAX_BATCHES = 1024  # Airflow's default max_map_length
WRITE_CHUNK = 200  # results per bulk write
WRITE_INTERVAL = 2.0  # seconds: also flush a partial chunk this often, so a kill loses little

T = TypeVar("T")


# -- discovery ----------------------------------------------------------------------------------

def discover_object_ids(mode: str, *, query: str | None = None, department_ids: list[int] | None = None,
                        limit: int | None = None, batch_size: int = 1000, metadata_date: str | None = None,
                        settings: Settings | None = None) -> dict:
    """List the object ids a run should fetch, store them as a scrape run, return its batches.

    ``full``: every id (``GET /objects``). ``incremental``: ids whose metadata changed since
    ``metadata_date`` (default: the start date of the last successful full or incremental run;
    none yet: like full) plus the ids whose last fetch failed. ``search``: ``/search?q=query&
    hasImages=true``. ``department``: ``/objects?departmentIds=...``. ``limit`` keeps the first
    ids (ascending). Returns ``{"run_id", "total", "batches"}`` (never the ids themselves).
    """
    settings = settings or get_settings()
    if mode not in MODES:
        raise ConfigError(f"unknown ingest mode {mode!r}; valid modes: {', '.join(MODES)}")
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be at least 1, got {limit}")
    _check_batch_size(batch_size)
    if metadata_date is not None:
        try:
            metadata_date = date.fromisoformat(str(metadata_date)[:10]).isoformat()
        except ValueError:
            raise ConfigError(f"metadata date {metadata_date!r} is not a date (YYYY-MM-DD)") from None
    params: dict[str, Any] = {"limit": limit, "request": _request(mode, query, department_ids, limit,
                                                                 batch_size, metadata_date)}
    engine = get_engine(settings)
    if mode == "search":
        if not query or not query.strip():
            raise ConfigError("mode 'search' needs a query (--q)")
        params["query"] = query.strip()
        ids = run_sync(lambda: _with_client(settings, lambda c: c.search(params["query"], has_images=True)))
    elif mode == "department":
        if not department_ids:
            raise ConfigError("mode 'department' needs department ids (--department-ids 1,3)")
        params["department_ids"] = [int(d) for d in department_ids]
        ids = run_sync(lambda: _with_client(
            settings, lambda c: c.list_object_ids(department_ids=params["department_ids"])))
    elif mode == "incremental":
        since = metadata_date or _date_text(repository.watermark(engine))
        params["metadata_date"] = since
        if since is None:
            log.info("no successful run yet: this incremental run lists the whole collection")
        listed = run_sync(lambda: _with_client(settings, lambda c: c.list_object_ids(metadata_date=since)))
        retry = repository.unfinished_object_ids(engine)
        params["retried"] = len(set(retry) - set(listed))
        ids = sorted(set(listed) | set(retry))
    else:
        ids = run_sync(lambda: _with_client(settings, lambda c: c.list_object_ids()))
    if limit is not None:
        ids = ids[:limit]
    log.info("discovered %d object ids (%s)", len(ids), mode)
    return create_run(mode, ids, params=params, batch_size=batch_size, settings=settings)


def _request(mode, query, department_ids, limit, batch_size, metadata_date) -> dict:
    """What a caller asked for: an interrupted run is resumed only for the same request."""
    return {"mode": mode, "query": (query or "").strip() or None,
            "department_ids": [int(d) for d in department_ids] if department_ids else None,
            "limit": limit, "batch_size": batch_size, "metadata_date": metadata_date}


def find_unfinished_run(mode: str, *, query: str | None = None, department_ids: list[int] | None = None,
                        limit: int | None = None, batch_size: int = 1000, metadata_date: str | None = None,
                        settings: Settings | None = None) -> dict | None:
    """The latest run of ``mode`` if it was made for the same request and never succeeded.

    Returns it in discover_object_ids' shape, so an interrupted ``metgan ingest`` continues
    where it stopped instead of listing and fetching everything again.
    """
    engine = get_engine(settings)
    request = _request(mode, query, department_ids, limit, batch_size, metadata_date)
    run_id = repository.latest_unfinished_run(engine, mode, request)
    if run_id is None:
        return None
    run = repository.get_run(engine, run_id)
    return {"run_id": run_id, "total": run["discovered"] or 0,
            "batches": _batches(engine, run_id, batch_size)}


def create_run(mode: str, object_ids: list[int], *, params: dict, batch_size: int = 1000,
               settings: Settings | None = None) -> dict:
    """Store a scrape run over ``object_ids`` (in their order) chunked into batches; return them."""
    if mode not in RUN_MODES:
        raise ConfigError(f"unknown run mode {mode!r}; valid modes: {', '.join(RUN_MODES)}")
    _check_batch_size(batch_size)
    object_ids = list(dict.fromkeys(int(i) for i in object_ids))
    batches = math.ceil(len(object_ids) / batch_size)
    if batches > MAX_BATCHES:
        raise ConfigError(
            f"{len(object_ids)} ids in batches of {batch_size} make {batches} batches; Airflow maps at "
            f"most {MAX_BATCHES}: use a batch size of at least {math.ceil(len(object_ids) / MAX_BATCHES)}")
    engine = get_engine(settings)
    run_id = repository.insert_run(engine, mode, {**params, "batch_size": batch_size}, object_ids,
                                   batch_size, metadata_date=params.get("metadata_date"))
    return {"run_id": run_id, "total": len(object_ids), "batches": _batches(engine, run_id, batch_size)}


def _batches(engine, run_id: int, batch_size: int) -> list[dict]:
    batches = []
    for batch, count, first_id, last_id in repository.run_batches(engine, run_id):
        start = batch * batch_size + 1
        batches.append({"run_id": run_id, "batch": batch, "count": count, "first_id": first_id,
                        "last_id": last_id, "label": f"objects {start}–{start + count - 1}"})
    return batches


def _check_batch_size(batch_size: int) -> None:
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ConfigError(f"batch size must be a whole number of at least 1, got {batch_size!r}")


def _date_text(value) -> str | None:
    return value.isoformat() if value is not None else None


async def _with_client(settings: Settings, call: Callable[[MetClient], Awaitable[T]]) -> T:
    async with MetClient.from_settings(settings) as client:
        return await call(client)


# -- records ------------------------------------------------------------------------------------

def fetch_records(batch: dict, *, settings: Settings | None = None, progress: Progress | None = None,
                  client_options: dict | None = None) -> dict:
    """Fetch, parse and store the records of one batch; returns its counts (ok/gone/error/...).

    Items already fetched ok or gone in this run are skipped. Raises MetRetryableError after
    storing everything else when some objects still failed transiently (their reason is stored).
    ``progress`` is shared across batches by a caller that runs many (the CLI); ``client_options``
    tune the Met client (benchmarks).
    """
    settings = settings or get_settings()
    run_id, number = int(batch["run_id"]), int(batch["batch"])
    engine = get_engine(settings)
    ids = repository.batch_object_ids(engine, run_id, number, pending_only=True)
    started = time.monotonic()
    own_progress = progress is None
    progress = progress or Progress(f"records {batch.get('label', number)}", len(ids), logger=log)
    stats: Counter[str] = Counter()
    if ids:
        stats = run_sync(lambda: _fetch_all(settings, engine, run_id, ids, progress, client_options or {}))
    if own_progress:
        progress.finish()
    counts = repository.batch_fetch_counts(engine, run_id, number)
    summary = {
        "run_id": run_id, "batch": number, "total": sum(counts.values()),
        "ok": counts.get("ok", 0), "gone": counts.get("gone", 0), "error": counts.get("error", 0),
        "fetched": len(ids), "skipped": sum(counts.values()) - len(ids),
        "requests": stats["requests"], "retries": stats["retries"], "blocked": stats["blocked"],
        "seconds": round(time.monotonic() - started, 3),
    }
    log.info("batch %s records: %s", batch.get("label", number), summary)
    if summary["error"]:
        raise MetRetryableError(
            f"{summary['error']} of {summary['total']} records in batch {number} of run {run_id} "
            "failed transiently (reasons in scrape_run_items); the rest are stored: rerun to retry")
    return summary


async def _fetch_all(settings: Settings, engine, run_id: int, ids: list[int], progress: Progress,
                     client_options: dict) -> Counter:
    async with MetClient.from_settings(settings, **client_options) as client:

        async def fetch_one(object_id: int) -> FetchOutcome:
            attempts = Attempts()
            try:
                record = await client.get_object(object_id, attempts=attempts)
                return FetchOutcome(object_id, "ok", attempts.count, parsed=parse_record(record))
            except ObjectGoneError as exc:
                return FetchOutcome(object_id, "gone", attempts.count, reason=str(exc))
            except MetBlockedError:
                raise
            except MetApiError as exc:
                return FetchOutcome(object_id, "error", attempts.count, reason=str(exc))
            except RecursionError:
                # json.loads gives up on a body nested ~1,000 deep: that object's body is bad, not the batch.
                return FetchOutcome(object_id, "error", attempts.count,
                                    reason=f"object {object_id}: record nested too deep to decode (RecursionError)")
            except ValueError as exc:
                return FetchOutcome(object_id, "error", attempts.count,
                                    reason=f"object {object_id}: unreadable record ({type(exc).__name__}: {exc})")

        await _run_and_store(ids, fetch_one,
                             lambda chunk: repository.store_fetch_outcomes(engine, run_id, chunk), progress)
        return client.stats


async def _run_and_store(items: list, work: Callable[[Any], Awaitable[T]],
                         store: Callable[[list[T]], None], progress: Progress) -> None:
    """Run ``work`` on every item (the client bounds concurrency) and store results in chunks.

    Writes run in a thread so fetching goes on meanwhile. On an error (a persistent block), what
    finished is stored before the error propagates.
    """
    tasks = [asyncio.ensure_future(work(item)) for item in items]
    buffer: list[T] = []
    last_write = time.monotonic()

    async def flush() -> None:
        nonlocal buffer, last_write
        chunk, buffer = buffer, []
        last_write = time.monotonic()
        if chunk:
            await asyncio.to_thread(store, chunk)
            progress.advance(len(chunk))

    try:
        for next_done in asyncio.as_completed(tasks):
            buffer.append(await next_done)
            if len(buffer) >= WRITE_CHUNK or time.monotonic() - last_write >= WRITE_INTERVAL:
                await flush()
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await flush()


# -- images -------------------------------------------------------------------------------------

def download_images(batch: dict, *, additional_images: bool = False, settings: Settings | None = None,
                    progress: Progress | None = None, client_options: dict | None = None) -> dict:
    """Download the images of one batch's objects (primary, and additional ones if asked).

    Images stored intact (file present with the recorded sha256) are not downloaded again; images
    refused (host, size, pixels, undecodable) or gone (404) are not retried. Raises
    MetRetryableError after storing the rest when some downloads still failed transiently.
    ``progress`` and ``client_options`` as for :func:`fetch_records`.
    """
    settings = settings or get_settings()
    run_id, number = int(batch["run_id"]), int(batch["batch"])
    engine = get_engine(settings)
    images_dir = settings.images_dir
    rows = repository.batch_images(engine, run_id, number, additional=additional_images)
    started = time.monotonic()
    counts: Counter[str] = Counter()
    todo = []
    for folder in {images_dir / str(row.object_id) for row in rows}:
        counts["temp_removed"] += sweep_temp_files(folder)
    store = settings.data_store
    stored_ok = [row for row in rows if row.status == "ok"]
    with ThreadPoolExecutor(STORE_CONCURRENCY) as pool:
        # on an object store each check is a round trip (the object's metadata): ask them together
        check = pool.map if store.is_remote else map
        intact = {id(row): ok for row, ok in zip(stored_ok, check(lambda row: _intact(store, images_dir, row),
                                                                  stored_ok), strict=True)}
    for row in rows:
        if row.status == "ok" and intact[id(row)]:
            counts["already"] += 1
        elif row.status in ("rejected", "gone"):
            counts[f"{row.status}_before"] += 1
        else:
            todo.append(row)
    own_progress = progress is None
    progress = progress or Progress(f"images {batch.get('label', number)}", len(rows), logger=log)
    if len(rows) > len(todo):
        progress.advance(len(rows) - len(todo))
    stats: Counter[str] = Counter()
    outcomes: list[ImageOutcome] = []
    if todo:
        stats = run_sync(lambda: _download_all(settings, engine, todo, progress, outcomes, client_options or {}))
    if own_progress:
        progress.finish()
    for outcome in outcomes:
        counts[outcome.status] += 1
        counts["bytes"] += outcome.bytes or 0
    summary = {
        "run_id": run_id, "batch": number, "images": len(rows), "downloaded": counts["ok"],
        "already": counts["already"], "failed": counts["failed"],
        "rejected": counts["rejected"] + counts["rejected_before"], "gone": counts["gone"] + counts["gone_before"],
        "bytes": counts["bytes"], "temp_removed": counts["temp_removed"], "requests": stats["requests"],
        "retries": stats["retries"], "blocked": stats["blocked"],
        "seconds": round(time.monotonic() - started, 3),
    }
    log.info("batch %s images: %s", batch.get("label", number), summary)
    if summary["failed"]:
        raise MetRetryableError(
            f"{summary['failed']} of {len(rows)} images in batch {number} of run {run_id} failed "
            "transiently (errors in met_images); the rest are stored: rerun to retry")
    return summary


def _intact(store: Store, images_dir, row) -> bool:
    """Whether an image row's file is stored with its recorded sha256: the file itself on a local
    store; on S3 the sha256 kept with the object (no download), elsewhere its size."""
    if not store.is_remote:
        return stored_intact(images_dir, row.path, row.sha256, row.bytes)
    if not row.path or not row.sha256:
        return False
    key = image_key(row.path)
    known = store.stored_sha256(key)
    if known is not None:
        return known == row.sha256
    return row.bytes is not None and store.size(key) == row.bytes


async def _download_all(settings: Settings, engine, rows: list, progress: Progress,
                        outcomes: list[ImageOutcome], client_options: dict) -> Counter:
    data_store = settings.data_store
    async with MetClient.from_settings(settings, **client_options) as client:

        async def download_one(row) -> ImageOutcome:
            attempts = Attempts()
            try:
                done = await download_image(
                    client, row.url, object_id=row.object_id, seq=row.seq, images_dir=settings.images_dir,
                    allowed_hosts=settings.image_hosts, max_bytes=settings.max_image_bytes,
                    max_pixels=settings.max_image_pixels, attempts=attempts)
                if data_store.is_remote:
                    # the mirror's file is complete and checked; one put makes it visible whole
                    await asyncio.to_thread(data_store.publish, image_key(done.path), sha256=done.sha256)
            except ImageError as exc:
                return ImageOutcome(row.object_id, row.seq, row.url, "rejected", attempts.count, error=str(exc))
            except ImageGone as exc:
                return ImageOutcome(row.object_id, row.seq, row.url, "gone", attempts.count, error=str(exc))
            except (MetBlockedError, DiskWriteError):
                raise   # the whole batch stops: what finished is stored, the rest is fetched on the rerun
            except (MetApiError, StorageError) as exc:
                # StorageError: the object store refused the upload; the image is fetched again next run
                return ImageOutcome(row.object_id, row.seq, row.url, "failed", attempts.count, error=str(exc))
            except ValueError as exc:
                # urllib and yarl raise ValueError for a URL they cannot parse (a port over 65535,
                # an unclosed "[") before any request: the URL is bad for good, so it is refused.
                return ImageOutcome(row.object_id, row.seq, row.url, "rejected", attempts.count,
                                    error=f"invalid image URL {redact_url(row.url)[:200]!r}: {exc}")
            except Exception as exc:
                # Anything else is recorded on this image and retried later; the batch goes on.
                log.warning("image %s/%s (%s) failed unexpectedly", row.object_id, row.seq, redact_url(row.url),
                            exc_info=True)
                return ImageOutcome(row.object_id, row.seq, row.url, "failed", attempts.count,
                                    error=f"{type(exc).__name__}: {exc}")
            return ImageOutcome(row.object_id, row.seq, row.url, "ok", attempts.count, path=done.path,
                                width=done.width, height=done.height, bytes=done.bytes, sha256=done.sha256,
                                content_type=done.content_type)

        def store(chunk: list[ImageOutcome]) -> None:
            repository.store_image_outcomes(engine, chunk)
            outcomes.extend(chunk)

        await _run_and_store(rows, download_one, store, progress)
        return client.stats


# -- finishing ----------------------------------------------------------------------------------

def finish_run(run_id: int, *, settings: Settings | None = None) -> dict:
    """Mark a run successful (its start date becomes the incremental watermark); return its counts.

    The counts are read from the database, which every batch wrote before it returned: records
    and images by status, and the requests this run's record fetches took.
    """
    engine = get_engine(settings)
    run = repository.get_run(engine, run_id)
    if run is None:
        raise ConfigError(f"no scrape run {run_id}")
    counts = repository.run_counts(engine, run_id)
    repository.finish_run(engine, run_id, "success", counts)
    log.info("run %s (%s) finished: %s", run_id, run["mode"], counts)
    return {"run_id": run_id, "mode": run["mode"], "status": "success", "counts": counts}


def fail_run(run_id: int, reason: str, *, settings: Settings | None = None) -> None:
    """Mark a run failed (it does not move the watermark)."""
    engine = get_engine(settings)
    counts = repository.run_counts(engine, run_id)
    counts["reason"] = reason
    repository.finish_run(engine, run_id, "failed", counts)
