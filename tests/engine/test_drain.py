"""The drain engine against a real Kafka broker and the AEP emulator over HTTP."""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition
from confluent_kafka.admin import AdminClient

from aep_provider.aep.errors import AEPAuthError
from aep_provider.aep.results import BatchResult, MessageResult, Outcome
from aep_provider.emulator import Fault
from aep_provider.engine import (
    DrainConfig,
    DrainEngine,
    DrainError,
    KafkaSetupError,
    KafkaUnavailableError,
    RecordRejectedError,
    RunStopped,
)
from aep_provider.engine.dlq import HEADER_OFFSET, HEADER_PARTITION, HEADER_REASON, HEADER_STATUS, HEADER_TOPIC
from aep_provider.engine.errors import DeadLetterError
from tests.engine.support import (
    GatedConsumer,
    committed,
    end_offsets,
    inlet_client,
    kafka_conf,
    message,
    produce,
    produce_values,
    received,
)

pytestmark = pytest.mark.integration

FAST = {"kafka_timeout_seconds": 10.0, "assignment_timeout_seconds": 30.0, "stop_grace_seconds": 10.0}


def _engine(conf, topic, sender, **cfg) -> DrainEngine:
    return DrainEngine(consumer_conf=conf, topics=[topic], sender=sender, config=DrainConfig(**{**FAST, **cfg}))


def test_100k_events_over_6_partitions_drain_exactly_once_in_order(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=6)
    per_partition = 16_667  # 100,002 events
    produce(kafka_bootstrap, topic, 6, per_partition)
    conf = kafka_conf(kafka_bootstrap)

    summary = _engine(conf, topic, inlet_client(aep_emulator), max_in_flight=4).run()

    got = received(aep_emulator)
    assert {p: got[p] for p in range(6)} == {p: list(range(per_partition)) for p in range(6)}
    snapshot_ends = {p: summary.partition(topic, p).end for p in range(6)}
    assert snapshot_ends == {p: per_partition for p in range(6)}
    assert committed(kafka_bootstrap, conf["group.id"], topic, 6) == snapshot_ends
    assert summary.delivered == 6 * per_partition and summary.lag == 0
    assert summary.requests >= 6 * per_partition // DrainConfig().max_batch_records  # no batch over the cap


def test_transactions_only_committed_records_arrive_and_the_run_ends(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    txn = Producer({"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{uuid.uuid4().hex}"})
    txn.init_transactions(10)

    def transaction(seqs, commit: bool) -> None:
        txn.begin_transaction()
        for seq in seqs:
            txn.produce(topic, message(topic, 0, seq), partition=0)
        txn.flush(10)  # an abort would otherwise purge unsent records: they must reach the log
        (txn.commit_transaction if commit else txn.abort_transaction)(10)

    transaction(range(10), commit=True)
    transaction(range(100, 105), commit=False)
    transaction(range(10, 20), commit=True)
    transaction(range(200, 205), commit=False)  # aborted tail: markers and aborted records only
    # A transaction still open at run start: its records lie beyond the last stable offset.
    txn.begin_transaction()
    for seq in range(300, 305):
        txn.produce(topic, message(topic, 0, seq), partition=0)
    txn.flush(10)
    high = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "hw", "isolation.level": "read_uncommitted"})
    _, high_watermark = high.get_watermark_offsets(TopicPartition(topic, 0), timeout=10, cached=False)
    high.close()
    conf = kafka_conf(kafka_bootstrap)

    summary = _engine(conf, topic, inlet_client(aep_emulator)).run()

    assert received(aep_emulator) == {0: list(range(20))}
    end = summary.partition(topic, 0).end
    # The snapshot is the last stable offset: 20 records + 4 markers + 10 aborted, before the open transaction.
    assert end == 34 < high_watermark
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: end}

    txn.abort_transaction(10)
    aep_emulator.reset()
    second = _engine(conf, topic, inlet_client(aep_emulator)).run()
    assert second.delivered == 0
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: end_offsets(kafka_bootstrap, topic, 1)[0]}


