"""
The provider's exception types, so that retry policies and callbacks can tell its failures apart.

Two families, following Airflow's own split: subclasses of ``AirflowException`` are outages a
later try may get past (the task's ``retries`` apply); subclasses of ``AirflowFailException``
need someone to fix a setting, a credential or a record (the task fails without retrying).
"""

from __future__ import annotations

from airflow.sdk.exceptions import AirflowException, AirflowFailException


class AEPProviderError(AirflowException):
    """Base of the provider's retryable failures."""


class AEPProviderFailError(AirflowFailException):
    """Base of the provider's failures that retrying cannot fix."""


class AEPUnavailableTaskError(AEPProviderError):
    """AEP (IMS or the inlet) kept failing (429/5xx/network) past the retry deadline."""


class KafkaUnavailableTaskError(AEPProviderError):
    """The Kafka broker did not answer in time (unreachable, or stalled mid-run)."""


class KafkaLagReadError(AEPProviderError):
    """The lag sensor could not read the consumer group's offsets."""


class AEPConfigurationError(AEPProviderFailError):
    """A setting, connection, credential or topic is wrong: fix it, then clear the task."""


class RecordRejectedTaskError(AEPProviderFailError):
    """A record was rejected and ``on_reject="fail"`` is in force; offsets stop before it."""


class FailedInAEPTaskError(AEPProviderFailError):
    """AEP failed records it had accepted and ``fail_on_aep_failures=True`` is in force."""


def task_error(err: Exception) -> AirflowException:
    """
    The provider exception a task raises for an engine or AEP client error (same message).

    :param err: a :class:`~aep_provider.engine.errors.DrainError`, an
        :class:`~aep_provider.aep.errors.AEPError` or a ``ValueError`` (invalid setting).
    """
    from aep_provider.aep.errors import AEPError, AEPUnavailableError
    from aep_provider.engine.errors import DrainError, FailedInAEPError, KafkaUnavailableError, RecordRejectedError

    message = str(err)
    if isinstance(err, FailedInAEPError):
        return FailedInAEPTaskError(message)
    if isinstance(err, AEPUnavailableError):
        return AEPUnavailableTaskError(message)
    if isinstance(err, RecordRejectedError):
        return RecordRejectedTaskError(message)
    if isinstance(err, KafkaUnavailableError):
        return KafkaUnavailableTaskError(message)
    if isinstance(err, DrainError) and err.retryable:
        return AEPProviderError(message)
    if isinstance(err, (DrainError, AEPError, ValueError)):
        return AEPConfigurationError(message)
    return AEPProviderError(message)
