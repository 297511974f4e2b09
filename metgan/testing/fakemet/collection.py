"""The generated collection the fake Met serves: object records in the real API's shapes.

Everything is derived from ``(seed, object id)`` with string-seeded ``random.Random`` (stable
across processes, unlike ``hash()``), so two servers with the same config serve the same bytes.
Records mirror the real samples: the 57-key current schema in API order, the 2020 schema
(no ``measurements``/``GalleryNumber``) and the 2019 schema (49 keys, tags as plain strings,
constituents without ids), with ``""`` where the API gives empty strings and ``null`` for
``constituents``/``tags``/``measurements`` on some records.

Real scale (``CollectionConfig.real_scale()``, ``metgan fake-met serve --scale real``): the
unfiltered ``/objects`` lists ``listing`` ids (490,000 like the real API, about 3.8 MB) although
only ``objects`` are generated up front; an id beyond them gets its record generated when first
asked for (filtered listings and search cover the generated objects only). Some generated objects
are then special: records near ``huge_record_bytes`` (1 MB), images that redirect (to the same
host, to a foreign host, to a foreign port), and with ``hostile`` the bodies Python's json accepts
but PostgreSQL does not (HOSTILE_KINDS). ``Collection.special`` says which object is which.
"""

from __future__ import annotations

import bisect
import itertools
import json
import random
from array import array
from collections import OrderedDict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from urllib.parse import urlsplit

API_PREFIX = "/public/collection/v1"
IMAGE_PREFIX = "/CRDImages"
REPOSITORY = "Metropolitan Museum of Art, New York, NY"

# The 2026 list (departments/departments_2026-06-20.json in the shared samples).
DEPARTMENTS: dict[int, str] = {
    1: "American Decorative Arts", 3: "Ancient West Asian Art", 4: "Arms and Armor",
    5: "Arts of Africa, Oceania, and the Americas", 6: "Asian Art", 7: "The Cloisters",
    8: "The Costume Institute", 9: "Drawings and Prints", 10: "Egyptian Art",
    11: "European Paintings", 12: "European Sculpture and Decorative Arts", 13: "Greek and Roman Art",
    14: "Islamic Art", 15: "The Robert Lehman Collection", 16: "The Libraries", 17: "Medieval Art",
    18: "Musical Instruments", 19: "Photographs", 21: "Modern Art",
}
# The department string inside records differs from displayName for some departments.
RECORD_DEPARTMENT = {1: "The American Wing", 8: "Costume Institute", 15: "Robert Lehman Collection",
                     21: "Modern and Contemporary Art"}
# Image path code per department (images.metmuseum.org/CRDImages/<code>/...).
IMAGE_CODE = {1: "ad", 3: "an", 4: "aa", 5: "ao", 6: "as", 7: "md", 8: "ci", 9: "dp", 10: "eg",
              11: "ep", 12: "es", 13: "gr", 14: "is", 15: "rl", 16: "li", 17: "md", 18: "mi",
              19: "ph", 21: "ma"}

CURRENT_KEYS = (
    "objectID", "isHighlight", "accessionNumber", "accessionYear", "isPublicDomain", "primaryImage",
    "primaryImageSmall", "additionalImages", "constituents", "department", "objectName", "title",
    "culture", "period", "dynasty", "reign", "portfolio", "artistRole", "artistPrefix",
    "artistDisplayName", "artistDisplayBio", "artistSuffix", "artistAlphaSort", "artistNationality",
    "artistBeginDate", "artistEndDate", "artistGender", "artistWikidata_URL", "artistULAN_URL",
    "objectDate", "objectBeginDate", "objectEndDate", "medium", "dimensions", "measurements",
    "creditLine", "geographyType", "city", "state", "county", "country", "region", "subregion",
    "locale", "locus", "excavation", "river", "classification", "rightsAndReproduction",
    "linkResource", "metadataDate", "repository", "objectURL", "tags", "objectWikidata_URL",
    "isTimelineWork", "GalleryNumber",
)
SCHEMA_2020_KEYS = tuple(k for k in CURRENT_KEYS if k not in ("measurements", "GalleryNumber"))
SCHEMA_2019_KEYS = tuple(k for k in CURRENT_KEYS if k not in (
    "accessionYear", "artistGender", "artistWikidata_URL", "artistULAN_URL", "measurements",
    "objectWikidata_URL", "isTimelineWork", "GalleryNumber"))