def test_throttling_and_503_are_retried_without_duplicates(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, 2, 500)
    aep_emulator.inject(Fault(status=503, count=3, retry_after=0.1, endpoint="batch"))
    aep_emulator.inject(Fault(status=429, count=2, endpoint="batch"))

    summary = _engine(kafka_conf(kafka_bootstrap), topic, inlet_client(aep_emulator), max_batch_records=100).run()

    assert received(aep_emulator) == {0: list(range(500)), 1: list(range(500))}
    assert summary.retries >= 5 and summary.throttled >= 2


def test_inlet_down_past_deadline_fails_then_next_run_delivers_the_rest(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 1000)
    conf = kafka_conf(kafka_bootstrap)
    client = inlet_client(aep_emulator, deadline=1.0, max_attempts=4)

    class OutageAfterThreeBatches:
        """The real client; before its 4th batch the emulator starts answering 503 (for 4 requests)."""

        calls = 0

        def send_batch(self, messages):
            self.calls += 1
            if self.calls == 4:
                aep_emulator.inject(Fault(status=503, count=4, endpoint="batch"))
            return client.send_batch(messages)

    with pytest.raises(DrainError, match=rf"{topic}\[0\].*503"):
        _engine(conf, topic, OutageAfterThreeBatches(), max_batch_records=100, max_in_flight=1).run()
    assert received(aep_emulator) == {0: list(range(300))}
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 300}

    _engine(conf, topic, client, max_batch_records=100).run()
    assert received(aep_emulator) == {0: list(range(1000))}


class ScriptedSender:
    """In-memory AEP: accepts everything, except that batch number ``bad_batch`` gets ``outcome``/raises."""

    def __init__(self, bad_batch: int, outcome: Outcome | None = None, error: Exception | None = None) -> None:
        self.bad_batch, self.outcome, self.error = bad_batch, outcome, error
        self.calls = 0
        self.accepted: list[bytes] = []

    def send_batch(self, messages):
        self.calls += 1
        if self.calls == self.bad_batch:
            if self.error is not None:
                raise self.error
            results = [MessageResult(Outcome.ACCEPTED)] * 2 + [MessageResult(self.outcome, status=503, message="busy")]
            results += [MessageResult(Outcome.ACCEPTED)] * (len(messages) - 3)
        else:
            results = [MessageResult(Outcome.ACCEPTED)] * len(messages)
        self.accepted += [m for m, r in zip(messages, results) if r.accepted]
        return BatchResult(results=results, requests=1)


@pytest.mark.parametrize(
    ("sender", "match", "committed_to"),
    [
        # The 3rd message of the 2nd batch (offset 12) was still failing: commit stops right before it.
        (
            ScriptedSender(2, outcome=Outcome.RETRYABLE),
            r"status 503 for t-\w+\[0\]@12 when the retry budget ran out",
            12,
        ),
        # The whole 3rd batch failed: nothing of it is acknowledged.
        (
            ScriptedSender(3, error=AEPAuthError("IMS refused the client credentials")),
            "IMS refused the client credentials",
            20,
        ),
    ],
    ids=["retryable-result", "client-error"],
)
def test_sender_failures_fail_the_run_and_commit_only_the_acknowledged_prefix(
    kafka_bootstrap, make_topic, sender, match, committed_to
):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 50)
    conf = kafka_conf(kafka_bootstrap)
    with pytest.raises(DrainError, match=match):
        _engine(conf, topic, sender, max_batch_records=10, max_in_flight=1).run()
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: committed_to}


def test_dlq_write_failure_fails_the_run_before_the_record(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    dlq = make_topic(partitions=1, config={"max.message.bytes": "1000"}, prefix="dlq")
    produce_values(kafka_bootstrap, topic, [message(topic, 0, 0), b"not json " + b"x" * 5000, message(topic, 0, 2)])
    conf = kafka_conf(kafka_bootstrap)
    with pytest.raises(DeadLetterError, match=rf"{topic}\[0\]@1 to dead-letter topic '{dlq}' failed"):
        _engine(conf, topic, inlet_client(aep_emulator), dlq_topic=dlq).run()
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 1}


