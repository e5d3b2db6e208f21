"""Per-partition tracking of which offsets are settled, and so which offset may be committed."""

from __future__ import annotations

from collections import deque


class PartitionLedger:
    """
    The contiguous settled prefix of one partition.

    Every record read is ``seen`` (in offset order) and stays outstanding until ``settle``\\ d:
    accepted by AEP, dead-lettered (delivery report received), or skipped by policy. The commit
    offset is the first outstanding offset, or the read position when nothing is outstanding —
    which also steps over offsets that hold no record (transaction markers, aborted or
    compacted records).

    :param start: the first offset this run reads.
    """

    def __init__(self, start: int) -> None:
        self.start = start
        self.position = start
        self._outstanding: deque[int] = deque()
        self._settled: set[int] = set()

    @property
    def outstanding(self) -> int:
        return len(self._outstanding) - len(self._settled)

    def seen(self, offset: int) -> None:
        """Record ``offset`` as read and not yet settled."""
        if offset < self.position:
            raise ValueError(f"offset {offset} read again after position {self.position}")
        self._outstanding.append(offset)
        self.position = offset + 1

    def advance(self, position: int) -> None:
        """The consumer's position moved to ``position`` without a record (EOF past markers/gaps)."""
        self.position = max(self.position, position)

    def settle(self, offset: int) -> None:
        """``offset`` is done: it may be committed once everything before it is done."""
        self._settled.add(offset)
        while self._outstanding and self._outstanding[0] in self._settled:
            self._settled.discard(self._outstanding.popleft())

    def commit_offset(self) -> int:
        """The offset to commit: the next record the group must read."""
        return self._outstanding[0] if self._outstanding else self.position
