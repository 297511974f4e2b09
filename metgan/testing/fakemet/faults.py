"""Fault injection knobs of the fake Met, and the deterministic decisions made from them.

Transient faults (5xx, 429, resets, truncated bodies, wrong content types, slow answers, corrupt
or truncated JPEGs) are drawn per ``(seed, path, attempt)``, where ``attempt`` counts the requests
for that path so far, and a path suffers at most ``max_per_path`` of them: a client that retries
always gets through in the end, and the same request sequence sees the same faults.
Permanent faults (oversized or huge-dimension images) depend on the path only, like real data.
The block page models the CDN (Imperva): more than ``block_threshold`` requests within
``block_window`` seconds block every request for ``block_cooldown`` seconds.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field, fields, replace

# Transient faults in the order their fractions are stacked on one uniform draw.
TRANSIENT = ("error_5xx", "rate_429", "reset", "truncate", "wrong_content_type", "slow")
IMAGE_TRANSIENT = ("corrupt_image", "truncate_image")
SCOPES = ("all", "api", "images")


@dataclass(frozen=True)
class Faults:
    """Every fault knob; fractions are per request (0 = never)."""

    seed: int = 0
    scope: str = "all"                  # which requests get transient faults: all, api, images
    max_per_path: int = 2               # transient faults one path suffers at most
    error_5xx: float = 0.0
    rate_429: float = 0.0
    retry_after: int = 1                # seconds, sent as Retry-After with each 429
    reset: float = 0.0                  # connection reset (RST) before any response byte
    truncate: float = 0.0               # Content-Length larger than the bytes sent, then close
    wrong_content_type: float = 0.0     # JSON as text/plain, images as text/html
    slow: float = 0.0                   # answer only after slow_seconds (a client timeout)
    slow_seconds: float = 5.0
    corrupt_image: float = 0.0          # JPEG with its header overwritten: undecodable
    truncate_image: float = 0.0         # a well-framed HTTP body holding the first part of the JPEG
    latency: float = 0.0                # seconds added to every answer
    jitter: float = 0.0                 # plus uniform 0..jitter seconds
    block_threshold: int = 0            # 0 = no block; else requests per block_window that trigger it
    block_window: float = 1.0
    block_cooldown: float = 30.0
    block_status: int = 403             # 403 as today; 200 as the 2019 block page
    block_images: bool = False          # whether the image host is behind the block too
    inflate_image: float = 0.0          # fraction of images padded with inflate_bytes (size caps)
    inflate_bytes: int = 0
    inflate_image_ids: frozenset[int] = field(default_factory=frozenset)
    huge_image: float = 0.0             # fraction of images whose header claims huge_side x huge_side
    huge_side: int = 30000
    huge_image_ids: frozenset[int] = field(default_factory=frozenset)

    def __post_init__(self):
        for name in (*TRANSIENT, *IMAGE_TRANSIENT, "inflate_image", "huge_image"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"fault {name}={value!r} must be a fraction between 0 and 1")
        if sum(getattr(self, n) for n in (*TRANSIENT, *IMAGE_TRANSIENT)) > 1.0:
            raise ValueError("transient fault fractions add up to more than 1")
        if self.scope not in SCOPES:
            raise ValueError(f"fault scope={self.scope!r} must be one of {', '.join(SCOPES)}")
        for name in ("max_per_path", "retry_after", "block_threshold", "inflate_bytes", "huge_side"):
            if getattr(self, name) < 0:
                raise ValueError(f"fault {name} must be >= 0")
        for name in ("slow_seconds", "latency", "jitter", "block_window", "block_cooldown"):
            if getattr(self, name) < 0:
                raise ValueError(f"fault {name} must be >= 0 seconds")
        if self.block_status not in (200, 403):
            raise ValueError("fault block_status must be 403 or 200")
        object.__setattr__(self, "inflate_image_ids", frozenset(int(i) for i in self.inflate_image_ids))
        object.__setattr__(self, "huge_image_ids", frozenset(int(i) for i in self.huge_image_ids))

    def updated(self, **changes) -> Faults:
        """A copy with ``changes`` applied; an unknown knob is an error naming it and the valid ones."""
        valid = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - valid)
        if unknown:
            raise ValueError(f"unknown fault knob {unknown[0]!r}; valid knobs: {', '.join(sorted(valid))}")
        return replace(self, **{k: _coerce(self, k, v) for k, v in changes.items()})

    def as_json(self) -> dict:
        data = asdict(self)
        data["inflate_image_ids"] = sorted(self.inflate_image_ids)
        data["huge_image_ids"] = sorted(self.huge_image_ids)
        return data


def _coerce(faults: Faults, name: str, value):
    """Knob values arriving as text (CLI, JSON) get the type of the field's current value."""
    current = getattr(faults, name)
    if isinstance(current, frozenset):
        if isinstance(value, str):
            value = [v for v in value.replace("|", ",").split(",") if v.strip()]
        return frozenset(int(v) for v in value)
    if isinstance(current, bool):
        if isinstance(value, str):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"fault {name}={value!r} is not a boolean")
            return value.lower() in ("true", "1", "yes")
        return bool(value)
    try:
        return type(current)(value)
    except (TypeError, ValueError):
        raise ValueError(f"fault {name}={value!r} is not a {type(current).__name__}") from None


