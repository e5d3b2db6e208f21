"""The deliveries page's queries over runs stored as the listener stores them."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest

from aep_provider.history import queries
from tests.history.support import record, summary

pytestmark = pytest.mark.integration

NOW = datetime.now(timezone.utc)
CHECKED = {"status": "checked", "detail": ""}


def test_aeps_failures_are_summed_by_reason_apart_from_the_rejections(airflow_db):
    from airflow.utils.session import create_session

    dag_id = f"failures_{uuid.uuid4().hex[:8]}"
    first = record(dag_id, "drain", NOW - timedelta(hours=3), summary(
        rejected=2, rejected_by_reason={"invalid JSON": 2}, failed_in_aep=4, failed_in_aep_check=CHECKED,
        failed_in_aep_by_reason={"/timestamp: format (AEP)": 3, "INGEST-1212-400 (AEP)": 1},
    ))  # fmt: skip
    record(dag_id, "drain", NOW - timedelta(hours=2), summary(
        failed_in_aep=2, failed_in_aep_check=CHECKED, failed_in_aep_by_reason={"/timestamp: format (AEP)": 2},
    ))  # fmt: skip
    nothing = record(dag_id, "drain", NOW - timedelta(hours=1), summary(failed_in_aep=0, failed_in_aep_check=CHECKED))
    # Another task of the DAG, a run before the window, another DAG: each left out when asked.
    record(dag_id, "other", NOW - timedelta(hours=1), summary(
        failed_in_aep=5, failed_in_aep_check=CHECKED, failed_in_aep_by_reason={"/_id: required (AEP)": 5},
    ))  # fmt: skip
    record(dag_id, "drain", NOW - timedelta(days=9), summary(
        failed_in_aep=7, failed_in_aep_check=CHECKED, failed_in_aep_by_reason={"INGEST-1212-400 (AEP)": 7},
    ))  # fmt: skip
    record(f"{dag_id}_x", "drain", NOW, summary(
        failed_in_aep=1, failed_in_aep_check=CHECKED, failed_in_aep_by_reason={"INGEST-1212-400 (AEP)": 1},
    ))  # fmt: skip
    since = NOW - timedelta(days=7)

    with create_session() as session:
        assert queries.failed_in_aep_by_reason(session, {dag_id}, "drain", since=since) == [
            {"reason": "/timestamp: format (AEP)", "count": 5, "runs": 2},
            {"reason": "INGEST-1212-400 (AEP)", "count": 1, "runs": 1},
        ]
        # Whole DAG, no window: the other task's and the old run's count too; ties by reason.
        assert queries.failed_in_aep_by_reason(session, {dag_id}) == [
            {"reason": "INGEST-1212-400 (AEP)", "count": 8, "runs": 2},
            {"reason": "/_id: required (AEP)", "count": 5, "runs": 1},
            {"reason": "/timestamp: format (AEP)", "count": 5, "runs": 2},
        ]
        assert queries.failed_in_aep_by_reason(session, {"no_such_dag"}) == []
        # Never sent (rejected) and sent then failed by AEP stay apart.
        assert queries.rejections_by_reason(session, {dag_id}, "drain") == [
            {"reason": "invalid JSON", "count": 2, "runs": 1}
        ]
        by_run = {r["run_id"]: r for r in queries.runs(session, {dag_id}, "drain")}
        assert by_run[first]["failed_in_aep_by_reason"] == {"/timestamp: format (AEP)": 3, "INGEST-1212-400 (AEP)": 1}
        assert (by_run[nothing]["failed_in_aep"], by_run[nothing]["failed_in_aep_by_reason"]) == (0, {})
