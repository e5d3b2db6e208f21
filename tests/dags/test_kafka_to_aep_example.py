"""The example DAG: imports without network, and runs green with dag.test() against the broker and emulator."""

from __future__ import annotations

import importlib.util
import time
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.engine.support import committed, produce, received

DAG_FILE = Path(__file__).resolve().parents[2] / "dags" / "kafka_to_aep_example.py"


def _load_dag():
    spec = importlib.util.spec_from_file_location(f"kafka_to_aep_example_{uuid.uuid4().hex[:6]}", DAG_FILE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


def test_example_dag_shape():
    dag = _load_dag()  # no connection exists here: import must not need one
    assert dag.dag_id == "kafka_to_aep_example"
    assert type(dag.timetable).__name__ == "CronDataIntervalTimetable"
    assert dag.timetable.expression == "*/5 * * * *"
    assert (dag.max_active_runs, dag.catchup) == (1, False)
    task = dag.get_task("drain_aep_events")
    assert (task.kafka_config_id, task.aep_conn_id) == ("kafka_default", "aep_default")
    assert dag.params["topic"] == "aep.events" and dag.params["dlq_topic"] == "aep.events.dlq"
    assert task.max_run_seconds < 300
    # The form's way to replay is its own Data Interval section (both ends or none, Airflow checks it).
    assert "replay_start" not in dag.params and dag.params["replay_scope"] == "handed_over"
    assert "Re-send a past interval" in dag.doc_md
    # Monitoring shows on the shipped stack: the dataset the sample events name, as an aep:// outlet.
    from scripts.sample_events import DEFAULT_DATASET_ID, EMULATOR_IMS_ORG_ID

    assert task.dataset_id == DEFAULT_DATASET_ID
    assert [o.uri for o in task.outlets] == [
        f"aep://{EMULATOR_IMS_ORG_ID.split('@')[0]}/prod/datasets/{DEFAULT_DATASET_ID}"
    ]


@pytest.mark.integration
@pytest.mark.e2e
def test_example_dag_runs_green_with_dag_test(
    airflow_db, kafka_bootstrap, make_topic, make_kafka_conn, aep_emulator, monkeypatch
):
    from tests.fixtures.connections import aep_connection_json

    topic = make_topic(partitions=2, prefix="aep.events")
    dlq = make_topic(partitions=1, prefix="aep.events.dlq")
    produce(kafka_bootstrap, topic, 2, 150)
    group = f"g-{uuid.uuid4().hex[:10]}"
    make_kafka_conn(conn_id="kafka_default", group_id=group)
    monkeypatch.setenv("AIRFLOW_CONN_AEP_DEFAULT", aep_connection_json(aep_emulator.url))
    # dag.test() finds the DAG through the dags-folder bundle ($AIRFLOW_HOME/dags of the test session).
    bundle = Path(airflow_db) / "dags"
    bundle.mkdir(exist_ok=True)
    if not (bundle / DAG_FILE.name).exists():
        (bundle / DAG_FILE.name).symlink_to(DAG_FILE)

    started = (datetime.now(timezone.utc) - timedelta(seconds=1)).replace(microsecond=0)
    dag_run = _load_dag().test(run_conf={"topic": topic, "dlq_topic": dlq})

    assert dag_run.state == "success"
    assert received(aep_emulator) == {0: list(range(150)), 1: list(range(150))}
    assert committed(kafka_bootstrap, group, topic, 2) == {0: 150, 1: 150}
    ti = dag_run.get_task_instance("drain_aep_events")
    assert ti.state == "success"
    summary = ti.xcom_pull(task_ids="drain_aep_events")
    assert summary["delivered"] == 300 and summary["lag"] == 0

    # A manual run with replay_start/replay_end in its conf (REST API, CLI) replays that interval:
    # the same records again, and the group's offsets stay where the drain left them.
    aep_emulator.reset()
    time.sleep(1.1)
    replay_conf = {
        "topic": topic,
        "dlq_topic": dlq,
        "replay_start": started.isoformat(),
        "replay_end": datetime.now(timezone.utc).isoformat(),
    }
    replay_run = _load_dag().test(run_conf=replay_conf)
    assert replay_run.state == "success"
    assert received(aep_emulator) == {0: list(range(150)), 1: list(range(150))}
    assert committed(kafka_bootstrap, group, topic, 2) == {0: 150, 1: 150}
    replayed = replay_run.get_task_instance("drain_aep_events").xcom_pull(task_ids="drain_aep_events")
    assert replayed["mode"] == "replay" and replayed["delivered"] == 300
    assert replayed["interval"]["start"] == started.isoformat().replace("+00:00", "Z")
