"""
Commits that never complete, against a real broker: the run is bounded all the same.

A broker of this module's own advertises a proxy (tests/engine/kafka_proxy.py) that can swallow
the group's OffsetCommit requests while everything else (fetches, heartbeats, rebalances) is
answered: the coordinator looks alive, but no commit is ever confirmed.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient, NewTopic

from aep_provider.emulator import Fault
from aep_provider.engine import DrainConfig, DrainEngine, DrainError, KafkaUnavailableError
from scripts.kafka_local import KafkaBroker, free_port
from tests.engine.kafka_proxy import KafkaProxy
from tests.engine.support import inlet_client, kafka_conf, produce, received

pytestmark = pytest.mark.integration

#: Short bounds: a commit unconfirmed for kafka_timeout + stop_grace (5 s) stops the run.
BOUNDS = {"kafka_timeout_seconds": 3.0, "stop_grace_seconds": 2.0, "assignment_timeout_seconds": 60.0}


@pytest.fixture(scope="module")
def proxied_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, KafkaProxy]]:
    """A broker whose clients all go through a :class:`KafkaProxy`; yields (bootstrap, proxy)."""
    broker_port = free_port()
    proxy = KafkaProxy(broker_port).start()
    broker = KafkaBroker(
        port=broker_port,
        data_dir=tmp_path_factory.mktemp("kafka-proxied"),
        ready_timeout=120,
        extra_properties={"advertised.listeners": f"PLAINTEXT://127.0.0.1:{proxy.port}"},
    )
    try:
        broker.start()
        yield f"127.0.0.1:{proxy.port}", proxy
    finally:
        broker.stop()
        proxy.stop()


@pytest.fixture
def proxy(proxied_broker) -> Iterator[KafkaProxy]:
    _, proxy = proxied_broker
    proxy.hold_commits.clear()
    yield proxy
    proxy.hold_commits.clear()


def _topic(bootstrap: str, partitions: int) -> str:
    name = f"bounds-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": bootstrap})  # kept alive until the topic exists
    admin.create_topics([NewTopic(name, partitions, 1)])[name].result(30)
    return name


def _run_in_thread(engine: DrainEngine) -> tuple[threading.Thread, dict[str, object]]:
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["summary"] = engine.run()
        except DrainError as err:
            outcome["error"] = err

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    return runner, outcome


@pytest.mark.timeout(300)
def test_commits_never_confirmed_stop_the_run_instead_of_spinning(proxied_broker, proxy, aep_emulator):
    """
    Acknowledged batches count against max_in_flight until their commit is confirmed: with every
    commit swallowed, sending stops after two batches and nothing else moves. The run must fail
    (retryably) once no commit was confirmed for kafka_timeout + stop_grace seconds, not wait for
    max_run_seconds.
    """
    bootstrap, _ = proxied_broker
    topic = _topic(bootstrap, 1)
    produce(bootstrap, topic, 1, 1000)
    conf = kafka_conf(bootstrap)
    proxy.hold_commits.set()
    engine = DrainEngine(
        consumer_conf=conf,
        topics=[topic],
        sender=inlet_client(aep_emulator),
        config=DrainConfig(**BOUNDS, max_batch_records=50, max_in_flight=2, max_run_seconds=120),
    )
    runner, outcome = _run_in_thread(engine)
    runner.join(120)
    assert not runner.is_alive(), "the run kept going although no commit could be confirmed"
    error = outcome.get("error")
    assert isinstance(error, KafkaUnavailableError), outcome
    assert error.retryable
    assert "confirmed no offset commit for 5s" in str(error) and conf["group.id"] in str(error)
    # Two batches went out (max_in_flight), then nothing: what a crash now would re-send is bounded.
    assert len(aep_emulator.accepted()) == 100
    assert engine.summary.stopped_by == "failed"
    assert proxy.held >= 1


@pytest.mark.timeout(300)
def test_a_hand_over_commit_that_never_completes_is_bounded(proxied_broker, proxy, aep_emulator, caplog):
    """
    A second member joins mid-run: the rebalance revokes partitions from the drain, whose hand-over
    commit is never answered. The rebalance callback does not wait for it (a synchronous commit
    would hold the consumer until librdkafka's request timeout, here 300 s, even from another
    thread), and the run ends within its own bounds: no commit confirmed for kafka_timeout +
    stop_grace seconds.
    """
    bootstrap, _ = proxied_broker
    topic = _topic(bootstrap, 4)
    per_partition = 500
    produce(bootstrap, topic, 4, per_partition)
    group = f"g-{uuid.uuid4().hex[:10]}"
    conf = kafka_conf(bootstrap, group, **{"socket.timeout.ms": 300_000})
    aep_emulator.inject(Fault(delay_seconds=0.05, count=None, endpoint="batch"))
    engine = DrainEngine(
        consumer_conf=conf,
        topics=[topic],
        sender=inlet_client(aep_emulator),
        config=DrainConfig(**BOUNDS, max_batch_records=20, max_in_flight=2, max_run_seconds=120),
    )
    runner, outcome = _run_in_thread(engine)
    give_up = time.monotonic() + 120
    while len(aep_emulator.accepted()) < 100 and runner.is_alive() and time.monotonic() < give_up:
        time.sleep(0.02)
    assert runner.is_alive(), "the drain ended before the rebalance"
    proxy.hold_commits.set()
    other = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "partition.assignment.strategy": "cooperative-sticky",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 500,
        }
    )
    other.subscribe([topic])
    stop_other = threading.Event()

    def keep_polling() -> None:
        while not stop_other.is_set():
            other.poll(0.1)

    member = threading.Thread(target=keep_polling, daemon=True)
    member.start()
    try:
        with caplog.at_level("INFO", logger="aep_provider.engine"):
            runner.join(120)
            assert not runner.is_alive(), "the run was held by a hand-over commit that never completed"
    finally:
        stop_other.set()
        member.join(10)
        other.close()
    assert isinstance(outcome.get("error"), KafkaUnavailableError), outcome
    assert any("Handing over" in r.getMessage() for r in caplog.records if r.name == "aep_provider.engine.commits")
    # Nothing was lost: what was delivered is a gapless prefix of each partition.
    for partition, seqs in received(aep_emulator).items():
        assert sorted(seqs) == list(range(len(seqs))), partition
