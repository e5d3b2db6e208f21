"""
The deliveries history filled by the scheduler-side listener when a real DAG run ends (dag.test()
goes through the same DagRun.update_state as the scheduler), and "where is this record?" answered from it.
"""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import select

from aep_provider.history import queries
from aep_provider.history.models import deliveries
from tests.dags.support import run_dag
from tests.engine.support import message, produce_values

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _session():
    from airflow.utils.session import create_session

    return create_session()


def test_a_finished_dag_run_is_recorded_and_where_locates_each_record(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    dlq = make_topic(partitions=1, prefix="dlq")
    values = [message(topic, 0, 0), b"{not json", message(topic, 0, 2), None, message(topic, 0, 4)]
    produce_values(kafka_bootstrap, topic, values)
    group = f"g-{uuid.uuid4().hex[:10]}"

    dag_run, ti = run_dag(airflow_db, topic, make_kafka_conn(group_id=group), aep_conn_id, f"dlq_topic={dlq!r},")
    assert dag_run.state == "success"

    with _session() as session:
        runs = queries.runs(session, {dag_run.dag_id})
        assert len(runs) == 1
        run = runs[0]
        assert (run["run_id"], run["task_id"], run["try_number"], run["state"], run["mode"]) == (
            dag_run.run_id, "drain", 1, "success", "drain",
        )  # fmt: skip
        assert (run["delivered"], run["rejected"], run["dead_lettered"], run["skipped"]) == (3, 1, 1, 1)
        assert run["group_id"] == group and run["topic_lag"] == 0
        assert run["failed_in_aep"] is None  # not reported by this summary: shown as "—"
        assert queries.rejections_by_reason(session, {dag_run.dag_id}) == [
            {"reason": "invalid JSON", "count": 1, "runs": 1}
        ]

        def status(offset: int) -> dict:
            (answer,) = queries.where(session, topic, 0, offset, {dag_run.dag_id})["answers"]
            return answer

        assert status(0)["status"] == "delivered" and status(0)["run_id"] == dag_run.run_id
        assert (status(1)["status"], status(1)["reason"]) == ("dead_lettered", "invalid JSON")
        assert (status(3)["status"], status(3)["reason"]) == ("skipped", "tombstone")
        assert status(4)["status"] == "delivered"
        later = status(7)
        assert (later["status"], later["committed"], later["lag"]) == ("not_yet_drained", 5, 0)
        # a DAG the user may not read answers nothing
        assert queries.where(session, topic, 0, 0, {"some_other_dag"})["answers"] == []


def test_a_failed_run_is_recorded_with_its_try_and_the_record_it_stopped_at(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    values = [message(topic, 0, n) for n in range(4)]
    values[2] = b'{"no": "header"}'  # AEP answers 400 for it
    produce_values(kafka_bootstrap, topic, values)

    dag_run, ti = run_dag(airflow_db, topic, make_kafka_conn(), aep_conn_id, 'on_reject="fail",')
    assert dag_run.state == "failed"

    with _session() as session:
        (run,) = queries.runs(session, {dag_run.dag_id})
        assert (run["state"], run["stopped_by"], run["rejected"]) == ("failed", "failed", 1)
        assert queries.where(session, topic, 0, 1, {dag_run.dag_id})["answers"][0]["status"] == "delivered"
        stopped = queries.where(session, topic, 0, 2, {dag_run.dag_id})["answers"][0]
        assert (stopped["status"], stopped["reason"], stopped["committed"]) == ("rejected", "AEP 400", 2)
        # Recording the same try again (the listener fires again when a run is re-marked) replaces it,
        # without committing the caller's transaction (the scheduler forbids that while it holds its locks).
        from airflow.utils.sqlalchemy import prohibit_commit

        from aep_provider.history.ingest import record_dag_run

        with prohibit_commit(session):
            assert record_dag_run(session, dag_run.dag_id, dag_run.run_id) == 1
        count = session.execute(select(deliveries.c.id).where(deliveries.c.dag_id == dag_run.dag_id)).all()
        assert len(count) == 1
