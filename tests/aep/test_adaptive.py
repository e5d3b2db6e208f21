"""The guardrail share's decisions (aep_provider/aep/adaptive.py), on a manual clock."""

from __future__ import annotations

import pytest

from aep_provider.aep.adaptive import GuardrailShare, ShareSettings
from aep_provider.aep.ratelimit import RateLimiter
from aep_provider.emulator import Fault
from tests.aep.fakes import FakeClock
from tests.engine.support import inlet_client, message

#: the default decrease on a 429.
RATIO = ShareSettings().decrease_ratio


def busy_second(share: GuardrailShare, clock: FakeClock, rtt: float = 0.1) -> bool:
    """One interval in which the limiter held requests back and every answer came back in ``rtt``."""
    share.held_back()
    clock.advance(share.settings.interval)
    return share.answered(rtt)


def test_a_claim_sets_the_start_and_the_ceiling():
    clock = FakeClock()
    share = GuardrailShare(clock=clock)
    share.claim(1 / 3, 1.0)
    assert share.fraction == pytest.approx(1 / 3)
    assert share.ceiling == 1.0
    share.claim(0.25)
    assert (share.fraction, share.ceiling) == (0.25, 0.25)
    with pytest.raises(ValueError, match="share <= ceiling"):
        share.claim(0.6, 0.5)
    with pytest.raises(ValueError, match="ceiling > 0"):
        share.claim(0.0, 0.0)


def test_a_429_decreases_once_per_round_of_requests():
    clock = FakeClock()
    share = GuardrailShare(clock=clock)
    sent = [clock() + i * 0.01 for i in range(4)]  # four requests of one burst
    clock.advance(0.05)
    assert share.throttled(sent[0]) is True
    assert share.fraction == pytest.approx(RATIO)
    # The burst's other refusals were sent at the old rate: no further decrease for them.
    assert [share.throttled(t) for t in sent[1:]] == [False, False, False]
    assert share.fraction == pytest.approx(RATIO)
    # A request sent after the decrease and refused again: the rate is still too high.
    clock.advance(0.1)
    assert share.throttled(clock()) is True
    assert share.fraction == pytest.approx(RATIO * RATIO)
    assert share.decreases == 2


def test_never_below_the_floor_nor_above_the_ceiling():
    clock = FakeClock()
    share = GuardrailShare(ShareSettings(floor=0.1), clock=clock)
    share.claim(0.5, 0.5)
    for _ in range(20):
        clock.advance(0.01)
        share.throttled(clock())
    assert share.fraction == pytest.approx(0.05)  # the floor is a part of the ceiling
    share.claim(0.499, 0.5)
    for _ in range(3):
        busy_second(share, clock)
    assert share.fraction == pytest.approx(0.5)


def test_increases_only_when_held_back_and_not_throttled():
    clock = FakeClock()
    share = GuardrailShare(clock=clock)
    share.claim(0.3, 1.0)
    # The limiter never made anyone wait: the client does not use what it has, no evidence for more.
    clock.advance(1.0)
    assert share.answered(0.1) is False
    # Held back, answers fine: one slow step (no 429 yet, the claim is trusted).
    assert busy_second(share, clock) is True
    assert share.fraction == pytest.approx(0.3 + share.settings.increase)
    # Held back but a 429 in the same interval: no increase at the interval's end.
    share.held_back()
    share.throttled(clock() - 5)  # sent before the claim's round: no decrease, but it counts as pushback
    clock.advance(1.0)
    assert share.answered(0.1) is False
    # Answers within the interval do not step it.
    share.held_back()
    clock.advance(0.5)
    assert share.answered(0.1) is False


def test_climbs_back_fast_to_the_level_of_the_last_decrease_then_probes_slowly():
    clock = FakeClock()
    settings = ShareSettings(decrease_ratio=0.75)
    share = GuardrailShare(settings, clock=clock)
    share.claim(0.4, 1.0)
    clock.advance(0.1)
    share.throttled(clock())  # 0.4 -> 0.3, level 0.4: fast up to 0.36
    assert share.fraction == pytest.approx(0.3)
    steps = []
    for _ in range(5):
        before = share.fraction
        busy_second(share, clock)
        steps.append(round(share.fraction - before, 6))
    # The interval of the 429 itself does not grow; then fast, stopping at 0.9 x 0.4, then slowly.
    assert steps == [0.0, settings.fast_increase, 0.01, settings.increase, settings.increase]


def test_rising_round_trips_hold_the_fraction():
    clock = FakeClock()
    share = GuardrailShare(clock=clock)
    share.claim(0.5, 1.0)
    for rtt in (0.10, 0.11, 0.10, 0.11, 0.10):  # a steady service
        assert busy_second(share, clock, rtt) is True
    held = share.fraction
    assert busy_second(share, clock, 0.5) is False  # the service slows down: no probing
    assert share.fraction == held
    assert share.decreases == 0  # and no decrease either: only a 429 says "over the limit"


def test_limiter_applies_the_fraction_to_both_windows_and_reports_429s():
    clock = FakeClock(0.0)
    limiter = RateLimiter(max_requests_per_second=100, max_messages_per_second=1_000, clock=clock, sleep=clock.sleep)
    limiter.claim(0.5, 1.0)
    assert limiter.max_messages_per_second == pytest.approx(500)
    with limiter.acquire(500) as permit:
        clock.advance(0.05)
        permit.throttled()
    assert limiter.max_messages_per_second == pytest.approx(500 * RATIO)
    assert limiter._requests is not None and limiter._requests.limit == pytest.approx(50 * RATIO)
    # The next request waits for the smaller window, the first 500 messages still count.
    with limiter.acquire(400) as second:
        pass
    assert second.waited > 0


def test_limits_off_adapt_nothing():
    limiter = RateLimiter(None, None)
    with limiter.acquire(10) as permit:
        permit.throttled()
    assert limiter.share.decreases == 0 and limiter.max_messages_per_second is None


def test_the_inlet_client_reports_429_answers_and_429_entries_to_its_share(aep_emulator):
    """Over real HTTP: a whole-request 429 and a 207 with 429 entries each shrink the client's share once."""
    client = inlet_client(aep_emulator)
    client.rate_limiter = RateLimiter(1_000, 10_000)
    client.claim_share(0.5, 1.0)
    messages = [message("t", 0, i) for i in range(4)]
    aep_emulator.inject(Fault(endpoint="batch", status=429, retry_after=0, count=1))
    result = client.send_batch(messages)
    assert all(r.accepted for r in result.results) and result.throttled == 1
    assert client.rate_limiter.share.decreases == 1
    assert client.rate_limiter.max_messages_per_second == pytest.approx(10_000 * 0.5 * RATIO)
    aep_emulator.inject(Fault(endpoint="batch", reject_indexes=(1, 2), message_status=429, count=1))
    result = client.send_batch(messages)
    assert all(r.accepted for r in result.results) and result.throttled == 2
    assert client.rate_limiter.share.decreases == 2  # two 429 entries of one answer: one decrease
    client.close()
