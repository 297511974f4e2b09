"""Tiny GAN test data and configs: vase-like PNGs written into a subset folder with a manifest."""

from __future__ import annotations

import csv
import hashlib
import io
from pathlib import Path

import numpy as np
from PIL import Image

MANIFEST_HEADER = "file,sha256,object_id,image_seq,width,height,mode,source_width,source_height".split(",")

# Small enough for seconds per epoch on a shared 2-core machine.
TINY = {"height": 40, "width": 32, "g_blocks": 2, "d_blocks": 2, "g_filters": 16, "g_seed_filters": 8,
        "d_filters": 8, "noise_dim": 16, "batch_size": 16, "epochs": 2, "swd_every": 1, "n_samples": 9,
        "n_generated": 4}


def vase_images(count: int, height: int = 40, width: int = 32, seed: int = 0) -> np.ndarray:
    """uint8 NHWC vase silhouettes of random width, neck and colour on an off-white background."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    out = []
    for _ in range(count):
        centre = width / 2 + rng.uniform(-2, 2)
        body = rng.uniform(width * 0.2, width * 0.35)
        top = rng.uniform(height * 0.1, height * 0.25)
        profile = body * (0.6 + 0.4 * np.sin(np.pi * (yy - top) / (height * 0.85 - top)))
        mask = ((np.abs(xx - centre) < profile) & (yy > top) & (yy < height * 0.9)).astype(float)[..., None]
        colour = rng.uniform(40, 200, 3)
        shade = (0.7 + 0.3 * xx / width)[..., None]
        image = 235 * (1 - mask) + colour * mask * shade + rng.normal(0, 4, (height, width, 3))
        out.append(np.clip(image, 0, 255).astype(np.uint8))
    return np.stack(out)


def make_subset(folder: Path, count: int = 64, height: int = 40, width: int = 32, seed: int = 0) -> Path:
    """Write ``count`` PNGs under folder/images and a manifest.csv like the subset builder's."""
    (folder / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, image in enumerate(vase_images(count, height, width, seed)):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        (folder / "images" / f"{sha}.png").write_bytes(data)
        rows.append([f"images/{sha}.png", sha, 1000 + index, 0, width, height, "RGB", width * 10, height * 10])
    with (folder / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(rows)
    return folder
