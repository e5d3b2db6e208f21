"""librdkafka's log lines through Python logging, a line that keeps repeating shown once a minute."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

#: The logger librdkafka's lines go to (confluent-kafka's ``logger`` setting).
LOGGER_NAME = "aep_provider.kafka.client"

#: Lines remembered before those shown more than a window ago are forgotten.
_MAX_LINES = 1000

#: Numbers differ between repeats of one line ("after 0ms", addresses, counters).
_NUMBERS = re.compile(r"\d+")


class RepeatFilter(logging.Filter):
    """
    Lets a line through once per ``window`` seconds and says how many like it were held back.

    Without it an unreachable broker writes a "Connect ... failed" line about every 50 ms, and a
    task log fills with hundreds of them before the run's own error says what is wrong.

    :param window: seconds during which repeats of a line are only counted.
    :param clock: monotonic clock (tests pass their own).
    """

    def __init__(self, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self._clock = clock
        self._lock = threading.Lock()
        self._lines: dict[str, tuple[float, int]] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        key = _NUMBERS.sub("#", message)
        now = self._clock()
        with self._lock:
            if len(self._lines) > _MAX_LINES:
                # A long-lived process (triggerer, worker) sees many lines: forget the settled ones.
                self._lines = {k: v for k, v in self._lines.items() if now - v[0] < self.window}
            shown_at, held_back = self._lines.get(key, (None, 0))
            if shown_at is not None and now - shown_at < self.window:
                self._lines[key] = (shown_at, held_back + 1)
                return False
            self._lines[key] = (now, 0)
        if held_back:
            record.msg = f"{message} ({held_back} more like it in the last {self.window:g}s)"
            record.args = None
        return True


#: Lines librdkafka logs as warnings about a state it waits out and retries by itself: a broker
#: that just started (or moved a coordinator) answers "Coordinator load in progress" for a moment.
#: Shown at INFO; if the state lasts, the request it delays times out and the run says so.
_TRANSIENT = re.compile(r"Coordinator load in progress: retrying")


class TransientFilter(logging.Filter):
    """Lowers librdkafka's warnings about transient states it retries (:data:`_TRANSIENT`) to INFO."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno == logging.WARNING and _TRANSIENT.search(record.getMessage()):
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def kafka_logger() -> logging.Logger:
    """The logger for librdkafka's lines, with its :class:`TransientFilter` and :class:`RepeatFilter` (added once)."""
    logger = logging.getLogger(LOGGER_NAME)
    if not any(isinstance(f, TransientFilter) for f in logger.filters):
        logger.addFilter(TransientFilter())
    if not any(isinstance(f, RepeatFilter) for f in logger.filters):
        logger.addFilter(RepeatFilter())
    return logger
