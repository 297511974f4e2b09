"""Benchmark: Met ingest throughput and rate-limit fidelity against the fake Met server.

(a) N objects with images at 20 ms server latency, no rate limit: objects/s of our ingest
    (async client, bulk upserts) vs a baseline written the origin's way (sequential ``requests``
    and one INSERT per row, committed one by one). The baseline runs on a subset and is
    extrapolated per object (it says so in the table).
(b) the limit at 80 req/s and 50 ms latency: achieved request rate (>= 95% of the limit wanted)
    and the busiest 1 s window counted by the fake server (never above the limit).
(c) a full-mode discovery of the real API's 490,000-id listing (about 3.8 MB; the fake Met's
    ``--scale real``): its time and peak RSS, measured in a child process that does nothing but
    the discovery (``resource.getrusage`` ru_maxrss, next to its RSS after the imports).
The fake Met runs in a child process (``metgan fake-met serve``) with its images pre-rendered, so
neither contender pays for drawing them. Peak RSS is the ingest process's.

    python bench/ingest.py            # 5,000 objects (a), 800 requests (b)
    python bench/ingest.py --quick    # 400 objects (a), 240 requests (b)
    python bench/ingest.py --discovery-only    # (c) alone, a few seconds

Uses METGAN_DATABASE_URL's server when set, else PostgreSQL at 127.0.0.1:5432, else the embedded
server, always in a temporary database that is dropped at the end. Ends with ``speedup: <x>x``.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

LOCAL_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PARALLEL = 4  # batches at a time in (a), as the met_api pool's default 4 slots
UNLIMITED_RATE = 1e6  # requests/s in (a): far above what the fake Met can serve


def admin_url(workdir: Path) -> tuple[str, Path | None]:
    import psycopg2
    from sqlalchemy.engine import make_url

    url = os.environ.get("METGAN_DATABASE_URL")
    if url:
        return make_url(url).set(database="postgres").render_as_string(hide_password=False), None
    try:
        psycopg2.connect(LOCAL_ADMIN_URL, connect_timeout=3).close()
        return LOCAL_ADMIN_URL, None
    except psycopg2.OperationalError:
        from metgan.db import embedded

        data = workdir / "embedded"
        return embedded.ensure_server(data), data


def create_database(admin: str) -> str:
    import psycopg2
    from sqlalchemy.engine import make_url

    name = f"metgan_bench_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return make_url(admin).set(database=name).render_as_string(hide_password=False)


def drop_database(admin: str, url: str) -> None:
    import psycopg2
    from sqlalchemy.engine import make_url

    from metgan.db.engine import dispose_all

    dispose_all()
    conn = psycopg2.connect(admin)
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)')
    conn.close()


def truncate(url: str) -> None:
    import psycopg2

    conn = psycopg2.connect(url)
    with conn, conn.cursor() as cursor:
        cursor.execute("TRUNCATE met_objects, scrape_runs RESTART IDENTITY CASCADE")
    conn.close()


def baseline(api_url: str, db_url: str, images_dir: Path, ids: list[int]) -> dict:
    """The origin's way: one object at a time, requests.get, one INSERT + commit per row."""
    import psycopg2
    import requests

    conn = psycopg2.connect(db_url)
    cursor = conn.cursor()
    started = time.perf_counter()
    images = 0
    for object_id in ids:
        response = requests.get(f"{api_url}/objects/{object_id}", timeout=30)
        if response.status_code != 200:
            continue
        record = response.json()
        if "objectID" not in record:
            continue
        cursor.execute(
            "INSERT INTO met_objects (object_id, title, object_name, classification, department, "
            "is_public_domain, primary_image, raw) VALUES (%s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (object_id) DO NOTHING",
            (object_id, record.get("title"), record.get("objectName"), record.get("classification"),
             record.get("department"), record.get("isPublicDomain"), record.get("primaryImage"),
             json.dumps(record)))
        conn.commit()
        url = record.get("primaryImageSmall") or record.get("primaryImage")
        if url:
            image = requests.get(url, timeout=30)
            if image.status_code == 200:
                folder = images_dir / str(object_id)
                folder.mkdir(parents=True, exist_ok=True)
                (folder / "0.jpg").write_bytes(image.content)
                cursor.execute(
                    "INSERT INTO met_images (object_id, seq, url, status, path, bytes, sha256) "
                    "VALUES (%s, 0, %s, 'ok', %s, %s, %s) ON CONFLICT DO NOTHING",
                    (object_id, url, f"{object_id}/0.jpg", len(image.content),
                     hashlib.sha256(image.content).hexdigest()))
                conn.commit()
                images += 1
    seconds = time.perf_counter() - started
    conn.close()
    return {"objects": len(ids), "images": images, "seconds": seconds}


