"""librdkafka's lines go through logging, and a line that keeps repeating is shown once a window."""

from __future__ import annotations

import logging

import pytest

from aep_provider.engine import DrainConfig, consumer_config, run_drain
from aep_provider.engine.errors import KafkaUnavailableError
from aep_provider.engine.kafkalog import LOGGER_NAME, RepeatFilter, TransientFilter, kafka_logger


def _record(message: str, *args: object) -> logging.LogRecord:
    return logging.LogRecord(LOGGER_NAME, logging.ERROR, __file__, 1, message, args, None)


def test_repeats_of_a_line_are_counted_and_shown_once_per_window():
    now = [0.0]
    repeats = RepeatFilter(window=60, clock=lambda: now[0])
    line = "%s [%s] %s"
    assert repeats.filter(_record(line, "FAIL", "rdkafka#consumer-1", "Connect to b:1 failed (after 0ms)"))
    for ms in range(1, 5):
        now[0] += 1
        assert not repeats.filter(_record(line, "FAIL", "rdkafka#consumer-1", f"Connect to b:1 failed (after {ms}ms)"))
    assert repeats.filter(_record(line, "THROTTLE", "rdkafka#consumer-1", "something else"))  # another line
    now[0] = 61.0
    shown = _record(line, "FAIL", "rdkafka#consumer-1", "Connect to b:1 failed (after 9ms)")
    assert repeats.filter(shown)
    assert shown.getMessage().endswith("(after 9ms) (4 more like it in the last 60s)")


@pytest.mark.integration
def test_an_unreachable_broker_gives_one_line_not_a_stream(capfd, caplog, monkeypatch):
    caplog.set_level(logging.INFO)
    # A fresh filter: earlier tests may have shown the same line within the window.
    monkeypatch.setattr(logging.getLogger(LOGGER_NAME), "filters", [RepeatFilter()])
    conf = consumer_config({"bootstrap.servers": "127.0.0.1:1", "group.id": "g"})
    with pytest.raises(KafkaUnavailableError, match="127.0.0.1:1"):

        class NoSender:
            def send_batch(self, messages):
                raise AssertionError("nothing to send")

        run_drain(consumer_conf=conf, topics=["t"], sender=NoSender(), config=DrainConfig(kafka_timeout_seconds=3))
    assert "Connection refused" not in capfd.readouterr().err  # librdkafka no longer writes to stderr
    client_lines = [r for r in caplog.records if r.name == LOGGER_NAME]
    assert 1 <= len(client_lines) <= 3, [r.getMessage() for r in client_lines]


def test_lines_shown_more_than_a_window_ago_are_forgotten_in_a_long_lived_process():
    now = [0.0]
    repeats = RepeatFilter(window=60, clock=lambda: now[0])
    for n in range(1_001):
        repeats.filter(_record("%s", f"line {chr(65 + n % 26)}{'x' * (n // 26)}"))
    now[0] = 120.0
    assert repeats.filter(_record("%s", "a new line"))
    assert len(repeats._lines) == 1


def test_a_coordinator_still_loading_is_info_not_a_warning(caplog):
    """The line an idempotent producer's first PID request logs right after a broker starts (librdkafka 2.x)."""
    line = (
        "GETPID [rdkafka#producer-3] [thrd:main]: Failed to acquire idempotence PID from broker "
        "127.0.0.1:9092/1: Broker: Coordinator load in progress: retrying"
    )
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    logger = kafka_logger()
    assert any(isinstance(f, TransientFilter) for f in logger.filters)
    logger.warning(line)
    logger.warning("FAIL [rdkafka#producer-3] [thrd:main]: a warning the transient filter leaves alone")
    assert [(r.levelname, r.getMessage()[:6]) for r in caplog.records if r.name == LOGGER_NAME] == [
        ("INFO", "GETPID"),
        ("WARNING", "FAIL ["),
    ]
