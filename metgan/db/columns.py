"""The typed columns of met_objects and where each source carries them: the one map that the API
parser (:mod:`metgan.met.parse`), the CSV import (:mod:`metgan.met.csv_read`) and this package's
statements are all written against, and the text PostgreSQL accepts.

It lives with the database, not with the Met client, so that the repositories here import nothing
from a domain package: the domains call the database, never the reverse.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, NamedTuple

_SURROGATE = re.compile("[\ud800-\udfff]")


class SourceColumn(NamedTuple):
    """A met_objects column both sources fill: the API field and the CSV column that carry it."""

    column: str
    api_field: str
    csv_column: str | None  # None: the Open Access CSV has no such column
    kind: str  # "text" ("" becomes NULL), "bool" or "int"


# The one map of the typed met_objects columns to the API's fields and the CSV's columns: the API
# parser and the CSV import (metgan.met.csv_read) both derive theirs from it, in this order.
SOURCE_COLUMNS: tuple[SourceColumn, ...] = (
    SourceColumn("accession_number", "accessionNumber", "Object Number", "text"),
    SourceColumn("accession_year", "accessionYear", "AccessionYear", "text"),
    SourceColumn("primary_image", "primaryImage", None, "text"),
    SourceColumn("primary_image_small", "primaryImageSmall", None, "text"),
    SourceColumn("department", "department", "Department", "text"),
    SourceColumn("object_name", "objectName", "Object Name", "text"),
    SourceColumn("title", "title", "Title", "text"),
    SourceColumn("culture", "culture", "Culture", "text"),
    SourceColumn("period", "period", "Period", "text"),
    SourceColumn("dynasty", "dynasty", "Dynasty", "text"),
    SourceColumn("reign", "reign", "Reign", "text"),
    SourceColumn("portfolio", "portfolio", "Portfolio", "text"),
    SourceColumn("object_date", "objectDate", "Object Date", "text"),
    SourceColumn("medium", "medium", "Medium", "text"),
    SourceColumn("dimensions", "dimensions", "Dimensions", "text"),
    SourceColumn("credit_line", "creditLine", "Credit Line", "text"),
    SourceColumn("geography_type", "geographyType", "Geography Type", "text"),
    SourceColumn("city", "city", "City", "text"),
    SourceColumn("state", "state", "State", "text"),
    SourceColumn("county", "county", "County", "text"),
    SourceColumn("country", "country", "Country", "text"),
    SourceColumn("region", "region", "Region", "text"),
    SourceColumn("subregion", "subregion", "Subregion", "text"),
    SourceColumn("locale", "locale", "Locale", "text"),
    SourceColumn("locus", "locus", "Locus", "text"),
    SourceColumn("excavation", "excavation", "Excavation", "text"),
    SourceColumn("river", "river", "River", "text"),
    SourceColumn("classification", "classification", "Classification", "text"),
    SourceColumn("rights_and_reproduction", "rightsAndReproduction", "Rights and Reproduction", "text"),
    SourceColumn("link_resource", "linkResource", "Link Resource", "text"),
    SourceColumn("repository", "repository", "Repository", "text"),
    SourceColumn("object_url", "objectURL", None, "text"),
    SourceColumn("object_wikidata_url", "objectWikidata_URL", "Object Wikidata URL", "text"),
    SourceColumn("gallery_number", "GalleryNumber", "Gallery Number", "text"),
    SourceColumn("is_highlight", "isHighlight", "Is Highlight", "bool"),
    SourceColumn("is_public_domain", "isPublicDomain", "Is Public Domain", "bool"),
    SourceColumn("is_timeline_work", "isTimelineWork", "Is Timeline Work", "bool"),
    SourceColumn("object_begin_date", "objectBeginDate", "Object Begin Date", "int"),
    SourceColumn("object_end_date", "objectEndDate", "Object End Date", "int"),
)


def api_fields(kind: str) -> dict[str, str]:
    """API field -> met_objects column, for the columns of one ``kind``."""
    return {c.api_field: c.column for c in SOURCE_COLUMNS if c.kind == kind}


def csv_columns(kind: str) -> dict[str, str]:
    """CSV column -> met_objects column, for the columns of one ``kind`` the CSV has."""
    return {c.csv_column: c.column for c in SOURCE_COLUMNS if c.kind == kind and c.csv_column is not None}


# The CSV's pipe-separated, position-aligned lists -> met_constituents / met_tags columns (the
# API sends these as lists of objects, which parse_record reads by their own names).
CSV_ARTIST_COLUMNS: dict[str, str] = {
    "Artist Role": "role",
    "Artist Prefix": "prefix",
    "Artist Display Name": "name",
    "Artist Display Bio": "display_bio",
    "Artist Suffix": "suffix",
    "Artist Alpha Sort": "alpha_sort",
    "Artist Nationality": "nationality",
    "Artist Begin Date": "begin_date",
    "Artist End Date": "end_date",
    "Artist Gender": "gender",
    "Artist ULAN URL": "ulan_url",
    "Artist Wikidata URL": "wikidata_url",
}
CSV_TAG_COLUMNS: dict[str, str] = {
    "Tags": "term",
    "Tags AAT URL": "aat_url",
    "Tags Wikidata URL": "wikidata_url",
}


TEXT_FIELDS: dict[str, str] = api_fields("text")
BOOL_FIELDS: dict[str, str] = api_fields("bool")
INT_FIELDS: dict[str, str] = api_fields("int")

# Every typed column parse_record fills, in a fixed order (the repository's INSERT uses it).
OBJECT_COLUMNS: tuple[str, ...] = (
    "object_id", *BOOL_FIELDS.values(), *TEXT_FIELDS.values(), *INT_FIELDS.values(),
    "additional_images", "measurements", "metadata_date", "raw",
)


@dataclass(frozen=True)
class ParsedObject:
    """One object record as rows for met_objects, met_constituents, met_tags and met_images."""

    object_id: int
    columns: dict[str, Any]
    constituents: list[dict[str, Any]] = field(default_factory=list)
    tags: list[dict[str, Any]] = field(default_factory=list)
    image_urls: list[str] = field(default_factory=list)  # index = met_images.seq

    @property
    def primary_image_url(self) -> str | None:
        return self.image_urls[0] if self.image_urls else None


def storable_text(value: str) -> str:
    """``value`` as PostgreSQL text accepts it: without NUL, lone surrogates replaced by U+FFFD."""
    if "\x00" in value:
        value = value.replace("\x00", "")
    if _SURROGATE.search(value):
        value = _SURROGATE.sub("\ufffd", value)
    return value
