"""Retry budget: exponential backoff with full jitter, bounded by a deadline AND an attempt count."""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

#: Statuses worth another try: throttling and server trouble (501 means "not supported": final).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES


@dataclass(frozen=True)
class RetryPolicy:
    """
    How long and how often one call may keep trying.

    :param deadline_seconds: total wall-clock budget of one call, retries and waits included.
    :param max_attempts: most requests one call may make (the first one included).
    :param backoff_base_seconds: first backoff ceiling; doubles each retry (full jitter below it).
    :param backoff_max_seconds: ceiling of any one backoff (Retry-After may ask for more, up to the deadline).
    """

    deadline_seconds: float = 120.0
    max_attempts: int = 8
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.deadline_seconds <= 0:
            raise ValueError(f"deadline_seconds must be > 0, got {self.deadline_seconds!r}")
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be >= 1, got {self.max_attempts!r}")
        if self.backoff_base_seconds < 0 or self.backoff_max_seconds < 0:
            raise ValueError("backoff seconds must be >= 0")

    def backoff(
        self, retry_number: int, retry_after: float | None = None, *, rng: random.Random | None = None
    ) -> float:
        """
        Seconds to wait before retry number ``retry_number`` (1 = first retry).

        The server's ``Retry-After`` wins when given; otherwise "full jitter": uniform in
        ``[0, min(max, base * 2**(n-1))]``, which spreads concurrent clients apart.
        """
        if retry_after is not None:
            return max(retry_after, 0.0)
        ceiling = min(self.backoff_max_seconds, self.backoff_base_seconds * (2 ** max(retry_number - 1, 0)))
        return (rng or random).uniform(0.0, ceiling)


class Deadline:
    """A point in monotonic time; ``clock`` is injectable so tests need not sleep."""

    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self.seconds = seconds
        self._start = clock()
        self._end = self._start + seconds

    def remaining(self) -> float:
        return max(self._end - self._clock(), 0.0)

    def elapsed(self) -> float:
        return self._clock() - self._start

    @property
    def expired(self) -> bool:
        return self.remaining() <= 0.0


class RetryBudget:
    """
    What is left of one call's budget: attempts made so far and the deadline.

    :param policy: the limits.
    :param clock: monotonic clock (injectable).
    :param sleep: sleep function (injectable).
    """

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self.policy = policy
        self.deadline = Deadline(policy.deadline_seconds, clock)
        self._sleep = sleep
        self._rng = rng
        self.attempts = 0
        self.retries = 0

    def start_attempt(self) -> None:
        self.attempts += 1

    def wait_before_retry(self, retry_after: float | None = None) -> bool:
        """
        Sleep before the next attempt if the budget allows one; return False when it does not.

        A wait that would reach the deadline is not started: there would be no time left to
        use it (so a ``Retry-After`` longer than what remains ends the call at once).
        """
        if self.attempts >= self.policy.max_attempts:
            return False
        delay = self.policy.backoff(self.retries + 1, retry_after, rng=self._rng)
        if delay >= self.deadline.remaining():
            return False
        if delay > 0:
            self._sleep(delay)
        self.retries += 1
        return True


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """
    ``Retry-After`` as seconds: delta-seconds or an HTTP date; None when absent or unreadable.

    :param value: the header value.
    :param now: current epoch seconds (for the HTTP-date form), injectable for tests.
    """
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when is None:
        return None
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)
