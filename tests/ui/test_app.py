"""The deliveries app (JSON API and page) over runs stored as the listener stores them, called with a real token."""

from __future__ import annotations

import re
import uuid
from datetime import datetime, timedelta, timezone

import pytest

from tests.history.support import record, summary

pytestmark = pytest.mark.integration

CHECKED = {"status": "checked", "detail": ""}


@pytest.fixture(scope="module")
def client(airflow_db):
    """A client of the plugin's app and a viewer's bearer token (Airflow's auth manager decides, as in the API server)."""
    from airflow.api_fastapi.app import init_auth_manager
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from fastapi.testclient import TestClient

    from aep_provider.ui.app import create_app

    token = init_auth_manager().generate_jwt(SimpleAuthManagerUser(username="viewer", role="viewer"))
    with TestClient(create_app(), headers={"Authorization": f"Bearer {token}"}) as client:
        yield client


def _table(html: str, table_id: str) -> list[list[str]]:
    """The cells of each row of the table with this id (no rows: the table is not there)."""
    found = re.search(rf'<table id="{table_id}">(.*?)</table>', html, re.S)
    rows = re.findall(r"<tr>(.*?)</tr>", found.group(1), re.S) if found else []
    return [re.findall(r"<td[^>]*>(.*?)</td>", row, re.S) for row in rows if "<td" in row]


def test_the_api_and_the_page_show_aeps_failures_by_reason_next_to_the_rejections(client):
    dag_id = f"page_{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    failed = record(dag_id, "drain", now - timedelta(hours=2), summary(
        rejected=1, rejected_by_reason={"AEP 400": 1}, failed_in_aep=4, failed_in_aep_check=CHECKED,
        failed_in_aep_by_reason={"/timestamp: format (AEP)": 3, "INGEST-1212-400 (AEP)": 1},
    ))  # fmt: skip
    record(dag_id, "drain", now - timedelta(hours=1), summary(failed_in_aep=0, failed_in_aep_check=CHECKED))

    data = client.get("/api/v1/deliveries", params={"dag_id": dag_id, "task_id": "drain"}).json()
    assert data["failed_in_aep_by_reason"] == [
        {"reason": "/timestamp: format (AEP)", "count": 3, "runs": 1},
        {"reason": "INGEST-1212-400 (AEP)", "count": 1, "runs": 1},
    ]
    assert data["rejections_by_reason"] == [{"reason": "AEP 400", "count": 1, "runs": 1}]
    assert data["totals"]["failed_in_aep"] == 4
    assert [(r["run_id"], r["failed_in_aep_by_reason"]) for r in data["runs"]][1] == (
        failed, {"/timestamp: format (AEP)": 3, "INGEST-1212-400 (AEP)": 1},
    )  # fmt: skip

    page = client.get(f"/dags/{dag_id}/tasks/drain")
    assert page.status_code == 200
    assert "<h2>AEP's failures by reason (since " in page.text
    assert _table(page.text, "aep-failures") == [
        ["/timestamp: format (AEP)", "3", "1"], ["INGEST-1212-400 (AEP)", "1", "1"],
    ]  # fmt: skip
    assert _table(page.text, "reasons") == [["AEP 400", "1", "1"]]  # the rejections: a table of their own
    assert 'title="/timestamp: format (AEP): 3; INGEST-1212-400 (AEP): 1">4</td>' in page.text  # the run's cell


def test_the_page_says_whether_aep_reported_no_failure_or_was_not_asked(client):
    checked, unchecked = f"checked_{uuid.uuid4().hex[:8]}", f"unchecked_{uuid.uuid4().hex[:8]}"
    now = datetime.now(timezone.utc)
    record(checked, "drain", now, summary(failed_in_aep=0, failed_in_aep_check=CHECKED))
    # Without dataset_id the check is skipped: its 0 means "not looked", not "nothing failed".
    record(unchecked, "drain", now, summary(failed_in_aep=0, failed_in_aep_check={"status": "skipped"}))

    for dag_id, says in ((checked, "No failure reported by AEP."), (unchecked, "Not known: no run shown checked")):
        assert client.get("/api/v1/deliveries", params={"dag_id": dag_id}).json()["failed_in_aep_by_reason"] == []
        page = client.get(f"/dags/{dag_id}").text
        assert _table(page, "aep-failures") == [] and says in page
