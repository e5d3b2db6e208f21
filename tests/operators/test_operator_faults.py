"""KafkaToAEPOperator: timeout arguments, shared defaults, and a client secret rotated between runs."""

from __future__ import annotations

import inspect
import json
import os

import pytest
from airflow.sdk.exceptions import AirflowFailException

from aep_provider.emulator import AEPEmulator, EmulatorConfig
from aep_provider.engine import DrainConfig
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator
from tests.engine.support import committed, produce, received
from tests.fixtures.emulator import with_test_schema


def _op(**kwargs) -> KafkaToAEPOperator:
    return KafkaToAEPOperator(task_id="drain", **{"topics": "events", **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"kafka_timeout_seconds": -1}, "kafka_timeout_seconds must be a positive number"),
        ({"kafka_timeout_seconds": 0}, "kafka_timeout_seconds must be a positive number"),
        ({"kafka_timeout_seconds": float("inf")}, "kafka_timeout_seconds"),
        ({"assignment_timeout_seconds": -5}, "assignment_timeout_seconds"),
        ({"stop_grace_seconds": -0.1}, "stop_grace_seconds must be a number >= 0"),
        ({"progress_interval_seconds": "soon"}, "progress_interval_seconds"),
    ],
)
def test_timeouts_are_validated_at_parse_time(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _op(**kwargs)
    with pytest.raises(ValueError, match=match):
        DrainConfig(**kwargs)


def test_operator_and_engine_share_every_default():
    params = inspect.signature(KafkaToAEPOperator.__init__).parameters
    engine = DrainConfig()
    for name in (
        "max_batch_records",
        "max_batch_bytes",
        "max_in_flight",
        "max_records_per_run",
        "max_run_seconds",
        "dlq_topic",
        "kafka_timeout_seconds",
        "assignment_timeout_seconds",
        "stop_grace_seconds",
        "progress_interval_seconds",
    ):
        assert params[name].default == getattr(engine, name), name
    assert params["on_reject"].default == engine.on_reject.value
    assert _op().drain_config() == engine


@pytest.mark.integration
def test_client_secret_rotated_between_runs(kafka_bootstrap, make_topic, kafka_conn_id, make_aep_conn):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 400)
    old, new = "old-secret-value-1111", "new-secret-value-2222"
    group = json.loads(os.environ[f"AIRFLOW_CONN_{kafka_conn_id.upper()}"])["extra"]["group.id"]
    first = AEPEmulator(with_test_schema(EmulatorConfig(client_secret=old))).start()
    try:
        url = first.url
        _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=make_aep_conn(url, client_secret=old),
            max_records_per_run=150, max_batch_records=50).execute(context={})  # fmt: skip
        delivered_first = received(first)
        port = int(url.rsplit(":", 1)[1])
    finally:
        first.stop()
    # The secret is rotated in IMS: the same address now accepts only the new one.
    rotated = AEPEmulator(with_test_schema(EmulatorConfig(client_secret=new)), port=port).start()
    try:
        stale = make_aep_conn(url, client_secret=old)
        with pytest.raises(AirflowFailException) as info:  # credentials refused: retrying cannot help
            _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=stale).execute(context={})
        assert old not in str(info.value) and rotated.accepted() == []
        assert committed(kafka_bootstrap, group, topic, 1) == {0: 150}
        _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=make_aep_conn(url, client_secret=new)).execute(
            context={}
        )
        assert delivered_first[0] + received(rotated)[0] == list(range(400))  # each record once
        assert committed(kafka_bootstrap, group, topic, 1) == {0: 400}
    finally:
        rotated.stop()
