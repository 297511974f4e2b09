"""Targeted scraping: ask the Met API only about the objects a subset can use.

After a CSV import (``metgan import-csv``) the whole collection's metadata is in ``met_objects``,
but image URLs are only in the API. The subset's metadata selection (vases by default: object
name, classification, fragments excluded, public domain) runs against those rows, and a scrape
run is created for exactly the selected ids; the ingest DAG (or ``metgan ingest``) then fetches
records and images batch by batch as for any other run. For the vase subset this is about 10,000
API calls instead of about 490,000.
"""

from __future__ import annotations

import logging
from typing import Any

from metgan.config import Settings, get_settings
from metgan.errors import ConfigError

log = logging.getLogger(__name__)


def discover_targeted(subset_params: dict | None = None, *, batch_size: int = 1000,
                      settings: Settings | None = None) -> dict[str, Any]:
    """Create a ``targeted`` scrape run over the subset's candidate objects; return its batches.

    Same return shape as :func:`metgan.met.ingest.create_run` (``run_id``, ``total``, ``batches``).
    Raises ConfigError when no object is in the store yet (import the CSV first) or none matches.
    """
    from metgan.images.selection import SubsetParams, candidate_object_ids
    from metgan.met.ingest import create_run
    from metgan.store import get_engine

    settings = settings or get_settings()
    engine = get_engine(settings)
    # validated and canonical, so the run records exactly what was selected
    selection = SubsetParams.from_dict(subset_params).to_dict()
    object_ids = candidate_object_ids(subset_params, engine=engine)
    if not object_ids:
        with engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT count(*) FROM met_objects").scalar_one()
        if not stored:
            raise ConfigError("no objects in the store to select from; import the Open Access CSV "
                              "first (metgan import-csv PATH|URL)")
        raise ConfigError(f"the subset selection matches none of the {stored} stored objects")
    params = {"subset": {k: selection[k] for k in ("include", "exclude", "regex", "classifications",
                                                   "public_domain")}}
    run = create_run("targeted", object_ids, params=params, batch_size=batch_size, settings=settings)
    log.info("targeted run %d: %d candidate objects in %d batches", run["run_id"], run["total"],
             len(run["batches"]))
    return run
