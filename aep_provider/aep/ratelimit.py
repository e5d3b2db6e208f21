"""Client-side limits that keep one client under AEP's per-second guardrails."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: AEP's documented streaming guardrails per organisation.
DEFAULT_MAX_REQUESTS_PER_SECOND = 1_000.0
DEFAULT_MAX_MESSAGES_PER_SECOND = 10_000.0


class SlidingWindow:
    """
    At most ``limit`` units in any ``window`` seconds (a sliding log, not a token bucket).

    A token bucket that starts full lets twice its rate through in the first second, which a
    server counting per second answers with 429s; a sliding log never exceeds the limit in any
    window. Callers reserve a send time under the lock and sleep outside it, so threads queue
    in order. One reservation larger than ``limit`` (a batch with more messages than the
    per-second limit) goes alone, once the window is empty.

    :param limit: units per window (> 0).
    :param window: window length in seconds.
    :param clock: monotonic clock (injectable).
    :param sleep: sleep function (injectable).
    """

    def __init__(
        self,
        limit: float,
        window: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be > 0, got {limit!r}")
        self.limit = float(limit)
        self.window = float(window)
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._log: deque[tuple[float, float]] = deque()  # (send time, units), in send-time order
        self._in_window = 0.0

    def reserve(self, amount: float = 1.0) -> float:
        """Book ``amount`` units at the earliest allowed time; return the seconds until then."""
        with self._lock:
            now = self._clock()
            # Never before an earlier reservation: keeps the log ordered and the queue fair.
            at = max(now, self._log[-1][0] if self._log else now)
            while self._log:
                # Entries at or before at - window no longer count for this or any later send.
                while self._log and self._log[0][0] <= at - self.window:
                    self._in_window -= self._log.popleft()[1]
                if not self._log or self._in_window + amount <= self.limit:
                    break
                at = self._log[0][0] + self.window
            self._log.append((at, amount))
            self._in_window += amount
            return at - now

    def acquire(self, amount: float = 1.0) -> float:
        """Block until ``amount`` units may be used; return the seconds waited."""
        wait = self.reserve(amount)
        if wait > 0:
            self._sleep(wait)
        return wait


class RateLimiter:
    """
    Requests/s and messages/s limits for one client; ``None`` or ``0`` switches a limit off.

    :param max_requests_per_second: most HTTP requests in any one second.
    :param max_messages_per_second: most messages in any one second.
    """

    def __init__(
        self,
        max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND,
        max_messages_per_second: float | None = DEFAULT_MAX_MESSAGES_PER_SECOND,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._requests = (
            SlidingWindow(max_requests_per_second, clock=clock, sleep=sleep) if max_requests_per_second else None
        )
        self._messages = (
            SlidingWindow(max_messages_per_second, clock=clock, sleep=sleep) if max_messages_per_second else None
        )
        self._sleep = sleep

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._messages is not None

    def acquire(self, messages: int) -> float:
        """Wait until one request carrying ``messages`` messages may go; return the seconds waited."""
        # Book both, then wait once for the later of the two.
        wait = 0.0
        if self._requests is not None:
            wait = max(wait, self._requests.reserve(1))
        if self._messages is not None and messages > 0:
            wait = max(wait, self._messages.reserve(messages))
        if wait > 0:
            self._sleep(wait)
        return wait
