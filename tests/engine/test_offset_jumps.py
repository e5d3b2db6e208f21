"""
Offsets that jump: retention deletes records between a run's planning and its first fetch.

The planner is the real one; a wrapper around it deletes records (the admin API's
delete_records, what retention does to a partition's log start) right after the plan is made
and before the partition is assigned, so the first fetch asks the real broker for an offset it
no longer has.
"""

from __future__ import annotations

import logging

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from aep_provider.engine import DrainConfig, DrainEngine, GroupOffsetsPlanner, ReplayError
from aep_provider.engine.replay import ReplayPlanner, ReplayScope, ReplayWindow
from tests.engine.support import committed, inlet_client, kafka_conf, produce, received

pytestmark = pytest.mark.integration

FAST = {"kafka_timeout_seconds": 10.0, "assignment_timeout_seconds": 30.0, "stop_grace_seconds": 5.0}


class RetentionStrikesAfterPlanning:
    """A planner that plans as ``planner`` does, then moves ``topic[0]``'s log start to ``log_start``."""

    def __init__(self, planner, bootstrap: str, topic: str, log_start: int) -> None:
        self._planner = planner
        self.commit, self.joins_group, self.mode = planner.commit, planner.joins_group, planner.mode
        self._admin = AdminClient({"bootstrap.servers": bootstrap})
        self._target = TopicPartition(topic, 0, log_start)
        self.plans = []

    def describe(self):
        return self._planner.describe()

    def plan(self, consumer, partitions, snapshot):
        self.plans = self._planner.plan(consumer, partitions, snapshot)
        for future in self._admin.delete_records([self._target]).values():
            future.result(timeout=10)
        return self.plans


def _commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


@pytest.mark.parametrize("strategy", ["cooperative-sticky", "range"])
@pytest.mark.parametrize("reset", ["earliest", "latest"])
def test_a_log_start_that_moves_past_the_committed_offset_is_counted_and_the_retained_backlog_sent(
    kafka_bootstrap, make_topic, aep_emulator, caplog, reset, strategy
):
    """
    Committed 10, planned [10, 50); before the fetch, records below 30 are deleted. librdkafka
    would reset to the log end under ``latest`` (skipping the 20 retained records, committing 50)
    and to the log start under ``earliest`` without a word. The run must count the 20 lost
    records, send the 20 retained ones and commit 50.
    """
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, 2, 50)
    conf = kafka_conf(kafka_bootstrap, **{"auto.offset.reset": reset, "partition.assignment.strategy": strategy})
    _commit(kafka_bootstrap, conf["group.id"], topic, {0: 10, 1: 10})
    planner = RetentionStrikesAfterPlanning(GroupOffsetsPlanner(reset=reset, timeout=10.0), kafka_bootstrap, topic, 30)
    engine = DrainEngine(
        consumer_conf=conf,
        topics=[topic],
        sender=inlet_client(aep_emulator),
        config=DrainConfig(**FAST),
        planner=planner,
    )
    with caplog.at_level(logging.WARNING, logger="aep_provider.engine"):
        summary = engine.run()
    assert [(p.start, p.end) for p in planner.plans] == [(10, 50), (10, 50)]  # planned before the deletion
    assert received(aep_emulator) == {0: list(range(30, 50)), 1: list(range(10, 50))}
    assert summary.partition(topic, 0).lost_to_retention == 20 and summary.lost_to_retention == 20
    assert summary.to_dict()["lost_to_retention"] == 20 and "lost_to_retention=20" in summary.closing_line()
    assert (summary.stopped_by, summary.lag) == ("end", 0)
    assert committed(kafka_bootstrap, conf["group.id"], topic, 2) == {0: 50, 1: 50}
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(f"{topic}[0]: 20 record(s) from offset 10 were deleted by retention" in m for m in warned), warned


def test_records_deleted_while_a_replay_reads_them_fail_the_replay_retryably(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 50)
    conf = kafka_conf(kafka_bootstrap)
    window = ReplayWindow(0, 2**42, scope=ReplayScope.ALL)  # every record produced here
    planner = RetentionStrikesAfterPlanning(ReplayPlanner(window, conf, timeout=10.0), kafka_bootstrap, topic, 30)
    engine = DrainEngine(
        consumer_conf=conf,
        topics=[topic],
        sender=inlet_client(aep_emulator),
        config=DrainConfig(**FAST),
        planner=planner,
    )
    with pytest.raises(
        ReplayError, match=rf"{topic}\[0\]: records 0-29 were deleted by retention while this replay"
    ) as info:
        engine.run()
    assert info.value.retryable
    assert aep_emulator.accepted() == []
