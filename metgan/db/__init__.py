"""PostgreSQL storage, the only code that runs SQL: engine (embedded default), migrations runner,
and the repositories per domain (met: runs, objects, images; csv_imports: the CSV import's row,
lock and load; subsets: subsets, their images, the selection query; searches: searches, trials,
epochs), each on an injected engine.

The package's own names are imported on first use, so that importing a module without SQL from
it (:mod:`metgan.db.columns`, which the Met parser and the fake Met server use) does not import
SQLAlchemy."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metgan.db.engine import database_url, get_engine
    from metgan.db.migrations import migrate

__all__ = ["database_url", "get_engine", "migrate"]
_HOMES = {"database_url": "metgan.db.engine", "get_engine": "metgan.db.engine", "migrate": "metgan.db.migrations"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'metgan.db' has no attribute {name!r}")
