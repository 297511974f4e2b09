"""Grid-search GAN settings on a subset: one training task per combination.

``plan_trials`` expands the grid (a dict of lists, or a list of such dicts, as scikit-learn's
ParameterGrid) and validates every combination before anything trains; an invalid grid fails
here with the message. ``train_trial`` is mapped over the trials in pool ``gpu`` (one slot per
GPU) on queue ``gpu`` (the GPU Celery worker); a retried trial resumes from its last checkpoint,
and a trial that still fails turns its task red while the other trials go on. ``render_gifs``
renders what each trial left (a failed or stopped one says why), and ``publish_report`` writes
the search's report and gallery, which the metgan page in the Airflow UI shows, and fails the
run when no trial finished; it emits ``metgan://models/<search>`` (the best trial's exported
generator), which schedules ``gan_generate``. ``plan_trials`` also checks the subset (it must exist and hold
images; the trials train at its image size), so a bad subset is one red task, not a red trial each.

Strategy ``grid`` trains every combination, ``random`` ``n_iter`` seeded draws (a grid value may
be a distribution, e.g. ``{"loguniform": [1e-5, 1e-3]}``), ``halving`` successive halving: the
first ``train_trial`` stage is rung 0, then each ``halving.promote_rung_N`` keeps the best 1/factor
(the rest are marked ``pruned``) and ``halving.train_rung_N`` trains them on, each resuming from
its checkpoint. The DAG has ``MAX_RUNGS`` such stages, in the task group ``halving``; one with
nothing to train is skipped.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import (
    ExceptionRetryPolicy,
    Param,
    RetryAction,
    RetryRule,
    TaskGroup,
    TriggerRule,
    dag,
    get_current_context,
    task,
)

from metgan import assets
from metgan.gan.budget import DEFAULT_SEARCH_BUDGET_S
from metgan.gan.request import OBJECTIVES
from metgan.gan.strategy import MAX_RUNGS, STRATEGIES
from metgan.names import NAME_PATTERN

# The setting the small-data literature disagrees on most, two trials: the budget then buys each
# of them enough training to draw (bench/first_session.py measures this default).
DEFAULT_GRID = {"loss": ["non-saturating", "hinge"]}



@dag(
    dag_id="gan_search",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["metgan", "gan"],
    doc_md=__doc__,
    params={
        "search_name": Param("vases-search", type="string", pattern=NAME_PATTERN, title="Search name (letters, digits, - and _)",
                             description="results go to <results_dir>/<search name>/ (letters, digits, - and _)"),
        "subset": Param("vases", type="string", pattern=NAME_PATTERN, title="Subset (letters, digits, - and _)",
                        description="a subset built by vase_subset; trials train at its image size"),
        "grid": Param(DEFAULT_GRID, type=["object", "array"], title="Grid",
                      description="GAN settings to try: a dict of lists, or a list of such dicts"),
        "base": Param({}, type="object", title="Base settings",
                      description="GAN settings shared by every trial, e.g. {\"preset\": \"origin\", "
                                  "\"g_filters\": 64, \"loss\": \"hinge\"}; \"height\" and \"width\" "
                                  "leave them out and each trial trains at the largest size its share of the "
                                  "budget affords (the subset's, or half, or a quarter: the report says which)"),
        "budget_s": Param(DEFAULT_SEARCH_BUDGET_S, type="integer", minimum=60, maximum=7 * 24 * 3600,
                          title="Time budget for the whole search (s)", section="Budget",
                          description="split over the trials (they run one after another on the gpu pool); "
                                      "used when Epochs is empty and the strategy is not halving"),
        "epochs": Param(None, type=["null", "integer"], minimum=1, maximum=10000, title="Epochs per trial",
                        section="Budget", description="empty: as many as each trial's share of the budget "
                                                      "affords; halving: the last rung's epochs"),
        "objective": Param("swd", enum=list(OBJECTIVES), title="Objective", section="Ranking",
                           description="metric the leaderboard ranks by"),
        "direction": Param("min", enum=["min", "max"], title="Direction", section="Ranking"),
        "strategy": Param("grid", enum=list(STRATEGIES), title="Strategy", section="Strategy",
                          description="grid: every combination; random: n_iter draws (a grid value may be "
                                      "a distribution, e.g. {\"loguniform\": [1e-5, 1e-3]}); halving: "
                                      "successive halving up to the Epochs field, over the grid or n_iter draws"),
        "n_iter": Param(None, type=["null", "integer"], minimum=1, maximum=1024, title="Draws (n_iter)",
                        section="Strategy", description="random: how many trials to draw; halving: draw "
                                                        "this many instead of taking the grid"),
        "seed": Param(0, type="integer", minimum=0, title="Seed of the draws", section="Strategy"),
        "factor": Param(3, type="integer", minimum=2, title="Halving factor", section="Strategy",
                        description="halving keeps the best 1/factor of each rung and trains them factor "
                                    "times longer"),
        "min_epochs": Param(None, type=["null", "integer"], minimum=1, title="Epochs of the first rung",
                            section="Strategy", description="halving only; empty: chosen so the last rung "
                                                            "reaches the Epochs field (scikit-learn's exhaust)"),
    },
)
def gan_search():
    @task
    def plan_trials(params: dict | None = None) -> list[dict]:
        from metgan.gan.request import SearchRequest
        from metgan.gan.search import plan_request

        context = get_current_context()
        request = SearchRequest.from_form(params, airflow_dag_id=context["dag"].dag_id,
                                          airflow_run_id=context["run_id"])
        return plan_request(request)["trials"]

    @task(
        pool="gpu",
        queue="gpu",
        map_index_template="{{ task.op_kwargs['trial']['label'] }}",
        retries=2,
        retry_delay=timedelta(seconds=10),
        # Retries are for a lost worker or machine (the retry resumes from the checkpoint); a trial
        # that failed in training (its traceback is in trial.json) would only fail again.
        retry_policy=ExceptionRetryPolicy(rules=[
            RetryRule(exception="metgan.errors.GanConfigError", action=RetryAction.FAIL,
                      reason="an invalid config does not become valid by retrying"),
            RetryRule(exception="metgan.errors.TrainingError", action=RetryAction.FAIL,
                      reason="the trial failed in training; see trial.json for its traceback"),
        ]),
    )
    def train_trial(trial: dict) -> dict:
        import socket

        from metgan.errors import TrainingError
        from metgan.gan.search import train_trial as train

        result = train(trial["search_name"], trial["trial_id"], rung=trial.get("rung"),
                       until_epoch=trial.get("until_epoch"))
        if result["status"] == "failed":
            raise TrainingError(f"trial {trial['label']} failed: {result['error']}")
        return {**trial, **result, "worker": socket.gethostname()}

    # Successive halving's decision before a rung. After every training of the rung before, whatever
    # its outcome (a failed trial is just not promoted); skipped when that rung had nothing to train.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS)
    def promote(rung: int, params: dict | None = None) -> list[dict]:
        from metgan.gan.search import promote as promote_rung

        return promote_rung(params["search_name"], rung)

    # Over the plan, not train_trial's results, and whatever the trainings' outcome: a failed or
    # stopped trial still gets its GIFs and its place in the report, saying why it ended.
    @task(map_index_template="{{ task.op_kwargs['trial']['label'] }}", trigger_rule=TriggerRule.ALL_DONE)
    def render_gifs(trial: dict) -> dict:
        from metgan.pipeline import render_trial

        return render_trial(trial["search_name"], trial["trial_id"])

    # Once every rendering is done and at least one succeeded, so a failed or stopped trial is
    # still reported; when plan_trials failed nothing was rendered and this reads upstream_failed,
    # not a second failure. It fails the run when no trial finished: the run would read green.
    @task(trigger_rule=TriggerRule.ALL_DONE_MIN_ONE_SUCCESS, outlets=[assets.MODELS])
    def publish_report(rendered, params: dict | None = None, outlet_events=None) -> dict:
        from metgan.pipeline import best_model, publish_search

        trial_ids = [item["trial_id"] for item in rendered]
        written = publish_search(params["search_name"], trial_ids)
        model = best_model(params["search_name"])  # None when no trial has a best snapshot: no event
        if model is not None:
            outlet_events[assets.MODELS].add(assets.model(params["search_name"]), extra=model)
        return {"trials": len(trial_ids), "model": model,
                **{k: v if k == "statuses" else str(v) for k, v in written.items()}}

    trials = plan_trials()
    trained = train_trial.expand(trial=trials)  # rung 0: every trial (to the end, unless halving)
    # Halving's later rungs, in one group the UI folds into a single row: a grid or random search
    # leaves them all skipped, and a user who did not ask for halving need not read ten of them.
    with TaskGroup("halving", tooltip="successive halving's later rungs; skipped unless the strategy is halving"):
        for rung in range(1, MAX_RUNGS):
            survivors = promote.override(task_id=f"promote_rung_{rung}")(rung)
            trained >> survivors
            trained = train_trial.override(task_id=f"train_rung_{rung}").expand(trial=survivors)
    rendered = render_gifs.expand(trial=trials)
    trained >> rendered
    publish_report(rendered)


gan_search()
