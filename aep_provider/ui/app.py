"""
The deliveries app mounted under ``/aep``: a JSON API (``/aep/api/v1/...``) and the HTML pages
built from the very same payloads.

Airflow enforces nothing on a mounted app: every route depends on ``requires_access_dag``
(the DAG named in the path or query, or DAG read access in general) and lists only the DAGs the
auth manager lets the user read. The auth manager is the global one (``get_auth_manager()``):
``request.app.state`` here is this sub-app's, not the API server's.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Annotated, Any

# This module is imported only when the API server builds the app (see plugin.py), never in task processes.
from airflow.api_fastapi.app import get_auth_manager
from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails
from airflow.api_fastapi.common.db.common import SessionDep
from airflow.api_fastapi.core_api.security import GetUserDep, requires_access_dag
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request, status
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from aep_provider.history import queries
from aep_provider.ui import answers, pages

#: Rejections and AEP's failures by reason cover this many days.
REASONS_DAYS = 7


def readable_dag_ids(user: Any, session: Any, dag_id: str | None = None) -> set[str]:
    """The DAGs this user may read (just ``dag_id`` when given: its access was checked by the route)."""
    if dag_id is not None:
        return {dag_id}
    return set(get_auth_manager().get_authorized_dag_ids(user=user, method="GET", session=session))


def redrive_payload(session: Any, user: Any, dag_id: str, task_id: str) -> dict[str, Any] | None:
    """
    The task's dead-letter topic and its redrive (see :func:`queries.redrive_status`), with whether
    this user may trigger the DAG (the button posts to Airflow's own REST API, which decides) and
    whether the DAG is paused (a triggered run then waits).
    """
    from airflow.models.dag import DagModel

    found = queries.redrive_status(session, dag_id, task_id)
    if found is None:
        return None
    found["may_trigger"] = get_auth_manager().is_authorized_dag(
        method="POST",
        access_entity=DagAccessEntity.RUN,
        details=DagDetails(id=dag_id, team_name=DagModel.get_team_name(dag_id, session=session)),
        user=user,
    )
    found["dag_paused"] = bool(session.scalar(select(DagModel.is_paused).where(DagModel.dag_id == dag_id)))
    return found


def create_app() -> FastAPI:
    read_dag = Depends(requires_access_dag("GET", DagAccessEntity.TASK_INSTANCE))
    app = FastAPI(title="AEP deliveries", docs_url=None, redoc_url=None, openapi_url="/api/v1/openapi.json")
    api = APIRouter(prefix="/api/v1", dependencies=[read_dag])
    ui = APIRouter(dependencies=[read_dag], default_response_class=HTMLResponse)

    def deliveries_payload(
        session: Any, user: Any, dag_id: str | None, task_id: str | None, limit: int
    ) -> dict[str, Any]:
        dag_ids = readable_dag_ids(user, session, dag_id)
        run_list = queries.runs(session, dag_ids, task_id, limit=limit)
        since = datetime.now(timezone.utc) - timedelta(days=REASONS_DAYS)
        return {
            "dag_id": dag_id,
            "task_id": task_id,
            "tasks": queries.tasks(session, dag_ids),
            "runs": run_list,
            "totals": queries.totals(run_list),
            "rejections_by_reason": queries.rejections_by_reason(session, dag_ids, task_id, since=since),
            "rejections_since": since.isoformat(),
            # Sent, accepted, then failed by AEP: apart from the rejections (never sent); same window.
            "failed_in_aep_by_reason": queries.failed_in_aep_by_reason(session, dag_ids, task_id, since=since),
            "redrive": redrive_payload(session, user, dag_id, task_id) if dag_id and task_id else None,
        }

    def where_payload(session: Any, user: Any, topic: str, partition: int, offset: int, dag_id: str | None) -> dict:
        found = queries.where(session, topic, partition, offset, readable_dag_ids(user, session, dag_id))
        for answer in found["answers"] + found["replays"]:
            answer["text"] = answers.describe(answer, offset)
        if not found["answers"] and not found["replays"]:
            found["text"] = (
                f"No run in the history read {topic}[{partition}]"
                + (f" in DAG {dag_id}" if dag_id else " in the DAGs you may read")
                + ": check the topic name and partition, or whether this topic's task has run since the provider was installed."
            )
        return found

    @api.get("/deliveries")
    def deliveries(
        session: SessionDep,
        user: GetUserDep,
        dag_id: Annotated[str, Query(min_length=1)],
        task_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = queries.DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """Runs of the DAG's (or task's) KafkaToAEPOperator tasks with their counts, newest first."""
        return deliveries_payload(session, user, dag_id, task_id, limit)

    @api.get("/where")
    def where(
        session: SessionDep,
        user: GetUserDep,
        topic: Annotated[str, Query(min_length=1, max_length=249)],
        partition: Annotated[int, Query(ge=0)],
        offset: Annotated[int, Query(ge=0)],
        dag_id: str | None = None,
    ) -> dict[str, Any]:
        """Where the record at topic/partition/offset went: delivered, dead-lettered, skipped, or not yet drained."""
        return where_payload(session, user, topic, partition, offset, dag_id)

    def search(request: Request) -> tuple[str, int, int] | None:
        q = request.query_params
        if not q.get("topic"):
            return None
        try:
            return q["topic"], int(q.get("partition", "")), int(q.get("offset", ""))
        except ValueError:
            raise HTTPException(
                status.HTTP_400_BAD_REQUEST,
                "partition and offset must be whole numbers (e.g. partition 3, offset 1234)",
            ) from None

    def page(request: Request, session: Any, user: Any, dag_id: str | None, task_id: str | None) -> str:
        data = deliveries_payload(session, user, dag_id, task_id, queries.DEFAULT_LIMIT)
        asked = search(request)
        found = where_payload(session, user, *asked, dag_id) if asked else None
        return pages.render(request, data, found, run_id=request.query_params.get("run_id"))

    @ui.get("/")
    def nav_page(request: Request, session: SessionDep, user: GetUserDep) -> str:
        return page(request, session, user, None, None)

    @ui.get("/dags/{dag_id}")
    def dag_page(request: Request, session: SessionDep, user: GetUserDep, dag_id: str) -> str:
        return page(request, session, user, dag_id, None)

    @ui.get("/dags/{dag_id}/tasks/{task_id}")
    def task_page(request: Request, session: SessionDep, user: GetUserDep, dag_id: str, task_id: str) -> str:
        return page(request, session, user, dag_id, task_id)

    app.include_router(api)
    app.include_router(ui)
    return app
