"""
A consumer group's lag, read from offsets alone.

Nothing here joins the group, polls records or commits: it asks the broker (through an
``AdminClient``) for the group's committed offsets and each partition's start and end offsets.
Plain Python, no Airflow imports, so the sensor, the trigger and the operator can all use it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from confluent_kafka import ConsumerGroupTopicPartitions, IsolationLevel, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, OffsetSpec

from aep_provider.engine.config import client_config

TopicPartitionKey = tuple[str, int]

#: Pause between two asks while the group coordinator is loading.
_RETRY_PAUSE_SECONDS = 0.2
#: Answers of a coordinator that is starting or moving: worth asking again.
_COORDINATOR_BUSY = frozenset(
    {KafkaError.COORDINATOR_LOAD_IN_PROGRESS, KafkaError.COORDINATOR_NOT_AVAILABLE, KafkaError.NOT_COORDINATOR}
)


class LagReadError(Exception):
    """The lag could not be read: unknown topic, no access, or the broker did not answer in time."""


@dataclass(frozen=True)
class PartitionLag:
    """
    One partition's position.

    :param start: log start offset. :param end: end offset (last stable offset under ``read_committed``).
    :param committed: the group's committed offset, None when the group never committed one.
    :param lag: records the group has yet to read.
    """

    topic: str
    partition: int
    start: int
    end: int
    committed: int | None
    lag: int


@dataclass(frozen=True)
class GroupLag:
    """A group's lag on some topics: per partition, and in total."""

    group_id: str
    partitions: tuple[PartitionLag, ...] = field(default_factory=tuple)

    @property
    def total(self) -> int:
        return sum(p.lag for p in self.partitions)

    def by_topic(self) -> dict[str, int]:
        """Lag per topic (what metrics and logs report: partitions would be too many)."""
        totals: dict[str, int] = {}
        for p in self.partitions:
            totals[p.topic] = totals.get(p.topic, 0) + p.lag
        return totals

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (trigger events and XCom)."""
        return {
            "group_id": self.group_id,
            "lag": self.total,
            "topics": self.by_topic(),
            "partitions": {
                f"{p.topic}[{p.partition}]": {"start": p.start, "end": p.end, "committed": p.committed, "lag": p.lag}
                for p in self.partitions
            },
        }


def partition_lag(*, start: int, end: int, committed: int | None, reset: str = "earliest") -> int:
    """
    Records left for the group in one partition.

    With no committed offset, or one outside ``[start, end]`` (deleted by retention, or the topic
    was recreated), a consumer starts where ``auto.offset.reset`` says: ``earliest`` at the log
    start (lag = every retained record), ``latest`` at the end (lag 0), which is what is counted.
    """
    if committed is None or committed < start or committed > end:
        return max(end - start, 0) if reset != "latest" else 0
    return end - committed


def read_group_lag(
    consumer_conf: Mapping[str, Any],
    topics: Sequence[str],
    *,
    group_id: str | None = None,
    timeout: float = 30.0,
    admin: AdminClient | None = None,
) -> GroupLag:
    """
    Read the lag of a consumer group on ``topics`` without touching the group.

    :param consumer_conf: confluent-kafka consumer settings (the ``kafka`` connection's extra); only
        the client settings (address, security) reach the admin client, ``group.id``,
        ``auto.offset.reset`` and ``isolation.level`` are read from it.
    :param topics: topics to measure; every partition of each is counted.
    :param group_id: the group, default ``consumer_conf["group.id"]``.
    :param timeout: bound on each broker request, in seconds.
    :param admin: an admin client to reuse (the trigger keeps one across checks).
    """
    group = group_id or consumer_conf.get("group.id")
    if not group:
        raise LagReadError("no consumer group: pass group_id or put 'group.id' in the Kafka connection's extra")
    group = str(group)
    reset = str(consumer_conf.get("auto.offset.reset", "earliest")).lower()
    # Same default as the drain: records of an open transaction are not "waiting" yet.
    read_committed = str(consumer_conf.get("isolation.level", "read_committed")).lower() != "read_uncommitted"
    isolation = IsolationLevel.READ_COMMITTED if read_committed else IsolationLevel.READ_UNCOMMITTED
    bootstrap = consumer_conf.get("bootstrap.servers", "?")
    if admin is None:  # not `admin or ...`: an AdminClient has a length (its queue), 0 when idle
        admin = AdminClient(client_config(consumer_conf))

    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as err:
        raise LagReadError(
            f"could not read metadata from bootstrap.servers={bootstrap!r}: {err.args[0].str()}"
        ) from None
    tps: list[TopicPartition] = []
    for topic in topics:
        meta = metadata.topics.get(topic)
        if meta is None or meta.error is not None or not meta.partitions:
            why = meta.error.str() if meta is not None and meta.error is not None else "it does not exist"
            raise LagReadError(f"cannot read the lag of topic {topic!r} on bootstrap.servers={bootstrap!r}: {why}")
        tps.extend(TopicPartition(topic, p) for p in sorted(meta.partitions))

    try:
        answer = _group_offsets(admin, group, tps, timeout)
        committed: dict[TopicPartitionKey, int | None] = {
            (tp.topic, tp.partition): (tp.offset if tp.offset >= 0 else None) for tp in answer.topic_partitions
        }
        starts = _offsets(admin, tps, OffsetSpec.earliest(), isolation, timeout)
        ends = _offsets(admin, tps, OffsetSpec.latest(), isolation, timeout)
    except KafkaException as err:
        raise LagReadError(
            f"could not read the offsets of group {group!r} on {', '.join(topics)} "
            f"(bootstrap.servers={bootstrap!r}): {err.args[0].str()}"
        ) from None
    except TimeoutError:
        raise LagReadError(
            f"bootstrap.servers={bootstrap!r} did not answer for the offsets of group {group!r} within {timeout:g}s"
        ) from None

    rows = []
    for tp in tps:
        key = (tp.topic, tp.partition)
        start, end, done = starts[key], ends[key], committed.get(key)
        rows.append(
            PartitionLag(
                tp.topic,
                tp.partition,
                start,
                end,
                done,
                partition_lag(start=start, end=end, committed=done, reset=reset),
            )
        )
    return GroupLag(group, tuple(rows))


def _group_offsets(admin: AdminClient, group: str, tps: list[TopicPartition], timeout: float) -> Any:
    """
    The group's committed offsets, asked again while the coordinator answers a retriable error
    (it is still loading the offsets log after a broker start) and time is left.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = max(deadline - time.monotonic(), 0.1)
        request = [ConsumerGroupTopicPartitions(group, tps)]
        try:
            return admin.list_consumer_group_offsets(request, request_timeout=left)[group].result(timeout=left + 1)
        except KafkaException as err:
            error = err.args[0]
            passing = error.retriable() or error.code() in _COORDINATOR_BUSY
            if not passing or deadline - time.monotonic() < _RETRY_PAUSE_SECONDS * 2:
                raise
            time.sleep(_RETRY_PAUSE_SECONDS)


def _offsets(
    admin: AdminClient, tps: Sequence[TopicPartition], spec: OffsetSpec, isolation: IsolationLevel, timeout: float
) -> dict[TopicPartitionKey, int]:
    futures = admin.list_offsets(
        {TopicPartition(tp.topic, tp.partition): spec for tp in tps}, isolation_level=isolation, request_timeout=timeout
    )
    return {(tp.topic, tp.partition): fut.result(timeout=timeout + 1).offset for tp, fut in futures.items()}
