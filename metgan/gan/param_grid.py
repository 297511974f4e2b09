"""The hyper-parameter grid of a search (not an image grid: those are :mod:`metgan.viz.grids`).

A grid follows scikit-learn's ``ParameterGrid``: a dict of lists (every combination) or a list
of such dicts (the union, so meaningless combinations can be left out); a scalar stands for a
one-value list. Each combination is laid over ``base`` (which may name a ``preset``), resolved
to a :class:`~metgan.gan.config.GanConfig` and validated; the whole grid is checked before any
trial is written, and the first bad combination is named in the error. A grid file (YAML or
JSON) may hold the grid alone, or the grid with its base, objective and strategy keys.

Pure Python (no TensorFlow import): Airflow parses the DAG and plans cheaply.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path
from typing import Any

from metgan.errors import GanConfigError
from metgan.gan.config import GanConfig
from metgan.gan.strategy import STRATEGY_KEYS, Strategy, has_distributions, sample

# Airflow maps a task over at most ``[core] max_map_length`` (1,024 by default) items, and a grid
# of more trials is a typo far more often than a plan: the CLI, the DAG and the library all plan
# through expand_grid, which refuses more than this before building a single combination.
MAX_TRIALS = 1024


def load_grid_file(path: Path | str) -> dict:
    """Read a grid file (YAML or JSON).

    The file is either the grid itself (a dict of lists, or a list of them), or a dict with a
    ``grid`` key and optional ``base``, ``objective``, ``direction``. Returns that second form.
    """
    path = Path(path)
    data = read_yaml_file(path, "grid file")
    top_level = ("grid", "base", "objective", "direction", *STRATEGY_KEYS)
    if isinstance(data, dict) and "grid" in data:
        unknown = set(data) - set(top_level)
        if unknown:
            raise GanConfigError(f"grid file {path} has unknown top-level key {sorted(map(str, unknown))[0]!r}; "
                                 f"valid: {', '.join(top_level)}")
        base = data.get("base") or {}
        if not isinstance(base, dict):
            raise GanConfigError(f"grid file {path}: 'base' must be a mapping of GAN config keys "
                                 f"(e.g. base: {{epochs: 5}}); got {type(base).__name__}")
        spec = {"grid": data["grid"], "base": base,
                "objective": data.get("objective", "swd"), "direction": data.get("direction", "min"),
                "strategy": {key: data[key] for key in STRATEGY_KEYS if key in data}}
    else:
        spec = {"grid": data, "base": {}, "objective": "swd", "direction": "min", "strategy": {}}
    try:
        strategy = Strategy.from_dict(spec["strategy"])
        candidates(spec["grid"], strategy)  # a malformed grid is named with its file here, not later
    except GanConfigError as exc:
        raise GanConfigError(f"grid file {path}: {exc}") from None
    return spec


def read_yaml_file(path: Path, what: str):
    """The YAML/JSON content of a file the user named, or one line saying why it cannot be read."""
    import yaml

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise GanConfigError(f"{what} {path} does not exist") from None
    except IsADirectoryError:
        raise GanConfigError(f"{what} {path} is a folder; name a YAML or JSON file") from None
    except UnicodeDecodeError:
        raise GanConfigError(f"{what} {path} is not a text file; name a YAML or JSON file") from None
    except OSError as exc:
        raise GanConfigError(f"{what} {path} cannot be read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GanConfigError(f"{what} {path} is not valid YAML/JSON: {_yaml_problem(exc)}") from None


def _yaml_problem(exc) -> str:
    """PyYAML's message on one line: the problem and where ("expected ',' or ']' (line 1, column 3)")."""
    problem = getattr(exc, "problem", None)
    mark = getattr(exc, "problem_mark", None)
    if problem and mark is not None:
        return f"{problem} (line {mark.line + 1}, column {mark.column + 1})"
    return str(exc).splitlines()[0] if str(exc).strip() else type(exc).__name__


def parse_grid_text(text: str):
    import yaml

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise GanConfigError(f"grid text is not valid YAML/JSON: {_yaml_problem(exc)}") from None


