"""The README's configuration table lists every setting metgan reads, and nothing else."""

import re

from metgan.config import VARIABLES
from tests.conftest import REPO


def test_the_configuration_table_names_every_variable():
    text = (REPO / "README.md").read_text()
    table = text.split("## Configuration", 1)[1].split("\n\n", 2)[1]
    listed = set(re.findall(r"^\| `(METGAN_\w+)` \|", table, flags=re.M))
    assert listed == {v.name for v in VARIABLES}