# (objectName, title choices, classification, department id, image kind, is it a vase?)
# Weights below pick among these; names include the awkward cases a selection must handle.
_KINDS: list[tuple[float, str, tuple[str, ...], str, int, str, bool]] = [
    (14, "Vase", ("Vase", "Baluster Vase", "Beaker Vase", "Vase (one of a pair)", ""), "", 1, "vase", True),
    (10, "Vase", ("Vase", "Covered vase", "Vase with flowers and birds"), "Ceramics", 6, "vase", True),
    (6, "Vase", ("Vase", "Baluster Vase"), "Ceramics-Porcelain", 12, "vase", True),
    (4, "Vases", ("Pair of vases", "Vases"), "Ceramics-Pottery", 12, "vase", True),
    (4, "Vase with cover", ("Vase with cover", "Covered vase"), "Ceramics", 6, "vase", True),
    (3, "Bottle vase", ("Bottle vase", "Bottle"), "Ceramics", 6, "vase", True),
    (2, "vase", ("vase", "Vase"), "", 1, "vase", True),
    (8, "Amphora", ("Terracotta amphora (jar)", "Terracotta neck-amphora (jar)"), "Vases", 13, "vase", True),
    (3, "Amphora, Type A", ("Terracotta amphora (jar)",), "Vases", 13, "vase", True),
    (3, "Hydria", ("Terracotta hydria (water jar)",), "Vases", 13, "vase", True),
    (3, "Vase fragment", ("Vase fragment", "Fragment of a terracotta vase"), "Vases", 13, "fragment", False),
    (2, "Fragment of a vase", ("Fragment of a vase",), "Ceramics", 6, "fragment", False),
    (1, "Vaseline jar", ("Vaseline jar",), "Glass", 1, "vase", False),
    (7, "Plate", ("Plate", "Dinner plate", "Bread Plate"), "Ceramics", 12, "plate", False),
    (4, "Bowl", ("Bowl", "Footed bowl"), "Ceramics", 6, "plate", False),
    (9, "Painting", ("Landscape", "Wheat Field", "View of the River", "Still Life"), "Paintings", 11, "painting", False),
    (6, "Textile", ("Textile fragment", "Woven silk", "Coverlet"), "Textiles-Woven", 12, "textile", False),
    (2, "Hanging scroll", ("Quail and Millet", "Mountain landscape"), "Paintings", 6, "painting", False),
]

_CULTURES = {1: ["American", ""], 6: ["China", "Japan", "Korea"], 11: [""], 12: ["French", "British", "German"],
             13: ["Greek, Attic", "Greek, South Italian", "Etruscan"]}
_PERIODS = {6: ["Qing dynasty (1644–1911)", "Ming dynasty (1368–1644)", "Edo period (1615–1868)"],
            13: ["Archaic", "Classical", "Hellenistic"]}
_MEDIUMS = {"vase": ["Porcelain painted in underglaze blue", "Stoneware with celadon glaze",
                     "Terracotta; black-figure", "Earthenware", "Glass"],
            "fragment": ["Terracotta; red-figure", "Earthenware"],
            "plate": ["Porcelain", "Faience (tin-glazed earthenware)"],
            "painting": ["Oil on canvas", "Ink and color on silk"],
            "textile": ["Silk, metal thread", "Wool, cotton"]}
_TAG_TERMS = ["Flowers", "Birds", "Dragons", "Men", "Women", "Horses", "Landscapes", "Leaves",
              "Animals", "Lions", "Boats", "Trees", "Cats", "Fish"]
