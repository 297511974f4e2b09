"""The trial folder and the search folder: the one module that knows their layout and their files.

A search folder holds ``search.json`` (what was planned) and one trial folder per trial::

    <search>/search.json
    <search>/<trial_id>/config.json      the resolved GanConfig, written before training
    <search>/<trial_id>/trial.json       status, stop reason, error, timings (rewritten whole)
    <search>/<trial_id>/metrics.jsonl    one line per epoch, appended and flushed
    <search>/<trial_id>/latents.npy      the fixed latents of every sample grid
    <search>/<trial_id>/samples/epoch_NNNN.png
    <search>/<trial_id>/checkpoints/ckpt_NNNN.weights.h5 + ckpt_NNNN.json
    <search>/<trial_id>/final_grid.png, generated/NNN.png, progress.gif, graph_<style>.gif, scores.png
    <search>/<trial_id>/best/generator.keras   the best epoch's generator (EMA when enabled), exported
    <search>/<trial_id>/best/model.json        which epoch that was, its metrics, what the model takes and gives
    <search>/<trial_id>/walk.gif               a latent walk through a few seeds of the best snapshot
    <search>/<trial_id>/walk_frames.png        every 10th frame of that walk, in one grid
    <search>/generations/<name>/               a gan_generate run: seed_NNNN.png, contact_sheet.png, generation.json

Training (``metgan.gan``), the renderer and report (``metgan.viz``), the gallery plugin and every
test fixture read and write these files through this module only, so the format has one owner.
It imports neither TensorFlow nor Airflow. Every whole-file write goes through
:func:`atomic_path` (a temp name in the same folder, then a rename), so a reader or a crash never
sees half a file. Reading is strict about shape and forgiving about absence: a missing file is
``None`` (or no lines), a file that is not a JSON object is a :class:`TrialFolderError` naming it.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import json
import logging
import os
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

from metgan.errors import TrialFolderError

log = logging.getLogger(__name__)
_TEMP_COUNTER = itertools.count()

CONFIG = "config.json"
TRIAL = "trial.json"
METRICS = "metrics.jsonl"
SEARCH = "search.json"
LATENTS = "latents.npy"
SAMPLES = "samples"
CHECKPOINTS = "checkpoints"
GENERATED = "generated"
FINAL_GRID = "final_grid.png"
PROGRESS_GIF = "progress.gif"
SCORES_PNG = "scores.png"
REPORT = "report.html"
LEADERBOARD = "leaderboard.csv"
GALLERY = "gallery"
BEST = "best"
BEST_GENERATOR = "generator.keras"
MODEL_RECORD = "model.json"
WALK_GIF = "walk.gif"
WALK_FRAMES = "walk_frames.png"
GENERATIONS = "generations"
GENERATION_RECORD = "generation.json"
CONTACT_SHEET = "contact_sheet.png"

SAMPLE_NAME = re.compile(r"^epoch_(\d{4,})\.png$")
CHECKPOINT_NAME = re.compile(r"^ckpt_(\d{4,})\.json$")
# The files a report links to, in this order.
RECORD_FILES = (CONFIG, TRIAL, METRICS)


# --- records ----------------------------------------------------------------------------------

class TrialInfo(TypedDict, total=False):
    """trial.json: written "pending" by the planner, "running" by the trainer, then its outcome."""

    search_name: str | None
    trial_id: str
    status: str  # pending | running | paused (at its rung's epochs) | interrupted | completed | stopped | failed | pruned
    stop_reason: str | None
    stop_detail: str | None
    error: str | None  # the full traceback
    error_summary: str | None  # its last line, "ExceptionType: message"
    label: str
    overrides: dict[str, Any]
    epochs: int
    epochs_done: int
    started_at: str | None
    finished_at: str | None
    wall_s: float | None
    images_seen: int
    images_per_s: float | None
    device: str | None
    hostname: str | None
    pid: int | None  # the trainer's process on ``hostname``: a running trial whose process is gone was interrupted
    mixed_precision: bool
    # the Keras dtype policy: float32 | mixed_float16 | mixed_bfloat16 (not metrics.jsonl's PRDC precision)
    dtype_policy: str
    xla: bool
    train_images: int  # images trained on (the subset less any holdout)
    eval_images: int  # real images the scores compare against
    eval_held_out: bool  # True: those were never trained on (config holdout > 0)
    rungs: list[RungResult]  # successive halving: one entry per rung the trial trained in
    rung: int | None  # the last rung it reached (where halving pruned it, for a pruned trial)
    pruned_score: float | None  # the objective it was pruned with
    fitted: dict[str, Any]  # the size and epochs its worker fitted to its time budget, and why


class RungResult(TypedDict, total=False):
    """A trial's result at one rung: the epochs the rung trains to, those reached, the objective there,
    and the halving decision (``promoted``, ``pruned``; None on the last rung or before the decision)."""

    rung: int
    epochs: int
    epochs_done: int
    status: str | None  # the trial's status when the rung ended (only paused or completed can be promoted)
    score: float | None
    outcome: str | None


class RungPlan(TypedDict):
    """One planned rung in search.json: how many trials it trains and up to which epoch."""

    rung: int
    trials: int
    epochs: int


class StrategyRecord(TypedDict, total=False):
    """search.json's strategy: the validated keys of :class:`metgan.gan.strategy.Strategy`."""

    strategy: str
    n_iter: int | None
    seed: int
    factor: int
    min_epochs: int | None
    max_epochs: int | None


