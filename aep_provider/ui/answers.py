"""The "where is this record?" answer as one sentence (the API returns it too, so the page only shows it)."""

from __future__ import annotations

from typing import Any


def _run(answer: dict[str, Any]) -> str:
    return (
        f"run {answer.get('run_id')} (DAG {answer.get('dag_id')}, task {answer.get('task_id')}, "
        f"try {answer.get('try_number')}, {answer.get('state')}, ended {answer.get('end_date') or '—'})"
    )


def describe(answer: dict[str, Any], offset: int) -> str:
    status = answer.get("status")
    group = answer.get("group_id")
    if status == "delivered":
        return f"Delivered to AEP by {_run(answer)}; group {group} committed past it."
    if status == "dead_lettered":
        dlq = answer.get("dlq_topic") or "the dead-letter topic"
        return (
            f"Dead-lettered by {_run(answer)}: rejected ({answer.get('reason')}). It is in {dlq}, with headers "
            f"aep.source.offset={offset} and the full reason in aep.error.reason."
        )
    if status == "skipped":
        return f"Skipped by {_run(answer)} ({answer.get('reason')}); not sent, committed past."
    if status == "rejected":
        return (
            f"Rejected by {_run(answer)} ({answer.get('reason')}) with on_reject='fail': not committed; the group "
            "stays at it until the record is fixed or a dead-letter topic is set."
        )
    if status == "delivered_or_dead_lettered":
        return f"Delivered or dead-lettered by {_run(answer)}: {answer.get('reason')}."
    if status == "replayed":
        return (
            f"Also re-sent by replay {_run(answer)} (a replay sends again what the interval held; it commits nothing)."
        )
    if status == "not_yet_drained":
        committed = answer.get("committed")
        if committed is None:
            return f"Not yet drained: group {group} has no run in the history for this partition."
        lag = answer.get("lag")
        return f"Not yet drained: group {group} had committed up to offset {committed} when {_run(answer)} ended" + (
            f"; lag then {lag} record(s)." if lag is not None else "."
        )
    return f"Unknown: {answer.get('reason')}."
