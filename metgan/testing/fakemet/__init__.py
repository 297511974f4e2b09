"""A fake Met Collection API: a real aiohttp server over a generated, seeded collection.

    from metgan.testing.fakemet import run_in_thread, Faults
    with run_in_thread(seed=0, objects=300, faults=Faults(error_5xx=0.1)) as met:
        met.url            # http://127.0.0.1:PORT/public/collection/v1 (METGAN_MET_API_URL)
        met.image_host     # 127.0.0.1 (METGAN_IMAGE_HOSTS)
        met.set_faults(block_threshold=30, block_cooldown=2)
        met.max_requests_in_any_window(1.0)
    with run_in_thread(scale="real") as met:   # 490,000 ids listed, 1 MB records, redirects,
        met.collection.special                  # hostile bodies: {object id: kind}

Names are imported on first use, so importing the package (e.g. for the CLI) stays cheap.
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "Collection": "metgan.testing.fakemet.collection",
    "CollectionConfig": "metgan.testing.fakemet.collection",
    "Faults": "metgan.testing.fakemet.faults",
    "FakeMet": "metgan.testing.fakemet.server",
    "FakeMetHandle": "metgan.testing.fakemet.running",
    "run_in_thread": "metgan.testing.fakemet.running",
    "serve_forever": "metgan.testing.fakemet.running",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'metgan.testing.fakemet' has no attribute {name!r}")
