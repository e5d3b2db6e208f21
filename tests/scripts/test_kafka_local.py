"""scripts/kafka_local.py: the real broker works, and every failure is one clear line."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, Producer, TopicPartition

from scripts import kafka_local
from scripts.kafka_local import KafkaBroker, KafkaLocalError, fetch_jars, find_java

REPO_ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run ``python -m scripts.kafka_local`` the way a user does (own process, own environment)."""
    return subprocess.run(
        [sys.executable, "-m", "scripts.kafka_local", *args],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def clean_env(path_dirs: list[Path], **extra: str) -> dict[str, str]:
    """The current environment with only ``path_dirs`` on PATH and no JAVA_HOME / external broker."""
    env = {k: v for k, v in os.environ.items() if k not in ("JAVA_HOME", kafka_local.BOOTSTRAP_ENV)}
    env["PATH"] = os.pathsep.join(str(p) for p in path_dirs)
    env.update(extra)
    return env


def assert_one_clear_error(proc: subprocess.CompletedProcess, *needles: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("kafka_local: error: ")]
    assert len(errors) == 1, proc.stderr
    for needle in needles:
        assert needle in errors[0], proc.stderr


@pytest.fixture
def java_only_bin(tmp_path: Path) -> Path:
    """A PATH directory with ``java`` but without ``mvn``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "java").symlink_to(find_java())
    return bin_dir


def fake_tool(bin_dir: Path, name: str, script: str) -> None:
    tool = bin_dir / name
    tool.write_text(f"#!/bin/sh\n{script}\n")
    tool.chmod(0o755)


# ------------------------------------------------------------------------------------------
# The broker itself (session broker from tests/fixtures/kafka.py)


@pytest.mark.integration
def test_produce_consume_round_trip(kafka_bootstrap, make_topic):
    topic = make_topic(partitions=3, prefix="roundtrip")
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    sent = {f"key-{i}".encode(): f"value-{i}".encode() for i in range(30)}
    for key, value in sent.items():
        producer.produce(topic, value=value, key=key)
    assert producer.flush(30) == 0

    consumer = Consumer(
        {"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{topic}", "auto.offset.reset": "earliest"}
    )
    consumer.subscribe([topic])
    received: dict[bytes, bytes] = {}
    deadline = time.monotonic() + 60
    try:
        while len(received) < len(sent) and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and msg.error() is None:
                received[msg.key()] = msg.value()
        consumer.commit(asynchronous=False)
        committed = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=10)
    finally:
        consumer.close()
    assert received == sent
    assert sum(tp.offset for tp in committed) == len(sent)


@pytest.mark.integration
def test_transactions_commit_and_abort(kafka_bootstrap, make_topic):
    """Needs the single-node transaction log settings (replication 1, min ISR 1)."""
    topic = make_topic(prefix="txn")
    producer = Producer(
        {"bootstrap.servers": kafka_bootstrap, "transactional.id": f"tx-{topic}", "transaction.timeout.ms": 10000}
    )
    producer.init_transactions(30)
    producer.begin_transaction()
    producer.produce(topic, b"committed")
    producer.commit_transaction(30)
    producer.begin_transaction()
    producer.produce(topic, b"aborted")
    producer.abort_transaction(30)

    consumer = Consumer(
        {
            "bootstrap.servers": kafka_bootstrap,
            "group.id": f"g-{topic}",
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "enable.partition.eof": True,
        }
    )
    consumer.assign([TopicPartition(topic, 0, 0)])
    values: list[bytes] = []
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                break  # partition EOF: everything visible has been read
            values.append(msg.value())
    finally:
        consumer.close()
    assert values == [b"committed"]


@pytest.mark.integration
def test_make_topic_applies_partitions_and_config(kafka_admin, make_topic):
    from confluent_kafka.admin import ConfigResource

    topic = make_topic(partitions=4, config={"cleanup.policy": "compact"}, prefix="with spaces")
    assert topic.startswith("with-spaces-")
    assert len(kafka_admin.list_topics(topic=topic, timeout=10).topics[topic].partitions) == 4
    resource = ConfigResource(ConfigResource.Type.TOPIC, topic)
    configs = kafka_admin.describe_configs([resource])[resource].result(timeout=10)
    assert configs["cleanup.policy"].value == "compact"
    assert make_topic() != make_topic()


# ------------------------------------------------------------------------------------------
# Jar cache


@pytest.mark.integration
def test_second_fetch_is_a_cache_hit_without_maven(java_only_bin):
    fetch_jars()  # first call may download; afterwards mvn must not be needed at all
    proc = run_cli("fetch", env=clean_env([java_only_bin]))
    assert proc.returncode == 0, proc.stderr
    assert "(cache hit)" in proc.stdout
    assert str(kafka_local.cache_dir()) in proc.stdout


def test_maven_missing_is_one_clear_line(tmp_path, java_only_bin):
    proc = run_cli("fetch", env=clean_env([java_only_bin], AEP_PROVIDER_CACHE=str(tmp_path / "cache")))
    assert_one_clear_error(proc, "Maven (mvn) not found", "KAFKA_BOOTSTRAP_SERVERS")


def test_maven_offline_is_one_clear_line_and_nothing_is_cached(tmp_path, java_only_bin):
    fake_tool(
        java_only_bin,
        "mvn",
        'echo "[ERROR] Failed to execute goal on project kafka-local-classpath: Could not transfer artifact '
        "org.apache.kafka:kafka_2.13:pom:4.1.1 from/to central: repo.maven.apache.org: Temporary failure "
        'in name resolution"; exit 1',
    )
    cache = tmp_path / "cache"
    proc = run_cli("fetch", env=clean_env([java_only_bin], AEP_PROVIDER_CACHE=str(cache)))
    assert_one_clear_error(proc, "offline or repository unreachable", "Could not transfer artifact")
    assert not (cache / f"kafka-{kafka_local.KAFKA_VERSION}" / "complete.json").exists()
    assert not (cache / f"kafka-{kafka_local.KAFKA_VERSION}" / "lib").exists()


# ------------------------------------------------------------------------------------------
# Java


def test_java_missing_is_one_clear_line(tmp_path):
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    proc = run_cli("start", "--data-dir", str(tmp_path / "kafka"), env=clean_env([empty]))
    assert_one_clear_error(proc, "Java not found", "Java 17+")


def test_java_too_old_is_one_clear_line(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake_tool(bin_dir, "java", "echo 'openjdk version \"11.0.22\" 2024-01-16' >&2")
    proc = run_cli("start", "--data-dir", str(tmp_path / "kafka"), env=clean_env([bin_dir]))
    assert_one_clear_error(proc, "Java 11", "too old", "Java 17+")


# ------------------------------------------------------------------------------------------
# Start failures and the detached lifecycle


@pytest.mark.integration
def test_a_hung_log_dir_format_is_one_clear_error(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    # Answers the version check, then hangs in every other call (the StorageTool format).
    fake_tool(
        bin_dir,
        "java",
        f'case "$1" in -version) echo \'openjdk version "17.0.15" 2025-04-15\' >&2;; *) exec {shutil.which("sleep")} 60;; esac',
    )
    monkeypatch.delenv("JAVA_HOME", raising=False)
    monkeypatch.setenv("PATH", str(bin_dir))
    monkeypatch.setattr(kafka_local, "FORMAT_TIMEOUT", 1.0)
    with pytest.raises(KafkaLocalError, match=r"formatting the Kafka log dir .* did not finish within 1s"):
        KafkaBroker(data_dir=tmp_path / "kafka").start()


@pytest.mark.integration
def test_port_in_use_is_one_clear_line_naming_what_holds_it(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        proc = run_cli("start", "--port", str(port), "--data-dir", str(tmp_path / "kafka"))
    assert_one_clear_error(proc, f"port {port}", f"already in use by pid {os.getpid()} (", "pytest", "--port")


def test_a_port_held_only_by_time_wait_connections_counts_as_free():
    """What `make stop` leaves after HTTP traffic: the servers' side of closed connections in TIME_WAIT."""
    port = kafka_local.free_port()
    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as Kafka, uvicorn and the emulator bind
        server.bind(("127.0.0.1", port))
        server.listen()
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server closes first: its side goes to TIME_WAIT
        client.recv(1)
        client.close()
    with socket.socket() as plain, pytest.raises(OSError):
        plain.bind(("127.0.0.1", port))  # a plain bind() still counts the port as taken
    kafka_local.check_port_free(port, "the AEP emulator")  # the servers' question: free


@pytest.mark.integration
def test_broker_dying_during_start_shows_log_tail(tmp_path):
    broker = KafkaBroker(data_dir=tmp_path / "kafka", extra_properties={"authorizer.class.name": "no.such.Authorizer"})
    with pytest.raises(KafkaLocalError) as excinfo:
        broker.start()
    message = str(excinfo.value)
    assert "exited with code" in message
    assert str(tmp_path / "kafka" / "broker.log") in message
    assert "ClassNotFoundException: no.such.Authorizer" in message
    assert broker.process.poll() is not None


@pytest.mark.integration
def test_not_ready_within_timeout_is_reported_and_cleaned_up(tmp_path):
    broker = KafkaBroker(data_dir=tmp_path / "kafka", ready_timeout=0.2)
    with pytest.raises(KafkaLocalError, match=r"not ready within 0\.2s"):
        broker.start()
    assert broker.process.poll() is not None  # no orphan JVM left behind


@pytest.mark.integration
def test_detached_lifecycle_stale_and_locked_log_dir(tmp_path):
    data_dir = tmp_path / "kafka"
    env = {k: v for k, v in os.environ.items() if k != kafka_local.BOOTSTRAP_ENV}

    first = run_cli("start", "--detach", "--data-dir", str(data_dir), env=env)
    assert first.returncode == 0, first.stderr
    pid = kafka_local.read_state(data_dir)["pid"]
    # A crash (kill -9) leaves a formatted, stale log dir and a state file behind.
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while kafka_local.pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)

    second = run_cli("start", "--detach", "--data-dir", str(data_dir), env=env)
    try:
        assert second.returncode == 0, second.stderr
        # The crashed broker's data is kept (Kafka recovers its log): topics and records survive.
        assert "keeping the data of a previous run" in second.stderr
        state = kafka_local.read_state(data_dir)
        assert state["pid"] != pid
        assert _record_count(state["bootstrap"], kafka_local.READY_TOPIC) == 2  # one per start

        status = run_cli("status", "--data-dir", str(data_dir), env=env)
        assert status.returncode == 0 and f"Kafka at {state['bootstrap']} is up" in status.stdout

        # Same data dir while it runs: refused, and the running broker is untouched.
        again = run_cli("start", "--detach", "--data-dir", str(data_dir), env=env)
        assert_one_clear_error(again, "already running", "stop")
        # Even without the state file, Kafka's own lock on the log dir is detected.
        saved = (data_dir / kafka_local.STATE_FILE).read_text()
        (data_dir / kafka_local.STATE_FILE).unlink()
        locked = run_cli("start", "--detach", "--data-dir", str(data_dir), env=env)
        (data_dir / kafka_local.STATE_FILE).write_text(saved)
        assert_one_clear_error(locked, "is locked by another running process")
        assert kafka_local.pid_alive(state["pid"])
    finally:
        stop = run_cli("stop", "--data-dir", str(data_dir), env=env)
    assert stop.returncode == 0 and f"stopped Kafka (pid {state['pid']})" in stop.stdout
    assert not kafka_local.pid_alive(state["pid"])
    assert run_cli("status", "--data-dir", str(data_dir), env=env).returncode == 1

    # --fresh: a new, empty log dir.
    fresh = run_cli("start", "--detach", "--fresh", "--data-dir", str(data_dir), env=env)
    try:
        assert fresh.returncode == 0 and "removing the log dir of a previous run" in fresh.stderr, fresh.stderr
        assert _record_count(kafka_local.read_state(data_dir)["bootstrap"], kafka_local.READY_TOPIC) == 1
    finally:
        assert run_cli("stop", "--data-dir", str(data_dir), env=env).returncode == 0


