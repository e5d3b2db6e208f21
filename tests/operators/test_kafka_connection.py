"""Kafka connections go through the apache-kafka provider's config building: dotted-path callbacks, allowlist."""

from __future__ import annotations

import pytest

from aep_provider.exceptions import AEPConfigurationError
from aep_provider.kafka.connection import kafka_connection_config
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator
from aep_provider.sensors.kafka_lag import KafkaLagSensor
from tests.engine.support import produce

STATS_CALLS: list[str] = []
CALLBACK = f"{__name__}.record_stats"


def record_stats(stats_json: str) -> None:
    """A librdkafka ``stats_cb`` named by dotted path in the connection's extra."""
    STATS_CALLS.append(stats_json)


@pytest.fixture
def allow_callback(monkeypatch):
    monkeypatch.setenv("AIRFLOW__APACHE_KAFKA__CALLBACK_ALLOWLIST", CALLBACK)


def test_connection_callbacks_are_resolved_when_allowlisted(make_kafka_conn, allow_callback):
    conn_id = make_kafka_conn(stats_cb=CALLBACK)
    assert kafka_connection_config(conn_id)["stats_cb"] is record_stats


def test_connection_without_bootstrap_servers_still_gets_the_operators_message(monkeypatch, aep_conn_id):
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_NOADDR", '{"conn_type": "kafka", "extra": {"group.id": "g"}}')
    assert kafka_connection_config("kafka_noaddr") == {"group.id": "g"}
    with pytest.raises(AEPConfigurationError, match="no 'bootstrap.servers'"):
        KafkaToAEPOperator(task_id="t", topics="x", kafka_config_id="kafka_noaddr", aep_conn_id=aep_conn_id).execute({})


@pytest.mark.integration
def test_callback_not_allowlisted_fails_without_retries(make_kafka_conn, aep_conn_id, monkeypatch):
    monkeypatch.setenv("AIRFLOW__APACHE_KAFKA__CALLBACK_ALLOWLIST", "some.other.callback")
    conn_id = make_kafka_conn(stats_cb=CALLBACK)
    op = KafkaToAEPOperator(task_id="t", topics="x", kafka_config_id=conn_id, aep_conn_id=aep_conn_id)
    with pytest.raises(AEPConfigurationError, match=r"Refusing to resolve Kafka callback stats_cb="):
        op.execute({})
    with pytest.raises(AEPConfigurationError, match="Refusing to resolve"):
        KafkaLagSensor(task_id="lag", topics="x", kafka_config_id=conn_id).poke({})


@pytest.mark.integration
def test_drain_and_sensor_use_a_dotted_path_callback(
    kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator, allow_callback
):
    topic = make_topic()
    produce(kafka_bootstrap, topic, 1, 5)
    conn_id = make_kafka_conn(stats_cb=CALLBACK, **{"statistics.interval.ms": 100})
    STATS_CALLS.clear()
    assert KafkaLagSensor(task_id="lag", topics=topic, kafka_config_id=conn_id).poke({}).is_done
    summary = KafkaToAEPOperator(
        task_id="t", topics=topic, kafka_config_id=conn_id, aep_conn_id=aep_conn_id, max_run_seconds=60
    ).execute({})
    assert summary["delivered"] == 5
    assert STATS_CALLS, "the connection's stats_cb was never called by the drain's Kafka clients"
    # librdkafka's statistics are JSON naming the client: the consumer is among them.
    assert any('"type":"consumer"' in s.replace(" ", "") for s in STATS_CALLS)