def grid_parts(grid) -> list[tuple[list[str], list[list]]]:
    """Each part of the grid as (sorted keys, the values of each key), checked but not combined."""
    if isinstance(grid, str):
        grid = parse_grid_text(grid)
    if grid is None or grid == {}:
        return [([], [])]
    if isinstance(grid, dict):
        grid = [grid]
    if not isinstance(grid, list) or not all(isinstance(part, dict) for part in grid):
        raise GanConfigError("a grid must be a dict of lists or a list of such dicts")
    parts = []
    for part in grid:
        keys = sorted(part, key=str)
        values = []
        for key in keys:
            value = part[key]
            if isinstance(value, list) and key != "diffaugment":
                if not value:
                    raise GanConfigError(f"grid key {key!r} has an empty list of values")
                values.append(value)
            elif key == "diffaugment" and isinstance(value, list) and value and all(isinstance(v, list) for v in value):
                values.append(value)
            else:
                values.append([value])
        parts.append((keys, values))
    return parts


def count_grid(grid: dict | list[dict] | str | None, limit: int = MAX_TRIALS) -> int:
    """The number of combinations, counted without building them; refused over ``limit``."""
    count = sum(math.prod(len(v) for v in values) for _, values in grid_parts(grid))
    if count > limit:
        raise GanConfigError(f"the grid has {count:,} combinations, more than the limit of {limit:,} trials "
                             "per search (Airflow maps at most 1,024 tasks); split it into smaller searches")
    return count


def expand_grid(grid: dict | list[dict] | str | None) -> list[dict]:
    """ParameterGrid semantics: every combination of a dict of lists; a list of dicts concatenated.

    A string is parsed as YAML/JSON first (an Airflow param may arrive as text). A grid of more
    than :data:`MAX_TRIALS` combinations is refused before any is built.
    """
    if isinstance(grid, str):
        grid = parse_grid_text(grid)
    count_grid(grid)
    combos: list[dict] = []
    for keys, values in grid_parts(grid):
        combos.extend(dict(zip(keys, combo, strict=True)) for combo in itertools.product(*values))
    return combos


def candidates(grid: dict | list[dict] | str | None, strategy: Strategy | None = None) -> list[dict]:
    """The combinations a search's strategy trains: every grid point, or ``n_iter`` seeded draws."""
    if isinstance(grid, str):
        grid = parse_grid_text(grid)
    strategy = strategy or Strategy()
    if strategy.draws:
        if strategy.n_iter > MAX_TRIALS:
            raise GanConfigError(f"n_iter {strategy.n_iter:,} is more than the limit of {MAX_TRIALS:,} trials "
                                 "per search (Airflow maps at most 1,024 tasks)")
        return sample(grid, strategy.n_iter, strategy.seed)
    key = has_distributions(grid)
    if key is not None:
        raise GanConfigError(f"grid key {key!r} is a distribution; distributions are drawn from by strategy "
                             "random (or halving with n_iter), a grid takes lists of values")
    return expand_grid(grid)


def resolve_grid(grid: dict | list[dict] | str | None, base: dict | None = None,
                 combos: list[dict] | None = None) -> list[tuple[dict, GanConfig]]:
    """(combination, config) for every grid point (or each of ``combos``), all validated; duplicates removed."""
    resolved, seen = [], set()
    for combo in expand_grid(grid) if combos is None else combos:
        try:
            config = GanConfig.from_dict({**(base or {}), **combo})
        except GanConfigError as exc:
            raise GanConfigError(f"grid combination {json.dumps(combo, sort_keys=True)} is invalid: {exc}") from None
        if config.trial_id() not in seen:
            seen.add(config.trial_id())
            resolved.append((combo, config))
    return resolved


def grid_labels(combos: list[dict]) -> list[str]:
    """Name each trial by the grid settings that vary across the search ("loss=hinge d_norm=none"),
    not by everything that differs from the preset, which repeats the search's shared settings."""
    keys = sorted({key for combo in combos for key in combo})
    varying = [key for key in keys
               if len({json.dumps(combo.get(key, "\0"), sort_keys=True) for combo in combos}) > 1]

    def text(value: Any) -> str:
        return "+".join(map(str, value)) or "none" if isinstance(value, list) else str(value)

    return [" ".join(f"{key}={text(combo[key])}" for key in varying if key in combo) for combo in combos]
