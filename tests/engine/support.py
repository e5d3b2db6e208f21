"""Helpers shared by the engine and operator tests: produce test data, read it back, build a client."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable
from typing import Any

from confluent_kafka import Consumer, Producer, TopicPartition

from aep_provider.aep.ims import IMSTokenProvider
from aep_provider.aep.inlet import InletClient
from aep_provider.aep.ratelimit import RateLimiter
from aep_provider.aep.retry import RetryPolicy
from aep_provider.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_IMS_ORG_ID,
    DEFAULT_INLET_ID,
    AEPEmulator,
)
from aep_provider.engine.config import consumer_config


def message(topic: str, partition: int, seq: int) -> bytes:
    """A small, valid passthrough AEP message identifying where it was produced."""
    ref = {"id": "https://ns.adobe.com/test/schemas/e", "contentType": "application/vnd.adobe.xed-full+json;version=1"}
    return json.dumps(
        {
            "header": {"schemaRef": ref},
            "body": {"xdmMeta": {"schemaRef": ref}, "xdmEntity": {"p": partition, "n": seq}},
        },
        separators=(",", ":"),
    ).encode()


def _checked_producer(bootstrap: str, topic: str, **extra: Any) -> tuple[Producer, list[str], Any]:
    """A producer whose delivery failures land in the returned list; it knows the topic's partitions first."""
    # Idempotence keeps each partition's log in produce order even when a request is retried
    # (a loaded CI machine times requests out): tests compare arrival order with sequence numbers.
    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, **extra})
    # A producer with stale metadata fails records for partitions it does not know yet.
    producer.list_topics(topic, timeout=10)
    errors: list[str] = []

    def report(err, msg) -> None:
        if err is not None:
            errors.append(f"{msg.topic()}[{msg.partition()}]: {err}")

    producer.poll(0)
    return producer, errors, report


def produce(bootstrap: str, topic: str, partitions: int, per_partition: int, *, start: int = 0) -> None:
    """Produce ``per_partition`` messages to each partition, numbered ``start..``, and wait for all."""
    producer, errors, report = _checked_producer(
        bootstrap, topic, **{"linger.ms": 20, "batch.num.messages": 10000, "queue.buffering.max.messages": 500000}
    )
    for seq in range(start, start + per_partition):
        for p in range(partitions):
            producer.produce(topic, message(topic, p, seq), partition=p, on_delivery=report)
        if seq % 2000 == 0:
            producer.poll(0)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]


def produce_values(
    bootstrap: str, topic: str, values: Iterable[bytes | None], partition: int = 0, **extra: Any
) -> None:
    producer, errors, report = _checked_producer(bootstrap, topic, **extra)
    for value in values:
        producer.produce(topic, value, key=b"k", partition=partition, on_delivery=report)
    assert producer.flush(30) == 0
    assert not errors, errors[:3]


def received(emulator: AEPEmulator) -> dict[int, list[int]]:
    """Sequence numbers the emulator accepted, per partition, in arrival order."""
    out: dict[int, list[int]] = {}
    for msg in emulator.accepted():
        entity = msg["body"]["xdmEntity"]
        out.setdefault(entity["p"], []).append(entity["n"])
    return out


def kafka_conf(bootstrap: str, group: str | None = None, **extra: Any) -> dict[str, Any]:
    """Consumer settings as the engine builds them, with short group timeouts for tests."""
    base = {
        "bootstrap.servers": bootstrap,
        "group.id": group or f"g-{uuid.uuid4().hex[:10]}",
        "session.timeout.ms": 6000,
        "heartbeat.interval.ms": 500,
        **extra,
    }
    return consumer_config(base)


def committed(bootstrap: str, group: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        tps = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
        return {tp.partition: tp.offset for tp in tps}
    finally:
        consumer.close()


def end_offsets(bootstrap: str, topic: str, partitions: int) -> dict[int, int]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "x", "isolation.level": "read_committed"})
    try:
        return {
            p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10, cached=False)[1]
            for p in range(partitions)
        }
    finally:
        consumer.close()


def inlet_client(emulator: AEPEmulator, *, deadline: float = 10.0, max_attempts: int = 8) -> InletClient:
    """An InletClient for the emulator's default inlet, without rate limits, with a short deadline."""
    auth = IMSTokenProvider(client_id=DEFAULT_CLIENT_ID, client_secret=DEFAULT_CLIENT_SECRET, ims_url=emulator.url)
    return InletClient(
        inlet_id=DEFAULT_INLET_ID,
        inlet_url=emulator.url,
        auth=auth,
        client_id=DEFAULT_CLIENT_ID,
        ims_org_id=DEFAULT_IMS_ORG_ID,
        retry=RetryPolicy(
            deadline_seconds=deadline, max_attempts=max_attempts, backoff_base_seconds=0.05, backoff_max_seconds=0.5
        ),
        rate_limiter=RateLimiter(None, None),
        timeout=(2.0, 5.0),
    )


def dead_letters(bootstrap: str, topic: str, count: int, *, timeout: float = 10.0) -> list[Any]:
    """The first ``count`` records of dead-letter topic ``topic`` (partition 0); fails if fewer arrive."""
    reader = Consumer({"bootstrap.servers": bootstrap, "group.id": f"r-{uuid.uuid4().hex[:8]}"})
    reader.assign([TopicPartition(topic, 0, 0)])
    found = []
    try:
        while len(found) < count:
            msg = reader.poll(timeout)
            assert msg is not None and msg.error() is None, f"{len(found)} of {count} dead letters in {topic}"
            found.append(msg)
    finally:
        reader.close()
    return found
