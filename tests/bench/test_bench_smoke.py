"""Every benchmark still runs: each bench/ script's quick mode (tiny sizes, seconds) exits 0 and
ends with its ``speedup:`` line. The numbers are not checked: on a shared machine they are noise,
and docs/benchmarks.md holds the measured ones. gpu_check.sh has no baseline and needs a GPU for
its real run; here it must say plainly that it has none, and run to its end on the CPU when told to.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

BENCH = REPO / "bench"
PYTHON_BENCHMARKS = sorted(path.name for path in BENCH.glob("*.py"))
# first_session.py measures quality, not speed: its baseline is the data's own floor.
SPEEDUP = re.compile(r"^(speedup: (\d+(\.\d+)?x|not reached)|best/floor: \d+\.\d+x)", re.M)


def bench_env(**extra: str) -> dict[str, str]:
    """The caller's environment without any METGAN_* setting (the tests' database included): each
    benchmark makes and drops its own database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("METGAN_")}
    env.update(TF_CPP_MIN_LOG_LEVEL="2", **extra)
    return env


def run(command: list[str], timeout: int = 300, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=REPO, env=bench_env(**extra), capture_output=True, text=True,
                          timeout=timeout)


def test_every_benchmark_is_smoke_tested():
    """A new bench/*.py is picked up by the parametrised test below; any other kind of script needs
    a test of its own here."""
    assert {"ingest.py", "resize.py", "render.py", "csv_import.py", "train.py", "search.py", "storage.py",
            "quality.py", "bf16_cpu.py", "first_session.py"} <= set(PYTHON_BENCHMARKS)
    others = {path.name for path in BENCH.iterdir() if path.is_file() and path.suffix != ".py"}
    assert others == {"gpu_check.sh"}


@pytest.mark.parametrize("script", PYTHON_BENCHMARKS)
def test_quick_mode_runs_to_its_speedup_line(script, tmp_path):
    extra = ["--out", str(tmp_path / "out")] if script == "quality.py" else []
    if script == "first_session.py":  # with a candidate default in the form's Base settings
        extra = ["--root", str(tmp_path / "session"), "--base", '{"seed": 7}']
    # the first session runs three DAGs through Airflow, a 110 s search among them
    result = run([sys.executable, str(BENCH / script), "--quick", *extra],
                 timeout=900 if script == "first_session.py" else 300)
    assert result.returncode == 0, f"{script} --quick failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    assert SPEEDUP.search(result.stdout), f"{script} printed no speedup line:\n{result.stdout[-3000:]}"
    if script == "first_session.py":
        assert 'but Base settings {"seed": 7}' in result.stdout
        configs = list((tmp_path / "session" / "results" / "vases-search").glob("*/config.json"))
        assert configs and all(json.loads(path.read_text())["seed"] == 7 for path in configs)


def test_gpu_check_is_valid_bash():
    result = subprocess.run(["bash", "-n", str(BENCH / "gpu_check.sh")], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_gpu_check_says_plainly_that_there_is_no_gpu():
    result = run(["bash", str(BENCH / "gpu_check.sh"), "--quick"], CUDA_VISIBLE_DEVICES="-1")
    assert result.returncode == 2, result.stdout[-2000:] + result.stderr[-2000:]
    assert "no GPU visible to TensorFlow" in result.stderr
    assert "GPUs seen: none" in result.stdout


def test_gpu_check_runs_to_its_end_on_the_cpu_when_told_to():
    result = run(["bash", str(BENCH / "gpu_check.sh"), "--quick"], CUDA_VISIBLE_DEVICES="-1", REQUIRE_GPU="0")
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert re.search(r"^default 32x40: images/s \d", result.stdout, re.M)
    assert re.search(r"^fastgan 32x40: images/s \d", result.stdout, re.M)
    assert re.search(r"^r3gan-gpu 32x40: images/s \d", result.stdout, re.M)
    assert "gpu check: 3 of 3 trials completed" in result.stdout


def test_gpu_check_refuses_an_unknown_argument():
    result = run(["bash", str(BENCH / "gpu_check.sh"), "--fast"])
    assert result.returncode == 1 and "usage: bash bench/gpu_check.sh [--quick]" in result.stderr
