"""Run one trial into its trial folder (the DESIGN.md contract), resuming after a crash.

The folder's layout and files belong to :mod:`metgan.trialdir`; this module decides what goes
into them and when: ``config.json`` first, then ``trial.json`` "running", the callbacks' epochs,
the final images, and ``trial.json`` with the outcome. A rerun of a folder whose trial completed
or was stopped returns its summary without training; otherwise it resumes from the newest
checkpoint (weights of G, D and EMA G, optimizer slots, the random generator, the epoch), and
drops metrics lines and recorder rows of epochs after that checkpoint so nothing is duplicated.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import traceback
from pathlib import Path
from typing import Any

import numpy as np

from metgan import trialdir
from metgan.errors import TrainingError
from metgan.gan.config import GanConfig

log = logging.getLogger(__name__)

FINISHED = ("completed", "stopped")
# Reached the epochs a halving rung asked for: trained no further until a later rung asks.
AT_RUNG = ("paused", "pruned")
FINAL_GRID_IMAGES = 64
# The architectures that ``mixed_precision: auto`` trains in bfloat16 on a CPU with native bf16.
CPU_BF16_ARCHITECTURES: tuple[str, ...] = ()


def error_summary(exc: BaseException, limit: int = 500) -> str:
    """The error on one line, as a traceback's last line reads: "ExceptionType: message".

    trial.json keeps the full traceback in ``error``; this is what a report, the status command
    and a task log show (the traceback's first line says only "Traceback (most recent call last):").
    """
    message = " ".join(str(exc).split())
    text = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def device_info() -> tuple[str, bool]:
    """A device description and whether a GPU is present."""
    from metgan.gan._tf import tensorflow

    tf = tensorflow()
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        names = []
        for gpu in gpus:
            try:
                names.append(tf.config.experimental.get_device_details(gpu).get("device_name", gpu.name))
            except (RuntimeError, ValueError):
                names.append(gpu.name)
        return "GPU: " + ", ".join(names), True
    return f"CPU ({os.cpu_count()} cores)", False


def cpu_has_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bfloat16 natively (x86's AVX-512 BF16 or AMX; elsewhere TF
    emulates it, slower than float32)."""
    if cpuinfo is None:
        try:
            cpuinfo = Path("/proc/cpuinfo").read_text(errors="replace")
        except OSError:
            return False
    flags = set()
    for line in cpuinfo.splitlines():
        if line.startswith(("flags", "Features")):
            flags.update(line.split(":", 1)[-1].split())
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_switches(config: GanConfig, has_gpu: bool, *, bf16: bool | None = None) -> tuple[str, bool]:
    """(the Keras dtype policy, XLA) after resolving "auto".

    ``mixed_precision: on`` means float16 on a GPU and bfloat16 on a CPU (a CPU has no fast
    float16); ``auto`` turns it on with a GPU, and on a CPU with native bf16 (``bf16``, read from
    /proc/cpuinfo when not given) only for the architectures in CPU_BF16_ARCHITECTURES: none so
    far, since bench/quality.py measured bf16 slower at equal time on every one (README, "bf16 on
    CPU"). XLA: ``auto`` means on with a GPU only (no win on our CPU)."""
    if bf16 is None:
        bf16 = cpu_has_bf16()
    mode = config.mixed_precision
    if mode == "auto":
        on = has_gpu or (bf16 and config.architecture in CPU_BF16_ARCHITECTURES)
    else:
        on = mode == "on"
    precision = "float32" if not on else "mixed_float16" if has_gpu else "mixed_bfloat16"
    return precision, (has_gpu if config.xla == "auto" else config.xla == "on")


def _objective(lines: list[dict], key: str = "swd", trial_dir: Path | None = None) -> float | None:
    """The trial's objective: its best snapshot's value when it has one (what ranking compares),
    else the last measured value."""
    if trial_dir is not None and trialdir.has_best_snapshot(trial_dir):
        record = trialdir.read_model_record(trial_dir) or {}
        if record.get("objective") == key and isinstance(record.get("objective_value"), (int, float)):
            return float(record["objective_value"])
    values = [line[key] for line in lines if line.get(key) is not None]
    return values[-1] if values else None


def summary_from_files(trial_dir: Path, objective: str = "swd") -> dict:
    info = trialdir.read_trial_info(trial_dir) or {}
    lines = trialdir.read_metrics(trial_dir)
    record = trialdir.read_model_record(trial_dir) if trialdir.has_best_snapshot(trial_dir) else None
    return {"trial_id": info.get("trial_id"), "status": info.get("status"), "stop_reason": info.get("stop_reason"),
            "epochs": info.get("epochs_done", 0), "objective": _objective(lines, objective, trial_dir),
            "best_epoch": (record or {}).get("epoch"), "path": str(trial_dir)}


def final_metrics(lines: list[dict]) -> dict:
    """The last metrics line, with each value it lacks (the periodic scores) taken from the last
    epoch that had one."""
    final = dict(lines[-1]) if lines else {}
    for key in list(final):
        if final.get(key) is None:
            values = [line[key] for line in lines if line.get(key) is not None]
            final[key] = values[-1] if values else None
    return final


def split_holdout(reals: np.ndarray, config: GanConfig) -> tuple[np.ndarray, np.ndarray]:
    """(training images, evaluation images): with ``holdout`` > 0 the evaluation images (at most
    ``swd_images``) come from a random ``holdout`` share that is never trained on; with 0 they are
    drawn from the training images (memorisation then cannot show in the scores)."""
    order = np.random.default_rng(config.seed + 11).permutation(len(reals))
    if config.holdout > 0:
        held = max(4, round(config.holdout * len(reals)))
        if held >= len(reals):
            raise TrainingError(f"holdout {config.holdout} of {len(reals)} images leaves none to train on")
        return reals[np.sort(order[held:])], reals[np.sort(order[:held][: config.swd_images])]
    return reals, reals[np.sort(order[: config.swd_images])]


def run_trial(trial_dir: Path | str, config: GanConfig, subset_dir: Path | str, *, search_name: str | None = None,
              trial_id: str | None = None, recorder: Any = None, images: np.ndarray | None = None,
              objective: str = "swd", until_epoch: int | None = None, direction: str = "min",
              subset_name: str | None = None, sync: Any = None) -> dict:
    """Train (or resume, or skip) the trial in ``trial_dir``; return its summary.

    ``until_epoch`` (successive halving's rung) trains only up to that epoch: the trial is then
    ``paused`` (with a checkpoint there) unless that is its last epoch, and a later call with a
    higher ``until_epoch`` resumes it. A trial already at or past ``until_epoch`` is not trained.

    ``recorder`` (optional) gets ``started(info)``, ``epoch(line)``, ``truncate(last_epoch)`` and
    ``finished(info, final_metrics, best_metrics, objective)`` calls (the database rows);
    ``images`` (uint8 NHWC) replaces reading ``subset_dir``; ``objective`` names the metric
    reported as the trial's objective and ``direction`` ("min" or "max") which way is better: the
    generator of the best epoch by it is kept as ``best/generator.keras`` and its value is the
    trial's objective (the last measured value when no epoch measured it). ``subset_name`` names
    the subset in the exported model's record (default: ``subset_dir``'s folder name); ``sync``
    (a :class:`metgan.storage.Sync` of the trial folder) pushes it to the results store at every
    checkpoint, so a retry on another worker resumes from there.
    """
    trial_dir = Path(trial_dir)
    trial_id = trial_id or config.trial_id()
    trial_dir.mkdir(parents=True, exist_ok=True)
    config, fitted = _fitted_config(trial_dir, config, subset_dir, images)
    existing = trialdir.read_config(trial_dir)
    if existing is not None and GanConfig.from_dict(existing) != config:
        raise TrainingError(f"{trial_dir / trialdir.CONFIG} holds a different config than this trial's; "
                            "use a new folder")
    if existing is None:
        trialdir.write_config(trial_dir, config.to_dict())
    info = trialdir.read_trial_info(trial_dir) or {}
    if fitted:
        info["fitted"] = fitted
    if info.get("status") in FINISHED:
        log.info("trial %s already %s: skipped", trial_id, info["status"])
        return summary_from_files(trial_dir, objective)
    target = min(until_epoch or config.epochs, config.epochs)
    if info.get("status") in AT_RUNG and info.get("epochs_done", 0) >= target:
        log.info("trial %s already %s after epoch %d: skipped", trial_id, info["status"], info["epochs_done"])
        return summary_from_files(trial_dir, objective)
    info.update({"search_name": search_name, "trial_id": trial_id, "status": "running", "stop_reason": None,
                 "error": None, "error_summary": None, "epochs": config.epochs,
                 "label": info.get("label") or config.label(),
                 "overrides": config.overrides(),
                 "hostname": socket.gethostname(), "finished_at": None})
    info.setdefault("started_at", trialdir.utc_now())
    info.setdefault("epochs_done", 0)
    info.setdefault("wall_s", 0.0)
    info.setdefault("images_per_s", None)
    try:
        return _train(trial_dir, config, subset_dir, info, recorder, images, objective, target, direction,
                      subset_name=subset_name, sync=sync)
    except Exception as exc:
        info.update(status="failed", error="".join(traceback.format_exception(exc)),
                    error_summary=error_summary(exc), finished_at=trialdir.utc_now())
        trialdir.write_trial_info(trial_dir, info)
        if recorder is not None:
            recorder.finished(info, {}, {}, None)
        raise


def _fitted_config(trial_dir: Path, config: GanConfig, subset_dir, images) -> tuple[GanConfig, dict | None]:
    """The config this worker trains for ``config``: itself, or, when it leaves the size or the
    epochs to its time budget, the one fitted on this worker (metgan.gan.budget) and written to
    config.json, so a resumed or retried trial trains exactly what it started."""
    from metgan.gan import budget, data

    if not budget.needs_fitting(config):
        return config, None
    fitted = (trialdir.read_trial_info(trial_dir) or {}).get("fitted")
    existing = trialdir.read_config(trial_dir)
    if fitted and fitted.get("requested") == config.to_dict() and existing is not None:
        return GanConfig.from_dict(existing), fitted
    count = len(images) if images is not None else data.subset_images(subset_dir)[0]
    resolved, fitted = budget.fit_to_budget(config, round(count * (1 - config.holdout)))
    trialdir.write_config(trial_dir, resolved.to_dict())
    return resolved, fitted


class TrialInterrupted(BaseException):
    """SIGTERM arrived while a trial trained. Not an Exception: nothing on the way up may record
    the trial failed; the trial was recorded ``interrupted`` first (:func:`_train`)."""

    def __init__(self, previous_handler: Any, epochs_done: int):
        super().__init__(f"interrupted by SIGTERM after epoch {epochs_done}")
        self.previous_handler = previous_handler
        self.epochs_done = epochs_done


def redeliver(interrupted: TrialInterrupted) -> None:
    """Give the SIGTERM to whoever had it before the trial (the default ends the process with
    status 143, Airflow's task runner ends the task); returns only when it was being ignored."""
    previous = interrupted.previous_handler
    if callable(previous):
        previous(signal.SIGTERM, None)
    elif previous != signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGTERM)


