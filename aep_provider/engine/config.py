"""Run settings and the Kafka client configurations derived from a connection's extra."""

from __future__ import annotations

import enum
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from aep_provider.aep.results import MAX_REQUEST_BYTES
from aep_provider.engine.kafkalog import kafka_logger


class OnReject(str, enum.Enum):
    """What to do with a rejected record when no dead-letter topic is configured."""

    FAIL = "fail"
    SKIP = "skip"


#: Settings the engine must own whatever the connection says: offsets are stored and
#: committed only by the ledger, and EOF events mark the end of a partition.
FORCED_CONSUMER_SETTINGS: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
}

#: Defaults the connection may override.
DEFAULT_CONSUMER_SETTINGS: dict[str, Any] = {
    "isolation.level": "read_committed",
    "auto.offset.reset": "earliest",
    "partition.assignment.strategy": "cooperative-sticky",
    # librdkafka (2.4+) waits this long before fetching again once its local queue was over its
    # thresholds (1,000 ms by default). The drain stops taking records while requests are full,
    # so with the default its reading stalled for up to a second at a time: 73,000 events/s
    # against 95,000 with 10 ms in the same benchmark.
    "fetch.queue.backoff.ms": 10,
    # A member learns of a rebalance from a heartbeat's answer (librdkafka: every 3 s). Drains join
    # and leave their group on every run, and a cooperative handover takes two rounds, so three
    # drains of one group waited up to about 6 s for their partitions, and the last ones to end
    # kept their old share of the guardrail that long after the others left.
    "heartbeat.interval.ms": 1000,
}

#: Largest record the dead-letter producer accepts locally (librdkafka's default is 1 MB).
DLQ_MAX_MESSAGE_BYTES = 16 * 1024 * 1024

#: Consumer-only properties dropped when the dead-letter producer reuses the connection.
_CONSUMER_ONLY_PREFIXES = (
    "group.",
    "enable.auto.",
    "auto.",
    "fetch.",
    "queued.",
    "session.timeout.ms",
    "heartbeat.interval.ms",
    "max.poll.interval.ms",
    "isolation.level",
    "enable.partition.eof",
    "partition.assignment.strategy",
    "check.crcs",
    "consume.callback.max.messages",
    "coordinator.query.interval.ms",
    "allow.auto.create.topics",
)


def consumer_config(
    base: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, *, source: str = "the Kafka connection"
) -> dict[str, Any]:
    """
    Build the consumer configuration: defaults, then ``base``, then ``overrides``, then the forced settings.

    :param base: the confluent-kafka settings from the connection's extra (copied, never modified).
    :param overrides: settings merged over ``base`` (the operator's ``kafka_config_overrides``).
    :param source: how to name the configuration in errors (e.g. "Airflow connection 'kafka_default'").
    """
    from aep_provider.engine.errors import KafkaSetupError

    conf: dict[str, Any] = dict(DEFAULT_CONSUMER_SETTINGS)
    conf.update(base or {})
    conf.update(overrides or {})
    missing = [key for key in ("bootstrap.servers", "group.id") if not conf.get(key)]
    if missing:
        raise KafkaSetupError(
            f"{source} has no {' or '.join(repr(m) for m in missing)} in its extra; "
            'add them, e.g. {"bootstrap.servers": "broker:9092", "group.id": "aep-ingest"}.'
        )
    conf.update(FORCED_CONSUMER_SETTINGS)
    return conf


def client_config(consumer_conf: Mapping[str, Any]) -> dict[str, Any]:
    """The connection's client settings (address, security, ...) without consumer-only ones, and a logger."""
    return with_logger({k: v for k, v in consumer_conf.items() if not k.startswith(_CONSUMER_ONLY_PREFIXES)})


def with_logger(conf: Mapping[str, Any]) -> dict[str, Any]:
    """
    ``conf`` with librdkafka's lines sent to Python logging (unless it names a logger).

    librdkafka writes to stderr otherwise, and an unreachable broker writes a line about every
    50 ms; through :func:`~aep_provider.engine.kafkalog.kafka_logger` repeats are held back. Added
    when a client is built, so that configurations stay plain (JSON) data.
    """
    return {"logger": kafka_logger(), **conf}


def producer_config(consumer_conf: Mapping[str, Any]) -> dict[str, Any]:
    """Dead-letter producer settings: the connection's client settings, idempotent, acks=all."""
    conf = client_config(consumer_conf)
    # Rejected records include ones over AEP's 1 MB limit: let the client pass what the source
    # topic held (the dead-letter topic's max.message.bytes must allow it too).
    conf.setdefault("message.max.bytes", DLQ_MAX_MESSAGE_BYTES)
    conf.update({"enable.idempotence": True, "acks": "all", "linger.ms": 5})
    return conf


#: Defaults shared by :class:`DrainConfig` and the operator (one place, so they cannot drift apart).
DEFAULT_KAFKA_TIMEOUT_SECONDS = 30.0
DEFAULT_ASSIGNMENT_TIMEOUT_SECONDS = 60.0
DEFAULT_STOP_GRACE_SECONDS = 10.0
DEFAULT_PROGRESS_INTERVAL_SECONDS = 30.0
#: High enough that ``max_batch_bytes`` (1 MB) binds first for messages of 500 bytes and more: a
#: large backlog goes out in nearly full requests. AEP documents no per-request message cap, only
#: 1 MB per request; the client's messages/s limit is applied per message, whatever the batching.
DEFAULT_MAX_BATCH_RECORDS = 2_000


