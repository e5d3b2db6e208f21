"""Ending a run within bounds: settle what is in flight, flush dead letters, commit once more, close the consumer."""

from __future__ import annotations

import logging
import threading
import time

from confluent_kafka import Consumer, KafkaException

from aep_provider.engine.commits import OffsetCommits
from aep_provider.engine.errors import DrainError
from aep_provider.engine.report import read_topic_ends
from aep_provider.engine.sending import InFlight
from aep_provider.engine.state import RunState

log = logging.getLogger(__name__)


def finish(
    consumer: Consumer,
    state: RunState,
    in_flight: InFlight,
    commits: OffsetCommits,
    *,
    started: float,
    read_ends: bool,
    bootstrap: str,
) -> None:
    """
    Bounded settle of in-flight requests and DLQ writes, final commit, close the consumer.
    Failures are recorded in ``state`` (the first one is the run's).

    :param read_ends: ask each partition's current end offset for the summary.
    """
    config = state.config
    grace = config.stop_grace_seconds
    if in_flight:
        in_flight.collect(only_done=False, timeout=grace)
        if in_flight:
            log.warning(
                "%d request(s) still in flight after %gs; abandoned (their records are sent again next run)",
                len(in_flight),
                grace,
            )
    try:
        if state.dlq is not None and state.dlq.pending:
            state.dlq.flush(grace)
    except DrainError as err:
        state.fail(err)
    try:
        commits.final(consumer)
    except (DrainError, KafkaException) as err:
        failure = err if isinstance(err, DrainError) else DrainError(f"committing offsets failed: {err.args[0].str()}")
        if state.failure is not None:
            # The run fails for an earlier reason (e.g. a rejected record); say that the commit did not happen either.
            log.warning("Also failed: %s", failure)
        state.fail(failure)
    if read_ends:
        read_topic_ends(consumer, state.summary, config.kafka_timeout_seconds)
    state.summary.seconds = time.monotonic() - started
    state.closing = True
    close_bounded(consumer, config.kafka_timeout_seconds, bootstrap)


def close_bounded(consumer: Consumer, timeout: float, bootstrap: str) -> bool:
    """
    ``consumer.close()`` with a bound: it leaves the group, which waits on a coordinator that may
    have gone silent. Run in a daemon thread; past ``timeout`` it is abandoned (the process exit
    ends it; the group drops the member after ``session.timeout.ms``). Return True when it closed.
    """
    errors: list[BaseException] = []

    def close() -> None:
        try:
            consumer.close()
        except (KafkaException, RuntimeError) as err:
            errors.append(err)

    closer = threading.Thread(target=close, name="aep-kafka-close", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        log.warning(
            "Closing the Kafka consumer (bootstrap.servers=%s) did not finish within %gs; abandoned "
            "(the group removes this member after session.timeout.ms)",
            bootstrap,
            timeout,
        )
        return False
    if errors:
        log.warning("Closing the Kafka consumer failed: %s", errors[0])
    return not errors
