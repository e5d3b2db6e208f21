"""KafkaLagSensor and KafkaLagTrigger: offsets-only lag against the real broker, deferral, dag.test()."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import re
import socket
import threading
import time
import uuid
from pathlib import Path

import pytest
from confluent_kafka import Consumer, ConsumerGroupState, KafkaError, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient

from aep_provider.exceptions import AEPConfigurationError, KafkaLagReadError
from aep_provider.get_provider_info import get_provider_info
from aep_provider.kafka.lag import LagReadError, partition_lag, read_group_lag
from aep_provider.sensors.kafka_lag import KafkaLagSensor
from aep_provider.triggers import kafka_lag as trigger_module
from aep_provider.triggers.kafka_lag import KafkaLagTrigger
from tests.engine.support import committed, produce

pytestmark = pytest.mark.integration


def commit(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Commit offsets for ``group`` the way a finished drain leaves them (no group membership)."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        consumer.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        consumer.close()


def group_state(bootstrap: str, group: str) -> tuple[ConsumerGroupState, int]:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    desc = admin.describe_consumer_groups([group], request_timeout=10)[group].result(timeout=15)
    return desc.state, len(desc.members)


@pytest.mark.parametrize(
    ("start", "end", "committed_at", "reset", "lag"),
    [
        (0, 10, None, "earliest", 10),
        (4, 10, None, "earliest", 6),
        (0, 10, None, "latest", 0),
        (0, 10, 7, "earliest", 3),
        (5, 10, 2, "earliest", 5),  # committed offset deleted by retention: reset applies
        (0, 10, 10, "earliest", 0),
    ],
)
def test_partition_lag(start, end, committed_at, reset, lag):
    assert partition_lag(start=start, end=end, committed=committed_at, reset=reset) == lag


class _LoadingCoordinator(AdminClient):
    """The real admin client, but its first offset fetches find the group coordinator still loading.

    A broker answers so only while it loads ``__consumer_offsets`` (seen on a fresh cluster); no
    real part does it on demand.
    """

    def __init__(self, conf: dict, failures: int) -> None:
        super().__init__(conf)
        self.failures = failures

    def list_consumer_group_offsets(self, *args, **kwargs):
        if self.failures:
            self.failures -= 1
            raise KafkaException(KafkaError(KafkaError.COORDINATOR_LOAD_IN_PROGRESS, "Coordinator load in progress"))
        return super().list_consumer_group_offsets(*args, **kwargs)


def test_lag_read_waits_out_a_loading_coordinator_within_its_timeout(kafka_bootstrap, make_topic):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 5)
    conf = {"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{uuid.uuid4().hex[:10]}"}
    lag = read_group_lag(conf, [topic], timeout=10, admin=_LoadingCoordinator(conf, failures=3))
    assert lag.total == 5
    with pytest.raises(LagReadError, match="Coordinator load in progress"):
        read_group_lag(conf, [topic], timeout=1, admin=_LoadingCoordinator(conf, failures=100))


def test_lag_from_offsets_only(kafka_bootstrap, make_topic):
    topic = make_topic(partitions=2)
    group = f"g-{uuid.uuid4().hex[:10]}"
    conf = {"bootstrap.servers": kafka_bootstrap, "group.id": group}

    assert read_group_lag(conf, [topic]).total == 0
    produce(kafka_bootstrap, topic, 2, 5)
    lag = read_group_lag(conf, [topic])
    assert lag.total == 10 and lag.by_topic() == {topic: 10}
    assert all(p.committed is None for p in lag.partitions)
    assert read_group_lag({**conf, "auto.offset.reset": "latest"}, [topic]).total == 0

    commit(kafka_bootstrap, group, topic, {0: 5, 1: 2})
    lag = read_group_lag(conf, [topic])
    assert lag.total == 3
    assert lag.to_dict()["partitions"][f"{topic}[1]"] == {"start": 0, "end": 5, "committed": 2, "lag": 3}
    # Reading changed nothing: same commits, and the group has no member.
    assert committed(kafka_bootstrap, group, topic, 2) == {0: 5, 1: 2}
    assert group_state(kafka_bootstrap, group) == (ConsumerGroupState.EMPTY, 0)


def test_unknown_topic_is_a_clear_error(kafka_bootstrap):
    from aep_provider.kafka.lag import LagReadError

    with pytest.raises(LagReadError, match="no-such-topic-"):
        read_group_lag(
            {"bootstrap.servers": kafka_bootstrap, "group.id": "g"}, [f"no-such-topic-{uuid.uuid4().hex}"], timeout=5
        )


def _group_of(conn_id: str) -> str:
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id).extra_dejson["group.id"]


def test_trigger_defers_under_the_threshold_and_fires_when_records_arrive(
    kafka_bootstrap, make_topic, kafka_conn_id, monkeypatch
):
    topic = make_topic(partitions=2)
    group = _group_of(kafka_conn_id)
    produce(kafka_bootstrap, topic, 2, 3)
    commit(kafka_bootstrap, group, topic, {0: 3, 1: 1})  # lag 2: under the threshold of 5

    checks: list[int] = []
    real_read = trigger_module.read_group_lag

    def counting_read(*args, **kwargs):
        lag = real_read(*args, **kwargs)
        checks.append(lag.total)
        return lag

    monkeypatch.setattr(trigger_module, "read_group_lag", counting_read)
    trigger = KafkaLagTrigger(topics=[topic], kafka_config_id=kafka_conn_id, min_lag=5, poll_interval=0.1)

    async def scenario():
        waiting = asyncio.ensure_future(anext(trigger.run()))
        while len(checks) < 3:  # three checks under the threshold, no event
            assert not waiting.done(), waiting.result()
            await asyncio.sleep(0.05)
        assert not waiting.done()
        await asyncio.to_thread(produce, kafka_bootstrap, topic, 2, 2, start=3)
        return await asyncio.wait_for(waiting, timeout=60)

    event = asyncio.run(scenario())
    assert set(checks[:3]) == {2}
    assert event.payload["status"] == "success"
    assert event.payload["lag"]["lag"] == 6 and event.payload["lag"]["topics"] == {topic: 6}
    assert committed(kafka_bootstrap, group, topic, 2) == {0: 3, 1: 1}
    assert group_state(kafka_bootstrap, group) == (ConsumerGroupState.EMPTY, 0)


def test_trigger_times_out_and_reports_errors(make_topic, kafka_conn_id):
    topic = make_topic()

    async def first(trigger):
        return await asyncio.wait_for(anext(trigger.run()), timeout=60)

    timeout = asyncio.run(
        first(
            KafkaLagTrigger(
                topics=[topic], kafka_config_id=kafka_conn_id, poll_interval=0.1, timeout_at=time.time() + 0.5
            )
        )
    )
    assert timeout.payload["status"] == "timeout" and timeout.payload["lag"]["lag"] == 0

    missing = f"missing-{uuid.uuid4().hex[:8]}"
    error = asyncio.run(first(KafkaLagTrigger(topics=[missing], kafka_config_id=kafka_conn_id, request_timeout=5)))
    assert error.payload["status"] == "error" and missing in error.payload["message"]


def test_a_lag_read_hanging_on_a_dead_broker_holds_up_no_other_trigger(kafka_conn_id):
    """
    Other triggers in the triggerer make sync calls through asgiref's sync_to_async (thread
    sensitive: one shared thread). A lag read waiting on a dead broker must not occupy that
    thread: the neighbour's calls complete while the read still waits out its request_timeout.
    """
    from asgiref.sync import sync_to_async

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"127.0.0.1:{sock.getsockname()[1]}"  # nothing listens there once closed
    trigger = KafkaLagTrigger(
        topics=["t"], kafka_config_id=kafka_conn_id, kafka_config_overrides={"bootstrap.servers": dead},
        request_timeout=15,
    )  # fmt: skip
    order: list[str] = []

    async def neighbour() -> None:
        await asyncio.sleep(0.5)  # the lag read has started (and hangs)
        for _ in range(5):
            await sync_to_async(time.monotonic)()
        order.append("neighbour done")

    async def lag() -> dict:
        event = await anext(trigger.run())
        order.append("lag read ended")
        return event.payload

    async def both() -> dict:
        payload, _ = await asyncio.wait_for(asyncio.gather(lag(), neighbour()), timeout=120)
        return payload

    payload = asyncio.run(both())
    assert payload["status"] == "error" and dead in payload["message"], payload
    assert order == ["neighbour done", "lag read ended"]


def test_trigger_serializes_to_itself():
    trigger = KafkaLagTrigger(topics=["a"], kafka_config_id="k", group_id="g", min_lag=3, timeout_at=12.5)
    path, kwargs = trigger.serialize()
    assert path == "aep_provider.triggers.kafka_lag.KafkaLagTrigger"
    assert KafkaLagTrigger(**kwargs).serialize() == (path, kwargs)


def test_provider_info_registers_sensor_and_trigger():
    info = get_provider_info()
    assert info["sensors"][0]["python-modules"] == ["aep_provider.sensors.kafka_lag"]
    assert info["triggers"][0]["python-modules"] == ["aep_provider.triggers.kafka_lag"]


def test_sensor_poke_mode(kafka_bootstrap, make_topic, kafka_conn_id, caplog, capfd):
    topic = make_topic()
    sensor = KafkaLagSensor(task_id="lag", topics=topic, kafka_config_id=kafka_conn_id, min_lag="2")
    with caplog.at_level(logging.INFO):
        assert not sensor.poke({}).is_done
        produce(kafka_bootstrap, topic, 1, 2)
        result = sensor.poke({})
    assert result.is_done and result.xcom_value["lag"] == 2
    # Each check's line says whether the condition is met (Airflow's task logger may print instead of propagating).
    text = caplog.text + "".join(capfd.readouterr())
    assert re.findall(rf"lag on {topic}: \d+ \({topic}=\d+\); ([^\n]*: \w+)", text) == [
        "below 2: waiting",
        "at least 2: done",
    ]
    assert committed(kafka_bootstrap, _group_of(kafka_conn_id), topic, 1) == {0: -1001}


def test_sensor_argument_and_connection_errors(make_kafka_conn):
    with pytest.raises(ValueError, match="min_lag"):
        KafkaLagSensor(task_id="lag", topics="t", min_lag=0)
    sensor = KafkaLagSensor(task_id="lag", topics="t", min_lag="{{ params.n }}")
    sensor.min_lag = "many"
    with pytest.raises(AEPConfigurationError, match="min_lag"):
        _ = sensor._min_lag
    conn_id = make_kafka_conn(**{"bootstrap.servers": "127.0.0.1:1"})
    with pytest.raises(KafkaLagReadError, match="127.0.0.1:1"):
        KafkaLagSensor(task_id="lag", topics="t", kafka_config_id=conn_id, request_timeout=1).poke({})


# -- under dag.test() ---------------------------------------------------------------------

DAG_TEMPLATE = """
from datetime import datetime
from airflow.sdk import DAG
from aep_provider.sensors.kafka_lag import KafkaLagSensor

