"""Read a trial folder (DESIGN.md's contract) into one object the renderers and the report share.

Reading is forgiving: a trial that is still running, stopped early or failed has only part of its
files, and rendering shows what exists. A missing folder or one with neither samples nor metrics
is a :class:`~metgan.errors.RenderError`.
"""

from __future__ import annotations

import json
import logging
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from metgan.errors import RenderError

log = logging.getLogger(__name__)

SAMPLE_NAME = re.compile(r"^epoch_(\d{4,})\.png$")
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
        """The settings that differ from the defaults (trial.json "overrides", else derived)."""
        overrides = self.info.get("overrides")
        if isinstance(overrides, dict):
            return dict(overrides)
        defaults = _default_config()
        if defaults is None:
            return dict(self.config)
        return {k: v for k, v in self.config.items() if defaults.get(k, object()) != v}

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
        if status in ("running", "pending"):
            return f"Still {status}: {done}{of} epochs so far"
        return f"Status {status!r} after {done}{of} epochs"


def _default_config() -> dict | None:
    """The "default" preset as a dict, when the GAN package provides it (pure Python, no TF)."""
    try:
        from metgan.gan.config import PRESETS
    except ImportError:
        return None
    preset = PRESETS.get("default")
    if preset is None:
        return None
    if isinstance(preset, dict):
        return preset
    to_dict = getattr(preset, "to_dict", None)
    if callable(to_dict):
        return to_dict()
    import dataclasses

    return dataclasses.asdict(preset) if dataclasses.is_dataclass(preset) else None


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise RenderError(f"{path} is not readable JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise RenderError(f"{path} holds {type(data).__name__}, expected a JSON object")
    return data


def read_metrics(path: Path) -> dict[int, dict]:
    """metrics.jsonl by epoch; the last line wins for an epoch written twice (a resumed trial)."""
    metrics: dict[int, dict] = {}
    if not path.exists():
        return metrics
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except ValueError:
            log.warning("%s line %d is not JSON (a line cut short?); skipped", path, number)
            continue
        if isinstance(row, dict) and isinstance(row.get("epoch"), int):
            metrics[row["epoch"]] = row
    return metrics


def load_trial(trial_dir: str | Path) -> TrialRun:
    """Read a trial folder; raises RenderError if it is missing or holds nothing to show."""
    path = Path(trial_dir)
    if not path.is_dir():
        raise RenderError(f"trial folder {path} does not exist")
    config = _read_json(path / "config.json")
    info = _read_json(path / "trial.json")
    metrics = read_metrics(path / "metrics.jsonl")
    samples = {}
    if (path / "samples").is_dir():
        for child in (path / "samples").iterdir():
            match = SAMPLE_NAME.match(child.name)
            if match:
                samples[int(match.group(1))] = child
    if not config and not info and not metrics and not samples:
        raise RenderError(f"{path} is not a trial folder (no config.json, trial.json, metrics or samples)")
    return TrialRun(path=path, config=config, info=info, metrics=metrics, samples=samples)
