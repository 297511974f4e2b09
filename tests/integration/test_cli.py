"""The CLI mirrors the pipeline: each command reaches the library, user mistakes are one line."""

import subprocess
import sys


def metgan(*args, env=None):
    import os

    return subprocess.run([sys.executable, "-m", "metgan", *args], capture_output=True, text=True, timeout=300,
                          env={**os.environ, **(env or {})})


def test_every_command_has_help():
    top = metgan("--help")
    assert top.returncode == 0
    for command in ("db", "fake-met", "ingest", "import-csv", "subset", "train", "search", "render", "report"):
        assert command in top.stdout, command
        result = metgan(command, "--help")
        assert result.returncode == 0 and "Usage:" in result.stdout, (command, result.stderr)


def test_targeted_ingest_without_imported_metadata_is_one_clear_line(db):
    result = metgan("ingest", "--mode", "targeted")
    assert result.returncode != 0
    assert "import the Open Access CSV first" in result.stderr
    assert "Traceback" not in result.stderr


def test_unknown_subset_is_one_clear_line(db):
    result = metgan("subset", "show", "no-such-subset")
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert "no-such-subset" in result.stderr
