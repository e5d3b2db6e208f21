"""What a run tells in the task log: progress while it reads, the closing line and totals when it ends."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable

from confluent_kafka import Consumer, KafkaException, TopicPartition

from aep_provider.engine.errors import DrainError, ReplayError, RunStopped
from aep_provider.engine.logsections import SECTION_TOTALS, log_section
from aep_provider.engine.state import PartitionState
from aep_provider.engine.summary import RunSummary

log = logging.getLogger(__name__)

#: ``stopped_by`` of a run asked to stop (:meth:`~aep_provider.engine.drain.DrainEngine.stop`).
STOP_REQUESTED = "stop requested"

#: Most time the end-of-run query of each partition's current end offset may take, in all:
#: it only informs the summary, so it never holds a finished run for long.
_TOPIC_END_BUDGET_SECONDS = 5.0


def log_progress(partitions: Iterable[PartitionState], elapsed: float) -> None:
    """One line per partition whose settled prefix moved since its last line."""
    for st in partitions:
        span = st.plan.end - st.summary.start
        done = st.ledger.commit_offset() - st.summary.start
        if span <= 0 or st.progress_at == done:
            continue
        st.progress_at = done
        log.info(
            "%s[%d]: %d/%d (%.0f%%) settled, %.0f records/s",
            st.plan.topic,
            st.plan.partition,
            done,
            span,
            100.0 * done / span,
            st.summary.records / elapsed if elapsed > 0 else 0.0,
        )


def read_topic_ends(consumer: Consumer, summary: RunSummary, timeout: float) -> None:
    """Best effort: each partition's current end offset, so the summary tells how far the group is behind."""
    deadline = time.monotonic() + min(timeout, _TOPIC_END_BUDGET_SECONDS)
    for p in summary.partitions.values():
        if p.handed_over:
            continue
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            _, p.topic_end = consumer.get_watermark_offsets(
                TopicPartition(p.topic, p.partition), timeout=left, cached=False
            )
        except (KafkaException, RuntimeError):
            break  # the broker is not answering: the summary says "unknown"


def _stopped_text(summary: RunSummary, *, commits: bool) -> str:
    """Why a stopped run fails, and what happens to the records it did not send."""
    if commits:
        what = "The drain"
        rest = "Offsets are committed up to what AEP acknowledged; the next try (the task's retries) or run sends the rest."
    else:
        what = f"The replay of {summary.interval_text()}"
        rest = "Nothing is committed by a replay; the next try replays the interval again (re-sent records keep their XDM _id)."
    return (
        f"{what} was stopped before it finished (a stop was requested: SIGTERM from a worker shutdown or "
        f"a pod eviction, or the task was marked failed) after delivering {summary.delivered} record(s). {rest}"
    )


def report(summary: RunSummary, failure: DrainError | None, *, commits: bool) -> RunSummary:
    """
    Log the closing line and the details (collapsible sections), raise the run's failure or return the summary.

    :param commits: False for a replay, which fails when it did not reach the end of its interval.
    """
    if failure is None and summary.stopped_by == STOP_REQUESTED:
        # A stopped run (SIGTERM, mark-failed) is no success: it fails, retryably, after its commit.
        failure = RunStopped(_stopped_text(summary, commits=commits))
    if failure is None and not commits and summary.stopped_by != "end":
        # A green replay must mean "the interval was replayed": one cut short says so by failing.
        failure = ReplayError(
            f"The replay of {summary.interval_text()} stopped ({summary.stopped_by}) before the end "
            f"of the interval: {summary.delivered} record(s) were sent, the rest of the interval was not. "
            "Raise max_records_per_run / max_run_seconds, or replay a shorter interval (re-sent records keep "
            "their XDM _id)."
        )
    if failure is not None and not isinstance(failure, RunStopped):
        summary.stopped_by = "failed"
    # The closing line stays visible; the listings below it fold.
    log.info(summary.closing_line())
    rejections = summary.rejection_lines()
    if rejections:
        with log_section(log, f"Rejected records ({summary.rejected})"):
            for line in rejections:
                log.info(line)
    details = summary.detail_lines()
    if details:
        with log_section(log, SECTION_TOTALS):
            for line in details:
                log.info(line)
    if failure is not None:
        raise failure
    return summary