def _draw(*parts: object) -> float:
    return random.Random(":".join(str(p) for p in parts)).random()


class FaultState:
    """The mutable side: per-path attempt and fault counts, the block window, the knobs in force."""

    def __init__(self, faults: Faults | None = None):
        self.faults = faults or Faults()
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.attempts: dict[str, int] = {}
            self.faulted: dict[str, int] = {}
            self.recent: deque[float] = deque()
            self.blocked_until = 0.0
            self.blocks = 0

    def set(self, **changes) -> Faults:
        self.faults = self.faults.updated(**changes)
        return self.faults

    def next_attempt(self, path: str) -> int:
        with self._lock:
            attempt = self.attempts.get(path, 0)
            self.attempts[path] = attempt + 1
            return attempt

    def transient(self, path: str, attempt: int, is_image: bool) -> str | None:
        """The transient fault this request suffers, or None."""
        faults = self.faults
        if faults.scope == "api" and is_image or faults.scope == "images" and not is_image:
            return None
        if self.faulted.get(path, 0) >= faults.max_per_path:
            return None
        draw = _draw(faults.seed, "fault", path, attempt)
        for name in (*TRANSIENT, *(IMAGE_TRANSIENT if is_image else ())):
            fraction = getattr(faults, name)
            if draw < fraction:
                with self._lock:
                    self.faulted[path] = self.faulted.get(path, 0) + 1
                return name
            draw -= fraction
        return None

    def delay(self, path: str, attempt: int) -> float:
        faults = self.faults
        if not faults.latency and not faults.jitter:
            return 0.0
        return faults.latency + faults.jitter * _draw(faults.seed, "latency", path, attempt)

    def permanent(self, path: str, object_id: int) -> str | None:
        """``huge`` or ``inflate`` for an image that is always oversized, else None."""
        faults = self.faults
        if object_id in faults.huge_image_ids or _draw(faults.seed, "huge", path) < faults.huge_image:
            return "huge"
        if faults.inflate_bytes and (object_id in faults.inflate_image_ids
                                     or _draw(faults.seed, "inflate", path) < faults.inflate_image):
            return "inflate"
        return None

    def blocked(self, now: float | None = None) -> bool:
        """Whether this request meets the block page; requests answered normally feed the window."""
        faults = self.faults
        if not faults.block_threshold:
            return False
        now = time.monotonic() if now is None else now
        with self._lock:
            if now < self.blocked_until:
                return True
            self.recent.append(now)
            while self.recent and self.recent[0] <= now - faults.block_window:
                self.recent.popleft()
            if len(self.recent) > faults.block_threshold:
                self.blocked_until = now + faults.block_cooldown
                self.blocks += 1
                self.recent.clear()
                return True
            return False

    def block_remaining(self) -> float:
        return max(0.0, self.blocked_until - time.monotonic())