_ARTISTS = [("Vincent van Gogh", "Gogh, Vincent van", "Dutch", "1853", "1890", "", "Dutch, Zundert 1853–1890 Auvers-sur-Oise"),
            ("Kiyohara Yukinobu", "Kiyohara Yukinobu", "Japanese", "1643", "1682", "Female", "Japanese, 1643–1682"),
            ("Tiffany & Co.", "Tiffany & Co.", "American", "1837", "9999", "", "1837–present"),
            ("Rookwood Pottery Company", "Rookwood Pottery Company", "American", "1880", "1967", "", "1880–1967")]
# Hostile bodies, one object each (in this order, among the last objects served with an image):
# bad image URLs (ValueError in URL parsers), nesting past json's recursion limit and past the
# parser's depth limit, numbers jsonb cannot hold, a lone surrogate, NUL in strings, and text that
# only looks like an escaped NUL (a naive "\\u0000" replace on the JSON text breaks it).
HOSTILE_KINDS = ("bad_port_url", "bad_bracket_url", "deep", "nested", "nan", "infinity", "overflow",
                 "surrogate", "nul", "escaped_nul")
REDIRECT_KINDS = ("redirect_same_host", "redirect_foreign_host", "redirect_foreign_port")
DEEP_LEVELS = 2000        # json.loads raises RecursionError
NESTED_LEVELS = 200       # json decodes it; metgan.met.parse.MAX_DEPTH refuses it
FOREIGN_PORT = 9          # the discard port: nothing the fake serves, never an image host's
REAL_LISTING = 490_000    # GET /objects of the real API (2026): about 3.8 MB of JSON
_LAZY_CACHE = 4096        # records of ids beyond the generated objects kept once generated
# File-name styles seen in real image URLs: plain, spaces, en-dashes, accents.
_FILE_STYLES = ("DP{n}", "DP-{n}-001", "DT{n}", "ESDA Kalimian {n}", "LC-{y}_{n}_1a–o_95-001", "Bertall_LeDiableàParis_{n}")
_FILE_STYLE_WEIGHTS = (40, 25, 20, 5, 5, 5)


