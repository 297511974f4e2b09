"""Benchmark: importing MetObjects.csv, ours (streamed COPY + merge) vs the origin's pandas way.

Generates a CSV with the Met's real 54-column header and realistic values (pipe-separated artist
and tag lists in matching order, space-padded artist dates, quotes, commas, multi-line
dimensions, non-ASCII text), then imports it into a fresh PostgreSQL database, each method in its
own subprocess so each one's peak RSS (ru_maxrss) is its own:

- ours: ``metgan.met.csv_import.import_csv`` (typed columns, constituents, tags, raw row, hash),
  then the same file again (every row unchanged);
- baseline "plain": ``pandas.read_csv`` of the whole file + ``DataFrame.to_sql`` of the raw
  columns into one table: what issue 8 names as the origin's way (``read_csv`` + ``to_sql``); it
  does less work than ours (no splitting, no typing, no merge);
- baseline "origin-faithful": what the origin did to get the same result as ours: ``read_csv``,
  the pipe-separated artist and tag columns split position by position (vectorised pandas:
  ``str.split`` + ``explode``, values trimmed), and ``to_sql`` of the three tables (objects,
  constituents, tags).

Prints rows/s and peak RSS of each, the projection to the real file (~317 MB, ~490k rows), and
ends with ``speedup: <ratio>x`` against the plain ``read_csv + to_sql`` baseline (the one the
issue names; the line above it gives the ratio against the origin-faithful one too). The database is created on the server at 127.0.0.1:5432 (or
``--admin-url``) and dropped at the end.

    .venv/bin/python bench/csv_import.py            # 200,000 rows
    .venv/bin/python bench/csv_import.py --quick    # 20,000 rows
    .venv/bin/python bench/csv_import.py --repeat 3 # the fastest of three runs of each
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

SAMPLE = REPO.parent / "shared" / "met-samples" / "csv" / "MetObjects_wellformed_rows_utf8_comma_CONVERTED.csv"
REAL_BYTES = 317_650_992
REAL_ROWS = 490_000

DEPARTMENTS = ["The American Wing", "Greek and Roman Art", "Asian Art", "European Sculpture and Decorative Arts",
               "Drawings and Prints", "Photographs", "Egyptian Art", "Islamic Art", "Medieval Art",
               "Arms and Armor", "Costume Institute", "Modern and Contemporary Art"]
OBJECT_NAMES = ["Vase", "Vases", "Vase with cover", "Amphora, Type A", "Print", "Photograph", "Coin",
                "Bowl", "Plate", "Vase fragment", "Kylix", "Lekythos", "Textile fragment", "Drawing"]
TITLE_WORDS = ["Baluster", "Vase", "Covered", "Bowl", "Portrait", "Landscape", "with", "Flowers",
               "Birds", "of", "Zeus", "Kraków", "Ἀθηνᾶ", "北京", "Île-de-France", "Señora", "Müller",
               "“Famille rose”", "(one of a pair)", "Study,", "after", "Dürer"]
CULTURES = ["", "", "Chinese", "American", "Greek, Attic", "Japanese", "French", "Roman", "Egyptian"]
MEDIA = ["Porcelain", "Terracotta; red-figure", "Gelatin silver print", "Oil on canvas",
         "Earthenware, tin-glazed (faience)", "Bronze", "Silk and metallic thread", "Glass, \"Favrile\""]
CLASSIFICATIONS = ["", "Vases", "Ceramics", "Ceramics-Porcelain", "Prints", "Photographs", "Textiles"]
ARTISTS = [
    ("Designer", "Designed by", "Louis Comfort Tiffany", "American, New York 1848–1933 New York",
     "Tiffany, Louis Comfort", "American", 1848, 1933, "", 500030415, "Q312950"),
    ("Maker", "", "Tiffany Glass and Decorating Company", "American, 1892–1902",
     "Tiffany Glass and Decorating Company", "", 1892, 1902, "", 500331512, ""),
    ("Artist", "", "Katsushika Hokusai", "Japanese, Tokyo (Edo) 1760–1849 Tokyo (Edo)",
     "Katsushika Hokusai", "Japanese", 1760, 1849, "", 500060426, "Q5586"),
    ("Painter", "Attributed to", "the Berlin Painter", "Greek, Attic, active ca. 500–460 B.C.",
     "Berlin Painter", "Greek", -500, -460, "", 0, ""),
    ("Photographer", "", "Julia Margaret Cameron", "British (born India), Calcutta 1815–1879 Kalutara, Ceylon",
     "Cameron, Julia Margaret", "British", 1815, 1879, "Female", 500016571, "Q230120"),
    ("Manufacturer", "", "Meissen Manufactory", "German, 1710–present", "Meissen Manufactory",
     "German", 1710, 9999, "", 500224447, "Q157280"),
]
TAGS = [("Flowers", 300132399, "Q506"), ("Birds", 300266506, "Q5113"), ("Men", 300025928, "Q8441"),
        ("Women", 300025943, "Q467"), ("Horses", 300250148, "Q726"), ("Dionysus", 300375813, "Q40730"),
        ("Landscapes", 300015636, "Q191163"), ("Boats", 300178749, "Q35872")]


def header() -> list[str]:
    """The real header: the sample file's first line when it is here, else the Met's 54 names."""
    if SAMPLE.exists():
        with open(SAMPLE, encoding="utf-8-sig", newline="") as handle:
            return next(csv.reader(handle))
    from metgan.met.csv_read import CSV_HEADER

    return list(CSV_HEADER)


def make_row(rng: random.Random, object_id: int) -> list[str]:
    year = rng.randint(1870, 2022)
    artists = rng.sample(ARTISTS, rng.choice([0, 0, 1, 1, 1, 2, 3]))
    tags = rng.sample(TAGS, rng.choice([0, 0, 1, 2, 3]))
    begin = rng.randint(-3000, 1990)
    end = begin + rng.randint(0, 100)
    title_words = rng.sample(TITLE_WORDS, rng.randint(1, 5))
    dims = f"H. {rng.randint(1, 40)} {rng.randint(1, 15)}/16 in. ({rng.uniform(2, 100):.1f} cm)"
    if rng.random() < 0.2:
        dims += f"\r\nDiam. {rng.randint(1, 20)} in. ({rng.uniform(2, 50):.1f} cm)"
    geo = rng.random() < 0.3

    def joined(i: int, pad: bool = False) -> str:
        values = [str(a[i]) for a in artists]
        if pad:
            values = [v.ljust(10) for v in values]
        return "|".join(values)

    return [
        f"{year}.{rng.randint(1, 999)}.{rng.randint(1, 99)}",
        rng.choice(["False"] * 19 + ["True"]), "False", rng.choice(["True", "False"]),
        str(object_id), rng.choice(["", "", str(rng.randint(100, 999))]), rng.choice(DEPARTMENTS),
        str(year), rng.choice(OBJECT_NAMES), " ".join(title_words), rng.choice(CULTURES),
        rng.choice(["", "", "Qing dynasty (1644–1911)", "Archaic", "Edo period (1615–1868)"]),
        "", "", "",
        "".join(str(rng.randint(100, 300000)) for _ in artists),
        joined(0), "|".join(a[1] or " " for a in artists), joined(2), joined(3),
        "|".join(" " for _ in artists), joined(4), "|".join(a[5] or " " for a in artists),
        joined(6, pad=True), joined(7, pad=True), "|".join(a[8] for a in artists),
        "|".join(f"http://vocab.getty.edu/page/ulan/{a[9]}" if a[9] else "" for a in artists),
        "|".join(f"https://www.wikidata.org/wiki/{a[10]}" if a[10] else "" for a in artists),
        f"ca. {begin}–{end}" if begin > 0 else f"{-begin}–{-end} B.C.", str(begin), str(end),
        rng.choice(MEDIA), dims,
        f"Bequest of {rng.choice(['Flora E. Whiting', 'Mrs. H. O. Havemeyer', 'Jörg Müller'])}, {year}",
        "Made in" if geo else "", "", "", "", rng.choice(["China", "United States|England"]) if geo else "",
        "", "", "", "", "", "", rng.choice(CLASSIFICATIONS), rng.choice(["", "", "© Artist's estate"]),
        f"http://www.metmuseum.org/art/collection/search/{object_id}",
        rng.choice(["", f"https://www.wikidata.org/wiki/Q{rng.randint(1000, 99999999)}"]), "",
        "Metropolitan Museum of Art, New York, NY",
        "|".join(t[0] for t in tags), "|".join(f"http://vocab.getty.edu/page/aat/{t[1]}" for t in tags),
        "|".join(f"https://www.wikidata.org/wiki/{t[2]}" for t in tags),
    ]


def generate(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    names = header()
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)  # minimal quoting, \r\n, like the published file
        writer.writerow(names)
        for object_id in range(1, rows + 1):
            row = make_row(rng, object_id)
            assert len(row) == len(names)
            writer.writerow(row)


# --- children: each measures itself ------------------------------------------------------------


def child_ours(path: str, url: str) -> dict:
    os.environ["METGAN_DATABASE_URL"] = url
    os.environ["METGAN_IMPORT_DIR"] = str(Path(path).parent)  # import-csv reads only from there
    from metgan.met.csv_import import import_csv

    started = time.perf_counter()
    result = import_csv(path)
    seconds = time.perf_counter() - started
    return {"seconds": seconds, "rows": result["objects"], "errors": result["errors"],
            "constituents": result["constituents"], "tags": result["tags"],
            "detail": f"read+COPY+merge {result['read_seconds']:.1f} s (phases: "
                      + ", ".join(f"{k} {v:.1f}" for k, v in result["phases"].items())
                      + f"), finish {result['finish_seconds']:.1f} s"}


def child_pandas(path: str, url: str) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine

    started = time.perf_counter()
    frame = pd.read_csv(path, encoding="utf-8-sig")
    read = time.perf_counter() - started
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    frame.to_sql("metobjects_pandas", engine, if_exists="replace", index=False)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": len(frame),
            "detail": f"read_csv {read:.1f} s, to_sql {seconds - read:.1f} s"}


ARTIST_COLUMNS = ["Artist Role", "Artist Prefix", "Artist Display Name", "Artist Display Bio", "Artist Suffix",
                  "Artist Alpha Sort", "Artist Nationality", "Artist Begin Date", "Artist End Date",
                  "Artist Gender", "Artist ULAN URL", "Artist Wikidata URL"]
TAG_COLUMNS = ["Tags", "Tags AAT URL", "Tags Wikidata URL"]


def split_lists(frame, columns: list[str]):
    """The pipe lists of ``columns`` side by side: one row per (Object ID, position), shorter lists
    padded with NaN, values trimmed and "" as NaN: the cleaning the origin did, in pandas."""
    import pandas as pd

    rows = frame.loc[frame[columns].notna().any(axis=1), ["Object ID", *columns]]
    parts = []
    for name in columns:
        exploded = rows[name].str.split("|").explode()
        position = exploded.groupby(level=0).cumcount()
        parts.append(pd.Series(exploded.to_numpy(), name=name,
                               index=pd.MultiIndex.from_arrays([exploded.index, position])))
    split = pd.concat(parts, axis=1)
    split = split.apply(lambda column: column.str.strip())
    split = split.where(split != "")
    split.index.names = ["row", "seq"]
    split = split.reset_index()
    split.insert(0, "Object ID", rows["Object ID"].reindex(split["row"]).to_numpy())
    return split.drop(columns="row")


def child_pandas_split(path: str, url: str) -> dict:
    import pandas as pd
    from sqlalchemy import create_engine

    started = time.perf_counter()
    frame = pd.read_csv(path, encoding="utf-8-sig", dtype=str)
    read = time.perf_counter() - started
    constituents = split_lists(frame, ARTIST_COLUMNS)
    tags = split_lists(frame, TAG_COLUMNS).dropna(subset=["Tags"])
    objects = frame.drop(columns=ARTIST_COLUMNS + TAG_COLUMNS)
    split = time.perf_counter() - started - read
    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
    for name, table in (("objects", objects), ("constituents", constituents), ("tags", tags)):
        table.to_sql(f"metobjects_pandas_{name}", engine, if_exists="replace", index=False)
    seconds = time.perf_counter() - started
    engine.dispose()
    return {"seconds": seconds, "rows": len(frame), "constituents": len(constituents), "tags": len(tags),
            "detail": f"read_csv {read:.1f} s, split {split:.1f} s, to_sql x3 {seconds - read - split:.1f} s"}


CHILDREN = {"ours": child_ours, "pandas": child_pandas, "pandas-split": child_pandas_split}


def run_child(kind: str, path: Path, url: str) -> dict:
    output = subprocess.run([sys.executable, __file__, "--child", kind, "--file", str(path), "--url", url],
                            capture_output=True, text=True, check=False)
    if output.returncode != 0:
        raise SystemExit(f"{kind} run failed:\n{output.stderr[-3000:]}")
    return json.loads(output.stdout.strip().splitlines()[-1])


# --- main --------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=200_000, help="rows to generate (default 200,000)")
    parser.add_argument("--quick", action="store_true", help="20,000 rows: a quick check")
    parser.add_argument("--repeat", type=int, default=1,
                        help="runs of each method (interleaved); the fastest of each is reported")
    parser.add_argument("--admin-url", default="postgresql://postgres@127.0.0.1:5432/postgres",
                        help="a database on the server to create the benchmark database from")
    parser.add_argument("--child", choices=sorted(CHILDREN), help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        result = CHILDREN[args.child](args.file, args.url)
        result["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    import psycopg2
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    from metgan.db import migrate
    from metgan.db.engine import dispose_all

    rows = 20_000 if args.quick else args.rows
    name = f"metgan_bench_csv_{uuid.uuid4().hex[:8]}"
    url = make_url(args.admin_url).set(database=name).render_as_string(hide_password=False)
    with tempfile.TemporaryDirectory(prefix="metgan-bench-csv-") as folder:
        path = Path(folder) / "MetObjects.csv"
        started = time.perf_counter()
        generate(path, rows)
        size = path.stat().st_size
        print(f"generated {rows:,} rows, {size / 1e6:.1f} MB ({size / rows:.0f} bytes/row) "
              f"in {time.perf_counter() - started:.1f} s: {path.name}")

        admin = psycopg2.connect(args.admin_url)
        admin.autocommit = True
        admin.cursor().execute(f'CREATE DATABASE "{name}"')
        try:
            engine = create_engine(url.replace("postgresql://", "postgresql+psycopg2://", 1))
            migrate(engine)
            runs: dict[str, list[dict]] = {"ours": [], "again": [], "pandas": [], "pandas-split": []}
            for _ in range(max(args.repeat, 1)):
                with engine.begin() as conn:  # each first import starts from an empty store
                    conn.exec_driver_sql("TRUNCATE met_objects, csv_imports CASCADE")
                runs["ours"].append(run_child("ours", path, url))
                runs["again"].append(run_child("ours", path, url))
                runs["pandas"].append(run_child("pandas", path, url))
                runs["pandas-split"].append(run_child("pandas-split", path, url))
            engine.dispose()
            ours, again, baseline, faithful = (min(runs[k], key=lambda r: r["seconds"])
                                               for k in ("ours", "again", "pandas", "pandas-split"))
        finally:
            dispose_all()
            admin.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.close()

    if {ours["rows"], baseline["rows"], faithful["rows"]} != {rows}:
        raise SystemExit(f"row counts differ: ours {ours['rows']}, pandas {baseline['rows']}, "
                         f"pandas-split {faithful['rows']}, file {rows}")
    if (faithful["constituents"], faithful["tags"]) != (ours["constituents"], ours["tags"]):
        raise SystemExit(f"the origin-faithful baseline split differently: {faithful['constituents']} "
                         f"constituents, {faithful['tags']} tags; ours {ours['constituents']}, {ours['tags']}")
    print()
    print(f"{'method':<52}{'seconds':>9}{'rows/s':>10}{'MB/s':>8}{'peak RSS MB':>13}  detail")
    for label, result in (
        ("ours: stream + COPY + merge (first import)", ours),
        ("ours: same file again (all unchanged)", again),
        ("baseline plain: pandas read_csv + to_sql, 1 table", baseline),
        ("baseline origin-faithful: read_csv+split+to_sql x3", faithful),
    ):
        print(f"{label:<52}{result['seconds']:>9.2f}{rows / result['seconds']:>10,.0f}"
              f"{size / 1e6 / result['seconds']:>8.1f}{result['max_rss_mb']:>13.0f}  {result['detail']}")
    print(f"ours and the origin-faithful baseline wrote {ours['constituents']:,} constituents and "
          f"{ours['tags']:,} tags; the plain baseline splits nothing")

    scale = REAL_BYTES / size
    print()
    print(f"projected to the real file ({REAL_BYTES / 1e6:.0f} MB, ~{REAL_ROWS:,} rows; x{scale:.1f} this one):")
    print(f"  ours:                     {ours['seconds'] * scale / 60:5.1f} min, peak RSS ~{ours['max_rss_mb']:.0f} MB "
          "(a few chunks in memory, independent of file size)")
    print(f"  ours again (unchanged):   {again['seconds'] * scale / 60:5.1f} min")
    for label, result in (("baseline plain:          ", baseline), ("baseline origin-faithful:", faithful)):
        print(f"  {label} {result['seconds'] * scale / 60:5.1f} min, peak RSS ~{result['max_rss_mb'] * scale:,.0f} MB "
              "(the whole frame in memory; scales with the file)")
    speedup = baseline["seconds"] / ours["seconds"]
    print(f"target: >= 5x faster than read_csv + to_sql and peak RSS < 500 MB: "
          f"{'met' if speedup >= 5 and ours['max_rss_mb'] < 500 else 'NOT met'}")
    print(f"vs the origin-faithful baseline (same result as ours): {faithful['seconds'] / ours['seconds']:.1f}x")
    print("speedup below: ours (first import) vs the plain pandas read_csv + to_sql baseline")
    print(f"speedup: {speedup:.1f}x")


if __name__ == "__main__":
    main()