class MetricsLine(TypedDict, total=False):
    """One metrics.jsonl line: the epoch's losses, its quality scores (null between evaluations), speed."""

    epoch: int
    d_loss: float | None
    g_loss: float | None
    d_acc_real: float | None
    d_acc_fake: float | None
    recon_loss: float | None  # fastgan's decoder MSE on real images; null for dcgan
    ada_p: float | None  # adaptive augmentation's probability at the epoch's end; null without ada_target
    swd: float | None
    swd_real: float | None
    swd_levels: dict[str, float] | None
    swd_count: int | None  # images on each side of swd and swd_real
    diversity: float | None
    diversity_real: float | None
    color: dict | None
    color_real: dict | None
    color_distance: float | None
    chroma: float | None  # mean chroma of the samples' object pixels (metrics.object_chroma)
    chroma_real: float | None
    # precision, recall, density, coverage and KID on random-CNN features (metrics.prdc_kid_against_reals),
    # each with its real-vs-real reference on the same halves of the evaluation images
    precision: float | None
    precision_real: float | None
    recall: float | None
    recall_real: float | None
    density: float | None
    density_real: float | None
    coverage: float | None
    coverage_real: float | None
    kid: float | None
    kid_real: float | None
    fid: float | None
    within_std: float | None
    across_std: float | None
    images_per_s: float | None
    wall_s: float


class AirflowLink(TypedDict):
    dag_id: str | None
    run_id: str | None


class SearchRecord(TypedDict, total=False):
    """search.json: the planned grid and its trials; ``airflow`` names the run that planned it."""

    name: str
    subset: str
    subset_dir: str | None
    grid: Any
    base: dict[str, Any]
    objective: str
    direction: str
    created_at: str
    trials: list[str]
    airflow: AirflowLink
    strategy: StrategyRecord
    rungs: list[RungPlan]
    candidates: list[str]  # this plan's trials in plan order (``trials`` also keeps earlier plans')
    max_epochs: int
    planned_images: int  # the training images the plan spends (every rung, resuming)
    full_grid_images: int  # what training every candidate to max_epochs would spend
    budget_s: float | None  # the whole search's time budget, split over its trials (metgan.gan.budget)


class CheckpointMeta(TypedDict, total=False):
    """ckpt_NNNN.json beside the Keras weights file: the epoch and what the callbacks carry on with."""

    epoch: int
    rng_state: list[int]
    wall_s: float
    collapse_streak: int
    images_seen: int
    train_seconds: float
    swd_real: float | None
    best_metrics: dict[str, Any]
    stop_reason: str | None
    stop_detail: str | None


