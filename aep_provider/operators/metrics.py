"""
Run metrics through Airflow's ``Stats``: StatsD, Datadog or OpenTelemetry, whichever the deployment enables.

Emitted once per run from the run summary (the engine stays free of Airflow imports). Tags are
DAG, task and topic, never partition, to keep the number of series low.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any

from airflow.sdk.observability.stats import Stats

log = logging.getLogger(__name__)

#: Every metric name starts with this (after the deployment's own prefix, ``airflow.`` by default).
PREFIX = "aep_provider"

#: Run counters: summary key → metric name. Documented in docs/monitoring.md.
RUN_COUNTERS: dict[str, str] = {
    "delivered": f"{PREFIX}.records.delivered",
    "rejected": f"{PREFIX}.records.rejected",
    "dead_lettered": f"{PREFIX}.records.dead_lettered",
    "skipped": f"{PREFIX}.records.skipped",
    "requests": f"{PREFIX}.requests",
    "retries": f"{PREFIX}.retries",
    "throttled": f"{PREFIX}.throttled",
    "bytes": f"{PREFIX}.bytes",
    # Records AEP accepted, then failed (its failed batches), first reported by this run.
    "failed_in_aep": f"{PREFIX}.records.failed_in_aep",
}
RUNS = f"{PREFIX}.runs"
RUN_DURATION = f"{PREFIX}.run_duration"
RECORDS_READ = f"{PREFIX}.records.read"
LAG = f"{PREFIX}.lag"
TOPIC_LAG = f"{PREFIX}.topic_lag"
#: Inlet request latency of the run: one timer per statistic (``.p50``, ``.p95``, ``.max``, ``.mean``).
REQUEST_LATENCY = f"{PREFIX}.request_latency"
REQUEST_LATENCY_STATS = ("p50", "p95", "max", "mean")


def topic_tag(topics: Sequence[str]) -> str:
    """
    The ``topic`` tag of run-wide metrics: the topic, or the sorted topics joined by ``+`` when a
    run drains several (the summary counts deliveries per run, not per topic). ``+`` because ``,``
    and ``|`` are separators in StatsD line formats.
    """
    return "+".join(sorted(set(topics)))


def emit_run_metrics(summary: Mapping[str, Any], *, dag_id: str, task_id: str, topics: Sequence[str]) -> None:
    """
    Emit one run's metrics from its summary (the operator's XCom dict).

    :param summary: :meth:`RunSummary.to_dict() <aep_provider.engine.summary.RunSummary.to_dict>`.
    :param dag_id: tag ``dag_id``. :param task_id: tag ``task_id``.
    :param topics: the topics the run drained (tag ``topic``).
    """
    # mode: "drain" or "replay" (a backfill's re-sends must not read as new traffic).
    mode = str(summary.get("mode", "drain"))
    run_tags = {"dag_id": dag_id, "task_id": task_id, "topic": topic_tag(topics), "mode": mode}
    Stats.incr(RUNS, tags={**run_tags, "stopped_by": str(summary.get("stopped_by", "unknown")).replace(" ", "_")})
    for key, name in RUN_COUNTERS.items():
        # Counters are sent even at 0: a dashboard must tell "nothing happened" from "no data".
        Stats.incr(name, count=int(summary.get(key) or 0), tags=run_tags)
    Stats.timing(RUN_DURATION, timedelta(seconds=float(summary.get("seconds") or 0.0)), tags=run_tags)
    # The run's figures, not one timer per request: a run can make thousands of requests, and
    # sending each as a UDP packet at the end would cost more than it tells.
    latency = summary.get("request_seconds") or {}
    if latency.get("count"):
        for stat in REQUEST_LATENCY_STATS:
            if latency.get(stat) is not None:
                Stats.timing(f"{REQUEST_LATENCY}.{stat}", timedelta(seconds=float(latency[stat])), tags=run_tags)

    per_topic: dict[str, dict[str, int | None]] = {t: {"records": 0, "lag": 0, "topic_lag": None} for t in topics}
    for part in (summary.get("partitions") or {}).values():
        row = per_topic.setdefault(part["topic"], {"records": 0, "lag": 0, "topic_lag": None})
        row["records"] = (row["records"] or 0) + int(part.get("records") or 0)
        row["lag"] = (row["lag"] or 0) + int(part.get("lag") or 0)
        if part.get("topic_lag") is not None:
            row["topic_lag"] = (row["topic_lag"] or 0) + int(part["topic_lag"])
    for topic, row in sorted(per_topic.items()):
        tags = {"dag_id": dag_id, "task_id": task_id, "topic": topic}
        Stats.incr(RECORDS_READ, count=int(row["records"] or 0), tags={**tags, "mode": mode})
        if mode == "replay":
            continue  # a replay owns no lag: a 0 from it would hide the live drain's
        Stats.gauge(LAG, int(row["lag"] or 0), tags=tags)
        if row["topic_lag"] is not None:
            Stats.gauge(TOPIC_LAG, int(row["topic_lag"]), tags=tags)
