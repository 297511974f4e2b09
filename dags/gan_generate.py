"""Generate new images from a search's best model: whenever a search publishes one, or by hand.

``gan_search``'s ``publish_report`` emits ``metgan://models/<search>`` (through the
``metgan-models`` alias) once a trial has a best snapshot; this DAG runs on that event and
generates from the best trial of the search it names. Triggered by hand, the form names the
search (and optionally a trial); left empty, the newest search with a model. Images go to ``<results_dir>/<search>/generations/<trial>-<hash>/``
(one PNG per seed, a contact sheet, generation.json), which the metgan gallery shows; the same
request writes the same folder, and a complete one is kept.

Seeds: empty means 0 to n-1; otherwise "1-64", "3,17,42" or a mix. Truncation scales each
Gaussian latent towards the mean (1 = none, 0 = the mean image for every seed).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, get_current_context, task

from metgan import assets
from metgan.names import NAME_PATTERN


@dag(
    dag_id="gan_generate",
    schedule=[assets.MODELS],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["metgan", "gan"],
    doc_md=__doc__,
    params={
        "search_name": Param(None, type=["null", "string"], pattern=NAME_PATTERN, title="Search name (letters, digits, - and _)",
                             description="empty: the search whose model triggered this run, else the newest "
                                         "search with a model"),
        "trial_id": Param(None, type=["null", "string"], pattern=NAME_PATTERN, title="Trial id (letters, digits, - and _)",
                          description="empty: the search's best trial by its objective"),
        "n": Param(16, type="integer", minimum=1, maximum=1024, title="Images",
                   description="with empty seeds: seeds 0 to n-1"),
        "seeds": Param(None, type=["null", "string"], pattern=r"^\s*\d+(-\d+)?(\s*,\s*\d+(-\d+)?)*\s*$",
                       title="Seeds", description="e.g. 1-64 or 3,17,42; empty: 0 to n-1"),
        "truncation": Param(1.0, type="number", minimum=0, maximum=2, title="Truncation",
                            description="scale the latent towards the mean: 1 = none, 0.7 = more typical images"),
        "upscale": Param(1, type="integer", minimum=1, maximum=16, title="Upscale",
                         description="enlarge every image by this whole factor (Lanczos)"),
    },
)
def gan_generate():
    @task
    def generate(params: dict | None = None) -> dict:
        from metgan.gan.generate import generate_for_search, parse_seeds, seed_range
        from metgan.pipeline import search_to_generate

        events = get_current_context().get("triggering_asset_events") or {}
        extras = [event.extra for asset_events in events.values() for event in asset_events]
        search_name = search_to_generate(params.get("search_name"), extras)
        seeds = parse_seeds(params["seeds"]) if params.get("seeds") else seed_range(0, int(params["n"]))
        return generate_for_search(search_name, trial_id=params.get("trial_id") or None, seeds=seeds,
                                   truncation=float(params["truncation"]), upscale=int(params["upscale"]))

    generate()


gan_generate()
