"""Empty runs end from offsets alone, without joining the group; readable run logs (real broker + emulator)."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from aep_provider.engine import DrainConfig, DrainEngine
from aep_provider.engine.logsections import END_GROUP, GROUP
from aep_provider.engine.summary import MAX_REJECTION_SAMPLES
from tests.engine.support import committed, inlet_client, kafka_conf, message, produce, produce_values, received

pytestmark = pytest.mark.integration

FAST = {"kafka_timeout_seconds": 10.0, "assignment_timeout_seconds": 30.0, "stop_grace_seconds": 10.0}


class RecordingConsumer(Consumer):
    """A real consumer that records whether the engine subscribed (a subscribe is what joins the group)."""

    subscribed: list[list[str]]

    def subscribe(self, topics: list[str], *args: Any, **kwargs: Any) -> None:
        type(self).subscribed.append(list(topics))
        super().subscribe(topics, *args, **kwargs)


def _recording_factory() -> tuple[list[list[str]], Any]:
    calls: list[list[str]] = []
    cls = type("Recording", (RecordingConsumer,), {"subscribed": calls})
    return calls, cls


def _engine(conf: dict[str, Any], topic: str, sender: Any, factory: Any = Consumer, **cfg: Any) -> DrainEngine:
    return DrainEngine(
        consumer_conf=conf,
        topics=[topic],
        sender=sender,
        config=DrainConfig(**{**FAST, **cfg}),
        consumer_factory=factory,
    )


def _commit_without_joining(bootstrap: str, group: str, offsets: dict[tuple[str, int], int]) -> None:
    """Commit offsets for ``group`` as a standalone client: the group never gets a member."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def _describe(bootstrap: str, group: str) -> Any:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    return admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)


def test_a_run_with_nothing_to_read_ends_without_joining_the_group(kafka_bootstrap, make_topic, aep_emulator, caplog):
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, 2, 5)
    conf = kafka_conf(kafka_bootstrap)
    group = conf["group.id"]
    _commit_without_joining(kafka_bootstrap, group, {(topic, 0): 5, (topic, 1): 5})
    calls, factory = _recording_factory()

    with caplog.at_level(logging.INFO, logger="aep_provider.engine"):
        summary = _engine(conf, topic, inlet_client(aep_emulator), factory).run()

    assert calls == []  # never subscribed: no JoinGroup
    desc = _describe(kafka_bootstrap, group)
    # A group that ever had a member stops being a "simple" (commit-only) group for good.
    assert desc.is_simple_consumer_group and desc.members == []
    assert desc.state.name == "EMPTY"
    data = summary.to_dict()
    assert (data["stopped_by"], data["delivered"], data["requests"], data["lag"], data["topic_lag"]) == (
        "end",
        0,
        0,
        0,
        0,
    )
    for p in range(2):
        part = data["partitions"][f"{topic}[{p}]"]
        assert (part["start"], part["end"], part["committed"], part["lag"], part["topic_lag"]) == (5, 5, 5, 0, 0)
    assert committed(kafka_bootstrap, group, topic, 2) == {0: 5, 1: 5}
    assert received(aep_emulator) == {}
    assert any("Nothing to read" in r.getMessage() for r in caplog.records)

    # Records arrive: the next run joins the group and drains them.
    produce_values(kafka_bootstrap, topic, [message(topic, 0, 5), message(topic, 0, 6)], partition=0)
    calls2, factory2 = _recording_factory()
    again = _engine(conf, topic, inlet_client(aep_emulator), factory2).run()
    assert calls2 == [[topic]]
    assert (again.delivered, again.lag, again.stopped_by) == (2, 0, "end")
    assert received(aep_emulator) == {0: [5, 6]}
    assert committed(kafka_bootstrap, group, topic, 2) == {0: 7, 1: 5}
    assert not _describe(kafka_bootstrap, group).is_simple_consumer_group


