"""Intake: a consumed Kafka message becomes a record queued for AEP, a settled skip, or a rejection."""

from __future__ import annotations

import logging
import time
from typing import cast

from confluent_kafka import Consumer, KafkaError, Message

from aep_provider.engine.errors import KafkaSetupError
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
    """

    def __init__(self, state: RunState, consumer: Consumer, shaper: GuardedShaper, settler: Settler) -> None:
        self.state = state
        self.consumer = consumer
        self.shaper = shaper
        self.settler = settler

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
        st.ledger.seen(offset)
        if st.plan.window is not None and not self._replay_sends(st, offset, msg):
            state.check_complete(self.consumer, key, st)
            return
        st.summary.records += 1
        state.taken += 1
        record = KafkaRecord.from_message(msg)
        shaped = self.shaper.shape(record)
        if shaped.message is not None:
            st.ledger.queue.append((offset, shaped.message, record))
        elif shaped.skip:
            # Skipped by policy: nothing holds the commit at it.
            state.summary.add_skip(record.topic, record.partition, offset, tombstone=record.value is None)
        else:
            self.settler.reject(st, record, None, shaped.reject_reason or "rejected")
        state.check_complete(self.consumer, key, st)

    def take_all(self, messages: list[Message], limit: int | None) -> int:
        """
        Take what one ``consume()`` returned, in order; return how many records were taken.

        The common record (a value, a live drain, a built-in shaper that accepts it) costs a
        parse and an append to its partition's queue; everything else goes through :meth:`take`.
        Stops early once ``limit`` records are taken or a record is rejected under
        ``on_reject="fail"``: the rest stays unread (the commit cannot pass it).

        :param limit: most records to take (None: no limit).
        """
        state = self.state
        partitions = state.partitions
        encode = self.shaper.encode
        taken_before = state.taken
        touched: dict[TopicPartitionKey, PartitionState] = {}
        for msg in messages:
            if limit is not None and state.taken - taken_before >= limit:
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
            if state.rejected is not None:
                break
        if touched:
            state.last_progress = time.monotonic()
        for key, st in touched.items():
            state.check_complete(self.consumer, key, st)
        return state.taken - taken_before

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
