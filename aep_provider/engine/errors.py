"""Errors the drain engine raises. Messages name the topic/partition/offset or setting at fault."""

from __future__ import annotations


class DrainError(Exception):
    """A run could not finish its job; offsets were committed only up to what was delivered."""


class KafkaSetupError(DrainError):
    """The Kafka configuration, broker or topics are unusable (missing setting, unreachable, no topic)."""


class RecordRejectedError(DrainError):
    """A record was rejected (by AEP or before sending) and ``on_reject="fail"`` is in force."""

    def __init__(self, message: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class DeadLetterError(DrainError):
    """Writing a rejected record to the dead-letter topic failed; nothing past it was committed."""
