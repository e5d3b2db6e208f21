from __future__ import annotations

import pytest

from aep_provider.engine.config import DrainConfig, OnReject, consumer_config, producer_config
from aep_provider.engine.errors import KafkaSetupError


def test_forced_settings_win_over_connection_and_overrides():
    conf = consumer_config(
        {
            "bootstrap.servers": "b:1",
            "group.id": "g",
            "enable.auto.commit": True,
            "isolation.level": "read_uncommitted",
        },
        {"enable.auto.offset.store": True},
    )
    assert conf["enable.auto.commit"] is False
    assert conf["enable.auto.offset.store"] is False
    assert conf["enable.partition.eof"] is True
    assert conf["isolation.level"] == "read_uncommitted"  # a default, not forced


def test_default_isolation_is_read_committed():
    defaults = consumer_config({"bootstrap.servers": "b:1", "group.id": "g"})
    assert defaults["isolation.level"] == "read_committed"
    assert defaults["fetch.queue.backoff.ms"] == 10  # librdkafka's 1 s default stalls the drain's reading


def test_missing_settings_name_the_connection():
    with pytest.raises(KafkaSetupError, match=r"connection 'kafka_x' has no 'group.id'"):
        consumer_config({"bootstrap.servers": "b:1"}, source="connection 'kafka_x'")


def test_producer_config_drops_consumer_settings():
    conf = producer_config(consumer_config({"bootstrap.servers": "b:1", "group.id": "g", "sasl.username": "u"}))
    assert conf["bootstrap.servers"] == "b:1" and conf["sasl.username"] == "u"
    assert conf["enable.idempotence"] is True and conf["acks"] == "all"
    assert not any(k.startswith(("group.", "enable.auto", "isolation", "auto.")) for k in conf)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_batch_bytes": 1_000_001}, "max_batch_bytes must be between 1 and 1,000,000"),
        ({"max_batch_records": 0}, "max_batch_records"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_records_per_run": -1}, "max_records_per_run"),
        ({"max_run_seconds": 0}, "max_run_seconds"),
        ({"on_reject": "ignore"}, "on_reject must be 'fail' or 'skip'"),
    ],
)
def test_invalid_limits_are_clear_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        DrainConfig(**kwargs)


def test_on_reject_string_becomes_enum():
    assert DrainConfig(on_reject="skip").on_reject is OnReject.SKIP
