"""Dead-letter topic writer: a rejected record counts as settled only after the broker acknowledged it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, ConfigResource

from aep_provider.engine.config import client_config
from aep_provider.engine.errors import DeadLetterError, KafkaSetupError, KafkaUnavailableError
from aep_provider.engine.payload import KafkaRecord

log = logging.getLogger(__name__)

#: Delivery errors no retry fixes: the dead-letter topic is missing or this client may not write it.
_UNWRITABLE = frozenset(
    {
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError.MSG_SIZE_TOO_LARGE,
    }
)

#: Header names added to each dead-lettered record.
HEADER_TOPIC = "aep.source.topic"
HEADER_PARTITION = "aep.source.partition"
HEADER_OFFSET = "aep.source.offset"
HEADER_STATUS = "aep.error.status"
HEADER_REASON = "aep.error.reason"
HEADER_TIMESTAMP = "aep.error.timestamp"
#: The source record's own timestamp (the dead letter's is when it was written).
HEADER_SOURCE_TIMESTAMP = "aep.source.timestamp"

#: Every header the writer adds: a redrive removes them to get the original record's headers back.
DEAD_LETTER_HEADERS = frozenset(
    {
        HEADER_TOPIC,
        HEADER_PARTITION,
        HEADER_OFFSET,
        HEADER_SOURCE_TIMESTAMP,
        HEADER_STATUS,
        HEADER_REASON,
        HEADER_TIMESTAMP,
    }
)

#: AEP's message can echo parts of the record; keep the header short.
MAX_REASON_CHARS = 1000


def dead_letter_headers(record: KafkaRecord, status: int | None, reason: str) -> list[tuple[str, str | bytes | None]]:
    """The original headers followed by where the record came from and why it was rejected."""
    # Typed as Producer.produce() takes them (a list is invariant in its item type).
    headers: list[tuple[str, str | bytes | None]] = [(k, v) for k, v in record.headers if v is not None]
    headers += [
        (HEADER_TOPIC, record.topic.encode()),
        (HEADER_PARTITION, str(record.partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
    ]
    if record.timestamp_ms is not None:
        headers.append((HEADER_SOURCE_TIMESTAMP, str(record.timestamp_ms).encode()))
    headers += [
        (HEADER_STATUS, str(status if status is not None else "").encode()),
        (HEADER_REASON, reason[:MAX_REASON_CHARS].encode("utf-8", "replace")),
        (HEADER_TIMESTAMP, str(int(time.time() * 1000)).encode()),
    ]
    return headers


def _header(headers: list[tuple[str, bytes | None]], name: str) -> str | None:
    for key, value in reversed(headers):  # the writer appends its own headers last
        if key == name and value is not None:
            return value.decode("utf-8", "replace")
    return None


def original_record(dead_letter: KafkaRecord) -> KafkaRecord | None:
    """
    The record a dead letter was made from: its source topic, partition, offset and timestamp (from
    the ``aep.source.*`` headers) and its own headers (without the ones :func:`dead_letter_headers`
    added); None when the record carries no valid ``aep.source.*`` headers (it is not a dead letter).
    """
    headers = dead_letter.headers
    topic, partition, offset = (_header(headers, h) for h in (HEADER_TOPIC, HEADER_PARTITION, HEADER_OFFSET))
    if not topic or partition is None or offset is None or not partition.isdigit() or not offset.isdigit():
        return None
    stamp = _header(headers, HEADER_SOURCE_TIMESTAMP)
    return KafkaRecord(
        topic=topic,
        partition=int(partition),
        offset=int(offset),
        key=dead_letter.key,
        value=dead_letter.value,
        headers=[(k, v) for k, v in headers if k not in DEAD_LETTER_HEADERS],
        timestamp_ms=int(stamp) if stamp and stamp.lstrip("-").isdigit() else dead_letter.timestamp_ms,
    )


class DeadLetterWriter:
    """
    Produces rejected records (original key and value) to ``topic`` with an idempotent, acks=all producer.

    Delivery reports are served by :meth:`poll`/:meth:`flush` on the caller's thread; ``on_done``
    runs once per record, after the broker acknowledged it.

    :param config: producer configuration (see :func:`~aep_provider.engine.config.producer_config`).
    :param topic: the dead-letter topic.
    :param redrive: the records are themselves dead letters (a redrive): one rejected again goes
        back with the coordinates and headers of the record it was first made from.
    """

    def __init__(self, config: Mapping[str, Any], topic: str, *, redrive: bool = False) -> None:
        self.topic = topic
        self._redrive = redrive
        self._producer = Producer(dict(config))
        self._failure: str | None = None
        self._retryable = True
        self.pending = 0

    def send(self, record: KafkaRecord, status: int | None, reason: str, on_done: Callable[[], None]) -> None:
        def report(err: KafkaError | None, _msg: Any) -> None:
            self.pending -= 1
            if err is not None:
                if self._failure is None:
                    self._retryable = err.code() not in _UNWRITABLE
                self._failure = self._failure or (
                    f"writing {record.topic}[{record.partition}]@{record.offset} to dead-letter topic "
                    f"{self.topic!r} failed: {err.str()}"
                )
            else:
                on_done()

        self.pending += 1
        source = (original_record(record) or record) if self._redrive else record
        headers = dead_letter_headers(source, status, reason)
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=record.value,
                    key=record.key,
                    headers=headers,
                    on_delivery=report,
                )
                break
            except BufferError:
                self._producer.poll(0.1)
            except KafkaException as err:
                self.pending -= 1
                raise DeadLetterError(f"cannot write to dead-letter topic {self.topic!r}: {err}") from None
        self._producer.poll(0)
        self.raise_if_failed()

    def poll(self) -> None:
        self._producer.poll(0)
        self.raise_if_failed()

    def flush(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for every delivery report; raise if one failed or is missing."""
        remaining = self._producer.flush(timeout)
        self.raise_if_failed()
        if remaining:
            raise DeadLetterError(
                f"{remaining} record(s) not acknowledged by dead-letter topic {self.topic!r} within {timeout:g}s"
            )

    def raise_if_failed(self) -> None:
        if self._failure:
            raise DeadLetterError(self._failure, retryable=self._retryable)


