import pytest


@pytest.fixture(scope="session")
def airflow_db():
    """Airflow's metadata schema in the throwaway AIRFLOW_HOME set by tests/conftest.py (SQLite)."""
    from airflow.utils import db

    db.initdb()