def _on_sigterm(signum, frame):
    raise TrialInterrupted(None, 0)


# The OSErrors that are the disk's refusal of a write, whatever is being written.
DISK_ERRNOS = frozenset(code for code in (errno.ENOSPC, getattr(errno, "EDQUOT", None), errno.EROFS, errno.EIO)
                        if code is not None)
_DISK_WORDS = {errno.ENOSPC: "disk full", errno.EROFS: "read-only file system", errno.EIO: "disk I/O error"}
if hasattr(errno, "EDQUOT"):
    _DISK_WORDS[errno.EDQUOT] = "disk full (over quota)"


def disk_refusal(exc: BaseException) -> int | None:
    """The errno when ``exc`` (or what it was raised from) is the disk refusing a write; HDF5
    reports ENOSPC only in its message."""
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
            return exc.errno
        if isinstance(exc, OSError) and ("errno = 28" in str(exc) or "No space left on device" in str(exc)):
            return errno.ENOSPC
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return None


def _free_resumable_files(trial_dir: Path) -> None:
    """On a full disk, drop what a resume writes again anyway: the sample grids after the newest
    checkpoint (and any temp file), so trial.json can still be written."""
    newest = max(trialdir.checkpoint_epochs(trial_dir), default=0)
    for epoch, path in trialdir.samples(trial_dir).items():
        if epoch > newest:
            path.unlink(missing_ok=True)
    for temp in [*trial_dir.glob(".*.tmp*"), *trial_dir.glob("*/.*.tmp*")]:
        temp.unlink(missing_ok=True)


