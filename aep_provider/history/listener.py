"""
Scheduler-side listener: when a DAG run ends, its KafkaToAEPOperator summaries go to the history.

Registered by the provider's plugin; imported in every Airflow process (task processes too),
so nothing here imports more than the listener marker until a DAG run actually ends.
"""

from __future__ import annotations

import logging
from typing import Any

from airflow.listeners import hookimpl

log = logging.getLogger(__name__)


def record(dag_run: Any) -> None:
    """Store the run's summaries in the scheduler's own transaction; never raises (it runs inside the scheduler loop)."""
    try:
        from sqlalchemy.orm import object_session

        from aep_provider.history.ingest import record_dag_run

        session = object_session(dag_run)
        if session is None:
            from airflow.utils.session import create_session

            with create_session() as own:
                record_dag_run(own, dag_run.dag_id, dag_run.run_id)
            return
        record_dag_run(session, dag_run.dag_id, dag_run.run_id)
    except Exception:
        log.warning(
            "aep-provider: could not record the deliveries of DAG run %s/%s in its history (has `airflow db "
            "migrate` run since the provider was installed?)",
            getattr(dag_run, "dag_id", "?"),
            getattr(dag_run, "run_id", "?"),
            exc_info=True,
        )


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    record(dag_run)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    record(dag_run)
