"""Which runs replay and which drain, from what Airflow puts in the task's context."""

from __future__ import annotations

from datetime import datetime, timezone
from types import SimpleNamespace

import pytest

from aep_provider.engine import ReplayError, ReplayScope
from aep_provider.operators.run_mode import redrive_requested, replay_window

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=timezone.utc)
DAY1, DAY2 = datetime(2026, 11, 28, tzinfo=timezone.utc), datetime(2026, 11, 29, tzinfo=timezone.utc)


def _context(run_type="scheduled", start=DAY1, end=DAY2, conf=None, params=None):
    return {
        "dag_run": SimpleNamespace(run_type=run_type, conf=conf or {}),
        "data_interval_start": start,
        "data_interval_end": end,
        "params": params or {},
    }


def _window(context, mode="auto", start=None, end=None, scope=None, naive_timezone="UTC"):
    return replay_window(
        context,
        mode=mode,
        start=start,
        end=end,
        scope=scope,
        lateness_seconds=60,
        now=NOW,
        naive_timezone=naive_timezone,
    )


@pytest.mark.parametrize("run_type", ["scheduled", "manual", "asset_triggered"])
def test_every_run_but_a_backfill_drains(run_type):
    assert _window(_context(run_type)) is None


def test_a_backfill_run_replays_its_data_interval():
    window = _window(_context("backfill"))
    assert window.describe() == "[2026-11-28T00:00:00Z, 2026-11-29T00:00:00Z)"
    assert (window.scope, window.lateness_ms, window.source) == (
        ReplayScope.HANDED_OVER,
        60_000,
        "the backfill run's data interval",
    )


def test_run_type_as_an_enum_is_understood():
    from airflow.utils.types import DagRunType

    assert _window(_context(DagRunType.BACKFILL_JOB)) is not None


def test_manual_run_with_conf_or_params_replays_that_interval_with_its_scope():
    conf = {"replay_start": "2026-11-28T06:00:00Z", "replay_end": "2026-11-28T07:00:00Z", "replay_scope": "all"}
    window = _window(_context("manual", conf=conf))
    assert window.describe() == "[2026-11-28T06:00:00Z, 2026-11-28T07:00:00Z)" and window.scope is ReplayScope.ALL
    # The UI's Trigger form fills params; unset params render as None.
    params = {"replay_start": "2026-11-28T06:00:00Z", "replay_end": "2026-11-28T08:00:00Z", "replay_scope": None}
    assert _window(_context("manual", params=params)).end_ms - window.start_ms == 2 * 3_600_000
    # Explicit operator arguments win; a rendered empty template means "not set".
    assert (
        _window(_context("manual", conf=conf), start="2026-11-28T05:00:00Z", end="None")
        .describe()
        .startswith("[2026-11-28T05:00:00Z, 2026-11-28T07:00:00Z)")
    )


def test_one_precedence_for_start_end_and_scope_the_operators_argument_first():
    """Argument given to the operator, then the run's params, then its conf; the scope follows the same rule."""
    conf = {"replay_start": "2026-11-28T06:00:00Z", "replay_end": "2026-11-28T07:00:00Z", "replay_scope": "all"}
    window = _window(_context("manual", conf=conf), start="2026-11-28T05:00:00Z", scope="handed_over")
    assert window.describe() == "[2026-11-28T05:00:00Z, 2026-11-28T07:00:00Z)"
    assert window.scope is ReplayScope.HANDED_OVER
    # Params (the Trigger form) before conf, for the scope as for the interval.
    params = {"replay_start": "2026-11-28T04:00:00Z", "replay_scope": "handed_over"}
    window = _window(_context("manual", conf=conf, params=params))
    assert window.describe() == "[2026-11-28T04:00:00Z, 2026-11-28T07:00:00Z)"
    assert window.scope is ReplayScope.HANDED_OVER
    # Nothing given anywhere: the default scope.
    assert _window(_context("backfill")).scope is ReplayScope.HANDED_OVER


def test_epoch_millisecond_strings_from_the_trigger_form_and_naive_times_in_airflows_zone():
    params = {"replay_start": "1796452740308", "replay_end": "2026-12-05T08:00:00"}
    now = datetime(2026, 12, 6, tzinfo=timezone.utc)
    window = replay_window(
        _context("manual", params=params), mode="auto", start=None, end=None, scope=None, lateness_seconds=60,
        now=now, naive_timezone="Europe/Paris",
    )  # fmt: skip
    assert window.describe() == "[2026-12-05T06:39:00.308000Z, 2026-12-05T07:00:00Z)"


