"""End to end: the local stack (scripts/devstack.py) with a real ``airflow standalone`` runs the example DAG.

Kafka is the session broker, the emulator and Airflow's API server use free ports, and everything
lives in a temp dir, so this runs next to a developer's own ``make run``.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from pathlib import Path

import pytest
import requests
from confluent_kafka import Producer

from aep_provider.emulator import RemoteEmulator
from scripts.devstack import DAG_ID, DevStack
from scripts.kafka_local import free_port
from scripts.sample_events import DEFAULT_DATASET_ID, DEFAULT_SCHEMA_ID, EMULATOR_IMS_ORG_ID, sample_event
from tests.e2e.support import diagnostics

EVENTS = 25
RUN_TIMEOUT = 180.0


def _diagnostics(stack: DevStack) -> str:
    return diagnostics(stack, 30)


@pytest.fixture
def stack(kafka_bootstrap: str, tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AEP_")}  # always the emulator here
    stack = DevStack(
        state_dir=tmp_path / "stack",
        emulator_port=free_port(),
        api_port=free_port(),
        rate=0,  # the test produces a known set of events itself
        kafka_bootstrap=kafka_bootstrap,
        env=env,
        timeout=180,
    )
    try:
        stack.start()
        yield stack
    finally:
        stack.stop(quiet=True)
    assert not any(stack.running().values()), f"left running after stop: {stack.running()}"


def _wait_for_run(session: requests.Session, stack: DevStack, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    url = f"{stack.api_url}/api/v2/dags/{DAG_ID}/dagRuns/{run_id}"
    run: dict = {}
    while True:
        # SQLite + scheduler + task on 2 cores: a single slow answer is not a failure, the deadline is.
        with contextlib.suppress(requests.RequestException):
            run = session.get(url, timeout=30).json()
        if run.get("state") in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(f"run {run_id} still {run.get('state')!r} after {RUN_TIMEOUT:g}s\n{_diagnostics(stack)}")
        time.sleep(2)


def _produce_sample_events(bootstrap: str, topic: str) -> set[str]:
    """Produce ``EVENTS`` sample events; return their XDM ``_id``s (the producer is closed on return)."""
    producer = Producer({"bootstrap.servers": bootstrap})
    ids = set()
    for seq in range(EVENTS):
        event = sample_event(
            seq, schema_id=DEFAULT_SCHEMA_ID, dataset_id=DEFAULT_DATASET_ID, ims_org_id=EMULATOR_IMS_ORG_ID
        )
        ids.add(event["body"]["xdmEntity"]["_id"])
        producer.produce(topic, json.dumps(event).encode())
    assert producer.flush(30) == 0
    return ids


@pytest.mark.e2e
@pytest.mark.integration
@pytest.mark.timeout(600)
def test_triggered_run_delivers_sample_events_to_the_emulator(stack: DevStack, make_topic):
    topic = make_topic(partitions=3, prefix="e2e.events")
    dlq = make_topic(prefix="e2e.events.dlq")
    ids = _produce_sample_events(stack.kafka_bootstrap, topic)

    # `make run` twice: the second one reports the running stack instead of starting another.
    before = stack.read_state()
    assert stack.start()["airflow"]["pid"] == before["airflow"]["pid"]

    session = stack.api_session()
    version = session.get(f"{stack.api_url}/api/v2/version", timeout=30)
    assert version.status_code == 200 and version.json()["version"].startswith("3."), version.text
    dags = session.get(f"{stack.api_url}/api/v2/dags", params={"dag_id_pattern": DAG_ID}, timeout=30).json()
    assert DAG_ID in [d["dag_id"] for d in dags["dags"]]
    assert not next(d for d in dags["dags"] if d["dag_id"] == DAG_ID)["is_paused"]
    # The stack's connections live in Airflow's database, so the UI lists them.
    kafka_conn = session.get(f"{stack.api_url}/api/v2/connections/kafka_default", timeout=30)
    assert kafka_conn.status_code == 200, kafka_conn.text
    assert json.loads(kafka_conn.json()["extra"])["bootstrap.servers"] == stack.kafka_bootstrap
    aep_conn = session.get(f"{stack.api_url}/api/v2/connections/aep_default", timeout=30).json()
    assert (aep_conn["conn_type"], aep_conn["host"]) == ("adobe_aep", stack.emulator_url)

    created = session.post(
        f"{stack.api_url}/api/v2/dags/{DAG_ID}/dagRuns",
        json={"logical_date": None, "conf": {"topic": topic, "dlq_topic": dlq}},
        timeout=30,
    )
    assert created.status_code == 200, created.text
    run = _wait_for_run(session, stack, created.json()["dag_run_id"])
    assert run["state"] == "success", f"run ended {run['state']}\n{_diagnostics(stack)}"

    received = RemoteEmulator(stack.emulator_url).accepted()
    received_ids = {m["body"]["xdmEntity"]["_id"] for m in received}
    assert ids <= received_ids, f"{len(ids - received_ids)} of {EVENTS} events never reached the emulator"
    assert all(m["header"]["imsOrgId"] == EMULATOR_IMS_ORG_ID for m in received)
