"""Bounds on waiting for Kafka: a group that assigns nothing, a broker that stops answering mid-run."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
