"""The Airflow assets that connect metgan's DAGs, defined once (DAG files import them from here).

``met_ingest`` updates ``IMAGES`` after a scrape, which schedules ``vase_subset``. ``vase_subset``
adds ``subset(name)`` through ``SUBSETS`` after a build that produced images. ``gan_search``'s
``publish_report`` adds ``model(search)`` through ``MODELS`` once a trial has a best snapshot, which
schedules ``gan_generate``. Only the DAG files import this module, so ``import metgan`` still
imports no Airflow.
"""

from __future__ import annotations

from airflow.sdk import Asset, AssetAlias

IMAGES = Asset("metgan://met/images")
SUBSETS = AssetAlias("metgan-subsets")
MODELS = AssetAlias("metgan-models")


def subset(name: str) -> Asset:
    """The asset of the subset ``name`` (``metgan://subsets/<name>``)."""
    return Asset(f"metgan://subsets/{name}")


def model(search_name: str) -> Asset:
    """The asset of a search's best model (``metgan://models/<search>``)."""
    return Asset(f"metgan://models/{search_name}")