def _train(trial_dir: Path, config: GanConfig, subset_dir, info: dict, recorder, images, objective_key: str,
           target: int, direction: str, *, subset_name: str | None = None, sync: Any = None) -> dict:
    """:func:`_train_epochs`, with its two outcomes that are not the trial's fault recorded here.

    A SIGTERM records the trial ``interrupted`` with the epochs it finished (metrics.jsonl's last
    line; a resume starts from the newest checkpoint) and raises :class:`TrialInterrupted`.
    A disk that refuses a checkpoint, metrics line or sample raises
    :class:`~metgan.errors.DiskWriteError` "disk full: <folder>" (the trial is then recorded
    failed); the newest complete checkpoint stays, and no temp file does.
    """
    main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _on_sigterm) if main else None
    try:
        return _train_epochs(trial_dir, config, subset_dir, info, recorder, images, objective_key, target,
                             direction, subset_name=subset_name, sync=sync)
    except TrialInterrupted:
        if main:
            signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second SIGTERM must not cut the record short
        lines = trialdir.read_metrics(trial_dir)
        done = max([info.get("epochs_done") or 0, *(line["epoch"] for line in lines)])
        info.update(status="interrupted", stop_reason="interrupted", epochs_done=done,
                    stop_detail=f"interrupted by SIGTERM after epoch {done}; it resumes from its newest "
                                "checkpoint when trained again", finished_at=trialdir.utc_now())
        trialdir.write_trial_info(trial_dir, info)
        if recorder is not None:
            recorder.finished(info, final_metrics(lines), {}, _objective(lines, objective_key, trial_dir))
        log.warning("trial %s interrupted by SIGTERM after epoch %d", info.get("trial_id"), done)
        raise TrialInterrupted(previous, done) from None
    except Exception as exc:
        code = disk_refusal(exc)
        if code is None:
            raise
        from metgan.errors import DiskWriteError

        _free_resumable_files(trial_dir)
        raise DiskWriteError(f"{_DISK_WORDS[code]}: {trial_dir}") from exc
    finally:
        if main:
            signal.signal(signal.SIGTERM, previous)


