"""Hand-made trial and search folders that follow the trial-folder contract (DESIGN.md).

They let the renderer, the report, their tests and ``bench/render.py`` run without training a
model: sample grids are drawn with numpy (soft vase-like silhouettes that sharpen epoch by epoch)
and the scores follow plausible curves.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from pathlib import Path

import numpy as np
from PIL import Image

DEFAULT_OVERRIDES = {"learning_rate": 0.0002, "batch_size": 32, "augment": "diffaugment"}


def _vase(rng: np.random.Generator, height: int, width: int, sharpness: float) -> np.ndarray:
    """One RGB vase silhouette on a light ground; ``sharpness`` 0 is noise, 1 is a clean shape."""
    y = np.linspace(0.0, 1.0, height)[:, None]
    x = np.linspace(-1.0, 1.0, width)[None, :]
    belly = 0.35 + 0.25 * rng.random()
    neck = 0.12 + 0.1 * rng.random()
    profile = neck + (belly - neck) * np.sin(np.pi * np.clip(y * 1.1 - 0.05, 0, 1)) ** 1.5
    inside = (np.abs(x) < profile) & (y > 0.08) & (y < 0.95)
    hue = rng.random(3) * 0.6 + 0.2
    body = inside[..., None] * hue * (0.7 + 0.3 * np.cos(3 * x))[..., None]
    ground = (~inside)[..., None] * np.array([0.93, 0.91, 0.86])
    clean = body + ground
    noise = rng.random((height, width, 3))
    image = sharpness * clean + (1 - sharpness) * noise
    return (np.clip(image, 0, 1) * 255).astype(np.uint8)


def sample_grid(epoch: int, epochs: int, *, rows: int = 4, cols: int = 4, height: int = 40,
                width: int = 32, seed: int = 0) -> Image.Image:
    """The grid of the fixed latents at ``epoch``: the same vases every epoch, sharper as it trains."""
    sharpness = 1 - math.exp(-4 * epoch / max(epochs, 1)) if epoch else 0.0
    grid = np.zeros((rows * height, cols * width, 3), np.uint8)
    for index in range(rows * cols):
        rng = np.random.default_rng(seed * 1000 + index)
        tile = _vase(rng, height, width, sharpness)
        r, c = divmod(index, cols)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = tile
    return Image.fromarray(grid)


def _metrics_line(epoch: int, epochs: int, rng: np.random.Generator, swd_every: int,
                  collapse_from: int | None) -> dict:
    progress = epoch / max(epochs, 1)
    collapsed = collapse_from is not None and epoch >= collapse_from
    swd = None
    if epoch % swd_every == 0 or epoch == epochs:
        swd = round(float(80 * math.exp(-3 * progress) + 6 + rng.normal(0, 1.5)), 3)
        if collapsed:
            swd = round(swd * 2.5, 3)
    return {
        "epoch": epoch,
        "d_loss": round(float(0.69 + 0.35 * math.exp(-5 * progress) + rng.normal(0, 0.03)), 4),
        "g_loss": round(float(0.8 + 0.9 * progress + rng.normal(0, 0.06) + (2.0 if collapsed else 0)), 4),
        "d_acc_real": round(float(min(1, 0.6 + 0.2 * progress + rng.normal(0, 0.02))), 4),
        "d_acc_fake": round(float(min(1, 0.55 + 0.25 * progress + rng.normal(0, 0.02))), 4),
        "swd": swd,
        "swd_real": round(float(4.5 + rng.normal(0, 0.2)), 3) if swd is not None else None,
        "swd_levels": None,
        "diversity": round(float(0.05 if collapsed else 0.4 - 0.1 * progress), 4) if swd is not None else None,
        "images_per_s": round(float(120 + rng.normal(0, 5)), 2),
        "wall_s": round(float(2.0 * epoch), 2),
    }


def make_trial(trial_dir: str | Path, *, epochs: int = 10, epochs_done: int | None = None,
               status: str = "completed", stop_reason: str | None = None, error: str | None = None,
               overrides: dict | None = None, label: str | None = None, swd_every: int = 2,
               rows: int = 4, cols: int = 4, height: int = 40, width: int = 32, seed: int = 0,
               generated: int = 8, final_grid: bool = False, collapse_from: int | None = None,
               search_name: str = "search") -> Path:
    """Write a trial folder with ``epochs_done`` epochs recorded (default: all of ``epochs``)."""
    trial_dir = Path(trial_dir)
    done = epochs if epochs_done is None else epochs_done
    overrides = dict(DEFAULT_OVERRIDES if overrides is None else overrides)
    (trial_dir / "samples").mkdir(parents=True, exist_ok=True)
    config = {"preset": "default", "epochs": epochs, "latent_dim": 100, "image_size": [height, width],
              "learning_rate": 0.0002, "batch_size": 64, "augment": "none", "loss": "ns"}
    config.update(overrides)
    (trial_dir / "config.json").write_text(json.dumps(config, indent=2))
    info = {
        "search_name": search_name, "trial_id": trial_dir.name, "status": status,
        "stop_reason": stop_reason, "error": error, "epochs_done": done, "epochs": epochs,
        "started_at": "2026-11-28T18:00:00Z", "finished_at": "2026-11-28T18:30:00Z",
        "wall_s": 2.0 * done, "device": "cpu", "hostname": "test", "images_per_s": 120.0,
        "overrides": overrides, "label": label or ", ".join(f"{k}={v}" for k, v in overrides.items()),
    }
    (trial_dir / "trial.json").write_text(json.dumps(info, indent=2))
    rng = np.random.default_rng(seed)
    with open(trial_dir / "metrics.jsonl", "w") as handle:
        for epoch in range(1, done + 1):
            handle.write(json.dumps(_metrics_line(epoch, epochs, rng, swd_every, collapse_from)) + "\n")
    for epoch in range(0, done + 1):
        grid = sample_grid(epoch, epochs, rows=rows, cols=cols, height=height, width=width, seed=seed)
        grid.save(trial_dir / "samples" / f"epoch_{epoch:04d}.png")
    if final_grid:
        sample_grid(done, epochs, rows=rows * 2, cols=cols * 2, height=height, width=width,
                    seed=seed).save(trial_dir / "final_grid.png")
    if generated:
        (trial_dir / "generated").mkdir(exist_ok=True)
        for index in range(generated):
            tile = sample_grid(done, epochs, rows=1, cols=1, height=height, width=width,
                               seed=seed * 100 + index + 7)
            tile.save(trial_dir / "generated" / f"{index:03d}.png")
    return trial_dir


def make_subset(subset_dir: str | Path, *, count: int = 24, height: int = 40, width: int = 32,
                seed: int = 0) -> Path:
    """Write a training subset folder (``images/<sha256>.png`` and ``manifest.csv``)."""
    subset_dir = Path(subset_dir)
    (subset_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index in range(count):
        tile = sample_grid(1, 1, rows=1, cols=1, height=height, width=width, seed=seed * 100 + index)
        data = tile.tobytes()
        sha = hashlib.sha256(data).hexdigest()
        name = f"images/{sha}.png"
        tile.save(subset_dir / name)
        rows.append({"file": name, "sha256": sha, "object_id": 1000 + index, "image_seq": 0,
                     "width": width, "height": height, "mode": "RGB", "source_width": width * 10,
                     "source_height": height * 10})
    with open(subset_dir / "manifest.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return subset_dir


def make_search(search_dir: str | Path, trials: dict[str, dict], *, subset_dir: str | Path | None = None,
                objective: str = "swd", direction: str = "min") -> Path:
    """Write a search folder: ``search.json`` and one trial folder per ``{trial_id: make_trial kwargs}``."""
    search_dir = Path(search_dir)
    search_dir.mkdir(parents=True, exist_ok=True)
    for seed, (trial_id, kwargs) in enumerate(trials.items()):
        make_trial(search_dir / trial_id, **{"seed": seed, "search_name": search_dir.name, **kwargs})
    search = {"name": search_dir.name, "subset": "vases",
              "subset_dir": str(subset_dir) if subset_dir is not None else None,
              "grid": {"learning_rate": [0.0002, 0.0005]}, "objective": objective,
              "direction": direction, "created_at": "2026-11-28T18:00:00Z", "trials": list(trials)}
    (search_dir / "search.json").write_text(json.dumps(search, indent=2))
    return search_dir
