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


def _summaries(session: Session, dag_id: str, run_id: str) -> dict[tuple[str, int], Any]:
    """Each task instance's run summary in this DAG run, keyed by (task_id, map_index)."""
    from airflow.models.xcom import XComModel

    rows = session.execute(
        select(XComModel.task_id, XComModel.map_index, XComModel.key, XComModel.value).where(
            XComModel.dag_id == dag_id, XComModel.run_id == run_id, XComModel.key.in_(SUMMARY_KEYS)
        )
    ).all()
    found: dict[tuple[str, int], Any] = {}
    # return_value first: a successful run's summary wins over an interrupted try's.
    for row in sorted(rows, key=lambda r: SUMMARY_KEYS.index(r.key)):
        key = (row.task_id, row.map_index)
        if key in found:
            continue
        value = XComModel.deserialize_value(row)
        if records.is_run_summary(value):
            found[key] = value
    return found


def record_dag_run(session: Session, dag_id: str, run_id: str) -> int:
    """
    Store the run summaries the task instances of one DAG run left (one row per task-instance
    try; storing the same try again replaces it). Returns how many were stored.

    Runs inside the caller's transaction (the scheduler's, when its listener calls it): see :func:`_write`.
    """
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    summaries = _summaries(session, dag_id, run_id)
    if not summaries:
        return 0
    run_type = session.scalar(select(DagRun.run_type).where(DagRun.dag_id == dag_id, DagRun.run_id == run_id))
    tis = session.execute(
        select(
            TaskInstance.task_id,
            TaskInstance.map_index,
            TaskInstance.try_number,
            TaskInstance.state,
            TaskInstance.start_date,
            TaskInstance.end_date,
        ).where(TaskInstance.dag_id == dag_id, TaskInstance.run_id == run_id)
    ).all()
    items = []
    for ti in tis:
        summary = summaries.get((ti.task_id, ti.map_index))
        if summary is None:
            continue
        key = {
            "dag_id": dag_id,
            "task_id": ti.task_id,
            "run_id": run_id,
            "map_index": ti.map_index,
            "try_number": ti.try_number,
        }
        row = {
            **key,
            **records.delivery_row(summary),
            "run_type": str(getattr(run_type, "value", run_type) or "")[:50] or None,
            "state": str(getattr(ti.state, "value", ti.state) or "")[:20] or None,
            "start_date": ti.start_date,
            "end_date": ti.end_date,
        }
        items.append((key, row, summary))
    if items:
        _write(session.connection(), items)
    return len(items)


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
