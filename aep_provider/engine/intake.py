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
            st.ledger.settle(offset)
            state.check_complete(self.consumer, key, st)
            return
        st.summary.records += 1
        state.taken += 1
        record = KafkaRecord(
            topic=key[0],
            partition=key[1],
            offset=offset,
            key=msg.key(),
            value=msg.value(),
            headers=cast(list[tuple[str, bytes | None]], list(msg.headers() or [])),
            timestamp_ms=msg.timestamp()[1],
        )
        shaped = self.shaper.shape(record)
        if shaped.message is not None:
            state.batcher.add(key, offset, shaped.message, record)
        elif shaped.skip:
            if record.value is None:
                state.summary.tombstones += 1
            state.summary.skipped += 1
            st.ledger.settle(offset)
        else:
            self.settler.reject(st, record, None, shaped.reject_reason or "rejected")
        state.check_complete(self.consumer, key, st)

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
