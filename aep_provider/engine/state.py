"""What one run knows about its partitions and how far it got, shared by intake, sending, settling, committing and rebalancing."""

from __future__ import annotations

from dataclasses import dataclass

from confluent_kafka import Consumer, KafkaException, TopicPartition

from aep_provider.engine.batching import Batcher
from aep_provider.engine.config import DrainConfig
from aep_provider.engine.dlq import DeadLetterWriter
from aep_provider.engine.errors import DrainError, RecordRejectedError
from aep_provider.engine.ledger import PartitionLedger
from aep_provider.engine.plan import PartitionPlan, Watermarks
from aep_provider.engine.summary import PartitionSummary, RunSummary

TopicPartitionKey = tuple[str, int]


@dataclass
class PartitionState:
    """One partition this run holds: its plan, what is settled, what the group confirmed committed."""

    plan: PartitionPlan
    ledger: PartitionLedger
    summary: PartitionSummary
    last_committed: int | None
    complete: bool = False
    progress_at: int = 0

    def where(self, offset: int) -> str:
        return f"{self.plan.topic}[{self.plan.partition}]@{offset}"


class RunState:
    """
    The state of one run that more than one stage reads or changes. Each stage keeps its own
    state (requests in flight, commits outstanding) to itself.

    :param config: limits and policies.
    :param summary: the run's summary, filled in as records are settled.
    :param batcher: the batcher (default: one from the config's limits, without a sender's rate limit).
    """

    def __init__(self, config: DrainConfig, summary: RunSummary, batcher: Batcher | None = None) -> None:
        self.config = config
        self.summary = summary
        self.snapshot: dict[TopicPartitionKey, Watermarks] = {}
        self.partitions: dict[TopicPartitionKey, PartitionState] = {}
        # "is None", not "or": an empty Batcher is falsy (it has __len__).
        self.batcher = batcher if batcher is not None else Batcher(config.max_batch_records, config.max_batch_bytes)
        self.dlq: DeadLetterWriter | None = None
        # librdkafka keeps an application pause across a revoke and a later re-assignment, so
        # the partitions paused here must be resumed before they are assigned again.
        self.paused: set[TopicPartitionKey] = set()
        self.failure: DrainError | None = None
        # A rejected record under on_reject="fail": reading stops, but what was read before it
        # is still sent so that the commit reaches exactly the rejected offset.
        self.rejected: RecordRejectedError | None = None
        self.assigned_at: float | None = None
        self.last_progress = 0.0
        self.taken = 0
        # A record came past max_records_per_run (left unread): reading stops.
        self.limit_hit = False
        self.closing = False

    def add_partition(
        self, plan: PartitionPlan, summary: PartitionSummary, last_committed: int | None
    ) -> PartitionState:
        """Hold a partition from now on; its ledger shares the batcher's queue for it."""
        st = PartitionState(plan, PartitionLedger(plan.start, self.batcher.queue(plan.key)), summary, last_committed)
        self.partitions[plan.key] = st
        return st

    def fail(self, err: DrainError) -> None:
        """The run fails with the first error: later ones are consequences."""
        if self.failure is None:
            self.failure = err

    def check_complete(self, consumer: Consumer, key: TopicPartitionKey, st: PartitionState) -> None:
        if st.ledger.position >= st.plan.end:
            self.mark_complete(consumer, key, st)

    def mark_complete(self, consumer: Consumer, key: TopicPartitionKey, st: PartitionState) -> None:
        st.complete = True
        st.ledger.advance(st.plan.end)
        # Stop fetching what lies beyond the snapshot: it belongs to the next run.
        self.pause(consumer, [TopicPartition(*key)])

    def pause(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            consumer.pause(partitions)
        except KafkaException:
            return
        self.paused |= {(tp.topic, tp.partition) for tp in partitions}

    def confirmed(self, key: TopicPartitionKey, offset: int) -> None:
        """The broker confirmed ``offset`` for ``key`` (an answer to an asynchronous commit)."""
        st = self.partitions.get(key)
        if st is not None and (st.last_committed is None or offset > st.last_committed):
            st.last_committed = offset
        summary = self.summary.partition(*key)
        if summary is not None and (summary.committed is None or offset > summary.committed):
            summary.committed = offset


def all_complete(state: RunState) -> bool:
    """Every partition held reached its snapshot end: Kafka has nothing more for this run."""
    return all(st.complete for st in state.partitions.values())
