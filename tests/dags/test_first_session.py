"""`make up` unpauses the DAGs a first session uses through Airflow's real CLI, but not met_ingest,
whose unpausing would queue a scheduled scrape at once (catchup=False)."""

import json
import os
import subprocess

import pytest

from metgan import demo

DAG_IDS = ("met_ingest", "vase_subset", "gan_search", "gan_generate")


def airflow(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(demo.BIN / "airflow"), *args], env=dict(os.environ), cwd=demo.REPO,
                          capture_output=True, text=True, timeout=300)


def is_paused(dag_id: str) -> bool:
    details = airflow("dags", "details", dag_id, "-o", "json")
    assert details.returncode == 0, details.stderr
    return demo._is_paused(details.stdout)


@pytest.mark.slow  # a dozen Airflow CLI starts: about a minute on a quiet machine
def test_make_up_unpauses_subset_and_search_but_leaves_met_ingest_paused(airflow_db):
    parsed = airflow("dags", "reserialize")  # what the dag processor does once standalone runs
    assert parsed.returncode == 0, parsed.stderr
    paused = airflow("dags", "pause", "--treat-dag-id-as-regex", "--yes", f"^({'|'.join(DAG_IDS)})$")
    assert paused.returncode == 0, paused.stderr
    assert is_paused("vase_subset") and is_paused("gan_search") and is_paused("gan_generate")

    unpaused = demo.unpause_first_session_dags(dict(os.environ), timeout=60)

    assert unpaused == ["vase_subset", "gan_search", "gan_generate"]
    assert not is_paused("vase_subset") and not is_paused("gan_search") and not is_paused("gan_generate")
    assert is_paused("met_ingest")
    guide = demo.first_session_guide("http://localhost:8080", unpaused)
    assert "met_ingest -> Trigger" in guide and '"Unpause met_ingest on trigger"' in guide
    assert "vase_subset, gan_search, gan_generate" in guide


def test_details_json_is_read_past_log_lines():
    log_line = "2026-12-01T08:57:25Z [warning  ] Could not import graphviz. [py.warnings] category=UserWarning"
    assert demo._is_paused(log_line + '\n[{"dag_id": "x", "is_paused": "True"}]')
    assert not demo._is_paused(log_line + "\n" + json.dumps([{"dag_id": "x", "is_paused": "False"}]))
