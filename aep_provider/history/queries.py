"""
What the deliveries page asks of the history: the runs of a task, rejections by reason, AEP's
failures by reason, and where one record went. Every query is bounded by the number of offset *ranges*, never records.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from aep_provider.engine.redrive import redrive_group
from aep_provider.history.models import deliveries, marks, ranges, reasons

#: Runs a page shows at most (newest first).
DEFAULT_LIMIT = 200

_RUN_COLUMNS = (
    "id", "dag_id", "task_id", "run_id", "map_index", "try_number", "run_type", "state", "mode", "group_id",
    "dlq_topic", "start_date", "end_date", "delivered", "rejected", "dead_lettered", "skipped", "failed_in_aep",
    "lag", "topic_lag", "seconds", "stopped_by",
)  # fmt: skip


def _iso(value: Any) -> Any:
    return value.isoformat() if isinstance(value, datetime) else value


def _run(row: Any) -> dict[str, Any]:
    data = {c: _iso(getattr(row, c)) for c in _RUN_COLUMNS}
    data["delivery_id"] = data.pop("id")
    return data


def runs(
    session: Session, dag_ids: Collection[str], task_id: str | None = None, limit: int = DEFAULT_LIMIT
) -> list[dict[str, Any]]:
    """The runs of these DAGs (and task), newest first, with their counts."""
    query = select(*(deliveries.c[c] for c in _RUN_COLUMNS), deliveries.c.detail).where(
        deliveries.c.dag_id.in_(list(dag_ids))
    )
    if task_id is not None:
        query = query.where(deliveries.c.task_id == task_id)
    query = query.order_by(deliveries.c.end_date.desc(), deliveries.c.id.desc()).limit(limit)
    out = []
    for row in session.execute(query):
        run = _run(row)
        detail = json.loads(row.detail or "{}")
        run["rejected_by_reason"] = detail.get("rejected_by_reason") or {}
        run["rejection_samples"] = (detail.get("rejection_samples") or [])[:5]
        run["failed_in_aep_by_reason"] = _counts(detail.get("failed_in_aep_by_reason"))
        run["interval"] = detail.get("interval")
        run["redriven"] = detail.get("redriven")
        out.append(run)
    return out


def tasks(session: Session, dag_ids: Collection[str]) -> list[dict[str, Any]]:
    """Every (dag_id, task_id) with history among these DAGs, with its last run's end and totals."""
    query = (
        select(
            deliveries.c.dag_id,
            deliveries.c.task_id,
            func.count().label("runs"),
            func.max(deliveries.c.end_date).label("last_end"),
            func.sum(deliveries.c.delivered).label("delivered"),
            func.sum(deliveries.c.rejected).label("rejected"),
            func.sum(deliveries.c.dead_lettered).label("dead_lettered"),
        )
        .where(deliveries.c.dag_id.in_(list(dag_ids)))
        .group_by(deliveries.c.dag_id, deliveries.c.task_id)
        .order_by(deliveries.c.dag_id, deliveries.c.task_id)
    )
    return [{**row._asdict(), "last_end": _iso(row.last_end)} for row in session.execute(query)]


