"""
Lineage of a drain: OpenLineage facets, Airflow hook lineage, and the extra of ``aep://`` asset events.

Naming (documented in ``docs/monitoring.md``):

* inputs: namespace ``kafka://{host}:{port}`` (the first bootstrap server, as the Kafka
  integrations name it), name = topic;
* output: namespace ``aep://{org}/{sandbox}``, name ``datasets/{dataset_id}`` when the operator
  knows the dataset, else ``inlets/{inlet_id}``; the Asset URI is ``{namespace}/{name}``
  (:mod:`aep_provider.assets.aep`).

OpenLineage is imported only inside the functions that build its objects: the provider works
without the OpenLineage provider installed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from aep_provider.assets import aep as aep_assets

log = logging.getLogger(__name__)

#: Counters copied from the run summary into run facets and asset event extras.
COUNT_KEYS = (
    "delivered",
    "rejected",
    "dead_lettered",
    "skipped",
    "requests",
    "retries",
    "throttled",
    "bytes",
    "failed_in_aep",
)


def kafka_namespace(bootstrap_servers: str) -> str:
    """``kafka://host:port`` of the first bootstrap server (a ``SASL_SSL://`` style prefix dropped)."""
    first = str(bootstrap_servers).split(",")[0].strip()
    if "://" in first:
        first = first.split("://", 1)[1]
    return f"kafka://{first}"


@dataclass(frozen=True)
class AEPTarget:
    """Where a drain writes: the org, sandbox, inlet and (if known) dataset."""

    ims_org_id: str | None
    sandbox: str
    inlet_id: str
    dataset_id: str | None = None

    @property
    def known(self) -> bool:
        """Naming needs the org (every AEP namespace is an org's sandbox)."""
        return bool(self.ims_org_id)

    @property
    def namespace(self) -> str:
        return aep_assets.namespace(self.ims_org_id or "unknown-org", self.sandbox)

    @property
    def name(self) -> str:
        return aep_assets.dataset_name(dataset_id=self.dataset_id, inlet_id=self.inlet_id)

    @property
    def uri(self) -> str:
        return f"{self.namespace}/{self.name}"


def offset_ranges(summary: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Per partition: first offset read, snapshot end, committed offset at the end of the run."""
    return {
        key: {"start": p.get("start"), "end": p.get("end"), "committed": p.get("committed")}
        for key, p in sorted((summary.get("partitions") or {}).items())
    }


def counts(summary: Mapping[str, Any]) -> dict[str, int]:
    return {key: int(summary.get(key) or 0) for key in COUNT_KEYS}


def asset_event_extra(summary: Mapping[str, Any], topics: Sequence[str], target: AEPTarget | None) -> dict[str, Any]:
    """What an ``aep://`` asset event carries: counts, lag left, offset ranges, the source topics."""
    extra: dict[str, Any] = {
        **counts(summary),
        "mode": summary.get("mode", "drain"),
        "stopped_by": summary.get("stopped_by"),
        "topics": list(topics),
        "offsets": offset_ranges(summary),
    }
    if summary.get("mode") == "replay":
        # A replay commits nothing and owns no lag; downstream DAGs see which interval was re-sent.
        extra["interval"] = summary.get("interval")
    else:
        extra["lag"] = int(summary.get("lag") or 0)
    if target is not None:
        extra["inlet_id"] = target.inlet_id
        if target.dataset_id:
            extra["dataset_id"] = target.dataset_id
    return extra


def attach_asset_events(outlets: Sequence[Any], outlet_events: Any, extra: Mapping[str, Any]) -> list[str]:
    """
    Put ``extra`` into the event of every ``aep://`` Asset among the task's outlets.

    Other outlets are left alone (their meaning is the user's). Returns the URIs updated.
    """
    from airflow.sdk import Asset

    updated = []
    for outlet in outlets or ():
        if isinstance(outlet, Asset) and outlet.uri.startswith(f"{aep_assets.SCHEME}://"):
            outlet_events[outlet].extra.update(extra)
            updated.append(outlet.uri)
    return updated


def collect_hook_lineage(context: Any, bootstrap_servers: str, topics: Sequence[str], target: AEPTarget | None) -> None:
    """
    Report inputs and output to Airflow's hook-lineage collector (``airflow.sdk.lineage``), which
    OpenLineage (or any registered reader) turns into lineage even without operator facets.

    :param context: the hook the data went through (the collector keys entries by it).
    """
    from airflow.sdk.lineage import get_hook_lineage_collector

    collector = get_hook_lineage_collector()
    server = kafka_namespace(bootstrap_servers)[len("kafka://") :]
    for topic in topics:
        collector.add_input_asset(context=context, uri=f"kafka://{server}/{topic}")
    if target is not None and target.known:
        collector.add_output_asset(context=context, uri=target.uri)


@cache
def _run_facet_class() -> type:
    """A custom OpenLineage run facet with the run's counters (built on first use: OpenLineage is optional)."""
    from attrs import define, field
    from openlineage.client.facet_v2 import RunFacet

    @define
    class AEPDrainRunFacet(RunFacet):
        """Counters of one Kafka → AEP drain run."""

        delivered: int
        rejected: int
        deadLettered: int
        skipped: int
        requests: int
        retries: int
        throttled: int
        bytes: int
        lag: int
        stoppedBy: str
        #: records AEP accepted, then failed (failed batches), first reported by this run.
        failedInAep: int = 0
        #: those records by reason.
        failedInAepByReason: dict = field(factory=dict)

    return AEPDrainRunFacet


def openlineage_facets(
    summary: Mapping[str, Any] | None, bootstrap_servers: str, topics: Sequence[str], target: AEPTarget | None
) -> Any:
    """
    The ``OperatorLineage`` of a drain (needs the OpenLineage provider).

    Inputs: one dataset per topic. Output: the AEP dataset (or inlet), with the standard
    ``outputStatistics`` facet (rows = records delivered, size = bytes sent). Run facet
    ``aepDrain``: the run's counters.
    """
    from airflow.providers.common.compat.openlineage.facet import (
        Dataset,
        OutputDataset,
        OutputStatisticsOutputDatasetFacet,
    )
    from airflow.providers.openlineage.extractors import OperatorLineage

    inputs = [Dataset(namespace=kafka_namespace(bootstrap_servers), name=topic) for topic in topics]
    outputs = []
    run_facets: dict[str, Any] = {}
    if target is not None and target.known:
        output_facets: dict[str, Any] = {}
        if summary is not None:
            output_facets["outputStatistics"] = OutputStatisticsOutputDatasetFacet(
                rowCount=int(summary.get("delivered") or 0), size=int(summary.get("bytes") or 0)
            )
        outputs.append(OutputDataset(namespace=target.namespace, name=target.name, outputFacets=output_facets))
    if summary is not None:
        c = counts(summary)
        run_facets["aepDrain"] = _run_facet_class()(
            delivered=c["delivered"],
            rejected=c["rejected"],
            deadLettered=c["dead_lettered"],
            skipped=c["skipped"],
            requests=c["requests"],
            retries=c["retries"],
            throttled=c["throttled"],
            bytes=c["bytes"],
            lag=int(summary.get("lag") or 0),
            stoppedBy=str(summary.get("stopped_by")),
            failedInAep=c["failed_in_aep"],
            failedInAepByReason=dict(summary.get("failed_in_aep_by_reason") or {}),
        )
    return OperatorLineage(inputs=inputs, outputs=outputs, run_facets=run_facets)
