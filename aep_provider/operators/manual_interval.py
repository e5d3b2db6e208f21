"""
Whether a manual run's data interval was set by hand (Trigger form → Data Interval → Specify Manually).

Airflow 3.3 records a hand-set interval exactly like the one it infers itself: as the run's
``data_interval_start``/``data_interval_end``, with no mark of where it came from (and it drops a
hand-set interval when the run has no logical date). The run can still tell them apart: an
inferred interval is the one the DAG's timetable infers from the logical date
(``infer_manual_data_interval``), so any other interval was set by hand.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

log = logging.getLogger(__name__)


def inferred_interval(timetable: Any, logical_date: datetime) -> tuple[datetime, datetime] | None:
    """
    The data interval Airflow gives a manual run with this logical date, or None when it cannot be computed.

    The task sees the DAG's SDK timetable; the inference lives in its server-side (core) counterpart,
    which Airflow derives with the same conversion the DAG processor uses.
    """
    try:
        import pendulum
        from airflow.serialization.encoders import coerce_to_core_timetable

        interval = coerce_to_core_timetable(timetable).infer_manual_data_interval(
            run_after=pendulum.instance(logical_date)
        )
    except Exception as err:  # an Airflow without the conversion, a custom timetable it cannot convert
        log.info("Cannot tell whether this manual run's data interval was set by hand (%s); it drains", err)
        return None
    return interval.start, interval.end


def interval_set_by_hand(context: Mapping[str, Any]) -> bool:
    """True for a manual run whose data interval is not the one Airflow infers from its logical date."""
    dag_run = context.get("dag_run")
    run_type = getattr(dag_run, "run_type", None)
    if str(getattr(run_type, "value", run_type) or "") != "manual":
        return False
    start, end = context.get("data_interval_start"), context.get("data_interval_end")
    logical_date, dag = context.get("logical_date"), context.get("dag")
    if start is None or end is None or logical_date is None or dag is None:
        return False
    inferred = inferred_interval(dag.timetable, logical_date)
    return inferred is not None and (start, end) != inferred
