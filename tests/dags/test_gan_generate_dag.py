"""gan_search publishes its best model as an asset; gan_generate (dag.test) writes a generation folder
the gallery shows."""

from __future__ import annotations

import json

import pytest
from PIL import Image
from sqlalchemy import select

from metgan import trialdir
from tests.conftest import REPO
from tests.gan_support import make_subset

TINY_GAN = {"g_blocks": 2, "g_filters": 16, "g_seed_filters": 8, "d_blocks": 2, "d_filters": 8,
            "noise_dim": 16, "batch_size": 16, "swd_every": 1, "n_generated": 4}


@pytest.fixture(scope="module")
def dags():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert bag.import_errors == {}
    return bag.dags


def _fresh_dag(dag_id: str):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(REPO / "dags" / f"{dag_id}.py")).dags[dag_id]


def _states(run) -> dict:
    return {(ti.task_id, ti.map_index): ti.state for ti in run.get_task_instances()}


def _model_events(search_name: str, run) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return list(session.scalars(select(AssetEvent.extra).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                                    .where(AssetModel.uri == f"metgan://models/{search_name}",
                                           AssetEvent.source_run_id == run.run_id)))


def test_gan_generate_is_scheduled_on_the_models_alias_and_its_form_submits_as_it_stands(dags):
    dag = dags["gan_generate"]
    assert "metgan-models" in str(dag.timetable.asset_condition)
    assert [t.task_id for t in dag.tasks] == ["generate"]
    dag.params.validate()
    for name in ("search_name", "trial_id", "seeds"):
        assert dag.params[name] is None and "null" in dag.params.get_param(name).schema["type"], name


@pytest.mark.slow
def test_a_search_publishes_its_best_model_and_gan_generate_writes_what_the_gallery_shows(
        airflow_db, db, settings, dags, monkeypatch):
    make_subset(settings.subsets_dir / "vases", count=32)
    search_run = dags["gan_search"].test(run_conf={
        "search_name": "gen", "subset": "vases", "grid": {"loss": ["hinge"]}, "base": TINY_GAN, "epochs": 2,
        "budget_s": 600})
    assert search_run.state == "success", _states(search_run)
    search_dir = settings.results_dir / "gen"
    [trial_id] = json.loads((search_dir / "search.json").read_text())["trials"]
    record = trialdir.read_model_record(search_dir / trial_id)
    events = _model_events("gen", search_run)
    assert events == [{"search_name": "gen", "trial_id": trial_id, "epoch": record["epoch"],
                       "model": str(trialdir.best_generator_path(search_dir / trial_id))}]
    # render_gifs walked the best snapshot; the report says which epoch it is and links the model
    assert (search_dir / trial_id / trialdir.WALK_GIF).is_file()
    page = (search_dir / "report.html").read_text()
    assert f"Best at epoch {record['epoch']}" in page and "best/generator.keras" in page and "walk.gif" in page

    run = dags["gan_generate"].test(run_conf={"search_name": "gen", "seeds": "3,17,42,99", "truncation": 0.7})
    assert _states(run) == {("generate", -1): "success"}
    [folder] = trialdir.generation_folders(search_dir)
    generation = trialdir.read_generation_record(folder)
    assert generation["trial_id"] == trial_id and generation["seeds"] == [3, 17, 42, 99]
    assert generation["truncation"] == 0.7 and generation["epoch"] == record["epoch"]
    assert sorted(p.name for p in folder.glob("seed_*.png")) == [trialdir.seed_image_name(s) for s in (3, 17, 42, 99)]
    with Image.open(folder / "seed_0003.png") as image:
        assert image.size == (32, 40)
    first = (folder / "seed_0003.png").read_bytes()

    again = dags["gan_generate"].test(run_conf={"search_name": "gen", "seeds": "3,17,42,99", "truncation": 0.7})
    assert _states(again) == {("generate", -1): "success"}
    assert trialdir.generation_folders(search_dir) == [folder] and (folder / "seed_0003.png").read_bytes() == first

    # the form's defaults: the newest search with a model, seeds 0-15 (a freshly parsed DAG: dag.test
    # leaves the last run_conf in the DAG object's params)
    by_hand = _fresh_dag("gan_generate").test()
    assert _states(by_hand) == {("generate", -1): "success"}
    [defaults] = [f for f in trialdir.generation_folders(search_dir) if f != folder]
    assert trialdir.read_generation_record(defaults)["seeds"] == list(range(16))

    monkeypatch.syspath_prepend(str(REPO / "plugins"))
    import metgan_gallery

    [listed] = [s for s in metgan_gallery.searches(settings.results_dir) if s["name"] == "gen"]
    assert sorted(g["name"] for g in listed["generations"]) == sorted([folder.name, defaults.name])
    assert f"files/gen/generations/{folder.name}/contact_sheet.png" in [g["full"] for g in listed["generations"]]
    [card] = listed["trials"]
    assert card["model"] == f"files/gen/{trial_id}/best/generator.keras" and card["walk"].endswith("walk.gif")
    assert card["best"].endswith(f"at epoch {record['epoch']}")


@pytest.mark.slow
def test_a_hand_run_before_any_model_or_of_an_unknown_search_fails(airflow_db, db, settings, dags):
    run = _fresh_dag("gan_generate").test()
    assert _states(run) == {("generate", -1): "failed"}
    run = dags["gan_generate"].test(run_conf={"search_name": "nosuch"})
    assert _states(run) == {("generate", -1): "failed"}
    assert not (settings.results_dir / "nosuch").exists()
