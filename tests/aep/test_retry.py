from __future__ import annotations

import random

import pytest

from aep_provider.aep.retry import (
    Action,
    Answer,
    Deadline,
    RetryBudget,
    RetryDriver,
    RetryPolicy,
    classify_status,
    parse_retry_after,
)
from tests.aep.fakes import FakeClock


def test_full_jitter_stays_under_an_exponential_ceiling():
    policy = RetryPolicy(backoff_base_seconds=1.0, backoff_max_seconds=5.0)
    rng = random.Random(7)
    for retry, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 5.0), (10, 5.0)]:
        delays = [policy.backoff(retry, rng=rng) for _ in range(200)]
        assert all(0.0 <= d <= ceiling for d in delays)
        # Jitter spreads the waits across the whole range rather than using the ceiling.
        assert max(delays) > 0.8 * ceiling
        assert min(delays) < 0.2 * ceiling


def test_retry_after_wins_over_jitter():
    assert RetryPolicy(backoff_max_seconds=1.0).backoff(1, retry_after=7.0) == 7.0


def test_budget_stops_at_max_attempts():
    clock = FakeClock()
    budget = RetryBudget(
        RetryPolicy(deadline_seconds=1000, max_attempts=3, backoff_base_seconds=0.1), clock=clock, sleep=clock.sleep
    )
    allowed = []
    while True:
        budget.start_attempt()
        allowed.append(budget.wait_before_retry())
        if not allowed[-1]:
            break
    assert allowed == [True, True, False]
    assert budget.attempts == 3
    assert budget.retries == 2


def test_budget_sleeps_retry_after_then_refuses_a_wait_past_the_deadline():
    clock = FakeClock()
    budget = RetryBudget(RetryPolicy(deadline_seconds=10, max_attempts=100), clock=clock, sleep=clock.sleep)
    budget.start_attempt()
    assert budget.wait_before_retry(retry_after=4.0)
    assert clock.sleeps == [4.0]
    budget.start_attempt()
    assert budget.wait_before_retry(retry_after=4.0)
    budget.start_attempt()
    # 2 s remain: a 4 s Retry-After cannot be honoured in time, so the call ends without sleeping.
    assert budget.deadline.remaining() == pytest.approx(2.0)
    assert not budget.wait_before_retry(retry_after=4.0)
    assert clock.sleeps == [4.0, 4.0]


def test_deadline_counts_down_with_the_clock():
    clock = FakeClock()
    deadline = Deadline(5.0, clock)
    clock.advance(3.0)
    assert deadline.remaining() == pytest.approx(2.0)
    assert deadline.elapsed() == pytest.approx(3.0)
    clock.advance(10.0)
    assert deadline.remaining() == 0.0
    assert deadline.expired


@pytest.mark.parametrize(
    ("header", "expected"),
    [("3", 3.0), (" 1.5 ", 1.5), ("-2", 0.0), (None, None), ("", None), ("soon", None)],
)
def test_parse_retry_after_seconds(header, expected):
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date():
    # 2015-10-21 07:28:00 GMT, asked 10 s before.
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)


@pytest.mark.parametrize("kwargs", [{"deadline_seconds": 0}, {"max_attempts": 0}, {"backoff_base_seconds": -1}])
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        RetryPolicy(**kwargs)


# -- one classification, one driver -------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "action"),
    [
        (None, Action.RETRY),  # transport error
        (200, Action.SUCCESS),
        (207, Action.SUCCESS),
        (401, Action.RENEW_TOKEN),
        (403, Action.RENEW_TOKEN),
        (429, Action.RETRY),
        (500, Action.RETRY),
        (502, Action.RETRY),
        (503, Action.RETRY),
        (504, Action.RETRY),
        (501, Action.DONT_RETRY),
        (400, Action.DONT_RETRY),
        (404, Action.DONT_RETRY),
        (413, Action.DONT_RETRY),
        (302, Action.DONT_RETRY),
    ],
)
def test_every_answer_is_classified_in_one_place(status, action):
    assert classify_status(status) is action


def _driver(**policy):
    clock = FakeClock()
    return RetryDriver(RetryPolicy(**policy), clock=clock, sleep=clock.sleep), clock


def _script(*answers):
    """An attempt function answering ``answers`` in turn, recording how often it was called."""
    calls = []

    def attempt(deadline):
        calls.append(deadline.remaining())
        return answers[min(len(calls) - 1, len(answers) - 1)]

    return attempt, calls


def test_driver_retries_until_success_and_counts_retries():
    driver, _ = _driver(max_attempts=5, backoff_base_seconds=0.1)
    attempt, calls = _script(Answer(Action.RETRY), Answer(Action.RETRY_PARTIAL), Answer(Action.SUCCESS, value="ok"))
    final = driver.run(attempt)
    assert (final.action, final.value, len(calls), driver.budget.retries, driver.exhausted) == (
        Action.SUCCESS,
        "ok",
        3,
        2,
        False,
    )


def test_driver_stops_at_a_final_answer_without_waiting():
    driver, clock = _driver()
    attempt, calls = _script(Answer(Action.DONT_RETRY, status=400))
    assert driver.run(attempt).status == 400
    assert len(calls) == 1 and clock.sleeps == []


def test_driver_reports_exhaustion_with_the_last_retryable_answer():
    driver, _ = _driver(max_attempts=3, backoff_base_seconds=0.01)
    attempt, calls = _script(Answer(Action.RETRY, status=503))
    final = driver.run(attempt)
    assert (final.status, driver.exhausted, len(calls)) == (503, True, 3)


def test_driver_honours_retry_after():
    driver, clock = _driver(max_attempts=3, deadline_seconds=100)
    attempt, _ = _script(Answer(Action.RETRY, status=429, retry_after=7.0), Answer(Action.SUCCESS))
    driver.run(attempt)
    assert clock.sleeps == [7.0]


def test_driver_renews_the_token_once_and_at_once():
    driver, clock = _driver()
    renewals = []
    attempt, calls = _script(Answer(Action.RENEW_TOKEN, status=401))
    final = driver.run(attempt, renew=lambda: renewals.append(1))
    assert final.action is Action.RENEW_TOKEN  # refused again after one renewal: final
    assert (len(renewals), len(calls), clock.sleeps) == (1, 2, [])


def test_driver_without_a_renewal_treats_401_as_final():
    driver, _ = _driver()
    attempt, calls = _script(Answer(Action.RENEW_TOKEN, status=401))
    assert driver.run(attempt).action is Action.RENEW_TOKEN
    assert len(calls) == 1
