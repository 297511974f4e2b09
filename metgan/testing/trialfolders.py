"""Hand-made trial and search folders, written the way training writes them.

They let the renderer, the report, their tests and ``bench/render.py`` run without training a
model: sample grids are vases from :mod:`metgan.testing.vases` (the one drawer) seen through noise
that clears epoch by epoch, and the scores follow plausible curves. Test scaffolding, not product:
no product package imports this (``tests/unit/test_layering.py``). Everything else is the trainer's: the config is a real
:class:`~metgan.gan.config.GanConfig` (so only real keys, validated), trial.json starts from
:func:`metgan.trialdir.pending_trial_info` and takes the keys the trainer adds, every metrics
line has the trainer's keys, and all of it is written through :mod:`metgan.trialdir`
(``tests/integration/test_report.py`` checks a folder of a tiny real training run renders and
reports the same way).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import math
from pathlib import Path

import numpy as np
from PIL import Image

from metgan import trialdir
from metgan.gan.config import GanConfig
from metgan.testing.vases import vase, vase_images

DEFAULT_OVERRIDES = {"g_lr": 0.0005, "batch_size": 16, "diffaugment": ["color"]}


MANIFEST_HEADER = "file,sha256,object_id,image_seq,width,height,mode,source_width,source_height".split(",")


@functools.lru_cache(maxsize=4096)
def _clean(seed: int, scene: int, height: int, width: int) -> np.ndarray:
    # Every epoch's grid shows the same vases: draw each once (a 100-epoch bench trial draws 1,600 tiles).
    pixels = vase(seed, scene, width=width, height=height).astype(np.float64)
    pixels.flags.writeable = False
    return pixels


def _tile(seed: int, scene: int, height: int, width: int, sharpness: float) -> np.ndarray:
    """Vase ``scene`` of ``seed`` seen through noise: ``sharpness`` 0 is noise, 1 the clean photograph."""
    clean = _clean(seed, scene, height, width)
    noise = np.random.default_rng([seed, scene]).random((height, width, 3)) * 255
    return np.clip(sharpness * clean + (1 - sharpness) * noise, 0, 255).astype(np.uint8)


def sample_grid(epoch: int, epochs: int, *, rows: int = 4, cols: int = 4, height: int = 40,
                width: int = 32, seed: int = 0, first_scene: int = 0) -> Image.Image:
    """The grid of the fixed latents at ``epoch``: the same vases every epoch, sharper as it trains."""
    sharpness = 1 - math.exp(-4 * epoch / max(epochs, 1)) if epoch else 0.0
    grid = np.zeros((rows * height, cols * width, 3), np.uint8)
    for index in range(rows * cols):
        r, c = divmod(index, cols)
        grid[r * height:(r + 1) * height, c * width:(c + 1) * width] = _tile(seed, first_scene + index, height,
                                                                             width, sharpness)
    return Image.fromarray(grid)


def _metrics_line(epoch: int, epochs: int, rng: np.random.Generator, swd_every: int,
                  collapse_from: int | None) -> trialdir.MetricsLine:
    progress = epoch / max(epochs, 1)
    collapsed = collapse_from is not None and epoch >= collapse_from
    swd = None
    if epoch % swd_every == 0 or epoch == epochs:
        swd = round(float(80 * math.exp(-3 * progress) + 6 + rng.normal(0, 1.5)), 3)
        if collapsed:
            swd = round(swd * 2.5, 3)
    scored = swd is not None
    return trialdir.MetricsLine(
        epoch=epoch,
        d_loss=round(float(0.69 + 0.35 * math.exp(-5 * progress) + rng.normal(0, 0.03)), 4),
        g_loss=round(float(0.8 + 0.9 * progress + rng.normal(0, 0.06) + (2.0 if collapsed else 0)), 4),
        d_acc_real=round(float(min(1, 0.6 + 0.2 * progress + rng.normal(0, 0.02))), 4),
        d_acc_fake=round(float(min(1, 0.55 + 0.25 * progress + rng.normal(0, 0.02))), 4),
        swd=swd,
        swd_real=round(float(4.5 + rng.normal(0, 0.2)), 3) if scored else None,
        swd_levels=None,
        diversity=round(float(0.05 if collapsed else 0.4 - 0.1 * progress), 4) if scored else None,
        diversity_real=0.45 if scored else None,
        color=None, color_real=None,
        color_distance=round(float(20 * (1 - progress) + 3), 3) if scored else None,
        swd_count=64 if scored else None,
        chroma=round(float(25 + 15 * progress), 2) if scored else None,
        chroma_real=42.0 if scored else None,
        precision=round(float(0.3 + 0.5 * progress), 4) if scored else None,
        precision_real=0.92 if scored else None,
        recall=round(float(0.05 if collapsed else 0.2 + 0.6 * progress), 4) if scored else None,
        recall_real=0.91 if scored else None,
        density=round(float(0.2 + 0.7 * progress), 4) if scored else None,
        density_real=0.97 if scored else None,
        coverage=round(float(0.05 if collapsed else 0.3 + 0.6 * progress), 4) if scored else None,
        coverage_real=0.96 if scored else None,
        kid=round(float(0.5 * math.exp(-3 * progress) + 0.01), 5) if scored else None,
        kid_real=-0.0014 if scored else None,
        recon_loss=None,  # the fastgan decoders' loss; a DCGAN trial has none
        ada_p=None,  # the adaptive augmentation's probability; null where ada_target is 0
        fid=None,
        within_std=round(float(2.0 if collapsed else 30 + 10 * progress), 3),
        across_std=round(float(1.0 if collapsed else 25 + 5 * progress), 3),
        images_per_s=round(float(120 + rng.normal(0, 5)), 2),
        wall_s=round(float(2.0 * epoch), 2),
    )


def make_trial(trial_dir: str | Path, *, epochs: int = 10, epochs_done: int | None = None,
               status: str = "completed", stop_reason: str | None = None, error: str | None = None,
               overrides: dict | None = None, label: str | None = None, swd_every: int = 2,
               rows: int = 4, cols: int = 4, height: int = 40, width: int = 32, seed: int = 0,
               generated: int = 8, final_grid: bool = False, collapse_from: int | None = None,
               search_name: str = "search") -> Path:
    """Write a trial folder with ``epochs_done`` epochs recorded (default: all of ``epochs``).

    ``overrides`` are GanConfig keys laid over the default preset (an unknown key is the
    GanConfigError training would raise); the trial's epochs, size and sample count are set too.
    """
    trial_dir = Path(trial_dir)
    done = epochs if epochs_done is None else epochs_done
    config = GanConfig.from_dict({**(DEFAULT_OVERRIDES if overrides is None else overrides), "epochs": epochs,
                                  "height": height, "width": width, "n_samples": rows * cols,
                                  "swd_every": swd_every})
    (trial_dir / trialdir.SAMPLES).mkdir(parents=True, exist_ok=True)
    trialdir.write_config(trial_dir, config.to_dict())
    info = trialdir.pending_trial_info(search_name=search_name, trial_id=trial_dir.name, epochs=epochs,
                                       overrides=config.overrides(), label=label or config.label())
    info.update(status=status, stop_reason=stop_reason, error=error, epochs_done=done,
                started_at="2026-11-28T18:00:00+00:00", finished_at="2026-11-28T18:30:00+00:00",
                wall_s=2.0 * done, device="CPU (2 cores)", hostname="test", pid=None, images_per_s=120.0,
                images_seen=done * 64, mixed_precision=False, dtype_policy="float32", xla=False,
                train_images=64, eval_images=64, eval_held_out=config.holdout > 0)
    trialdir.write_trial_info(trial_dir, info)
    rng = np.random.default_rng(seed)
    trialdir.write_metrics(trial_dir, [_metrics_line(epoch, epochs, rng, swd_every, collapse_from)
                                       for epoch in range(1, done + 1)])
    for epoch in range(0, done + 1):
        grid = sample_grid(epoch, epochs, rows=rows, cols=cols, height=height, width=width, seed=seed)
        with trialdir.atomic_path(trialdir.sample_path(trial_dir, epoch)) as temp:
            grid.save(temp, format="PNG")
    if final_grid:
        sample_grid(done, epochs, rows=rows * 2, cols=cols * 2, height=height, width=width,
                    seed=seed).save(trial_dir / trialdir.FINAL_GRID)
    if generated:
        (trial_dir / trialdir.GENERATED).mkdir(exist_ok=True)
        for index in range(generated):
            # Scenes 7.. of the trial's seed: a trial of seed 0 "generates" near copies of a seed-0
            # subset's images 7.., which the report must find and flag.
            tile = sample_grid(done, epochs, rows=1, cols=1, height=height, width=width, seed=seed,
                               first_scene=index + 7)
            tile.save(trialdir.generated_path(trial_dir, index))
    return trial_dir


def make_subset(subset_dir: str | Path, *, count: int = 64, height: int = 40, width: int = 32,
                seed: int = 0) -> Path:
    """Write a training subset folder like the subset builder's: ``images/<sha256 of the file>.png`` (vases
    0..count-1 of ``seed``) and ``manifest.csv``."""
    subset_dir = Path(subset_dir)
    (subset_dir / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for index, image in enumerate(vase_images(count, height, width, seed)):
        buffer = io.BytesIO()
        Image.fromarray(image).save(buffer, format="PNG")
        data = buffer.getvalue()
        sha = hashlib.sha256(data).hexdigest()
        (subset_dir / "images" / f"{sha}.png").write_bytes(data)
        rows.append([f"images/{sha}.png", sha, 1000 + index, 0, width, height, "RGB", width * 10, height * 10])
    with (subset_dir / "manifest.csv").open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(MANIFEST_HEADER)
        writer.writerows(rows)
    return subset_dir


def make_search(search_dir: str | Path, trials: dict[str, dict], *, subset_dir: str | Path | None = None,
                objective: str = "swd", direction: str = "min") -> Path:
    """Write a search folder: ``search.json`` and one trial folder per ``{trial_id: make_trial kwargs}``."""
    search_dir = Path(search_dir)
    search_dir.mkdir(parents=True, exist_ok=True)
    for seed, (trial_id, kwargs) in enumerate(trials.items()):
        make_trial(search_dir / trial_id, **{"seed": seed, "search_name": search_dir.name, **kwargs})
    trialdir.write_search(search_dir, trialdir.SearchRecord(
        name=search_dir.name, subset="vases", subset_dir=str(subset_dir) if subset_dir is not None else None,
        grid={"g_lr": [0.0002, 0.0005]}, base={}, objective=objective, direction=direction,
        created_at="2026-11-28T18:00:00+00:00", trials=list(trials)))
    return search_dir