def _train_epochs(trial_dir: Path, config: GanConfig, subset_dir, info: dict, recorder, images,
                  objective_key: str, target: int, direction: str, *, subset_name: str | None = None,
                  sync: Any = None) -> dict:
    from metgan.gan import callbacks as cb
    from metgan.gan import data
    from metgan.gan._tf import tensorflow

    tensorflow()
    import keras

    from metgan.gan.model import build_gan

    device, has_gpu = device_info()
    precision, xla = resolve_switches(config, has_gpu)
    info.update(device=device, mixed_precision=precision != "float32", dtype_policy=precision, xla=xla)
    (trial_dir / trialdir.SAMPLES).mkdir(exist_ok=True)

    latents_path = trial_dir / trialdir.LATENTS
    if latents_path.exists():
        latents = np.load(latents_path)
    else:
        latents = np.random.default_rng(config.seed).standard_normal(
            (config.n_samples, config.noise_dim)).astype(np.float32)
        with trialdir.atomic_path(latents_path) as temp:
            np.save(temp, latents)

    reals = images if images is not None else data.load_images(subset_dir, config.height, config.width, config.channels)
    if info.get("fitted") and reals.shape[1:3] != (config.height, config.width):
        reals = data.resize_images(reals, config.height, config.width)  # the size its budget affords
    if reals.shape[1:] != (config.height, config.width, config.channels):
        raise TrainingError(f"training images are {reals.shape[1:]}, the config wants "
                            f"{(config.height, config.width, config.channels)}")
    reals, eval_reals = split_holdout(reals, config)
    info.update(train_images=len(reals), eval_images=len(eval_reals), eval_held_out=config.holdout > 0)

    keras.utils.set_random_seed(config.seed)
    gan = build_gan(config, precision=precision, jit_compile=xla)

    dataset_probe_steps = len(reals) // config.batch_size
    state = cb.TrialState(trial_dir=trial_dir, config=config, latents=latents, reals=eval_reals,
                          steps_per_epoch=dataset_probe_steps, recorder=recorder, until_epoch=target,
                          objective=objective_key, direction=direction, search_name=info.get("search_name"),
                          trial_id=info["trial_id"],
                          subset=subset_name or (Path(subset_dir).name if subset_dir else None), sync=sync,
                          info=info)
    first_epoch = 0
    meta = cb.load_latest_checkpoint(trial_dir, gan)
    if meta is not None:
        first_epoch = meta["epoch"]
        state.wall_offset = meta["wall_s"]
        state.collapse_streak = meta["collapse_streak"]
        state.images_seen = meta["images_seen"]
        state.train_seconds = meta["train_seconds"]
        state.swd_real = meta["swd_real"]
        state.best_metrics = meta["best_metrics"]
        log.info("trial %s resumes after epoch %d from its checkpoint", info["trial_id"], first_epoch)
    _resume_best(trial_dir, state, first_epoch)
    trialdir.truncate_metrics(trial_dir, first_epoch)
    for epoch, stale in trialdir.samples(trial_dir).items():
        if epoch > first_epoch:
            stale.unlink()
    if recorder is not None:
        recorder.truncate(first_epoch)
        recorder.started(info)
    info.update(epochs_done=first_epoch, pid=os.getpid())
    trialdir.write_trial_info(trial_dir, info)

    if first_epoch < target:
        dataset, steps = data.training_dataset(reals, batch_size=config.batch_size, seed=config.seed,
                                               first_epoch=first_epoch, epochs=target, x_flip=config.x_flip)
        log.info("trial %s (%s): %d images, %d steps/epoch, epochs %d..%d of %d on %s (%s, XLA %s)",
                 info["trial_id"], info["label"], len(reals), steps, first_epoch + 1, target, config.epochs,
                 device, precision, "on" if xla else "off")
        gan.fit(dataset, epochs=target, initial_epoch=first_epoch, steps_per_epoch=steps,
                callbacks=cb.trial_callbacks(state), verbose=0, shuffle=False)  # the dataset shuffles

    lines = trialdir.read_metrics(trial_dir)
    _write_final_images(trial_dir, gan, config)
    epochs_done = lines[-1]["epoch"] if lines else first_epoch
    # a trial whose epochs were fitted to its budget ends as planned when the budget is spent
    planned_end = state.stop_reason == "time_budget" and (info.get("fitted") or {}).get("epochs_fitted")
    status = ("completed" if planned_end else "stopped" if state.stop_reason
              else "completed" if epochs_done >= config.epochs else "paused")
    info.update(status=status, stop_reason=state.stop_reason,
                stop_detail=state.stop_detail, epochs_done=epochs_done,
                wall_s=round(state.wall_s, 3), finished_at=trialdir.utc_now(), images_seen=state.images_seen,
                images_per_s=state.images_seen / state.train_seconds if state.train_seconds else None)
    trialdir.write_trial_info(trial_dir, info)
    if recorder is not None:
        recorder.finished(info, final_metrics(lines), state.best_metrics,
                          _objective(lines, objective_key, trial_dir))
    return summary_from_files(trial_dir, objective_key)