def _record_count(bootstrap: str, topic: str) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "count"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=30)
    finally:
        consumer.close()
    return high - low


def test_external_broker_env_means_start_and_stop_do_nothing(tmp_path):
    env = {**os.environ, kafka_local.BOOTSTRAP_ENV: "broker.example:9092"}
    for command in ("start", "stop"):
        proc = run_cli(command, "--data-dir", str(tmp_path / "kafka"), env=env)
        assert proc.returncode == 0, proc.stderr
        assert "KAFKA_BOOTSTRAP_SERVERS is set (broker.example:9092)" in proc.stdout
    assert not (tmp_path / "kafka").exists()


def test_cluster_id_never_starts_with_a_dash(monkeypatch):
    # 0xF8 makes the first base64 character "-": such an id must be drawn again.
    draws = iter([b"\xf8" + bytes(15), bytes(15) + b"\x01"])
    monkeypatch.setattr(kafka_local.os, "urandom", lambda n: next(draws))
    cluster_id = kafka_local.new_cluster_id()
    assert cluster_id == "AAAAAAAAAAAAAAAAAAAAAQ" and len(cluster_id) == 22


def test_server_properties_are_single_node_safe(tmp_path):
    props = dict(
        line.split("=", 1)
        for line in kafka_local.server_properties(9092, 9093, tmp_path, {"num.partitions": "3"}).splitlines()
    )
    assert props["listeners"] == "PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093"
    assert props["controller.quorum.voters"] == "1@127.0.0.1:9093"
    for key in ("offsets.topic.replication.factor", "transaction.state.log.replication.factor",
                "transaction.state.log.min.isr", "offsets.topic.num.partitions"):  # fmt: skip
        assert props[key] == "1", key
    assert props["group.initial.rebalance.delay.ms"] == "0"
    assert props["num.partitions"] == "3"  # extra properties override the defaults


def test_foreign_non_empty_data_dir_is_refused(tmp_path):
    (tmp_path / "precious.txt").write_text("not Kafka's")
    with pytest.raises(KafkaLocalError, match="not made by kafka_local"):
        KafkaBroker(data_dir=tmp_path)._prepare_data_dir()
    assert (tmp_path / "precious.txt").exists()


def test_pid_reuse_is_not_mistaken_for_our_broker(tmp_path):
    (tmp_path / kafka_local.STATE_FILE).write_text(f'{{"pid": {os.getpid()}, "bootstrap": "127.0.0.1:1"}}')
    assert kafka_local.running_pid(tmp_path) is None  # pytest is alive but it is not a kafka.Kafka
