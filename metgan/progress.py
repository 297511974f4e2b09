"""Progress reporting for long work: done / total, rate and ETA at a steady cadence.

In an Airflow task log (or any non-interactive use) it logs one line every ``interval`` seconds;
on an interactive terminal, when asked for a bar, it redraws one line in place.
"""

from __future__ import annotations

import logging
import sys
import time


def _duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{seconds:02d}s"


class Progress:
    """Counts work done and reports it; ``advance`` is cheap enough to call per item."""

    def __init__(self, label: str, total: int | None = None, *, logger: logging.Logger | None = None,
                 interval: float = 5.0, bar: bool = False, clock=time.monotonic):
        self.label = label
        self.total = total
        self.done = 0
        self.logger = logger or logging.getLogger("metgan.progress")
        self.interval = interval
        self.bar = bar and sys.stderr.isatty()
        self._clock = clock
        self._started = clock()
        self._last_report = self._started

    def start(self, total: int) -> None:
        self.total = total
        self._started = self._last_report = self._clock()

    def advance(self, count: int = 1) -> None:
        self.done += count
        now = self._clock()
        if self.bar or now - self._last_report >= self.interval:
            self._last_report = now
            self._report(now)

    def finish(self) -> None:
        self._report(self._clock(), final=True)

    def line(self, now: float | None = None) -> str:
        now = self._clock() if now is None else now
        elapsed = max(now - self._started, 1e-9)
        rate = self.done / elapsed
        if self.total:
            left = (self.total - self.done) / rate if rate > 0 else float("inf")
            eta = _duration(left) if left != float("inf") else "?"
            return (f"{self.label}: {self.done}/{self.total} ({100 * self.done / self.total:.0f}%), "
                    f"{rate:.1f}/s, ETA {eta}")
        return f"{self.label}: {self.done} done, {rate:.1f}/s, {_duration(elapsed)} elapsed"

    def _report(self, now: float, final: bool = False) -> None:
        text = self.line(now)
        if self.bar:
            width = 30
            filled = int(width * self.done / self.total) if self.total else 0
            sys.stderr.write(f"\r[{'#' * filled}{'.' * (width - filled)}] {text}")
            if final:
                sys.stderr.write("\n")
            sys.stderr.flush()
        else:
            self.logger.info("%s", text)
