"""Rate limiting for the Met API: a token bucket, and an adaptive rate that backs off on blocks.

``METGAN_MET_RATE`` is the budget of the whole deployment; each ingest task takes
``settings.task_rate`` (the rate divided by ``METGAN_MET_WORKERS``, the met_api pool's slots), so
the tasks together never exceed it.

Requests leave evenly spaced at 1/rate. The client asks the bucket for ``RATE_MARGIN`` of the
rate it was given and lets it hold ``burst_for(rate)`` tokens: a little over one, so a late
wake-up of a loaded event loop is caught up instead of lost, yet any 1-second window still counts
fewer than ``burst + margin * rate <= rate + 1`` requests, i.e. at most the rate, with three
quarters of the margin left for network jitter between leaving here and arriving there.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

# Fraction of the configured rate actually used: headroom for network jitter between the moment a
# request leaves and the moment the server counts it.
RATE_MARGIN = 0.96


def burst_for(rate: float, margin: float = RATE_MARGIN) -> float:
    """The bucket size that keeps every 1 s window at or under ``rate`` (see the module docstring)."""
    return 1.0 + 0.25 * (1.0 - margin) * rate


class TokenBucket:
    """An asyncio token bucket: ``acquire`` returns at most ``rate`` times per second on average
    and never more than ``burst`` times at once; ``pause`` stops it for a while."""

    def __init__(self, rate: float, *, burst: float = 1.0,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep):
        if not rate > 0:
            raise ValueError(f"rate must be above 0, got {rate!r}")
        if burst < 1:
            raise ValueError(f"burst must be at least 1, got {burst!r}")
        self._rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._tokens = 1.0
        self._updated = clock()
        self._paused_until = 0.0
        self._lock: asyncio.Lock | None = None
        self._lock_loop: asyncio.AbstractEventLoop | None = None

    @property
    def rate(self) -> float:
        return self._rate

    def set_rate(self, rate: float) -> None:
        self._refill(self._clock())
        self._rate = float(rate)

    def pause(self, seconds: float) -> None:
        """No token is handed out for ``seconds`` from now; tokens do not pile up meanwhile."""
        until = self._clock() + seconds
        if until > self._paused_until:
            self._paused_until = until

    @property
    def paused_for(self) -> float:
        return max(0.0, self._paused_until - self._clock())

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._tokens = min(self.burst, self._tokens + (now - self._updated) * self._rate)
            self._updated = now

    async def acquire(self) -> None:
        """Wait for one token (FIFO: waiters are served in arrival order)."""
        loop = asyncio.get_running_loop()
        if self._lock_loop is not loop:  # the bucket outlives event loops (one per asyncio.run)
            self._lock, self._lock_loop = asyncio.Lock(), loop
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await self._sleep(self._paused_until - now)
                    self._tokens = 0.0
                    self._updated = self._clock()
                    continue
                self._refill(now)
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    return
                await self._sleep((1.0 - self._tokens) / self._rate)


class AdaptiveRate:
    """The bucket's rate under the CDN's blocks: halve and cool down on a block, recover slowly.

    A block (the HTML page) pauses the bucket for a cool-down that doubles while blocks repeat
    (``cooldown_initial`` … ``cooldown_max``, or the server's Retry-After when it sends one) and
    halves the rate (never below ``floor`` of the target). After that the rate climbs back by
    ``step`` of the target every ``recovery_interval`` seconds without a block (additive increase,
    multiplicative decrease), so a deployment that tripped the CDN stays below the trip point for
    a while instead of hammering it again at once.
    """

    def __init__(self, bucket: TokenBucket, target: float, *, cooldown_initial: float = 2.0,
                 cooldown_max: float = 300.0, floor: float = 0.1, step: float = 0.05,
                 recovery_interval: float = 5.0, clock: Callable[[], float] = time.monotonic):
        self.bucket = bucket
        self.target = float(target)
        self.cooldown_initial = cooldown_initial
        self.cooldown_max = cooldown_max
        self.floor = floor
        self.step = step
        self.recovery_interval = recovery_interval
        self._clock = clock
        self._next_cooldown = cooldown_initial
        self._last_block = float("-inf")
        self._last_change = clock()
        self.blocks = 0

    def on_block(self, sent_at: float, retry_after: float | None = None) -> float:
        """Record a block page for a request sent at ``sent_at``; returns the cool-down started.

        Requests already in flight when the first block arrived report the same block: only the
        first one cuts the rate and starts a cool-down.
        """
        if sent_at <= self._last_block or self.bucket.paused_for > 0:
            return self.bucket.paused_for
        now = self._clock()
        self.blocks += 1
        self._last_block = now
        cooldown = min(self.cooldown_max, retry_after) if retry_after else self._next_cooldown
        self._next_cooldown = min(self.cooldown_max, max(self._next_cooldown, cooldown) * 2)
        new_rate = max(self.target * self.floor, self.bucket.rate / 2)
        self.bucket.set_rate(new_rate)
        self.bucket.pause(cooldown)
        self._last_change = now + cooldown
        log.warning("Met CDN block page: cooling down %.0fs, rate lowered to %.1f/s", cooldown, new_rate)
        return cooldown

    def on_success(self) -> None:
        """Record a good response: resets the cool-down ladder and lets the rate recover."""
        now = self._clock()
        if now < self._last_change:
            return
        self._next_cooldown = self.cooldown_initial
        if self.bucket.rate < self.target and now - self._last_change >= self.recovery_interval:
            self.bucket.set_rate(min(self.target, self.bucket.rate + self.target * self.step))
            self._last_change = now
            log.info("Met request rate recovering: %.1f/s of %.1f/s", self.bucket.rate, self.target)


_shared: dict[tuple, AdaptiveRate] = {}
_shared_lock = threading.Lock()


def shared_limiter(key: str, rate: float, margin: float = RATE_MARGIN) -> AdaptiveRate:
    """The process's limiter for ``key`` at ``rate`` (a bucket and its block memory).

    Clients created one after another in a thread (a batch's records, then its images, then the
    next batch) share it, so together they keep the rate in every window, including the moments
    where one client hands over to the next, and a block seen by one slows the next one too.
    """
    ident = (key, float(rate), float(margin), threading.get_ident())
    with _shared_lock:
        limiter = _shared.get(ident)
        if limiter is None:
            bucket = TokenBucket(rate * margin, burst=burst_for(rate, margin))
            limiter = _shared[ident] = AdaptiveRate(bucket, rate * margin)
        return limiter