def test_a_new_group_on_an_empty_topic_ends_without_joining_under_earliest_only(
    kafka_bootstrap, make_topic, aep_emulator
):
    topic = make_topic(partitions=1)
    # earliest, no committed offset, nothing retained: lag 0, nothing to pin.
    conf = kafka_conf(kafka_bootstrap)
    calls, factory = _recording_factory()
    summary = _engine(conf, topic, inlet_client(aep_emulator), factory).run()
    assert calls == [] and summary.stopped_by == "end" and summary.lag == 0
    assert summary.partition(topic, 0).committed is None

    # latest without a committed offset: the run joins once to pin the start, or the next run
    # (starting at the then latest offset) would skip what is produced meanwhile.
    conf = kafka_conf(kafka_bootstrap, **{"auto.offset.reset": "latest"})
    calls, factory = _recording_factory()
    _engine(conf, topic, inlet_client(aep_emulator), factory).run()
    assert calls == [[topic]]
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 0}
    calls, factory = _recording_factory()
    _engine(conf, topic, inlet_client(aep_emulator), factory).run()
    assert calls == []  # now the pinned offset says there is nothing to read


def test_replays_keep_their_path(kafka_bootstrap, make_topic, aep_emulator):
    """The shortcut is only for planners that join the group."""
    from aep_provider.engine.replay import ReplayPlanner, ReplayScope, ReplayWindow

    topic = make_topic(partitions=1)
    conf = kafka_conf(kafka_bootstrap)
    planner = ReplayPlanner(
        ReplayWindow(1_700_000_000_000, 1_700_000_060_000, scope=ReplayScope.ALL), conf, timeout=10.0
    )
    engine = DrainEngine(
        consumer_conf=conf,
        topics=[topic],
        sender=inlet_client(aep_emulator),
        config=DrainConfig(**FAST),
        planner=planner,
    )
    assert engine.run().stopped_by == "end"
    assert not engine.ended_without_joining


def test_log_has_collapsible_sections_and_lists_only_the_first_rejections(
    kafka_bootstrap, make_topic, aep_emulator, caplog
):
    topic = make_topic(partitions=1)
    bad = MAX_REJECTION_SAMPLES + 7
    produce_values(kafka_bootstrap, topic, [b"{not json %d" % n for n in range(bad)] + [message(topic, 0, 0)])
    conf = kafka_conf(kafka_bootstrap)

    with caplog.at_level(logging.INFO, logger="aep_provider.engine"):
        summary = _engine(conf, topic, inlet_client(aep_emulator), on_reject="skip").run()

    assert (summary.rejected, summary.delivered) == (bad, 1)
    lines = [r.getMessage() for r in caplog.records]
    opened = [line[len(GROUP) :] for line in lines if line.startswith(GROUP)]
    assert opened == ["Plan: snapshot and assignment", "Progress", f"Rejected records ({bad})", "Totals per partition"]
    # Sections never nest: every one is closed before the next opens, and all are closed.
    depth = 0
    for line in lines:
        if line.startswith(GROUP):
            assert depth == 0
            depth += 1
        elif line == END_GROUP:
            depth -= 1
    assert depth == 0
    plan = lines[lines.index(GROUP + opened[0]) : lines.index(GROUP + "Progress")]
    assert any(
        line.startswith("Draining ") and line.endswith(": 1 partition(s), end offsets snapshotted") for line in plan
    )
    # The count is what this run was assigned (here: every record, from offset 0), not the topic's size.
    assert f"Assigned {bad + 1} record offset(s) in 1 partition(s): {topic}[0] 0->{bad + 1}" in plan
    # Live: one line per rejection up to the cap, then a single note.
    live = [line for line in lines if "skipped (on_reject='skip')" in line]
    assert len(live) == MAX_REJECTION_SAMPLES
    assert sum("further rejections are counted" in line for line in lines) == 1
    # The closing section: counts, the first records with their reasons, then the rest as a count.
    start = lines.index(GROUP + f"Rejected records ({bad})")
    section = lines[start + 1 : lines.index(END_GROUP, start)]
    assert section[0].startswith("Rejected by reason: invalid JSON=") and f"({bad} record(s))" in section[0]
    listed = section[1:-1]
    assert [line.split(" ")[0] for line in listed] == [f"{topic}[0]@{n}" for n in range(MAX_REJECTION_SAMPLES)]
    assert all("not valid JSON" in line for line in listed)
    assert section[-1] == "... and 7 more rejected record(s), not listed (counted by reason above)"
    closing = next(i for i, line in enumerate(lines) if line.startswith("Drain finished"))
    assert closing < start  # the closing line stays outside the folded sections
