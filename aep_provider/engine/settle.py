"""Settling: what AEP answered for each record of a batch, and where a rejected record goes (skip, dead letter, fail)."""

from __future__ import annotations

import logging

from aep_provider.aep.results import BatchResult, Outcome
from aep_provider.engine.batching import Batch, Part
from aep_provider.engine.config import OnReject
from aep_provider.engine.errors import DrainError, RecordRejectedError
from aep_provider.engine.payload import KafkaRecord, as_record
from aep_provider.engine.state import PartitionState, RunState, TopicPartitionKey
from aep_provider.engine.summary import DEAD_LETTERED, MAX_REJECTION_SAMPLES, REJECTED, SKIPPED, shorten

log = logging.getLogger(__name__)


class Settler:
    """
    Settles what AEP answered: a batch all accepted releases one ledger hold per partition; any
    other answer is applied per message (a rejection or a record still failing takes its own hold).

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
        results = result.results
        if len(results) != len(batch):
            self.state.fail(DrainError(f"AEP answered {len(results)} result(s) for {len(batch)} message(s) of {parts}"))
            return
        held = self.state.partitions
        if all(r.outcome is Outcome.ACCEPTED for r in results):
            # The common answer, settled per partition: one hold released for all its records.
            for part in batch.parts:
                st = states[part.tp]
                if held.get(part.tp) is st:
                    s.delivered += len(part.entries)
                    self._count_past_failure(part)
                    self._release(st, part)
            return
        index = 0
        for part in batch.parts:
            st = states[part.tp]
            if held.get(part.tp) is not st:
                index += len(part.entries)
                continue  # the partition was revoked meanwhile; its new owner re-reads uncommitted records
            for offset, _message, source in part.entries:
                res = results[index]
                index += 1
                if res.outcome is Outcome.ACCEPTED:
                    s.delivered += 1
                    s.accepted_past_failure += self._past_failure(part.tp, offset)
                    continue
                if res.outcome is Outcome.REJECTED:
                    self.reject(st, as_record(source, part.tp, offset), res.status, res.message or "rejected by AEP")
                    continue
                # Still failing when the budget ran out: the commit stops here; the next run re-sends it.
                st.ledger.hold(offset)
                if report_retryable:
                    self.state.fail(
                        DrainError(
                            f"AEP still answered status {res.status} for {st.where(offset)} when the retry budget ran "
                            f"out ({shorten(res.message)}); offsets are committed up to it and the next run sends it again."
                        )
                    )
            self._release(st, part)

    @staticmethod
    def _release(st: PartitionState, part: Part) -> None:
        if part.hold is not None:
            st.ledger.release(part.hold)
            part.hold = None

    def _count_past_failure(self, part: Part) -> None:
        if self.state.rejected is not None:
            self.state.summary.accepted_past_failure += sum(self._past_failure(part.tp, e[0]) for e in part.entries)

    def _past_failure(self, tp: TopicPartitionKey, offset: int) -> bool:
        """Whether ``offset`` lies past the uncommittable rejected one: delivered, but a retry sends it again."""
        rejected = self.state.rejected
        return rejected is not None and tp == (rejected.topic, rejected.partition) and offset > rejected.offset

    def reject(self, st: PartitionState, record: KafkaRecord, status: int | None, reason: str) -> None:
        """A record AEP (or the shaper) refused: dead-letter it, skip it, or stop reading at it."""
        summary = self.state.summary
        dlq = self.state.dlq
        outcome = DEAD_LETTERED if dlq is not None else SKIPPED if self.on_reject is OnReject.SKIP else REJECTED
        summary.add_rejection(record.topic, record.partition, record.offset, status, reason, outcome)
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
        if dlq is not None:
            if listed:
                log.warning("Record %s rejected (%s); writing it to dead-letter topic %r", where, shown, dlq.topic)

            hold = st.ledger.hold(record.offset)

            def dead_lettered() -> None:
                summary.dead_lettered += 1
                st.ledger.release(hold)

            dlq.send(record, status, reason, dead_lettered)
        elif self.on_reject is OnReject.SKIP:
            if listed:
                log.warning("Record %s rejected (%s); skipped (on_reject='skip')", where, shown)
        else:
            # The commit never passes it (a hold not released); nothing after it can be committed,
            # so the first one stops reading and what is queued after it is not sent either.
            st.ledger.hold(record.offset)
            self.state.batcher.drop_after((record.topic, record.partition), record.offset)
            if self.state.rejected is not None:
                return  # reading already stopped at the first one
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
