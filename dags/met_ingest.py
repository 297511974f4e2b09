"""Scrape the Met: discover object ids, fetch their records and download their images.

Runs daily on a data interval (incremental: objects whose metadata changed since the interval's
start) and by hand from the trigger form (full, incremental from the stored watermark, search,
department, or targeted at the subset's candidates after a CSV bootstrap). Record and image
tasks are mapped over batches of ids, never single ids (Airflow maps at most 1024 items), and
run in the ``met_api`` pool: its slots times each task's share of ``METGAN_MET_RATE`` bound the
deployment's request rate.
"""

from __future__ import annotations

from datetime import timedelta

from airflow.sdk import Param, TriggerRule, dag, get_current_context, task
from airflow.timetables.trigger import CronTriggerTimetable

from metgan import assets

API_RETRIES = {
    "retries": 4,
    "retry_delay": timedelta(seconds=15),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": timedelta(minutes=10),
}


@dag(
    dag_id="met_ingest",
    # Daily at 03:00 over the day before (the data interval). Unpausing the DAG (the trigger form's
    # "unpause" box) queues no scheduled scrape, so a person's own run never waits behind a run they
    # did not ask for (max_active_runs=1): the first runs at the next 03:00. That needs both
    # run_immediately=timedelta(0) and no start_date (a start date makes the timetable schedule the
    # latest past 03:00 at once). run_immediately=False is not "never" in Airflow 3.3: it schedules
    # the past 03:00 when unpaused within a tenth of a day after it (03:00 to 05:24 UTC).
    schedule=CronTriggerTimetable("0 3 * * *", timezone="UTC", interval=timedelta(days=1),
                                  run_immediately=timedelta(0)),
    catchup=False,
    max_active_runs=1,
    tags=["metgan", "ingest"],
    doc_md=__doc__,
    params={
        "mode": Param("incremental", enum=["incremental", "full", "search", "department", "targeted"],
                      title="Mode",
                      description="incremental: records changed since the last successful run; "
                                  "targeted: only the subset's candidates (after a CSV import)"),
        # Optional fields are typed nullable: the trigger form marks a non-null field without a
        # value as required and keeps its Trigger button disabled (it sends an empty field as null).
        "query": Param(None, type=["null", "string"], title="Search query",
                       description="for mode 'search': /search?q=...&hasImages=true"),
        "department_ids": Param([], type=["null", "array"], items={"type": "integer"}, title="Department ids",
                                description="for mode 'department' (e.g. 1, 3, 9)"),
        "limit": Param(None, type=["null", "integer"], minimum=1, title="Limit",
                       description="stop after this many object ids (empty: all)"),
        "batch_size": Param(1000, type="integer", minimum=10, maximum=10000, title="Batch size",
                            description="object ids per mapped task"),
        "additional_images": Param(False, type="boolean", title="Additional images",
                                   description="also download each object's additional images"),
        "csv_source": Param(None, type=["null", "string"], title="Open Access CSV",
                            description="path or URL of MetObjects.csv to import first (optional)",
                            section="Bootstrap"),
    },
)
def met_ingest():
    @task
    def import_csv(params: dict | None = None) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        source = (params or {}).get("csv_source") or ""
        if not source:
            raise AirflowSkipException("no csv_source given: nothing to import")
        from metgan import pipeline

        return pipeline.import_csv(source)

    # NONE_FAILED: without a csv_source the import is skipped, and discovery runs all the same.
    # The batches are the return value, which fetch_records and download_images expand over
    # directly (Airflow maps over return values only); the run id is an XCom of its own, so
    # summarize can close a run that discovered nothing and so has no batch to carry it.
    @task(trigger_rule=TriggerRule.NONE_FAILED, **API_RETRIES)
    def discover_object_ids(params: dict | None = None) -> list[dict]:
        from metgan import pipeline

        context = get_current_context()
        metadata_date = None
        if params["mode"] == "incremental" and context["dag_run"].run_type == "scheduled":
            metadata_date = context["data_interval_start"].date().isoformat()
        discovery = pipeline.discover(
            params["mode"],
            query=params["query"] or None,
            department_ids=params["department_ids"] or None,
            limit=params["limit"],
            batch_size=int(params["batch_size"]),
            metadata_date=metadata_date,
        )
        context["ti"].xcom_push(key="scrape_run_id", value=discovery["run_id"])
        return discovery["batches"]

    # The labels come from the task's own argument, so Airflow renders them when the task starts
    # (a label set in the context during the run shows only once the task has finished).
    @task(pool="met_api", map_index_template="{{ task.op_kwargs['batch']['label'] }}", **API_RETRIES)
    def fetch_records(batch: dict) -> dict:
        from metgan import pipeline

        return pipeline.fetch_records(batch)

    @task(pool="met_api", map_index_template="{{ task.op_kwargs['batch']['label'] }}", **API_RETRIES)
    def download_images(batch: dict, params: dict | None = None) -> dict:
        from metgan import pipeline

        return pipeline.download_images(batch, additional_images=bool(params["additional_images"]))

    # NONE_FAILED: a discovery of nothing maps no batch, and the skipped batch tasks would skip
    # this one too, leaving the scrape run 'running' for ever. A run whose objects have no image
    # closes its scrape run, then skips, so it announces no images (no vase_subset run on nothing).
    # The run's counts come from the database, which every batch wrote; no batch result is read.
    @task(outlets=[assets.IMAGES], trigger_rule=TriggerRule.NONE_FAILED)
    def summarize(scrape_run_id: int) -> dict:
        from airflow.sdk.exceptions import AirflowSkipException

        from metgan import pipeline

        summary = pipeline.finish_run(scrape_run_id)
        if not summary["counts"]["primary_images"].get("ok"):
            raise AirflowSkipException(f"scrape run {summary['run_id']} stored no image: nothing to announce")
        return summary

    batches = discover_object_ids()
    import_csv() >> batches
    fetched = fetch_records.expand(batch=batches)
    # The images of every batch wait for all the records (a failed batch leaves them upstream_failed).
    downloaded = download_images.expand(batch=batches)
    fetched >> downloaded >> summarize(batches["scrape_run_id"])


met_ingest()
