"""PostgreSQL storage: engine (embedded default), migrations runner, and the repositories per
domain (met: runs, objects, images; searches: searches, trials, epochs), each on an injected engine."""

from metgan.store.engine import database_url, get_engine
from metgan.store.migrations import migrate

__all__ = ["database_url", "get_engine", "migrate"]
