"""Keras callbacks that do a trial's side effects: images, metrics, stopping, checkpoints.

Values of an epoch travel in Keras' own ``logs`` dict, which every callback's ``on_epoch_end``
receives (the same dict, in list order): :class:`EpochClock` adds ``epoch_seconds`` and
``epoch_images``, :class:`CollapseBreaker` adds ``within_std``/``across_std``,
:class:`QualityMetrics` adds the scores (``swd``, ``diversity``, ``fid`` ...), and one writer,
:class:`EpochRecord`, persists the epoch: the metrics.jsonl line, the database row and the log
line. The one order that remains is "measure, then persist": the callbacks that add to ``logs``
and the stopping rules come before :class:`EpochRecord`, :class:`BestSnapshot`, :class:`SampleGrid`
and :class:`Checkpointer` (which must know whether this epoch is the last).
:func:`trial_callbacks` builds the list in that order, and :class:`EpochRecord` refuses an epoch
whose ``logs`` lack a producer's keys rather than write a line with silent gaps.

Every generator output is rescaled with ``(x + 1) * 127.5`` before any statistic (the origin
cast tanh output straight to uint8), and every preview uses N(0, 1) noise like training does
(the origin multiplied it by 255).
"""

from __future__ import annotations

import errno
import logging
import math
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from metgan import trialdir
from metgan.gan import export, verdict
from metgan.gan import metrics as metrics_lib
from metgan.gan._tf import tensorflow
from metgan.gan.config import GanConfig
from metgan.gan.data import to_uint8

tf = tensorflow()
import keras  # noqa: E402

log = logging.getLogger(__name__)

# recon_loss: fastgan only; ada_p: the adaptive augmentation's probability at the epoch's end
# (ada_target > 0 only); else null
LOSS_KEYS = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "recon_loss", "ada_p")


# --- files ------------------------------------------------------------------------------------

def save_png_atomic(path: Path, array: np.ndarray) -> None:
    image = Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array)
    with trialdir.atomic_path(path) as temp:
        image.save(temp, format="PNG")


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
    """What outlives an epoch: the trial's inputs, its stop reason and the running totals a
    checkpoint saves (an epoch's own values travel in Keras' ``logs``, not here)."""

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
    # metrics.FeatureReference: the reals' random-CNN features and PRDC/KID reference, taken once
    feature_reference: Any = None
    best_metrics: dict = field(default_factory=dict)
    images_seen: int = 0
    train_seconds: float = 0.0
    # Successive halving trains a trial in rungs: this run of it stops here (None: at config.epochs).
    until_epoch: int | None = None
    objective: str = "swd"
    direction: str = "min"
    best_epoch: int | None = None
    best_value: float | None = None
    search_name: str | None = None
    trial_id: str | None = None
    subset: str | None = None
    # a metgan.storage.Sync of the trial folder when the results live on an object store
    sync: Any = None
    # trial.json's content: each epoch's progress goes into it before the database hears of it
    info: dict | None = None
    _started: float = field(default_factory=time.monotonic)

    @property
    def last_epoch(self) -> int:
        """The epoch this run of the trial ends at: scores and a checkpoint are taken there."""
        return min(self.until_epoch or self.config.epochs, self.config.epochs)

    @property
    def wall_s(self) -> float:
        return self.wall_offset + time.monotonic() - self._started

    def stop(self, model: keras.Model, reason: str, detail: str) -> None:
        if self.stop_reason is None:
            self.stop_reason, self.stop_detail = reason, detail
            log.warning("stopping trial %s: %s", self.trial_dir.name, detail)
        model.stop_training = True


def is_better(value: float, best: float | None, direction: str) -> bool:
    """Whether ``value`` beats ``best`` (None: nothing yet) in ``direction`` ("min" or "max"); a tie is not."""
    if best is None:
        return True
    return value < best if direction == "min" else value > best


def generate_uint8(generator: keras.Model, latents: np.ndarray, batch_size: int = 64) -> np.ndarray:
    out = [generator(latents[i:i + batch_size], training=False) for i in range(0, len(latents), batch_size)]
    return to_uint8(np.concatenate([np.asarray(o) for o in out], axis=0))


def write_sample_grid(path: Path, gan, latents: np.ndarray) -> np.ndarray:
    images = generate_uint8(gan.sample_generator, latents)
    save_png_atomic(path, image_grid(images))
    return images


# --- callbacks --------------------------------------------------------------------------------

