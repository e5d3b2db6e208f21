"""
Redrives: the dead-letter topic's records sent again once the cause is fixed (real broker, the
emulator over HTTP). The rejection is AEP's own answer (an emulator fault rejecting records that
hold a marker), and the fix is lifting it.
"""

from __future__ import annotations

import json

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from aep_provider.emulator import DEFAULT_IMS_ORG_ID, Fault
from aep_provider.engine import DrainConfig, DrainEngine, KafkaRecord, RunSummary, record_id
from aep_provider.engine.dlq import (
    HEADER_OFFSET,
    HEADER_PARTITION,
    HEADER_REASON,
    HEADER_SOURCE_TIMESTAMP,
    HEADER_STATUS,
    HEADER_TOPIC,
    dead_letter_headers,
    original_record,
)
from aep_provider.engine.payload import XDMShaper
from aep_provider.engine.redrive import RedriveShaper, redrive_consumer_config, redrive_engine, redrive_group
from tests.engine.support import committed, end_offsets, inlet_client, kafka_conf

SCHEMA = "https://ns.adobe.com/test/schemas/redrive"
DATASET = "dataset-redrive"
MARKER = "reject-me"
FAST = {"kafka_timeout_seconds": 10.0, "assignment_timeout_seconds": 30.0, "stop_grace_seconds": 10.0}


def _shaper() -> XDMShaper:
    return XDMShaper(schema_id=SCHEMA, dataset_id=DATASET, ims_org_id=DEFAULT_IMS_ORG_ID)


def _config(dlq: str) -> DrainConfig:
    return DrainConfig(**FAST, dlq_topic=dlq)


def _drain(conf: dict, topic: str, dlq: str, emulator) -> RunSummary:
    return DrainEngine(
        consumer_conf=conf, topics=[topic], sender=inlet_client(emulator), config=_config(dlq), shaper=_shaper()
    ).run()


def _redrive(conf: dict, topic: str, dlq: str, emulator) -> RunSummary:
    return redrive_engine(
        consumer_conf=conf, source_topics=[topic], sender=inlet_client(emulator), config=_config(dlq), shaper=_shaper()
    ).run()


def _produce(bootstrap: str, topic: str, values: dict[int, list[bytes]]) -> None:
    """Values per partition, each record with a header of its own (a redrive must give it back)."""
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True})
    for partition, items in values.items():
        for n, value in enumerate(items):
            producer.produce(topic, value, key=f"k{n}".encode(), partition=partition, headers=[("trace", f"t{n}")])
    assert producer.flush(30) == 0


def _entity(partition: int, n: int, bad: bool = False) -> bytes:
    return json.dumps({"p": partition, "n": n, **({"flag": MARKER} if bad else {})}).encode()


def _read_all(bootstrap: str, topic: str, partitions: int) -> list:
    ends = end_offsets(bootstrap, topic, partitions)
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": "reader", "enable.partition.eof": False})
    reader.assign([TopicPartition(topic, p, 0) for p in range(partitions)])
    out = []
    try:
        while len(out) < sum(ends.values()):
            msg = reader.poll(10)
            assert msg is not None and msg.error() is None, "the dead-letter topic did not give back every record"
            out.append(msg)
    finally:
        reader.close()
    return out


def _by_id(emulator) -> dict[str, dict]:
    return {m["body"]["xdmEntity"]["_id"]: m for m in emulator.accepted()}


def test_a_redrive_sends_dead_letters_again_with_their_original_id_and_commits_the_dlq_end(
    kafka_bootstrap, make_topic, aep_emulator
):
    topic, dlq = make_topic(partitions=2), make_topic(partitions=2, prefix="dlq")
    values = {p: [_entity(p, n, bad=n in (1, 4)) for n in range(6)] for p in range(2)}
    _produce(kafka_bootstrap, topic, values)
    # A record of another topic shares the dead-letter topic, and one record is not a dead letter at all.
    foreign = KafkaRecord("other-topic", 0, 7, b"x", _entity(9, 9), [])
    stray = Producer({"bootstrap.servers": kafka_bootstrap})
    stray.produce(dlq, foreign.value, partition=0, headers=dead_letter_headers(foreign, 400, "elsewhere"))
    stray.produce(dlq, b"written by hand", partition=1)
    assert stray.flush(30) == 0
    conf = kafka_conf(kafka_bootstrap)
    aep_emulator.inject(Fault(reject_if_contains=MARKER, count=None, endpoint="batch"))

    drained = _drain(conf, topic, dlq, aep_emulator)
    assert (drained.delivered, drained.rejected, drained.dead_lettered) == (8, 4, 4)
    dead_ids = {record_id(topic, p, n) for p in range(2) for n in (1, 4)}
    assert dead_ids.isdisjoint(_by_id(aep_emulator))

    aep_emulator.reset()  # the cause is fixed: AEP takes those records now
    summary = _redrive(conf, topic, dlq, aep_emulator)

    accepted = _by_id(aep_emulator)
    assert set(accepted) == dead_ids  # the ids the drain gave them: AEP deduplicates a record sent twice
    for p in range(2):
        for n in (1, 4):
            entity = accepted[record_id(topic, p, n)]["body"]["xdmEntity"]
            assert (entity["p"], entity["n"], entity["flag"]) == (p, n, MARKER)
    assert summary.mode == "redrive" and summary.group_id == redrive_group(conf["group.id"])
    assert (summary.redriven, summary.delivered, summary.rejected, summary.skipped) == (6, 4, 0, 2)
    data = summary.to_dict()
    assert (data["mode"], data["redriven"], data["dlq_topic"], data["lag"]) == ("redrive", 6, dlq, 0)
    skipped = sorted(m[3] for part in data["partitions"].values() for m in part.get("marks", []))
    assert skipped == ["another task's topic", "not a dead letter"]
    assert committed(kafka_bootstrap, redrive_group(conf["group.id"]), dlq, 2) == end_offsets(kafka_bootstrap, dlq, 2)
    # The drain's own group is untouched.
    assert committed(kafka_bootstrap, conf["group.id"], topic, 2) == {0: 6, 1: 6}

    again = _redrive(conf, topic, dlq, aep_emulator)
    assert (again.redriven, again.delivered, again.requests) == (0, 0, 0)
    assert len(aep_emulator.accepted()) == 4