def ours(settings, batch_size: int, parallel: int) -> dict:
    """discover, then each batch's records and images as the DAG's mapped tasks do them, with
    ``parallel`` batches at a time (the met_api pool's slots)."""
    from concurrent.futures import ThreadPoolExecutor

    from metgan.met import ingest

    started = time.perf_counter()
    discovery = ingest.discover_object_ids("full", batch_size=batch_size, settings=settings)

    def one_batch(batch: dict) -> tuple[int, int]:
        fetched = ingest.fetch_records(batch, settings=settings)
        downloaded = ingest.download_images(batch, settings=settings)
        return downloaded["downloaded"], fetched["requests"] + downloaded["requests"]

    with ThreadPoolExecutor(parallel) as pool:
        results = list(pool.map(one_batch, discovery["batches"]))
    ingest.finish_run(discovery["run_id"], settings=settings)
    return {"objects": discovery["total"], "images": sum(r[0] for r in results),
            "requests": sum(r[1] for r in results), "seconds": time.perf_counter() - started}


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def set_env(**values) -> None:
    for key, value in values.items():
        os.environ[key] = str(value)


class FakeMetProcess:
    """``metgan fake-met serve`` in a child process (its own CPU, not this process's GIL)."""

    def __init__(self, workdir: Path, *, objects: int, seed: int, latency: float, scale: str = "default"):
        url_file = workdir / f"fake-met-{seed}.url"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "metgan", "-q", "fake-met", "serve", "--port", "0", "--seed", str(seed),
             "--scale", scale, "--objects", str(objects), "--image-variants", "24",
             "--fault", f"latency={latency}", "--url-file", str(url_file)],
            cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while not url_file.exists() or not url_file.read_text().strip():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the fake Met did not start: {self.process.stderr.read().decode()[-2000:]}")
            time.sleep(0.1)
        self.url = url_file.read_text().strip()
        parts = urlsplit(self.url)
        self.root = f"{parts.scheme}://{parts.netloc}"
        self.image_host = parts.hostname

    def admin(self, path: str, method: str = "GET") -> dict:
        import requests

        response = requests.request(method, f"{self.root}/__fake__/{path}", timeout=30)
        response.raise_for_status()
        return response.json()

    def object_ids(self) -> list[int]:
        import requests

        return sorted(requests.get(f"{self.url}/objects", timeout=60).json()["objectIDs"] or [])

    def warm_images(self, ids: list[int]) -> None:
        """Render every distinct scene once, so neither contender pays for drawing."""
        import requests

        from metgan.met.download import encode_url

        with requests.Session() as session:
            for object_id in ids:
                record = session.get(f"{self.url}/objects/{object_id}", timeout=30).json()
                if record.get("primaryImageSmall"):
                    session.get(encode_url(record["primaryImageSmall"]), timeout=30)
        self.admin("reset", "POST")

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()