with DAG({dag_id!r}, schedule=None, start_date=datetime(2025, 1, 1), catchup=False) as dag:
    KafkaLagSensor(
        task_id="wait_for_records", topics={topic!r}, kafka_config_id={conn_id!r}, min_lag={min_lag},
        deferrable=True, poke_interval=0.2, timeout={timeout}, soft_fail=True,
    )
"""


def _dag(airflow_db: str, **values):
    values["dag_id"] = f"lag_sensor_{uuid.uuid4().hex[:8]}"
    bundle = Path(airflow_db) / "dags"
    bundle.mkdir(exist_ok=True)
    path = bundle / f"{values['dag_id']}.py"
    path.write_text(DAG_TEMPLATE.format(**values))
    spec = importlib.util.spec_from_file_location(values["dag_id"], path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.mark.e2e
@pytest.mark.smoke
def test_sensor_defers_then_fires_under_dag_test(airflow_db, kafka_bootstrap, make_topic, kafka_conn_id, monkeypatch):
    topic = make_topic(partitions=2)
    group = _group_of(kafka_conn_id)
    deferred = threading.Event()
    real_read = trigger_module.read_group_lag

    def read_in_trigger(*args, **kwargs):
        deferred.set()  # only the trigger reads through this module: the task has deferred
        return real_read(*args, **kwargs)

    monkeypatch.setattr(trigger_module, "read_group_lag", read_in_trigger)

    def produce_once_deferred():
        if deferred.wait(120):
            produce(kafka_bootstrap, topic, 2, 2)

    producer = threading.Thread(target=produce_once_deferred, daemon=True)
    producer.start()
    dag = _dag(airflow_db, topic=topic, conn_id=kafka_conn_id, min_lag=3, timeout=120)
    dag_run = dag.test()
    producer.join(5)

    assert deferred.is_set()
    assert dag_run.state == "success"
    ti = dag_run.get_task_instance("wait_for_records")
    assert ti.state == "success"
    assert ti.xcom_pull(task_ids="wait_for_records")["lag"] == 4
    assert committed(kafka_bootstrap, group, topic, 2) == {0: -1001, 1: -1001}


@pytest.mark.e2e
def test_sensor_times_out_into_a_skip_under_dag_test(airflow_db, make_topic, kafka_conn_id):
    dag = _dag(airflow_db, topic=make_topic(), conn_id=kafka_conn_id, min_lag=1, timeout=1)
    dag_run = dag.test()
    assert dag_run.get_task_instance("wait_for_records").state == "skipped"
