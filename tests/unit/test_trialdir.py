"""metgan.trialdir: the one owner of the trial and search folders' files."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from metgan import trialdir
from metgan.errors import TrialFolderError


def test_a_crash_mid_write_leaves_the_old_file_and_no_temp_file(tmp_path):
    path = tmp_path / "trial.json"
    trialdir.write_json_atomic(path, {"status": "running"})
    with pytest.raises(RuntimeError, match="killed"), trialdir.atomic_path(path) as temp:
        temp.write_text('{"status": "compl')  # half a file, then the writer dies
        raise RuntimeError("killed")
    assert json.loads(path.read_text()) == {"status": "running"}
    assert [p.name for p in tmp_path.iterdir()] == ["trial.json"]


def test_a_killed_writer_process_leaves_the_old_file(tmp_path):
    path = tmp_path / "search.json"
    trialdir.write_search(tmp_path, trialdir.SearchRecord(name="s", trials=["a"]))
    code = ("import os, sys; from metgan import trialdir\n"
            "with trialdir.atomic_path(trialdir.Path(sys.argv[1])) as temp:\n"
            "    temp.write_text('{\"name\": \"half')\n"
            "    os._exit(9)\n")
    assert subprocess.run([sys.executable, "-c", code, str(path)], timeout=60).returncode == 9
    assert trialdir.read_search(tmp_path) == {"name": "s", "trials": ["a"]}


def test_atomic_files_keep_the_umask_mode_not_a_private_temp_mode(tmp_path):
    path = trialdir.write_text_atomic(tmp_path / "report.html", "<p>hi</p>")
    umask = os.umask(0)
    os.umask(umask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask


def test_each_record_round_trips(tmp_path):
    trial = tmp_path / "search" / "t1"
    trial.mkdir(parents=True)
    config = {"preset": "default", "epochs": 3, "g_lr": 0.0005}
    trialdir.write_config(trial, config)
    assert trialdir.read_config(trial) == config

    info = trialdir.pending_trial_info(search_name="search", trial_id="t1", epochs=3, overrides={"g_lr": 0.0005},
                                       label="g_lr=0.0005")
    info.update(status="stopped", stop_reason="collapsed", stop_detail="flat for 3 epochs", wall_s=1.5)
    trialdir.write_trial_info(trial, info)
    assert trialdir.read_trial_info(trial) == info

    search = trialdir.SearchRecord(name="search", subset="vases", grid={"g_lr": [1e-4, 5e-4]}, base={},
                                   objective="swd", direction="min", created_at=trialdir.utc_now(), trials=["t1"],
                                   airflow=trialdir.AirflowLink(dag_id="gan_search", run_id="manual__1"))
    trialdir.write_search(trial.parent, search)
    assert trialdir.read_search(trial.parent) == search

    lines = [trialdir.MetricsLine(epoch=e, d_loss=0.5 + e, swd=None if e % 2 else 3.0, swd_levels={"32x40": 1.0},
                                  wall_s=e * 2.0) for e in (1, 2, 3)]
    for line in lines:
        trialdir.append_metrics(trial, line)
    assert trialdir.read_metrics(trial) == lines
    trialdir.truncate_metrics(trial, 2)
    assert trialdir.read_metrics(trial) == lines[:2]

    meta = trialdir.CheckpointMeta(epoch=2, rng_state=[1, 2, 3], wall_s=4.0, best_metrics={"swd": 3.0})
    trialdir.checkpoint_paths(trial, 2)[0].parent.mkdir()
    trialdir.checkpoint_paths(trial, 2)[0].write_bytes(b"weights")
    trialdir.write_checkpoint_meta(trial, meta)
    assert trialdir.read_checkpoint_meta(trial, 2) == meta and trialdir.checkpoint_epochs(trial) == [2]


def test_a_checkpoint_without_its_weights_file_does_not_count(tmp_path):
    trialdir.checkpoint_paths(tmp_path, 1)[0].parent.mkdir()
    trialdir.write_checkpoint_meta(tmp_path, trialdir.CheckpointMeta(epoch=1, rng_state=[0]))
    assert trialdir.checkpoint_epochs(tmp_path) == []


@pytest.mark.parametrize(("text", "words"), [
    ("[1, 2, 3]", "holds list, expected a JSON object"),
    ('"just a string"', "holds str, expected a JSON object"),
    ('{"status": "runn', "is not readable JSON"),
])
def test_a_malformed_or_non_object_file_is_a_clear_error_naming_it(tmp_path, text, words):
    (tmp_path / "trial.json").write_text(text)
    with pytest.raises(TrialFolderError, match=words) as error:
        trialdir.read_trial_info(tmp_path)
    assert str(tmp_path / "trial.json") in str(error.value) and "\n" not in str(error.value)


def test_a_missing_file_is_none_and_a_torn_metrics_line_is_skipped(tmp_path, caplog):
    assert trialdir.read_trial_info(tmp_path) is None and trialdir.read_search(tmp_path) is None
    assert trialdir.read_metrics(tmp_path) == []
    (tmp_path / "metrics.jsonl").write_text('{"epoch": 1, "swd": 2.0}\n[3]\n{"epoch": true}\n{"epoch": 2, "sw')
    assert trialdir.read_metrics(tmp_path) == [{"epoch": 1, "swd": 2.0}]
    assert "line 4 is not JSON" in caplog.text


def test_trialdir_imports_neither_tensorflow_nor_airflow():
    code = ("import json, sys, metgan.trialdir;"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
            "('tensorflow', 'keras', 'airflow'))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120)
    assert json.loads(out.stdout) == []