class ModelRecord(TypedDict, total=False):
    """best/model.json: the best snapshot's epoch and metrics, and what its generator takes and gives.

    ``latent`` is "gaussian": the generator takes ``noise_dim`` N(0, 1) numbers; ``value_range``
    is what its output spans (tanh: [-1, 1], mapped to pixels by ``(x + 1) * 127.5``).
    """

    trial_id: str
    search_name: str | None
    subset: str | None
    epoch: int
    objective: str
    direction: str
    objective_value: float
    metrics: dict[str, Any]
    ema: bool
    noise_dim: int
    latent: str
    height: int
    width: int
    channels: int
    value_range: list[float]
    file: str
    keras_version: str
    saved_at: str


class GenerationRecord(TypedDict, total=False):
    """generation.json in a generation folder: where its images came from and how."""

    search_name: str | None
    trial_id: str | None
    model: str
    epoch: int | None
    seeds: list[int]
    truncation: float
    upscale: int
    images: list[str]
    contact_sheet: str
    created_at: str


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def pending_trial_info(*, search_name: str | None, trial_id: str, epochs: int, overrides: dict[str, Any],
                       label: str) -> TrialInfo:
    """The trial.json a planned, not yet started trial has."""
    return TrialInfo(search_name=search_name, trial_id=trial_id, status="pending", stop_reason=None,
                     stop_detail=None, error=None, error_summary=None, epochs_done=0, epochs=epochs,
                     started_at=None, finished_at=None, wall_s=None, device=None, hostname=None,
                     images_per_s=None, overrides=dict(overrides), label=label)


# --- paths ------------------------------------------------------------------------------------

def sample_path(trial_dir: Path, epoch: int) -> Path:
    return Path(trial_dir) / SAMPLES / f"epoch_{epoch:04d}.png"


def generated_path(trial_dir: Path, index: int) -> Path:
    return Path(trial_dir) / GENERATED / f"{index:03d}.png"


def graph_gif_name(style: str) -> str:
    return f"graph_{style}.gif"


def best_generator_path(trial_dir: Path) -> Path:
    return Path(trial_dir) / BEST / BEST_GENERATOR


def model_record_path(trial_dir: Path) -> Path:
    return Path(trial_dir) / BEST / MODEL_RECORD


def has_best_snapshot(trial_dir: Path) -> bool:
    """Both files of the best snapshot are there (model.json is written after the generator)."""
    return best_generator_path(trial_dir).is_file() and model_record_path(trial_dir).is_file()


def remove_best_snapshot(trial_dir: Path) -> None:
    """Drop the best snapshot (its record first, so a half-removed one never reads as complete)."""
    model_record_path(trial_dir).unlink(missing_ok=True)
    best_generator_path(trial_dir).unlink(missing_ok=True)


def seed_image_name(seed: int) -> str:
    """A generated image's file name: by seed, so one seed always names (and gives) one image."""
    return f"seed_{seed:04d}.png"


def generations_dir(search_dir: Path) -> Path:
    return Path(search_dir) / GENERATIONS


def generation_dir(search_dir: Path, name: str) -> Path:
    return generations_dir(search_dir) / name


def generation_folders(search_dir: Path) -> list[Path]:
    """The generation folders of a search that hold a generation.json, newest name last."""
    return sorted(path.parent for path in generations_dir(search_dir).glob(f"*/{GENERATION_RECORD}"))


def samples(trial_dir: Path) -> dict[int, Path]:
    """The sample grids by epoch."""
    folder = Path(trial_dir) / SAMPLES
    found: dict[int, Path] = {}
    if folder.is_dir():
        for child in folder.iterdir():
            match = SAMPLE_NAME.match(child.name)
            if match:
                found[int(match.group(1))] = child
    return found


def checkpoint_paths(trial_dir: Path, epoch: int) -> tuple[Path, Path]:
    """(Keras weights file, metadata JSON) of the checkpoint after ``epoch``."""
    folder = Path(trial_dir) / CHECKPOINTS
    return folder / f"ckpt_{epoch:04d}.weights.h5", folder / f"ckpt_{epoch:04d}.json"


def checkpoint_epochs(trial_dir: Path) -> list[int]:
    """The epochs with a complete checkpoint (its JSON is written last), oldest first."""
    folder = Path(trial_dir) / CHECKPOINTS
    if not folder.is_dir():
        return []
    epochs = []
    for child in folder.iterdir():
        match = CHECKPOINT_NAME.match(child.name)
        if match and checkpoint_paths(trial_dir, int(match.group(1)))[0].is_file():
            epochs.append(int(match.group(1)))
    return sorted(epochs)


