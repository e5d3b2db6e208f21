"""Failure paths under a real Airflow task run (dag.test()): task state, whether Airflow retries, the XCom left."""

from __future__ import annotations

import uuid

import pytest

from aep_provider.emulator import Fault
from tests.dags.support import run_dag
from tests.engine.support import committed, message, produce, produce_values, received

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def test_aep_down_is_retried_by_airflow_and_leaves_a_summary(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, make_aep_conn, aep_emulator
):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 20)
    aep_emulator.inject(Fault(status=503, count=None, endpoint="batch"))
    aep_conn = make_aep_conn(aep_emulator.url, retry_deadline_seconds=1)

    dag_run, ti = run_dag(airflow_db, topic, make_kafka_conn(), aep_conn)

    assert ti.state == "failed" and dag_run.state == "failed"
    assert ti.try_number == 2  # retryable: Airflow ran it again (retries=1) before giving up
    summary = ti.xcom_pull(task_ids="drain", key="summary")
    assert summary["stopped_by"] == "failed" and summary["delivered"] == 0 and summary["lag"] == 20


def test_a_rejected_record_under_on_reject_fail_is_not_retried(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    values = [message(topic, 0, n) for n in range(6)]
    values[2] = b'{"no": "header"}'  # AEP answers 400 for it; 3..5 of the same request are accepted
    produce_values(kafka_bootstrap, topic, values)
    group = f"g-{uuid.uuid4().hex[:10]}"

    dag_run, ti = run_dag(airflow_db, topic, make_kafka_conn(group_id=group), aep_conn_id, 'on_reject="fail",')

    assert ti.state == "failed" and dag_run.state == "failed"
    assert ti.try_number == 1  # AirflowFailException: retries do not apply
    summary = ti.xcom_pull(task_ids="drain", key="summary")
    assert summary["stopped_by"] == "failed"
    assert summary["rejected_by_reason"] == {"AEP 400": 1}
    assert summary["accepted_past_failure"] == 3  # sent again by a rerun: the commit stops at offset 2
    assert committed(kafka_bootstrap, group, topic, 1) == {0: 2}


def test_execution_timeout_stops_cleanly_commits_and_pushes_the_summary(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 3000)
    aep_emulator.inject(Fault(delay_seconds=0.2, count=None, endpoint="batch"))  # far longer than the timeout
    group = f"g-{uuid.uuid4().hex[:10]}"

    dag_run, ti = run_dag(
        airflow_db,
        topic,
        make_kafka_conn(group_id=group),
        aep_conn_id,
        "execution_timeout=timedelta(seconds=6), max_batch_records=50, max_in_flight=1,",
        retries=0,
    )

    assert ti.state == "failed"
    summary = ti.xcom_pull(task_ids="drain", key="summary")
    assert summary["stopped_by"] == "interrupted (AirflowTaskTimeout)"
    delivered = len(aep_emulator.accepted())
    assert 0 < delivered < 3000 and summary["delivered"] == delivered
    # Everything AEP acknowledged is committed: the next run starts right after it.
    assert committed(kafka_bootstrap, group, topic, 1) == {0: delivered}
    got = received(aep_emulator)[0]
    assert sorted(set(got)) == list(range(len(set(got)))), (len(got), len(set(got)), delivered)  # a prefix, no gap
