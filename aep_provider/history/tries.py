"""
Earlier tries of a task instance, recorded when Airflow archives them.

The DAG-run listener (:mod:`.listener`) sees only each task instance's last try: a retried try's
XComs are deleted when the next try starts, and no listener hook runs where a try is retried
(the worker reports it to the API server's execution API; ``on_task_instance_failed`` runs in the
task process, which cannot write the metadata database, or in the scheduler only for tries it
fails itself). What does run there, in the same transaction, is ``TaskInstanceHistory.record_ti``:
Airflow archives the try before the next one (a retry, a clear, a task the scheduler reset). An
``after_insert`` event on that model copies the archived try's summary, still in its XComs, into
the history, in a savepoint of that transaction.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)

_lock = threading.Lock()
_watching = False


def watch_tries() -> None:
    """Record every try Airflow archives in this process from now on (idempotent). Server processes only."""
    global _watching
    with _lock:
        if _watching:
            return
        from airflow.models.taskinstancehistory import TaskInstanceHistory
        from sqlalchemy import event

        event.listen(TaskInstanceHistory, "after_insert", _archived)
        _watching = True


def _archived(_mapper: Any, connection: Any, target: Any) -> None:
    """Runs inside Airflow's flush: never raises (a failure only costs this try's history row)."""
    try:
        from aep_provider.history.ingest import record_try

        record_try(connection, target)
    except Exception:
        log.warning(
            "aep-provider: could not record try %s of %s.%s in DAG run %s in the deliveries history (has `airflow "
            "db migrate` run since the provider was installed?)",
            getattr(target, "try_number", "?"),
            getattr(target, "dag_id", "?"),
            getattr(target, "task_id", "?"),
            getattr(target, "run_id", "?"),
            exc_info=True,
        )
