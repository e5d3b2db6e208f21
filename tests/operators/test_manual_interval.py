"""A manual run whose data interval was set by hand in the Trigger form replays it; Airflow's own inferred interval drains."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pendulum
import pytest
from airflow.sdk import DAG, CronDataIntervalTimetable, DeltaDataIntervalTimetable

from aep_provider.operators.manual_interval import inferred_interval, interval_set_by_hand
from aep_provider.operators.run_mode import replay_window

LOGICAL = pendulum.datetime(2026, 11, 30, 12, 3, 20, tz="UTC")  # what the Trigger form pre-fills: "now"
NOW = datetime(2026, 11, 30, 12, 5, tzinfo=timezone.utc)


def _dag(schedule) -> DAG:
    return DAG(dag_id="manual_interval", schedule=schedule, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"))


def _context(start, end, *, run_type="manual", logical_date=LOGICAL, schedule=None):
    schedule = schedule or CronDataIntervalTimetable("*/5 * * * *", timezone="UTC")
    return {
        "dag": _dag(schedule),
        "dag_run": SimpleNamespace(run_type=run_type, conf={}),
        "logical_date": logical_date,
        "data_interval_start": start,
        "data_interval_end": end,
        "params": {},
    }


def _window(context):
    return replay_window(context, mode="auto", start=None, end=None, scope="handed_over", lateness_seconds=0, now=NOW)


def test_airflows_own_interval_is_the_last_complete_one_before_the_logical_date():
    timetable = CronDataIntervalTimetable("*/5 * * * *", timezone="UTC")
    assert inferred_interval(timetable, LOGICAL) == (
        pendulum.datetime(2026, 11, 30, 11, 55, tz="UTC"),
        pendulum.datetime(2026, 11, 30, 12, 0, tz="UTC"),
    )


def test_a_manual_run_with_the_interval_airflow_infers_drains():
    start, end = inferred_interval(CronDataIntervalTimetable("*/5 * * * *", timezone="UTC"), LOGICAL)
    context = _context(start, end)
    assert not interval_set_by_hand(context)
    assert _window(context) is None


def test_a_manual_run_with_an_interval_set_by_hand_replays_it():
    start, end = pendulum.datetime(2026, 11, 28, 10, tz="UTC"), pendulum.datetime(2026, 11, 28, 11, tz="UTC")
    context = _context(start, end)
    assert interval_set_by_hand(context)
    window = _window(context)
    assert window.describe() == "[2026-11-28T10:00:00Z, 2026-11-28T11:00:00Z)"
    assert window.source == "the manual run's data interval"


def test_a_delta_timetable_is_understood_too():
    schedule = DeltaDataIntervalTimetable(timedelta(minutes=7))
    start, end = inferred_interval(schedule, LOGICAL)
    assert end - start == timedelta(minutes=7)
    assert not interval_set_by_hand(_context(start, end, schedule=schedule))
    assert interval_set_by_hand(_context(start - timedelta(minutes=1), end, schedule=schedule))


@pytest.mark.parametrize(
    "changes",
    [
        {"run_type": "scheduled"},  # its interval is the schedule's, whatever it is
        {"run_type": "asset_triggered"},
        {"logical_date": None},  # Airflow dropped the interval: nothing to tell
    ],
)
def test_other_runs_and_runs_without_a_logical_date_drain(changes):
    start, end = pendulum.datetime(2026, 11, 28, 10, tz="UTC"), pendulum.datetime(2026, 11, 28, 11, tz="UTC")
    context = _context(start, end, **changes)
    assert not interval_set_by_hand(context)
    assert _window(context) is None


def test_a_timetable_airflow_cannot_infer_from_counts_as_not_set_by_hand():
    context = _context(pendulum.datetime(2026, 11, 28, 10, tz="UTC"), pendulum.datetime(2026, 11, 28, 11, tz="UTC"))
    context["dag"] = SimpleNamespace(timetable=object())
    assert not interval_set_by_hand(context)