def _poison_values() -> list[bytes | None]:
    good = [message("poison", 0, n) for n in range(3)]
    return [
        good[0],
        b"{not json",  # 1
        good[1],
        json.dumps({"no": "header"}).encode(),  # 3: AEP rejects it per message
        b"\xff\xfe\x00",  # 4: not UTF-8
        json.dumps({"header": {}, "body": {"pad": "x" * 1_100_000}}).encode(),  # 5: over 1 MB
        None,  # 6: tombstone
        good[2],
    ]


@pytest.fixture
def poison_topic(kafka_bootstrap, make_topic) -> str:
    topic = make_topic(partitions=1, config={"max.message.bytes": "2000000"})
    produce_values(kafka_bootstrap, topic, _poison_values(), **{"message.max.bytes": 2_100_000})
    return topic


def test_poison_records_go_to_the_dlq_with_reasons_and_the_run_goes_on(
    kafka_bootstrap, make_topic, poison_topic, aep_emulator
):
    dlq = make_topic(partitions=1, config={"max.message.bytes": "2000000"}, prefix="dlq")
    conf = kafka_conf(kafka_bootstrap)

    summary = _engine(conf, poison_topic, inlet_client(aep_emulator), dlq_topic=dlq).run()

    assert received(aep_emulator) == {0: [0, 1, 2]}
    assert (summary.delivered, summary.rejected, summary.dead_lettered, summary.tombstones) == (3, 4, 4, 1)
    assert committed(kafka_bootstrap, conf["group.id"], poison_topic, 1) == {0: 8}
    # Where each record went, as offset ranges: what "where is this record?" reads from the history.
    assert summary.to_dict()["partitions"][f"{poison_topic}[0]"]["marks"] == [
        [1, 2, "dead_lettered", "invalid JSON"],
        [3, 4, "dead_lettered", "AEP 400"],
        [4, 5, "dead_lettered", "not UTF-8"],
        [5, 6, "dead_lettered", "over 1 MB"],
        [6, 7, "skipped", "tombstone"],
    ]
    assert (summary.group_id, summary.dlq_topic) == (conf["group.id"], dlq)
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "r", "auto.offset.reset": "earliest"})
    reader.assign([TopicPartition(dlq, 0, 0)])
    dead = []
    while len(dead) < 4:
        msg = reader.poll(10)
        assert msg is not None and msg.error() is None
        dead.append(msg)
    reader.close()
    values = _poison_values()
    by_offset = {}
    for msg in dead:
        headers = {k: v.decode() for k, v in msg.headers()}
        assert headers[HEADER_TOPIC] == poison_topic and headers[HEADER_PARTITION] == "0"
        offset = int(headers[HEADER_OFFSET])
        assert msg.value() == values[offset] and msg.key() == b"k"
        by_offset[offset] = headers
    assert sorted(by_offset) == [1, 3, 4, 5]
    assert "not valid JSON" in by_offset[1][HEADER_REASON]
    assert by_offset[3][HEADER_STATUS] == "400" and "header" in by_offset[3][HEADER_REASON].lower()
    assert "not valid UTF-8" in by_offset[4][HEADER_REASON]
    assert "1,000,000 bytes" in by_offset[5][HEADER_REASON]


def test_no_dlq_fail_names_the_record_and_commits_up_to_it(kafka_bootstrap, poison_topic, aep_emulator):
    conf = kafka_conf(kafka_bootstrap)
    with pytest.raises(RecordRejectedError, match=rf"{poison_topic}\[0\]@1 .*not valid JSON") as info:
        _engine(conf, poison_topic, inlet_client(aep_emulator)).run()
    assert (info.value.topic, info.value.partition, info.value.offset) == (poison_topic, 0, 1)
    assert committed(kafka_bootstrap, conf["group.id"], poison_topic, 1) == {0: 1}