DISCOVERY_CHILD = """
import json, resource, sys, time
from metgan.met import ingest
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
started = time.perf_counter()
discovery = ingest.discover_object_ids("full", batch_size=1000)
seconds = time.perf_counter() - started
print(json.dumps({"total": discovery["total"], "batches": len(discovery["batches"]), "seconds": seconds,
                  "rss_before_mb": before,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def full_discovery(workdir: Path) -> dict:
    """(c): discover_object_ids("full") of a 490,000-id listing, in a child process of its own."""
    server = FakeMetProcess(workdir, objects=400, seed=9, latency=0.0, scale="real")
    try:
        env = {**os.environ, "METGAN_MET_API_URL": server.url, "METGAN_IMAGE_HOSTS": server.image_host}
        result = subprocess.run([sys.executable, "-c", DISCOVERY_CHILD], cwd=REPO, env=env,
                                capture_output=True, text=True, timeout=300)
    finally:
        server.stop()
    if result.returncode != 0:
        raise RuntimeError(f"the discovery failed: {result.stderr[-2000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def discovery_rows(found: dict) -> list[tuple[str, str, str, str]]:
    return [("(c) full discovery of the real-size listing",
             f"{found['total']} ids in {found['batches']} batches", f"{found['seconds']:.1f} s",
             f"peak RSS {found['peak_rss_mb']:.0f} MB (ru_maxrss of a child doing only this; "
             f"{found['rss_before_mb']:.0f} MB after its imports)")]


def print_table(rows: list[tuple[str, str, str, str]]) -> None:
    header = ("case", "size", "time", "result")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(4)]
    print(" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
    print("-+-".join("-" * w for w in widths))
    for row in rows:
        print(" | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, to validate the benchmark")
    parser.add_argument("--objects", type=int, help="objects for (a) (default 5000, quick 400)")
    parser.add_argument("--baseline-objects", type=int, help="objects the baseline runs on (default 300, quick 60)")
    parser.add_argument("--rate-requests", type=int, help="about this many requests for (b) (default 800, quick 240)")
    parser.add_argument("--discovery-only", action="store_true", help="only (c), the 490,000-id discovery")
    args = parser.parse_args()
    n_objects = args.objects or (400 if args.quick else 5000)
    n_baseline = min(n_objects, args.baseline_objects or (60 if args.quick else 300))
    n_rate = args.rate_requests or (240 if args.quick else 800)

    import logging

    logging.basicConfig(level=logging.WARNING)
    from metgan.config import get_settings
    from metgan.db import get_engine, migrate

    for name in [n for n in os.environ if n.startswith("METGAN_")]:
        if name != "METGAN_DATABASE_URL":
            del os.environ[name]
    workdir = Path(tempfile.mkdtemp(prefix="metgan-bench-ingest-"))
    admin, embedded_dir = admin_url(workdir)
    db_url = create_database(admin)
    rows = []
    try:
        set_env(METGAN_DATABASE_URL=db_url, METGAN_DATA_DIR=workdir / "data")
        migrate(get_engine())
        if args.discovery_only:
            print_table(discovery_rows(full_discovery(workdir)))
            return 0

        # (a) throughput at 20 ms latency, no rate limit
        server = FakeMetProcess(workdir, objects=n_objects, seed=7, latency=0.02)
        try:
            set_env(METGAN_MET_API_URL=server.url, METGAN_IMAGE_HOSTS=server.image_host,
                    METGAN_MET_WORKERS=PARALLEL, METGAN_MET_CONCURRENCY=32)
            ids = server.object_ids()
            server.warm_images(ids[:n_baseline])
            base = baseline(server.url, db_url, workdir / "baseline-images", ids[:n_baseline])
            truncate(db_url)
            # The environment caps METGAN_MET_RATE at 1000 req/s, and (a) needs about 1,200 across
            # its batches: the settings are built here with the limiter out of the way, since (a)
            # measures the client and the database, not the limit ((b) measures that).
            unlimited = dataclasses.replace(get_settings(), met_rate=UNLIMITED_RATE)
            mine = ours(unlimited, batch_size=max(50, n_objects // 20), parallel=PARALLEL)
        finally:
            server.stop()
        base_rate = base["objects"] / base["seconds"]
        our_rate = mine["objects"] / mine["seconds"]
        speedup = our_rate / base_rate
        rows.append(("(a) baseline: sequential requests, INSERT+commit per row",
                     f"{base['objects']} objects, {base['images']} images (subset; per-object rate "
                     f"extrapolates to {n_objects / base_rate:.0f} s for {n_objects})",
                     f"{base['seconds']:.1f} s", f"{base_rate:.1f} objects/s"))
        rows.append((f"(a) ours: async client, bulk upserts, {PARALLEL} batches at once", f"{mine['objects']} objects, {mine['images']} images",
                     f"{mine['seconds']:.1f} s", f"{our_rate:.1f} objects/s"))

        # (b) rate fidelity at 80 req/s, 50 ms latency
        truncate(db_url)
        shutil.rmtree(workdir / "data" / "images", ignore_errors=True)
        server = FakeMetProcess(workdir, objects=max(20, int(n_rate / 1.9)), seed=8, latency=0.05)
        try:
            set_env(METGAN_MET_API_URL=server.url, METGAN_IMAGE_HOSTS=server.image_host,
                    METGAN_MET_RATE=80, METGAN_MET_WORKERS=1, METGAN_MET_CONCURRENCY=16)
            server.warm_images(server.object_ids())
            mine_b = ours(get_settings(), batch_size=1000, parallel=1)
            stats = server.admin("stats")
            log = server.admin("log")
        finally:
            server.stop()
        # The record phase and the image phase are each one continuous stream of requests; the
        # moments between them (listing a batch's images from the database) are not the limiter's.
        spans = []
        for endpoint in ("object", "image"):
            times = sorted(e["time"] for e in log if e["endpoint"] == endpoint)
            if len(times) > 1:
                spans.append((len(times) - 1, times[-1] - times[0]))
        achieved = sum(n for n, _ in spans) / sum(t for _, t in spans) if spans else 0.0
        times = sorted(e["time"] for e in log)
        overall = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0
        busiest = stats["max_requests_in_window"]
        rows.append(("(b) limit 80 req/s, 50 ms latency", f"{stats['requests']} requests",
                     f"{mine_b['seconds']:.1f} s",
                     f"{achieved:.1f} req/s while streaming = {100 * achieved / 80:.1f}% of the limit "
                     f"({overall:.1f} req/s over the whole run); busiest 1 s window: {busiest}"))
        rows.append(("peak RSS of the ingest process", "", "", f"{peak_rss_mb():.0f} MB"))
        truncate(db_url)
        rows.extend(discovery_rows(full_discovery(workdir)))
    finally:
        drop_database(admin, db_url)
        if embedded_dir is not None:
            from metgan.db import embedded

            embedded.stop_server(embedded_dir)
        shutil.rmtree(workdir, ignore_errors=True)

    print_table(rows)
    rate_ok = achieved >= 0.95 * 80 and busiest <= 80
    print(f"rate check: {'ok' if rate_ok else 'FAILED'} (at least 95% of 80 req/s, never above 80 in any 1 s window)")
    print(f"speedup: {speedup:.1f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
