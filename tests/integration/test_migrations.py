import shutil
import subprocess
import sys

import pytest
from sqlalchemy import create_engine, text

from metgan.db import migrations
from metgan.errors import MigrationError
from tests.conftest import create_database, drop_database

EXPECTED_TABLES = {
    "met_objects", "met_constituents", "met_tags", "met_images", "scrape_runs", "csv_imports",
    "csv_import_errors", "subsets", "subset_images", "searches", "trials", "trial_epochs",
}


@pytest.fixture
def fresh_url(pg_admin_url):
    url = create_database(pg_admin_url, prefix="metgan_migrate")
    yield url
    drop_database(pg_admin_url, url)


def _engine(url):
    return create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))


def test_fresh_database_then_second_run_is_a_no_op(fresh_url):
    engine = _engine(fresh_url)
    applied = migrations.migrate(engine)
    assert applied == [m.path.name for m in migrations.discover()]
    with engine.connect() as conn:
        tables = set(conn.execute(text(
            "SELECT tablename FROM pg_tables WHERE schemaname='public'")).scalars())
        recorded = conn.execute(text("SELECT count(*) FROM schema_migrations")).scalar_one()
    assert EXPECTED_TABLES <= tables
    assert recorded == len(applied)
    assert migrations.migrate(engine) == []
    assert all(s.applied and not s.changed for s in migrations.status(engine))
    engine.dispose()


