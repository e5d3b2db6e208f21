"""
A run summary (the operator's XCom) as history rows: plain Python, no database.

Summaries are read generically: a key a summary does not have (an older provider version, or
``failed_in_aep`` before AEP's failures were reported) is stored as NULL, shown as "—".
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

#: Keys every run summary has: a return value without them is some other task's.
_SUMMARY_KEYS = frozenset({"mode", "delivered", "rejected", "partitions", "stopped_by"})

#: Per-run keys kept in the ``detail`` column (the per-partition part goes to the range rows).
_DETAIL_KEYS = ("interval", "rejected_by_reason", "rejection_samples", "request_seconds", "requests", "retries",
                "throttled", "bytes", "tombstones", "uncommitted", "failed_in_aep_reasons")  # fmt: skip


def is_run_summary(value: Any) -> bool:
    """Whether an XCom value is a KafkaToAEPOperator run summary."""
    return isinstance(value, Mapping) and _SUMMARY_KEYS <= value.keys()


def _int(value: Any) -> int | None:
    return int(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _failed_in_aep(summary: Mapping[str, Any]) -> int | None:
    """AEP's failures of the run, or None when its failed batches were not checked (no dataset_id) or the check failed: shown as "—"."""
    check = summary.get("failed_in_aep_check")
    if isinstance(check, Mapping) and check.get("status") != "checked":
        return None
    return _int(summary.get("failed_in_aep"))


def delivery_row(summary: Mapping[str, Any]) -> dict[str, Any]:
    """The counts of one run (the ``aep_delivery`` columns a summary fills)."""
    return {
        "mode": str(summary.get("mode") or "drain")[:16],
        "group_id": summary.get("group_id"),
        "dlq_topic": summary.get("dlq_topic"),
        "delivered": _int(summary.get("delivered")) or 0,
        "rejected": _int(summary.get("rejected")) or 0,
        "dead_lettered": _int(summary.get("dead_lettered")) or 0,
        "skipped": _int(summary.get("skipped")) or 0,
        "failed_in_aep": _failed_in_aep(summary),
        "lag": _int(summary.get("lag")),
        "topic_lag": _int(summary.get("topic_lag")),
        "seconds": float(summary["seconds"]) if isinstance(summary.get("seconds"), (int, float)) else None,
        "stopped_by": str(summary.get("stopped_by") or "")[:100],
        "detail": json.dumps({k: summary[k] for k in _DETAIL_KEYS if k in summary}, default=str),
    }


def handled_end(part: Mapping[str, Any], mode: str) -> int:
    """
    Where a partition's handled range ends: a drain (or redrive) handled what it committed; a
    replay scanned up to its snapshot end, sending only what the live drain had handed over.
    """
    start = int(part["start"])
    if mode == "replay":
        end = int(part.get("end", start))
        send_until = part.get("send_until")
        return max(start, min(end, send_until) if isinstance(send_until, int) else end)
    committed = part.get("committed")
    return max(start, committed) if isinstance(committed, int) else start


def range_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per partition the run read: ``[start_offset, end_offset)`` handled."""
    mode = str(summary.get("mode") or "drain")
    rows = []
    for part in (summary.get("partitions") or {}).values():
        if not isinstance(part, Mapping) or not isinstance(part.get("start"), int):
            continue
        rows.append(
            {
                "topic": str(part["topic"]),
                "kafka_partition": int(part["partition"]),
                "start_offset": int(part["start"]),
                "end_offset": handled_end(part, mode),
                "snapshot_end": _int(part.get("end")),
                "topic_end": _int(part.get("topic_end")),
                "marks_cut_at": _int(part.get("marks_cut_at")),
            }
        )
    return rows


def mark_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One row per range of records settled without being delivered (see ``PartitionSummary.marks``)."""
    rows = []
    for part in (summary.get("partitions") or {}).values():
        if not isinstance(part, Mapping):
            continue
        for mark in part.get("marks") or ():
            start, end, kind, label = mark
            rows.append(
                {
                    "topic": str(part["topic"]),
                    "kafka_partition": int(part["partition"]),
                    "start_offset": int(start),
                    "end_offset": int(end),
                    "kind": str(kind)[:20],
                    "label": str(label)[:100],
                }
            )
    return rows


def reason_rows(summary: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Rejections by reason class."""
    by_reason = summary.get("rejected_by_reason") or {}
    return [{"reason": str(r)[:100], "count": int(n)} for r, n in by_reason.items() if _int(n)]
