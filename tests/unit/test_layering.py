"""Which package may import which, read from the source (ast), so an import added in a function
body counts as much as one at the top of a file."""

from __future__ import annotations

import ast
import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "metgan"
PRODUCT = ("met", "images", "gan", "viz", "db", "pipeline")  # a package or a module (pipeline.py)


def imported_modules(path: Path, package: str | None = None) -> set[str]:
    """Every module ``path`` imports, absolute (``from . import x`` resolved against ``package``,
    by default the package the file sits in)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    if package is None:
        package = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level:
                base = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                module = f"{base}.{module}" if module else base
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def imports_from(subpackage: str, forbidden: str) -> list[str]:
    """``file: module`` for each import of ``forbidden`` (or below it) in ``metgan/<subpackage>``."""
    hits = []
    module_file = PACKAGE / f"{subpackage}.py"
    paths = [module_file] if module_file.is_file() else sorted((PACKAGE / subpackage).rglob("*.py"))
    assert paths, f"metgan/{subpackage} not found: the layering checks would pass by looking at nothing"
    for path in paths:
        for module in sorted(imported_modules(path)):
            if module == forbidden or module.startswith(forbidden + "."):
                hits.append(f"{path.relative_to(PACKAGE.parent)}: {module}")
    return hits


def test_the_checker_sees_imports_in_function_bodies_and_relative_ones(tmp_path):
    source = tmp_path / "probe.py"
    source.write_text("import json\n\ndef f():\n    from metgan.testing.fakemet import run_in_thread\n"
                      "    from ..images import selection\n")
    found = imported_modules(source, package="metgan.met")
    assert {"json", "metgan.testing.fakemet", "metgan.images.selection"} <= found


def test_no_product_package_imports_the_test_scaffolding():
    hits = [hit for package in PRODUCT for hit in imports_from(package, "metgan.testing")]
    assert hits == [], "production code must not depend on metgan.testing (the fake Met):\n" + "\n".join(hits)


def test_met_and_images_do_not_import_each_other():
    # Downloading from the Met's CDN is Met logic; images/ is local processing and subsets. What
    # needs both (targeted scraping: a subset's candidates -> a scrape run) lives in metgan.pipeline.
    hits = imports_from("met", "metgan.images") + imports_from("images", "metgan.met")
    assert hits == [], "metgan.met and metgan.images must not import each other:\n" + "\n".join(hits)


def test_no_product_package_imports_the_pipeline_that_imports_it():
    hits = [hit for package in PRODUCT for hit in imports_from(package, "metgan.pipeline")]
    assert hits == [], "metgan.pipeline imports the domain packages, so they must not import it:\n" + "\n".join(hits)


def test_the_checker_reads_single_module_packages_too():
    # pipeline is metgan/pipeline.py, not a folder: rglob on a missing folder would find nothing and pass.
    assert any(module.startswith("metgan.") for module in imported_modules(PACKAGE / "pipeline.py"))
    assert imports_from("pipeline", "metgan.images") != []


def test_the_test_scaffolding_lives_in_metgan_testing_only():
    # One drawer, one trial-folder writer: the product keeps no copy (viz/synthetic.py was one).
    assert not (PACKAGE / "viz" / "synthetic.py").exists()
    hits = [hit for package in PRODUCT for hit in imports_from(package, "metgan.viz.synthetic")]
    assert hits == []


def test_store_imports_no_domain_package():
    # db/ is the bottom layer: repositories per domain on an injected engine. The domains call
    # it, never the reverse (that would be a cycle, and a repository reaching for settings, images
    # or training). The met_objects column schema the parser fills lives here too (db/columns.py).
    hits = [hit for package in ("met", "images", "gan", "viz", "pipeline", "pipeline_commands", "demo")
            for hit in imports_from("db", f"metgan.{package}")]
    assert hits == [], "metgan.db must not import a domain package:\n" + "\n".join(hits)


def test_no_module_keeps_a_private_engine_helper():
    # One way to reach the database: the entry point calls metgan.db.get_engine once and
    # passes the engine down; private _engine() helpers were several ways to do the same.
    hits = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        hits += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}" for node in ast.walk(tree)
                 if isinstance(node, ast.FunctionDef) and node.name == "_engine"]
    assert hits == [], "get the engine at the entry point instead of a private helper:\n" + "\n".join(hits)


def test_training_never_imports_the_presentation():
    # gan/ trains and records; viz/ renders and reports what gan/ wrote. Publishing a search needs
    # both, so it is a pipeline step (metgan.pipeline.publish_search), not a gan function.
    assert imports_from("gan", "metgan.viz") == []


# What runs SQL: the driver's calls on a connection or cursor, and SQLAlchemy's text() (only
# when imported from sqlalchemy: PIL's draw.text and a local text() are no SQL).
_SQL_METHODS = {"execute", "executemany", "exec_driver_sql", "copy_expert", "copy_from", "raw_connection"}
_SQL_FUNCTIONS = {"text", "execute_values", "execute_batch"}


def sql_calls(path: Path) -> list[str]:
    """``line name`` for each call in ``path`` that runs SQL or builds it with sqlalchemy's text()."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    from_driver = {alias.asname or alias.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
                   and (node.module or "").split(".")[0] in ("sqlalchemy", "psycopg2")
                   for alias in node.names if alias.name in _SQL_FUNCTIONS}
    hits = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and (
                func.attr in _SQL_METHODS
                or func.attr in _SQL_FUNCTIONS and isinstance(func.value, ast.Name)
                and func.value.id in ("sqlalchemy", "extras", "psycopg2")):
            hits.append(f"{node.lineno} {func.attr}()")
        elif isinstance(func, ast.Name) and func.id in from_driver:
            hits.append(f"{node.lineno} {func.id}()")
    return sorted(hits, key=lambda hit: int(hit.split()[0]))


