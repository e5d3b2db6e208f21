"""Bounded batches that keep per-partition order while several requests are in flight."""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field

from aep_provider.aep.results import batch_body_size

TopicPartitionKey = tuple[str, int]


@dataclass(frozen=True)
class Item:
    """One encoded message waiting to be sent, with its Kafka coordinates."""

    tp: TopicPartitionKey
    offset: int
    message: bytes
    #: the source record, kept so a per-message rejection can be dead-lettered as it was read.
    record: object = None


@dataclass
class Batch:
    """Messages of one request, in send order, and the partitions it holds."""

    items: list[Item] = field(default_factory=list)
    message_bytes: int = 0

    @property
    def partitions(self) -> set[TopicPartitionKey]:
        return {item.tp for item in self.items}

    @property
    def body_size(self) -> int:
        return batch_body_size(self.message_bytes, len(self.items))

    def fits(self, message: bytes, max_records: int, max_bytes: int) -> bool:
        if len(self.items) >= max_records:
            return False
        # A message larger than max_bytes (but within AEP's limit) still goes, alone.
        return not self.items or batch_body_size(self.message_bytes + len(message), len(self.items) + 1) <= max_bytes

    def add(self, item: Item) -> None:
        self.items.append(item)
        self.message_bytes += len(item.message)


class Batcher:
    """
    Per-partition queues of encoded messages, cut into batches bounded by records and bytes.

    A partition with a request in flight ("busy") contributes nothing to a new batch: that is
    what keeps each partition's records in order at AEP while other partitions proceed.

    With a backlog, a batch is filled until the next message would break ``max_bytes`` or
    ``max_records``; with the defaults (1 MB, 2,000 records) bytes bind for messages of 500 bytes
    and more, so requests go out nearly full.

    :param max_records: most messages in one batch.
    :param max_bytes: most encoded body bytes in one batch.
    :param messages_per_second: the sender's messages/s limit, if any. A limiter admits whole
        requests, so batches of ``n`` messages use only ``floor(limit / n) * n`` of each second:
        935 messages of 1 KB against 10,000/s use 9,350. Full batches are then evened out to
        ``limit / k`` messages (909 there, 11 per second, 9,999), a little below the byte limit.
    """

    def __init__(self, max_records: int, max_bytes: int, messages_per_second: float | None = None) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self.messages_per_second = messages_per_second or None
        self._queues: dict[TopicPartitionKey, deque[Item]] = {}
        self._rotation = 0

    @classmethod
    def for_sender(cls, max_records: int, max_bytes: int, sender: object) -> Batcher:
        """A batcher evening its batches out to ``sender``'s messages/s limit, when it has one."""
        limiter = getattr(sender, "rate_limiter", None)
        return cls(max_records, max_bytes, getattr(limiter, "max_messages_per_second", None))

    def _even_out(self, count: int) -> int:
        """How many of a full batch's ``count`` messages to send, given the messages/s limit."""
        limit = self.messages_per_second
        if limit is None:
            return count
        per_second = math.ceil(limit / count)
        return max(1, min(count, math.floor(limit / per_second)))

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def add(self, tp: TopicPartitionKey, offset: int, message: bytes, record: object = None) -> None:
        self._queues.setdefault(tp, deque()).append(Item(tp, offset, message, record))

    def drop(self, tp: TopicPartitionKey) -> int:
        """Forget the partition's queued messages (it was revoked); return how many."""
        queue = self._queues.pop(tp, None)
        return len(queue) if queue else 0

    def drop_after(self, tp: TopicPartitionKey, offset: int) -> int:
        """Forget the partition's queued messages past ``offset`` (they could not be committed); return how many."""
        queue = self._queues.get(tp)
        if not queue:
            return 0
        kept = deque(item for item in queue if item.offset <= offset)
        self._queues[tp] = kept
        return len(queue) - len(kept)

    def next_batch(self, busy: set[TopicPartitionKey], *, only_full: bool = False) -> Batch | None:
        """
        Cut the next batch from partitions not in ``busy``, or None.

        :param busy: partitions with a request in flight.
        :param only_full: return a batch only when it is full (more input is coming).
        """
        ready = [tp for tp, q in self._queues.items() if q and tp not in busy]
        if not ready:
            return None
        # Rotate the starting partition so one busy partition cannot starve the others.
        self._rotation = (self._rotation + 1) % len(ready)
        ready = ready[self._rotation :] + ready[: self._rotation]
        batch = Batch()
        full = False
        for tp in ready:
            queue = self._queues[tp]
            while queue:
                if not batch.fits(queue[0].message, self.max_records, self.max_bytes):
                    full = True
                    break
                batch.add(queue.popleft())
            if full:
                break
        full = full or len(batch.items) >= self.max_records
        if only_full and not full:
            # Put the items back in order: nothing was sent.
            self._put_back(batch.items)
            return None
        if full and (keep := self._even_out(len(batch.items))) < len(batch.items):
            self._put_back(batch.items[keep:])
            trimmed = Batch()
            for item in batch.items[:keep]:
                trimmed.add(item)
            batch = trimmed
        return batch

    def _put_back(self, items: list[Item]) -> None:
        """Return cut items to the front of their queues, in order."""
        for item in reversed(items):
            self._queues[item.tp].appendleft(item)
