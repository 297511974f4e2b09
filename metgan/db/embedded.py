"""The embedded PostgreSQL server: used when ``METGAN_DATABASE_URL`` is unset.

It comes from the ``pgserver`` wheel (PostgreSQL 16 binaries in site-packages), keeps its data
under ``<data_dir>/postgres`` and listens on a Unix socket only. Starting is guarded by pgserver's
inter-process lock and reads the running server's ``postmaster.pid``, so two processes asking at
once get one server; the data folder is created here, before that lock, in a way that cannot fail
when another process creates it first. It keeps running after the process that started it exits (Airflow runs each
task in its own process; restarting per task would cost seconds); ``metgan db stop`` shuts it
down cleanly.
"""

from __future__ import annotations

import logging
import subprocess
import warnings
from pathlib import Path

from metgan.errors import DatabaseError

log = logging.getLogger(__name__)


def pgdata_dir(data_dir: Path) -> Path:
    return data_dir / "postgres"


def _pgserver():
    """Import pgserver quietly: every start would otherwise add its INFO lines ("a postgres server
    is already running: postmaster_info=...") and platformdirs' XDG_RUNTIME_DIR warning (containers,
    CI, Airflow workers) to the log of whatever started it. Raising pgserver's logger level only
    when nobody set it leaves ``metgan -vv`` (and a caller's own choice) in charge."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")
        import pgserver
        import pgserver.utils  # noqa: F401 - imported here so its import is quiet too
    logger = logging.getLogger("pgserver")
    if logger.level == logging.NOTSET:
        logger.setLevel(logging.WARNING)
    return pgserver


def ensure_server(data_dir: Path, database: str = "postgres") -> str:
    """Start the embedded server if it is not running; return a URL for ``database``."""
    try:
        pgserver = _pgserver()
    except ImportError as exc:  # pragma: no cover - pgserver is a hard dependency
        raise DatabaseError("the embedded PostgreSQL needs the 'pgserver' package") from exc
    pgdata = pgdata_dir(data_dir)
    # pgserver checks exists() and then mkdir(exist_ok=False) outside its lock: of two processes
    # starting at once, the one that loses that race fails. Created here, pgserver never makes it.
    pgdata.mkdir(parents=True, exist_ok=True)
    try:
        server = pgserver.get_server(pgdata, cleanup_mode=None)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        log_file = pgdata / "log"
        tail = log_file.read_text(errors="replace")[-2000:] if log_file.exists() else ""
        raise DatabaseError(f"the embedded PostgreSQL under {pgdata} did not start: {exc}\n{tail}") from exc
    return server.get_uri(database)


def is_running(data_dir: Path) -> bool:
    info = _pgserver().utils.PostmasterInfo.read_from_pgdata(pgdata_dir(data_dir))
    return info is not None and info.is_running()


def stop_server(data_dir: Path) -> bool:
    """Stop the embedded server cleanly (fast shutdown); return False if none was running."""
    _commands = _pgserver()._commands
    pgdata = pgdata_dir(data_dir)
    if not (pgdata / "PG_VERSION").exists() or not is_running(data_dir):
        return False
    user = "pgserver" if _is_root() else None
    _commands.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    log.info("stopped the embedded PostgreSQL under %s", pgdata)
    return True


def _is_root() -> bool:
    import os

    return hasattr(os, "geteuid") and os.geteuid() == 0
