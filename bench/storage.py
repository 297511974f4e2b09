"""Benchmark: the demo-sized pipeline on local folders against the same pipeline on an S3 server.

Both runs, in one process and one after the other: a search ingest of the fake Met's vases
(records and images), the vase subset build at 32x40 and one short training (preset default,
small batch), each with an empty database and an empty worker cache. The S3 run uses moto's
server mode on 127.0.0.1 (a real HTTP S3 endpoint) in its own process, as a real store is; every file goes through it as on separate
hosts (ingest puts images, the build fetches and puts, training stages the subset and syncs
its trial folder at every checkpoint).

Prints each stage's seconds in both runs and their ratio (S3 / local), and the training
images/s of both. Targets: training images/s within 5% of local (the subset is staged once and
read from local disk), ingest and subset within 1.5x of local. Ends with
``speedup: <x>x`` = the S3 run's training images/s / the local run's (1.00x = no cost).

    python bench/storage.py            # 400 objects, 20 epochs
    python bench/storage.py --quick    # 120 objects, 3 epochs: checks the script runs

Needs PostgreSQL at 127.0.0.1:5432 (user postgres) or METGAN_DATABASE_URL's server: it creates
and drops a scratch database per run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TRAIN = {"batch_size": 16, "swd_every": 5, "checkpoint_every": 5, "n_generated": 8}


def run(kind: str, env: dict, objects: int, epochs: int) -> dict:
    """The three stages under ``env`` (the METGAN_* settings of this run); seconds per stage."""
    from metgan import pipeline
    from metgan.config import get_settings
    from metgan.db import get_engine
    from metgan.db.migrations import migrate
    from metgan.gan import search
    from metgan.images.subset import build_subset

    for name in [n for n in os.environ if n.startswith("METGAN_")]:
        del os.environ[name]
    os.environ.update(env)
    settings = get_settings()
    migrate(get_engine(settings))
    times = {}
    started = time.perf_counter()
    pipeline.run_ingest("search", query="vase", limit=objects, batch_size=100, new_run=True, settings=settings)
    times["ingest"] = time.perf_counter() - started
    started = time.perf_counter()
    built = build_subset("vases", {"size": "32x40"}, settings=settings, workers=2)
    times["subset"] = time.perf_counter() - started
    started = time.perf_counter()
    plan = search.plan_trials("bench", {"loss": ["non-saturating"]}, subset="vases",
                              base={**TRAIN, "epochs": epochs}, settings=settings)
    search.train_planned("bench", plan, settings=settings)
    times["training"] = time.perf_counter() - started
    [row] = search.leaderboard("bench", settings=settings)
    trial_key = f"bench/{row['trial_id']}/trial.json"
    info = json.loads(settings.results_store.read_bytes(trial_key))
    print(f"  {kind}: {built['ok']} vases, trial {info['status']} after {info['epochs_done']} epochs, "
          f"{info['images_per_s']:.1f} images/s", flush=True)
    return {**times, "images_per_s": info["images_per_s"], "vases": built["ok"]}


def server_rate(s3, folder: Path, count: int = 128, size: int = 3000) -> tuple[float, float]:
    """The server's own pace on this machine: bare s3fs puts, then gets, of ``count`` files of
    ``size`` bytes with STORE_CONCURRENCY in flight (requests/s each). No client can move a
    subset's files faster than this; metgan's stages are measured against local folders, and
    this line says how much of their S3 time is the server's."""
    from concurrent.futures import ThreadPoolExecutor

    import fsspec

    from metgan.storage import STORE_CONCURRENCY

    fs = fsspec.filesystem("s3", use_listings_cache=False, **s3.options)
    folder.mkdir(parents=True, exist_ok=True)
    names = [f"{i}.bin" for i in range(count)]
    for name in names:
        (folder / name).write_bytes(os.urandom(size))
    rates = []
    for action in (lambda n: fs.put_file(str(folder / n), f"{s3.bucket}/rate/{n}"),
                   lambda n: fs.get_file(f"{s3.bucket}/rate/{n}", str(folder / f"got-{n}"))):
        started = time.perf_counter()
        with ThreadPoolExecutor(STORE_CONCURRENCY) as pool:
            list(pool.map(action, names))
        rates.append(count / (time.perf_counter() - started))
    return rates[0], rates[1]