def test_two_runners_at_once_apply_each_migration_once(fresh_url):
    code = ("import sys; from metgan.db import migrations; from sqlalchemy import create_engine;"
            "e = create_engine(sys.argv[1].replace('postgresql://', 'postgresql+psycopg2://', 1));"
            "print(len(migrations.migrate(e)))")
    procs = [subprocess.Popen([sys.executable, "-c", code, fresh_url], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [r[1] for r in results]
    counts = sorted(int(out) for out, _ in results)
    assert counts == [0, len(migrations.discover())]
    engine = _engine(fresh_url)
    with engine.connect() as conn:
        rows = conn.execute(text("SELECT version, count(*) FROM schema_migrations GROUP BY version")).all()
    assert all(count == 1 for _, count in rows) and len(rows) == len(migrations.discover())
    engine.dispose()


def test_an_edited_applied_migration_is_refused(fresh_url, tmp_path):
    sql_dir = tmp_path / "sql"
    shutil.copytree(migrations.SQL_DIR, sql_dir, ignore=shutil.ignore_patterns("queries"))
    engine = _engine(fresh_url)
    migrations.migrate(engine, sql_dir)
    first = sorted(sql_dir.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- an innocent-looking edit\n")
    with pytest.raises(MigrationError, match=f"{first.name} was changed after it was applied"):
        migrations.migrate(engine, sql_dir)
    assert [s.changed for s in migrations.status(engine, sql_dir)][0] is True
    engine.dispose()


def test_a_failing_migration_leaves_nothing_behind(fresh_url, tmp_path):
    sql_dir = tmp_path / "sql"
    sql_dir.mkdir()
    (sql_dir / "0001_good.sql").write_text("CREATE TABLE good (id int);")
    (sql_dir / "0002_bad.sql").write_text("CREATE TABLE half (id int); SELECT * FROM no_such_table;")
    engine = _engine(fresh_url)
    with pytest.raises(MigrationError, match="0002_bad.sql failed"):
        migrations.migrate(engine, sql_dir)
    with engine.connect() as conn:
        assert conn.execute(text("SELECT to_regclass('half')")).scalar() is None
        assert conn.execute(text("SELECT array_agg(version) FROM schema_migrations")).scalar() == [1]
    engine.dispose()


def test_misnamed_migration_file_is_an_error(tmp_path):
    (tmp_path / "1_init.sql").write_text("SELECT 1;")
    with pytest.raises(MigrationError, match="NNNN_lower_case_name"):
        migrations.discover(tmp_path)


def test_migrate_can_create_a_missing_database(pg_admin_url):
    import os
    import uuid

    from sqlalchemy.engine import make_url

    url = make_url(pg_admin_url).set(database=f"metgan_created_{uuid.uuid4().hex[:8]}").render_as_string(
        hide_password=False)
    env = {**{k: v for k, v in os.environ.items() if not k.startswith("METGAN_")}, "METGAN_DATABASE_URL": url}
    try:
        first = subprocess.run([sys.executable, "-m", "metgan", "db", "migrate", "--create-database"],
                               env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        assert "created the database" in first.stdout and "applied 0001" in first.stdout
        again = subprocess.run([sys.executable, "-m", "metgan", "db", "migrate", "--create-database"],
                               env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0 and "created" not in again.stdout
    finally:
        drop_database(pg_admin_url, url)


# --- sql/0040: the lists' references to met_objects, checked per statement ----------------------


def test_lists_must_name_an_existing_object_and_go_with_it(db):
    from sqlalchemy.exc import DBAPIError, IntegrityError

    with db.begin() as conn:
        conn.execute(text("INSERT INTO met_objects (object_id) VALUES (1), (2)"))
        conn.execute(text("INSERT INTO met_constituents (object_id, seq, name) VALUES (1, 0, 'a'), (2, 0, 'b')"))
        conn.execute(text("INSERT INTO met_tags (object_id, seq, term) VALUES (1, 0, 'x'), (2, 0, 'y')"))

    # a row naming an absent object is refused, and the statement's other rows with it
    for sql in ("INSERT INTO met_constituents (object_id, seq, name) VALUES (1, 1, 'ok'), (99, 0, 'orphan')",
                "INSERT INTO met_tags (object_id, seq, term) VALUES (99, 0, 'orphan')",
                "UPDATE met_tags SET object_id = 98 WHERE object_id = 2"):
        with pytest.raises(IntegrityError, match=r"object_id 9[89] absent from met_objects"), db.begin() as conn:
            conn.execute(text(sql))
    with pytest.raises(DBAPIError, match="object_id of met_objects cannot change"), db.begin() as conn:
        conn.execute(text("UPDATE met_objects SET object_id = 3 WHERE object_id = 2"))

    def lists(conn):
        return (conn.execute(text("SELECT object_id, name FROM met_constituents ORDER BY 1")).all(),
                conn.execute(text("SELECT object_id, term FROM met_tags ORDER BY 1")).all())

    with db.begin() as conn:
        assert lists(conn) == ([(1, "a"), (2, "b")], [(1, "x"), (2, "y")])
        conn.execute(text("DELETE FROM met_objects WHERE object_id = 1"))  # its lists go with it
        assert lists(conn) == ([(2, "b")], [(2, "y")])
        conn.execute(text("TRUNCATE met_objects CASCADE"))
        assert lists(conn) == ([], [])


# --- sql/0050: the selection rule is a named query, not a schema function ----------------------

def test_the_selection_rule_is_no_schema_function_after_migrating(fresh_url):
    """0020 put the subset rule in a function, so changing it needed a migration; 0050 drops it
    and the rule lives in sql/queries/subset_candidates.sql only."""
    engine = _engine(fresh_url)
    migrations.migrate(engine)
    with engine.connect() as conn:
        function = conn.execute(text(
            "SELECT to_regprocedure('subset_candidates(text[], text[], text[], boolean)')")).scalar_one()
    engine.dispose()
    assert function is None


def test_a_search_never_migrates_the_schema_itself(fresh_url, monkeypatch, tmp_path):
    """Only `metgan db migrate` migrates: a search against an unmigrated database gets the
    store's one-line error and leaves the database as it was (it used to migrate on its own)."""
    from metgan.config import get_settings
    from metgan.errors import DatabaseError
    from metgan.gan import search
    from tests.gan_support import TINY, make_subset

    monkeypatch.setenv("METGAN_DATABASE_URL", fresh_url)
    monkeypatch.setenv("METGAN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("METGAN_RESULTS_DIR", str(tmp_path / "results"))
    make_subset(tmp_path / "data" / "subsets" / "vases", count=16)
    # planning writes the search's index rows (the leaderboard reads the folders, not the database)
    with pytest.raises(DatabaseError, match=r"has no metgan schema; run `metgan db migrate`"):
        search.plan_trials("tiny", {}, subset="vases", base=TINY, settings=get_settings())
    engine = _engine(fresh_url)
    with engine.connect() as conn:
        tables = conn.execute(text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")).scalar_one()
    engine.dispose()
    assert tables == 0