def test_mode_drain_never_replays_and_mode_replay_always_does():
    assert _window(_context("backfill"), mode="drain") is None
    assert _window(_context("scheduled"), mode="replay").start_ms == int(DAY1.timestamp() * 1000)


def test_zero_length_backfill_interval_names_the_timetable_to_use():
    with pytest.raises(
        ReplayError, match=r"backfill run's data interval .* is empty.*CronTriggerTimetable.*CronDataIntervalTimetable"
    ):
        _window(_context("backfill", start=DAY1, end=DAY1))


@pytest.mark.parametrize(
    ("conf", "match"),
    [
        ({"replay_start": "2026-11-28T00:00:00Z"}, "needs both replay_start and replay_end; got only replay_start"),
        ({"replay_start": "2026-11-29T00:00:00Z", "replay_end": "2026-11-28T00:00:00Z"}, "ends before it starts"),
        ({"replay_start": "2026-11-30T00:00:00Z", "replay_end": "2026-12-30T00:00:00Z"}, "ends in the future"),
        (
            {"replay_start": "2026-11-28", "replay_end": "2026-11-29", "replay_scope": "most"},
            "replay_scope must be one of",
        ),
    ],
)
def test_bad_manual_replays_are_one_clear_error(conf, match):
    with pytest.raises(ReplayError, match=match):
        _window(_context("manual", conf=conf))


def test_unknown_mode_is_rejected():
    with pytest.raises(ValueError, match="mode must be one of 'auto', 'drain', 'replay'"):
        _window(_context(), mode="sometimes")


# -- redrives ---------------------------------------------------------------------------------


def _redrive(context, mode="auto", task_id="drain", **replay):
    context.setdefault("dag", SimpleNamespace(task_ids=["drain", "other", "report"]))
    return redrive_requested(context, mode=mode, task_id=task_id, **replay)


@pytest.mark.parametrize(
    ("conf", "asked"),
    [
        ({}, False),
        ({"redrive": True}, True),
        ({"redrive": False}, False),
        ({"redrive": "drain"}, True),
        ({"redrive": "other"}, False),
        ({"redrive": ["other", "drain"]}, True),
        ({"redrive": None}, False),
    ],
)
def test_a_manual_run_redrives_the_tasks_its_conf_names(conf, asked):
    assert _redrive(_context("manual", conf=conf)) is asked
    # The Trigger form fills params (conf overrides declared params): the same values work there.
    assert _redrive(_context("manual", params=conf)) is asked


def test_mode_redrive_makes_every_run_a_redrive_and_never_a_replay():
    assert _redrive(_context("scheduled"), mode="redrive") is True
    assert _window(_context("backfill"), mode="redrive") is None
    assert _redrive(_context("manual", conf={"redrive": "drain"}), mode="drain") is True


@pytest.mark.parametrize(
    ("context", "mode", "replay", "match"),
    [
        (
            _context("manual", conf={"redrive": True, "replay_start": "2026-11-28", "replay_end": "2026-11-29"}),
            "auto",
            {},
            r"conf redrive=True asks for a redrive of the dead-letter topic, and replay_start/replay_end for a "
            r"replay of an interval: a run does one or the other",
        ),
        (
            _context("manual", conf={"redrive": "drain"}),
            "auto",
            {"replay_end": "2026-11-29"},
            r"and replay_end for a replay",
        ),
        (
            _context("scheduled", params={"replay_start": "2026-11-28"}),
            "redrive",
            {},
            r"mode='redrive' asks .*replay_start",
        ),
        (_context("manual", conf={"redrive": True}), "replay", {}, r"task 'drain' has mode='replay'"),
        (_context("backfill", conf={"redrive": "drain"}), "auto", {}, r"in a backfill run, which replays its data"),
        (_context("manual", conf={"redrive": 1}), "auto", {}, r"must be true, a task id or a list of task ids, got 1"),
        (_context("manual", conf={"redrive": ["drian"]}), "auto", {}, r"names task\(s\) 'drian', which this DAG"),
    ],
)
def test_a_conflicting_or_unclear_redrive_request_is_one_error_naming_the_keys(context, mode, replay, match):
    with pytest.raises(ValueError, match=match):
        _redrive(context, mode=mode, **replay)
