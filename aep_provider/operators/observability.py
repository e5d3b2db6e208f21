"""
After a run: metrics, hook lineage, asset events and the AEP link target, from the run summary.

Kept out of the operator's ``execute`` so that the drain's code path stays the engine's, and out
of the engine so that it stays free of Airflow imports.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from aep_provider.operators import lineage, metrics

if TYPE_CHECKING:
    from airflow.sdk import BaseOperator, Context

    from aep_provider.operators.lineage import AEPTarget


def resolve_target(aep_conn_id: str, inlet_id: str | None, dataset_id: str | None) -> tuple[AEPTarget, Any]:
    """Where the run wrote (org and sandbox from the connection), and the hook that knows it."""
    from aep_provider.hooks.aep import AEPStreamingHook

    hook = AEPStreamingHook(aep_conn_id=aep_conn_id, inlet_id=inlet_id or None)
    settings = hook.settings  # the connection only: no network
    target = lineage.AEPTarget(
        ims_org_id=settings.ims_org_id,
        sandbox=settings.sandbox_name,
        inlet_id=settings.inlet_id,
        dataset_id=dataset_id or None,
    )
    return target, hook


def report_run(
    operator: BaseOperator,
    context: Context | None,
    summary: Mapping[str, Any],
    *,
    topics: Sequence[str],
    bootstrap_servers: str,
    aep_conn_id: str,
    inlet_id: str | None,
    dataset_id: str | None,
) -> AEPTarget | None:
    """
    Emit what a finished (or failed) run leaves for monitoring; returns the AEP target, if known.

    Metrics always; hook lineage and the asset-event ``extra`` of ``aep://`` outlets when the AEP
    connection can be read (it can, whenever the run got as far as having a summary).
    """
    metrics.emit_run_metrics(summary, dag_id=operator.dag_id, task_id=operator.task_id, topics=topics)
    try:
        target, hook = resolve_target(aep_conn_id, inlet_id, dataset_id)
    except Exception as err:  # an unreadable connection already failed the run with its own message
        operator.log.debug("No AEP target for lineage: %s", err)
        return None
    lineage.collect_hook_lineage(hook, bootstrap_servers, topics, target)
    outlet_events = context.get("outlet_events") if context else None
    if outlet_events is not None and operator.outlets:
        updated = lineage.attach_asset_events(
            operator.outlets, outlet_events, lineage.asset_event_extra(summary, topics, target)
        )
        if updated:
            operator.log.info("Asset event(s) for %s carry this run's counts and offset ranges", ", ".join(updated))
    return target
