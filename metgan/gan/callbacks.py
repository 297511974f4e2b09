"""Keras callbacks that do a trial's side effects: images, metrics, stopping, checkpoints.

They share one :class:`TrialState` (folder, fixed latents, real images, stop reason, timing),
and run in the order :func:`trial_callbacks` gives: the stopping rules first (NaN guard,
collapse breaker, time budget), so the epoch's metrics line, sample grid and checkpoint know
whether this is the last epoch.

Every generator output is rescaled with ``(x + 1) * 127.5`` before any statistic (the origin
cast tanh output straight to uint8), and every preview uses N(0, 1) noise like training does
(the origin multiplied it by 255).
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from metgan.gan import metrics as metrics_lib
from metgan.gan._tf import tensorflow
from metgan.gan.config import GanConfig
from metgan.gan.data import to_uint8

tf = tensorflow()
import keras  # noqa: E402

log = logging.getLogger(__name__)

LOSS_KEYS = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake")


# --- files ------------------------------------------------------------------------------------

def write_json_atomic(path: Path, data: Any) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")
    os.replace(tmp, path)


def save_png_atomic(path: Path, array: np.ndarray) -> None:
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}.png")
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    image.save(tmp, format="PNG")
    os.replace(tmp, path)


def image_grid(images: np.ndarray, columns: int | None = None, pad: int = 2) -> np.ndarray:
    """uint8 NHWC images -> one uint8 HWC grid (white padding), as square as possible."""
    count, height, width, channels = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    grid = np.full((rows * (height + pad) + pad, columns * (width + pad) + pad, channels), 255, np.uint8)
    for index, image in enumerate(images):
        row, col = divmod(index, columns)
        y, x = pad + row * (height + pad), pad + col * (width + pad)
        grid[y:y + height, x:x + width] = image
    return grid


def finite(value) -> float | None:
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


# --- shared state -----------------------------------------------------------------------------

@dataclass
class TrialState:
    """What the callbacks share about the running trial."""

    trial_dir: Path
    config: GanConfig
    latents: np.ndarray
    reals: np.ndarray
    steps_per_epoch: int
    recorder: Any = None
    wall_offset: float = 0.0
    stop_reason: str | None = None
    stop_detail: str | None = None
    collapse_streak: int = 0
    swd_real: float | None = None
    diversity_real: float | None = None
    color_real: dict | None = None
    last_metrics: dict = field(default_factory=dict)
    best_metrics: dict = field(default_factory=dict)
    images_seen: int = 0
    train_seconds: float = 0.0
    epoch_seconds: float = 0.0
    epoch_steps: int = 0
    _started: float = field(default_factory=time.monotonic)

    @property
    def wall_s(self) -> float:
        return self.wall_offset + time.monotonic() - self._started

    @property
    def samples_dir(self) -> Path:
        return self.trial_dir / "samples"

    @property
    def metrics_path(self) -> Path:
        return self.trial_dir / "metrics.jsonl"

    def stop(self, model: keras.Model, reason: str, detail: str) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail
            log.warning("stopping trial %s: %s", self.trial_dir.name, detail)
        model.stop_training = True


def generate_uint8(generator: keras.Model, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
    out = [generator(latents[i:i + batch_size], training=False) for i in range(0, len(latents), batch_size)]
    return to_uint8(np.concatenate([np.asarray(o) for o in out], axis=0))


def write_sample_grid(path: Path, gan, latents: np.ndarray) -> np.ndarray:
    images = generate_uint8(gan.sample_generator, latents)
    save_png_atomic(path, image_grid(images))
    return images


# --- callbacks --------------------------------------------------------------------------------

class EpochClock(keras.callbacks.Callback):
    """Times the training part of each epoch (first in the list, before any evaluation)."""

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state
        self._start = 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()
        self.state.epoch_steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self.state.epoch_steps += self.state.config.steps_per_execution

    def on_epoch_end(self, epoch, logs=None):
        self.state.epoch_seconds = time.monotonic() - self._start
        self.state.epoch_steps = min(self.state.epoch_steps, self.state.steps_per_epoch)


class InitialImage(keras.callbacks.Callback):
    """samples/epoch_0000.png: the untrained generator on the fixed latents."""

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state

    def on_train_begin(self, logs=None):
        path = self.state.samples_dir / "epoch_0000.png"
        if not path.exists():
            write_sample_grid(path, self.model, self.state.latents)


class NanGuard(keras.callbacks.Callback):
    """Stop at once when a loss becomes NaN or infinite."""

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state

    def _check(self, logs, where: str):
        for key in ("d_loss", "g_loss"):
            if key in (logs or {}) and finite(logs[key]) is None:
                self.state.stop(self.model, "nan", f"{key} is {float(logs[key])} {where}")
                return

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs, f"at batch {batch}")

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs, f"at epoch {epoch + 1}")


# A fresh generator's inference-mode output is nearly flat until its batch-norm moving averages
# have caught up (a few dozen steps, whatever the learning rate): on 64 images, batch 32, the
# default model read "collapsed" at epochs 1-4 of every 5-epoch run. No epoch before the warm-up
# counts towards a collapse.
COLLAPSE_WARMUP_EPOCHS = 5
COLLAPSE_WARMUP_FRACTION = 0.1


def collapse_warmup(epochs: int) -> int:
    """The epochs a trial of ``epochs`` trains before the collapse breaker may count one."""
    return max(COLLAPSE_WARMUP_EPOCHS, math.ceil(COLLAPSE_WARMUP_FRACTION * epochs))


class CollapseBreaker(keras.callbacks.Callback):
    """Stop a trial whose generator has collapsed, after ``patience`` epochs in a row past the warm-up.

    Each epoch the generator (inference mode) draws the fixed latents plus as many fresh N(0, 1)
    ones; on the correctly rescaled 0-255 images it measures the mean within-image grayscale std
    (a flat, one-colour image has almost none) and the mean across-sample per-pixel std (every
    latent giving the same image has none). Either below its threshold counts as collapsed, from
    the epoch after :func:`collapse_warmup` on; both are measured (and logged) every epoch.
    """

    def __init__(self, state: TrialState, *, within_threshold: float, across_threshold: float,
                 patience: int, seed: int = 0, warmup: int | None = None):
        super().__init__()
        self.state = state
        self.within_threshold = within_threshold
        self.across_threshold = across_threshold
        self.patience = patience
        self.warmup = collapse_warmup(state.config.epochs) if warmup is None else warmup
        self.rng = np.random.default_rng(seed + 7)

    def measure(self) -> tuple[float, float]:
        latents = self.state.latents
        fresh = self.rng.standard_normal(latents.shape).astype(np.float32)
        images = generate_uint8(self.model.generator, np.concatenate([latents, fresh]))
        return metrics_lib.spread(images)

    def on_epoch_end(self, epoch, logs=None):
        if self.state.stop_reason == "nan":
            return
        within, across = self.measure()
        self.state.last_metrics["within_std"] = within
        self.state.last_metrics["across_std"] = across
        if epoch + 1 <= self.warmup:
            self.state.collapse_streak = 0
        elif within < self.within_threshold or across < self.across_threshold:
            self.state.collapse_streak += 1
            log.info("epoch %d looks collapsed (%d/%d): within-image std %.2f, across-sample std %.2f",
                     epoch + 1, self.state.collapse_streak, self.patience, within, across)
        else:
            self.state.collapse_streak = 0
        if self.state.collapse_streak >= self.patience:
            self.state.stop(self.model, "collapsed",
                            f"generator collapsed for {self.state.collapse_streak} epochs: within-image std "
                            f"{within:.2f} (threshold {self.within_threshold}), across-sample std "
                            f"{across:.2f} (threshold {self.across_threshold})")


class TimeBudget(keras.callbacks.Callback):
    """Stop once the trial has run ``time_budget_s`` (0 = no budget), checked after every step.

    A stop mid-epoch ends that epoch early: Keras still closes it, so its metrics line,
    samples and checkpoint are written, and the trial is marked stopped (not resumed).
    """

    def __init__(self, state: TrialState, budget_s: float):
        super().__init__()
        self.state = state
        self.budget_s = budget_s
        self._epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def _check(self):
        if self.budget_s and self.state.wall_s >= self.budget_s:
            self.state.stop(self.model, "time_budget", f"time budget of {self.budget_s:.0f}s used "
                            f"({self.state.wall_s:.0f}s) in epoch {self._epoch + 1}")

    def on_train_batch_end(self, batch, logs=None):
        self._check()

    def on_epoch_end(self, epoch, logs=None):
        self._check()


class EpochMetrics(keras.callbacks.Callback):
    """One flushed ``metrics.jsonl`` line per epoch (and the recorder's row)."""

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state
        self._eval_latents = np.random.default_rng(state.config.seed + 3).standard_normal(
            (len(metrics_lib.split_reals(state.reals)[0]), state.config.noise_dim)).astype(np.float32)

    def _quality(self, epoch: int, last: bool) -> dict:
        state, config = self.state, self.state.config
        out: dict[str, Any] = {"swd": None, "swd_real": None, "swd_levels": None, "diversity": None,
                               "fid": None}
        if not last and epoch % config.swd_every:
            return out
        fakes = generate_uint8(self.model.sample_generator, self._eval_latents)
        swd = metrics_lib.swd_against_reals(fakes, state.reals, seed=config.seed, real_baseline=state.swd_real)
        state.swd_real = swd["swd_real"]
        if state.diversity_real is None:
            state.diversity_real = metrics_lib.ms_ssim_diversity(state.reals, seed=config.seed)
            state.color_real = metrics_lib.color_stats(state.reals)
        color = metrics_lib.color_stats(fakes)
        out.update(swd, diversity=metrics_lib.ms_ssim_diversity(fakes, seed=config.seed),
                   diversity_real=state.diversity_real, color=color, color_real=state.color_real,
                   color_distance=metrics_lib.color_distance(color, state.color_real),
                   fid=metrics_lib.frechet_inception_distance(fakes, state.reals, config.inception_weights))
        return out

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        seconds = state.epoch_seconds
        images = state.epoch_steps * state.config.batch_size
        state.images_seen += images
        state.train_seconds += seconds
        last = self.model.stop_training or epoch + 1 >= state.config.epochs
        if state.stop_reason == "nan":
            quality = {"swd": None, "swd_real": state.swd_real, "swd_levels": None, "diversity": None, "fid": None}
        else:
            quality = self._quality(epoch + 1, last)
        line = {"epoch": epoch + 1, **{k: finite((logs or {}).get(k)) for k in LOSS_KEYS}, **quality,
                "within_std": state.last_metrics.get("within_std"),
                "across_std": state.last_metrics.get("across_std"),
                "images_per_s": images / seconds if seconds > 0 else None,
                "wall_s": round(state.wall_s, 3)}
        line = {k: (finite(v) if isinstance(v, (int, float, np.floating)) and k != "epoch" else v)
                for k, v in line.items()}
        with state.metrics_path.open("a") as handle:
            handle.write(json.dumps(line, sort_keys=True) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        state.last_metrics = dict(line)
        for key in ("swd", "color_distance"):
            if line.get(key) is not None and (key not in state.best_metrics or line[key] < state.best_metrics[key]):
                state.best_metrics[key] = line[key]
                state.best_metrics[f"{key}_epoch"] = line["epoch"]
        if state.recorder is not None:
            state.recorder.epoch(line)
        log.info("epoch %d/%d: %s", epoch + 1, state.config.epochs, epoch_summary(line))


def epoch_summary(line: dict) -> str:
    """The measured values of a metrics line for the task log; a score not taken this epoch is left out
    (it read "swd null (real null)" on every epoch between SWD epochs)."""
    parts = [f"{key} {line[key]:.4g}" for key in ("d_loss", "g_loss") if line.get(key) is not None]
    if line.get("swd") is not None:
        real = f" (real {line['swd_real']:.4g})" if line.get("swd_real") is not None else ""
        parts.append(f"swd {line['swd']:.4g}{real}")
    if line.get("images_per_s") is not None:
        parts.append(f"{line['images_per_s']:.1f} img/s")
    return " ".join(parts) or "no metrics measured"


class SampleGrid(keras.callbacks.Callback):
    """samples/epoch_NNNN.png from the fixed latents, every epoch, same size every time."""

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        if self.state.stop_reason != "nan":
            write_sample_grid(self.state.samples_dir / f"epoch_{epoch + 1:04d}.png", self.model, self.state.latents)


class Checkpointer(keras.callbacks.Callback):
    """checkpoints/ckpt_NNNN.npz every ``every`` epochs and at the last one; keeps the newest ``keep``."""

    def __init__(self, state: TrialState, every: int, keep: int):
        super().__init__()
        self.state = state
        self.every = every
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        if self.state.stop_reason == "nan":
            return
        done = epoch + 1
        if done % self.every == 0 or done >= self.state.config.epochs or self.model.stop_training:
            save_checkpoint(self.state, self.model, done, self.keep)


# --- checkpoints ------------------------------------------------------------------------------

def checkpoint_dir(trial_dir: Path) -> Path:
    return trial_dir / "checkpoints"


def save_checkpoint(state: TrialState, gan, epoch: int, keep: int) -> Path:
    folder = checkpoint_dir(state.trial_dir)
    folder.mkdir(exist_ok=True)
    meta = {"epoch": epoch, "collapse_streak": state.collapse_streak, "wall_s": state.wall_s,
            "images_seen": state.images_seen, "train_seconds": state.train_seconds,
            "swd_real": state.swd_real, "best_metrics": state.best_metrics,
            "stop_reason": state.stop_reason, "stop_detail": state.stop_detail}
    path = folder / f"ckpt_{epoch:04d}.npz"
    tmp = folder / f".ckpt_{epoch:04d}.tmp{os.getpid()}.npz"
    np.savez(tmp, meta=np.array(json.dumps(meta)), **gan.state_arrays())
    os.replace(tmp, path)
    for old in sorted(folder.glob("ckpt_*.npz"))[:-keep]:
        old.unlink()
    return path


def latest_checkpoint(trial_dir: Path) -> Path | None:
    found = sorted(checkpoint_dir(trial_dir).glob("ckpt_*.npz"))
    return found[-1] if found else None


def load_checkpoint(path: Path, gan) -> dict:
    """Restore the GAN from ``path``; return the checkpoint's metadata."""
    with np.load(path) as data:
        arrays = {k: data[k] for k in data.files if k != "meta"}
        meta = json.loads(str(data["meta"]))
    gan.load_state_arrays(arrays)
    return meta


def trial_callbacks(state: TrialState) -> list[keras.callbacks.Callback]:
    config = state.config
    return [
        EpochClock(state),
        InitialImage(state),
        NanGuard(state),
        CollapseBreaker(state, within_threshold=config.collapse_within_std,
                        across_threshold=config.collapse_across_std, patience=config.collapse_patience,
                        seed=config.seed),
        TimeBudget(state, config.time_budget_s),
        EpochMetrics(state),
        SampleGrid(state),
        Checkpointer(state, config.checkpoint_every, config.keep_checkpoints),
    ]
