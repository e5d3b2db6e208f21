"""Which offsets a run drains: the end snapshot taken at start, and each partition's start offset."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import OFFSET_INVALID, Consumer, KafkaException, TopicPartition

from aep_provider.engine.errors import KafkaSetupError, KafkaUnavailableError

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]

#: Pause between attempts to read the group's committed offsets.
_COMMITTED_RETRY_PAUSE_SECONDS = 0.2


@dataclass(frozen=True)
class Watermarks:
    """Log start offset and end offset (the last stable offset under read_committed) of a partition."""

    low: int
    high: int


@dataclass(frozen=True)
class PartitionPlan:
    """
    The range one run drains from a partition: ``[start, end)``.

    :param lost_to_retention: records deleted by retention between the committed offset and the log start.
    :param window: replays only: ``(start_ms, end_ms)``; records whose timestamp falls outside are
        read but not sent (timestamps are not monotonic, so the offset range is only a bound).
    :param send_until: replays only: records at or past this offset are counted, not sent (the
        live drain has not handed them over yet).
    :param retention_note: replays only: why records of the window may be missing from this partition.
    """

    topic: str
    partition: int
    start: int
    end: int
    committed: int | None = None
    lost_to_retention: int = 0
    window: tuple[int, int] | None = None
    send_until: int | None = None
    retention_note: str | None = None

    @property
    def key(self) -> TopicPartitionKey:
        return (self.topic, self.partition)


def _is_earliest(reset: str) -> bool:
    return reset in ("earliest", "smallest", "beginning")


def plan_partition(
    topic: str, partition: int, *, committed: int | None, marks: Watermarks, reset: str = "earliest"
) -> PartitionPlan:
    """
    Start at the group's committed offset; without one, at the ``auto.offset.reset`` point.

    A committed offset below the log start means retention deleted records that were never
    delivered: start at the log start and report how many were lost (never jump to the end).
    """
    if committed is None or committed < 0:
        if reset in ("latest", "largest", "end"):
            start = marks.high
        elif _is_earliest(reset):
            start = marks.low
        else:
            raise KafkaSetupError(
                f"{topic}[{partition}] has no committed offset and auto.offset.reset is {reset!r}; "
                "set it to 'earliest' or 'latest'."
            )
        return PartitionPlan(topic, partition, start, marks.high, committed=None)
    if committed < marks.low:
        return PartitionPlan(
            topic, partition, marks.low, marks.high, committed=committed, lost_to_retention=marks.low - committed
        )
    # A committed offset past the snapshot end (records produced since, committed by another
    # run) leaves nothing to do here.
    return PartitionPlan(topic, partition, committed, max(committed, marks.high), committed=committed)


def nothing_to_read(plans: Iterable[PartitionPlan], reset: str = "earliest") -> bool:
    """
    True when a drain with these plans would read nothing and commit nothing, so it can end
    without joining the group.

    A partition counts as empty when the group's committed offset is at (or past) the snapshot
    end. One without a committed offset counts only under ``auto.offset.reset=earliest`` and only
    when the partition retains nothing (lag 0, as :func:`aep_provider.kafka.lag.partition_lag`
    counts it): under ``latest`` a full run pins the start offset, without which the next run
    would skip what is produced meanwhile. A committed offset below the log start (records lost to
    retention) is never empty either: the full run reports the loss and moves the offset.
    """
    for plan in plans:
        if plan.start < plan.end or plan.lost_to_retention:
            return False
        if plan.committed is None and not _is_earliest(reset):
            return False
    return True


class Planner(Protocol):
    """
    Decides each partition's range, whether the run commits to the group and whether it joins it.

    A planner that does not join the group is given every partition of the topics at once and
    the engine reads them with ``assign()`` (a replay); one that joins is given what the group
    assigns, round by round.
    """

    commit: bool
    joins_group: bool
    #: ``"drain"`` or ``"replay"``: what the run summary calls the run.
    mode: str

    def describe(self) -> dict[str, Any] | None:
        """What the summary shows of the plan's inputs (a replay's interval); None for a drain."""
        ...

    def plan(
        self, consumer: Consumer, partitions: list[TopicPartition], snapshot: Mapping[TopicPartitionKey, Watermarks]
    ) -> list[PartitionPlan]: ...


def committed_offsets(
    consumer: Consumer, partitions: list[TopicPartition], *, timeout: float
) -> dict[TopicPartitionKey, int | None]:
    """
    The group's committed offset of each partition (None where it has none), read within ``timeout``.

    Reading committed offsets only asks the group coordinator: the consumer does not join the group.
    """
    query = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
    deadline = time.monotonic() + timeout
    while True:
        try:
            answer = consumer.committed(query, timeout=max(deadline - time.monotonic(), 0.1))
            break
        except KafkaException as err:
            # An error returned before the budget is spent (librdkafka itself keeps asking
            # while the coordinator is unknown): ask again while the budget lasts.
            if deadline - time.monotonic() < _COMMITTED_RETRY_PAUSE_SECONDS * 2:
                raise KafkaUnavailableError(
                    f"could not read the group's committed offsets within {timeout:g}s: {err}"
                ) from None
            log.warning("Reading the group's committed offsets failed (%s); trying again", err)
            time.sleep(_COMMITTED_RETRY_PAUSE_SECONDS)
    offsets: dict[TopicPartitionKey, int | None] = {}
    for tp in answer:
        if tp.error is not None:
            raise KafkaUnavailableError(
                f"could not read the committed offset of {tp.topic}[{tp.partition}]: {tp.error}"
            )
        offsets[(tp.topic, tp.partition)] = None if tp.offset == OFFSET_INVALID or tp.offset < 0 else tp.offset
    return offsets


class GroupOffsetsPlanner:
    """
    The scheduled drain: from the group's committed offsets to the snapshot end; commits.

    :param reset: the ``auto.offset.reset`` setting, used where the group has no offset.
    :param timeout: seconds allowed for the committed-offsets request.
    """

    commit = True
    joins_group = True
    mode = "drain"

    def __init__(self, reset: str = "earliest", timeout: float = 30.0) -> None:
        self.reset = reset
        self.timeout = timeout

    def describe(self) -> dict[str, Any] | None:
        return None

    def plan(
        self, consumer: Consumer, partitions: list[TopicPartition], snapshot: Mapping[TopicPartitionKey, Watermarks]
    ) -> list[PartitionPlan]:
        committed = committed_offsets(consumer, partitions, timeout=self.timeout)
        return [
            plan_partition(topic, partition, committed=offset, marks=snapshot[(topic, partition)], reset=self.reset)
            for (topic, partition), offset in committed.items()
        ]


def snapshot(
    consumer: Consumer, topics: Iterable[str], *, timeout: float, bootstrap: str
) -> dict[TopicPartitionKey, Watermarks]:
    """
    Check the topics exist and take every partition's log start and end offset, once, at run start.

    Under ``isolation.level=read_committed`` the end is the last stable offset: records of a
    transaction still open at start wait for the next run.
    """
    try:
        metadata = consumer.list_topics(timeout=timeout)
    except KafkaException as err:
        raise KafkaUnavailableError(
            f"Kafka at bootstrap.servers={bootstrap!r} did not answer within {timeout:g}s ({err.args[0].str()}); "
            "check the address and that the broker is running."
        ) from None
    marks: dict[TopicPartitionKey, Watermarks] = {}
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            error = meta.error if meta is not None else None
            reason = error.str() if error is not None else "it does not exist"
            raise KafkaSetupError(
                f"Kafka topic {topic!r} cannot be read at bootstrap.servers={bootstrap!r}: {reason}; "
                "create it or fix the topic name.",
                # A leader election in progress passes; a missing topic or denied access does not.
                retryable=bool(error is not None and error.retriable()),
            )
        for partition in sorted(meta.partitions):
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(topic, partition), timeout=timeout, cached=False
                )
            except KafkaException as err:
                raise KafkaUnavailableError(
                    f"could not read the offsets of {topic}[{partition}] within {timeout:g}s: {err.args[0].str()}"
                ) from None
            marks[(topic, partition)] = Watermarks(low, high)
    return marks
