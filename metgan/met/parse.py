"""Met API bodies → typed rows.

The API's schema drifted since 2018 and the parser accepts every variant seen in the real samples
(``../shared/met-samples``): ``tags`` as plain strings (2019), as objects with or without
``Wikidata_URL``, as ``[]`` or ``null``; ``constituents`` as ``null`` or without
``constituentID`` (before 2020); ``measurements`` missing or ``null``; ``GalleryNumber`` missing;
``accessionYear`` missing. Empty strings become NULL in the typed columns (the raw record keeps
them as sent); a record that is not a JSON object with an integer ``objectID`` is refused.

Python's json accepts what PostgreSQL does not, so this module alone makes every value storable:
NUL characters are dropped (text and jsonb cannot hold them), lone surrogates become U+FFFD (they
have no UTF-8 encoding), ``NaN`` / ``Infinity`` / ``1e400`` become null (jsonb has no such numbers),
and a record nested deeper than MAX_DEPTH is refused with a MetApiError naming the object.
"""

from __future__ import annotations

import json
import math
import re
from datetime import UTC, datetime
from typing import Any

from metgan.db.columns import BOOL_FIELDS, INT_FIELDS, TEXT_FIELDS, ParsedObject, storable_text
from metgan.errors import MetApiError

_HTML_START = re.compile(rb"^\s*(<!doctype html|<html|<head|<body|<iframe)", re.IGNORECASE)
_INT32 = 2**31 - 1
# Real records nest four levels deep; far below the recursion limit json.dumps would hit.
MAX_DEPTH = 64
# Python refuses to print ints over 4,300 digits (json.dumps raises): none is a real Met value.
_MAX_INT_BITS = 14_000


def storable_json(value: Any, max_depth: int = MAX_DEPTH) -> Any:
    """A JSON-decoded value as jsonb accepts it (see the module docstring); the same object when
    nothing had to change. Raises ValueError when it nests deeper than ``max_depth``."""
    return _storable(value, max_depth)


def _storable(value: Any, depth: int) -> Any:
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > _MAX_INT_BITS:
        return None
    if isinstance(value, (dict, list)):
        if depth <= 0:
            raise ValueError("nested too deep")
        changed = False
        if isinstance(value, dict):
            out: Any = {}
            for key, item in value.items():
                clean_key = storable_text(key) if isinstance(key, str) else str(key)
                clean_item = _storable(item, depth - 1)
                changed = changed or clean_key is not key or clean_item is not item
                out[clean_key] = clean_item
        else:
            out = []
            for item in value:
                clean_item = _storable(item, depth - 1)
                changed = changed or clean_item is not item
                out.append(clean_item)
        return out if changed else value
    return value


def text_or_none(value: Any) -> str | None:
    """A stripped string, or None for null, "" and whitespace; other scalars are stringified."""
    if value is None:
        return None
    if not isinstance(value, str):
        if isinstance(value, (dict, list)):
            try:
                return json.dumps(storable_json(value), ensure_ascii=False)
            except ValueError:  # nested too deep to be a field's value: parse_record refuses the record
                return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, int) and value.bit_length() > _MAX_INT_BITS:
            return None
        value = str(value)
    value = storable_text(value).strip()
    return value or None