@dataclass(frozen=True)
class CollectionConfig:
    """What the generated collection contains; every fraction is of all objects."""

    seed: int = 0
    objects: int = 300
    first_id: int = 1000
    image_width: int = 400               # the nominal width of a 5:4 portrait original; others scale with it
    small_scale: float = 0.5             # web-large rendition size relative to the original
    not_public_domain: float = 0.1
    no_image: float = 0.05
    additional_images: float = 0.25
    loans: float = 0.02                  # listed by /objects, answer "Not a valid object"
    vanished: float = 0.01               # listed by /objects, answer "ObjectID not found"
    old_schema: float = 0.06             # 2019 schema (tags as strings)
    schema_2020: float = 0.08
    missing_images: float = 0.01         # image URLs that answer 404 for ever
    missing_image_ids: frozenset[int] = field(default_factory=frozenset)  # object ids whose images 404
    image_variants: int = 0              # 0: every image its own scene; N: scenes repeat (cheap benchmarks)
    foreign_image_ids: frozenset[int] = field(default_factory=frozenset)  # image URLs on foreign_host
    foreign_host: str = "localhost"      # the same server under another host name (allow-list tests)
    listing: int = 0                     # ids the unfiltered /objects lists (0: just the objects)
    huge_records: int = 0                # objects whose records are padded to about huge_record_bytes
    huge_record_bytes: int = 1_000_000
    redirect_images: int = 0             # objects whose images answer 302 (REDIRECT_KINDS in turn)
    hostile: bool = False                # serve HOSTILE_KINDS bodies, one object each

    @classmethod
    def real_scale(cls, **overrides) -> CollectionConfig:
        """The real API's sizes and hostile bodies (see the module docstring); overrides win."""
        options = {"objects": 400, "listing": REAL_LISTING, "huge_records": 2, "redirect_images": 6,
                   "hostile": True, **overrides}
        return cls(**options)

    def __post_init__(self):
        if self.objects < 0:
            raise ValueError(f"objects must be >= 0, got {self.objects}")
        for name in ("listing", "huge_records", "redirect_images"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        if self.huge_record_bytes < 10_000:
            raise ValueError(f"huge_record_bytes must be >= 10000, got {self.huge_record_bytes}")
        if self.image_variants < 0:
            raise ValueError(f"image_variants must be >= 0, got {self.image_variants}")
        if self.image_width < 8:
            raise ValueError(f"image_width must be >= 8, got {self.image_width}")
        object.__setattr__(self, "missing_image_ids", frozenset(self.missing_image_ids))
        object.__setattr__(self, "foreign_image_ids", frozenset(self.foreign_image_ids))


@dataclass(frozen=True)
class ImageRef:
    """One image file of an object: where it lives and what to draw."""

    object_id: int
    seq: int                 # 0 = primary, 1.. = additional
    dept_code: str
    file_name: str           # decoded, may contain spaces and non-ASCII characters
    kind: str                # vase, fragment, plate, painting, textile
    scene: int               # what is drawn; equal scenes (and sizes) share one rendering
    width: int               # original rendition size
    height: int
    missing: bool            # answers 404 for ever


@dataclass
class FakeObject:
    object_id: int
    record: dict
    department_id: int
    metadata_date: str       # YYYY-MM-DD, for the metadataDate filter
    status: str              # ok | loan | vanished
    kind: str
    is_vase: bool
    images: list[ImageRef]


def _rng(seed: int, *parts: object) -> random.Random:
    return random.Random(":".join(str(p) for p in (seed, *parts)))


def _size_for(kind: str, rng: random.Random, base_width: int) -> tuple[int, int]:
    """Pixel size of an original: vases mostly near 5:4 portrait, the rest other shapes."""
    if kind == "vase":
        roll = rng.random()
        if roll < 0.8:
            aspect = rng.uniform(1.2, 1.3)           # height / width, near 5:4
        elif roll < 0.9:
            aspect = rng.uniform(1.45, 1.8)          # tall outliers
        else:
            aspect = rng.uniform(0.8, 1.0)           # squat outliers
    elif kind == "plate":
        aspect = rng.choice([1.0, 0.75, 0.8])
    elif kind == "fragment":
        aspect = rng.uniform(0.7, 1.1)
    elif kind == "painting":
        aspect = rng.uniform(0.62, 0.8)
    else:
        aspect = rng.uniform(0.7, 1.4)
    width = max(8, int(round(base_width * rng.uniform(0.9, 1.1))))
    return width, max(8, int(round(width * aspect)))


def _metadata_date(rng: random.Random) -> tuple[str, str]:
    start = datetime(2018, 6, 1, tzinfo=UTC)
    moment = start + timedelta(seconds=rng.randrange(int(8 * 365.25 * 86400)))
    millis = rng.choice(["", ".5", ".51", ".627"])
    return moment.strftime("%Y-%m-%dT%H:%M:%S") + millis + "Z", moment.date().isoformat()


class Collection:
    """The objects of one generated collection, built eagerly (cheap) and indexed by id."""

    def __init__(self, config: CollectionConfig | None = None, image_base_url: str = ""):
        self.config = config or CollectionConfig()
        self.image_base_url = self.foreign_base_url = image_base_url.rstrip("/")
        self.foreign_port_base_url = self.image_base_url
        self.objects: dict[int, FakeObject] = {}
        self.images: dict[tuple[str, str], ImageRef] = {}
        rng = _rng(self.config.seed, "ids")
        object_id = self.config.first_id
        for _ in range(self.config.objects):
            object_id += rng.randint(1, 4)   # gaps: ids between listed ones are unknown (404)
            obj = self._make(object_id)
            self.objects[object_id] = obj
            self._register_images(obj)
        self.sorted_ids = sorted(self.objects)
        # Ids listed beyond the generated objects: cheap to draw (one C call for the gaps), kept
        # as a compact array, their records made on demand.
        extra = max(0, self.config.listing - len(self.sorted_ids))
        gaps = _rng(self.config.seed, "listing").choices((1, 2, 3, 4), k=extra)
        self.extra_ids = array("q", itertools.accumulate(gaps, initial=object_id))[1:]
        self._lazy: OrderedDict[int, FakeObject] = OrderedDict()
        self._listing_body: bytes | None = None
        self.special: dict[int, str] = self._pick_special()

    def _register_images(self, obj: FakeObject) -> None:
        for ref in obj.images:
            self.images[(ref.dept_code, ref.file_name)] = ref

    def _pick_special(self) -> dict[int, str]:
        """Object id → hostile, huge or redirect kind, among the last ok objects with an image
        (the first ids stay plain, so ``--limit 5`` against a real-scale fake meets none)."""
        cfg = self.config
        kinds = [*(HOSTILE_KINDS if cfg.hostile else ()), *(["huge"] * cfg.huge_records),
                 *(REDIRECT_KINDS[i % len(REDIRECT_KINDS)] for i in range(cfg.redirect_images))]
        candidates = [i for i in self.sorted_ids
                      if self.objects[i].status == "ok" and self.objects[i].images
                      and not self.objects[i].images[0].missing]
        if len(kinds) > len(candidates):
            raise ValueError(f"{len(kinds)} special objects (hostile, huge, redirects) need at least as many "
                             f"objects with images; this collection has {len(candidates)}: raise objects")
        return dict(zip(candidates[len(candidates) - len(kinds):], kinds, strict=True))

    @property
    def listed_count(self) -> int:
        return len(self.sorted_ids) + len(self.extra_ids)

    def get(self, object_id: int) -> FakeObject | None:
        """The object with this id: generated, or listed beyond them (made now), else None."""
        obj = self.objects.get(object_id)
        if obj is not None:
            return obj
        obj = self._lazy.get(object_id)
        if obj is not None:
            self._lazy.move_to_end(object_id)
            return obj
        position = bisect.bisect_left(self.extra_ids, object_id)
        if position == len(self.extra_ids) or self.extra_ids[position] != object_id:
            return None
        obj = self._make(object_id)
        self._register_images(obj)
        self._lazy[object_id] = obj
        if len(self._lazy) > _LAZY_CACHE:
            self._lazy.popitem(last=False)
        return obj

    def set_image_base_url(self, url: str) -> None:
        """Point image URLs at ``url`` (known only once the server has its port)."""
        self.image_base_url = url.rstrip("/")
        parts = urlsplit(self.image_base_url)
        port = f":{parts.port}" if parts.port else ""
        self.foreign_base_url = f"{parts.scheme}://{self.config.foreign_host}{port}"
        self.foreign_port_base_url = f"{parts.scheme}://{parts.netloc.rsplit(':', 1)[0]}:{FOREIGN_PORT}"
        for obj in self.objects.values():
            self._fill_image_urls(obj)
        for obj in self._lazy.values():
            self._fill_image_urls(obj)
        self._listing_body = None

    def redirect_target(self, ref: ImageRef, raw_path: str) -> str | None:
        """Where an image of a redirecting object points (None: it does not redirect)."""
        kind = self.special.get(ref.object_id, "")
        base = {"redirect_same_host": self.image_base_url, "redirect_foreign_host": self.foreign_base_url,
                "redirect_foreign_port": self.foreign_port_base_url}.get(kind)
        return None if base is None else f"{base}{raw_path}?moved=1"

    def listing_body(self) -> bytes:
        """The unfiltered /objects body, serialised once (3.8 MB at real scale)."""
        if self._listing_body is None:
            ids = ",".join(map(str, itertools.chain(self.sorted_ids, self.extra_ids)))
            count = self.listed_count
            # Byte for byte what json.dumps writes, as the default mode always served.
            ids = ids.replace(",", ", ")
            self._listing_body = (f'{{"total": {count}, "objectIDs": [{ids}]}}' if count
                                  else '{"total": 0, "objectIDs": null}').encode()
        return self._listing_body

    def body(self, obj: FakeObject) -> bytes:
        """The JSON bytes /objects/{id} answers for ``obj`` (hostile and huge ones included)."""
        kind = self.special.get(obj.object_id)
        if kind in HOSTILE_KINDS:
            return self._hostile_body(obj.record, kind)
        if kind == "huge":
            return self._huge_body(obj)
        return json.dumps(obj.record, ensure_ascii=False).encode()

    def _hostile_body(self, record: dict, kind: str) -> bytes:
        record = json.loads(json.dumps(record))
        host = urlsplit(self.image_base_url).hostname or "images.metmuseum.org"
        height = {"Height": 10.0}
        placeholder = "__metgan_fake_placeholder__"
        replacement = None
        if kind == "bad_port_url":
            record["primaryImage"] = record["primaryImageSmall"] = f"http://{host}:99999/CRDImages/x.jpg"
        elif kind == "bad_bracket_url":
            record["primaryImage"] = record["primaryImageSmall"] = "http://[bad/CRDImages/x.jpg"
        elif kind in ("deep", "nested"):
            levels = DEEP_LEVELS if kind == "deep" else NESTED_LEVELS
            record["measurements"] = placeholder
            replacement = "[" * levels + "]" * levels
        elif kind == "nan":
            height = {"Height": float("nan"), "Width": 4.0}
        elif kind == "infinity":
            height = {"Height": float("inf"), "Width": float("-inf")}
        elif kind == "overflow":
            height = {"Height": placeholder}
            replacement = "1e400"
        elif kind == "surrogate":
            record["title"] = "Vase \ud800 with a lone surrogate"
            record["culture"] = "\udfff"
        elif kind == "nul":
            record["title"] = "Vase\u0000 with NUL"
            record["medium"] = "\u0000"
            record["tags"] = [{"term": "Flo\u0000wers", "AAT_URL": None, "Wikidata_URL": None}]
        elif kind == "escaped_nul":
            record["title"] = "C:\\u0000\\vase (text that looks like an escaped NUL)"
        if kind in ("nan", "infinity", "overflow"):
            record["measurements"] = [{"elementName": "Overall", "elementDescription": None,
                                       "elementMeasurements": height}]
        text = json.dumps(record, ensure_ascii=True, allow_nan=True)
        if replacement is not None:
            text = text.replace(json.dumps(placeholder), replacement)
        return text.encode()

    def _huge_body(self, obj: FakeObject) -> bytes:
        """The record with thousands of additional images and tags and a long credit line, just
        under huge_record_bytes."""
        target = self.config.huge_record_bytes
        record = dict(obj.record)
        base = f"{self.image_base_url}{IMAGE_PREFIX}/{obj.images[0].dept_code}/original/"
        record["additionalImages"] = [f"{base}huge-{obj.object_id}-{n}.jpg" for n in range(target // 400)]
        record["tags"] = [{"term": f"Term {n}", "AAT_URL": f"http://vocab.getty.edu/page/aat/{300000000 + n}",
                           "Wikidata_URL": None} for n in range(target // 400)]
        size = len(json.dumps(record, ensure_ascii=False).encode())
        record["creditLine"] = "Gift of " + "x" * max(0, target - size - 64)
        return json.dumps(record, ensure_ascii=False).encode()

    def image_url(self, ref: ImageRef, rendition: str = "original") -> str:
        base = self.foreign_base_url if ref.object_id in self.config.foreign_image_ids else self.image_base_url
        return f"{base}{IMAGE_PREFIX}/{ref.dept_code}/{rendition}/{ref.file_name}"

    def _fill_image_urls(self, obj: FakeObject) -> None:
        record = obj.record
        if obj.images:
            record["primaryImage"] = self.image_url(obj.images[0])
            record["primaryImageSmall"] = self.image_url(obj.images[0], "web-large")
            record["additionalImages"] = [self.image_url(ref) for ref in obj.images[1:]]

    def _make(self, object_id: int) -> FakeObject:
        cfg = self.config
        rng = _rng(cfg.seed, "object", object_id)
        weights = [k[0] for k in _KINDS]
        _, object_name, titles, classification, dept, kind, is_vase = rng.choices(_KINDS, weights)[0]
        roll = rng.random()
        status = "loan" if roll < cfg.loans else ("vanished" if roll < cfg.loans + cfg.vanished else "ok")
        public = rng.random() >= cfg.not_public_domain
        has_image = public and rng.random() >= cfg.no_image
        schema_roll = rng.random()
        schema = "2019" if schema_roll < cfg.old_schema else (
            "2020" if schema_roll < cfg.old_schema + cfg.schema_2020 else "current")
        metadata_date, metadata_day = _metadata_date(rng)
        if schema == "2019":
            metadata_date = f"2019-{rng.randint(1, 11):02d}-{rng.randint(1, 28):02d}T09:08:07.74Z"
            metadata_day = metadata_date[:10]

        images: list[ImageRef] = []
        if has_image:
            code = IMAGE_CODE[dept]
            count = 1 + (rng.randint(1, 4) if rng.random() < cfg.additional_images else 0)
            missing = object_id in cfg.missing_image_ids or rng.random() < cfg.missing_images
            style = rng.choices(_FILE_STYLES, _FILE_STYLE_WEIGHTS)[0]
            for seq in range(count):
                stem = style.format(n=object_id * 10 + seq, y=2000 + object_id % 25)
                scene = object_id * 100 + seq
                if cfg.image_variants:
                    scene = _rng(cfg.seed, "scene", object_id, seq).randrange(cfg.image_variants)
                width, height = _size_for(kind, _rng(cfg.seed, "size", kind, scene), cfg.image_width)
                images.append(ImageRef(object_id, seq, code, f"{stem}.jpg", kind, scene, width, height, missing))

        culture = rng.choice(_CULTURES.get(dept, [""]))
        period = rng.choice(_PERIODS.get(dept, [""])) if rng.random() < 0.6 else ""
        begin = rng.randint(-600, -300) if dept == 13 else rng.randint(1500, 1920)
        end = begin + rng.choice([0, 10, 25, 50])
        object_date = "" if rng.random() < 0.05 else (
            f"ca. {-begin} B.C." if begin < 0 else (str(begin) if begin == end else f"{begin}–{str(end)[-2:]}"))
        has_artist = dept in (1, 11, 6) and rng.random() < 0.5
        artist = rng.choice(_ARTISTS) if has_artist else ("", "", "", "", "", "", "")
        height_cm = round(rng.uniform(8, 80), 1)
        accession_year = str(rng.randint(1880, 2024))
        record: dict = {
            "objectID": object_id,
            "isHighlight": rng.random() < 0.03,
            "accessionNumber": f"{accession_year}.{rng.randint(1, 400)}.{rng.randint(1, 60)}",
            "accessionYear": accession_year,
            "isPublicDomain": public,
            "primaryImage": "",
            "primaryImageSmall": "",
            "additionalImages": [],
            "constituents": self._constituents(rng, artist, schema) if has_artist else None,
            "department": RECORD_DEPARTMENT.get(dept, DEPARTMENTS[dept]),
            "objectName": object_name,
            "title": rng.choice(titles),
            "culture": culture,
            "period": period,
            "dynasty": "",
            "reign": "",
            "portfolio": "",
            "artistRole": "Artist" if has_artist else "",
            "artistPrefix": "",
            "artistDisplayName": artist[0],
            "artistDisplayBio": artist[6],
            "artistSuffix": "",
            "artistAlphaSort": artist[1],
            "artistNationality": artist[2],
            "artistBeginDate": artist[3],
            "artistEndDate": artist[4],
            "artistGender": artist[5],
            "artistWikidata_URL": f"https://www.wikidata.org/wiki/Q{object_id}" if has_artist else "",
            "artistULAN_URL": f"http://vocab.getty.edu/page/ulan/{500000000 + object_id}" if has_artist else "",
            "objectDate": object_date,
            "objectBeginDate": begin,
            "objectEndDate": end,
            "medium": rng.choice(_MEDIUMS[kind]),
            "dimensions": f"H. {height_cm / 2.54:.1f} in. ({height_cm} cm)" + (
                "\r\nOther: 3 in. (7.6 cm)" if rng.random() < 0.1 else ""),
            "measurements": [{"elementName": "Overall", "elementDescription": None,
                              "elementMeasurements": {"Height": height_cm, "Width": round(height_cm * 0.8, 1)}}]
            if rng.random() < 0.8 else None,
            "creditLine": f"Gift of {rng.choice(['Mrs. Russell Sage', 'Robert Lehman', 'the Rogers Fund'])}, {accession_year}",
            "geographyType": "Made in" if culture else "",
            "city": "",
            "state": "",
            "county": "",
            "country": {"China": "China", "Japan": "Japan"}.get(culture, ""),
            "region": "",
            "subregion": "",
            "locale": "",
            "locus": "",
            "excavation": "",
            "river": "",
            "classification": classification,
            "rightsAndReproduction": "",
            "linkResource": "",
            "metadataDate": metadata_date,
            "repository": REPOSITORY,
            "objectURL": f"https://www.metmuseum.org/art/collection/search/{object_id}",
            "tags": self._tags(rng, schema),
            "objectWikidata_URL": f"https://www.wikidata.org/wiki/Q{90000000 + object_id}" if rng.random() < 0.3 else "",
            "isTimelineWork": rng.random() < 0.05,
            "GalleryNumber": str(rng.randint(100, 999)) if rng.random() < 0.3 else "",
        }
        keys = {"current": CURRENT_KEYS, "2020": SCHEMA_2020_KEYS, "2019": SCHEMA_2019_KEYS}[schema]
        obj = FakeObject(object_id, {k: record[k] for k in keys}, dept, metadata_day, status, kind, is_vase, images)
        self._fill_image_urls(obj)
        return obj

    @staticmethod
    def _constituents(rng: random.Random, artist: tuple, schema: str) -> list[dict]:
        if schema == "2019":
            return [{"role": "Artist", "name": artist[0]}]
        item = {"constituentID": rng.randint(1000, 200000), "role": "Artist", "name": artist[0],
                "constituentULAN_URL": "", "constituentWikidata_URL": "", "gender": artist[5]}
        if schema == "2020":
            del item["constituentID"]
        return [item]

    @staticmethod
    def _tags(rng: random.Random, schema: str) -> list | None:
        roll = rng.random()
        if roll < 0.15:
            return None
        if roll < 0.22:
            return []
        terms = rng.sample(_TAG_TERMS, rng.randint(1, 3))
        if schema == "2019":
            return terms
        return [{"term": t, "AAT_URL": f"http://vocab.getty.edu/page/aat/{300000000 + i}" if rng.random() < 0.9 else None,
                 "Wikidata_URL": f"https://www.wikidata.org/wiki/Q{1000 + i}" if rng.random() < 0.8 else None}
                for i, t in enumerate(terms)]

    # Queries the API routes answer.

    def list_ids(self, metadata_date: date | None = None, department_ids: list[int] | None = None) -> list[int]:
        wanted = set(department_ids) if department_ids else None
        since = metadata_date.isoformat() if metadata_date else None
        return [i for i in self.sorted_ids
                if (wanted is None or self.objects[i].department_id in wanted)
                and (since is None or self.objects[i].metadata_date >= since)]

    def search(self, q: str, has_images: bool = False, department_id: int | None = None) -> list[int]:
        needle = q.strip().lower()
        found = []
        for object_id in self.sorted_ids:
            obj = self.objects[object_id]
            if obj.status != "ok":
                continue
            if has_images and not obj.record["primaryImage"]:
                continue
            if department_id is not None and obj.department_id != department_id:
                continue
            if needle == "*" or needle in _search_text(obj.record):
                found.append(object_id)
        return found

    def summary(self) -> dict:
        """Counts a test or a human can check the served collection against."""
        objs = list(self.objects.values())
        ok = [o for o in objs if o.status == "ok"]
        return {
            "objects": len(objs),
            "listed": self.listed_count,
            "ok": len(ok),
            "loans": sum(o.status == "loan" for o in objs),
            "vanished": sum(o.status == "vanished" for o in objs),
            "vases": sum(o.is_vase for o in ok),
            "with_image": sum(bool(o.images) for o in ok),
            "images": sum(len(o.images) for o in ok),
            "missing_images": sum(len(o.images) for o in ok if o.images and o.images[0].missing),
        }


def _search_text(record: dict) -> str:
    tags = record.get("tags") or []
    terms = [t if isinstance(t, str) else (t.get("term") or "") for t in tags]
    return " ".join([record["title"], record["objectName"], record["culture"], *terms]).lower()