def rejections_by_reason(
    session: Session, dag_ids: Collection[str], task_id: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """Rejected records summed by reason class, most frequent first."""
    query = (
        select(reasons.c.reason, func.sum(reasons.c.count).label("count"), func.count().label("runs"))
        .join(deliveries, deliveries.c.id == reasons.c.delivery_id)
        .where(deliveries.c.dag_id.in_(list(dag_ids)))
        .group_by(reasons.c.reason)
        .order_by(func.sum(reasons.c.count).desc(), reasons.c.reason)
    )
    if task_id is not None:
        query = query.where(deliveries.c.task_id == task_id)
    if since is not None:
        query = query.where(deliveries.c.end_date >= since)
    return [row._asdict() for row in session.execute(query)]


def _counts(value: Any) -> dict[str, int]:
    """A ``{reason: count}`` map from a summary, positive whole counts only (a malformed value reads as none)."""
    if not isinstance(value, dict):
        return {}
    return {str(r): int(n) for r, n in value.items() if isinstance(n, int) and not isinstance(n, bool) and n > 0}


def failed_in_aep_by_reason(
    session: Session, dag_ids: Collection[str], task_id: str | None = None, since: datetime | None = None
) -> list[dict[str, Any]]:
    """
    Records AEP accepted, then failed (``failed_in_aep``), summed by AEP's reason over the runs
    that reported them, most frequent first. Kept apart from :func:`rejections_by_reason`: those
    records were never sent. The reasons live in each run's ``detail``: only the runs with
    ``failed_in_aep > 0`` are read and parsed.
    """
    query = select(deliveries.c.detail).where(deliveries.c.dag_id.in_(list(dag_ids)), deliveries.c.failed_in_aep > 0)
    if task_id is not None:
        query = query.where(deliveries.c.task_id == task_id)
    if since is not None:
        query = query.where(deliveries.c.end_date >= since)
    counts: Counter[str] = Counter()
    runs: Counter[str] = Counter()
    for detail in session.scalars(query):
        by_reason = _counts(json.loads(detail or "{}").get("failed_in_aep_by_reason"))
        counts.update(by_reason)
        runs.update(by_reason.keys())
    return [
        {"reason": reason, "count": count, "runs": runs[reason]}
        for reason, count in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    ]


def redrive_status(session: Session, dag_id: str, task_id: str) -> dict[str, Any] | None:
    """
    A task's dead-letter topic as the history knows it: its last redrive, and how many records were
    dead-lettered since (by the task's other runs, plus those its last redrive put back). None when
    no run of the task had a dead-letter topic.
    """
    of_task = (deliveries.c.dag_id == dag_id, deliveries.c.task_id == task_id)
    newest_first = (deliveries.c.end_date.desc(), deliveries.c.id.desc())
    cols = (deliveries.c.dlq_topic, deliveries.c.group_id, deliveries.c.mode)
    latest = session.execute(
        select(*cols).where(*of_task, deliveries.c.dlq_topic.is_not(None)).order_by(*newest_first).limit(1)
    ).first()
    if latest is None:
        return None
    last = session.execute(
        select(*(deliveries.c[c] for c in _RUN_COLUMNS))
        .where(*of_task, deliveries.c.mode == "redrive")
        .order_by(*newest_first)
        .limit(1)
    ).first()
    since = select(func.coalesce(func.sum(deliveries.c.dead_lettered), 0)).where(
        *of_task, deliveries.c.mode != "redrive"
    )
    if last is not None and last.end_date is not None:
        since = since.where(deliveries.c.end_date > last.end_date)
    drain_group = session.scalar(
        select(deliveries.c.group_id)
        .where(*of_task, deliveries.c.mode == "drain", deliveries.c.group_id.is_not(None))
        .order_by(*newest_first)
        .limit(1)
    )
    return {
        "dlq_topic": latest.dlq_topic,
        "group_id": last.group_id if last is not None else redrive_group(drain_group) if drain_group else None,
        "last_redrive": _run(last) if last is not None else None,
        "dead_lettered_since": int(session.scalar(since) or 0) + (int(last.dead_lettered or 0) if last else 0),
        "conf": {"redrive": task_id},
    }


def totals(run_list: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Sums over the runs shown (``failed_in_aep`` only over the runs that report it)."""
    out: dict[str, Any] = {"runs": 0, "delivered": 0, "rejected": 0, "dead_lettered": 0, "skipped": 0}
    failed = None
    for run in run_list:
        out["runs"] += 1
        for key in ("delivered", "rejected", "dead_lettered", "skipped"):
            out[key] += run[key] or 0
        if run.get("failed_in_aep") is not None:
            failed = (failed or 0) + run["failed_in_aep"]
    out["failed_in_aep"] = failed
    return out


# -- where is this record? ----------------------------------------------------------------------


def _covering(session: Session, table: Any, topic: str, partition: int, offset: int) -> Any:
    """Rows of ``table`` whose ``[start_offset, end_offset)`` holds ``offset`` (an index range scan on (topic, partition, start))."""
    return and_(
        table.c.topic == topic,
        table.c.kafka_partition == partition,
        table.c.start_offset <= offset,
        table.c.end_offset > offset,
    )


def where(session: Session, topic: str, partition: int, offset: int, dag_ids: Collection[str]) -> dict[str, Any]:
    """
    Where one record went, per consumer group that reads its partition (several DAGs may drain one topic):

    - ``delivered``: in the range a drain run committed, and not marked;
    - ``dead_lettered`` / ``skipped`` (with the reason class) / ``rejected``;
    - ``not_yet_drained``: past the group's last committed offset (with that offset and the lag then);
    - ``unknown``: before the group's oldest run in the history, or between two runs' ranges
      (committed by a try that left no summary — killed —, or by a run whose history is not kept:
      pruned by the retention, or before the provider was installed).

    Replays whose range held the record are listed apart (they re-send, never commit).
    """
    dag_ids = list(dag_ids)
    run_cols = [deliveries.c[c] for c in _RUN_COLUMNS]
    covering = session.execute(
        select(*run_cols, ranges.c.marks_cut_at, ranges.c.start_offset, ranges.c.end_offset)
        .join(deliveries, deliveries.c.id == ranges.c.delivery_id)
        .where(_covering(session, ranges, topic, partition, offset), deliveries.c.dag_id.in_(dag_ids))
        .order_by(deliveries.c.end_date.desc(), deliveries.c.id.desc())
    ).all()
    answers: list[dict[str, Any]] = []
    replays: list[dict[str, Any]] = []
    groups_answered: set[Any] = set()
    for row in covering:
        run = _run(row)
        if run["mode"] == "replay":
            replays.append({**run, "status": "replayed"})
            continue
        if run["group_id"] in groups_answered:
            continue  # an older run of a range handed over again (a rebalance): the newest answers
        groups_answered.add(run["group_id"])
        answers.append(_settled(session, run, row, topic, partition, offset))
    # Groups that read this partition but whose ranges do not hold the offset.
    for group_id, dag_id in _groups(session, topic, partition, dag_ids):
        if group_id in groups_answered:
            continue
        answers.append(_unsettled(session, group_id, dag_id, topic, partition, offset, dag_ids))
    return {"topic": topic, "partition": partition, "offset": offset, "answers": answers, "replays": replays}


def _settled(
    session: Session, run: dict[str, Any], row: Any, topic: str, partition: int, offset: int
) -> dict[str, Any]:
    mark = session.execute(
        select(marks.c.kind, marks.c.label, marks.c.start_offset, marks.c.end_offset)
        .where(marks.c.delivery_id == run["delivery_id"], _covering(session, marks, topic, partition, offset))
        .limit(1)
    ).first()
    if mark is not None:
        return {**run, "status": mark.kind, "reason": mark.label, "range": [mark.start_offset, mark.end_offset]}
    if row.marks_cut_at is not None and offset >= row.marks_cut_at:
        return {
            **run,
            "status": "delivered_or_dead_lettered",
            "reason": f"this run located records settled without delivery only up to offset {row.marks_cut_at}",
            "range": [row.start_offset, row.end_offset],
        }
    return {**run, "status": "delivered", "reason": None, "range": [row.start_offset, row.end_offset]}


def _groups(session: Session, topic: str, partition: int, dag_ids: Sequence[str]) -> list[tuple[Any, str]]:
    """The consumer groups (and a DAG of each) whose drains read this partition."""
    query = (
        select(deliveries.c.group_id, func.max(deliveries.c.dag_id))
        .join(ranges, ranges.c.delivery_id == deliveries.c.id)
        .where(
            ranges.c.topic == topic,
            ranges.c.kafka_partition == partition,
            deliveries.c.mode != "replay",
            deliveries.c.dag_id.in_(dag_ids),
        )
        .group_by(deliveries.c.group_id)
    )
    return [(r[0], r[1]) for r in session.execute(query)]


def _unsettled(
    session: Session, group_id: Any, dag_id: str, topic: str, partition: int, offset: int, dag_ids: Sequence[str]
) -> dict[str, Any]:
    base = (
        select(*(deliveries.c[c] for c in _RUN_COLUMNS), ranges.c.start_offset, ranges.c.end_offset, ranges.c.topic_end)
        .join(deliveries, deliveries.c.id == ranges.c.delivery_id)
        .where(
            ranges.c.topic == topic,
            ranges.c.kafka_partition == partition,
            deliveries.c.mode != "replay",
            deliveries.c.group_id.is_(None) if group_id is None else deliveries.c.group_id == group_id,
            deliveries.c.dag_id.in_(dag_ids),
        )
    )
    # The nearest range below and above the offset: two index lookups on (topic, partition, start).
    below = session.execute(
        base.where(ranges.c.start_offset <= offset)
        .order_by(ranges.c.start_offset.desc(), ranges.c.end_offset.desc())
        .limit(1)
    ).first()
    above = session.execute(base.where(ranges.c.start_offset > offset).order_by(ranges.c.start_offset).limit(1)).first()
    if above is None:
        latest = below
        run = _run(latest) if latest is not None else {"group_id": group_id, "dag_id": dag_id}
        committed = latest.end_offset if latest is not None else None
        topic_end = latest.topic_end if latest is not None else None
        if latest is not None:
            # A run that failed at this very record (on_reject="fail") located it past its commit.
            mark = session.execute(
                select(marks.c.kind, marks.c.label).where(
                    marks.c.delivery_id == latest.id, _covering(session, marks, topic, partition, offset)
                )
            ).first()
            if mark is not None:
                return {**run, "status": mark.kind, "reason": mark.label, "committed": committed}
        return {
            **run,
            "status": "not_yet_drained",
            "committed": committed,
            "lag": (topic_end - committed) if topic_end is not None and committed is not None else None,
            "reason": None,
        }
    run = _run(above)
    if below is None:
        reason = (
            f"before the oldest run of group {group_id!r} in the history (it started at offset {above.start_offset})"
        )
    else:
        reason = (
            f"committed between run {below.run_id} (up to offset {below.end_offset}) and run {above.run_id} "
            f"(from offset {above.start_offset}): by a try that left no summary (killed), or a run whose history is not "
            "kept (pruned by the retention, or before the provider was installed)"
        )
    return {**run, "status": "unknown", "reason": reason}
