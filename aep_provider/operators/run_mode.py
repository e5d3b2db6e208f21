"""Which kind of run a task instance is: a drain of the group, or a replay of a past interval."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from aep_provider.engine.errors import ReplayError
from aep_provider.engine.replay import ReplayScope, ReplayWindow
from aep_provider.operators.manual_interval import interval_set_by_hand

#: Values of the operator's ``mode`` argument.
MODES = ("auto", "drain", "replay")

#: Keys a manual run's conf (or the DAG's params, as the UI's Trigger form fills them) may set.
CONF_START, CONF_END, CONF_SCOPE = "replay_start", "replay_end", "replay_scope"

_ZERO_LENGTH_HINT = (
    "The DAG's timetable gives zero-length data intervals (in Airflow 3 a plain cron string means "
    "CronTriggerTimetable). Schedule it with CronDataIntervalTimetable('<cron>', timezone='UTC') so that each "
    "run, and each backfill run, covers a real interval; or trigger a manual run with replay_start and replay_end."
)


def validate_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(repr(m) for m in MODES)}, got {mode!r}")
    return mode


def _given(value: Any) -> bool:
    # A rendered template of an unset param arrives as "None" or "".
    return value is not None and not (isinstance(value, str) and value.strip() in ("", "None"))


def _run_type(dag_run: Any) -> str:
    run_type = getattr(dag_run, "run_type", None)
    return str(getattr(run_type, "value", run_type) or "")


def replay_window(
    context: Mapping[str, Any],
    *,
    mode: str,
    start: Any,
    end: Any,
    scope: str | ReplayScope | None,
    lateness_seconds: float,
    now: datetime | None = None,
    naive_timezone: str = "UTC",
) -> ReplayWindow | None:
    """
    The interval this run replays, or None when it drains the group.

    - ``mode="drain"``: always a drain.
    - An explicit interval makes the run a replay of it, whatever the run type.
    - ``mode="auto"``: a ``backfill`` run replays its data interval, and so does a manual run whose
      interval was set by hand in the Trigger form; every other run drains.
    - ``mode="replay"``: every run replays its data interval.

    One rule for ``replay_start``, ``replay_end`` and ``replay_scope``: the operator's argument
    when given, else the run's params (the Trigger form; ``dag_run.conf`` overrides declared
    params), else its ``dag_run.conf``, else the default (no interval; scope ``handed_over``).

    :param naive_timezone: where date-times without a time zone are read (Airflow's default timezone).
    :raises ReplayError: for an interval that cannot be replayed (half given, empty, reversed, in the future).
    """
    if validate_mode(mode) == "drain":
        return None
    dag_run = context.get("dag_run")
    params = context.get("params") or {}
    conf = getattr(dag_run, "conf", None) or {}

    def setting(explicit: Any, key: str) -> Any:
        for value in (explicit, params.get(key), conf.get(key)):
            if _given(value):
                return value
        return None

    start, end = setting(start, CONF_START), setting(end, CONF_END)
    empty_hint = ""
    if start is not None or end is not None:
        if start is None or end is None:
            raise ReplayError(
                f"a replay needs both {CONF_START} and {CONF_END}; got only "
                f"{CONF_START if start is not None else CONF_END}={start if start is not None else end!r}"
            )
        source = f"the requested replay interval ({CONF_START}/{CONF_END})"
    else:
        run_type = _run_type(dag_run)
        if mode == "auto" and run_type != "backfill" and not interval_set_by_hand(context):
            return None
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        if start is None or end is None:
            raise ReplayError(
                f"this {run_type or 'run'} run has no data interval to replay; trigger it with "
                f"{CONF_START} and {CONF_END}, or give the DAG a CronDataIntervalTimetable."
            )
        source, empty_hint = f"the {run_type or 'run'} run's data interval", _ZERO_LENGTH_HINT
    # The scope is checked (by between) only for a replay: a drain never reads it.
    return ReplayWindow.between(
        start, end, scope=setting(scope, CONF_SCOPE) or ReplayScope.HANDED_OVER, lateness_seconds=lateness_seconds,
        now=now, source=source, empty_hint=empty_hint, naive_timezone=naive_timezone,
    )  # fmt: skip
