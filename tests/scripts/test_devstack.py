"""scripts/devstack.py and scripts/sample_events.py: the pieces `make run` wires together."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aep_provider.emulator import DEFAULT_IMS_ORG_ID
from aep_provider.emulator.xdm import check_message
from aep_provider.hooks.aep import AEPStreamingHook
from scripts.devstack import (
    EMULATOR_DEFAULTS,
    SHADOWING_ENV,
    DevStack,
    DevStackError,
    airflow_connections,
    real_aep_from_env,
)
from scripts.sample_events import DEFAULT_DATASET_ID, DEFAULT_SCHEMA_ID, EMULATOR_IMS_ORG_ID, sample_event
from tests.docs_commands import documented

REPO_ROOT = Path(__file__).resolve().parents[2]
REAL = {
    "AEP_CLIENT_ID": "real-client",
    "AEP_CLIENT_SECRET": "s3cr3t&+=value",
    "AEP_IMS_ORG_ID": "ABCDEF0123456789ABCDEF01@AdobeOrg",
    "AEP_INLET_ID": "real-inlet",
}


def test_emulator_defaults_match_the_emulator_package():
    import aep_provider.emulator as emulator

    assert EMULATOR_DEFAULTS == {
        "client_id": emulator.DEFAULT_CLIENT_ID,
        "client_secret": emulator.DEFAULT_CLIENT_SECRET,
        "ims_org_id": emulator.DEFAULT_IMS_ORG_ID,
        "inlet_id": emulator.DEFAULT_INLET_ID,
    }
    assert emulator.DEFAULT_SANDBOX == "prod"  # the connection's default: not stored as an extra
    assert EMULATOR_IMS_ORG_ID == DEFAULT_IMS_ORG_ID


def test_no_aep_variables_means_the_emulator():
    assert real_aep_from_env({"PATH": "/bin"}) is None


def test_real_aep_from_env_with_defaults():
    target = real_aep_from_env(REAL)
    assert target["inlet_url"] == "https://dcs.adobedc.net"
    assert target["sandbox_name"] == ""  # the connection's default applies
    assert target["client_secret"] == REAL["AEP_CLIENT_SECRET"]


def test_partial_real_aep_names_what_is_missing_without_the_secret():
    partial = {"AEP_CLIENT_ID": "real-client", "AEP_CLIENT_SECRET": "s3cr3t&+=value"}
    with pytest.raises(DevStackError) as excinfo:
        real_aep_from_env(partial)
    message = str(excinfo.value)
    assert "missing: AEP_IMS_ORG_ID, AEP_INLET_ID" in message
    assert "s3cr3t" not in message


def test_cli_reports_partial_aep_config_in_one_line(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "AEP_CLIENT_ID": "real-client", "AEP_CLIENT_SECRET": "s3cr3t&+=value",
           "HOME": str(tmp_path)}  # fmt: skip
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.devstack", "--state-dir", str(tmp_path / "stack"), "start"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 2, proc
    assert proc.stderr.startswith("devstack: error: real AEP needs") and "Traceback" not in proc.stderr
    assert "s3cr3t" not in proc.stderr + proc.stdout
    assert not (tmp_path / "stack" / "kafka").exists()  # failed before starting anything


@pytest.mark.parametrize("aep_env", [{}, REAL], ids=["emulator", "real-aep"])
def test_connections_are_understood_by_the_hook(monkeypatch, aep_env):
    aep = real_aep_from_env(aep_env) or {**EMULATOR_DEFAULTS, "inlet_url": "http://127.0.0.1:8765",
                                         "ims_url": "http://127.0.0.1:8765",
                                         "platform_url": "http://127.0.0.1:8765"}  # fmt: skip
    conns = airflow_connections("127.0.0.1:9092", aep)
    assert json.loads(conns["kafka_default"]["extra"]) == {
        "bootstrap.servers": "127.0.0.1:9092",
        "group.id": "aep-provider-example",
    }
    aep_conn = {**conns["aep_default"], "extra": json.loads(conns["aep_default"]["extra"])}
    # No defaults as extras: Airflow masks every extra value and warns about short ones ("prod").
    assert set(aep_conn["extra"]) <= {"inlet_id", "ims_org_id", "ims_url", "platform_url"}
    assert all(len(v) >= 5 for v in aep_conn["extra"].values())
    # Port 0, what Airflow 3.3.2's Test button posts for a connection without one.
    assert conns["aep_default"]["port"] == conns["kafka_default"]["port"] == 0
    monkeypatch.setenv("AIRFLOW_CONN_AEP_DEFAULT", json.dumps(aep_conn))
    settings = AEPStreamingHook().settings
    assert settings.inlet_id == aep["inlet_id"]
    assert settings.ims_org_id == aep["ims_org_id"]
    assert settings.client_id == aep["client_id"]
    assert settings.sandbox_name == "prod"
    # Catalog and the Schema Registry: the emulator's own, or AEP's default host.
    assert settings.platform_url == (aep.get("platform_url") or "https://platform.adobe.io")


def test_airflow_env_targets_the_chosen_port_and_drops_shadowing_connections(tmp_path):
    env = {name: "x" for name in SHADOWING_ENV} | {"PATH": "/usr/bin", "KEEP_ME": "1"}
    stack = DevStack(state_dir=tmp_path, api_port=18080, env=env)
    airflow_env = stack.airflow_env()
    assert airflow_env["AIRFLOW_HOME"] == str(tmp_path / "airflow")
    assert airflow_env["AIRFLOW__API__PORT"] == "18080"
    assert airflow_env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://127.0.0.1:18080/execution/"
    assert airflow_env["AIRFLOW__CORE__DAGS_FOLDER"] == str(REPO_ROOT / "dags")
    assert airflow_env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert not set(SHADOWING_ENV) & set(airflow_env)
    assert airflow_env["KEEP_ME"] == "1"
    assert airflow_env["AIRFLOW__CORE__TEST_CONNECTION"] == "Enabled"
    assert (
        airflow_env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        == f"sqlite:///{tmp_path / 'airflow' / 'airflow.db'}?timeout=60"
    )


def test_a_sandbox_other_than_the_default_is_stored():
    target = real_aep_from_env({**REAL, "AEP_SANDBOX_NAME": "dev-sandbox"})
    extra = json.loads(airflow_connections("127.0.0.1:9092", target)["aep_default"]["extra"])
    assert extra["sandbox_name"] == "dev-sandbox"


def _devstack_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"} | env
    return subprocess.run(
        [sys.executable, "-m", "scripts.devstack", "--state-dir", str(tmp_path), *args],
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def test_exec_runs_a_command_with_the_stack_environment(tmp_path):
    (tmp_path / "airflow").mkdir()
    (tmp_path / "airflow" / "airflow.db").touch()
    (tmp_path / "devstack.json").write_text(json.dumps({"api_url": "http://127.0.0.1:18123"}))
    probe = "import os, shutil; print(os.environ['AIRFLOW_HOME'], os.environ['AIRFLOW__API__PORT'], shutil.which('aep-emulator'))"
    proc = _devstack_cli(tmp_path, "exec", "--", "python", "-c", probe)
    assert proc.returncode == 0, proc.stderr
    home, port, emulator = proc.stdout.split()
    assert (home, port) == (str(tmp_path / "airflow"), "18123")
    assert emulator == str(Path(sys.executable).parent / "aep-emulator")


def test_exec_refuses_the_airflow_cli_before_the_stack_ever_ran(tmp_path):
    proc = _devstack_cli(tmp_path, "exec", "airflow", "dags", "list")
    assert proc.returncode == 2
    assert (
        proc.stderr.startswith("devstack: error: the local stack has not been started here")
        and "make run" in proc.stderr
    )
    assert not (tmp_path / "airflow").exists()  # nothing created


def test_the_scripts_local_wrapper_runs_from_any_directory(tmp_path):
    command = documented("docs/local-stack.md", "scripts/local aep-emulator")  # "scripts/local aep-emulator --help"
    proc = subprocess.run(
        [str(REPO_ROOT / "scripts" / "local"), *command.split()[1:]],
        cwd=tmp_path, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage: aep-emulator")


def test_wipe_kafka_deletes_the_data_only_when_the_broker_is_stopped(tmp_path):
    (tmp_path / "kafka" / "kraft").mkdir(parents=True)
    environ = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"} | {
        "DEVSTACK_STATE_DIR": str(tmp_path)
    }
    proc = subprocess.run(
        documented("docs/local-stack.md", "make wipe-kafka").split(),
        cwd=REPO_ROOT, env=environ, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0 and "topics, records, committed offsets" in proc.stdout, proc.stderr
    assert not (tmp_path / "kafka").exists()
    assert "nothing to wipe" in _devstack_cli(tmp_path, "wipe-kafka").stdout
    (tmp_path / "kafka").mkdir()
    external = _devstack_cli(tmp_path, "wipe-kafka", KAFKA_BOOTSTRAP_SERVERS="broker.example:9092")
    assert external.returncode == 2 and "not ours to wipe" in external.stderr
    assert (tmp_path / "kafka").exists()


def test_stop_without_a_running_stack_says_so(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.devstack", "--state-dir", str(tmp_path), "stop"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0
    assert "not running" in proc.stdout


def test_sample_events_are_valid_xdm_messages():
    for seq in range(6):
        event = sample_event(seq, schema_id=DEFAULT_SCHEMA_ID, dataset_id=DEFAULT_DATASET_ID,
                             ims_org_id=EMULATOR_IMS_ORG_ID)  # fmt: skip
        assert check_message(json.loads(json.dumps(event)), EMULATOR_IMS_ORG_ID) is None
        entity = event["body"]["xdmEntity"]
        assert entity["_id"] and entity["timestamp"].endswith("Z") and entity["eventType"]
    assert (
        sample_event(0, schema_id="s", dataset_id="d", ims_org_id="o")["body"]["xdmEntity"]["_id"]
        != sample_event(0, schema_id="s", dataset_id="d", ims_org_id="o")["body"]["xdmEntity"]["_id"]
    )


@pytest.mark.integration
def test_sample_events_cli_produces_the_requested_count(kafka_bootstrap, make_topic):
    from confluent_kafka import Consumer, TopicPartition

    topic = make_topic(prefix="sample")
    proc = subprocess.run(
        [sys.executable, "-m", "scripts.sample_events", "--bootstrap", kafka_bootstrap, "--topic", topic,
         "--count", "7", "--rate", "100"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": f"g-{topic}"})
    try:
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)
    finally:
        consumer.close()
    assert high - low == 7


@pytest.mark.integration
def test_the_stacks_kafka_keeps_its_topics_and_records_across_stop_and_start(tmp_path):
    """What `make stop` then `make run` do to Kafka (the broker part of DevStack.start/stop)."""
    from confluent_kafka import Consumer, Producer, TopicPartition

    from scripts.kafka_local import free_port

    env = {k: v for k, v in os.environ.items() if k != "KAFKA_BOOTSTRAP_SERVERS"}
    stack = DevStack(state_dir=tmp_path, kafka_port=free_port(), env=env, timeout=120)

    def start() -> str:
        state: dict = {}
        stack._save(state)
        bootstrap = stack._start_kafka(state)
        stack._create_topics(bootstrap)
        return bootstrap

    try:
        bootstrap = start()
        producer = Producer({"bootstrap.servers": bootstrap, "log_level": 0})  # it outlives the broker's stop
        producer.produce("aep.events", b"kept", partition=3)
        assert producer.flush(30) == 0
        stack.stop(quiet=True)
        bootstrap = start()
        consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "count"})
        try:
            assert consumer.get_watermark_offsets(TopicPartition("aep.events", 3), timeout=30) == (0, 1)
        finally:
            consumer.close()
    finally:
        stack.stop(quiet=True)
    assert not stack.running()
