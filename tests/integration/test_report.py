"""The search report from files alone: leaderboard, stop reasons, gallery with nearest training images."""

from __future__ import annotations

import csv
import html.parser
import json
import re
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from metgan.cli import cli
from metgan.errors import RenderError
from metgan.viz.report import publish_report
from tests import trialfolders

search_folder = trialfolders.search_folder


@pytest.fixture(autouse=True)
def data_dir(settings):
    """<tmp>/data, where search_folder puts the training subset: the report looks for it only there."""
    return settings.data_dir


def links(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"#][^"]*)"', page)


def test_report_lists_every_trial_ranked_with_why_each_ended(search_folder):
    written = publish_report(search_folder, render_missing=True)

    with open(written["leaderboard"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["trial_id"] for r in rows] == ["a1b2c3", "d4e5f6", "0789ab"]  # by final SWD; no SWD last
    assert [r["rank"] for r in rows] == ["1", "2", "3"]
    assert rows[1]["stop_reason"] == trialfolders.COLLAPSE_REASON
    assert rows[2]["error"] == "TrainingError: loss became NaN"
    assert rows[2]["objective"] == ""
    # the overrides the trainer writes: what differs from the default preset, size and length included
    assert json.loads(rows[0]["settings"]) == {"g_lr": 0.0001, "epochs": 6, "height": 40, "width": 32,
                                               "swd_every": 2}

    page = Path(written["report"]).read_text()
    for trial_id in ("a1b2c3", "d4e5f6", "0789ab"):
        assert f'data-trial="{trial_id}"' in page
        assert f'src="{trial_id}/progress.gif"' in page
    assert "Stopped early at epoch 4/6: mode collapse" in page
    assert "Failed at epoch 1/6: TrainingError: loss became NaN" in page


def test_every_link_is_relative_and_resolves_to_a_file(search_folder):
    written = publish_report(search_folder, render_missing=True)
    page = Path(written["report"]).read_text()
    targets = links(page)

    assert len(targets) > 20
    for target in targets:
        assert not re.match(r"^(/|[a-z]+:)", target), f"not a relative link: {target}"
        assert (search_folder / target).is_file(), f"broken link: {target}"
    assert "<script src" not in page and "<link " not in page  # nothing fetched from elsewhere


def test_gallery_pairs_each_new_image_with_its_nearest_training_image(search_folder):
    publish_report(search_folder, top_k=2, images_per_trial=3)
    gallery = sorted(p.name for p in (search_folder / "gallery").iterdir())

    new = [n for n in gallery if not n.startswith("train-")]
    assert new == ["a1b2c3-000.png", "a1b2c3-001.png", "a1b2c3-002.png",
                   "d4e5f6-000.png", "d4e5f6-001.png", "d4e5f6-002.png"]
    assert any(n.startswith("train-") for n in gallery)
    page = (search_folder / "report.html").read_text()
    # The synthetic trial a1b2c3's first new images are drawn from the same seeds as training
    # images 7.., so the search must find those copies and flag them.
    assert "near copy" in page
    assert page.count('class="pair"') == 6
    assert page.count("near copy") < 6  # only the copies are flagged, not every pair


def test_missing_subset_folder_is_said_in_the_page(search_folder):
    search = json.loads((search_folder / "search.json").read_text())
    shutil.rmtree(search["subset_dir"])

    publish_report(search_folder)

    page = (search_folder / "report.html").read_text()
    assert "Nearest training images are not shown" in page
    assert "was not found" in page
    assert 'src="gallery/a1b2c3-000.png"' in page


def test_report_twice_gives_the_same_files(search_folder):
    publish_report(search_folder, top_k=2)
    publish_report(search_folder, top_k=1)
    first = sorted(p.name for p in (search_folder / "gallery").iterdir())
    page = (search_folder / "report.html").read_bytes()
    publish_report(search_folder, top_k=1)
    assert sorted(p.name for p in (search_folder / "gallery").iterdir()) == first
    assert not any(name.startswith("d4e5f6-") for name in first)  # the second trial's images went
    assert (search_folder / "report.html").read_bytes() == page


def test_cli_report_and_its_errors(search_folder, tmp_path):
    runner = CliRunner()
    result = runner.invoke(cli, ["report", str(search_folder), "--top-k", "1", "--images", "2"])
    assert result.exit_code == 0, result.output
    assert (search_folder / "report.html").exists()

    empty = tmp_path / "empty-search"
    empty.mkdir()
    bad = runner.invoke(cli, ["report", str(empty)])
    assert bad.exit_code != 0
    assert "no search.json trials and no trial folders" in bad.output
    with pytest.raises(RenderError, match="does not exist"):
        publish_report(tmp_path / "nowhere")


def test_a_failed_trial_shows_its_error_summary_not_the_traceback_header(search_folder):
    info_path = search_folder / "0789ab" / "trial.json"
    info = json.loads(info_path.read_text())
    info.update(error='Traceback (most recent call last):\n  File "x.py", line 1\nValueError: bad pixels\n',
                error_summary="ValueError: bad pixels")
    info_path.write_text(json.dumps(info))

    written = publish_report(search_folder)

    page = Path(written["report"]).read_text()
    assert "Failed at epoch 1/6: ValueError: bad pixels" in page
    assert "Traceback (most recent call last)" not in page
    with open(written["leaderboard"], newline="") as handle:
        assert {r["trial_id"]: r["error"] for r in csv.DictReader(handle)}["0789ab"] == "ValueError: bad pixels"


@pytest.mark.parametrize("subset", ["../outside", "/tmp", "a" * 300])
def test_the_gallery_never_copies_images_from_outside_the_subsets_folder(search_folder, settings, subset):
    outside = trialfolders.make_subset(settings.data_dir / "outside", count=3)
    search = json.loads((search_folder / "search.json").read_text())
    search.update(subset=subset, subset_dir=str(outside))  # a hand-edited search.json
    (search_folder / "search.json").write_text(json.dumps(search))

    publish_report(search_folder)

    assert not [p for p in (search_folder / "gallery").iterdir() if p.name.startswith("train-")]
    page = (search_folder / "report.html").read_text()
    assert "Nearest training images are not shown" in page and "subset name" in page


def test_a_folder_written_by_a_tiny_real_training_run_renders_and_reports_like_the_fixtures(settings, tmp_path):
    """The proof that the fixtures and training agree: the same readers, the same keys, the same pages."""
    from metgan import trialdir
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from metgan.viz.render import render_trial
    from metgan.viz.trial import load_trial
    from tests.gan_support import TINY, make_subset

    make_subset(settings.subsets_dir / "vases", count=32)
    search_dir = settings.results_dir / "real-search"
    config = GanConfig.from_dict({**TINY, "epochs": 2, "g_lr": 0.0005})
    trial_dir = search_dir / config.trial_id()
    search_dir.mkdir(parents=True)
    trialdir.write_search(search_dir, trialdir.SearchRecord(
        name="real-search", subset="vases", grid={"g_lr": [0.0005]}, base=TINY, objective="swd", direction="min",
        created_at=trialdir.utc_now(), trials=[config.trial_id()]))
    run_trial(trial_dir, config, settings.subsets_dir / "vases", search_name="real-search")
    fixture = trialfolders.make_trial(tmp_path / "fixture", epochs=2, swd_every=1, overrides={"g_lr": 0.0005})

    real_info, fixture_info = trialdir.read_trial_info(trial_dir), trialdir.read_trial_info(fixture)
    assert set(fixture_info) == set(real_info)
    real_line, fixture_line = trialdir.read_metrics(trial_dir)[-1], trialdir.read_metrics(fixture)[-1]
    assert set(fixture_line) == set(real_line)
    assert set(trialdir.read_config(fixture)) == set(trialdir.read_config(trial_dir))

    trial = load_trial(trial_dir)
    assert trial.settings() == config.overrides() and trial.settings()["g_lr"] == 0.0005
    written = render_trial(trial_dir)
    assert {"progress.gif", "graph_expanding.gif", "scores.png"} <= set(written)
    report = publish_report(search_dir)
    page = Path(report["report"]).read_text()
    assert report["trials"] == 1 and f'data-trial="{config.trial_id()}"' in page
    assert report["gallery_images"] > 0 and f'src="{config.trial_id()}/progress.gif"' in page
    with open(report["leaderboard"], newline="") as handle:
        [row] = list(csv.DictReader(handle))
    assert row["status"] == "completed" and float(row["objective"]) > 0
    assert json.loads(row["settings"]) == config.overrides()


def test_publish_search_survives_a_trial_json_that_is_not_a_trial_record(search_folder, settings, caplog):
    from metgan.pipeline import publish_search

    (search_folder / "d4e5f6" / "trial.json").write_text("[1, 2, 3]")
    result = publish_search(search_folder.name, settings=settings)
    assert result["statuses"] == {"completed": 1, "missing": 1, "failed": 1}
    assert "holds list, expected a JSON object" in caplog.text


class PageParts(html.parser.HTMLParser):
    """The page as a browser reads it: its tags, its attribute values and its text, unescaped."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tags, self.attributes, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs

    def handle_data(self, data):
        self.text.append(data)


def test_hostile_text_from_the_trial_folders_comes_out_escaped(search_folder):
    """Labels, errors, settings and the search name are read from files a user may edit: the page
    shows them as text, and its only script is the report's own (the one the plugin's CSP allows)."""
    from metgan.viz.report import SCRIPT

    label = """<script>alert("label")</script> it's"""
    error = """ValueError: "quoted" '<img src=x onerror=alert(1)>'"""
    name = '</title><script>x()</script>'
    for trial_id, changes in {"a1b2c3": {"label": label, "overrides": {"g_lr": "<b>bold</b>"}},
                              "0789ab": {"error_summary": error}}.items():
        info_path = search_folder / trial_id / "trial.json"
        info_path.write_text(json.dumps({**json.loads(info_path.read_text()), **changes}))
    search = json.loads((search_folder / "search.json").read_text())
    (search_folder / "search.json").write_text(json.dumps({**search, "name": name}))

    page = Path(publish_report(search_folder)["report"]).read_text()

    assert re.findall(r"<script>(.*?)</script>", page, re.S) == [SCRIPT]
    parts = PageParts()
    parts.feed(page)
    assert parts.tags.count("script") == 1 and parts.tags.count("title") == 1 and "b" not in parts.tags
    assert "onerror" not in {key for key, _ in parts.attributes}
    text = "".join(parts.text)
    assert label in text and name in text and "<b>bold</b>" in text
    assert f"Failed at epoch 1/6: {error}" in text
    # the leaderboard's sort value: a quote in the label did not end the attribute
    assert ("data-value", label) in parts.attributes
