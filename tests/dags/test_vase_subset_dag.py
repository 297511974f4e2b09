"""vase_subset end to end with dag.test(): its form's defaults, and no asset for a build of nothing."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from metgan.names import NAME_PATTERN
from tests.conftest import REPO
from tests.integration.test_subset import COLLECTION, add_image, insert_objects, manifest_rows, portrait


@pytest.fixture(scope="module")
def dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags" / "vase_subset.py"))
    assert bag.import_errors == {}
    return bag.dags["vase_subset"]


def subset_events(name: str, run) -> int:
    """Asset events for subset ``name`` emitted by ``run`` (other DAG tests share the metadata DB)."""
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(select(func.count()).select_from(AssetEvent)
                              .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                              .where(AssetModel.uri == f"metgan://subsets/{name}",
                                     AssetEvent.source_run_id == run.run_id))


def task_states(run) -> dict:
    return {ti.task_id: ti.state for ti in run.get_task_instances()}


def test_every_form_field_is_submittable_as_it_stands(dag):
    # The trigger form calls a field required when its schema has a type without "null", and
    # refuses the run while a required field is null or "" (Airflow 3, FlexibleForm).
    for key, param in dag.params.items():
        kinds = param.schema.get("type")
        required = bool(kinds) and "null" not in (kinds if isinstance(kinds, list) else [kinds])
        if required:
            assert param.value not in (None, ""), key
        assert param.resolve() == param.value, key
    assert dag.params.get_param("name").schema["pattern"] == NAME_PATTERN
    # Emptying a list field sends null; it must validate, and it means an empty list.
    for key in ("exclude", "classifications"):
        assert dag.params.get_param(key).resolve(None) is None, key


def test_the_defaults_build_the_vases_and_emit_the_asset(airflow_db, db, settings, dag):
    insert_objects(db, COLLECTION)
    shas = [add_image(db, settings, oid, portrait((40 * oid, 90, 120))) for oid in (1, 2, 3)]

    run = dag.test()

    assert task_states(run) == {"build_subset": "success"}
    rows = manifest_rows(settings, "vases")
    assert sorted(r["sha256"] for r in rows) == sorted(shas)
    assert {(r["width"], r["height"]) for r in rows} == {("128", "160")}
    assert subset_events("vases", run) == 1


def test_a_build_of_nothing_fails_the_task_and_emits_no_asset(airflow_db, db, settings, dag):
    insert_objects(db, COLLECTION)
    add_image(db, settings, 1, portrait((200, 10, 10)))

    run = dag.test(run_conf={"name": "teapots", "include": ["teapot"]})

    assert task_states(run) == {"build_subset": "failed"}
    assert subset_events("teapots", run) == 0
    assert not (settings.subsets_dir / "teapots").exists()
