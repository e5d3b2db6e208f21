"""
The operator's reads from the Platform APIs around a drain: the schema to validate against before
sending, and AEP's failed batches after.

* :func:`xdm_validators`: with ``validate_xdm`` and a payload a schema applies to, the dataset's
  schema (Catalog ``schemaRef`` then the Schema Registry) is read when the run starts, and the
  schemas passthrough messages name are read the first time one appears: once per run each.
* :func:`report_aep_failures`: after the drain, the dataset's failed batches not reported before
  (:func:`~aep_provider.aep.failures.check_failed_batches`) go into the run summary, the metrics
  and a WARNING section of the log. What was reported is kept in an Airflow Variable
  (:class:`VariableMarker`): see docs/validation.md for why there.
"""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Any

from aep_provider.aep.failures import FailureReport, check_failed_batches
from aep_provider.engine.logsections import log_section
from aep_provider.engine.validation import SchemaSource, SchemaValidators

if TYPE_CHECKING:
    from aep_provider.engine.summary import RunSummary
    from aep_provider.hooks.aep import AEPStreamingHook

log = logging.getLogger("aep_provider.operators.kafka_to_aep")

#: Each Platform call of the failure check gives up after this many seconds: the run is over, the
#: check only reports (the next run checks again).
CHECK_CALL_SECONDS = 20.0
#: The Variable holding what a task reported: ``aep_provider.failed_in_aep.<dag_id>.<task_id>``.
VARIABLE_PREFIX = "aep_provider.failed_in_aep"


def xdm_validators(
    hook: AEPStreamingHook, *, payload: Any, dataset_id: str | None, schema_id: str | None, validate: bool
) -> SchemaValidators | None:
    """
    The run's validators, or None when nothing is validated (``validate_xdm=False``, a payload callable).

    With ``payload="xdm"`` the dataset's schema is read now (and must be ``schema_id``); with
    ``passthrough`` the dataset's schema is read now when ``dataset_id`` is set, others on first use.

    :raises ValidationSetupError: a schema cannot be read (403 names the permission, 404 the id).
    """
    if not validate or payload not in ("xdm", "passthrough"):
        return None
    source = SchemaSource(hook.get_platform_client())
    preloaded = {}
    if dataset_id:
        validator = source.dataset_schema(dataset_id, schema_id if payload == "xdm" else None)
        preloaded[validator.schema_id] = validator
    return SchemaValidators(source.schema, preloaded)


class VariableMarker:
    """
    The failure check's marker in the Airflow Variable ``key`` (JSON), through the Task SDK.

    :param key: the Variable's key.
    """

    def __init__(self, key: str) -> None:
        self.key = key

    def load(self) -> dict[str, Any] | None:
        from airflow.sdk import Variable

        value = Variable.get(self.key, default=None)
        return json.loads(value) if isinstance(value, str) and value else None

    def save(self, marker: dict[str, Any]) -> None:
        from airflow.sdk import Variable

        Variable.set(
            self.key,
            json.dumps(marker, separators=(",", ":"), sort_keys=True),
            description="aep-provider: AEP failed batches this task already reported (failed_in_aep). "
            "Delete it to have the last 24 hours reported again.",
        )


def marker_key(dag_id: str, task_id: str) -> str:
    return f"{VARIABLE_PREFIX}.{dag_id}.{task_id}"


def report_aep_failures(
    hook: AEPStreamingHook, summary: RunSummary, *, dataset_id: str | None, context: Any, dag_id: str, task_id: str
) -> FailureReport:
    """
    Check the dataset's failed batches and put what is new into ``summary``; never raises.

    Skipped for replays (the live drain reports), for a mapped instance other than the first
    (one instance reports, so nothing is counted twice), without ``dataset_id`` and outside an
    Airflow task (nowhere to keep the marker).
    """
    ti = context.get("ti") if context else None
    if summary.mode == "replay":
        report = FailureReport(detail="a replay does not check: the task's drain runs report AEP's failures")
    elif ti is None:
        report = FailureReport(detail="not run as an Airflow task: no Variable to keep what was reported")
    elif (getattr(ti, "map_index", -1) or 0) > 0:
        report = FailureReport(detail=f"mapped instance {ti.map_index}: instance 0 reports the dataset's failures")
    elif not dataset_id:
        report = FailureReport(detail="no dataset_id: set it to have AEP's failed batches reported")
    else:
        try:
            report = check_failed_batches(
                hook.get_platform_client().bounded(CHECK_CALL_SECONDS),
                [dataset_id],
                VariableMarker(marker_key(dag_id, task_id)),
            )
        except Exception as err:  # reporting must never fail a delivered run
            report = FailureReport(status="error", detail=f"{type(err).__name__}: {err}", datasets=[dataset_id])
    summary.add_aep_failures(report.summary())
    if report.failed_in_aep:
        with log_section(log, f"AEP's failures ({report.failed_in_aep})"):
            for line in report.lines():
                log.warning("%s", line)
            log.warning(
                "Find them in AEP: Data Management > Datasets > %s > dataset activity (failed batches), or "
                "GET /data/foundation/export/batches/<batch id>/failed. See docs/validation.md.",
                dataset_id,
            )
    elif report.status == "error":
        log.warning("Could not check AEP's failed batches: %s", report.detail)
    else:
        log.info("AEP's failed batches: %s (%s)", report.status, report.detail)
    return report
