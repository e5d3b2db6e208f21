"""
How much of the organisation's guardrail one client claims now: AIMD on AEP's 429 answers.

AEP's limits (10,000 messages/s, 1,000 requests/s) are per organisation, but each client only
sees its own requests. :class:`GuardrailShare` decides, from what the client's own requests
meet, which fraction of its configured limits (:class:`~aep_provider.aep.ratelimit.RateLimiter`)
the client uses; the rate limiter applies the fraction and feeds the answers back. The idea is
Vector's adaptive request concurrency (additive increase while answers stay fast and nothing
pushes back, multiplicative decrease on back pressure), applied to a rate, since AEP's guardrail
is a rate:

* **a claim** sets where a client starts and the most it may take: the drain engine claims its
  consumer group's share (``guardrail_share``) split by the partitions it holds, so the members
  of one group start out adding up to the group's share instead of each claiming all of it;
* **a 429** multiplies the fraction by ``decrease_ratio``, once per round of requests: answers to
  requests sent before the last decrease do not decrease it again (they were sent at the old
  rate), so a burst of refusals is one decrease, as TCP counts one loss per window;
* **an interval** (a second: AEP's window) in which the limiter held requests back, no 429 came
  and the round trips did not rise adds a step: fast up to ``recovery`` times the level of the
  last decrease (capacity that was there a moment ago), slowly above it (probing for room others
  left), never past the ceiling;
* **rising round trips** (the interval's mean over the long-run mean by more than
  ``rtt_deviation_scale`` deviations) hold the fraction where it is: the service is slowing down,
  so this is no time to probe. They do not decrease it: on a busy worker the client's own CPU
  makes round trips jump too, and AEP says when it is over its limit with a 429.

Pure decisions with an injectable clock: the unit tests drive it without sleeping.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShareSettings:
    """
    The controller's constants.

    :param decrease_ratio: the fraction is multiplied by this on a 429 (once per round of requests).
    :param fast_increase: added per interval, as a part of the ceiling, while below ``recovery``
        times the fraction at the last decrease.
    :param increase: added per interval above that (the slow probe: with three clients of one
        organisation, a 429 about every 9 s, under 2 % of their requests at 1 MB each).
    :param recovery: where the fast climb ends, as a part of the level before the last decrease.
    :param floor: lowest fraction, as a part of the ceiling (a client never stops sending).
    :param interval: seconds between increases (AEP counts per second).
    :param ewma_alpha: weight of the latest interval in the round trips' long-run mean and variance.
    :param rtt_deviation_scale: an interval's mean round trip this many deviations over the long-run
        mean counts as rising.
    :param rtt_tolerance: ... and at least this part of the mean over it (steady round trips have
        almost no deviation: a millisecond more would count as rising).
    """

    decrease_ratio: float = 0.85
    fast_increase: float = 0.05
    increase: float = 0.002
    recovery: float = 0.9
    floor: float = 0.02
    interval: float = 1.0
    ewma_alpha: float = 0.3
    rtt_deviation_scale: float = 2.5
    rtt_tolerance: float = 0.2

    def __post_init__(self) -> None:
        if not 0 < self.decrease_ratio < 1:
            raise ValueError(f"decrease_ratio must be in (0, 1), got {self.decrease_ratio!r}")
        if not 0 < self.floor <= 1:
            raise ValueError(f"floor must be in (0, 1], got {self.floor!r}")
        if self.interval <= 0:
            raise ValueError(f"interval must be > 0, got {self.interval!r}")


class _RoundTrips:
    """Long-run mean and variance of the round trips (an EWMA), and the current interval's mean."""

    def __init__(self, alpha: float) -> None:
        self.alpha = alpha
        self.mean: float | None = None
        self.variance = 0.0
        self._sum = 0.0
        self._count = 0

    def add(self, rtt: float) -> None:
        self._sum += rtt
        self._count += 1

    def close_interval(self, scale: float, tolerance: float) -> bool:
        """Fold the interval into the long-run figures; return whether its mean rose beyond the threshold."""
        if not self._count:
            return False
        current = self._sum / self._count
        self._sum, self._count = 0.0, 0
        if self.mean is None:
            self.mean = current
            return False
        rising = current > self.mean + max(scale * math.sqrt(self.variance), tolerance * self.mean)
        delta = current - self.mean
        self.mean += self.alpha * delta
        self.variance = (1 - self.alpha) * (self.variance + self.alpha * delta * delta)
        return rising


