"""AEP's asynchronous failures in real task runs (dag.test()): reported once across runs, kept in a Variable."""

from __future__ import annotations

import json

import pytest

from aep_provider.emulator import DEFAULT_IMS_ORG_ID
from aep_provider.emulator.config import EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID
from aep_provider.operators.aep_checks import marker_key
from scripts.sample_events import INVALID_KINDS, invalid_event, sample_event
from tests.dags.support import write_dag
from tests.engine.support import produce_values

pytestmark = [pytest.mark.integration, pytest.mark.e2e]

IDS = {"schema_id": EXAMPLE_SCHEMA_ID, "dataset_id": EXAMPLE_DATASET_ID, "ims_org_id": DEFAULT_IMS_ORG_ID}


def _produce(bootstrap: str, topic: str, start: int) -> None:
    values = [json.dumps(sample_event(start + n, **IDS)).encode() for n in range(5)]
    values += [json.dumps(invalid_event(start + n, kind, **IDS)).encode() for n, kind in enumerate(INVALID_KINDS)]
    produce_values(bootstrap, topic, values)


def _dag(airflow_db: str, kafka_bootstrap: str, make_topic, kafka_conn: str, aep_conn: str, extra: str):
    """A topic holding 5 valid events and the 7 invalid kinds, and a one-task DAG draining it without local validation."""
    topic = make_topic(partitions=1)
    _produce(kafka_bootstrap, topic, 0)
    module = write_dag(
        airflow_db, topic, kafka_conn, aep_conn, f"validate_xdm=False, dataset_id={EXAMPLE_DATASET_ID!r}, {extra}"
    )
    return topic, module


def _summary(dag_run) -> dict:
    ti = dag_run.get_task_instance("drain")
    assert ti.state == "success", ti.state
    return ti.xcom_pull(task_ids="drain")


def test_with_validation_off_aep_failures_are_reported_once_across_runs(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic, module = _dag(airflow_db, kafka_bootstrap, make_topic, make_kafka_conn(), aep_conn_id, "")

    first = _summary(module.dag.test())
    assert first["delivered"] == 12 and first["rejected"] == 0
    assert aep_emulator.wait_validated(10)  # AEP fails the 7 after accepting them
    second = _summary(module.dag.test())
    # However the check and AEP's validation interleaved, the 7 are counted once over the two runs.
    assert first["failed_in_aep"] + second["failed_in_aep"] == 7
    third = _summary(module.dag.test())
    assert third["failed_in_aep"] == 0 and third["failed_in_aep_check"]["status"] == "checked"
    assert (
        aep_emulator.stats()["requests"]["catalog"]["200"] == 3
    )  # each run asked Catalog; the batch came back each time

    reported = first if first["failed_in_aep"] else second
    assert reported["failed_in_aep_check"] == {
        "status": "checked",
        "detail": reported["failed_in_aep_check"]["detail"],
        "datasets": [EXAMPLE_DATASET_ID],
        "new_failed_batches": 1,
    }
    assert sum(reported["failed_in_aep_by_reason"].values()) == 7
    assert "/timestamp: format (AEP)" in reported["failed_in_aep_by_reason"]
    assert reported["failed_in_aep_samples"][0]["failed_records"] == 7

    # What was reported is kept in the task's Variable (it survives worker restarts and `db clean`).
    from airflow.models import Variable

    marker = json.loads(Variable.get(marker_key(module.dag.dag_id, "drain")))
    (batch_id,) = marker["datasets"][EXAMPLE_DATASET_ID]["reported"]
    assert batch_id == reported["failed_in_aep_samples"][0]["batch_id"]

    # New failures are reported by the next run, old ones are not counted again.
    _produce(kafka_bootstrap, topic, 100)
    fourth = _summary(module.dag.test())
    assert fourth["delivered"] == 12
    assert aep_emulator.wait_validated(10)
    assert fourth["failed_in_aep"] + _summary(module.dag.test())["failed_in_aep"] == 7


def test_fail_on_aep_failures_fails_the_task_without_retries_and_keeps_the_summary(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    _, module = _dag(
        airflow_db, kafka_bootstrap, make_topic, make_kafka_conn(), aep_conn_id, "fail_on_aep_failures=True,"
    )
    first = module.dag.test()
    ti = first.get_task_instance("drain")
    if ti.state == "success":  # the check ran before AEP had failed the records: the next run sees them
        assert aep_emulator.wait_validated(10)
        ti = module.dag.test().get_task_instance("drain")
    assert ti.state == "failed" and ti.try_number == 1  # a FailedInAEPTaskError: retries do not apply
    summary = ti.xcom_pull(task_ids="drain", key="summary")
    assert summary["failed_in_aep"] == 7 and summary["delivered"] in (0, 12)
