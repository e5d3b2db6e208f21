"""docker-compose.yaml (no Docker engine here): it parses, and agrees with `make run`, the docs and the code."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from aep_provider.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_IMS_ORG_ID, DEFAULT_INLET_ID
from scripts import kafka_local
from scripts.devstack import DLQ_TOPIC, KAFKA_GROUP_ID, TOPIC, TOPIC_PARTITIONS, DevStack

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO_ROOT / "docker-compose.yaml").read_text())


def host_ports(service: dict) -> set[int]:
    """Published host ports; each must be bound to 127.0.0.1 (Kafka has no authentication)."""
    ports = set()
    for mapping in service.get("ports", []):
        host_ip, host_port, _container = str(mapping).split(":")
        assert host_ip == "127.0.0.1", f"{mapping} publishes on every interface of the host"
        ports.add(int(host_port))
    return ports


def test_services_and_ports_match_the_local_stack(compose):
    services = compose["services"]
    assert {"kafka", "aep-emulator", "airflow"} <= set(services)
    defaults = DevStack()
    assert host_ports(services["kafka"]) == {defaults.kafka_port}
    assert host_ports(services["aep-emulator"]) == {defaults.emulator_port}
    assert host_ports(services["airflow"]) == {defaults.api_port}
    for doc in ("README.md", "docs/local-stack.md"):
        text = (REPO_ROOT / doc).read_text()
        for port in (defaults.kafka_port, defaults.emulator_port, defaults.api_port):
            assert f":{port}" in text, f"{doc} does not mention port {port}"


def test_kafka_is_the_same_version_single_node(compose):
    kafka = compose["services"]["kafka"]
    assert kafka["image"] == f"apache/kafka:{kafka_local.KAFKA_VERSION}"
    env = kafka["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):  # fmt: skip
        assert env[key] == 1, key
    init = " ".join(compose["services"]["kafka-init"]["command"])
    assert f"--topic {TOPIC} --partitions {TOPIC_PARTITIONS}" in init
    assert f"--topic {DLQ_TOPIC} " in init


def test_emulator_runs_the_packaged_cli(compose):
    emulator = compose["services"]["aep-emulator"]
    assert emulator["command"] == ["python", "-m", "aep_provider.emulator", "--host", "0.0.0.0", "--port", "8765"]
    assert emulator["build"] == "."
    assert (REPO_ROOT / "Dockerfile").is_file()
    for source in re.findall(r"^COPY (.+) \./", (REPO_ROOT / "Dockerfile").read_text(), re.M):
        for name in source.split():
            assert (REPO_ROOT / name).exists(), f"Dockerfile copies missing {name}"


def test_airflow_connections_point_at_the_other_services(compose):
    airflow = compose["services"]["airflow"]
    env = airflow["environment"]
    kafka_conn = json.loads(env["AIRFLOW_CONN_KAFKA_DEFAULT"])
    assert kafka_conn["conn_type"] == "kafka"
    internal = compose["services"]["kafka"]["environment"]["KAFKA_ADVERTISED_LISTENERS"]
    assert f"INTERNAL://{kafka_conn['extra']['bootstrap.servers']}" in internal
    assert kafka_conn["extra"]["group.id"] == KAFKA_GROUP_ID

    aep_conn = json.loads(env["AIRFLOW_CONN_AEP_DEFAULT"])
    assert aep_conn["conn_type"] == "adobe_aep"
    assert (
        aep_conn["host"]
        == aep_conn["extra"]["ims_url"]
        == aep_conn["extra"]["platform_url"]
        == "http://aep-emulator:8765"
    )
    assert (aep_conn["login"], aep_conn["password"]) == (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    assert aep_conn["extra"]["inlet_id"] == DEFAULT_INLET_ID
    assert aep_conn["extra"]["ims_org_id"] == DEFAULT_IMS_ORG_ID
    # Plain HTTP to another container: allowed explicitly, or the connection would be refused.
    from aep_provider.aep import AEPSettings

    settings = AEPSettings.from_values(
        {**aep_conn["extra"], "inlet_url": aep_conn["host"], "client_id": aep_conn["login"],
         "client_secret": aep_conn["password"]}
    )  # fmt: skip
    assert settings.allow_insecure_http is True
    assert "./dags:/opt/airflow/dags:ro" in airflow["volumes"]
    assert (REPO_ROOT / "dags" / "kafka_to_aep_example.py").is_file()


CLUSTER_COMPONENTS = {
    "airflow-apiserver": ["airflow", "api-server"],
    "airflow-scheduler": ["airflow", "scheduler"],
    "airflow-dag-processor": ["airflow", "dag-processor"],
    "airflow-triggerer": ["airflow", "triggerer"],
    "airflow-worker": ["airflow", "celery", "worker"],
}


def test_cluster_profile_is_the_topology_of_make_cluster(compose):
    """PostgreSQL, Redis, the four Airflow components and two Celery workers, as scripts/cluster.py starts them."""
    from scripts.cluster import PORT_DEFAULTS, ClusterStack

    services = compose["services"]
    cluster = {name for name, svc in services.items() if "cluster" in svc.get("profiles", [])}
    assert cluster == {"postgres", "redis", "airflow-init", *CLUSTER_COMPONENTS}
    # Kafka, the emulator and the producer serve both profiles; the standalone Airflow has none.
    assert not any(
        services[name].get("profiles") for name in ("kafka", "kafka-init", "aep-emulator", "producer", "airflow")
    )
    for name, command in CLUSTER_COMPONENTS.items():
        assert services[name]["command"] == command, name
        assert services[name]["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}, name
        assert services[name]["depends_on"]["postgres"]["condition"] == "service_healthy", name
    assert services["airflow-init"]["command"] == ["airflow", "db", "migrate"]
    assert services["airflow-worker"]["deploy"]["replicas"] == ClusterStack().workers == 2
    assert host_ports(services["airflow-apiserver"]) == {PORT_DEFAULTS["api"]}
    assert all(not host_ports(services[name]) for name in cluster - {"airflow-apiserver"})


def test_cluster_profile_runs_celery_on_postgres_and_redis(compose):
    services = compose["services"]
    env = services["airflow-scheduler"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
    postgres = services["postgres"]["environment"]
    db = f"{postgres['POSTGRES_USER']}:{postgres['POSTGRES_PASSWORD']}@postgres/{postgres['POSTGRES_DB']}"
    assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == f"postgresql+psycopg2://{db}"
    assert env["AIRFLOW__CELERY__RESULT_BACKEND"] == f"db+postgresql+psycopg2://{db}"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    # Workers reach the Execution API on the API server, with a JWT secret every component shares.
    assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
    assert env["AIRFLOW__API_AUTH__JWT_SECRET"]
    # Every component has the same environment (the official file's x-airflow-common).
    for name in CLUSTER_COMPONENTS:
        assert {k: v for k, v in services[name]["environment"].items() if k != "DUMB_INIT_SETSID"} == env, name
    # The same connections as the standalone Airflow.
    standalone = services["airflow"]["environment"]
    for conn in ("AIRFLOW_CONN_KAFKA_DEFAULT", "AIRFLOW_CONN_AEP_DEFAULT"):
        assert env[conn] == standalone[conn]


def test_cluster_image_installs_the_cluster_extra(compose):
    import tomllib

    build = compose["services"]["airflow-scheduler"]["build"]
    assert build["context"] == "."
    extras = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert build["args"]["EXTRAS"] == "[cluster]" and "cluster" in extras
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert 'ARG EXTRAS=""' in dockerfile and '".${EXTRAS}"' in dockerfile
    assert compose["services"]["airflow-scheduler"]["image"] != compose["services"]["airflow"]["image"]
