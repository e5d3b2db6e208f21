"""Bounded batches that keep per-partition order while several requests are in flight."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from aep_provider.aep.results import batch_body_size
from aep_provider.engine.ledger import Entry

TopicPartitionKey = tuple[str, int]


class Item(NamedTuple):
    """One message of a batch with its Kafka coordinates (a view for error paths and tests)."""

    tp: TopicPartitionKey
    offset: int
    message: bytes
    #: the consumed message (or the record built from it), kept to dead-letter it as it was read.
    record: Any = None


@dataclass
class Part:
    """One partition's records in a batch: consecutive entries of its queue, in offset order."""

    tp: TopicPartitionKey
    entries: list[Entry]
    #: the ledger hold that keeps the commit below these records while they are in flight.
    hold: int | None = None

    @property
    def first(self) -> int:
        return self.entries[0][0]


@dataclass
class Batch:
    """Messages of one request, in send order, cut from one or more partitions."""

    parts: list[Part] = field(default_factory=list)
    messages: list[bytes] = field(default_factory=list)
    message_bytes: int = 0

    def __len__(self) -> int:
        return len(self.messages)

    @property
    def partitions(self) -> set[TopicPartitionKey]:
        return {part.tp for part in self.parts}

    @property
    def items(self) -> list[Item]:
        return [Item(part.tp, *entry) for part in self.parts for entry in part.entries]

    @property
    def body_size(self) -> int:
        return batch_body_size(self.message_bytes, len(self.messages))

    def add(self, item: Item) -> None:
        """Append one message (tests and hand-built batches; the batcher cuts whole parts)."""
        entry = (item.offset, item.message, item.record)
        if self.parts and self.parts[-1].tp == item.tp:
            self.parts[-1].entries.append(entry)
        else:
            self.parts.append(Part(item.tp, [entry]))
        self.messages.append(item.message)
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
    :param messages_per_second: the sender's messages/s limit, if any, or a function giving the
        limit in force (an adaptive one changes). A limiter admits whole requests, so batches of
        ``n`` messages use only ``floor(limit / n) * n`` of each second: 935 messages of 1 KB
        against 10,000/s use 9,350. Full batches are then evened out to ``limit / k`` messages
        (909 there, 11 per second, 9,999), a little below the byte limit.
    """

    def __init__(
        self,
        max_records: int,
        max_bytes: int,
        messages_per_second: float | Callable[[], float | None] | None = None,
    ) -> None:
        self.max_records = max_records
        self.max_bytes = max_bytes
        self._limit: Callable[[], float | None]
        if callable(messages_per_second):
            self._limit = messages_per_second
        else:
            fixed = messages_per_second
            self._limit = lambda: fixed
        self._queues: dict[TopicPartitionKey, deque[Entry]] = {}
        self._rotation = 0

    @property
    def messages_per_second(self) -> float | None:
        """The messages/s limit batches are evened out to now, None when there is none."""
        return self._limit() or None

    @classmethod
    def for_sender(cls, max_records: int, max_bytes: int, sender: object) -> Batcher:
        """A batcher evening its batches out to ``sender``'s messages/s limit in force, when it has one."""
        limiter = getattr(sender, "rate_limiter", None)
        if getattr(limiter, "max_messages_per_second", None) is None:
            return cls(max_records, max_bytes)
        return cls(max_records, max_bytes, lambda: limiter.max_messages_per_second)  # type: ignore[union-attr]

    def _even_out(self, count: int) -> int:
        """How many of a full batch's ``count`` messages to send, given the messages/s limit."""
        limit = self.messages_per_second
        if limit is None:
            return count
        per_second = math.ceil(limit / count)
        return max(1, min(count, math.floor(limit / per_second)))

    def __len__(self) -> int:
        return sum(len(q) for q in self._queues.values())

    def queue(self, tp: TopicPartitionKey) -> deque[Entry]:
        """The partition's queue, shared with its ledger (intake appends to it directly)."""
        queue = self._queues.get(tp)
        if queue is None:
            queue = self._queues[tp] = deque()
        return queue

    def add(self, tp: TopicPartitionKey, offset: int, message: bytes, record: Any = None) -> None:
        self.queue(tp).append((offset, message, record))

    def drop(self, tp: TopicPartitionKey) -> int:
        """Forget the partition's queued messages (it was revoked); return how many."""
        queue = self._queues.pop(tp, None)
        if not queue:
            return 0
        dropped = len(queue)
        queue.clear()
        return dropped

    def drop_after(self, tp: TopicPartitionKey, offset: int) -> int:
        """Forget the partition's queued messages past ``offset`` (they could not be committed); return how many."""
        queue = self._queues.get(tp)
        dropped = 0
        while queue and queue[-1][0] > offset:
            queue.pop()
            dropped += 1
        return dropped

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
        # Plan first (how many from each partition), cut after: nothing to put back.
        max_records = self.max_records
        # batch_body_size(size, count + 1) <= max_bytes, written out: this runs once per message.
        room = self.max_bytes - batch_body_size(0, 1)
        taken: list[tuple[TopicPartitionKey, int]] = []
        count = size = 0
        full = False
        for tp in ready:
            n = 0
            for _offset, message, _source in self._queues[tp]:
                grown = size + len(message)
                # A message larger than max_bytes (but within AEP's limit) still goes, alone.
                if count >= max_records or (count and grown + count > room):
                    full = True
                    break
                size = grown
                count += 1
                n += 1
            if n:
                taken.append((tp, n))
            if full:
                break
        full = full or count >= max_records
        if only_full and not full:
            return None
        if full and (keep := self._even_out(count)) < count:
            taken = _trim(taken, count - keep)
        batch = Batch()
        for tp, n in taken:
            queue = self._queues[tp]
            entries = [queue.popleft() for _ in range(n)]
            batch.parts.append(Part(tp, entries))
            batch.messages.extend([entry[1] for entry in entries])
        batch.message_bytes = sum(map(len, batch.messages))
        return batch


def _trim(taken: list[tuple[TopicPartitionKey, int]], excess: int) -> list[tuple[TopicPartitionKey, int]]:
    """Take ``excess`` records off the end of a planned batch."""
    out = list(taken)
    while excess:
        tp, n = out.pop()
        if n > excess:
            out.append((tp, n - excess))
            break
        excess -= n
    return out