def test_aep_rejection_without_dlq_fails_at_its_offset(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce_values(
        kafka_bootstrap, topic, [message(topic, 0, 0), message(topic, 0, 1), b'{"no": "header"}', message(topic, 0, 3)]
    )
    conf = kafka_conf(kafka_bootstrap)
    with pytest.raises(RecordRejectedError, match=rf"{topic}\[0\]@2 was rejected \(status 400"):
        _engine(conf, topic, inlet_client(aep_emulator)).run()
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 2}


def test_on_reject_skip_counts_and_goes_on(kafka_bootstrap, poison_topic, aep_emulator, caplog):
    conf = kafka_conf(kafka_bootstrap)
    with caplog.at_level(logging.WARNING, logger="aep_provider.engine"):
        summary = _engine(conf, poison_topic, inlet_client(aep_emulator), on_reject="skip").run()
    assert (summary.delivered, summary.rejected, summary.skipped) == (3, 4, 1)
    assert committed(kafka_bootstrap, conf["group.id"], poison_topic, 1) == {0: 8}
    marks = summary.to_dict()["partitions"][f"{poison_topic}[0]"]["marks"]
    assert [(m[0], m[2]) for m in marks] == [
        (1, "skipped"),
        (3, "skipped"),
        (4, "skipped"),
        (5, "skipped"),
        (6, "skipped"),
    ]
    skipped = [r.getMessage() for r in caplog.records if "skipped (on_reject='skip')" in r.getMessage()]
    assert len(skipped) == 4
    # Rejected contents appear at most as a short prefix.
    assert all(len(line) < 600 for line in skipped)


def test_three_instances_on_one_group_split_partitions_exactly_once(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=6)
    per_partition = 2000
    produce(kafka_bootstrap, topic, 6, per_partition)
    conf = kafka_conf(kafka_bootstrap)
    # Nothing is read until all three have joined and the group has settled on a split: which
    # instance gets what no longer depends on how fast each thread starts (CI runs on 2 cores).
    gate = threading.Event()
    consumers: list[GatedConsumer] = []
    summaries, errors = [], []

    def gated(conf):
        consumer = GatedConsumer(conf, gate)
        consumers.append(consumer)
        return consumer

    def instance() -> None:
        engine = _engine(conf, topic, inlet_client(aep_emulator), max_batch_records=100, max_in_flight=2)
        engine._consumer_factory = gated
        try:
            summaries.append(engine.run())
        except Exception as err:  # surfaced by the assertion below
            errors.append(err)

    threads = [threading.Thread(target=instance) for _ in range(3)]
    for t in threads:
        t.start()
    give_up = time.monotonic() + 60
    while time.monotonic() < give_up and not errors:
        owned = [c.owned() for c in list(consumers)]
        if len(owned) == 3 and all(owned) and sorted(p for o in owned for p in o) == list(range(6)):
            break
        time.sleep(0.05)
    split = [sorted(c.owned()) for c in consumers]
    gate.set()
    for t in threads:
        t.join(120)
    assert not errors
    assert len(summaries) == 3
    # Each instance held a non-empty, disjoint share of the six partitions.
    assert len(split) == 3 and all(split) and sorted(p for s in split for p in s) == list(range(6)), split
    got = received(aep_emulator)
    assert {p: sorted(got[p]) for p in range(6)} == {p: list(range(per_partition)) for p in range(6)}
    assert sorted(s.delivered > 0 for s in summaries) == [True, True, True], [s.to_dict() for s in summaries]
    assert sum(s.delivered for s in summaries) == 6 * per_partition
    assert committed(kafka_bootstrap, conf["group.id"], topic, 6) == {p: per_partition for p in range(6)}


