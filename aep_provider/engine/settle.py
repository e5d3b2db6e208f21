"""Settling: what AEP answered for each record of a batch, and where a rejected record goes (skip, dead letter, fail)."""

from __future__ import annotations

import logging

from aep_provider.aep.results import BatchResult, Outcome
from aep_provider.engine.batching import Batch
from aep_provider.engine.config import OnReject
from aep_provider.engine.errors import DrainError, RecordRejectedError
from aep_provider.engine.payload import KafkaRecord
from aep_provider.engine.state import PartitionState, RunState, TopicPartitionKey
from aep_provider.engine.summary import MAX_REJECTION_SAMPLES, shorten

log = logging.getLogger(__name__)


class Settler:
    """
    Settles records in their partition's ledger, which is what lets the commit move past them.

    :param state: the run's shared state.
    :param on_reject: what a rejected record does when there is no dead-letter topic.
    """

    def __init__(self, state: RunState, on_reject: OnReject) -> None:
        self.state = state
        self.on_reject = on_reject

    def settle(
        self,
        result: BatchResult,
        batch: Batch,
        states: dict[TopicPartitionKey, PartitionState],
        parts: str,
        *,
        report_retryable: bool,
    ) -> None:
        """Apply per-message outcomes: accepted ones settle, rejected ones follow the policy, retryable ones fail the run."""
        s = self.state.summary
        s.requests += result.requests
        s.retries += result.retries
        s.throttled += result.throttled
        s.bytes += result.bytes_sent
        s.add_request_durations(result.request_seconds)
        if len(result.results) != len(batch.items):
            self.state.fail(
                DrainError(f"AEP answered {len(result.results)} result(s) for {len(batch.items)} message(s) of {parts}")
            )
            return
        held = self.state.partitions
        for item, res in zip(batch.items, result.results):
            st = states[item.tp]
            if held.get(item.tp) is not st:
                continue  # the partition was revoked meanwhile; its new owner re-reads uncommitted records
            if res.outcome is Outcome.ACCEPTED:
                s.delivered += 1
                st.ledger.settle(item.offset)
                rejected = self.state.rejected
                if (
                    rejected is not None
                    and item.tp == (rejected.topic, rejected.partition)
                    and item.offset > rejected.offset
                ):
                    # Delivered, but past the uncommittable rejected offset: a retry sends it again.
                    s.accepted_past_failure += 1
            elif res.outcome is Outcome.REJECTED:
                assert isinstance(item.record, KafkaRecord)
                self.reject(st, item.record, res.status, res.message or "rejected by AEP")
            elif report_retryable:
                self.state.fail(
                    DrainError(
                        f"AEP still answered status {res.status} for {st.where(item.offset)} when the retry budget ran out "
                        f"({shorten(res.message)}); offsets are committed up to it and the next run sends it again."
                    )
                )

    def reject(self, st: PartitionState, record: KafkaRecord, status: int | None, reason: str) -> None:
        """A record AEP (or the shaper) refused: dead-letter it, skip it, or stop reading at it."""
        summary = self.state.summary
        summary.add_rejection(record.topic, record.partition, record.offset, status, reason)
        where = st.where(record.offset)
        shown = f"status {status}: {shorten(reason)}" if status is not None else shorten(reason)
        # The first rejections get a line each; past that they are only counted (the closing
        # "Rejected records" section lists the first ones and the count of the rest).
        listed = summary.rejected <= MAX_REJECTION_SAMPLES
        if summary.rejected == MAX_REJECTION_SAMPLES + 1:
            log.warning(
                "More than %d records rejected: further rejections are counted, not logged one by one "
                "(see the totals at the end of the run)",
                MAX_REJECTION_SAMPLES,
            )
        dlq = self.state.dlq
        if dlq is not None:
            if listed:
                log.warning("Record %s rejected (%s); writing it to dead-letter topic %r", where, shown, dlq.topic)

            def dead_lettered() -> None:
                summary.dead_lettered += 1
                st.ledger.settle(record.offset)

            dlq.send(record, status, reason, dead_lettered)
        elif self.on_reject is OnReject.SKIP:
            if listed:
                log.warning("Record %s rejected (%s); skipped (on_reject='skip')", where, shown)
            st.ledger.settle(record.offset)
        elif self.state.rejected is None:
            # Nothing after it in this partition can be committed: do not send it either.
            self.state.batcher.drop_after((record.topic, record.partition), record.offset)
            self.state.rejected = RecordRejectedError(
                f"Record {where} was rejected ({shown}). Offsets are committed up to {record.offset}; "
                "fix the record or its producer, or set dlq_topic=... or on_reject='skip' to let runs go past it.",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )

    def rejected_failure(self) -> DrainError:
        """The on_reject="fail" error, saying how many records AEP accepted past it (a retry re-sends them)."""
        rejected = self.state.rejected
        assert rejected is not None
        past = self.state.summary.accepted_past_failure
        if not past:
            return rejected
        return RecordRejectedError(
            f"{rejected} {past} record(s) of {rejected.topic}[{rejected.partition}] after offset {rejected.offset} "
            "were accepted by AEP in the same request; they cannot be committed past the rejected record and a "
            "retry sends them again.",
            topic=rejected.topic,
            partition=rejected.partition,
            offset=rejected.offset,
        )
