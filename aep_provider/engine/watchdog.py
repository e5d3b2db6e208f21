"""Bounds on waiting for Kafka: a group that assigns nothing, a broker that stops answering mid-run, commits never confirmed."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from aep_provider.engine.commits import OffsetCommits
from aep_provider.engine.errors import KafkaUnavailableError
from aep_provider.engine.rebalance import Rebalancer
from aep_provider.engine.state import RunState


def check_assigned(state: RunState, elapsed: float, group: Any, topics: Sequence[str], bootstrap: str) -> None:
    """Fail once ``assignment_timeout_seconds`` passed without the group assigning anything."""
    timeout = state.config.assignment_timeout_seconds
    if state.assigned_at is None and elapsed > timeout:
        raise KafkaUnavailableError(
            f"group {group!r} assigned no partitions of {', '.join(topics)} "
            f"within {timeout:g}s (bootstrap.servers={bootstrap!r})"
        )


def check_stalled(state: RunState, rebalancer: Rebalancer, now: float, bootstrap: str) -> None:
    """
    Fail when nothing (records, end of partition, rebalance) arrived for too long while partitions remain.

    A broker that stops answering mid-run must not keep the run alive.
    """
    stall_seconds = state.config.kafka_timeout_seconds + state.config.stop_grace_seconds
    if now - state.last_progress > stall_seconds and not rebalancer.all_read(now):
        waiting = sorted(f"{st.plan.topic}[{st.plan.partition}]" for st in state.partitions.values() if not st.complete)
        raise KafkaUnavailableError(
            f"no record or end of partition arrived from bootstrap.servers={bootstrap!r} for "
            f"{stall_seconds:g}s while {', '.join(waiting) or 'the assignment'} had not reached the snapshot end; "
            "check the broker's health."
        )


def check_commits(state: RunState, commits: OffsetCommits, now: float, bootstrap: str) -> None:
    """
    Fail when acknowledged batches waited ``kafka_timeout_seconds + stop_grace_seconds`` without
    the broker confirming any commit.

    They count against ``max_in_flight``, so nothing else is sent meanwhile, and the stall check
    does not apply (the run is not waiting for records): commits that keep failing retryably,
    or are never answered, would otherwise hold the run until ``max_run_seconds``.
    """
    bound = state.config.kafka_timeout_seconds + state.config.stop_grace_seconds
    waited = commits.committer.unconfirmed_seconds(now)
    if waited > bound:
        raise KafkaUnavailableError(
            f"group {commits.group!r} confirmed no offset commit for {bound:g}s while {commits.committer.held} "
            f"batch(es) AEP acknowledged waited for one (bootstrap.servers={bootstrap!r}): "
            f"{commits.uncommitted()}; nothing more is sent until they are committed. Check the broker's health "
            "(its __consumer_offsets partitions, the group coordinator); the next run sends those records again."
        )
