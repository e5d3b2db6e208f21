"""End to end on the cluster topology (scripts/cluster.py): PostgreSQL, Redis, CeleryExecutor, two workers.

One cluster for the module (it takes about a minute to start on 2 cores), on free ports in a
temp dir, Kafka being the session broker; each test writes its DAG into the cluster's DAG folder.
Each worker records its own name as the task instances' hostname (``scripts.cluster.worker_hostname``),
which is how these tests tell which worker ran what.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from aep_provider.emulator import Fault, RemoteEmulator
from scripts.cluster import ClusterStack
from scripts.kafka_local import free_port, tail
from tests.dags.test_scale_out_example import _doc_example
from tests.engine.support import committed, produce, received

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.cluster]

PARTITIONS = 6
RUN_TIMEOUT = 300.0
#: The killed worker's task is failed by the scheduler after this many seconds without a heartbeat.
HEARTBEAT_TIMEOUT = 15


@pytest.fixture(scope="module")
def cluster(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClusterStack]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEP_", "AIRFLOW"))}
    root = tmp_path_factory.mktemp("cluster")
    (root / "dags").mkdir()
    stack = ClusterStack(
        state_dir=root / "state",
        emulator_port=free_port(),
        api_port=free_port(),
        postgres_port=free_port(),
        redis_port=free_port(),
        rate=0,
        kafka_bootstrap=kafka_bootstrap,
        env=env,
        timeout=240,
        dags_folder=root / "dags",
        # One slot each: two drains queued together must go to two workers.
        worker_concurrency=1,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        dag_refresh_seconds=3,  # the tests write their DAG files while it runs
    )
    try:
        stack.start(unpause=False)
        yield stack
    finally:
        stack.stop(quiet=True)
        shutil.rmtree(stack.postgres_dir, ignore_errors=True)
    assert not any(stack.running().values()), f"left running after stop: {stack.running()}"


def diagnostics(stack: ClusterStack) -> str:
    parts = [f"--- {log}:\n{tail(log, 15)}" for log in sorted(stack.logs_dir.glob("*.log"))]
    task_logs = sorted((stack.airflow_home / "logs").rglob("*.log"), key=lambda p: p.stat().st_mtime)
    parts += [f"--- {log}:\n{tail(log, 25)}" for log in task_logs[-3:]]
    return "\n".join(parts)


class Api:
    """The cluster's REST API, tolerant of a slow answer on a busy machine (the deadlines decide)."""

    def __init__(self, stack: ClusterStack) -> None:
        self.stack = stack
        self.session = stack.api_session()
        self.base = f"{stack.api_url}/api/v2"

    def get(self, path: str) -> dict:
        for _ in range(5):
            with contextlib.suppress(requests.RequestException, ValueError):
                answer = self.session.get(f"{self.base}{path}", timeout=30)
                if answer.status_code == 200:
                    return answer.json()
            time.sleep(1)
        pytest.fail(f"GET {path} kept failing\n{diagnostics(self.stack)}")

    def wait_parsed_and_unpause(self, dag_id: str) -> None:
        deadline = time.monotonic() + 180
        while True:
            with contextlib.suppress(requests.RequestException):
                answer = self.session.patch(f"{self.base}/dags/{dag_id}", json={"is_paused": False}, timeout=30)
                if answer.ok:
                    return
            if time.monotonic() > deadline:
                pytest.fail(f"DAG {dag_id} was not parsed within 180 s\n{diagnostics(self.stack)}")
            time.sleep(1)

    def trigger(self, dag_id: str) -> str:
        answer = self.session.post(f"{self.base}/dags/{dag_id}/dagRuns", json={"logical_date": None}, timeout=30)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["dag_run_id"])

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return list(self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances")["task_instances"])

    def tries(self, dag_id: str, run_id: str, task_id: str, map_index: int) -> list[dict]:
        path = f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/{map_index}/tries"
        return list(self.get(path)["task_instances"])

    def wait_run(self, dag_id: str, run_id: str) -> dict:
        deadline = time.monotonic() + RUN_TIMEOUT
        while True:
            run = self.get(f"/dags/{dag_id}/dagRuns/{run_id}")
            if run["state"] in ("success", "failed"):
                return run
            if time.monotonic() > deadline:
                pytest.fail(f"run {run_id} still {run['state']} after {RUN_TIMEOUT:g}s\n{diagnostics(self.stack)}")
            time.sleep(2)


def write_dag(stack: ClusterStack, dag_id: str, source: str) -> None:
    (stack.dags_folder / f"{dag_id}.py").write_text(source)


def accepted_ids(emulator: RemoteEmulator) -> Counter[tuple[int, int]]:
    return Counter((p, n) for p, seqs in received(emulator).items() for n in seqs)  # type: ignore[arg-type]


def test_mapped_drains_run_on_both_workers_after_a_deferred_sensor(cluster: ClusterStack, make_topic):
    """The docs' scale-out example behind a deferrable lag sensor: sensor in the triggerer, drains on both workers."""
    topic = make_topic(partitions=PARTITIONS, prefix="cluster.events")
    group = f"g-{uuid.uuid4().hex[:10]}"
    api = Api(cluster)
    cluster.put_connections(_connections(cluster, group))
    emulator = RemoteEmulator(cluster.emulator_url)
    emulator.reset()
    # Each request answered after 300 ms: the drains overlap for a few seconds.
    emulator.inject(Fault(endpoint="batch", count=None, delay_seconds=0.3))
    dag_id = f"cluster_scaled_{uuid.uuid4().hex[:6]}"
    drains = _doc_example().replace('"aep.events"', repr(topic)).replace('"kafka_to_aep_scaled"', repr(dag_id))
    # Only the run this test triggers: no scheduled run of the same group alongside it.
    drains = re.sub(r"schedule=.*,\n", "schedule=None,\n", drains)
    # Test messages: the stack's Schema Registry serves only the example schema.
    drains = drains.replace("max_run_seconds=240,", "max_run_seconds=240, max_batch_records=100, validate_xdm=False,")
    sensor = (
        "\nfrom aep_provider.sensors.kafka_lag import KafkaLagSensor\n"
        f"with dag:\n    KafkaLagSensor(task_id='wait', topics={topic!r}, min_lag=1200, deferrable=True,"
        " poke_interval=1, timeout=240) >> dag.get_task('drain')\n"
    )
    write_dag(cluster, dag_id, drains + sensor)
    api.wait_parsed_and_unpause(dag_id)
    run_id = api.trigger(dag_id)

    # Nothing waits yet: the sensor defers, and the triggerer picks its trigger up.
    deadline = time.monotonic() + 120
    while True:
        sensor_ti = next(ti for ti in api.task_instances(dag_id, run_id) if ti["task_id"] == "wait")
        if sensor_ti["state"] == "deferred" and sensor_ti["triggerer_job"] is not None:
            break
        assert sensor_ti["state"] in (None, "scheduled", "queued", "running", "deferred"), sensor_ti
        if time.monotonic() > deadline:
            pytest.fail(f"the sensor never deferred: {sensor_ti}\n{diagnostics(cluster)}")
        time.sleep(1)
    assert sensor_ti["trigger"] is not None and sensor_ti["trigger"]["classpath"].endswith("KafkaLagTrigger")
    assert sensor_ti["triggerer_job"]["job_type"] == "TriggererJob", sensor_ti
    produce(cluster.kafka_bootstrap, topic, PARTITIONS, 400)

    run = api.wait_run(dag_id, run_id)
    assert run["state"] == "success", diagnostics(cluster)
    tis = api.task_instances(dag_id, run_id)
    drains_tis = [ti for ti in tis if ti["task_id"] == "drain"]
    assert sorted(ti["map_index"] for ti in drains_tis) == [0, 1, 2]
    assert {ti["state"] for ti in drains_tis} == {"success"}
    # Both workers ran drains (each records its own name as the hostname), from Celery's queue.
    assert {ti["hostname"] for ti in drains_tis} == {"worker-1", "worker-2"}, drains_tis
    assert {ti["queue"] for ti in drains_tis} == {"default"}
    assert {ti["executor"] for ti in drains_tis} <= {None, "CeleryExecutor"}
    # Every record exactly once, each partition in order; the group committed the end.
    got = received(emulator)  # type: ignore[arg-type]
    assert {p: sorted(v) for p, v in got.items()} == {p: list(range(400)) for p in range(PARTITIONS)}
    assert all(v == sorted(v) for v in got.values())
    assert committed(cluster.kafka_bootstrap, group, topic, PARTITIONS) == dict.fromkeys(range(PARTITIONS), 400)


def test_worker_killed_mid_run_its_task_retried_on_the_other_worker(cluster: ClusterStack, make_topic):
    """SIGKILL one worker (its task process too) mid-drain: the retry on the other worker loses nothing."""
    topic = make_topic(partitions=PARTITIONS, prefix="cluster.kill")
    group = f"g-{uuid.uuid4().hex[:10]}"
    per_partition = 500
    total = PARTITIONS * per_partition
    batch, in_flight = 25, 2
    api = Api(cluster)
    cluster.put_connections(_connections(cluster, group))
    emulator = RemoteEmulator(cluster.emulator_url)
    emulator.reset()
    emulator.inject(Fault(endpoint="batch", count=None, delay_seconds=0.4))
    produce(cluster.kafka_bootstrap, topic, PARTITIONS, per_partition)
    dag_id = f"cluster_kill_{uuid.uuid4().hex[:6]}"
    write_dag(
        cluster,
        dag_id,
        f"""
from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator

with DAG(dag_id={dag_id!r}, schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False) as dag:
    KafkaToAEPOperator.partial(
        task_id="drain", topics={topic!r}, kafka_config_id="kafka_default", aep_conn_id="aep_default",
        max_batch_records={batch}, max_run_seconds=240, retries=2, retry_delay=timedelta(seconds=2),
        validate_xdm=False,
    ).expand(max_in_flight=[{in_flight}, {in_flight}])
""",
    )
    api.wait_parsed_and_unpause(dag_id)
    run_id = api.trigger(dag_id)

    # Both drains running, one on each worker, part of the records delivered: kill worker-1.
    deadline = time.monotonic() + 180
    while True:
        tis = {ti["map_index"]: ti for ti in api.task_instances(dag_id, run_id)}
        running = {ti["hostname"]: ti for ti in tis.values() if ti["state"] == "running"}
        delivered = sum(accepted_ids(emulator).values())
        if set(running) == {"worker-1", "worker-2"} and total // 10 <= delivered <= total // 2:
            break
        if time.monotonic() > deadline or delivered > total // 2:
            pytest.fail(f"never saw both drains mid-run (delivered {delivered}/{total}): {tis}\n{diagnostics(cluster)}")
        time.sleep(0.3)
    victim = running["worker-1"]
    cluster.kill_worker("worker-1")

    run = api.wait_run(dag_id, run_id)
    assert run["state"] == "success", diagnostics(cluster)
    tries = api.tries(dag_id, run_id, "drain", victim["map_index"])
    assert [(t["try_number"], t["hostname"], t["state"]) for t in tries[:1]] == [(1, "worker-1", "failed")], tries
    assert tries[-1]["hostname"] == "worker-2" and tries[-1]["state"] == "success", tries
    # Nothing lost; what was sent twice is at most the killed drain's in-flight window.
    ids = accepted_ids(emulator)
    assert set(ids) == {(p, n) for p in range(PARTITIONS) for n in range(per_partition)}
    resent = sum(ids.values()) - len(ids)
    assert resent <= in_flight * batch, f"{resent} records sent twice"
    assert committed(cluster.kafka_bootstrap, group, topic, PARTITIONS) == dict.fromkeys(
        range(PARTITIONS), per_partition
    )


def _connections(stack: ClusterStack, group: str) -> dict[str, dict]:
    """``kafka_default`` on ``group`` (a killed member leaves it after 6 s) and ``aep_default`` on the emulator."""
    from scripts.devstack import EMULATOR_DEFAULTS, airflow_connections

    conns = airflow_connections(
        str(stack.kafka_bootstrap),
        # Every AEP URL on the emulator: nothing may try to reach Adobe's hosts.
        {**EMULATOR_DEFAULTS, **dict.fromkeys(("inlet_url", "ims_url", "platform_url"), stack.emulator_url)},
    )
    extra = json.loads(conns["kafka_default"]["extra"])
    extra.update({"group.id": group, "session.timeout.ms": 6000, "heartbeat.interval.ms": 500})
    conns["kafka_default"]["extra"] = json.dumps(extra)
    return conns
