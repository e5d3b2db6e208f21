"""Client-side token buckets that keep one client under AEP's per-organisation guardrails."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: AEP's documented streaming guardrails per organisation.
DEFAULT_MAX_REQUESTS_PER_SECOND = 1_000.0
DEFAULT_MAX_MESSAGES_PER_SECOND = 10_000.0


class TokenBucket:
    """
    A bucket refilled at ``rate`` tokens/s holding at most ``rate`` (one second of burst).

    Callers reserve what they need under the lock and sleep outside it, so threads queue
    fairly and a request bigger than the bucket (a batch of more messages than ``rate``)
    simply waits for the debt to refill instead of deadlocking.

    :param rate: tokens per second (> 0).
    :param clock: monotonic clock (injectable).
    :param sleep: sleep function (injectable).
    """

    def __init__(
        self,
        rate: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if rate <= 0:
            raise ValueError(f"rate must be > 0, got {rate!r}")
        self.rate = float(rate)
        self.capacity = float(rate)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._updated = clock()

    def reserve(self, amount: float = 1.0) -> float:
        """Take ``amount`` tokens (possibly into debt) and return how long the caller must wait."""
        with self._lock:
            now = self._clock()
            self._tokens = min(self.capacity, self._tokens + (now - self._updated) * self.rate)
            self._updated = now
            self._tokens -= amount
            return 0.0 if self._tokens >= 0 else -self._tokens / self.rate

    def acquire(self, amount: float = 1.0) -> float:
        """Block until ``amount`` tokens are ours; return the seconds waited."""
        wait = self.reserve(amount)
        if wait > 0:
            self._sleep(wait)
        return wait


class RateLimiter:
    """
    Requests/s and messages/s limits for one client; ``None`` or ``0`` switches a limit off.

    :param max_requests_per_second: most HTTP requests per second.
    :param max_messages_per_second: most messages per second.
    """

    def __init__(
        self,
        max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
        max_messages_per_second: float | None = DEFAULT_MAX_MESSAGES_PER_SECOND,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._requests = TokenBucket(max_requests_per_second, clock=clock, sleep=sleep) if max_requests_per_second else None
        self._messages = TokenBucket(max_messages_per_second, clock=clock, sleep=sleep) if max_messages_per_second else None
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._messages is not None

    def acquire(self, messages: int) -> float:
        """Wait until one request carrying ``messages`` messages may go; return the seconds waited."""
        # Reserve from both buckets first, then wait once for the longer debt.
        wait = 0.0
        if self._requests is not None:
            wait = max(wait, self._requests.reserve(1))
        if self._messages is not None and messages > 0:
            wait = max(wait, self._messages.reserve(messages))
        if wait > 0:
            self._sleep(wait)
        return wait
