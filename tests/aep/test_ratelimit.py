from __future__ import annotations

import threading

import pytest

from aep_provider.aep.ratelimit import RateLimiter, TokenBucket
from tests.aep.fakes import FakeClock


def test_bucket_allows_one_second_of_burst_then_paces():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    waits = [bucket.acquire() for _ in range(10)]
    assert waits == [0.0] * 10
    assert bucket.acquire() == pytest.approx(0.1)
    assert bucket.acquire() == pytest.approx(0.1)


def test_bucket_refills_with_time():
    clock = FakeClock()
    bucket = TokenBucket(10, clock=clock, sleep=clock.sleep)
    for _ in range(10):
        bucket.acquire()
    clock.advance(0.5)
    assert [bucket.reserve() for _ in range(5)] == [0.0] * 5
    assert bucket.reserve() > 0


def test_request_bigger_than_the_bucket_waits_for_its_debt():
    clock = FakeClock()
    bucket = TokenBucket(100, clock=clock, sleep=clock.sleep)
    assert bucket.acquire(300) == pytest.approx(2.0)


def test_limiter_waits_for_the_tighter_of_requests_and_messages():
    clock = FakeClock()
    limiter = RateLimiter(max_requests_per_second=1000, max_messages_per_second=100, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(100) == 0.0
    assert limiter.acquire(50) == pytest.approx(0.5)


@pytest.mark.parametrize("off", [None, 0])
def test_limits_can_be_switched_off(off):
    clock = FakeClock()
    limiter = RateLimiter(off, off, clock=clock, sleep=clock.sleep)
    assert not limiter.enabled
    assert sum(limiter.acquire(10_000) for _ in range(100)) == 0.0


def test_bucket_is_consistent_under_threads():
    clock = FakeClock()
    lock = threading.Lock()
    waits: list[float] = []
    bucket = TokenBucket(100, clock=clock, sleep=lambda s: None)

    def worker() -> None:
        for _ in range(50):
            w = bucket.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 reservations, 100 free: the other 300 queue one 1/100 s apart, no two at the same slot.
    positive = sorted(w for w in waits if w > 0)
    assert len(positive) == 300
    assert positive[-1] == pytest.approx(3.0)
    assert len({round(w, 6) for w in positive}) == 300
