"""Replays: a past interval mapped to offsets by the timestamp index, sent again, nothing committed."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import datetime, timedelta, timezone

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from aep_provider.emulator import Fault
from aep_provider.engine import DrainConfig, DrainEngine, KafkaSetupError, ReplayError, RunStopped
from aep_provider.engine.payload import XDMShaper, record_id
from aep_provider.engine.replay import ReplayPlanner, ReplayScope, ReplayWindow, format_ms, parse_instant
from tests.engine.support import committed, inlet_client, kafka_conf

FAST = {"kafka_timeout_seconds": 10.0, "assignment_timeout_seconds": 30.0, "stop_grace_seconds": 10.0}
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
#: A past base time for produced timestamps (the broker keeps them: retention is not time-bound here).
BASE_MS = int((datetime.now(timezone.utc) - timedelta(days=2)).timestamp() * 1000)


# -- the window: every bad request is one clear error -------------------------------------------


def test_window_from_iso_strings_epoch_ms_and_naive_datetimes():
    w = ReplayWindow.between("2026-11-28T00:00:00Z", 1_795_910_400_000, now=NOW)
    assert (w.start_ms, w.end_ms) == (1_795_824_000_000, 1_795_910_400_000)
    assert ReplayWindow.between(datetime(2026, 11, 28), datetime(2026, 11, 29), now=NOW).start_ms == w.start_ms
    assert w.to_dict() == {
        "start": "2026-11-28T00:00:00Z",
        "end": "2026-11-29T00:00:00Z",
        "scope": "handed_over",
        "lateness_seconds": 300.0,
    }
    assert w.start_ms in w and w.end_ms not in w and w.start_ms - 1 not in w


def test_zero_length_interval_names_the_fix():
    with pytest.raises(ReplayError, match=r"backfill run's data interval .* is empty.*CronDataIntervalTimetable"):
        ReplayWindow.between(
            "2026-11-28T00:00:00Z",
            "2026-11-28T00:00:00Z",
            now=NOW,
            source="the backfill run's data interval",
            empty_hint="Schedule the DAG with CronDataIntervalTimetable.",
        )


@pytest.mark.parametrize(
    ("start", "end", "match"),
    [
        ("2026-11-29T00:00:00Z", "2026-11-28T00:00:00Z", "ends before it starts"),
        ("2026-11-30T00:00:00Z", "2026-12-01T00:00:00Z", "ends in the future"),
        ("yesterday", "2026-11-28T00:00:00Z", "the replay start must be a date-time.*'yesterday'"),
        ("2026-11-28T00:00:00Z", None, "the replay end must be a date-time"),
    ],
)
def test_bad_intervals_are_clear_errors(start, end, match):
    with pytest.raises(ReplayError, match=match):
        ReplayWindow.between(start, end, now=NOW)


def test_bad_scope_and_lateness_are_clear_errors():
    with pytest.raises(ReplayError, match="replay_scope must be one of 'handed_over', 'all', got 'some'"):
        ReplayWindow.between("2026-11-28", "2026-11-29", scope="some", now=NOW)
    with pytest.raises(ReplayError, match="replay_lateness_seconds must be 0 or more"):
        ReplayWindow.between("2026-11-28", "2026-11-29", lateness_seconds=-1, now=NOW)


def test_parse_instant_and_format_round_trip():
    assert format_ms(int(parse_instant("2026-11-28T06:30:00+01:00", "x").timestamp() * 1000)) == "2026-11-28T05:30:00Z"


@pytest.mark.parametrize("given", ["1796452740308", " 1796452740308 ", 1796452740308, "1796452740308.0"])
def test_epoch_milliseconds_as_a_number_or_a_string_of_digits(given):
    """The Trigger form and templates deliver strings: '1796452740308' is epoch ms, as the docs and the message say."""
    assert format_ms(int(parse_instant(given, "replay_start").timestamp() * 1000)) == "2026-12-05T06:39:00.308000Z"


@pytest.mark.parametrize("given", ["1796452740", 1796452740, "179645274"])
def test_epoch_seconds_are_refused_rather_than_read_as_a_date_in_1970(given):
    with pytest.raises(ValueError, match=r"replay_start .*\(epoch seconds\? give milliseconds"):
        parse_instant(given, "replay_start")


def test_naive_date_times_are_read_in_the_given_zone_and_say_so(caplog):
    with caplog.at_level("INFO", logger="aep_provider.engine.replay"):
        window = ReplayWindow.between("2026-11-28", "2026-11-28T12:00:00", now=NOW, naive_timezone="Europe/Paris")
    assert window.describe() == "[2026-11-27T23:00:00Z, 2026-11-28T11:00:00Z)"
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "'2026-11-28' has no time zone: read in Europe/Paris as 2026-11-27T23:00:00Z" in said
    # Aware values are taken as they are, whatever the zone for naive ones.
    aware = ReplayWindow.between("2026-11-28T00:00:00Z", 1_795_910_400_000, now=NOW, naive_timezone="Europe/Paris")
    assert aware.describe() == "[2026-11-28T00:00:00Z, 2026-11-29T00:00:00Z)"


# -- against the real broker and the emulator ------------------------------------------------------


REF = {"id": "https://ns.adobe.com/test/schemas/e", "contentType": "application/vnd.adobe.xed-full+json;version=1"}


def _produce_at(
    bootstrap: str, topic: str, stamped: list[tuple[int, int]], *, start_seq: int = 0, xdm_only: bool = False
) -> None:
    """
    Produce one message per ``(partition, timestamp_ms)``, numbered from ``start_seq``, with that CreateTime.

    :param xdm_only: the value is a bare XDM record without ``_id`` (for ``payload="xdm"``), else a full AEP message.
    """
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for seq, (partition, ts) in enumerate(stamped, start=start_seq):
        entity = {"n": seq, "ts": ts}
        value = (
            entity
            if xdm_only
            else {"header": {"schemaRef": REF}, "body": {"xdmMeta": {"schemaRef": REF}, "xdmEntity": entity}}
        )
        producer.produce(topic, json.dumps(value).encode(), partition=partition, timestamp=ts)
    assert producer.flush(30) == 0


def _sent(emulator) -> list[int]:
    return sorted(m["body"]["xdmEntity"]["n"] for m in emulator.accepted())


def _replay(conf, topics, sender, window: ReplayWindow, **cfg) -> DrainEngine:
    return DrainEngine(
        consumer_conf=conf,
        topics=topics,
        sender=sender,
        config=DrainConfig(**{**FAST, **cfg}),
        planner=ReplayPlanner(window, conf, timeout=10.0),
    )


def _window(start_offset_ms: int, end_offset_ms: int, **kw) -> ReplayWindow:
    return ReplayWindow(BASE_MS + start_offset_ms, BASE_MS + end_offset_ms, **kw)


@pytest.mark.integration
def test_non_monotonic_timestamps_are_filtered_and_lateness_bounds_the_scan(
    kafka_bootstrap, make_topic, aep_emulator, caplog
):
    """The note's partition: +100 +300 +200 +500 +400 +600 at offsets 0-5; the interval is [+150, +450)."""
    topic = make_topic(partitions=1)
    _produce_at(kafka_bootstrap, topic, [(0, BASE_MS + d) for d in (100, 300, 200, 500, 400, 600)])
    conf = kafka_conf(kafka_bootstrap)

    late = _replay(
        conf, [topic], inlet_client(aep_emulator), _window(150, 450, scope=ReplayScope.ALL, lateness_ms=1000)
    )
    with caplog.at_level(logging.INFO, logger="aep_provider.engine"):
        summary = late.run()
    # The plan says what a replay does (no group joined) and what it was given to read.
    plan = [r.getMessage() for r in caplog.records]
    assert any(line.startswith(f"Replaying {topic} from bootstrap.servers=") for line in plan), plan
    assert f"Assigned 5 record offset(s) in 1 partition(s): {topic}[0] 1->6" in plan
    assert not any("group.id=" in line for line in plan), plan
    # Offsets 1-5 are read; +200 (offset 2) sits after +300 and +400 (offset 4) after +500: both sent.
    assert _sent(aep_emulator) == [1, 2, 4]
    assert (summary.mode, summary.delivered, summary.filtered_by_timestamp, summary.left_to_live_drain) == (
        "replay",
        3,
        2,
        0,
    )
    part = summary.to_dict()["partitions"][f"{topic}[0]"]
    assert (part["start"], part["end"], part["send_until"], part["records"]) == (1, 6, 6, 3)
    assert summary.to_dict()["interval"]["scope"] == "all"

    aep_emulator.reset()
    # Without lateness the scan ends at the first record stamped at or after the end (offset 3):
    # the late +400 at offset 4 is not reached. That is what replay_lateness_seconds is for.
    summary = _replay(
        conf, [topic], inlet_client(aep_emulator), _window(150, 450, scope=ReplayScope.ALL, lateness_ms=0)
    ).run()
    assert _sent(aep_emulator) == [1, 2]
    assert summary.to_dict()["partitions"][f"{topic}[0]"]["end"] == 3
    # A replay commits nothing: the group still has no offsets.
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: -1001}


