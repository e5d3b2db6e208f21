"""
Collapsible sections of the task log.

Airflow 3's log viewer folds the lines between ``::group::<title>`` and ``::endgroup::`` (its
task runner marks "Pre Execute" and "Post Execute" the same way). A marker is only a log line,
so the engine stays free of Airflow: run outside Airflow, the markers are two plain lines.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

GROUP = "::group::"
END_GROUP = "::endgroup::"

#: Titles of the drain's sections.
SECTION_PLAN = "Plan: snapshot and assignment"
SECTION_PROGRESS = "Progress"
SECTION_TOTALS = "Totals per partition"


class LogSections:
    """
    One open section at a time: opening a section closes the one before (the viewer does not nest
    them, and a run that fails midway must still leave every section closed: call :meth:`close`).
    """

    def __init__(self, logger: logging.Logger) -> None:
        self._log = logger
        self._lock = threading.Lock()
        self._title: str | None = None

    @property
    def current(self) -> str | None:
        """Title of the open section, None when none is open."""
        return self._title

    def open(self, title: str) -> None:
        """Close the open section, if any, and start ``title``."""
        with self._lock:
            if self._title is not None:
                self._log.info(END_GROUP)
            # One preformatted string: the viewer matches the rendered message's start.
            self._log.info(GROUP + title)
            self._title = title

    def close(self) -> None:
        """Close the open section, if any."""
        with self._lock:
            if self._title is not None:
                self._log.info(END_GROUP)
                self._title = None


@contextmanager
def log_section(logger: logging.Logger, title: str) -> Iterator[None]:
    """The lines logged inside the ``with`` block form one collapsible section."""
    sections = LogSections(logger)
    sections.open(title)
    try:
        yield
    finally:
        sections.close()
