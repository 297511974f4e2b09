"""The one rule for names that become folder names: subsets and searches.

A name is used as ``<data_dir>/subsets/<name>`` and ``<results_dir>/<name>``, so it must be a
single, plain path segment: ASCII letters, digits, ``-`` and ``_``, starting with a letter or a
digit, at most 63 characters (well under every file system's segment limit, and short enough for
Airflow's run ids and asset URIs). Every entry point (CLI, DAG forms, library calls) validates
through :func:`check_name`; the DAG forms use :data:`NAME_PATTERN` as their JSON-schema pattern.
"""

from __future__ import annotations

import re

from metgan.errors import ConfigError

MAX_NAME_LENGTH = 63
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$"
_NAME = re.compile(NAME_PATTERN)


def check_name(name: object, kind: str = "name") -> str:
    """Return ``name`` when it is a valid folder name, else raise ConfigError naming ``kind``."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        shown = repr(name) if not isinstance(name, str) or len(name) <= 80 else repr(name[:80] + "...")
        raise ConfigError(f"{kind} {shown} must be 1 to {MAX_NAME_LENGTH} letters, digits, '-' or '_', "
                          "starting with a letter or digit")
    return name
