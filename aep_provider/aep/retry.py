"""
The one retry driver of the AEP client, and the one place that says what an answer means.

* :func:`classify_status` maps every HTTP answer (a whole response or one entry of a 207) to
  an :class:`Action`, in the style of Vector's ``RetryAction``: success, retry, retry part of
  the batch, don't retry; plus "renew the token", which the driver allows once per call.
* :class:`RetryDriver` runs one call's attempts: a deadline and an attempt count bound it,
  waits are exponential backoff with full jitter unless the server sent ``Retry-After``.
  IMS token requests and inlet requests both go through it.
"""

from __future__ import annotations

import email.utils
import enum
import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

log = logging.getLogger(__name__)

#: Statuses worth another try: throttling and server trouble (501 means "not supported": final).
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
#: Statuses that may mean an expired or revoked token: worth one renewal.
AUTH_STATUSES = frozenset({401, 403})

T = TypeVar("T")


class Action(enum.Enum):
    """What to do after an answer."""

    SUCCESS = "success"
    #: the whole request may succeed later (transport error, 429, 5xx): back off, send it again.
    RETRY = "retry"
    #: some entries of a 207 failed retryably: back off, re-send only those.
    RETRY_PARTIAL = "retry_partial"
    #: final: retrying cannot help (400, 404, 413, 501, a redirect, ...).
    DONT_RETRY = "dont_retry"
    #: 401/403: renew the token and retry at once, once per call; after that it is final.
    RENEW_TOKEN = "renew_token"


def classify_status(status: int | None) -> Action:
    """
    What one answer means; the only place that decides retryability.

    :param status: the HTTP status of a response or of one 207 entry; None for a transport
        error (refused connection, timeout, dropped connection), which is worth a retry.
    """
    if status is None:
        return Action.RETRY
    if 200 <= status < 300:
        return Action.SUCCESS
    if status in AUTH_STATUSES:
        return Action.RENEW_TOKEN
    if status in RETRYABLE_STATUSES:
        return Action.RETRY
    return Action.DONT_RETRY


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


@dataclass
class Answer(Generic[T]):
    """
    What one attempt came back with.

    :param action: what the driver should do next (from :func:`classify_status`).
    :param value: the attempt's product on success (a response), else None.
    :param status: the HTTP status, or None for a transport error.
    :param detail: a short description for logs and error messages (secrets redacted).
    :param retry_after: the server's ``Retry-After`` in seconds, if it sent one.
    """

    action: Action
    value: T | None = None
    status: int | None = None
    detail: str = ""
    retry_after: float | None = None


class RetryDriver:
    """
    Runs the attempts of one call until an answer is final or the budget ends.

    The driver owns the budget (deadline, attempts, backoff, ``Retry-After``) and the one
    token renewal; the attempt function only sends and classifies. Whatever state a call
    keeps across attempts (which entries are still pending) stays with the caller.

    :param policy: the call's limits.
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
        self.budget = RetryBudget(policy, clock=clock, sleep=sleep, rng=rng)
        #: whether the one token renewal of this call was used.
        self.renewed = False
        #: whether the last answer was still retryable when the budget ran out.
        self.exhausted = False

    @property
    def deadline(self) -> Deadline:
        return self.budget.deadline

    def run(self, attempt: Callable[[Deadline], Answer[T]], *, renew: Callable[[], None] | None = None) -> Answer[T]:
        """
        Call ``attempt`` until it succeeds, answers something final, or the budget ends.

        :param attempt: makes one request under the given deadline and classifies its answer.
        :param renew: forgets the current token; given only when a renewal can help. Without
            it (or once used) ``RENEW_TOKEN`` is final.
        :return: the last answer; ``exhausted`` tells whether it was a retryable one the
            budget could not afford to retry.
        """
        while True:
            self.budget.start_attempt()
            answer = attempt(self.budget.deadline)
            action = answer.action
            if action is Action.SUCCESS or action is Action.DONT_RETRY:
                return answer
            if action is Action.RENEW_TOKEN:
                if renew is None or self.renewed:
                    return answer
                # The token may have expired or been revoked: renew once and retry at once.
                self.renewed = True
                renew()
                continue
            if not self.budget.wait_before_retry(answer.retry_after):
                self.exhausted = True
                return answer