def _resume_best(trial_dir: Path, state, first_epoch: int) -> None:
    """Carry the best snapshot over a resume; one from an epoch after the checkpoint is dropped
    (that epoch is trained again, and its metrics line is gone)."""
    record = trialdir.read_model_record(trial_dir) if trialdir.has_best_snapshot(trial_dir) else None
    if record is None or record.get("epoch", first_epoch + 1) > first_epoch or record.get("objective") != state.objective:
        if record is not None or trialdir.best_generator_path(trial_dir).exists():
            log.info("trial %s: best snapshot after the resumed checkpoint dropped", trial_dir.name)
        trialdir.remove_best_snapshot(trial_dir)
        return
    state.best_epoch, state.best_value = record["epoch"], record["objective_value"]


def _write_final_images(trial_dir: Path, gan, config: GanConfig) -> None:
    """final_grid.png from the last epoch's generator; generated/NNN.png from the best snapshot
    (what the report's gallery shows), or the last generator when there is none."""
    from metgan.gan import callbacks as cb
    from metgan.gan import export

    rng = np.random.default_rng(config.seed + 5)
    count = max(FINAL_GRID_IMAGES, config.n_generated)
    latents = rng.standard_normal((count, config.noise_dim)).astype(np.float32)
    images = cb.generate_uint8(gan.sample_generator, latents)
    cb.save_png_atomic(trial_dir / trialdir.FINAL_GRID, cb.image_grid(images[:FINAL_GRID_IMAGES], columns=8))
    if trialdir.has_best_snapshot(trial_dir) and config.n_generated:  # n_generated 0: no gallery images
        images = cb.generate_uint8(export.load_generator(trial_dir), latents[: config.n_generated])
    (trial_dir / trialdir.GENERATED).mkdir(exist_ok=True)
    for index, image in enumerate(images[: config.n_generated]):
        cb.save_png_atomic(trialdir.generated_path(trial_dir, index), image)
