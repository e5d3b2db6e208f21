"""Per-partition tracking of what holds the commit back, and so which offset may be committed."""

from __future__ import annotations

import heapq
import itertools
from collections import deque
from typing import Any

#: A record read and waiting for a request: ``(offset, encoded message, source)``. The source is
#: the consumed message (or the record built from it), kept to dead-letter it as it was read.
Entry = tuple[int, bytes, Any]


class PartitionLedger:
    """
    What keeps one partition's commit from moving: the records waiting for a request, and holds.

    Records read but not yet in a request wait in :attr:`queue` (shared with the batcher, in
    offset order). Anything else that must not be stepped over takes a :meth:`hold` at its first
    offset until it is :meth:`release`\\ d: a request in flight (one hold for all of a partition's
    records in it, released in one step when AEP accepted them all), a record on its way to the
    dead-letter topic, a record rejected under ``on_reject="fail"`` or still failing when the retry
    budget ran out (never released). Records skipped by policy hold nothing.

    The commit offset is the lowest of the queue's first offset, the held offsets and the read
    position; so the position also steps over offsets that hold no record (transaction markers,
    aborted or compacted records).

    :param start: the first offset this run reads.
    :param queue: the batcher's queue for this partition (a new one if not given).
    """

    def __init__(self, start: int, queue: deque[Entry] | None = None) -> None:
        self.start = start
        self.position = start
        self.queue: deque[Entry] = queue if queue is not None else deque()
        self._holds: list[tuple[int, int]] = []  # a heap of (offset, token)
        self._released: set[int] = set()
        self._tokens = itertools.count()

    @property
    def holds(self) -> int:
        """How many holds are not released."""
        return len(self._holds) - len(self._released)

    def seen(self, offset: int) -> None:
        """Record ``offset`` as read: the position moves past it."""
        if offset < self.position:
            raise ValueError(f"offset {offset} read again after position {self.position}")
        self.position = offset + 1

    def advance(self, position: int) -> None:
        """The consumer's position moved to ``position`` without a record (EOF past markers/gaps)."""
        self.position = max(self.position, position)

    def hold(self, offset: int) -> int:
        """Keep the commit at or below ``offset`` until the returned token is released."""
        token = next(self._tokens)
        heapq.heappush(self._holds, (offset, token))
        return token

    def release(self, token: int) -> None:
        """The hold is done: the commit may pass it once nothing before it holds."""
        self._released.add(token)

    def commit_offset(self) -> int:
        """The offset to commit: the next record the group must read."""
        holds, released = self._holds, self._released
        while holds and holds[0][1] in released:
            released.discard(heapq.heappop(holds)[1])
        offset = self.position
        if holds and holds[0][0] < offset:
            offset = holds[0][0]
        if self.queue and self.queue[0][0] < offset:
            offset = self.queue[0][0]
        return offset
