"""
How long the deliveries history keeps a run: ``[aep_provider] history_retention_days``.

``airflow db clean`` knows only Airflow's own tables, so the history prunes itself: each time the
listener records a DAG run, it deletes a bounded batch of runs that ended before the retention.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

#: The option (section, name) and its default, declared in the provider info (``airflow config list``).
SECTION, OPTION = "aep_provider", "history_retention_days"
DEFAULT_DAYS = 90
#: Most runs removed each time a DAG run is recorded: the scheduler's transaction stays short, and
#: a backlog (a retention just lowered) goes over the next runs.
PRUNE_BATCH = 500


def option() -> dict[str, Any]:
    """The option's declaration for the provider info's ``config``."""
    return {
        "description": "Days the AEP deliveries page keeps a run in its history (runs that ended earlier are "
        f"removed, at most {PRUNE_BATCH} each time a DAG run is recorded). 0 keeps every run.",
        "version_added": "0.1.0",
        "type": "integer",
        "example": "30",
        "default": str(DEFAULT_DAYS),
    }


def retention_days() -> int:
    """The configured retention (Airflow's configuration; the default where the provider's is not loaded)."""
    from airflow.configuration import conf

    return conf.getint(SECTION, OPTION, fallback=DEFAULT_DAYS)


def prune(conn: Any, *, days: int, now: datetime | None = None, limit: int = PRUNE_BATCH) -> int:
    """
    Delete up to ``limit`` runs (with their ranges, marks and reasons) that ended more than ``days``
    days before ``now``, oldest first, in a savepoint of ``conn``'s transaction. Returns how many.
    """
    from sqlalchemy import delete, select

    from aep_provider.history.models import CHILD_TABLES, deliveries

    if days <= 0:
        return 0
    cutoff = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    with conn.begin_nested():
        ids = list(
            conn.execute(
                select(deliveries.c.id)
                .where(deliveries.c.end_date < cutoff)
                .order_by(deliveries.c.end_date)
                .limit(limit)
            ).scalars()
        )
        if ids:
            for table in CHILD_TABLES:
                conn.execute(delete(table).where(table.c.delivery_id.in_(ids)))
            conn.execute(delete(deliveries).where(deliveries.c.id.in_(ids)))
    return len(ids)
