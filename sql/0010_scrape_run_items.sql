-- The object ids a scrape run discovered, chunked into the batches its tasks work on, and how
-- each fetch ended. A rerun of a batch skips the items already 'ok' or 'gone'; the id list stays
-- in the database, so Airflow's XCom only carries batch numbers.
CREATE TABLE scrape_run_items (
    run_id      bigint NOT NULL REFERENCES scrape_runs (run_id) ON DELETE CASCADE,
    object_id   integer NOT NULL,
    batch       integer NOT NULL,
    status      text CHECK (status IN ('ok', 'gone', 'error')),   -- NULL: not fetched yet
    reason      text,
    attempts    integer NOT NULL DEFAULT 0,
    fetched_at  timestamptz,
    PRIMARY KEY (run_id, object_id)
);
CREATE INDEX scrape_run_items_batch_idx ON scrape_run_items (run_id, batch);