class EpochClock(keras.callbacks.Callback):
    """Times the training part of each epoch (first in the list, before any evaluation).

    Adds ``epoch_seconds`` and ``epoch_images`` to the epoch's ``logs`` and keeps the trial's
    running totals (images seen, seconds trained) in the state, which checkpoints carry.
    """

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state
        self._start = 0.0
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.monotonic()
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._steps += self.state.config.steps_per_execution

    def on_epoch_end(self, epoch, logs=None):
        seconds = time.monotonic() - self._start
        images = min(self._steps, self.state.steps_per_epoch) * self.state.config.batch_size
        self.state.images_seen += images
        self.state.train_seconds += seconds
        if logs is not None:
            logs.update(epoch_seconds=seconds, epoch_images=images)


class InitialImage(keras.callbacks.Callback):
    """samples/epoch_0000.png: the untrained generator on the fixed latents."""

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state

    def on_train_begin(self, logs=None):
        path = trialdir.sample_path(self.state.trial_dir, 0)
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
            if logs is not None:
                logs.update(within_std=None, across_std=None)
            return
        within, across = self.measure()
        if logs is not None:
            logs.update(within_std=within, across_std=across)
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


class QualityMetrics(keras.callbacks.Callback):
    """Adds the epoch's quality scores to ``logs`` (SWD, MS-SSIM diversity, colour, precision,
    recall, density, coverage, KID, FID).

    They are measured every ``swd_every`` epochs and at the last one; on other epochs (and after
    a NaN) the keys are present and null, so every metrics line has the same keys. Each score
    against the reals comes with its real-vs-real reference (``swd_real``, ``precision_real`` ...),
    computed once per trial on the same halves of the reals. The FID's Inception network is built
    once per trial, at the first evaluation, and only when a local weights file is configured.
    """

    KEYS = ("swd", "swd_real", "swd_levels", "swd_count", "diversity", "diversity_real", "color", "color_real",
            "color_distance", "chroma", "chroma_real", *metrics_lib.PRDC_LINE_KEYS, "fid")

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state
        self._eval_latents = np.random.default_rng(state.config.seed + 3).standard_normal(
            (len(metrics_lib.split_reals(state.reals)[0]), state.config.noise_dim)).astype(np.float32)
        self._inception = None
        self._inception_loaded = False

    def _fid(self, fakes: np.ndarray) -> float | None:
        if not self._inception_loaded:
            self._inception = metrics_lib.inception_model(self.state.config.inception_weights)
            self._inception_loaded = True
        if self._inception is None:
            return None
        return metrics_lib.frechet_inception_distance(fakes, self.state.reals, model=self._inception)

    def _measure(self) -> dict[str, Any]:
        state, config = self.state, self.state.config
        fakes = generate_uint8(self.model.sample_generator, self._eval_latents)
        swd = metrics_lib.swd_against_reals(fakes, state.reals, seed=config.seed, real_baseline=state.swd_real)
        state.swd_real = swd["swd_real"]
        if state.diversity_real is None:
            state.diversity_real = metrics_lib.ms_ssim_diversity(state.reals, seed=config.seed)
            state.color_real = metrics_lib.color_stats(state.reals)
        if state.feature_reference is None:
            state.feature_reference = metrics_lib.feature_reference(state.reals, seed=config.seed)
        prdc = metrics_lib.prdc_kid_against_reals(fakes, state.reals, seed=config.seed,
                                                  reference=state.feature_reference)
        color = metrics_lib.color_stats(fakes)
        return {**swd, **prdc, "diversity": metrics_lib.ms_ssim_diversity(fakes, seed=config.seed),
                "diversity_real": state.diversity_real, "color": color, "color_real": state.color_real,
                "color_distance": metrics_lib.color_distance(color, state.color_real),
                "chroma": metrics_lib.object_chroma(fakes), "chroma_real": metrics_lib.object_chroma(state.reals),
                "fid": self._fid(fakes)}

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        done = epoch + 1
        last = self.model.stop_training or done >= state.last_epoch
        scores: dict[str, Any] = dict.fromkeys(self.KEYS)
        if state.stop_reason == "nan":
            scores["swd_real"] = state.swd_real
        elif last or done % state.config.swd_every == 0:
            scores.update(self._measure())
        if logs is not None:
            logs.update(scores)


