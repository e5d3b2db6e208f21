"""Copying the run summaries of a finished DAG run into the history tables (scheduler side)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, insert, select
from sqlalchemy.orm import Session

from aep_provider.history import records
from aep_provider.history.models import CHILD_TABLES, deliveries, marks, ranges, reasons

log = logging.getLogger(__name__)

#: Where the operator leaves its summary: the return value of a finished run, ``summary`` of a failed one.
SUMMARY_KEYS = ("return_value", "summary")


def _summaries(
    db: Session | Connection, dag_id: str, run_id: str, task: tuple[str, int] | None = None
) -> dict[tuple[str, int], Any]:
    """Each task instance's run summary in this DAG run (or just ``task``: task_id, map_index), keyed by (task_id, map_index)."""
    from airflow.models.xcom import XComModel

    query = select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
        XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key.in_(SUMMARY_KEYS)
    )
    if task is not None:
        query = query.where(XComModel.task_id == task[0], XComModel.map_index == task[1])
    found: dict[tuple[str, int], Any] = {}
    # return_value first: a successful run's summary wins over an interrupted try's.
    for row in sorted(db.execute(query).all(), key=lambda r: SUMMARY_KEYS.index(r.key)):
        key = (row.task_id, row.map_index)
        if key in found:
            continue
        value = XComModel.deserialize_value(row)
        if records.is_run_summary(value):
            found[key] = value
    return found


def _run_type(db: Session | Connection, dag_id: str, run_id: str) -> str | None:
    from airflow.models.dagrun import DagRun

    run_type = db.execute(select(DagRun.run_type).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id)).scalar()
    return str(getattr(run_type, "value", run_type) or "")[:50] or None


def _item(ti: Any, run_type: str | None, summary: Any) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """The key, the ``aep_delivery`` row and the summary of one task-instance try (``ti``: a TI or TI-history row)."""
    key = {
        "dag_id": ti.dag_id,
        "task_id": ti.task_id,
        "run_id": ti.run_id,
        "map_index": ti.map_index,
        "try_number": ti.try_number,
    }
    row = {
        **key,
        **records.delivery_row(summary),
        "run_type": run_type,
        "state": str(getattr(ti.state, "value", ti.state) or "")[:20] or None,
        "start_date": ti.start_date,
        "end_date": ti.end_date,
    }
    return key, row, summary


def record_dag_run(session: Session, dag_id: str, run_id: str) -> int:
    """
    Store the run summaries the task instances of one DAG run left (one row per task-instance
    try; storing the same try again replaces it). Returns how many were stored.

    Runs inside the caller's transaction (the scheduler's, when its listener calls it): see :func:`_write`.
    """
    from airflow.models.taskinstance import TaskInstance

    summaries = _summaries(session, dag_id, run_id)
    if not summaries:
        return 0
    run_type = _run_type(session, dag_id, run_id)
    tis = session.execute(
        select(
            TaskInstance.dag_id,
            TaskInstance.task_id,
            TaskInstance.run_id,
            TaskInstance.map_index,
            TaskInstance.try_number,
            TaskInstance.state,
            TaskInstance.start_date,
            TaskInstance.end_date,
        ).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    ).all()
    items = [
        _item(ti, run_type, summaries[(ti.task_id, ti.map_index)])
        for ti in tis
        if (ti.task_id, ti.map_index) in summaries
    ]
    if items:
        _write(session.connection(), items)
    return len(items)


def record_try(conn: Connection, ti: Any) -> int:
    """
    Store the run summary of one try Airflow is archiving (a ``TaskInstanceHistory`` row: the try
    failed and will be retried, or it was cleared), read from the XComs it left, which the next try
    clears when it starts. Returns how many rows were stored (0 or 1).

    Runs on ``conn``, inside the transaction that archives the try: see :func:`_write`.
    """
    summary = _summaries(conn, ti.dag_id, ti.run_id, (ti.task_id, ti.map_index)).get((ti.task_id, ti.map_index))
    if summary is None:
        return 0
    _write(conn, [_item(ti, _run_type(conn, ti.dag_id, ti.run_id), summary)])
    return 1


def _write(conn: Connection, items: list[tuple[dict[str, Any], dict[str, Any], Any]]) -> None:
    """
    Replace the rows of these tries, in a savepoint of the caller's transaction.

    Everything is read before (the ORM's autoflush of the caller's pending changes happens
    there, outside the savepoint), and only Core statements on the provider's tables run inside:
    a failure rolls back exactly these rows. A connection-level savepoint, because the
    scheduler forbids any Session-level commit while it holds its locks (and a Session
    savepoint's release counts as one).
    """
    with conn.begin_nested():
        for key, row, summary in items:
            old = conn.scalar(select(deliveries.c.id).where(*(deliveries.c[k] == v for k, v in key.items())))
            if old is not None:
                for table in CHILD_TABLES:
                    conn.execute(delete(table).where(table.c.delivery_id == old))
                conn.execute(delete(deliveries).where(deliveries.c.id == old))
            inserted: Any = conn.execute(insert(deliveries).values(**row))
            delivery_id = inserted.inserted_primary_key[0]
            for table, rows in (
                (ranges, records.range_rows(summary)),
                (marks, records.mark_rows(summary)),
                (reasons, records.reason_rows(summary)),
            ):
                _insert_all(conn, table, delivery_id, rows)


def _insert_all(conn: Connection, table: Any, delivery_id: int, rows: Iterable[dict[str, Any]]) -> None:
    values = [{**r, "delivery_id": delivery_id} for r in rows]
    if values:
        conn.execute(insert(table), values)