def test_the_sql_checker_sees_sqlalchemy_and_driver_calls(tmp_path):
    probe = tmp_path / "probe.py"
    probe.write_text("import sqlalchemy\nfrom psycopg2.extras import execute_values as ev\n"
                     "from sqlalchemy import text\n\ndef f(engine, cursor, draw):\n"
                     "    with engine.connect() as conn:\n        conn.execute(text('SELECT 1'))\n"
                     "    cursor.execute('SELECT 1')\n    engine.raw_connection()\n"
                     "    ev(cursor, 'INSERT', [])\n    sqlalchemy.text('SELECT 1')\n"
                     "    draw.text((0, 0), 'label')\n")
    assert [hit.split(" ", 1)[1] for hit in sql_calls(probe)] == [
        "execute()", "text()", "execute()", "raw_connection()", "ev()", "text()"]
    plain = tmp_path / "plain.py"
    plain.write_text("def text(value):\n    return str(value)\n\ntext(1)\n")
    assert sql_calls(plain) == []


def test_only_the_store_runs_sql():
    # One database access style: the repositories under metgan/db/ hold every statement and
    # take an injected engine; the domains, the pipeline, the CLI, the DAGs and the plugin call them.
    roots = [PACKAGE, PACKAGE.parent / "dags", PACKAGE.parent / "plugins"]
    paths = [path for root in roots for path in sorted(root.rglob("*.py"))
             if not path.is_relative_to(PACKAGE / "db")]
    assert len(paths) > 30, "the SQL check would pass by looking at nothing"
    hits = [f"{path.relative_to(PACKAGE.parent)}:{hit}" for path in paths for hit in sql_calls(path)]
    assert hits == [], "SQL outside metgan/db/ (move it into a repository there):\n" + "\n".join(hits)


# The functions of metgan.trialdir that read or write a search's record: search.json and trial.json.
_RECORD_CALLS = {"read_trial_info", "write_trial_info", "read_search", "write_search", "record_rung",
                 "record_rung_outcome", "pending_trial_info"}
# metgan.gan.search_record answers every question about a search; the trainer writes its own trial's
# progress and outcome, the planner and halving write the plan and the rung decisions, and viz's
# trial reader loads the folder it renders. Nothing else touches the records.
_RECORD_MODULES = {"metgan/gan/search_record.py", "metgan/trialdir.py", "metgan/gan/trial.py", "metgan/gan/callbacks.py",
                   "metgan/gan/search.py", "metgan/viz/trial.py"}