def test_members_joining_and_leaving_mid_run_end_cleanly_and_lose_nothing(
    kafka_bootstrap, make_topic, aep_emulator, caplog
):
    topic = make_topic(partitions=6)
    per_partition = 1000
    produce(kafka_bootstrap, topic, 6, per_partition)
    aep_emulator.inject(Fault(delay_seconds=0.02, count=None, endpoint="batch"))
    conf = kafka_conf(kafka_bootstrap)
    summaries, errors = [], []

    def instance(delay: float, limit: int | None) -> None:
        time.sleep(delay)
        engine = _engine(
            conf, topic, inlet_client(aep_emulator), max_batch_records=100, max_in_flight=2, max_records_per_run=limit
        )
        try:
            summaries.append(engine.run())
        except Exception as err:  # surfaced by the assertion below
            errors.append(err)

    # Staggered joins, two members leaving early (record limits): rebalance rounds keep coming
    # while others drain or close. A member that closes while a round still hands it partitions
    # used to wait out kafka_timeout_seconds reading their offsets, then warn.
    threads = [threading.Thread(target=instance, args=a) for a in [(0, None), (0.3, 300), (0.6, None), (1.5, 200)]]
    with caplog.at_level(logging.INFO, logger="aep_provider.engine"):
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors and len(summaries) == 4
        # Partitions a closing member was handed, and what the limits left, wait for the next run.
        _engine(conf, topic, inlet_client(aep_emulator), max_batch_records=500).run()
    assert not [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    got = received(aep_emulator)
    assert {p: sorted(set(got[p])) for p in range(6)} == {p: list(range(per_partition)) for p in range(6)}
    assert committed(kafka_bootstrap, conf["group.id"], topic, 6) == {p: per_partition for p in range(6)}


def test_records_produced_after_the_snapshot_wait_for_the_next_run(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 200)
    client = inlet_client(aep_emulator)

    class ProduceMoreOnFirstSend:
        produced = False

        def send_batch(self, messages):
            if not self.produced:
                self.produced = True
                produce(kafka_bootstrap, topic, 1, 100, start=200)
            return client.send_batch(messages)

    conf = kafka_conf(kafka_bootstrap)
    first = _engine(conf, topic, ProduceMoreOnFirstSend(), max_batch_records=50).run()
    assert received(aep_emulator) == {0: list(range(200))}
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 200}
    assert first.partition(topic, 0).end == 200

    _engine(conf, topic, client).run()
    assert received(aep_emulator) == {0: list(range(300))}


def test_committed_offset_below_log_start_warns_and_continues(kafka_bootstrap, make_topic, aep_emulator, caplog):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 100)
    conf = kafka_conf(kafka_bootstrap)
    setter = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": conf["group.id"]})
    setter.commit(offsets=[TopicPartition(topic, 0, 10)], asynchronous=False)
    setter.close()
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    for future in admin.delete_records([TopicPartition(topic, 0, 50)]).values():
        future.result(10)

    with caplog.at_level(logging.WARNING, logger="aep_provider.engine"):
        summary = _engine(conf, topic, inlet_client(aep_emulator)).run()

    assert received(aep_emulator) == {0: list(range(50, 100))}
    assert summary.partition(topic, 0).lost_to_retention == 40
    assert any("40 record(s) were deleted by retention" in r.getMessage() for r in caplog.records)
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 100}


def test_max_records_per_run_stops_cleanly_and_leaves_the_rest(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 1000)
    conf = kafka_conf(kafka_bootstrap)
    summary = _engine(conf, topic, inlet_client(aep_emulator), max_records_per_run=250, max_batch_records=100).run()
    assert summary.stopped_by == "max_records_per_run"
    assert received(aep_emulator) == {0: list(range(250))}
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 250}
    assert summary.partition(topic, 0).lag == 750


def test_a_record_limit_reached_exactly_at_the_snapshot_end_is_a_complete_run(
    kafka_bootstrap, make_topic, aep_emulator
):
    """max_records_per_run stops a run only when a record past it was waiting: 250 of 250 is the end."""
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, 2, 125)
    conf = kafka_conf(kafka_bootstrap)
    summary = _engine(conf, topic, inlet_client(aep_emulator), max_records_per_run=250, max_batch_records=100).run()
    assert (summary.stopped_by, summary.delivered, summary.lag) == ("end", 250, 0)
    assert committed(kafka_bootstrap, conf["group.id"], topic, 2) == {0: 125, 1: 125}


