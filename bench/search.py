"""Benchmark: successive halving against the full grid it searches.

A 9-combination grid (G and D learning rates, 3 x 3) of small models on the fake Met's vases at
32x40 (WxH), searched twice through ``metgan.gan.search`` (the code path of ``metgan search run``
and of the gan_search DAG): once as a full grid, every trial trained to ``max_epochs``; once by
successive halving with factor 3 over the same combinations and the same per-trial maximum
(rungs 9 x max/9, 3 x max/3, 1 x max, each survivor resuming from its checkpoint). Prints each
search's best SWD (x1e3, lower is better), their ratio, and the training images each spent.
Targets: halving's best SWD within 10% of the full grid's best, with at most 45% of its images.

Ends with ``speedup: <ratio>x`` = full-grid training images / halving's.

    python bench/search.py            # 256 vases, max 27 epochs per trial (minutes on a CPU)
    python bench/search.py --quick    # 64 vases, max 3 epochs: checks the script runs

It needs a PostgreSQL server (the searches write their rows): ``METGAN_DATABASE_URL``'s, else
a scratch database on 127.0.0.1:5432 (user postgres) that it creates and drops.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

GRID = {"g_lr": [0.00005, 0.0002, 0.0008], "d_lr": [0.00005, 0.0002, 0.0008]}
SMALL = {"height": 40, "width": 32, "g_blocks": 2, "d_blocks": 2, "g_filters": 32, "g_seed_filters": 16,
         "d_filters": 16, "noise_dim": 32, "batch_size": 16, "n_samples": 9, "n_generated": 4,
         "checkpoint_every": 1000, "keep_checkpoints": 2, "time_budget_s": 0}
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def scratch_database() -> tuple[str, str | None]:
    """(database URL, the scratch database's name to drop afterwards, or None)."""
    if os.environ.get("METGAN_DATABASE_URL"):
        return os.environ["METGAN_DATABASE_URL"], None
    import psycopg2
    from sqlalchemy.engine import make_url

    name = f"metgan_bench_search_{uuid.uuid4().hex[:8]}"
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    conn.cursor().execute(f'CREATE DATABASE "{name}"')
    conn.close()
    return make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False), name


def drop_database(name: str) -> None:
    import psycopg2

    from metgan.db import engine

    engine.dispose_all()
    conn = psycopg2.connect(ADMIN_URL)
    conn.autocommit = True
    conn.cursor().execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def search_once(name: str, strategy: dict, base: dict, settings) -> dict:
    from metgan import trialdir
    from metgan.gan import search

    started = time.perf_counter()
    plan = search.plan_trials(name, GRID, subset="vases", base=base, settings=settings, strategy=strategy)
    search.train_planned(name, plan, settings=settings)
    seconds = time.perf_counter() - started
    board = search.leaderboard(name, settings=settings)
    best = next(row for row in board if row["objective"] is not None)
    summary = search.search_summary(name, settings=settings)
    label = (trialdir.read_trial_info(Path(best["path"])) or {}).get("label") or best["label"]  # the grid's keys
    return {"name": name, "best_swd": best["objective"], "best": label, "best_epochs": best["epochs_done"],
            "images": summary["images_spent"], "epochs": sum(row["epochs_done"] for row in board),
            "seconds": seconds, "rungs": summary["rungs"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="64 vases, max 3 epochs: checks the script runs")
    parser.add_argument("--images", type=int, default=None, help="vases in the subset (default 256, quick 64)")
    parser.add_argument("--max-epochs", type=int, default=None, help="per-trial maximum (default 27, quick 3)")
    args = parser.parse_args()
    count = args.images or (64 if args.quick else 256)
    max_epochs = args.max_epochs or (3 if args.quick else 27)

    with tempfile.TemporaryDirectory(prefix="metgan-bench-search-") as tmp:
        os.environ["METGAN_DATA_DIR"] = str(Path(tmp) / "data")
        os.environ["METGAN_RESULTS_DIR"] = str(Path(tmp) / "results")
        url, scratch = scratch_database()
        os.environ["METGAN_DATABASE_URL"] = url
        try:
            from metgan.config import get_settings
            from metgan.db import get_engine, migrations
            from metgan.testing.trialfolders import make_subset

            settings = get_settings()
            migrations.migrate(get_engine(settings))
            make_subset(settings.subsets_dir / "vases", count=count, height=40, width=32)
            # scores at every rung boundary of both searches (multiples of max/9, max/3, max)
            base = {**SMALL, "epochs": max_epochs, "swd_every": max(1, max_epochs // 9)}
            print(f"grid: 9 combinations of {', '.join(GRID)}; {count} vases at 32x40; "
                  f"max {max_epochs} epochs per trial")
            full = search_once("full-grid", {"strategy": "grid"}, base, settings)
            halving = search_once("halving", {"strategy": "halving", "factor": 3}, base, settings)
        finally:
            if scratch:
                drop_database(scratch)

    print(f"{'search':<10} {'best SWD':>9} {'epochs':>7} {'images':>9} {'seconds':>8}  best trial")
    for row in (full, halving):
        print(f"{row['name']:<10} {row['best_swd']:>9.2f} {row['epochs']:>7} {row['images']:>9,} "
              f"{row['seconds']:>8.1f}  {row['best']} ({row['best_epochs']} epochs)")
    print("halving rungs: " + " -> ".join(f"{r['trials']} x {r['epochs']} epochs" for r in halving["rungs"]))
    ratio = halving["best_swd"] / full["best_swd"]
    share = halving["images"] / full["images"]
    print(f"best SWD ratio (halving / full grid): {ratio:.3f} (target <= 1.10: "
          f"{'met' if ratio <= 1.10 else 'missed'})")
    print(f"training images: halving {halving['images']:,} = {share:.0%} of the full grid's {full['images']:,} "
          f"(target <= 45%: {'met' if share <= 0.45 else 'missed'})")
    print(f"speedup: {full['images'] / halving['images']:.2f}x")


if __name__ == "__main__":
    main()
