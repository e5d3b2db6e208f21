"""Dead-letter topic writer: a rejected record counts as settled only after the broker acknowledged it."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import Any

from confluent_kafka import KafkaError, KafkaException, Producer

from aep_provider.engine.errors import DeadLetterError
from aep_provider.engine.payload import KafkaRecord

#: Header names added to each dead-lettered record.
HEADER_TOPIC = "aep.source.topic"
HEADER_PARTITION = "aep.source.partition"
HEADER_OFFSET = "aep.source.offset"
HEADER_STATUS = "aep.error.status"
HEADER_REASON = "aep.error.reason"
HEADER_TIMESTAMP = "aep.error.timestamp"

#: AEP's message can echo parts of the record; keep the header short.
MAX_REASON_CHARS = 1000


def dead_letter_headers(record: KafkaRecord, status: int | None, reason: str) -> list[tuple[str, bytes]]:
    """The original headers followed by where the record came from and why it was rejected."""
    headers = [(k, v) for k, v in record.headers if v is not None]
    headers += [
        (HEADER_TOPIC, record.topic.encode()),
        (HEADER_PARTITION, str(record.partition).encode()),
        (HEADER_OFFSET, str(record.offset).encode()),
        (HEADER_STATUS, str(status if status is not None else "").encode()),
        (HEADER_REASON, reason[:MAX_REASON_CHARS].encode("utf-8", "replace")),
        (HEADER_TIMESTAMP, str(int(time.time() * 1000)).encode()),
    ]
    return headers


class DeadLetterWriter:
    """
    Produces rejected records (original key and value) to ``topic`` with an idempotent, acks=all producer.

    Delivery reports are served by :meth:`poll`/:meth:`flush` on the caller's thread; ``on_done``
    runs once per record, after the broker acknowledged it.

    :param config: producer configuration (see :func:`~aep_provider.engine.config.producer_config`).
    :param topic: the dead-letter topic.
    """

    def __init__(self, config: Mapping[str, Any], topic: str) -> None:
        self.topic = topic
        self._producer = Producer(dict(config))
        self._failure: str | None = None
        self.pending = 0

    def send(self, record: KafkaRecord, status: int | None, reason: str, on_done: Callable[[], None]) -> None:
        def report(err: KafkaError | None, _msg: Any) -> None:
            self.pending -= 1
            if err is not None:
                self._failure = self._failure or (
                    f"writing {record.topic}[{record.partition}]@{record.offset} to dead-letter topic "
                    f"{self.topic!r} failed: {err.str()}"
                )
            else:
                on_done()

        self.pending += 1
        while True:
            try:
                self._producer.produce(
                    self.topic,
                    value=record.value,
                    key=record.key,
                    headers=dead_letter_headers(record, status, reason),
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
            raise DeadLetterError(self._failure)
