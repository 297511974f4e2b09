"""Read a trial folder (through :mod:`metgan.trialdir`) into one object the renderers and the report share.

Reading is forgiving: a trial that is still running, stopped early or failed has only part of its
files, and rendering shows what exists. A missing folder, one with neither samples nor metrics,
or a config.json/trial.json that is not a JSON object is a :class:`~metgan.errors.RenderError`.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from metgan import trialdir
from metgan.errors import GanConfigError, RenderError, TrialFolderError

log = logging.getLogger(__name__)

SCORE_NAMES = ("d_loss", "g_loss", "d_acc_real", "d_acc_fake", "swd", "swd_real", "diversity",
               "images_per_s", "wall_s")
SCORE_LABELS = {
    "d_loss": "D loss", "g_loss": "G loss", "d_acc_real": "D acc real", "d_acc_fake": "D acc fake",
    "swd": "SWD ×10³", "swd_real": "SWD real-vs-real", "diversity": "diversity",
    "images_per_s": "images/s", "wall_s": "wall s",
}


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def format_value(value) -> str:
    """A setting or score as a short string: 4 significant digits for floats, lists joined."""
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, (list, tuple)):
        return "×".join(format_value(v) for v in value)
    if isinstance(value, dict):
        return ", ".join(f"{k}={format_value(v)}" for k, v in value.items())
    return str(value)


@dataclass
class TrialRun:
    """What a trial folder holds: settings, status, per-epoch scores and sample grids."""

    path: Path
    config: dict
    info: dict
    metrics: dict[int, dict] = field(default_factory=dict)
    samples: dict[int, Path] = field(default_factory=dict)

    @property
    def trial_id(self) -> str:
        return str(self.info.get("trial_id") or self.path.name)

    @property
    def label(self) -> str:
        return str(self.info.get("label") or self.trial_id)

    @property
    def status(self) -> str:
        return str(self.info.get("status") or "unknown")

    @property
    def epochs_planned(self) -> int | None:
        planned = self.info.get("epochs", self.config.get("epochs"))
        return planned if isinstance(planned, int) else None

    @property
    def epochs_done(self) -> int:
        recorded = max(self.metrics, default=0)
        done = self.info.get("epochs_done")
        return max(recorded, done) if isinstance(done, int) else recorded

    @property
    def frame_epochs(self) -> list[int]:
        """The epochs a GIF shows: epoch 0 and every epoch with both a sample grid and a metrics line."""
        return [e for e in sorted(self.samples) if e == 0 or e in self.metrics]

    def settings(self) -> dict:
        """The settings that differ from the defaults: trial.json's "overrides" (what the trainer
        wrote), else config.json against GanConfig's default preset, as the trainer derives them."""
        overrides = self.info.get("overrides")
        if isinstance(overrides, dict):
            return dict(overrides)
        return config_overrides(self.config)

    def score(self, name: str, epoch: int) -> float | None:
        return _number(self.metrics.get(epoch, {}).get(name))

    def series(self, name: str) -> tuple[list[int], list[float | None]]:
        epochs = sorted(self.metrics)
        return epochs, [self.score(name, e) for e in epochs]

    def last_known(self, name: str, epoch: int) -> tuple[int, float] | None:
        """The most recent non-null value of ``name`` at or before ``epoch``, with its epoch."""
        for e in sorted((e for e in self.metrics if e <= epoch), reverse=True):
            value = self.score(name, e)
            if value is not None:
                return e, value
        return None

    @property
    def error_summary(self) -> str | None:
        """The error on one line: trial.json's ``error_summary``, else the last line of its traceback
        (the exception), never the first ("Traceback (most recent call last):")."""
        summary = self.info.get("error_summary")
        if isinstance(summary, str) and summary.strip():
            return summary.strip()
        lines = [line.strip() for line in str(self.info.get("error") or "").splitlines() if line.strip()]
        return lines[-1] if lines else None

    def stop_message(self) -> str | None:
        """Why the trial ended (or that it has not), for a banner; None for a completed trial."""
        status, done, planned = self.status, self.epochs_done, self.epochs_planned
        of = f"/{planned}" if planned else ""
        reason = self.info.get("stop_reason")
        if status == "completed":
            return None
        if status == "stopped":
            return f"Stopped early at epoch {done}{of}: {reason or 'no reason recorded'}"
        if status == "failed":
            return f"Failed at epoch {done}{of}: {self.error_summary or reason or 'no error recorded'}"
        if status == "interrupted":
            return (f"Interrupted after epoch {done}{of}: its trainer ended without finishing it; it resumes "
                    "from its newest checkpoint when trained again")
        if status in ("running", "pending"):
            return f"Still {status}: {done}{of} epochs so far"
        if status == "pruned":
            score = self.info.get("pruned_score")
            return (f"Pruned at rung {self.info.get('rung')} by successive halving after {done}{of} epochs"
                    + (f" (score {score:.4g})" if isinstance(score, (int, float)) else ""))
        if status == "paused":
            return f"Paused at rung {self.info.get('rung')} after {done}{of} epochs, waiting for the next rung"
        return f"Status {status!r} after {done}{of} epochs"


def config_overrides(config: dict) -> dict:
    """The keys of a config.json that differ from the default preset (GanConfig.overrides()).

    A config this version cannot resolve (an older folder's unknown key) is compared key by key
    with GanConfig's defaults, and its unknown keys count as differing.
    """
    from metgan.gan.config import GanConfig

    try:
        return GanConfig.from_dict(config).overrides()
    except GanConfigError:
        defaults = GanConfig().to_dict()
        missing = object()
        return {k: v for k, v in config.items() if k != "preset" and defaults.get(k, missing) != v}


def load_trial(trial_dir: str | Path) -> TrialRun:
    """Read a trial folder; raises RenderError if it is missing or holds nothing to show."""
    path = Path(trial_dir)
    if not path.is_dir():
        raise RenderError(f"trial folder {path} does not exist")
    try:
        config = trialdir.read_config(path) or {}
        info = trialdir.read_trial_info(path) or {}
    except TrialFolderError as exc:
        raise RenderError(str(exc)) from None
    metrics = trialdir.metrics_by_epoch(path)
    samples = trialdir.samples(path)
    if not config and not info and not metrics and not samples:
        raise RenderError(f"{path} is not a trial folder (no config.json, trial.json, metrics or samples)")
    return TrialRun(path=path, config=config, info=info, metrics=metrics, samples=samples)
