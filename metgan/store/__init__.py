"""PostgreSQL storage: engine (embedded default), migrations runner, repositories."""

from metgan.store.engine import database_url, get_engine
from metgan.store.migrations import migrate

__all__ = ["database_url", "get_engine", "migrate"]
