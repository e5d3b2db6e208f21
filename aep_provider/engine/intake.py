"""Intake: a consumed Kafka message becomes a record queued for AEP, a settled skip, or a rejection."""

from __future__ import annotations

import logging
import time
from typing import cast

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from aep_provider.engine.errors import DrainError, KafkaSetupError, ReplayError
from aep_provider.engine.payload import GuardedShaper, KafkaRecord
from aep_provider.engine.settle import Settler
from aep_provider.engine.state import PartitionState, RunState, TopicPartitionKey

log = logging.getLogger(__name__)

#: Consumer errors no retry fixes: the run fails at once.
_SETUP_ERRORS = (
    KafkaError.UNKNOWN_TOPIC_OR_PART,
    KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED,
)


class Intake:
    """
    Takes what ``consume()`` returns, in offset order per partition.

    :param state: the run's shared state (its batcher receives the shaped messages).
    :param consumer: pauses a partition once it reaches its snapshot end.
    :param shaper: turns a record into an AEP message, a skip or a rejection (never raises).
    :param settler: where a record the shaper rejects goes.
    :param limit: most records the run takes (``max_records_per_run``; None: no limit). A record
        past it is left unread and sets ``state.limit_hit``; reaching it exactly on the last
        record of the range does not.
    """

    def __init__(
        self, state: RunState, consumer: Consumer, shaper: GuardedShaper, settler: Settler, limit: int | None = None
    ) -> None:
        self.state = state
        self.consumer = consumer
        self.shaper = shaper
        self.settler = settler
        self.limit = limit

    def _at_limit(self) -> bool:
        """A record is about to be taken: True (and ``state.limit_hit``) when the run took its limit already."""
        if self.limit is not None and self.state.taken >= self.limit:
            self.state.limit_hit = True
        return self.state.limit_hit

    def take(self, msg: Message) -> None:
        state = self.state
        err = msg.error()
        if err is None or err.code() == KafkaError._PARTITION_EOF:
            state.last_progress = time.monotonic()
        # Unset only on errors that concern no partition, which never reach a partition's state.
        key = cast(TopicPartitionKey, (msg.topic(), msg.partition()))
        st = state.partitions.get(key)
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if st is not None and not st.complete:
                    # Past transaction markers, aborted and compacted records there is no message
                    # to see: the position says the partition is done, never cap beyond the snapshot.
                    st.ledger.advance(min(cast(int, msg.offset()), st.plan.end))
                    state.check_complete(self.consumer, key, st)
                return
            if err.code() == KafkaError._AUTO_OFFSET_RESET:
                if st is not None and not st.complete:
                    self._out_of_range(key, st, cast(int, msg.offset()))
                return
            if err.fatal() or err.code() in _SETUP_ERRORS:
                raise KafkaSetupError(f"Kafka consumer error on {key[0]}[{key[1]}]: {err.str()}")
            log.warning("Kafka consumer reported %s (retrying)", err.str())
            return
        if st is None or st.complete:
            return  # revoked meanwhile, or past the snapshot: the next run/owner reads it
        offset = cast(int, msg.offset())
        if offset >= st.plan.end:
            state.mark_complete(self.consumer, key, st)
            return
        if st.plan.window is not None and not self._replay_sends(st, offset, msg):
            st.ledger.seen(offset)
            state.check_complete(self.consumer, key, st)
            return
        if self._at_limit():
            return  # left unread: the position stays before it
        st.ledger.seen(offset)
        st.summary.records += 1
        state.taken += 1
        record = KafkaRecord.from_message(msg)
        try:
            shaped = self.shaper.shape(record)
        except DrainError:
            # Not the record's fault (its schema could not be read): the run fails, and the
            # record, never sent, must not be committed past.
            st.ledger.hold(offset)
            raise
        if shaped.message is not None:
            st.ledger.queue.append((offset, shaped.message, record))
        elif shaped.skip:
            # Skipped by policy: nothing holds the commit at it.
            state.summary.add_skip(record.topic, record.partition, offset, tombstone=record.value is None)
        else:
            self.settler.reject(st, record, None, shaped.reject_reason or "rejected")
        state.check_complete(self.consumer, key, st)

    def take_all(self, messages: list[Message]) -> int:
        """
        Take what one ``consume()`` returned, in order; return how many records were taken.

        The common record (a value, a live drain, a built-in shaper that accepts it) costs a
        parse and an append to its partition's queue; everything else goes through :meth:`take`.
        Stops early at a record past the run's limit or at a record rejected under
        ``on_reject="fail"``: the rest stays unread (the commit cannot pass it).
        """
        state = self.state
        partitions = state.partitions
        encode = self.shaper.encode
        taken_before = state.taken
        touched: dict[TopicPartitionKey, PartitionState] = {}
        for msg in messages:
            if state.limit_hit:
                break
            if encode is not None and msg.error() is None:
                key = (msg.topic(), msg.partition())
                st = partitions.get(key)  # type: ignore[arg-type]
                offset = msg.offset()
                value = msg.value()
                if (
                    st is not None
                    and value is not None
                    and st.plan.window is None
                    and not st.complete
                    and st.ledger.position <= offset < st.plan.end  # type: ignore[operator]
                ):
                    if self._at_limit():
                        break
                    try:
                        message = encode(key[0], key[1], offset, value)  # type: ignore[arg-type]
                    except Exception:  # noqa: S112 - take() shapes it again and rejects it with the reason
                        pass
                    else:
                        st.ledger.position = offset + 1  # type: ignore[operator]
                        st.ledger.queue.append((offset, message, msg))  # type: ignore[arg-type]
                        st.summary.records += 1
                        state.taken += 1
                        touched[key] = st  # type: ignore[index]
                        continue
            self.take(msg)
            if state.rejected is not None or state.limit_hit:
                break
        if touched:
            state.last_progress = time.monotonic()
        for key, st in touched.items():
            state.check_complete(self.consumer, key, st)
        return state.taken - taken_before

    def _out_of_range(self, key: TopicPartitionKey, st: PartitionState, offset: int) -> None:
        """
        The broker refused to fetch ``offset``: it is no longer (or not yet) in the log. The
        consumer's ``auto.offset.reset`` is ``error`` (see :meth:`DrainEngine.run`), so librdkafka
        never jumps on its own: the jump is decided, counted and reported here, never committed
        past silently.

        Below the log start (retention deleted records between planning and fetching): a drain
        counts them as ``lost_to_retention``, warns and goes on from the log start, whatever
        ``auto.offset.reset`` says (``latest`` would skip the retained backlog too); a replay
        fails, retryably (the interval was not replayed in full). Past the log end (the partition
        was truncated): the run fails, since records may have been replaced under offsets already passed.
        """
        state = self.state
        at = offset if offset >= 0 else st.ledger.position
        low, high = self.consumer.get_watermark_offsets(
            TopicPartition(*key), timeout=state.config.kafka_timeout_seconds, cached=False
        )
        where = f"{key[0]}[{key[1]}]"
        if at > high:
            raise KafkaSetupError(
                f"{where}: offset {at} is past the log end ({high}; log start {low}): the partition was truncated "
                "(an unclean leader election, or the topic deleted and re-created), so offsets this group already "
                "passed may now hold other records. Check the topic, reset the group's offsets "
                "(kafka-consumer-groups --reset-offsets) and run again."
            )
        if at >= low:
            log.warning(
                "%s: the broker refused offset %d although it is in the log (%d-%d); reading it again",
                where,
                at,
                low,
                high,
            )
            self._restart_at(key, at)
            return
        if st.plan.window is not None:
            raise ReplayError(
                f"{where}: records {at}-{low - 1} were deleted by retention while this replay was reading the "
                f"partition (its log start moved to {low}), so the interval was not replayed in full. A retry plans "
                "the interval again from the new log start.",
                retryable=True,
            )
        lost_until = min(low, st.plan.end)
        st.summary.lost_to_retention += lost_until - at
        log.warning(
            "%s: %d record(s) from offset %d were deleted by retention before they were read (the log start moved to "
            "%d while this run read the partition); counted as lost_to_retention, continuing from the log start",
            where,
            lost_until - at,
            at,
            low,
        )
        st.ledger.advance(lost_until)
        if lost_until >= st.plan.end:
            state.mark_complete(self.consumer, key, st)
        else:
            self._restart_at(key, low)

    def _restart_at(self, key: TopicPartitionKey, offset: int) -> None:
        """Fetch the partition again from ``offset`` (after an out-of-range error librdkafka refuses a seek)."""
        try:
            self.consumer.incremental_unassign([TopicPartition(*key)])
            self.consumer.incremental_assign([TopicPartition(key[0], key[1], offset)])
        except KafkaException:
            # An eager (non-cooperative) group assignment changes only as a whole: assign every
            # partition again at its read position.
            positions = {k: st.ledger.position for k, st in self.state.partitions.items()}
            positions[key] = offset
            self.consumer.assign(
                [
                    TopicPartition(tp.topic, tp.partition, positions.get((tp.topic, tp.partition), tp.offset))
                    for tp in self.consumer.assignment()
                ]
            )

    def _replay_sends(self, st: PartitionState, offset: int, msg: Message) -> bool:
        """A replay sends a record only when its timestamp is in the interval and the live drain handed it over."""
        assert st.plan.window is not None
        start_ms, end_ms = st.plan.window
        if not start_ms <= msg.timestamp()[1] < end_ms:
            st.summary.filtered_by_timestamp += 1
            self.state.summary.filtered_by_timestamp += 1
            return False
        if st.plan.send_until is not None and offset >= st.plan.send_until:
            st.summary.left_to_live_drain += 1
            self.state.summary.left_to_live_drain += 1
            return False
        return True
