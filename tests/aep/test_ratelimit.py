from __future__ import annotations

import threading
import time

import pytest

from aep_provider.aep.ratelimit import RateLimiter, SlidingWindow
from tests.aep.fakes import FakeClock


def send_times(window: SlidingWindow, clock: FakeClock, amounts: list[float]) -> list[float]:
    """Acquire each amount in turn, answered at once; the times they were let through."""
    times = []
    for amount in amounts:
        _, use = window.acquire(amount)
        times.append(clock.now)
        window.release(use)
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
    assert window.acquire(5)[0] == 0.0
    assert window.acquire(1)[0] == pytest.approx(0.4)


def test_amount_over_the_limit_goes_alone_once_the_window_is_empty():
    clock = FakeClock(0.0)
    window = SlidingWindow(100, clock=clock, sleep=clock.sleep)
    send_times(window, clock, [10])
    waited, big = window.acquire(300)
    assert waited == pytest.approx(1.0)
    window.release(big)
    assert window.acquire(1)[0] == pytest.approx(1.0)


def test_a_use_in_flight_counts_until_a_window_after_its_answer_less_the_shortest_round_trip():
    """The server counts a request when it arrives: no later than its answer, no earlier than the
    shortest round trip allows (a margin of 5 % of the window kept for jitter)."""
    clock = FakeClock(0.0)
    window = SlidingWindow(10, clock=clock, sleep=clock.sleep)
    _, quick = window.acquire(1)
    clock.advance(0.2)
    window.release(quick)  # the shortest round trip so far: 0.2 s
    clock.advance(1.0)
    _, slow = window.acquire(9)
    clock.advance(5.0)  # still in flight five windows later: it may not have arrived yet
    assert window._try(2, clock.now) == (None, None)  # wait for a release, however long
    window.release(slow)
    # It arrived at the latest 0.2 s (less the margin) before its answer: it counts until then + 1 s.
    use, wait = window._try(2, clock.now)
    assert use is None and wait == pytest.approx(1.0 - 0.2 + 0.05)
    clock.advance(0.85)
    assert window._try(2, clock.now)[0] is not None


def test_uses_with_a_steady_round_trip_count_a_window_after_their_send():
    """250 ms away, a request sent one window (+ margin) after another cannot share its server second."""
    clock = FakeClock(0.0)
    window = SlidingWindow(10, clock=clock, sleep=clock.sleep)
    for _ in range(5):
        waited, use = window.acquire(10)
        clock.advance(0.25)
        window.release(use)
        clock.advance(0.5)
    # After the first, each waited until 1.05 s after the previous send: 0.3 s past its answer + 0.5.
    _, use = window.acquire(10)
    assert waited == pytest.approx(0.3, abs=1e-3)


def test_a_release_wakes_a_waiting_acquire():
    window = SlidingWindow(1, window=0.05)
    _, held = window.acquire(1)
    released_at: list[float] = []

    def answer_later() -> None:
        time.sleep(0.1)
        released_at.append(time.monotonic())
        window.release(held)

    threading.Thread(target=answer_later).start()
    waited, _ = window.acquire(1)
    # Never admitted while the held use is in flight (it may not have arrived yet).
    assert time.monotonic() >= released_at[0]
    assert waited >= 0.095


def test_limiter_waits_for_the_tighter_of_requests_and_messages():
    clock = FakeClock(0.0)
    limiter = RateLimiter(max_requests_per_second=1000, max_messages_per_second=100, clock=clock, sleep=clock.sleep)
    with limiter.acquire(100) as first:
        pass
    assert first.waited == 0.0
    with limiter.acquire(50) as second:
        pass
    assert second.waited == pytest.approx(1.0)
    limiter = RateLimiter(max_requests_per_second=2, max_messages_per_second=10_000, clock=clock, sleep=clock.sleep)
    waits = []
    for _ in range(3):
        with limiter.acquire(1) as permit:
            waits.append(permit.waited)
    assert waits == [0.0, 0.0, pytest.approx(1.0)]


@pytest.mark.parametrize("off", [None, 0])
def test_limits_can_be_switched_off(off):
    clock = FakeClock()
    limiter = RateLimiter(off, off, clock=clock, sleep=clock.sleep)
    assert not limiter.enabled
    assert sum(limiter.acquire(10_000).waited for _ in range(100)) == 0.0


def test_many_threads_share_the_limit_without_deadlock():
    window = SlidingWindow(50, window=0.05)
    done: list[int] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(25):
            _, use = window.acquire(1)
            time.sleep(0.001)  # the request
            window.release(use)
            with lock:
                done.append(1)

    started = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    # 200 uses at 50 per 0.05 s: at least three more windows after the first 50.
    assert len(done) == 200
    assert time.monotonic() - started >= 0.15
