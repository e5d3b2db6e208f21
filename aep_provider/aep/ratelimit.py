"""Client-side limits that keep one client under AEP's per-second guardrails."""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable

#: AEP's documented streaming guardrails per organisation.
DEFAULT_MAX_REQUESTS_PER_SECOND = 1_000.0
DEFAULT_MAX_MESSAGES_PER_SECOND = 10_000.0


#: Round trips remembered for the shortest one (see :class:`SlidingWindow`): recent enough to follow
#: a latency that grows, enough to ride out one fast failure.
_RTT_SAMPLES = 32
#: Part of the window kept as a margin for requests whose forward trip is shorter than the
#: shortest round trip suggests (the server's processing time varies too).
_JITTER_MARGIN = 0.05


class _Use:
    """One admitted use of a window: it counts until ``window`` seconds after its (shifted) release."""

    __slots__ = ("acquired_at", "amount", "released_at")

    def __init__(self, amount: float, acquired_at: float) -> None:
        self.amount = amount
        self.acquired_at = acquired_at
        self.released_at: float | None = None


class SlidingWindow:
    """
    At most ``limit`` units in any ``window`` seconds, as the server counts them (a sliding log).

    The server counts a request when it *arrives*, some time after the client sent it, and the
    client cannot tell when: it sees the round trip only. Two requests whose arrivals might fall
    within one ``window`` must share it. A request sent now arrives at least the shortest round
    trip's forward part after now; one answered at ``release`` arrived at the latest ``release``
    minus its own return part. Taking the shortest recent round trip (``rtt_min``) as what no
    request spends less than, a use counts from its acquisition until ``window`` seconds after
    ``release - rtt_min``: ``acquire + window`` plus the request's own jitter (its round trip
    over ``rtt_min``). Counting from the send alone let a slow request and the next one land in
    the same server second (429s); counting until ``window`` after the release held every use a
    whole round trip too long (8,000 of 10,000 messages/s with 250 ms round trips). A token
    bucket that starts full would let twice the rate through in the first second.

    One use larger than ``limit`` (a batch with more messages than the per-second limit) goes
    alone, once nothing else counts.

    :param limit: units per window (> 0).
    :param window: window length in seconds.
    :param clock: monotonic clock (injectable).
    :param sleep: sleep function (injectable).
    :param poll: longest wait for a release when every counted use is still in flight.
    """

    def __init__(
        self,
        limit: float,
        window: float = 1.0,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        poll: float = 0.05,
    ) -> None:
        if limit <= 0:
            raise ValueError(f"limit must be > 0, got {limit!r}")
        self.limit = float(limit)
        self.window = float(window)
        self._clock = clock
        self._sleep = sleep
        self._poll = poll
        self._released = threading.Condition()
        self._log: deque[_Use] = deque()  # in acquisition order
        self._in_window = 0.0
        self._rtts: deque[float] = deque(maxlen=_RTT_SAMPLES)

    def _try(self, amount: float, now: float) -> tuple[_Use | None, float | None]:
        """Admit ``amount`` now, or say how long to wait (None: until some use is released)."""
        horizon = now - self.window
        log = self._log
        # Fast path: drop released uses that left the window from the head.
        while log and log[0].released_at is not None and log[0].released_at <= horizon:
            self._in_window -= log.popleft().amount
        if log and self._in_window + amount > self.limit:
            # Slow path: uses finish out of order; drop every one that has left, not only the head's.
            kept = deque(u for u in log if u.released_at is None or u.released_at > horizon)
            if len(kept) != len(log):
                self._log = log = kept
                self._in_window = sum(u.amount for u in log)
        if not log or self._in_window + amount <= self.limit:
            use = _Use(amount, now)
            log.append(use)
            self._in_window += amount
            return use, None
        released = [u.released_at for u in log if u.released_at is not None]
        return None, (min(released) + self.window - now if released else None)

    def acquire(self, amount: float = 1.0) -> tuple[float, _Use]:
        """
        Block until ``amount`` units may be used; return the seconds waited and the use.

        Pass the use to :meth:`release` when the request's answer came back (or it failed).
        """
        started = self._clock()
        while True:
            with self._released:
                use, wait = self._try(amount, self._clock())
                if use is not None:
                    return self._clock() - started, use
                if wait is None:
                    # Every counted use is in flight: its release is what frees room.
                    self._released.wait(self._poll)
                    continue
            # Never 0: a wait computed as a hair above 0 could spin on float rounding.
            self._sleep(max(wait, 1e-4))

    def release(self, use: _Use) -> None:
        """The request holding ``use`` has been answered (or failed): it counts until a window after
        its answer, less the shortest recent round trip (see the class docstring)."""
        with self._released:
            if use.released_at is None:
                now = self._clock()
                self._rtts.append(now - use.acquired_at)
                use.released_at = now - max(min(self._rtts) - self.window * _JITTER_MARGIN, 0.0)
            self._released.notify_all()


class Permit:
    """What one request holds of a :class:`RateLimiter`; release it once the answer is in."""

    __slots__ = ("_uses", "waited")

    def __init__(self, uses: list[tuple[SlidingWindow, _Use]], waited: float) -> None:
        self._uses = uses
        #: seconds the request waited for its turn.
        self.waited = waited

    def release(self) -> None:
        for window, use in self._uses:
            window.release(use)
        self._uses = []

    def __enter__(self) -> Permit:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()


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

    @property
    def enabled(self) -> bool:
        return self._requests is not None or self._messages is not None

    @property
    def max_messages_per_second(self) -> float | None:
        """The messages/s limit, None when off (the engine evens its batches out to it)."""
        return self._messages.limit if self._messages is not None else None

    def acquire(self, messages: int) -> Permit:
        """
        Wait until one request carrying ``messages`` messages may go.

        :return: the request's permit: release it (or use it as a context manager around the
            request) when the answer is in, so that the request counts until a second after that.
        """
        uses: list[tuple[SlidingWindow, _Use]] = []
        waited = 0.0
        try:
            if self._requests is not None:
                seconds, use = self._requests.acquire(1)
                uses.append((self._requests, use))
                waited += seconds
            if self._messages is not None and messages > 0:
                seconds, use = self._messages.acquire(messages)
                uses.append((self._messages, use))
                waited += seconds
        except BaseException:
            Permit(uses, waited).release()
            raise
        return Permit(uses, waited)
