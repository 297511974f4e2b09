"""Token bucket and adaptive rate, on a simulated clock (no real sleeping, no timing asserts)."""

from __future__ import annotations

import asyncio

import pytest

from metgan.met.ratelimit import AdaptiveRate, TokenBucket


class SimClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += max(seconds, 0.0)
        await asyncio.sleep(0)


def max_in_any_window(times: list[float], window: float = 1.0) -> int:
    best, start = 0, 0
    for end, t in enumerate(times):
        while t - times[start] >= window:
            start += 1
        best = max(best, end - start + 1)
    return best


async def acquire_times(bucket: TokenBucket, clock: SimClock, n: int, workers: int = 8) -> list[float]:
    times: list[float] = []

    async def worker(count: int) -> None:
        for _ in range(count):
            await bucket.acquire()
            times.append(clock())

    await asyncio.gather(*(worker(n // workers) for _ in range(workers)))
    return sorted(times)


def test_bucket_never_exceeds_rate_in_any_one_second_window():
    clock = SimClock()
    bucket = TokenBucket(80, clock=clock, sleep=clock.sleep)
    times = asyncio.run(acquire_times(bucket, clock, 800))
    assert len(times) == 800
    assert max_in_any_window(times) <= 80
    assert times[-1] - times[0] == pytest.approx(799 / 80, rel=1e-6)


def test_pause_and_lower_rate():
    clock = SimClock()
    async def scenario() -> tuple[float, list[float]]:
        bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
        await acquire_times(bucket, clock, 8)
        bucket.pause(30)
        bucket.set_rate(2)
        before = clock()
        return before, await acquire_times(bucket, clock, 8)

    before, times = asyncio.run(scenario())
    assert times[0] >= before + 30
    assert max_in_any_window(times) <= 2


def test_adaptive_rate_halves_on_block_once_and_recovers_slowly():
    clock = SimClock()
    bucket = TokenBucket(80, clock=clock, sleep=clock.sleep)
    adaptive = AdaptiveRate(bucket, 80, cooldown_initial=2, cooldown_max=60, recovery_interval=5, clock=clock)
    sent = clock()
    clock.now += 0.1
    assert adaptive.on_block(sent) == 2
    assert bucket.rate == 40 and bucket.paused_for == pytest.approx(2)
    adaptive.on_block(sent)  # a request in flight before the block reports the same block
    assert bucket.rate == 40 and adaptive.blocks == 1
    clock.now += 0.5
    assert adaptive.on_block(clock() - 0.01) == pytest.approx(1.5)  # still cooling down: no new block
    clock.now += 3
    adaptive.on_block(clock())
    assert adaptive.blocks == 2 and bucket.rate == 20
    assert bucket.paused_for == pytest.approx(4), "repeated blocks double the cool-down"
    rates = []
    for _ in range(40):
        clock.now += 5
        adaptive.on_success()
        rates.append(bucket.rate)
    assert rates == sorted(rates) and rates[:2] == [20, 24] and rates[-1] == 80
    assert rates.index(80) >= 10, "recovery is gradual, not a jump back to the target"


def test_retry_after_sets_the_cooldown():
    clock = SimClock()
    bucket = TokenBucket(8, clock=clock, sleep=clock.sleep)
    adaptive = AdaptiveRate(bucket, 8, clock=clock)
    assert adaptive.on_block(clock() + 1, retry_after=45) == 45
    assert bucket.rate == 4


def test_late_wakeups_are_caught_up_without_exceeding_the_rate():
    import random

    from metgan.met.ratelimit import RATE_MARGIN, burst_for

    random.seed(4)
    for rate in (2, 25, 80, 400):
        clock = SimClock()

        async def late_sleep(seconds: float, clock: SimClock = clock) -> None:
            clock.now += max(seconds, 0.0) + random.uniform(0, 0.004)  # a busy event loop wakes late
            await asyncio.sleep(0)

        bucket = TokenBucket(rate * RATE_MARGIN, burst=burst_for(rate), clock=clock, sleep=late_sleep)
        times = asyncio.run(acquire_times(bucket, clock, rate * 8))
        assert max_in_any_window(times) <= rate, rate
        achieved = (len(times) - 1) / (times[-1] - times[0])
        assert achieved >= 0.95 * rate, (rate, achieved)