@pytest.mark.integration
def test_replay_resends_only_what_the_live_drain_handed_over_and_leaves_its_offsets(
    kafka_bootstrap, make_topic, aep_emulator
):
    topic = make_topic(partitions=2)
    _produce_at(kafka_bootstrap, topic, [(p, BASE_MS + 1000 + i) for i in range(5) for p in (0, 1)], xdm_only=True)
    conf = kafka_conf(kafka_bootstrap)
    shaper = lambda: XDMShaper(schema_id="https://ns.adobe.com/t/schemas/s", dataset_id="ds")  # noqa: E731
    drained = DrainEngine(
        consumer_conf=conf,
        topics=[topic],
        sender=inlet_client(aep_emulator),
        config=DrainConfig(**FAST),
        shaper=shaper(),
    ).run()
    assert drained.delivered == 10
    first_ids = sorted(m["body"]["xdmEntity"]["_id"] for m in aep_emulator.accepted())
    # Records of the interval the live drain has not read yet (produced after its run).
    _produce_at(
        kafka_bootstrap,
        topic,
        [(0, BASE_MS + 1500), (1, BASE_MS + 1600), (1, BASE_MS + 9000)],
        start_seq=10,
        xdm_only=True,
    )
    before = committed(kafka_bootstrap, conf["group.id"], topic, 2)
    assert before == {0: 5, 1: 5}
    aep_emulator.reset()

    window = _window(0, 2000)  # scope handed_over by default
    summary = DrainEngine(
        consumer_conf=conf, topics=[topic], sender=inlet_client(aep_emulator), config=DrainConfig(**FAST),
        shaper=shaper(), planner=ReplayPlanner(window, conf, timeout=10.0),
    ).run()  # fmt: skip

    # Same records, same deterministic _id (topic/partition/offset) as the first delivery.
    assert sorted(m["body"]["xdmEntity"]["_id"] for m in aep_emulator.accepted()) == first_ids
    assert first_ids == sorted(record_id(topic, p, o) for p in (0, 1) for o in range(5))
    assert (summary.delivered, summary.left_to_live_drain, summary.filtered_by_timestamp) == (10, 2, 1)
    assert committed(kafka_bootstrap, conf["group.id"], topic, 2) == before
    assert "left_to_live_drain=2" in summary.closing_line() and "nothing committed" in summary.closing_line()

    aep_emulator.reset()
    everything = DrainEngine(
        consumer_conf=conf, topics=[topic], sender=inlet_client(aep_emulator), config=DrainConfig(**FAST),
        shaper=shaper(), planner=ReplayPlanner(_window(0, 2000, scope=ReplayScope.ALL), conf, timeout=10.0),
    ).run()  # fmt: skip
    assert (everything.delivered, everything.left_to_live_drain) == (12, 0)
    assert committed(kafka_bootstrap, conf["group.id"], topic, 2) == before


