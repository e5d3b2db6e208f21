from __future__ import annotations

import threading

import pytest

from aep_provider.aep.ratelimit import RateLimiter, SlidingWindow
from tests.aep.fakes import FakeClock


def send_times(window: SlidingWindow, clock: FakeClock, amounts: list[float]) -> list[float]:
    times = []
    for amount in amounts:
        window.acquire(amount)
        times.append(clock.now)
    return times


def max_in_any_window(times: list[float], amounts: list[float], length: float = 1.0) -> float:
    return max(sum(a for t2, a in zip(times, amounts) if t - length < t2 <= t) for t in times)


def test_burst_up_to_the_limit_then_waits_for_the_window_to_slide():
    clock = FakeClock(0.0)
    window = SlidingWindow(10, clock=clock, sleep=clock.sleep)
    times = send_times(window, clock, [1] * 25)
    assert times[:10] == [0.0] * 10
    assert times[10] == pytest.approx(1.0)
    assert times[20] == pytest.approx(2.0)


def test_never_more_than_the_limit_in_any_second_with_uneven_amounts():
    clock = FakeClock(0.0)
    window = SlidingWindow(100, clock=clock, sleep=clock.sleep)
    amounts = [30, 50, 10, 40, 70, 5, 99, 1, 60, 60, 20]
    times = send_times(window, clock, amounts)
    assert max_in_any_window(times, amounts) <= 100
    assert times[3] == pytest.approx(1.0)  # 30+50+10 used, 40 more must wait for the first to leave


def test_units_free_up_as_time_passes():
    clock = FakeClock(0.0)
    window = SlidingWindow(10, clock=clock, sleep=clock.sleep)
    send_times(window, clock, [5])
    clock.advance(0.5)
    send_times(window, clock, [5])
    clock.advance(0.6)  # the first 5 left the window
    assert window.reserve(5) == 0.0
    assert window.reserve(1) == pytest.approx(0.4)


def test_amount_over_the_limit_goes_alone_once_the_window_is_empty():
    clock = FakeClock(0.0)
    window = SlidingWindow(100, clock=clock, sleep=clock.sleep)
    window.acquire(10)
    assert window.acquire(300) == pytest.approx(1.0)
    assert window.reserve(1) == pytest.approx(1.0)


def test_limiter_waits_for_the_tighter_of_requests_and_messages():
    clock = FakeClock(0.0)
    limiter = RateLimiter(max_requests_per_second=1000, max_messages_per_second=100, clock=clock, sleep=clock.sleep)
    assert limiter.acquire(100) == 0.0
    assert limiter.acquire(50) == pytest.approx(1.0)
    limiter = RateLimiter(max_requests_per_second=2, max_messages_per_second=10_000, clock=clock, sleep=clock.sleep)
    assert [limiter.acquire(1) for _ in range(3)] == [0.0, 0.0, pytest.approx(1.0)]


@pytest.mark.parametrize("off", [None, 0])
def test_limits_can_be_switched_off(off):
    clock = FakeClock()
    limiter = RateLimiter(off, off, clock=clock, sleep=clock.sleep)
    assert not limiter.enabled
    assert sum(limiter.acquire(10_000) for _ in range(100)) == 0.0


def test_reservations_from_many_threads_respect_the_limit():
    clock = FakeClock(0.0)
    lock = threading.Lock()
    waits: list[float] = []
    window = SlidingWindow(100, clock=clock, sleep=lambda s: None)

    def worker() -> None:
        for _ in range(50):
            w = window.reserve()
            with lock:
                waits.append(w)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # 400 reservations at 100/s with the clock standing still: four whole windows, 100 each.
    assert sorted(round(w, 6) for w in waits) == sorted([0.0] * 100 + [1.0] * 100 + [2.0] * 100 + [3.0] * 100)
