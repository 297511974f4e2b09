import json
import subprocess
import sys


def imported_packages(modules: str, packages: set[str]) -> list[str]:
    """Which of ``packages`` a fresh interpreter has imported after ``import <modules>``."""
    code = (f"import json, sys, {modules};"
            f"print(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}} & set({sorted(packages)!r}))))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def test_import_metgan_pulls_in_neither_tensorflow_nor_airflow():
    modules = "metgan, metgan.cli, metgan.db, metgan.config, metgan.errors"
    assert imported_packages(modules, {"tensorflow", "keras", "airflow"}) == []


def test_cli_help_lists_commands_and_user_errors_have_no_traceback():
    help_out = subprocess.run([sys.executable, "-m", "metgan", "--help"], capture_output=True, text=True)
    assert help_out.returncode == 0
    assert "db" in help_out.stdout
    bad = subprocess.run([sys.executable, "-m", "metgan", "db", "status"], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "METGAN_MET_RATE": "fast"})
    assert bad.returncode != 0
    assert "METGAN_MET_RATE" in bad.stderr
    assert "Traceback" not in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1


def test_the_met_parser_and_the_fake_met_import_no_database_driver():
    """metgan.db.columns is the parser's column schema; importing it runs no database code."""
    modules = "metgan.met.parse, metgan.db.columns, metgan.testing.fakemet"
    assert imported_packages(modules, {"sqlalchemy", "psycopg2", "pgserver"}) == []
    # the package's names still resolve on use
    names = subprocess.run([sys.executable, "-c", "from metgan.db import database_url, get_engine, migrate"],
                           capture_output=True, text=True)
    assert names.returncode == 0, names.stderr