class GuardrailShare:
    """
    The fraction of the client's configured limits it uses now (see the module docstring).

    Thread-safe: every sending thread reports its answers.

    :param settings: the controller's constants.
    :param clock: monotonic clock (injectable).
    """

    def __init__(self, settings: ShareSettings | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings or ShareSettings()
        self._clock = clock
        self._lock = threading.Lock()
        self.ceiling = 1.0
        self.fraction = 1.0
        #: the fraction just before the last decrease (None: no 429 yet).
        self.level_before_decrease: float | None = None
        self._last_decrease = -math.inf
        self._next_update = clock() + self.settings.interval
        self._held_back = False
        self._throttled = False
        self._rtts = _RoundTrips(self.settings.ewma_alpha)
        #: decreases and increases so far (for logs and tests).
        self.decreases = 0
        self.increases = 0

    def claim(self, share: float, ceiling: float | None = None) -> None:
        """
        Start over from ``share`` of the limits, adapting up to ``ceiling`` (default: ``share``).

        :param share: where the client starts, in (0, 1] (0 is taken as the floor).
        :param ceiling: the most it may claim, in (0, 1].
        """
        ceiling = share if ceiling is None else ceiling
        if not 0 < ceiling <= 1 or not 0 <= share <= ceiling:
            raise ValueError(
                f"need 0 <= share <= ceiling <= 1 and ceiling > 0, got share={share!r}, ceiling={ceiling!r}"
            )
        with self._lock:
            self.ceiling = ceiling
            self.fraction = max(share, self._floor())
            self.level_before_decrease = None
            # Requests sent before the claim were sent at another rate: their 429s are not news.
            self._last_decrease = self._clock()

    def _floor(self) -> float:
        return self.settings.floor * self.ceiling

    def held_back(self) -> None:
        """The limiter made a request wait for its turn: the fraction is what binds the client now."""
        self._held_back = True

    def throttled(self, sent_at: float) -> bool:
        """
        A request sent at ``sent_at`` (the clock's time) was answered 429: decrease once per round.

        :return: whether the fraction decreased.
        """
        with self._lock:
            self._throttled = True
            if sent_at < self._last_decrease:
                return False  # sent at the old rate: the last decrease already answers it
            self.level_before_decrease = self.fraction
            self.fraction = max(self.fraction * self.settings.decrease_ratio, self._floor())
            self._last_decrease = self._clock()
            self.decreases += 1
            log.info(
                "AEP answered 429: this client now uses %.1f%% of its rate limits (was %.1f%%)",
                self.fraction * 100,
                self.level_before_decrease * 100,
            )
            return True

    def answered(self, rtt: float) -> bool:
        """
        A request was answered (not 429) after ``rtt`` seconds; once an interval has passed, maybe increase.

        :return: whether the fraction increased.
        """
        with self._lock:
            self._rtts.add(rtt)
            now = self._clock()
            if now < self._next_update:
                return False
            s = self.settings
            rising = self._rtts.close_interval(s.rtt_deviation_scale, s.rtt_tolerance)
            grow = self._held_back and not self._throttled and not rising and self.fraction < self.ceiling
            self._next_update = now + s.interval
            self._held_back = self._throttled = False
            if not grow:
                return False
            level = self.level_before_decrease
            if level is not None and self.fraction < level * s.recovery:
                grown = min(self.fraction + s.fast_increase * self.ceiling, level * s.recovery)
            else:
                grown = self.fraction + s.increase * self.ceiling
            self.fraction = min(grown, self.ceiling)
            self.increases += 1
            log.debug("No 429 for a while: this client now uses %.1f%% of its rate limits", self.fraction * 100)
            return True
