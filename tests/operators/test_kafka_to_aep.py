"""KafkaToAEPOperator: argument checks (unit) and runs against the real broker and the emulator."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import pytest
from airflow.sdk.exceptions import AirflowException, AirflowFailException
from airflow.sdk.log import redact

from aep_provider.emulator import DEFAULT_IMS_ORG_ID, Fault
from aep_provider.engine import record_id
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator
from tests.engine.support import committed, produce, produce_values, received


def _op(**kwargs) -> KafkaToAEPOperator:
    return KafkaToAEPOperator(task_id="drain", **{"topics": "events", **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"max_batch_bytes": 2_000_000}, "max_batch_bytes must be between 1 and 1,000,000"),
        ({"max_batch_records": 0}, "max_batch_records must be a positive integer"),
        ({"max_in_flight": 0}, "max_in_flight"),
        ({"max_run_seconds": -5}, "max_run_seconds"),
        ({"payload": "json"}, "payload must be 'passthrough', 'xdm', a callable or a dotted path"),
        ({"payload": "xdm", "schema_id": "s"}, "payload='xdm' needs schema_id and dataset_id"),
        ({"on_reject": "drop"}, "on_reject must be 'fail' or 'skip'"),
        ({"topics": []}, "needs topics="),
        ({"mode": "sometimes"}, "mode must be one of 'auto', 'drain', 'replay'"),
        ({"replay_scope": "most"}, "replay_scope must be one of 'handed_over', 'all'"),
        ({"replay_lateness_seconds": -1}, "replay_lateness_seconds must be 0 or more"),
    ],
)
def test_invalid_arguments_fail_at_construction(kwargs, match):
    with pytest.raises(ValueError, match=match):
        _op(**kwargs)


def test_construction_touches_no_connection_or_network():
    op = _op(kafka_config_id="does_not_exist", aep_conn_id="nor_this", payload="some.module.fn")
    assert op.kafka_config_id == "does_not_exist"


def test_template_fields_cover_what_users_template():
    assert set(KafkaToAEPOperator.template_fields) >= {
        "topics",
        "inlet_id",
        "dlq_topic",
        "schema_id",
        "dataset_id",
        "flow_id",
        "source_name",
        "max_records_per_run",
        "max_run_seconds",
        "mode",
        "replay_start",
        "replay_end",
        "replay_scope",
    }


def test_rendered_string_limits_become_numbers():
    op = _op(max_records_per_run="{{ params.n }}", max_run_seconds="{{ params.s }}")
    op.max_records_per_run, op.max_run_seconds = "250", "12.5"
    cfg = op.drain_config()
    assert (cfg.max_records_per_run, cfg.max_run_seconds) == (250, 12.5)
    op.max_records_per_run = "lots"
    with pytest.raises(ValueError, match="max_records_per_run must be a number"):
        op.drain_config()


def test_timeouts_reach_the_engine():
    cfg = _op(assignment_timeout_seconds=7, kafka_timeout_seconds=3, stop_grace_seconds=2).drain_config()
    assert (cfg.assignment_timeout_seconds, cfg.kafka_timeout_seconds, cfg.stop_grace_seconds) == (7, 3, 2)


def test_kafka_secrets_are_masked_and_forced_settings_applied(make_kafka_conn):
    secret = "kafka-sasl-secret-value-42"
    conn_id = make_kafka_conn(**{"sasl.password": secret, "enable.auto.commit": True})
    op = _op(kafka_config_id=conn_id, kafka_config_overrides={"ssl.key.password": "other-secret-value-7"})
    conf = op.kafka_consumer_config()
    assert conf["enable.auto.commit"] is False and conf["isolation.level"] == "read_committed"
    assert redact(f"conf {secret} / other-secret-value-7") == "conf *** / ***"
    assert secret not in repr(op)


def test_kafka_connection_without_group_id_is_one_clear_error(monkeypatch, kafka_bootstrap):
    monkeypatch.setenv(
        "AIRFLOW_CONN_KAFKA_NOGROUP",
        json.dumps(
            {"conn_type": "kafka", "extra": {"bootstrap.servers": kafka_bootstrap, "sasl.password": "pw-123456"}}
        ),
    )
    with pytest.raises(AirflowFailException, match="Airflow connection 'kafka_nogroup' has no 'group.id'") as info:
        _op(kafka_config_id="kafka_nogroup").execute(context={})
    assert "pw-123456" not in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


@pytest.mark.parametrize("which", ["kafka_config_id", "aep_conn_id"])
def test_a_missing_connection_fails_the_task_without_retries_naming_it(which, kafka_conn_id, aep_conn_id):
    ids = {"kafka_config_id": kafka_conn_id, "aep_conn_id": aep_conn_id, which: "no_such_conn"}
    with pytest.raises(AirflowFailException, match=r"no_such_conn.*isn't defined: create it") as info:
        _op(**ids).execute(context={})
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_unknown_kafka_setting_is_one_clear_error(kafka_conn_id, aep_conn_id):
    op = _op(kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id, kafka_config_overrides={"fetch.max.bytez": 1})
    with pytest.raises(AirflowFailException, match=r"configuration is invalid: .*fetch.max.bytez"):
        op.execute(context={})


def test_bad_rendered_limit_fails_the_task_without_retries():
    op = _op(max_records_per_run="{{ params.n }}")
    op.max_records_per_run = "lots"
    with pytest.raises(AirflowFailException, match="max_records_per_run must be a number"):
        op.execute(context={})


@pytest.mark.integration
def test_missing_topic_fails_the_task_naming_it(kafka_conn_id, aep_conn_id):
    name = f"no-such-topic-{uuid.uuid4().hex[:8]}"
    op = _op(topics=name, kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id, kafka_timeout_seconds=5)
    with pytest.raises(AirflowFailException, match=rf"topic '{name}' cannot be read.*create it") as info:
        op.execute(context={})
    assert info.value.__cause__ is None


@pytest.mark.integration
@pytest.mark.timeout(30)
def test_unreachable_broker_is_a_retryable_failure_naming_bootstrap_servers(make_kafka_conn, aep_conn_id):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    conn_id = make_kafka_conn(**{"bootstrap.servers": f"127.0.0.1:{port}"})
    op = _op(kafka_config_id=conn_id, aep_conn_id=aep_conn_id, kafka_timeout_seconds=2)
    with pytest.raises(
        AirflowException, match=rf"bootstrap.servers='127.0.0.1:{port}' did not answer within 2s"
    ) as info:
        op.execute(context={})
    # A broker restart passes: the task's retries should apply, so it is not a fail-fast error.
    assert not isinstance(info.value, AirflowFailException)


@pytest.mark.integration
def test_refused_aep_credentials_fail_the_task_without_the_secret(
    kafka_bootstrap, make_topic, kafka_conn_id, make_aep_conn, aep_emulator
):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 5)
    secret = "wrong-secret-value-31337"
    conn = make_aep_conn(aep_emulator.url, client_secret=secret)
    op = _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=conn)
    with pytest.raises(AirflowFailException) as info:
        op.execute(context={})
    assert secret not in str(info.value) and info.value.__cause__ is None
    assert aep_emulator.accepted() == []


@pytest.mark.integration
def test_aep_down_past_the_deadline_is_a_retryable_failure(
    kafka_bootstrap, make_topic, kafka_conn_id, make_aep_conn, aep_emulator
):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 5)
    aep_emulator.inject(Fault(status=503, count=None, endpoint="batch"))
    conn = make_aep_conn(aep_emulator.url, retry_deadline_seconds=1)
    op = _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=conn)
    with pytest.raises(AirflowException, match=rf"{topic}\[0\].*503") as info:
        op.execute(context={})
    assert not isinstance(info.value, AirflowFailException)


class RecordingTaskInstance:
    """Stands in for the task instance in ``context["ti"]``: records what the operator pushes."""

    def __init__(self) -> None:
        self.pushed: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.pushed[key] = value


@pytest.mark.integration
def test_rejected_record_fails_the_task_and_the_summary_samples_rejections(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    produce_values(kafka_bootstrap, topic, [b"{oops", b'{"no": "header"}', b"\xff"])
    ti = RecordingTaskInstance()
    with pytest.raises(AirflowFailException, match=rf"{topic}\[0\]@0 was rejected .*not valid JSON"):
        _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id).execute(context={"ti": ti})
    # The failed run still tells, as XCom "summary", what it rejected and where it stopped.
    failed = ti.pushed["summary"]
    assert failed["stopped_by"] == "failed" and failed["delivered"] == 0
    assert failed["rejected_by_reason"] == {"invalid JSON": 1}
    assert [(r["offset"], r["status"]) for r in failed["rejection_samples"]] == [(0, None)]
    summary = _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id, on_reject="skip").execute(
        context={}
    )
    assert summary["rejected_by_reason"] == {"invalid JSON": 1, "AEP 400": 1, "not UTF-8": 1}
    samples = sorted(summary["rejection_samples"], key=lambda r: r["offset"])
    assert [(r["topic"], r["partition"], r["offset"], r["status"]) for r in samples] == [
        (topic, 0, 0, None),
        (topic, 0, 1, 400),
        (topic, 0, 2, None),
    ]
    assert all(0 < len(r["reason"]) <= 203 for r in samples)
    assert summary["topic_lag"] == 0 and summary["partitions"][f"{topic}[0]"]["topic_end"] == 3


@pytest.mark.integration
def test_execute_drains_and_returns_a_json_summary(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=3)
    produce(kafka_bootstrap, topic, 3, 300)
    summary = _op(
        topics=[topic], kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id, max_batch_records=100
    ).execute(context={})
    assert received(aep_emulator) == {p: list(range(300)) for p in range(3)}
    assert json.loads(json.dumps(summary)) == summary
    assert summary["delivered"] == 900 and summary["lag"] == 0 and summary["requests"] >= 9
    assert {k: (v["start"], v["end"], v["committed"], v["lag"]) for k, v in summary["partitions"].items()} == {
        f"{topic}[{p}]": (0, 300, 300, 0) for p in range(3)
    }


@pytest.mark.integration
def test_xdm_payload_wraps_records_with_the_connections_org(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    produce_values(kafka_bootstrap, topic, [b'{"eventType": "view"}', b'{"_id": "given", "eventType": "buy"}'])
    _op(
        topics=topic,
        kafka_config_id=kafka_conn_id,
        aep_conn_id=aep_conn_id,
        payload="xdm",
        schema_id="https://ns.adobe.com/tenant/schemas/abc",
        dataset_id="dataset-1",
        source_name="kafka",
        validate_xdm=False,  # the envelope is what this test looks at
    ).execute(context={})
    first, second = aep_emulator.accepted()
    assert first["header"]["imsOrgId"] == DEFAULT_IMS_ORG_ID
    assert first["header"]["datasetId"] == "dataset-1" and first["header"]["source"] == {"name": "kafka"}
    assert first["body"]["xdmEntity"] == {"eventType": "view", "_id": record_id(topic, 0, 0)}
    assert second["body"]["xdmEntity"]["_id"] == "given"


@pytest.mark.integration
def test_on_kill_stops_promptly_and_commits_what_was_acknowledged(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 3000)
    aep_emulator.inject(Fault(delay_seconds=0.2, count=None, endpoint="batch"))
    op = _op(
        topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id, max_batch_records=100, max_in_flight=1
    )
    result = {}

    def execute() -> None:
        try:
            result["summary"] = op.execute(context={})
        except BaseException as err:
            result["error"] = err

    runner = threading.Thread(target=execute)
    runner.start()
    while not aep_emulator.accepted() and runner.is_alive():
        runner.join(0.05)
    op.on_kill()
    runner.join(30)
    assert not runner.is_alive()
    # A stopped drain fails retryably (AirflowException, not AirflowFailException): never green.
    error = result.get("error")
    assert isinstance(error, AirflowException) and not isinstance(error, AirflowFailException), result
    assert "stopped before it finished" in str(error)
    assert op._engine.summary.stopped_by == "stop requested"
    delivered = len(aep_emulator.accepted())
    assert 0 < delivered < 3000
    group = json.loads(__import__("os").environ[f"AIRFLOW_CONN_{kafka_conn_id.upper()}"])["extra"]["group.id"]
    assert committed(kafka_bootstrap, group, topic, 1) == {0: delivered}


def _backfill_context(start, end, ti=None) -> dict:
    return {
        "dag_run": SimpleNamespace(run_type="backfill", conf={}),
        "data_interval_start": start,
        "data_interval_end": end,
        "params": {},
        "ti": ti,
    }


@pytest.mark.integration
@pytest.mark.smoke
def test_a_backfill_run_replays_its_interval_without_touching_the_group(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=2)
    produce(kafka_bootstrap, topic, 2, 50)
    produced_by = datetime.now(timezone.utc) + timedelta(seconds=1)
    drained = _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id).execute(context={})
    assert drained["delivered"] == 100 and drained["mode"] == "drain"
    group = json.loads(os.environ[f"AIRFLOW_CONN_{kafka_conn_id.upper()}"])["extra"]["group.id"]
    before = committed(kafka_bootstrap, group, topic, 2)
    aep_emulator.reset()
    time.sleep(max(0.0, (produced_by - datetime.now(timezone.utc)).total_seconds()))

    summary = _op(topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id).execute(
        context=_backfill_context(produced_by - timedelta(hours=1), produced_by)
    )

    assert received(aep_emulator) == {0: list(range(50)), 1: list(range(50))}
    assert committed(kafka_bootstrap, group, topic, 2) == before
    assert summary["mode"] == "replay" and summary["delivered"] == 100 and summary["stopped_by"] == "end"
    assert summary["interval"]["scope"] == "handed_over"
    assert {k: (v["start"], v["end"], v["send_until"]) for k, v in summary["partitions"].items()} == {
        f"{topic}[{p}]": (0, 50, 50) for p in range(2)
    }
    assert json.loads(json.dumps(summary)) == summary


@pytest.mark.integration
def test_a_zero_length_backfill_interval_fails_without_retries_naming_the_timetable(kafka_conn_id, aep_conn_id):
    at = datetime(2026, 11, 1, tzinfo=timezone.utc)
    with pytest.raises(AirflowFailException, match="CronDataIntervalTimetable"):
        _op(kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id).execute(context=_backfill_context(at, at))
