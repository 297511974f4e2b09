"""Every DAG's trigger form can be submitted with its defaults (the fast half of what the browser
test checks in a deployment).

Airflow 3.3's form (``airflow/ui``'s FlexibleForm) marks a param as required when its schema has a
``type`` that is not a list containing ``"null"``, and reports a required field whose value is
null as missing, which keeps the Trigger button disabled. The form sends an empty text field as
null, so a string defaulting to ``""`` is missing too.
"""

import pytest

from tests.e2e.cluster import REPO

DAG_IDS = ("met_ingest", "vase_subset", "gan_search", "gan_generate")


def required_by_the_form(schema: dict) -> bool:
    kind = schema.get("type")
    return bool(kind) and not (isinstance(kind, list) and "null" in kind)


def missing_defaults(dag) -> list[str]:
    missing = []
    for name in dag.params:
        default, schema = dag.params[name], dag.params.get_param(name).schema
        if required_by_the_form(schema) and default in (None, ""):
            missing.append(f"{dag.dag_id}.{name} (default {default!r}, type {schema.get('type')!r})")
    return missing


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def test_the_rule_flags_what_the_form_rejects():
    assert required_by_the_form({"type": "string"})
    assert not required_by_the_form({"type": ["null", "string"]})
    assert not required_by_the_form({"enum": ["a", "b"]})


@pytest.mark.parametrize("dag_id", DAG_IDS)
def test_every_param_has_a_default_the_form_accepts(dags, dag_id):
    assert missing_defaults(dags[dag_id]) == []


def test_met_ingest_optional_strings_default_to_none(dags):
    params = dags["met_ingest"].params
    assert params["query"] is None and params["csv_source"] is None


def test_met_ingest_optional_fields_can_be_emptied(dags):
    """A field the user empties is sent as null: every optional one must accept it."""
    params = dags["met_ingest"].params
    for name in ("query", "department_ids", "limit", "csv_source"):
        assert not required_by_the_form(params.get_param(name).schema), name
