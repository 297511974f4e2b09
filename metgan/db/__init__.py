"""PostgreSQL storage, the only code that runs SQL: engine (embedded default), migrations runner,
and the repositories per domain (met: runs, objects, images; csv_imports: the CSV import's row,
lock and load; subsets: subsets, their images, the selection query; searches: searches, trials,
epochs), each on an injected engine."""

from metgan.db.engine import database_url, get_engine
from metgan.db.migrations import migrate

__all__ = ["database_url", "get_engine", "migrate"]
