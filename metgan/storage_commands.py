"""``metgan storage check``: can this host read and write the configured data and results stores?

What a second host runs first: it names each location (a folder or an object store URL), writes,
reads back and deletes a probe object there, and with ``--create-bucket`` creates a missing S3
bucket first (the compose file's init step does). Exits non-zero with one line naming the store
that failed.
"""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit

import click

from metgan.config import get_settings
from metgan.errors import StorageError
from metgan.storage import Store


def _create_bucket(store: Store) -> bool:
    """Create the URL's S3 bucket when it is missing; True when it was created."""
    bucket = urlsplit(store.location).netloc
    fs = store.fs
    try:
        if fs.exists(bucket):
            return False
        region = getattr(fs, "client_region", None) or store.options.get("client_kwargs", {}).get("region_name")
        # no LocationConstraint for us-east-1: S3 refuses it there (s3fs.mkdir would send it)
        extra = {"CreateBucketConfiguration": {"LocationConstraint": region}} \
            if region and region != "us-east-1" else {}
        fs.call_s3("create_bucket", Bucket=bucket, **extra)
        fs.invalidate_cache()
        return True
    except Exception as exc:  # noqa: BLE001 - each backend has its own
        raise StorageError(f"cannot create bucket {bucket!r} at {store.location}: "
                           f"{str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__}") from None


def check_store(name: str, store: Store, create_bucket: bool = False) -> str:
    """Write, read back and delete a probe under ``store``; returns a line saying what was checked."""
    created = create_bucket and store.is_remote and urlsplit(store.location).scheme in ("s3", "s3a") \
        and _create_bucket(store)
    key = f".metgan-check/{uuid.uuid4().hex}"
    data = f"metgan storage check {key}".encode()
    store.write_bytes(key, data)
    try:
        probe = Store(store.location, store.mirror / ".metgan-check-read", store.options) if store.is_remote else store
        if probe.read_bytes(key) != data:
            raise StorageError(f"{name}: {store.location} returned other bytes than were written")
    finally:
        store.remove(key)
        if store.is_remote:
            import shutil

            shutil.rmtree(store.mirror / ".metgan-check-read", ignore_errors=True)
    kind = "object store" if store.is_remote else "folder"
    mirror = f" (this host's cache: {store.mirror})" if store.is_remote else ""
    return f"{name}: {kind} {store.location} readable and writable{' (bucket created)' if created else ''}{mirror}"


@click.group()
def storage() -> None:
    """Check the file stores (METGAN_DATA_DIR, METGAN_RESULTS_DIR)."""


@storage.command()
@click.option("--create-bucket", is_flag=True, help="Create a missing S3 bucket first.")
def check(create_bucket: bool) -> None:
    """Write, read back and delete a probe object in the data and results stores."""
    settings = get_settings()
    for name, store in (("data", settings.data_store), ("results", settings.results_store)):
        click.echo(check_store(name, store, create_bucket))