@pytest.mark.integration
def test_interval_without_records_is_green_and_says_so(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=2)
    _produce_at(kafka_bootstrap, topic, [(0, BASE_MS + 10_000), (1, BASE_MS + 10_001)])
    conf = kafka_conf(kafka_bootstrap)
    # Before the records: the scan reaches them through the lateness allowance and filters them out.
    # After them: the timestamp index answers "none", nothing is read.
    for window, filtered in ((_window(-50_000, -40_000), 2), (_window(20_000, 30_000), 0)):
        summary = _replay(conf, [topic], inlet_client(aep_emulator), window).run()
        assert (summary.stopped_by, summary.delivered, summary.filtered_by_timestamp) == ("end", 0, filtered)
        assert "delivered=0" in summary.closing_line()
    assert aep_emulator.accepted() == []


def _wait_log_starts(bootstrap: str, topic: str, expected: dict[int, int], timeout: float = 90.0) -> None:
    """Wait until the broker's retention moved each partition's log start to ``expected``."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "log-start-probe"})
    try:
        deadline = time.monotonic() + timeout
        while True:
            starts = {
                p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[0]
                for p in expected
            }
            if starts == expected:
                return
            assert time.monotonic() < deadline, (
                f"retention did not delete the expired records within {timeout:g}s (log starts {starts}, "
                f"expected {expected}): the session broker runs with log.retention.check.interval.ms=1000"
            )
            time.sleep(0.5)
    finally:
        consumer.close()


@pytest.mark.integration
def test_a_backfill_goes_through_partitions_whose_records_all_expired(
    kafka_bootstrap, make_topic, kafka_admin: AdminClient, aep_emulator
):
    """
    A quiet partition under retention has log start = log end > 0. Its records expired by time:
    none of them can belong to an interval inside the retention time, so a backfill of such an
    interval replays the other partitions and is green; only an interval reaching back past
    retention.ms, where records really may be gone, fails.
    """
    day, hour = 86_400_000, 3_600_000
    now = int(time.time() * 1000)
    # segment.ms: a record stamped an hour after its segment's first one starts a new segment, so
    # that the expired records sit in segments of their own (retention deletes whole segments).
    topic = make_topic(partitions=3, config={"retention.ms": str(day), "segment.ms": str(hour)})
    expired = now - 3 * day
    # Partition 0: two expired records, then two recent ones; 1: only expired records (an idle
    # partition); 2: one recent record.
    _produce_at(
        kafka_bootstrap, topic, [(0, expired), (0, expired + 1), (1, expired), (1, expired + 1), (1, expired + 2)]
    )
    _produce_at(
        kafka_bootstrap, topic, [(0, now - 2 * hour), (0, now - 2 * hour + 1), (2, now - 3 * hour)], start_seq=5
    )
    _wait_log_starts(kafka_bootstrap, topic, {0: 2, 1: 3, 2: 0})
    conf = kafka_conf(kafka_bootstrap)

    recent = ReplayWindow(now - 4 * hour, now - hour, scope=ReplayScope.ALL)
    summary = _replay(conf, [topic], inlet_client(aep_emulator), recent).run()
    assert (summary.stopped_by, summary.delivered) == ("end", 3)
    assert _sent(aep_emulator) == [5, 6, 7]
    assert all(p["retention_note"] is None for p in summary.to_dict()["partitions"].values())

    aep_emulator.reset()
    beyond = ReplayWindow(expired - hour, expired + hour, scope=ReplayScope.ALL)
    with pytest.raises(ReplayError) as err:
        _replay(conf, [topic], inlet_client(aep_emulator), beyond).run()
    text = str(err.value)
    assert f"{topic}[0] (log start 2, first retained record from {format_ms(now - 2 * hour)})" in text
    assert f"{topic}[1] (log start 3)" in text and f"{topic}[2]" not in text
    assert "retention.ms=86400000" in text and "gone" in text
    assert aep_emulator.accepted() == []


@pytest.mark.integration
def test_records_deleted_from_a_topic_without_time_retention_fail_naming_partition_and_log_start(
    kafka_bootstrap, make_topic, kafka_admin: AdminClient, aep_emulator
):
    """
    Without time retention (retention.ms=-1) nothing tells which records were deleted (here with
    the admin API's delete_records): an interval before the first retained record may have lost
    records, so its replay fails, naming each partition.
    """
    topic = make_topic(partitions=2, config={"retention.ms": "-1"})
    day = 86_400_000
    # "Day 1" records at +0..+2 h, "day 2" records at +1 day +1 h..; both partitions.
    _produce_at(kafka_bootstrap, topic, [(p, BASE_MS - day + h * 3_600_000) for h in range(3) for p in (0, 1)])
    _produce_at(kafka_bootstrap, topic, [(p, BASE_MS + 3_600_000 + h) for h in range(2) for p in (0, 1)], start_seq=6)
    for future in kafka_admin.delete_records([TopicPartition(topic, 0, 3), TopicPartition(topic, 1, 3)]).values():
        future.result(timeout=10)
    conf = kafka_conf(kafka_bootstrap)
    day1 = ReplayWindow(BASE_MS - day, BASE_MS, scope=ReplayScope.ALL)
    with pytest.raises(ReplayError) as err:
        _replay(conf, [topic], inlet_client(aep_emulator), day1).run()
    text = str(err.value)
    assert f"{topic}[0] (log start 3, first retained record from {format_ms(BASE_MS + 3_600_000)})" in text
    assert f"{topic}[1] (log start 3" in text and "are gone on" in text and "not bounded by time" in text
    assert aep_emulator.accepted() == []

    # The day after: its own records are all retained; the note says what may precede them.
    day2 = ReplayWindow(BASE_MS, BASE_MS + day - 1, scope=ReplayScope.ALL)
    summary = _replay(conf, [topic], inlet_client(aep_emulator), day2).run()
    assert summary.delivered == 4 and _sent(aep_emulator) == [6, 7, 8, 9]
    note = summary.to_dict()["partitions"][f"{topic}[0]"]["retention_note"]
    assert note.startswith("records before offset 3 were deleted") and format_ms(BASE_MS + 3_600_000) in note


@pytest.mark.integration
def test_replay_cut_short_by_a_limit_fails_saying_the_interval_was_not_finished(
    kafka_bootstrap, make_topic, aep_emulator
):
    topic = make_topic(partitions=1)
    _produce_at(kafka_bootstrap, topic, [(0, BASE_MS + i) for i in range(20)])
    conf = kafka_conf(kafka_bootstrap)
    engine = _replay(
        conf,
        [topic],
        inlet_client(aep_emulator),
        _window(0, 100, scope=ReplayScope.ALL),
        max_records_per_run=5,
        max_batch_records=5,
    )
    with pytest.raises(ReplayError, match=r"stopped \(max_records_per_run\) before the end of the interval: 5 record"):
        engine.run()
    assert engine.summary.stopped_by == "failed" and engine.summary.delivered == 5


@pytest.mark.integration
def test_a_stopped_replay_fails_retryably_not_as_a_settings_error(kafka_bootstrap, make_topic, aep_emulator):
    """
    SIGTERM or mark-failed stops a replay: the try fails, and retryably (a retry replays the
    interval again), not as a ReplayError that needs someone to change a setting.
    """
    topic = make_topic(partitions=1)
    _produce_at(kafka_bootstrap, topic, [(0, BASE_MS + i) for i in range(200)])
    aep_emulator.inject(Fault(delay_seconds=0.1, count=None, endpoint="batch"))
    engine = _replay(
        kafka_conf(kafka_bootstrap),
        [topic],
        inlet_client(aep_emulator),
        _window(0, 1000, scope=ReplayScope.ALL),
        max_batch_records=10,
        max_in_flight=1,
    )
    outcome: dict[str, BaseException] = {}

    def run() -> None:
        try:
            engine.run()
        except BaseException as err:  # handed to the test
            outcome["error"] = err

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    deadline = time.monotonic() + 60
    while not aep_emulator.accepted() and runner.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    engine.stop()
    runner.join(60)
    assert not runner.is_alive()
    error = outcome.get("error")
    assert isinstance(error, RunStopped) and error.retryable, outcome
    assert f"The replay of {engine.summary.interval_text()} was stopped before it finished" in str(error)
    assert 0 < engine.summary.delivered < 200 and engine.summary.stopped_by == "stop requested"


@pytest.mark.integration
def test_a_limit_reached_exactly_on_the_intervals_last_record_is_a_complete_replay(
    kafka_bootstrap, make_topic, aep_emulator
):
    """
    Five records stamped inside the interval, then two read in the lateness scan and filtered: a
    limit of five is reached on the interval's last record and the replay is complete (green).
    """
    topic = make_topic(partitions=2)
    _produce_at(kafka_bootstrap, topic, [(0, BASE_MS + 10), (1, BASE_MS + 20), (0, BASE_MS + 30), (1, BASE_MS + 40)])
    _produce_at(kafka_bootstrap, topic, [(0, BASE_MS + 50), (0, BASE_MS + 150), (1, BASE_MS + 160)], start_seq=4)
    conf = kafka_conf(kafka_bootstrap)
    window = _window(0, 100, scope=ReplayScope.ALL, lateness_ms=1000)
    summary = _replay(conf, [topic], inlet_client(aep_emulator), window, max_records_per_run=5).run()
    assert (summary.stopped_by, summary.delivered, summary.filtered_by_timestamp) == ("end", 5, 2)
    assert _sent(aep_emulator) == [0, 1, 2, 3, 4]


@pytest.mark.integration
def test_replay_of_a_missing_topic_names_it(kafka_bootstrap, aep_emulator):
    conf = kafka_conf(kafka_bootstrap)
    missing = f"no-such-topic-{int(time.time())}"
    with pytest.raises(KafkaSetupError, match=f"Kafka topic '{missing}' cannot be read"):
        _replay(conf, [missing], inlet_client(aep_emulator), _window(0, 100)).run()
