"""
Scheduler-side listener: when a DAG run ends, its KafkaToAEPOperator summaries go to the history
(earlier tries of its task instances are recorded as Airflow archives them: :mod:`.tries`).

Registered by the provider's plugin; imported in every Airflow process (task processes too),
so nothing here imports more than the listener marker until a DAG run actually ends.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


def record(dag_run: Any) -> None:
    """
    Store the run's summaries in the scheduler's own transaction, and prune runs past the history's
    retention (:mod:`.retention`); never raises (it runs inside the scheduler loop).
    """
    try:
        from sqlalchemy.orm import object_session

        from aep_provider.history import retention
        from aep_provider.history.ingest import record_dag_run

        def record_in(session: Any) -> None:
            if record_dag_run(session, dag_run.dag_id, dag_run.run_id):
                retention.prune(session.connection(), days=retention.retention_days())

        session = object_session(dag_run)
        if session is None:
            from airflow.utils.session import create_session

            with create_session() as own:
                record_in(own)
            return
        record_in(session)
    except Exception:
        log.warning(
            "aep-provider: could not record the deliveries of DAG run %s/%s in its history (has `airflow db "
            "migrate` run since the provider was installed?)",
            getattr(dag_run, "dag_id", "?"),
            getattr(dag_run, "run_id", "?"),
            exc_info=True,
        )


def watch_tries_here() -> None:
    """
    Record the tries Airflow archives in this process (see :mod:`.tries`), if it works on the
    metadata database: it has loaded Airflow's ORM task-instance model (the scheduler, ``dag.test()``
    running tasks in process). A worker's task process never does, and is left alone.
    """
    if "airflow.models.taskinstance" not in sys.modules:
        return
    try:
        from aep_provider.history.tries import watch_tries

        watch_tries()
    except Exception:
        log.warning("aep-provider: could not watch for archived tries", exc_info=True)


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    watch_tries_here()


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    watch_tries_here()


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    record(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    record(dag_run)