def bool_or_none(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        if lowered in ("true", "1", "yes"):
            return True
        if lowered in ("false", "0", "no"):
            return False
    if isinstance(value, int):
        return bool(value)
    return None


def int_or_none(value: Any) -> int | None:
    """An int32 from an int or numeric string; None for "", null, floats with fractions, overflow."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, float):
        if not value.is_integer():
            return None
        value = int(value)
    if isinstance(value, str):
        value = value.strip()
        if not re.fullmatch(r"[-+]?\d+", value):
            return None
        value = int(value)
    if isinstance(value, int) and -_INT32 <= value <= _INT32:
        return value
    return None


def parse_metadata_date(value: Any) -> datetime | None:
    """The API's ``metadataDate`` ("2019-01-30T09:08:07.74Z") as an aware UTC datetime."""
    text = text_or_none(value)
    if text is None:
        return None
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        # more than six fractional digits, which fromisoformat refuses
        match = re.fullmatch(r"(.*\.\d{6})\d+(Z|[+-]\d\d:?\d\d)?", text)
        if not match:
            return None
        try:
            parsed = datetime.fromisoformat(match.group(1) + (match.group(2) or ""))
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    try:
        return parsed.astimezone(UTC)
    except OverflowError:  # 0001-01-01 with a positive offset lies before datetime.min in UTC
        return None


def _url_list(value: Any) -> list[str]:
    if not isinstance(value, list):
        return []
    return [url for url in (text_or_none(item) for item in value if isinstance(item, str)) if url]


def _tags(value: Any) -> list[dict[str, Any]]:
    rows = []
    if not isinstance(value, list):
        return rows
    for item in value:
        if isinstance(item, str):
            term, aat, wikidata = text_or_none(item), None, None
        elif isinstance(item, dict):
            term = text_or_none(item.get("term"))
            aat = text_or_none(item.get("AAT_URL"))
            wikidata = text_or_none(item.get("Wikidata_URL"))
        else:
            continue
        if term:
            rows.append({"seq": len(rows), "term": term, "aat_url": aat, "wikidata_url": wikidata})
    return rows


def _constituents(value: Any, record: dict[str, Any]) -> list[dict[str, Any]]:
    """Constituents in the Met's order; the artist* fields describe the first one when they agree."""
    if not isinstance(value, list):
        return []
    rows = []
    for item in value:
        if not isinstance(item, dict):
            continue
        rows.append({
            "seq": len(rows),
            "constituent_id": int_or_none(item.get("constituentID")),
            "role": text_or_none(item.get("role")),
            "name": text_or_none(item.get("name")),
            "prefix": None, "suffix": None, "display_bio": None, "alpha_sort": None,
            "nationality": None, "begin_date": None, "end_date": None,
            "gender": text_or_none(item.get("gender")),
            "ulan_url": text_or_none(item.get("constituentULAN_URL")),
            "wikidata_url": text_or_none(item.get("constituentWikidata_URL")),
        })
    if rows and rows[0]["name"] and rows[0]["name"] == text_or_none(record.get("artistDisplayName")):
        first = rows[0]
        first.update({
            "prefix": text_or_none(record.get("artistPrefix")),
            "suffix": text_or_none(record.get("artistSuffix")),
            "display_bio": text_or_none(record.get("artistDisplayBio")),
            "alpha_sort": text_or_none(record.get("artistAlphaSort")),
            "nationality": text_or_none(record.get("artistNationality")),
            "begin_date": text_or_none(record.get("artistBeginDate")),
            "end_date": text_or_none(record.get("artistEndDate")),
        })
        first["gender"] = first["gender"] or text_or_none(record.get("artistGender"))
        first["ulan_url"] = first["ulan_url"] or text_or_none(record.get("artistULAN_URL"))
        first["wikidata_url"] = first["wikidata_url"] or text_or_none(record.get("artistWikidata_URL"))
    return rows


def _measurements(value: Any) -> list[dict[str, Any]] | None:
    if not isinstance(value, list):
        return None
    return [item for item in value if isinstance(item, dict)] or None


def parse_record(record: Any) -> ParsedObject:
    """Turn one ``GET /objects/{id}`` body (already JSON-decoded) into typed rows.

    Raises MetApiError when it is not an object record (no integer ``objectID``), e.g. an error
    body; callers turn ``{"message": ...}`` bodies into ObjectGoneError before this.
    """
    if not isinstance(record, dict):
        raise MetApiError(f"object record is a {type(record).__name__}, not a JSON object")
    object_id = int_or_none(record.get("objectID"))
    try:
        record = storable_json(record)
    except ValueError:
        raise MetApiError(f"object {object_id or '?'}: record nested deeper than {MAX_DEPTH} levels") from None
    if object_id is None or object_id <= 0:
        message = text_or_none(record.get("message"))
        detail = f" (message: {message[:200]})" if message else ""
        raise MetApiError(f"object record has no valid objectID{detail}")
    columns: dict[str, Any] = {"object_id": object_id}
    for api_name, column in BOOL_FIELDS.items():
        columns[column] = bool_or_none(record.get(api_name))
    for api_name, column in TEXT_FIELDS.items():
        columns[column] = text_or_none(record.get(api_name))
    for api_name, column in INT_FIELDS.items():
        columns[column] = int_or_none(record.get(api_name))
    additional = _url_list(record.get("additionalImages"))
    columns["additional_images"] = additional
    columns["measurements"] = _measurements(record.get("measurements"))
    columns["metadata_date"] = parse_metadata_date(record.get("metadataDate"))
    columns["raw"] = record
    primary = columns["primary_image_small"] or columns["primary_image"]
    # The web-large rendition is plenty for 64-256 px training and about a tenth of the bytes of
    # the original; additional images exist only as originals.
    image_urls = ([primary] if primary else []) + (additional if primary else [])
    return ParsedObject(
        object_id=object_id,
        columns=columns,
        constituents=_constituents(record.get("constituents"), record),
        tags=_tags(record.get("tags")),
        image_urls=image_urls,
    )


def looks_like_html(body: bytes) -> bool:
    """True for an HTML page (the CDN's block page), whatever the Content-Type said."""
    return bool(_HTML_START.match(body[:512])) or b"_Incapsula_Resource" in body[:4096]


def error_message(body: Any) -> str | None:
    """The ``message`` of an API error body (``{"message": "ObjectID not found"}``), else None."""
    if isinstance(body, (bytes, str)):
        try:
            body = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
    if isinstance(body, dict) and "objectID" not in body:
        return text_or_none(body.get("message"))
    return None


def is_gone_message(message: str | None) -> bool:
    """Messages that mean the object will never be served: not found, or a loan."""
    if not message:
        return False
    lowered = message.lower()
    return "not found" in lowered or "not a valid object" in lowered


def parse_id_listing(body: Any) -> list[int]:
    """``/objects`` or ``/search`` body → sorted, de-duplicated ids (``objectIDs: null`` → [])."""
    if not isinstance(body, dict) or "objectIDs" not in body:
        raise MetApiError("listing body has no objectIDs field")
    ids = body.get("objectIDs") or []
    if not isinstance(ids, list):
        raise MetApiError(f"listing objectIDs is a {type(ids).__name__}, not a list")
    return sorted({i for i in (int_or_none(x) for x in ids) if i is not None and i > 0})