def test_records_rejected_again_go_back_to_the_dlq_as_the_originals_and_wait_for_the_next_redrive(
    kafka_bootstrap, make_topic, aep_emulator
):
    topic, dlq = make_topic(partitions=1), make_topic(partitions=1, prefix="dlq")
    values = {0: [_entity(0, 0), _entity(0, 1, bad=True), b"{not json", _entity(0, 3, bad=True), _entity(0, 4)]}
    _produce(kafka_bootstrap, topic, values)
    conf = kafka_conf(kafka_bootstrap)
    aep_emulator.inject(Fault(reject_if_contains=MARKER, count=None, endpoint="batch", message="still wrong"))
    _drain(conf, topic, dlq, aep_emulator)
    first = _read_all(kafka_bootstrap, dlq, 1)
    assert len(first) == 3

    # Nothing fixed yet: every dead letter is rejected again, once, and goes back.
    summary = _redrive(conf, topic, dlq, aep_emulator)
    assert (summary.redriven, summary.delivered, summary.rejected, summary.dead_lettered) == (3, 0, 3, 3)
    assert summary.rejected_by_reason == {"AEP 400": 2, "invalid JSON": 1}
    assert committed(kafka_bootstrap, redrive_group(conf["group.id"]), dlq, 1) == {0: 3}
    assert end_offsets(kafka_bootstrap, dlq, 1) == {0: 6}
    back = _read_all(kafka_bootstrap, dlq, 1)[3:]
    for before, after in zip(first, back, strict=True):
        was, now = dict(before.headers()), dict(after.headers())
        # The original coordinates, timestamp and headers, once; a fresh reason.
        for name in (HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET, HEADER_SOURCE_TIMESTAMP, "trace"):
            assert now[name] == was[name], name
        assert [k for k, _ in after.headers()].count("trace") == 1
        assert (after.key(), after.value()) == (before.key(), before.value())
        if now[HEADER_STATUS] == b"400":
            assert b"still wrong" in now[HEADER_REASON]

    # Fixed (AEP takes them; the record that is not JSON never will): the next redrive reads the three put back.
    aep_emulator.reset()
    summary = _redrive(conf, topic, dlq, aep_emulator)
    assert (summary.redriven, summary.delivered, summary.rejected, summary.dead_lettered) == (3, 2, 1, 1)
    assert set(_by_id(aep_emulator)) == {record_id(topic, 0, 1), record_id(topic, 0, 3)}
    assert committed(kafka_bootstrap, redrive_group(conf["group.id"]), dlq, 1) == {0: 6}


def test_original_record_reads_back_what_the_writer_stored():
    record = KafkaRecord("orders", 3, 1234, b"key", b"{}", [("trace", b"t1"), ("empty", None)], timestamp_ms=1_700_000)
    headers = [
        (k, v if isinstance(v, bytes) or v is None else v.encode()) for k, v in dead_letter_headers(record, 400, "x")
    ]
    dead = KafkaRecord("orders.dlq", 0, 5, b"key", b"{}", headers, timestamp_ms=1_800_000)
    assert original_record(dead) == KafkaRecord("orders", 3, 1234, b"key", b"{}", [("trace", b"t1")], 1_700_000)
    # Written before the source timestamp header existed: the dead letter's own timestamp stands in.
    older = KafkaRecord("orders.dlq", 0, 6, None, b"{}", [h for h in headers if h[0] != HEADER_SOURCE_TIMESTAMP], 9)
    assert original_record(older).timestamp_ms == 9
    for broken in ([], [(HEADER_TOPIC, b"orders"), (HEADER_PARTITION, b"3")], [*headers[:-6], (HEADER_OFFSET, b"x")]):
        assert original_record(KafkaRecord("orders.dlq", 0, 7, None, b"{}", broken)) is None


def test_the_redrive_shaper_builds_the_message_of_the_original_record():
    record = KafkaRecord("orders", 3, 1234, None, b'{"a": 1}', [])
    dead = KafkaRecord(
        "orders.dlq", 0, 5, None, b'{"a": 1}', [(k, v) for k, v in dead_letter_headers(record, 400, "x")]
    )  # type: ignore[misc]
    shaped = RedriveShaper(_shaper(), ["orders"]).shape(dead)
    assert shaped.message == _shaper().shape(record).message
    assert RedriveShaper(_shaper(), ["payments"]).shape(dead).skip_label == "another task's topic"


def test_the_redrive_group_is_the_drain_group_with_a_suffix_and_reads_from_the_start():
    conf = redrive_consumer_config({"group.id": "aep-ingest", "auto.offset.reset": "latest", "bootstrap.servers": "b"})
    assert (conf["group.id"], conf["auto.offset.reset"], conf["bootstrap.servers"]) == (
        "aep-ingest.dlq-redrive", "earliest", "b",
    )  # fmt: skip
    with pytest.raises(ValueError, match="needs dlq_topic"):
        redrive_engine(consumer_conf=conf, source_topics=["t"], sender=None, config=DrainConfig())  # type: ignore[arg-type]
