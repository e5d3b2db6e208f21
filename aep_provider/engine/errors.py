"""Errors the drain engine raises. Messages name the topic/partition/offset or setting at fault."""

from __future__ import annotations


class DrainError(Exception):
    """
    A run could not finish its job; offsets were committed only up to what was delivered.

    :param retryable: whether trying again later may succeed (a broker or AEP outage) rather
        than needing someone to fix a setting or a record; defaults to the class's value.
    """

    retryable: bool = True

    def __init__(self, message: str, *, retryable: bool | None = None) -> None:
        super().__init__(message)
        if retryable is not None:
            self.retryable = retryable


class KafkaSetupError(DrainError):
    """The Kafka configuration or topics are unusable (missing setting, unknown topic, no access)."""

    retryable = False


class KafkaUnavailableError(KafkaSetupError):
    """The broker did not answer in time (unreachable, or stalled mid-run): a later try may succeed."""

    retryable = True


class RecordRejectedError(DrainError):
    """A record was rejected (by AEP or before sending) and ``on_reject="fail"`` is in force."""

    retryable = False

    def __init__(self, message: str, *, topic: str, partition: int, offset: int) -> None:
        super().__init__(message)
        self.topic = topic
        self.partition = partition
        self.offset = offset


class DeadLetterError(DrainError):
    """Writing a rejected record to the dead-letter topic failed; nothing past it was committed."""


class ReplayError(DrainError):
    """A replay cannot do what its interval asks (bad interval, records gone to retention, cut short by a limit)."""

    retryable = False


class RunStopped(DrainError):
    """
    The run was asked to stop (SIGTERM from a worker's shutdown or a pod eviction, "mark failed")
    before it reached its end: what AEP acknowledged is committed, the rest waits. A failure, so
    that a stopped run never looks complete, and retryable: the next try sends the rest.
    """

    retryable = True


class FailedInAEPError(DrainError):
    """AEP failed records it had accepted (failed batches) and the task asked to fail for that."""

    retryable = False