def warm_up(folder: Path) -> None:
    """One throwaway epoch, so neither run pays TensorFlow's first-use start-up."""
    from metgan.gan.config import GanConfig
    from metgan.gan.trial import run_trial
    from metgan.testing.vases import vase_images

    config = GanConfig.from_dict({**TRAIN, "height": 40, "width": 32, "epochs": 1})
    run_trial(folder / "warm-up", config, None, images=vase_images(64, height=40, width=32, seed=1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="120 objects, 3 epochs: checks the script runs")
    parser.add_argument("--objects", type=int, default=None, help="objects in the fake collection (default 400)")
    parser.add_argument("--epochs", type=int, default=None, help="training epochs (default 20)")
    args = parser.parse_args()
    objects = args.objects or (120 if args.quick else 400)
    epochs = args.epochs or (3 if args.quick else 20)

    from bench.ingest import create_database, drop_database  # the scratch database helpers
    from metgan.storage import STORE_CONCURRENCY
    from metgan.testing.fakemet import run_in_thread
    from metgan.testing.s3server import s3_server

    admin = os.environ.get("METGAN_DATABASE_URL") or ADMIN_URL
    fake = run_in_thread(seed=3, objects=objects)  # the demo's fake Met: 400 px originals
    print(f"fake Met: {objects} objects (the demo's: 400 px originals); training {epochs} epochs at 32x40; 2 CPU workers for resizing")
    results = {}
    try:
        with s3_server(bucket="bench", own_process=True) as s3, tempfile.TemporaryDirectory(prefix="metgan-bench-storage-") as tmp:
            common = {"METGAN_MET_API_URL": fake.url, "METGAN_IMAGE_HOSTS": fake.image_host,
                      "METGAN_MET_RATE": "1000", "METGAN_MET_WORKERS": "1", "METGAN_MET_CONCURRENCY": "16"}
            warm_up(Path(tmp))
            puts, gets = server_rate(s3, Path(tmp) / "rate")
            for kind in ("local", "s3"):
                url = create_database(admin)
                where = ({"METGAN_DATA_DIR": f"{tmp}/local/data", "METGAN_RESULTS_DIR": f"{tmp}/local/results"}
                         if kind == "local" else s3.env(f"{kind}/data", f"{kind}/results"))
                env = {**common, **where, "METGAN_DATABASE_URL": url, "METGAN_CACHE_DIR": f"{tmp}/{kind}-cache"}
                try:
                    results[kind] = run(kind, env, objects, epochs)
                finally:
                    drop_database(admin, url)
    finally:
        fake.stop()
    local, remote = results["local"], results["s3"]
    print(f"\n{'stage':<10} {'local s':>9} {'s3 s':>9} {'s3/local':>9}  target")
    for stage, target in (("ingest", "<= 1.5x"), ("subset", "<= 1.5x"), ("training", "(wall, incl. staging)")):
        print(f"{stage:<10} {local[stage]:>9.2f} {remote[stage]:>9.2f} {remote[stage] / local[stage]:>8.2f}x  {target}")
    ratio = remote["images_per_s"] / local["images_per_s"]
    print(f"training images/s: local {local['images_per_s']:.1f}, s3 {remote['images_per_s']:.1f} "
          f"({ratio:.2f}x; target >= 0.95x)")
    print(f"the S3 server itself (moto, on these same 2 cores): {puts:.0f} PUT/s, {gets:.0f} GET/s "
          f"with bare s3fs calls, {STORE_CONCURRENCY} in flight")
    floor = local["subset"] + remote["vases"] / puts
    print(f"subset on S3 at this server's pace (local build + {remote['vases']} bare PUTs): {floor:.2f} s; "
          f"ours {remote['subset']:.2f} s ({remote['subset'] / floor:.2f}x of that floor)")
    print(f"speedup: {ratio:.2f}x")


if __name__ == "__main__":
    main()