def legacy_checkpoints(trial_dir: Path) -> list[Path]:
    """Position-indexed ``ckpt_NNNN.npz`` files an older version wrote (never loaded)."""
    return sorted((Path(trial_dir) / CHECKPOINTS).glob("ckpt_*.npz"))


def has_trial_files(folder: Path) -> bool:
    """Whether ``folder`` looks like a trial folder (it has a trial.json or a config.json)."""
    return (Path(folder) / TRIAL).exists() or (Path(folder) / CONFIG).exists()


def search_files(root: Path) -> list[Path]:
    """Every ``<root>/<search>/search.json``."""
    return sorted(Path(root).glob(f"*/{SEARCH}"))


def trial_folders(search_dir: Path) -> list[Path]:
    """The folders of a search folder that hold a trial.json, by name."""
    return sorted(path.parent for path in Path(search_dir).glob(f"*/{TRIAL}"))


# --- writing ----------------------------------------------------------------------------------

@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """Yield a temp path beside ``path`` (same suffixes) to write to; rename it over ``path`` on success.

    On an exception the temp file is removed and ``path`` keeps its old content. The temp name
    is unique per call, so two writers never write into one temp file.
    """
    path = Path(path)
    suffix = "".join(path.suffixes) or ".tmp"
    # Not tempfile.mkstemp: its 0600 mode would survive the rename; this honours the umask.
    temp = path.with_name(f".{path.name.split('.')[0]}.{os.getpid()}-{threading.get_ident()}-{next(_TEMP_COUNTER)}"
                          f".tmp{suffix}")
    os.close(os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        yield temp
        os.replace(temp, path)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(path: Path, data: bytes) -> Path:
    with atomic_path(path) as temp:
        with open(temp, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> Path:
    return write_text_atomic(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def write_config(trial_dir: Path, config: dict[str, Any]) -> Path:
    return write_json_atomic(Path(trial_dir) / CONFIG, config)


def write_trial_info(trial_dir: Path, info: TrialInfo) -> Path:
    return write_json_atomic(Path(trial_dir) / TRIAL, info)


def write_search(search_dir: Path, record: SearchRecord) -> Path:
    return write_json_atomic(Path(search_dir) / SEARCH, record)


def record_rung(trial_dir: Path, result: RungResult) -> TrialInfo:
    """Put ``result`` in trial.json's rung history (replacing that rung's entry, keeping its outcome)."""
    info = read_trial_info(trial_dir) or TrialInfo()
    rungs = [dict(entry) for entry in info.get("rungs") or [] if entry.get("rung") != result["rung"]]
    previous = next((e for e in info.get("rungs") or [] if e.get("rung") == result["rung"]), {})
    rungs.append({"outcome": previous.get("outcome"), **result})
    info["rungs"] = sorted(rungs, key=lambda entry: entry["rung"])  # type: ignore[typeddict-item]
    info["rung"] = max(entry["rung"] for entry in rungs)
    write_trial_info(trial_dir, info)
    return info


def record_rung_outcome(trial_dir: Path, rung: int, outcome: str) -> TrialInfo:
    """Record halving's decision at ``rung``: ``promoted``, or ``pruned`` (which also sets the status,
    the rung and the score the trial was pruned with)."""
    info = read_trial_info(trial_dir) or TrialInfo()
    rungs = [dict(entry) for entry in info.get("rungs") or []]
    for entry in rungs:
        if entry.get("rung") == rung:
            entry["outcome"] = outcome
            if outcome == "pruned":
                info.update(status="pruned", rung=rung, pruned_score=entry.get("score"),
                            stop_reason="pruned", stop_detail=f"pruned by successive halving at rung {rung} "
                            f"({entry.get('epochs_done')} epochs, score {entry.get('score')})")
    info["rungs"] = rungs  # type: ignore[typeddict-item]
    write_trial_info(trial_dir, info)
    return info


def write_checkpoint_meta(trial_dir: Path, meta: CheckpointMeta) -> Path:
    return write_json_atomic(checkpoint_paths(trial_dir, meta["epoch"])[1], meta)


def write_model_record(trial_dir: Path, record: ModelRecord) -> Path:
    return write_json_atomic(model_record_path(trial_dir), record)


def write_generation_record(folder: Path, record: GenerationRecord) -> Path:
    return write_json_atomic(Path(folder) / GENERATION_RECORD, record)


def append_metrics(trial_dir: Path, line: MetricsLine) -> None:
    """Append one line and flush it to disk (a kill leaves at most a torn last line, which readers skip)."""
    with (Path(trial_dir) / METRICS).open("a") as handle:
        handle.write(json.dumps(line, sort_keys=True) + "\n")
        handle.flush()
        os.fsync(handle.fileno())


def write_metrics(trial_dir: Path, lines: list[MetricsLine]) -> Path:
    return write_text_atomic(Path(trial_dir) / METRICS, "".join(json.dumps(line, sort_keys=True) + "\n"
                                                                 for line in lines))


def truncate_metrics(trial_dir: Path, last_epoch: int) -> None:
    """Keep only the lines of epochs <= ``last_epoch`` (a resumed trial rewrites the later ones)."""
    if (Path(trial_dir) / METRICS).exists():
        write_metrics(trial_dir, [line for line in read_metrics(trial_dir) if line["epoch"] <= last_epoch])


# --- reading ----------------------------------------------------------------------------------

def read_object(path: Path) -> dict[str, Any] | None:
    """A JSON object file; None when it does not exist; TrialFolderError when it is not a JSON object."""
    path = Path(path)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise TrialFolderError(f"{path} is not readable: {exc.strerror or exc}") from None
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise TrialFolderError(f"{path} is not readable JSON: {exc}") from None
    if not isinstance(data, dict):
        raise TrialFolderError(f"{path} holds {type(data).__name__}, expected a JSON object")
    return data


def read_config(trial_dir: Path) -> dict[str, Any] | None:
    return read_object(Path(trial_dir) / CONFIG)


def read_trial_info(trial_dir: Path) -> TrialInfo | None:
    return read_object(Path(trial_dir) / TRIAL)  # type: ignore[return-value]


def read_search(search_dir: Path) -> SearchRecord | None:
    return read_object(Path(search_dir) / SEARCH)  # type: ignore[return-value]


def read_checkpoint_meta(trial_dir: Path, epoch: int) -> CheckpointMeta | None:
    return read_object(checkpoint_paths(trial_dir, epoch)[1])  # type: ignore[return-value]


def read_model_record(trial_dir: Path) -> ModelRecord | None:
    """best/model.json, or None when the trial has no best snapshot yet."""
    return read_object(model_record_path(trial_dir))  # type: ignore[return-value]


def read_model_record_beside(generator: Path) -> ModelRecord | None:
    """The model.json beside a ``generator.keras`` (a best/ folder copied elsewhere keeps its record)."""
    return read_object(Path(generator).parent / MODEL_RECORD)  # type: ignore[return-value]


def read_generation_record(folder: Path) -> GenerationRecord | None:
    return read_object(Path(folder) / GENERATION_RECORD)  # type: ignore[return-value]


def read_metrics(trial_dir: Path) -> list[MetricsLine]:
    """The metrics lines in file order; a line that is not a JSON object with an integer epoch
    (a torn last line from a kill mid-write) is skipped with a warning."""
    path = Path(trial_dir) / METRICS
    if not path.exists():
        return []
    lines: list[MetricsLine] = []
    for number, raw in enumerate(path.read_text().splitlines(), 1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except ValueError:
            log.warning("%s line %d is not JSON (a line cut short?); skipped", path, number)
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int) and not isinstance(row["epoch"], bool):
            lines.append(row)  # type: ignore[arg-type]
        else:
            log.warning("%s line %d is not a metrics line; skipped", path, number)
    return lines


def metrics_by_epoch(trial_dir: Path) -> dict[int, MetricsLine]:
    """The metrics lines by epoch; the last line wins for an epoch written twice."""
    return {line["epoch"]: line for line in read_metrics(trial_dir)}