def test_max_run_seconds_stops_cleanly_with_acknowledged_offsets_committed(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 5000)
    aep_emulator.inject(Fault(delay_seconds=0.1, count=None, endpoint="batch"))  # 10 s of work
    conf = kafka_conf(kafka_bootstrap)
    summary = _engine(
        conf, topic, inlet_client(aep_emulator), max_run_seconds=3.0, max_batch_records=50, max_in_flight=1
    ).run()
    assert summary.stopped_by == "max_run_seconds"
    delivered = len(aep_emulator.accepted())
    assert 0 < delivered < 5000 and summary.delivered == delivered
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: delivered}
    assert summary.partition(topic, 0).lag == 5000 - delivered


def test_an_instance_left_without_partitions_ends_and_nothing_is_sent_twice(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 1500)
    aep_emulator.inject(Fault(delay_seconds=0.03, count=None, endpoint="batch"))
    conf = kafka_conf(kafka_bootstrap)
    summaries = []
    first = threading.Thread(
        target=lambda: summaries.append(_engine(conf, topic, inlet_client(aep_emulator), max_batch_records=50).run())
    )
    first.start()
    give_up = time.monotonic() + 60
    while len(aep_emulator.accepted()) < 100 and first.is_alive() and time.monotonic() < give_up:
        time.sleep(0.02)
    # Joins while the first one drains: the group gives the single partition to one of them.
    summaries.append(_engine(conf, topic, inlet_client(aep_emulator), max_batch_records=50).run())
    first.join(60)
    assert not first.is_alive()
    assert received(aep_emulator) == {0: list(range(1500))}
    assert sum(s.delivered for s in summaries) == 1500
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 1500}


def test_stop_request_ends_promptly_and_commits_what_was_acknowledged(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 5000)
    aep_emulator.inject(Fault(delay_seconds=0.2, count=None, endpoint="batch"))
    conf = kafka_conf(kafka_bootstrap)
    client = inlet_client(aep_emulator)
    engine = _engine(conf, topic, client, max_batch_records=100, max_in_flight=1)
    first_sent = threading.Event()

    class Watch:
        def send_batch(self, messages):
            first_sent.set()
            return client.send_batch(messages)

    engine.sender = Watch()
    result = {}

    def run() -> None:
        try:
            result["summary"] = engine.run()
        except DrainError as err:
            result["error"] = err

    runner = threading.Thread(target=run)
    runner.start()
    assert first_sent.wait(30)
    engine.stop()
    runner.join(30)
    assert not runner.is_alive()
    # Stopped before the end: a failure (never a green run), retryable, after the commit.
    assert isinstance(result.get("error"), RunStopped) and result["error"].retryable, result
    assert "was stopped before it finished" in str(result["error"])
    summary = engine.summary
    assert summary.stopped_by == "stop requested"
    delivered = len(aep_emulator.accepted())
    assert 0 < delivered < 5000
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: delivered}


def test_missing_topic_is_one_clear_error(kafka_bootstrap, aep_emulator):
    name = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    with pytest.raises(KafkaSetupError, match=rf"topic '{name}' cannot be read.*create it") as info:
        _engine(kafka_conf(kafka_bootstrap), name, inlet_client(aep_emulator)).run()
    assert not info.value.retryable  # creating the topic takes a person, not a task retry


@pytest.mark.timeout(30)  # kafka_timeout_seconds=2 plus margin: a hang fails the test instead of the suite
def test_unreachable_broker_is_one_clear_error_in_bounded_time(aep_emulator):
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    conf = kafka_conf(f"127.0.0.1:{port}")
    with pytest.raises(
        KafkaSetupError, match=rf"bootstrap.servers='127.0.0.1:{port}' did not answer within 2s"
    ) as info:
        _engine(conf, "events", inlet_client(aep_emulator), kafka_timeout_seconds=2.0).run()
    assert isinstance(info.value, KafkaUnavailableError) and info.value.retryable
    assert info.value.__cause__ is None
