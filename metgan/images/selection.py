"""Which objects and images go into a training subset: the parameters, and the selection run.

The rule itself is the named query ``sql/queries/subset_candidates.sql``, which
:mod:`metgan.db.subsets` runs with the bound parameters :meth:`Selection.query_params` builds.

Patterns are matched against the object name, case-insensitively and word-aware. By default a
pattern is **plain words**: every character is literal (quotes, ``%``, ``.`` and the like are
just text), the words must appear whole and in order, and the last word may carry a plural
``s``/``es``: ``vase`` matches "Vase", "Vases", "Vase with cover", "Bottle vase", "VASE" but not
"Vaseline jar". With ``regex=True`` patterns are PostgreSQL regular expressions (``~*``; ``\\m``
and ``\\M`` mark word starts and ends). Either way the pattern is a bound parameter, never part
of the SQL text.

Params (a flat dict; unknown keys are an error naming the key):

=================  ==============  ==========================================================
include            ["vase"]        name patterns; an object matching any one is selected
exclude            fragment,       name patterns; an object matching any one is left out
                   fragmentary,
                   sherd
regex              False           patterns are PostgreSQL regexes instead of plain words
classifications    []              classifications selected whatever the name (e.g. "Vases")
public_domain      True            only public-domain objects
primary_only       True            only each object's primary image
size               "128x160"       output WIDTHxHEIGHT
mode               "rgb"           rgb or grayscale
policy             "pad"           pad, crop or stretch
ratio              height/width    target height/width ratio (default: that of ``size``)
tolerance          0.15            largest accepted distance from ``ratio`` (absolute)
=================  ==============  ==========================================================
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from metgan.db import subsets as repository
from metgan.errors import ConfigError
from metgan.images.resize import Shape, parse_mode, parse_size

log = logging.getLogger(__name__)

DEFAULT_INCLUDE = ("vase",)
DEFAULT_EXCLUDE = ("fragment", "fragmentary", "sherd")
DEFAULT_SIZE = "128x160"
PARAM_KEYS = ("include", "exclude", "regex", "classifications", "public_domain", "primary_only",
              "size", "mode", "policy", "ratio", "tolerance")


def word_pattern(words: str) -> str:
    """A plain-words pattern as a PostgreSQL regex: literal, whole words, optional plural."""
    parts = words.split()
    if not parts:
        raise ConfigError("an empty pattern matches everything; give at least one word")
    literal = [re.sub(r"([^0-9A-Za-z_\s])", r"\\\1", part) for part in parts]
    return r"\m" + r"\s+".join(literal) + r"(e?s)?\M"


def _strings(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a string or a list of strings, not {value!r}")
    return tuple(v.strip() for v in value if v.strip())


def _boolean(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, not {value!r}")
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ConfigError(f"{key} must be a number, not {value!r}")
    try:
        return float(value)
    except ValueError:
        raise ConfigError(f"{key} must be a number, not {value!r}") from None


@dataclass(frozen=True)
class Selection:
    """Which objects and images a subset takes (the metadata part of its parameters)."""

    include: tuple[str, ...] = DEFAULT_INCLUDE
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    regex: bool = False
    classifications: tuple[str, ...] = ()
    public_domain: bool = True
    primary_only: bool = True

    def __post_init__(self):
        if not self.include and not self.classifications:
            raise ConfigError("a subset needs at least one include pattern or classification")
        if not self.regex:
            for pattern in self.include + self.exclude:
                word_pattern(pattern)

    def query_params(self) -> dict[str, Any]:
        """The bound parameters of the named selection query (run by metgan.db.subsets)."""
        compile_ = (lambda p: p) if self.regex else word_pattern
        return {
            "include": [compile_(p) for p in self.include],
            "exclude": [compile_(p) for p in self.exclude],
            "classifications": [c.lower() for c in self.classifications],
            "public_domain": self.public_domain,
            "primary_only": self.primary_only,
        }


@dataclass(frozen=True)
class SubsetParams:
    """All parameters of a subset: the selection and the output shape."""

    selection: Selection = field(default_factory=Selection)
    shape: Shape = field(default_factory=Shape)

    @classmethod
    def from_dict(cls, params: Mapping[str, Any] | None = None,
                  base: Mapping[str, Any] | None = None) -> SubsetParams:
        """Validate ``params`` laid over ``base`` (default: the vase subset's parameters)."""
        merged = dict(base or {})
        if params and "size" in params and "ratio" not in params:
            merged.pop("ratio", None)       # a new size brings its own ratio unless one is given
        merged.update(params or {})
        unknown = sorted(k for k in merged if k not in PARAM_KEYS)
        if unknown:
            raise ConfigError(f"unknown subset parameter {unknown[0]!r}; valid: {', '.join(PARAM_KEYS)}")
        selection = Selection(
            include=_strings("include", merged.get("include", DEFAULT_INCLUDE)),
            exclude=_strings("exclude", merged.get("exclude", DEFAULT_EXCLUDE)),
            regex=_boolean("regex", merged.get("regex", False)),
            classifications=_strings("classifications", merged.get("classifications", ())),
            public_domain=_boolean("public_domain", merged.get("public_domain", True)),
            primary_only=_boolean("primary_only", merged.get("primary_only", True)),
        )
        width, height = parse_size(merged.get("size", DEFAULT_SIZE))
        ratio = merged.get("ratio")
        shape = Shape(
            width=width, height=height,
            mode=parse_mode(merged.get("mode", "rgb")),
            policy=str(merged.get("policy", "pad")).strip().lower(),
            ratio=round(height / width, 6) if ratio is None else _number("ratio", ratio),
            tolerance=_number("tolerance", merged.get("tolerance", 0.15)),
        )
        return cls(selection, shape)

    def to_dict(self) -> dict[str, Any]:
        """The canonical, JSON-able form (what the subsets row and subset.json record)."""
        s, shape = self.selection, self.shape
        return {
            "include": list(s.include), "exclude": list(s.exclude), "regex": s.regex,
            "classifications": list(s.classifications), "public_domain": s.public_domain,
            "primary_only": s.primary_only, "size": f"{shape.width}x{shape.height}",
            "mode": shape.mode, "policy": shape.policy, "ratio": shape.ratio, "tolerance": shape.tolerance,
        }


def candidate_object_ids(params: Mapping[str, Any] | None = None, *, engine: Engine) -> list[int]:
    """Object ids the subset's metadata selects (no image needed), ascending.

    ``params`` is a subset's parameter dict (shape keys are accepted and ignored here). The CSV
    bootstrap uses this to ask the API only about objects that can end up in the subset.
    """
    selection = SubsetParams.from_dict(params).selection
    return repository.candidate_object_ids(engine, selection.query_params())


@dataclass(frozen=True)
class SourceImage:
    object_id: int
    seq: int
    path: str       # relative to <data_dir>/images
    sha256: str
    width: int | None
    height: int | None


def candidate_images(selection: Selection, *, engine: Engine) -> tuple[list[SourceImage], int]:
    """The subset's downloaded images, one per sha256, and how many duplicates were dropped."""
    seen: set[str] = set()
    images: list[SourceImage] = []
    duplicates = 0
    for row in repository.candidate_image_rows(engine, selection.query_params()):
        image = SourceImage(*row)
        if image.sha256 in seen:
            duplicates += 1
            continue
        seen.add(image.sha256)
        images.append(image)
    return images, duplicates
