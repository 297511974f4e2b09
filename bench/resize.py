"""Benchmark: resizing Met-sized JPEGs to training size, ours vs the origin's way.

Generates photo-like 1600x2000 JPEGs (a lit object on a plain ground, with grain) into a temp
folder once (not timed), then converts all of them to 128x160 PNGs twice, in one run:

- ours: ``metgan.images.resize.convert_many`` (JPEG draft decoding at reduced scale, LANCZOS,
  background-padded shape policy, atomic writes, one process per core);
- baseline: the origin's loop, ``Image.open(p).resize(size).save(out)`` in one process.

Prints images/s and images/s per core for each and ends with ``speedup: <ratio>x``.

    .venv/bin/python bench/resize.py            # 1,000 images
    .venv/bin/python bench/resize.py --quick    # 100 images
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from metgan.images.resize import Shape, convert_many  # noqa: E402

SOURCE_SIZE = (1600, 2000)
TARGET = (128, 160)
DISTINCT = 24       # distinct generated pictures; the rest are byte copies (decoding cost is the same)


def photo_like(seed: int) -> Image.Image:
    """A vase-ish blob on a warm ground with a soft light gradient and sensor grain."""
    rng = np.random.default_rng(seed)
    width, height = SOURCE_SIZE
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    ground = np.array(rng.uniform(180, 240, 3), dtype=np.float32)
    light = 1.0 - 0.25 * (y / height)
    image = ground[None, None, :] * light[..., None]
    centre_x, centre_y = width / 2 + rng.uniform(-80, 80), height / 2 + rng.uniform(-80, 80)
    radius_x, radius_y = rng.uniform(350, 600), rng.uniform(600, 850)
    inside = ((x - centre_x) / radius_x) ** 2 + ((y - centre_y) / radius_y) ** 2 <= 1
    body = np.array(rng.uniform(30, 160, 3), dtype=np.float32)
    shade = 0.6 + 0.4 * np.cos((x - centre_x) / radius_x * 1.4)
    image[inside] = body * shade[inside][..., None]
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return Image.fromarray(np.clip(image, 0, 255).astype(np.uint8), "RGB")


def generate(folder: Path, count: int) -> list[Path]:
    distinct = []
    for index in range(min(DISTINCT, count)):
        path = folder / f"src_{index:04d}.jpg"
        photo_like(index).save(path, quality=90)
        distinct.append(path)
    paths = list(distinct)
    for index in range(len(distinct), count):
        path = folder / f"src_{index:04d}.jpg"
        shutil.copyfile(distinct[index % len(distinct)], path)
        paths.append(path)
    return paths


def run_ours(paths: list[Path], out: Path, workers: int) -> float:
    shape = Shape(width=TARGET[0], height=TARGET[1], policy="pad", mode="rgb")
    pairs = [(p, out / f"{p.stem}.png") for p in paths]
    started = time.perf_counter()
    results = list(convert_many(pairs, shape, workers=workers))
    seconds = time.perf_counter() - started
    bad = [r for r in results if r.status != "ok"]
    if bad:
        raise SystemExit(f"ours skipped {len(bad)} images, e.g. {bad[0].reason}")
    return seconds


def run_baseline(paths: list[Path], out: Path) -> float:
    started = time.perf_counter()
    for path in paths:
        Image.open(path).resize(TARGET).save(out / f"{path.stem}.png")
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000, help="how many source JPEGs (default 1000)")
    parser.add_argument("--quick", action="store_true", help="100 images: a quick check")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="our processes (default: cores)")
    args = parser.parse_args()
    count = 100 if args.quick else args.images
    cores = os.cpu_count() or 1

    with tempfile.TemporaryDirectory(prefix="metgan-bench-resize-") as temp:
        temp = Path(temp)
        (temp / "src").mkdir()
        print(f"generating {count} JPEGs of {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]} (not timed) ...", flush=True)
        paths = generate(temp / "src", count)
        for path in paths:          # read every file once so both runs start from the page cache
            path.read_bytes()
        for name in ("ours", "baseline"):
            (temp / name).mkdir()
        ours = run_ours(paths, temp / "ours", args.workers)
        baseline = run_baseline(paths, temp / "baseline")
        with Image.open(next((temp / "ours").glob("*.png"))) as sample:
            assert sample.size == TARGET, sample.size

    rows = [("ours (draft + LANCZOS, pool)", ours, args.workers), ("origin (open/resize/save, 1 process)",
                                                                    baseline, 1)]
    print(f"\n{count} images {SOURCE_SIZE[0]}x{SOURCE_SIZE[1]} -> {TARGET[0]}x{TARGET[1]} on {cores} cores")
    print(f"{'method':<38} {'seconds':>8} {'images/s':>9} {'processes':>9} {'images/s/core':>13}")
    for name, seconds, processes in rows:
        rate = count / seconds
        print(f"{name:<38} {seconds:>8.2f} {rate:>9.1f} {processes:>9} {rate / processes:>13.1f}")
    print(f"speedup: {baseline / ours:.1f}x")


if __name__ == "__main__":
    main()