def _max_message_bytes(admin: AdminClient, topics: Sequence[str], timeout: float) -> dict[str, int]:
    """Each topic's ``max.message.bytes`` (topics whose config cannot be described are left out)."""
    resources = [ConfigResource(ConfigResource.Type.TOPIC, t) for t in topics]
    out: dict[str, int] = {}
    for resource, future in admin.describe_configs(resources, request_timeout=timeout).items():
        try:
            entries = future.result(timeout=timeout + 1)
            out[resource.name] = int(entries["max.message.bytes"].value)
        except (KafkaException, KeyError, ValueError, TypeError, TimeoutError) as err:
            log.debug("Could not describe max.message.bytes of %r: %s", resource.name, err)
    return out


def check_dead_letter_topic(
    consumer_conf: Mapping[str, Any], topic: str, sources: Sequence[str], *, timeout: float
) -> None:
    """
    Before the first record: the dead-letter topic exists and is visible to this client, and its
    ``max.message.bytes`` is at least the source topics' (what may be dead-lettered), else a WARNING.

    A missing or forbidden topic needs a person, so it fails without retries, naming the topic.

    :raises KafkaSetupError: missing or not accessible (``retryable=False``).
    :raises KafkaUnavailableError: the broker did not answer within ``timeout``.
    """
    bootstrap = consumer_conf.get("bootstrap.servers")
    admin = AdminClient(client_config(consumer_conf))
    try:
        metadata = admin.list_topics(timeout=timeout)
    except KafkaException as err:
        raise KafkaUnavailableError(
            f"Kafka at bootstrap.servers={bootstrap!r} did not answer within {timeout:g}s while checking "
            f"dead-letter topic {topic!r} ({err.args[0].str()})"
        ) from None
    meta = metadata.topics.get(topic)
    if meta is None or meta.error is not None or not meta.partitions:
        reason = meta.error.str() if meta is not None and meta.error is not None else "it does not exist"
        raise KafkaSetupError(
            f"dead-letter topic {topic!r} cannot be used at bootstrap.servers={bootstrap!r}: {reason}; "
            "create it (with max.message.bytes at least that of the source topics) and grant this client "
            "WRITE on it, or remove dlq_topic.",
            retryable=False,
        )
    sizes = _max_message_bytes(admin, [topic, *sources], timeout)
    dlq_size = sizes.get(topic)
    if dlq_size is None:
        log.warning(
            "Could not read max.message.bytes of dead-letter topic %r (no DESCRIBE_CONFIGS access?); "
            "a rejected record larger than it allows fails the run",
            topic,
        )
        return
    larger = {t: n for t, n in sizes.items() if t != topic and n > dlq_size}
    if larger:
        log.warning(
            "Dead-letter topic %r accepts records up to max.message.bytes=%d, but %s; a rejected record "
            "larger than that cannot be dead-lettered and fails the run: raise the dead-letter topic's "
            "max.message.bytes.",
            topic,
            dlq_size,
            ", ".join(f"{t} allows {n}" for t, n in sorted(larger.items())),
        )
