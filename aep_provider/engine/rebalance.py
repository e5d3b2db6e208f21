"""Rebalancing: taking partitions the group assigns (planned from their offsets), handing back those it revokes."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

from confluent_kafka import Consumer, KafkaException, TopicPartition

from aep_provider.engine.commits import OffsetCommits
from aep_provider.engine.errors import DrainError, KafkaUnavailableError
from aep_provider.engine.group import GroupWatcher
from aep_provider.engine.logsections import SECTION_PLAN, SECTION_PROGRESS, LogSections
from aep_provider.engine.plan import Planner, Watermarks, nothing_to_read
from aep_provider.engine.sending import InFlight
from aep_provider.engine.state import RunState
from aep_provider.engine.summary import PartitionSummary

log = logging.getLogger(__name__)

#: Under cooperative rebalancing a joining member's first assignment is empty by design; wait
#: this long for the follow-up, then ask the group whether partitions are still being handed out.
_COOPERATIVE_EMPTY_GRACE_SECONDS = 2.0

#: How often an instance without partitions asks the group whether the handover is over.
_GROUP_CHECK_INTERVAL_SECONDS = 1.0


class Rebalancer:
    """
    The consumer's rebalance callbacks (also called once directly for a replay, which assigns
    without joining the group), and whether this member holds anything left to read.

    :param state: the run's shared state (the partitions it holds).
    :param planner: where each assigned partition starts and ends.
    :param in_flight: settled before a partition is handed over.
    :param commits: commits what is handed over.
    :param sections: the first assignment ends the log's planning section.
    :param group: asks the group whether a cooperative handover is over.
    :param cooperative: the group rebalances incrementally (assignments are increments).
    """

    def __init__(
        self,
        state: RunState,
        planner: Planner,
        in_flight: InFlight,
        commits: OffsetCommits,
        sections: LogSections,
        group: GroupWatcher,
        *,
        cooperative: bool,
    ) -> None:
        self.state = state
        self.planner = planner
        self.in_flight = in_flight
        self.commits = commits
        self.sections = sections
        self.group = group
        self.cooperative = cooperative
        self._next_group_check = 0.0

    def ends_before_joining(self, consumer: Consumer, *, reset: str, group_id: object, topics: Sequence[str]) -> bool:
        """
        Before joining the group: when its committed offsets show nothing to read on any partition
        (and nothing to commit), fill in the summary and return True, so the run ends without a
        JoinGroup. Offsets alone decide, so other members owning partitions meanwhile do not matter.
        """
        state = self.state
        partitions = [TopicPartition(t, p) for t, p in sorted(state.snapshot)]
        try:
            plans = self.planner.plan(consumer, partitions, state.snapshot)
        except KafkaUnavailableError as err:
            # The assignment path has its own handling of a coordinator that does not answer
            # (fail on the first round, defer partitions in later ones): leave it to that.
            log.warning("Could not tell from offsets alone whether anything waits (%s); joining the group", err)
            return False
        if not nothing_to_read(plans, reset.lower()):
            return False
        for plan in plans:
            summary = state.summary.add_partition(PartitionSummary(plan.topic, plan.partition, plan.start, plan.end))
            summary.committed = plan.committed
            # The snapshot end is current enough: querying it again would only cost time.
            summary.topic_end = state.snapshot[plan.key].high
        log.info(
            "Nothing to read: group %r has committed the end of all %d partition(s) of %s; ending without joining the group",
            group_id,
            len(plans),
            ", ".join(topics),
        )
        return True

    def all_read(self, now: float) -> bool:
        """Every partition held reached its snapshot end (and none is still to come)."""
        state = self.state
        if state.assigned_at is None:
            return False
        if not state.partitions:
            # Nothing assigned: end at once, except that a cooperative rebalance hands a joining
            # member its partitions only in a later round, once their previous owner let go.
            if not self.cooperative:
                return True
            waited = now - state.assigned_at
            if waited < _COOPERATIVE_EMPTY_GRACE_SECONDS or now < self._next_group_check:
                return False
            if waited >= min(state.config.assignment_timeout_seconds, state.config.kafka_timeout_seconds):
                return True  # the other members hold everything; nothing left for this one
            self._next_group_check = now + _GROUP_CHECK_INTERVAL_SECONDS
            return self.group.settled(state.snapshot)
        return all(st.complete for st in state.partitions.values())

    def on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self.state.closing:
            # close() serves a rebalance still under way, then revokes everything. The group is
            # terminating: librdkafka answers an offset fetch with "wait for coordinator" until
            # committed() times out. Take nothing: the next owner or run drains these partitions.
            log.info(
                "Closing: not taking %s (the next owner or run drains them)",
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "no partitions",
            )
            if self.cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            return
        try:
            self._assign(consumer, partitions)
        except DrainError as err:
            self.state.fail(err)
        except Exception as err:  # an exception escaping a librdkafka callback would lose its message
            self.state.fail(DrainError(f"planning the assigned partitions failed: {type(err).__name__}: {err}"))
        finally:
            self.state.assigned_at = self.state.assigned_at or time.monotonic()
            self.state.last_progress = time.monotonic()
            if self.sections.current == SECTION_PLAN:
                self.sections.open(SECTION_PROGRESS)

    def on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, lost=False)

    def on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, lost=True)

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        state = self.state
        timeout = state.config.kafka_timeout_seconds
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key not in state.snapshot:  # a partition added after the run started
                low, high = consumer.get_watermark_offsets(tp, timeout=timeout, cached=False)
                state.snapshot[key] = Watermarks(low, high)
        deferred: list[TopicPartition] = []
        try:
            plans = self.planner.plan(consumer, partitions, state.snapshot) if partitions else []
        except KafkaUnavailableError as err:
            if state.assigned_at is None:
                raise  # the first assignment: the broker is not answering, say so
            # A later rebalance round whose offsets cannot be read in time (a coordinator that
            # stopped answering): this run has been working, so hold these partitions without
            # reading them and leave them to the next run, untouched.
            log.warning(
                "%s; leaving %s to the next run", err, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions)
            )
            plans = []
            deferred = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        assignment = list(deferred)
        for plan in plans:
            if plan.lost_to_retention:
                log.warning(
                    "%s[%d]: %d record(s) were deleted by retention before they were delivered "
                    "(committed offset %s < log start %d); continuing from the log start",
                    plan.topic,
                    plan.partition,
                    plan.lost_to_retention,
                    plan.committed,
                    plan.start,
                )
            if plan.retention_note:
                log.warning("%s[%d]: %s", plan.topic, plan.partition, plan.retention_note)
            summary = state.summary.add_partition(
                PartitionSummary(
                    plan.topic, plan.partition, plan.start, plan.end, lost_to_retention=plan.lost_to_retention,
                    replayed=plan.window is not None, send_until=plan.send_until, retention_note=plan.retention_note,
                )
            )  # fmt: skip
            summary.end = plan.end
            summary.handed_over = False  # handed back to this instance by a later rebalance
            state.add_partition(plan, summary, plan.committed)
            if plan.committed is not None and (summary.committed is None or plan.committed > summary.committed):
                summary.committed = plan.committed
            assignment.append(TopicPartition(plan.topic, plan.partition, plan.start))
        # Resume before assigning, not after: a pause/resume right after assign() can make
        # librdkafka drop the assigned start offset (its op version barrier).
        resume = [TopicPartition(p.topic, p.partition) for p in plans if p.key in state.paused]
        if resume:
            consumer.resume(resume)
            state.paused -= {p.key for p in plans}
        if self.cooperative:
            consumer.incremental_assign(assignment)
        else:
            consumer.assign(assignment)
        if deferred:
            state.pause(consumer, deferred)
        log.info(
            "Assigned %d record offset(s) in %d partition(s): %s",
            sum(max(0, p.end - p.start) for p in plans),
            len(plans),
            ", ".join(f"{p.topic}[{p.partition}] {p.start}->{p.end}" for p in plans) or "none",
        )
        for plan in plans:
            if plan.start >= plan.end:
                state.mark_complete(consumer, plan.key, state.partitions[plan.key])

    def _release(self, consumer: Consumer, partitions: list[TopicPartition], *, lost: bool) -> None:
        """Settle what is in flight for these partitions, commit their prefix, forget them."""
        state = self.state
        grace = state.config.stop_grace_seconds
        keys = {(tp.topic, tp.partition) for tp in partitions} & set(state.partitions)
        try:
            if keys and not state.closing:
                self.in_flight.collect(only_done=False, keys=keys, timeout=grace)
                if state.dlq is not None and state.dlq.pending:
                    state.dlq.flush(grace)
                if lost:
                    log.warning("Lost %s without a clean revoke; uncommitted records will be read again", sorted(keys))
                elif not self.commits.handover(consumer, keys):
                    log.warning(
                        "Could not commit %s before handing them over; their next owner may send some again",
                        sorted(keys),
                    )
        except DrainError as err:
            # The next owner re-reads from the last good commit: duplicates, never loss.
            log.warning("While handing over %s: %s", sorted(keys), err)
        finally:
            for key in keys:
                state.batcher.drop(key)
                self.in_flight.forget(key)
                st = state.partitions.pop(key)
                # At close the consumer revokes everything: only a rebalance hands a partition over.
                st.summary.handed_over = not state.closing
            if self.cooperative:
                try:
                    consumer.incremental_unassign(partitions)
                except KafkaException:
                    pass
            else:
                consumer.unassign()