@dataclass(frozen=True)
class DrainConfig:
    """
    Limits and policies of one run.

    :param max_batch_records: most records in one request; with the default, ``max_batch_bytes``
        binds first for messages of 500 bytes and more.
    :param max_batch_bytes: most encoded bytes in one request body (at most 1,000,000).
    :param max_in_flight: most requests outstanding at once (a partition never has two).
    :param max_records_per_run: stop cleanly after taking this many records; None = no limit.
    :param max_run_seconds: stop cleanly after this long; None = no limit.
    :param dlq_topic: topic receiving rejected records; None = apply ``on_reject``.
    :param on_reject: ``fail`` or ``skip`` for rejected records when there is no DLQ.
    :param kafka_timeout_seconds: bound on each metadata/offset call to the broker, on the final
        commit, on the dead-letter flush and on closing the consumer.
    :param assignment_timeout_seconds: bound on the wait for the first partition assignment.
    :param stop_grace_seconds: how long a stopping run waits for in-flight requests.
    :param progress_interval_seconds: how often per-partition progress is logged.
    :param guardrail_share: the part of the AEP connection's rate limits this drain claims, all
        instances of its consumer group together, in (0, 1]; each instance starts at its partitions'
        part of it and adapts to AEP's 429 answers below it (see :mod:`aep_provider.aep.adaptive`).
    """

    max_batch_records: int = DEFAULT_MAX_BATCH_RECORDS
    max_batch_bytes: int = MAX_REQUEST_BYTES
    max_in_flight: int = 4
    max_records_per_run: int | None = None
    max_run_seconds: float | None = None
    dlq_topic: str | None = None
    on_reject: OnReject = OnReject.FAIL
    kafka_timeout_seconds: float = DEFAULT_KAFKA_TIMEOUT_SECONDS
    assignment_timeout_seconds: float = DEFAULT_ASSIGNMENT_TIMEOUT_SECONDS
    stop_grace_seconds: float = DEFAULT_STOP_GRACE_SECONDS
    progress_interval_seconds: float = DEFAULT_PROGRESS_INTERVAL_SECONDS
    guardrail_share: float = 1.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "on_reject", validate_on_reject(self.on_reject))
        validate_guardrail_share(self.guardrail_share)
        validate_limits(
            max_batch_records=self.max_batch_records,
            max_batch_bytes=self.max_batch_bytes,
            max_in_flight=self.max_in_flight,
            max_records_per_run=self.max_records_per_run,
            max_run_seconds=self.max_run_seconds,
        )
        validate_timeouts(
            kafka_timeout_seconds=self.kafka_timeout_seconds,
            assignment_timeout_seconds=self.assignment_timeout_seconds,
            stop_grace_seconds=self.stop_grace_seconds,
            progress_interval_seconds=self.progress_interval_seconds,
        )


def validate_guardrail_share(value: object) -> None:
    """Raise ValueError unless ``value`` is a number in (0, 1]: a share of the organisation's limits."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise ValueError(
            f"guardrail_share must be a number in (0, 1] (this drain's part of the connection's rate limits, "
            f"e.g. 0.5 for half of the organisation's 10,000 messages/s), got {value!r}"
        )


def validate_timeouts(
    *,
    kafka_timeout_seconds: float,
    assignment_timeout_seconds: float,
    stop_grace_seconds: float,
    progress_interval_seconds: float,
) -> None:
    """
    Raise ValueError naming the first timeout that is not a finite number in range: a negative or
    infinite value must never turn into "wait forever" inside librdkafka.
    """
    for name, value, allow_zero in (
        ("kafka_timeout_seconds", kafka_timeout_seconds, False),
        ("assignment_timeout_seconds", assignment_timeout_seconds, False),
        ("stop_grace_seconds", stop_grace_seconds, True),
        ("progress_interval_seconds", progress_interval_seconds, False),
    ):
        if (
            not isinstance(value, (int, float))
            or isinstance(value, bool)
            or not math.isfinite(value)
            or value < 0
            or (value == 0 and not allow_zero)
        ):
            kind = "a number >= 0" if allow_zero else "a positive number"
            raise ValueError(f"{name} must be {kind} of seconds, got {value!r}")


def validate_on_reject(value: str | OnReject) -> OnReject:
    """Return ``value`` as :class:`OnReject` or raise ValueError listing the choices."""
    try:
        return OnReject(value)
    except ValueError:
        raise ValueError(f"on_reject must be 'fail' or 'skip', got {value!r}") from None


def validate_limits(
    *,
    max_batch_records: int,
    max_batch_bytes: int,
    max_in_flight: int,
    max_records_per_run: int | None,
    max_run_seconds: float | None,
) -> None:
    """Raise ValueError naming the first limit that is out of range."""
    if not isinstance(max_batch_records, int) or max_batch_records < 1:
        raise ValueError(f"max_batch_records must be a positive integer, got {max_batch_records!r}")
    if not isinstance(max_batch_bytes, int) or not 1 <= max_batch_bytes <= MAX_REQUEST_BYTES:
        raise ValueError(
            f"max_batch_bytes must be between 1 and {MAX_REQUEST_BYTES:,} (AEP refuses larger requests), "
            f"got {max_batch_bytes!r}"
        )
    if not isinstance(max_in_flight, int) or max_in_flight < 1:
        raise ValueError(f"max_in_flight must be a positive integer, got {max_in_flight!r}")
    if max_records_per_run is not None and (not isinstance(max_records_per_run, int) or max_records_per_run < 1):
        raise ValueError(f"max_records_per_run must be a positive integer or None, got {max_records_per_run!r}")
    if max_run_seconds is not None and (
        not isinstance(max_run_seconds, (int, float)) or isinstance(max_run_seconds, bool) or max_run_seconds <= 0
    ):
        raise ValueError(f"max_run_seconds must be a positive number or None, got {max_run_seconds!r}")
