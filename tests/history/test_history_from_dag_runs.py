"""
The deliveries history filled by the scheduler-side listener when a real DAG run ends (dag.test()
goes through the same DagRun.update_state as the scheduler), and "where is this record?" answered from it.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select

from aep_provider.emulator import Fault
from aep_provider.history import queries, retention
from aep_provider.history.models import deliveries
from tests.dags.support import run_dag
from tests.engine.support import message, produce_values

pytestmark = [pytest.mark.integration, pytest.mark.e2e]


def _session():
    from airflow.utils.session import create_session

    return create_session()


@pytest.mark.smoke
def test_a_finished_dag_run_is_recorded_and_where_locates_each_record(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    dlq = make_topic(partitions=1, prefix="dlq")
    values = [message(topic, 0, 0), b"{not json", message(topic, 0, 2), None, message(topic, 0, 4)]
    produce_values(kafka_bootstrap, topic, values)
    group = f"g-{uuid.uuid4().hex[:10]}"
    # A run that ended before the history's retention: recording this DAG run prunes it.
    with _session() as session:
        expired = session.execute(
            insert(deliveries).values(
                dag_id="expired", task_id="t", run_id=uuid.uuid4().hex, map_index=-1, try_number=1, mode="drain",
                delivered=0, rejected=0, dead_lettered=0, skipped=0,
                end_date=datetime.now(timezone.utc) - timedelta(days=retention.DEFAULT_DAYS + 1),
            )
        ).inserted_primary_key[0]  # fmt: skip

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
        assert session.scalar(select(deliveries.c.id).where(deliveries.c.id == expired)) is None


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


def test_a_run_triggered_with_conf_redrive_sends_the_dead_letters_again_and_shows_as_a_redrive(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    dlq = make_topic(partitions=1, prefix="dlq")
    produce_values(kafka_bootstrap, topic, [message(topic, 0, 0), message(topic, 0, 1), b"{not json"])
    group = f"g-{uuid.uuid4().hex[:10]}"
    kafka_conn = make_kafka_conn(group_id=group)
    # AEP rejects the record of sequence 1 until the cause is fixed (the fault is lifted).
    aep_emulator.inject(Fault(reject_if_contains='"n": 1}', count=None, endpoint="batch"))
    first, _ = run_dag(airflow_db, topic, kafka_conn, aep_conn_id, f"dlq_topic={dlq!r},")
    assert first.state == "success"
    aep_emulator.reset()

    redrive, ti = run_dag(
        airflow_db, topic, kafka_conn, aep_conn_id, f"dlq_topic={dlq!r},", dag_id=first.dag_id,
        run_conf={"redrive": "drain"},
    )  # fmt: skip
    assert redrive.state == "success" and ti.state == "success"
    (sent,) = aep_emulator.accepted()
    assert sent["body"]["xdmEntity"] == {"p": 0, "n": 1}

    with _session() as session:
        newest, oldest = queries.runs(session, {first.dag_id})
        assert (oldest["run_id"], oldest["mode"], oldest["dead_lettered"]) == (first.run_id, "drain", 2)
        assert (newest["run_id"], newest["mode"], newest["group_id"]) == (
            redrive.run_id,
            "redrive",
            f"{group}.dlq-redrive",
        )
        # Delivered one; the record that is not JSON was rejected again and is back in the dead-letter topic.
        assert (newest["delivered"], newest["rejected"], newest["dead_lettered"], newest["topic_lag"]) == (1, 1, 1, 1)
        status = queries.redrive_status(session, first.dag_id, "drain")
        assert (status["dlq_topic"], status["group_id"], status["last_redrive"]["run_id"]) == (
            dlq, f"{group}.dlq-redrive", redrive.run_id,
        )  # fmt: skip
        assert status["dead_lettered_since"] == 1  # the one put back; none by a drain since
        assert queries.redrive_status(session, first.dag_id, "no_such_task") is None
        # Where did the two dead letters go? The redrive's range on the dead-letter topic answers.
        answers = [queries.where(session, dlq, 0, offset, {first.dag_id})["answers"] for offset in (0, 1)]
        assert sorted((a["status"], a["reason"], a["run_id"]) for (a,) in answers) == [
            ("dead_lettered", "invalid JSON", redrive.run_id), ("delivered", None, redrive.run_id),
        ]  # fmt: skip


def test_an_earlier_try_is_recorded_when_airflow_archives_it_for_the_retry(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, make_aep_conn, aep_emulator
):
    topic = make_topic(partitions=1)
    produce_values(kafka_bootstrap, topic, [message(topic, 0, n) for n in range(6)])
    # The first request goes through, the next two answer 503: with two attempts per request the
    # first try fails (retryable) having delivered two records; the second try delivers the rest.
    aep_emulator.inject(Fault(count=1, endpoint="batch"))
    aep_emulator.inject(Fault(status=503, count=2, endpoint="batch"))
    aep_conn = make_aep_conn(aep_emulator.url, max_attempts=2)

    dag_run, ti = run_dag(airflow_db, topic, make_kafka_conn(), aep_conn, "max_batch_records=2, max_in_flight=1,")
    assert (dag_run.state, ti.try_number) == ("success", 2)

    with _session() as session:
        second, first = queries.runs(session, {dag_run.dag_id})
        assert (first["try_number"], first["state"], first["delivered"], first["stopped_by"]) == (
            1,
            "failed",
            2,
            "failed",
        )
        assert (second["try_number"], second["state"], second["delivered"]) == (2, "success", 4)
        # Offset 0 went out in the first try: no longer "unknown" (committed by an unrecorded try).
        (answer,) = queries.where(session, topic, 0, 0, {dag_run.dag_id})["answers"]
        assert (answer["status"], answer["run_id"], answer["try_number"]) == ("delivered", dag_run.run_id, 1)
