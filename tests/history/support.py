"""Test support: run summaries into the history through the listener's own write path (no DAG run needed)."""

from __future__ import annotations

import uuid
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from aep_provider.history import ingest


def summary(**counts: Any) -> dict[str, Any]:
    """A drain's run summary (as the operator returns it) with these keys set."""
    return {"mode": "drain", "delivered": 10, "rejected": 0, "partitions": {}, "stopped_by": "end", **counts}


def record(dag_id: str, task_id: str, ended: datetime, run_summary: dict[str, Any]) -> str:
    """Store ``run_summary`` as one finished try of ``dag_id.task_id`` as the listener does; returns its run id."""
    from airflow import settings

    ti = SimpleNamespace(
        dag_id=dag_id, task_id=task_id, run_id=f"manual__{uuid.uuid4().hex[:8]}", map_index=-1, try_number=1,
        state="success", start_date=ended, end_date=ended,
    )  # fmt: skip
    with settings.engine.begin() as conn:
        ingest._write(conn, [ingest._item(ti, "manual", run_summary)])
    return ti.run_id