class EpochRecord(keras.callbacks.Callback):
    """The one writer of an epoch: its metrics.jsonl line (flushed), the recorder's row, the bests
    and the log line, all from the epoch's ``logs``."""

    # (key in logs, the callback that adds it): a missing one means that callback did not run first
    PRODUCED = {"epoch_seconds": "EpochClock", "within_std": "CollapseBreaker", "swd": "QualityMetrics"}
    BEST_KEYS = ("swd", "color_distance")

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        state, logs = self.state, logs or {}
        missing = [f"{key} (from {producer})" for key, producer in self.PRODUCED.items() if key not in logs]
        if missing:
            raise RuntimeError(f"EpochRecord runs after the callbacks that measure an epoch; logs lack "
                               f"{', '.join(missing)}")
        seconds = logs["epoch_seconds"]
        line: dict[str, Any] = {"epoch": epoch + 1, **{k: logs.get(k) for k in LOSS_KEYS},
                                **{k: logs.get(k) for k in QualityMetrics.KEYS},
                                "within_std": logs.get("within_std"), "across_std": logs.get("across_std"),
                                "images_per_s": logs["epoch_images"] / seconds if seconds > 0 else None,
                                "wall_s": round(state.wall_s, 3)}
        line = {k: (finite(v) if isinstance(v, (int, float, np.floating)) and k not in ("epoch", "swd_count") else v)
                for k, v in line.items()}
        trialdir.append_metrics(state.trial_dir, line)
        if state.info is not None:  # the folder says the true progress first, then the database
            state.info.update(epochs_done=line["epoch"], wall_s=line["wall_s"], images_seen=state.images_seen)
            trialdir.write_trial_info(state.trial_dir, state.info)  # type: ignore[arg-type]
        for key in self.BEST_KEYS:
            if line.get(key) is not None and (key not in state.best_metrics or line[key] < state.best_metrics[key]):
                state.best_metrics[key] = line[key]
                state.best_metrics[f"{key}_epoch"] = line["epoch"]
        if state.recorder is not None:
            state.recorder.epoch(line)
        log.info("epoch %d/%d: %s", epoch + 1, state.config.epochs, epoch_summary(line))


class BestSnapshot(keras.callbacks.Callback):
    """Keeps the generator of the best epoch by the search's objective in ``best/`` (EMA when enabled).

    Reads the objective from the epoch's ``logs`` (so it runs after the callback that measures it);
    an epoch without a finite value (SWD between evaluations, after a NaN) never counts, and a tie
    keeps the earlier epoch. The snapshot is the exported model (:mod:`metgan.gan.export`), with
    the epoch, its value and its metrics in ``model.json``.
    """

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        state = self.state
        value = finite((logs or {}).get(state.objective))
        if state.stop_reason == "nan" or value is None or not is_better(value, state.best_value, state.direction):
            return
        metrics = {key: finite(logs.get(key)) for key in (*LOSS_KEYS, "swd", "swd_real", "diversity",
                                                          "color_distance", *metrics_lib.PRDC_LINE_KEYS, "fid")}
        export.save_generator(state.trial_dir, self.model.sample_generator, trialdir.ModelRecord(
            trial_id=state.trial_id or state.trial_dir.name, search_name=state.search_name, subset=state.subset,
            epoch=epoch + 1, objective=state.objective, direction=state.direction, objective_value=value,
            metrics=metrics, ema=self.model.ema_generator is not None))
        state.best_epoch, state.best_value = epoch + 1, value
        score = (verdict.describe(value, metrics.get("swd_real")) if state.objective == "swd"
                 else f"{state.objective} {value:.4g}")
        log.info("best snapshot at epoch %d, generator saved: %s", epoch + 1, score)


def epoch_summary(line: dict) -> str:
    """The measured values of a metrics line for the task log; a score not taken this epoch is left out
    (it read "swd null (real null)" on every epoch between SWD epochs)."""
    parts = [f"{key} {line[key]:.4g}" for key in ("d_loss", "g_loss") if line.get(key) is not None]
    if line.get("swd") is not None:
        count = f" [{line['swd_count']} img a side]" if line.get("swd_count") is not None else ""
        parts.append(f"{verdict.describe(line['swd'], line.get('swd_real'))}{count};")
    if line.get("chroma") is not None:
        real = f" (real {line['chroma_real']:.3g})" if line.get("chroma_real") is not None else ""
        parts.append(f"chroma {line['chroma']:.3g}{real}")
    if line.get("precision") is not None and line.get("recall") is not None:
        parts.append(f"precision {line['precision']:.2f} recall {line['recall']:.2f}")
    if line.get("ada_p") is not None:
        parts.append(f"augment p {line['ada_p']:.2f}")
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
            write_sample_grid(trialdir.sample_path(self.state.trial_dir, epoch + 1), self.model, self.state.latents)


