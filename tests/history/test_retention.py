"""The history's retention: runs that ended before it go, with their ranges, marks and reasons; in bounded batches."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, insert, select

from aep_provider.history import retention
from aep_provider.history.models import CHILD_TABLES, deliveries, marks, ranges, reasons

pytestmark = pytest.mark.integration

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


def _add_run(conn, dag_id: str, ended: datetime) -> int:
    delivery_id = conn.execute(
        insert(deliveries).values(
            dag_id=dag_id, task_id="t", run_id=f"r-{uuid.uuid4().hex[:6]}", map_index=-1, try_number=1, mode="drain",
            delivered=1, rejected=1, dead_lettered=1, skipped=0, end_date=ended,
        )
    ).inserted_primary_key[0]  # fmt: skip
    part = {"delivery_id": delivery_id, "topic": "x", "kafka_partition": 0, "start_offset": 0, "end_offset": 2}
    conn.execute(insert(ranges).values(**part))
    conn.execute(insert(marks).values(**part, kind="dead_lettered", label="AEP 400"))
    conn.execute(insert(reasons).values(delivery_id=delivery_id, reason="AEP 400", count=1))
    return delivery_id


def _rows(conn, delivery_ids: list[int]) -> list[int]:
    """Rows of these runs in each table (the run's own, then its ranges, marks and reasons)."""
    return [
        conn.scalar(select(func.count()).select_from(table).where(column.in_(delivery_ids)))
        for table, column in ((deliveries, deliveries.c.id), *((t, t.c.delivery_id) for t in CHILD_TABLES))
    ]


def test_runs_past_the_retention_go_with_their_rows_oldest_first_in_bounded_batches(airflow_db):
    from airflow import settings

    dag_id = f"retention_{uuid.uuid4().hex[:8]}"
    with settings.engine.begin() as conn:
        old = [_add_run(conn, dag_id, NOW - timedelta(days=40 + n)) for n in range(3)]
        kept = _add_run(conn, dag_id, NOW - timedelta(days=10))
        assert retention.prune(conn, days=0, now=NOW) == 0  # 0 keeps everything
        assert retention.prune(conn, days=30, now=NOW, limit=2) == 2
        assert set(conn.scalars(select(deliveries.c.id).where(deliveries.c.dag_id == dag_id))) == {old[0], kept}
        assert retention.prune(conn, days=30, now=NOW) == 1
        assert _rows(conn, old) == [0, 0, 0, 0]
        assert _rows(conn, [kept]) == [1, 1, 1, 1]


def test_the_retention_is_an_airflow_option_with_a_default(airflow_db, monkeypatch):
    assert retention.retention_days() == retention.DEFAULT_DAYS
    monkeypatch.setenv("AIRFLOW__AEP_PROVIDER__HISTORY_RETENTION_DAYS", "7")
    assert retention.retention_days() == 7
