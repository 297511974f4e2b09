"""The docs cannot rot: every relative link and picture resolves, every ``metgan ...`` command they
show exists with the options they give it, and every ``METGAN_*`` setting they name is one metgan
reads (and the configuration page's table lists each of those exactly once)."""

from __future__ import annotations

import re
import shlex

import click
import pytest
from click.testing import CliRunner

from metgan.cli import cli
from metgan.config import VARIABLES
from tests.conftest import REPO

DOCS = sorted([REPO / "README.md", REPO / "SECURITY.md", REPO / "CHANGELOG.md", *(REPO / "docs").glob("*.md")])
DOC_IDS = [str(path.relative_to(REPO)) for path in DOCS]
# Variables the test harness reads, not metgan: named in docs/testing.md, each checked to still be read.
TEST_ONLY_VARIABLES = {"METGAN_TEST_SERVER": REPO / "tests" / "conftest.py"}

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
INLINE_CODE = re.compile(r"`[^`\n]+`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*$", re.M)
VARIABLE = re.compile(r"\bMETGAN_[A-Z0-9_]*[A-Z0-9]\b")


def prose(text: str) -> str:
    """The text outside code: a link inside a code block or span is an example, not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def anchors(path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces as hyphens."""
    found = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text())):
        words = re.sub(r"[^\w\- ]", "", heading.replace("`", "").strip().lower())
        found.add(words.replace(" ", "-"))
    return found


def test_the_docs_exist_and_the_readme_stays_short():
    assert {"README.md", "SECURITY.md", "CHANGELOG.md", "docs/benchmarks.md", "docs/cli.md",
            "docs/configuration.md", "docs/deploy.md", "docs/searching.md", "docs/testing.md"} <= set(DOC_IDS)
    assert len((REPO / "README.md").read_text().splitlines()) <= 260


@pytest.mark.parametrize("doc", DOCS, ids=DOC_IDS)
def test_every_relative_link_and_picture_resolves(doc):
    broken = []
    for target in LINK.findall(prose(doc.read_text())):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # https:, mailto:: not ours to check offline
            continue
        path_part, _, anchor = target.partition("#")
        resolved = (doc.parent / path_part).resolve() if path_part else doc
        if not resolved.exists():
            broken.append(f"{target}: no such file")
        elif anchor and resolved.suffix == ".md" and anchor not in anchors(resolved):
            broken.append(f"{target}: no heading #{anchor} in {resolved.name}")
    assert not broken, f"{doc.name}: " + "; ".join(broken)


def shown_commands(text: str) -> list[str]:
    """``metgan ...`` as the docs show it: lines of code blocks and inline code spans."""
    commands = []
    for block in FENCE.findall(text):
        for line in block.splitlines()[1:-1]:
            line = line.split(" #", 1)[0].strip().removeprefix("$ ")
            words = line.split()
            while words and re.match(r"^[A-Z_][A-Z0-9_]*=", words[0]):  # VAR=value metgan ...
                words.pop(0)
            if words[:1] == ["metgan"]:
                commands.append(" ".join(words))
    commands += [span.strip("`") for span in INLINE_CODE.findall(FENCE.sub("", text))
                 if span.startswith("`metgan ")]
    return commands


def resolve(command: str) -> tuple[list[str], list[str]]:
    """The subcommand path the words name, and the options the docs give that it does not take."""
    words = shlex.split(command)[1:]
    current, path, unknown = cli, [], []
    context = click.Context(cli)
    for word in words:
        if re.match(r"^--?[A-Za-z]", word):
            name = word.split("=", 1)[0]
            options = {opt for param in current.params for opt in (*param.opts, *param.secondary_opts)}
            if name not in options | {"-h", "--help"}:
                unknown.append(f"{name} (of {' '.join(['metgan', *path])})")
        elif isinstance(current, click.Group) and current.get_command(context, word) is not None:
            current = current.get_command(context, word)
            path.append(word)
    return path, unknown


def all_shown_commands() -> list[tuple[str, str]]:
    return [(str(doc.relative_to(REPO)), command) for doc in DOCS for command in shown_commands(doc.read_text())]


def test_the_docs_show_commands_at_all():
    shown = {command.split()[1] for _, command in all_shown_commands() if len(command.split()) > 1}
    assert {"ingest", "subset", "search", "generate", "walk", "fake-met", "db"} <= shown


@pytest.mark.parametrize(("doc", "command"), all_shown_commands())
def test_every_command_shown_is_real_with_the_options_shown(doc, command):
    path, unknown = resolve(command)
    positional = [word for word in shlex.split(command)[1:] if not word.startswith("-")]
    if positional:
        assert path[:1] == positional[:1], f"{doc}: `{command}` names no metgan command"
    assert not unknown, f"{doc}: `{command}` uses options metgan does not take: {', '.join(unknown)}"
    result = CliRunner().invoke(cli, [*path, "--help"], prog_name="metgan")
    assert result.exit_code == 0, f"{doc}: `metgan {' '.join(path)} --help` failed: {result.output}"
    assert "Usage: metgan" in result.output


def test_every_setting_named_is_one_metgan_reads():
    known = {variable.name for variable in VARIABLES}
    for name, reader in TEST_ONLY_VARIABLES.items():
        assert name in reader.read_text(), f"{reader} no longer reads {name}"
    named = {(str(doc.relative_to(REPO)), name) for doc in DOCS for name in VARIABLE.findall(doc.read_text())}
    unknown = sorted((doc, name) for doc, name in named if name not in known | set(TEST_ONLY_VARIABLES))
    assert not unknown, f"settings metgan does not read: {unknown}"


def test_the_configuration_table_lists_every_setting_once():
    text = (REPO / "docs" / "configuration.md").read_text()
    rows = re.findall(r"^\| `(METGAN_\w+)` \|", text, flags=re.M)
    assert sorted(rows) == sorted(variable.name for variable in VARIABLES)


def grid_files() -> list[tuple[str, str]]:
    return [(str(doc.relative_to(REPO)), block) for doc in DOCS
            for block in re.findall(r"^```yaml\n(.*?)^```", doc.read_text(), flags=re.M | re.S)]


@pytest.mark.parametrize(("doc", "text"), grid_files())
def test_every_grid_file_shown_loads(doc, text, tmp_path):
    from metgan.gan.param_grid import expand_grid, load_grid_file

    path = tmp_path / "grid.yaml"
    path.write_text(text)
    spec = load_grid_file(path)  # a file the docs show must not be refused
    if not spec["strategy"].get("n_iter"):
        assert expand_grid(spec["grid"]), f"{doc}: the grid has no trial"