class Checkpointer(keras.callbacks.Callback):
    """A checkpoint every ``every`` epochs and at the last one; keeps the newest ``keep``."""

    def __init__(self, state: TrialState, every: int, keep: int):
        super().__init__()
        self.state = state
        self.every = every
        self.keep = keep

    def on_epoch_end(self, epoch, logs=None):
        if self.state.stop_reason == "nan":
            return
        done = epoch + 1
        if done % self.every == 0 or done >= self.state.last_epoch or self.model.stop_training:
            save_checkpoint(self.state, self.model, done, self.keep)


# --- checkpoints ------------------------------------------------------------------------------
# Keras' own weight file of the whole GAN (entries named by attribute: generator/, discriminator/,
# ema_generator/, g_optimizer/, d_optimizer/), and beside it a JSON with the epoch, the GAN's
# random-generator state and what the callbacks carry on with. The JSON is written last: a
# checkpoint without one (a kill between the two writes) does not count.

def _ensure_room(folder: Path, gan) -> None:
    """Refuse a checkpoint the disk has no room for before HDF5 starts it (on ENOSPC mid-file,
    HDF5 has crashed the process): the size of the newest checkpoint, else of every variable
    three times over (the weights and two Adam slots), with a margin."""
    existing = [path.stat().st_size for path in folder.glob("ckpt_*.weights.h5")]
    need = max(existing) if existing else 3 * sum(int(np.prod(v.shape)) * 4 for v in gan.weights)
    need = int(need * 1.2) + 64 * 1024
    stats = os.statvfs(folder)
    if stats.f_bavail * stats.f_frsize < need:
        raise OSError(errno.ENOSPC, f"No space left on device for a checkpoint of about {need:,} bytes", str(folder))


def save_checkpoint(state: TrialState, gan, epoch: int, keep: int) -> Path:
    weights, _ = trialdir.checkpoint_paths(state.trial_dir, epoch)
    weights.parent.mkdir(exist_ok=True)
    _ensure_room(weights.parent, gan)
    with trialdir.atomic_path(weights) as temp:
        gan.save_weights(temp)
    meta = trialdir.CheckpointMeta(
        epoch=epoch, rng_state=[int(v) for v in gan.rng.state.numpy()], wall_s=state.wall_s,
        collapse_streak=state.collapse_streak, images_seen=state.images_seen, train_seconds=state.train_seconds,
        swd_real=state.swd_real, best_metrics=state.best_metrics, stop_reason=state.stop_reason,
        stop_detail=state.stop_detail)
    path = trialdir.write_checkpoint_meta(state.trial_dir, meta)
    for old in trialdir.checkpoint_epochs(state.trial_dir)[:-keep]:
        for file in trialdir.checkpoint_paths(state.trial_dir, old):
            file.unlink(missing_ok=True)
    return path


def load_latest_checkpoint(trial_dir: Path, gan) -> trialdir.CheckpointMeta | None:
    """Restore the GAN from the newest checkpoint; return its metadata, or None when there is none.

    An older version's position-indexed ``.npz`` checkpoint is not loaded: the trial starts fresh.
    """
    epochs = trialdir.checkpoint_epochs(trial_dir)
    if not epochs:
        legacy = trialdir.legacy_checkpoints(trial_dir)
        if legacy:
            log.warning("trial %s: %d old-format .npz checkpoint(s) ignored (not loadable by this version); "
                        "training starts from epoch 0", Path(trial_dir).name, len(legacy))
        return None
    weights, _ = trialdir.checkpoint_paths(trial_dir, epochs[-1])
    meta = trialdir.read_checkpoint_meta(trial_dir, epochs[-1])
    gan.load_weights(weights)
    gan.rng.reset(np.asarray(meta["rng_state"], dtype=np.int64))
    return meta


class StoreSync(keras.callbacks.Callback):
    """After an epoch that wrote a checkpoint, push the trial folder's changes to the results store
    (the checkpoint's JSON record last, so a reader who finds it finds its weights); nothing to do
    when the results are a local folder."""

    def __init__(self, state: TrialState):
        super().__init__()
        self.state = state

    def on_epoch_end(self, epoch, logs=None):
        sync = self.state.sync
        if sync is None or not sync.store.is_remote:
            return
        epochs = trialdir.checkpoint_epochs(self.state.trial_dir)
        if epochs and epochs[-1] == epoch + 1:
            _, meta = trialdir.checkpoint_paths(self.state.trial_dir, epoch + 1)
            sync.push(last=[f"{sync.prefix}/{meta.relative_to(self.state.trial_dir).as_posix()}"])


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
        QualityMetrics(state),
        EpochRecord(state),
        BestSnapshot(state),
        SampleGrid(state),
        Checkpointer(state, config.checkpoint_every, config.keep_checkpoints),
        StoreSync(state),
    ]