def record_calls(path: Path) -> list[str]:
    """``line name`` for each call of a search-record function of metgan.trialdir in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    return [f"{node.lineno} {node.func.attr}()" for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in _RECORD_CALLS and isinstance(node.func.value, ast.Name)
            and node.func.value.id == "trialdir"]


def test_only_the_search_record_and_its_writers_touch_trial_and_search_records():
    roots = [PACKAGE, PACKAGE.parent / "dags", PACKAGE.parent / "plugins"]
    paths = [path for root in roots for path in sorted(root.rglob("*.py"))
             if not path.is_relative_to(PACKAGE / "testing")
             and path.relative_to(PACKAGE.parent).as_posix() not in _RECORD_MODULES]
    assert len(paths) > 30, "the record check would pass by looking at nothing"
    assert record_calls(PACKAGE / "gan" / "search_record.py"), "the checker sees no record call in the record's owner"
    hits = [f"{path.relative_to(PACKAGE.parent)}:{hit}" for path in paths for hit in record_calls(path)]
    assert hits == [], ("read search.json and trial.json through metgan.gan.search_record (status, label, "
                        "ranking, best snapshot):\n" + "\n".join(hits))


def package_graph() -> dict[str, set[str]]:
    """Which of metgan's top-level packages and modules imports which (metgan.testing left out:
    it may import anything)."""
    graph: dict[str, set[str]] = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if len(parts) < 2 or parts[1] == "testing":
            continue
        for module in imported_modules(path):
            target = module.split(".")
            if target[0] != "metgan" or len(target) < 2 or target[1] in (parts[1], "testing"):
                continue
            graph.setdefault(parts[1], set()).add(target[1])
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one node (Tarjan): each is an import cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
            if len(group) > 1:
                found.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_two_packages_import_each_other():
    # A cycle (the search record outside gan/ importing gan's verdict while gan imported the
    # record) means neither side can be read, tested or moved alone.
    graph = package_graph()
    assert {"gan", "viz", "db", "pipeline"} <= set(graph), "the graph would pass by seeing nothing"
    assert cycles(graph) == [], f"import cycles between metgan's packages: {cycles(graph)}"


def test_assets_are_defined_once_and_only_dags_use_them():
    # The URIs that connect the DAGs live in metgan/assets.py: a DAG spelling one itself could
    # drift from the DAG that consumes it and nothing would run.
    roots = [PACKAGE, PACKAGE.parent / "dags", PACKAGE.parent / "plugins"]
    made = []
    for path in (path for root in roots for path in sorted(root.rglob("*.py")) if path != PACKAGE / "assets.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        made += [f"{path.relative_to(PACKAGE.parent)}:{node.lineno}" for node in ast.walk(tree)
                 if isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                 and node.func.id in ("Asset", "AssetAlias")]
    assert made == [], "define assets in metgan/assets.py:\n" + "\n".join(made)
    users = [path.name for path in sorted((PACKAGE.parent / "dags").glob("*.py"))
             if "metgan.assets" in imported_modules(path, package="dags")]
    assert len(users) == 4, users
    # The library below the DAGs imports no Airflow: `import metgan` stays light.
    hits = [hit for package in PRODUCT for hit in imports_from(package, "airflow")]
    hits += [hit for package in PRODUCT for hit in imports_from(package, "metgan.assets")]
    assert hits == [], "\n".join(hits)


def test_every_size_printed_is_width_x_height():
    # The subset form, the CLI's --size and the README write sizes as width x height; a size
    # printed the other way round (the SWD levels, bench tables, errors once did) gets swapped by a reader.
    height_first = re.compile(r"\{[^{}]*height[^{}]*\}x\{[^{}]*width[^{}]*\}")
    roots = [PACKAGE, PACKAGE.parent / "dags", PACKAGE.parent / "plugins", PACKAGE.parent / "bench"]
    paths = [path for root in roots for path in sorted(root.rglob("*")) if path.suffix in (".py", ".sh", ".j2")]
    assert height_first.search('f"{config.height}x{config.width}"'), "the pattern would catch nothing"
    hits = [f"{path.relative_to(PACKAGE.parent)}:{number}" for path in paths
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
            if height_first.search(line)]
    assert hits == [], "print sizes as {width}x{height}:\n" + "\n".join(hits)


def test_no_module_is_over_600_lines():
    # A module past this does several jobs; split it by job (gan/search.py and images/resize.py were).
    long = [f"{path.relative_to(PACKAGE.parent)}: {count}" for path in sorted(PACKAGE.rglob("*.py"))
            if (count := len(path.read_text(encoding="utf-8").splitlines())) > 600]
    assert long == [], "\n".join(long)
