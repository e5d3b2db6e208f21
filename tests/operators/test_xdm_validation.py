"""Local XDM validation in operator runs, against the real broker and the emulator's Schema Registry."""

from __future__ import annotations

import json
import uuid

import pytest
from airflow.sdk.exceptions import AirflowFailException

from aep_provider.emulator import DEFAULT_IMS_ORG_ID, Fault
from aep_provider.emulator.config import EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID
from aep_provider.engine.dlq import HEADER_OFFSET, HEADER_REASON, HEADER_STATUS
from aep_provider.operators.kafka_to_aep import KafkaToAEPOperator
from scripts.sample_events import INVALID_KINDS, invalid_event, sample_event
from tests.engine.support import committed, dead_letters, produce_values

pytestmark = pytest.mark.integration

IDS = {"schema_id": EXAMPLE_SCHEMA_ID, "dataset_id": EXAMPLE_DATASET_ID, "ims_org_id": DEFAULT_IMS_ORG_ID}
#: The values the invalid kinds carry: none may appear in a reason (they stand for personal data).
VALUES = ("phone", "platinum-platinum-plus", "WINTER-26", "2026-13-45T25:61:00Z")


def events(valid: int) -> tuple[list[bytes], dict[int, str]]:
    """``valid`` valid messages, then one of each invalid kind; returns the values and offset -> kind."""
    values = [json.dumps(sample_event(n, **IDS)).encode() for n in range(valid)]
    kinds = {}
    for kind in INVALID_KINDS:
        kinds[len(values)] = kind
        values.append(json.dumps(invalid_event(len(values), kind, **IDS)).encode())
    return values, kinds


def _op(topic: str, kafka_conn_id: str, aep_conn_id: str, **kwargs) -> KafkaToAEPOperator:
    return KafkaToAEPOperator(
        task_id="drain", topics=topic, kafka_config_id=kafka_conn_id, aep_conn_id=aep_conn_id, **kwargs
    )


@pytest.mark.parametrize("payload", ["xdm", "passthrough"])
def test_each_invalid_kind_is_dead_lettered_with_its_path_and_valid_ones_arrive(
    payload, kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic, dlq = make_topic(partitions=1), make_topic(partitions=1, prefix="dlq")
    messages, kinds = events(valid=20)
    if payload == "xdm":  # the value is the XDM record itself; the operator wraps it
        messages = [json.dumps(json.loads(m)["body"]["xdmEntity"]).encode() for m in messages]
        extra = {"payload": "xdm", "schema_id": EXAMPLE_SCHEMA_ID, "dataset_id": EXAMPLE_DATASET_ID}
    else:
        extra = {}
    produce_values(kafka_bootstrap, topic, messages)

    summary = _op(topic, kafka_conn_id, aep_conn_id, dlq_topic=dlq, **extra).execute(context={})

    assert (summary["delivered"], summary["rejected"], summary["dead_lettered"]) == (20, 7, 7)
    assert len(aep_emulator.accepted()) == 20  # nothing invalid left the worker
    assert summary["rejected_by_reason"] == {
        "XDM type": 1, "XDM required": 1, "XDM format": 1, "XDM enum": 1, "XDM additionalProperties": 1,
        "XDM maxLength": 1, "XDM minimum": 1,
    }  # fmt: skip
    assert summary["xdm_validation"] == {"enabled": True, "schemas": [{"id": EXAMPLE_SCHEMA_ID, "version": "1.3"}]}
    for msg in dead_letters(kafka_bootstrap, dlq, 7):
        headers = {k: v.decode() for k, v in msg.headers()}
        kind = kinds[int(headers[HEADER_OFFSET])]
        reason = headers[HEADER_REASON]
        assert reason.startswith(INVALID_KINDS[kind][1] + ": "), (kind, reason)
        assert headers[HEADER_STATUS] == "" and not any(v in reason for v in VALUES), reason
    assert not any(v in json.dumps(summary["rejection_samples"]) for v in VALUES)
    # The schema was read once for the run (and the dataset once when payload="xdm").
    requests = aep_emulator.stats()["requests"]
    assert requests["schemas"] == {"200": 1}
    assert requests.get("catalog", {}).get("200", 0) == (1 if payload == "xdm" else 0)


def test_the_schema_is_read_once_per_run(kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator):
    topic = make_topic(partitions=3)
    for partition in range(3):
        produce_values(
            kafka_bootstrap, topic, [json.dumps(sample_event(n, **IDS)).encode() for n in range(200)], partition
        )
    op = _op(topic, kafka_conn_id, aep_conn_id, dataset_id=EXAMPLE_DATASET_ID, max_batch_records=50)
    assert op.execute(context={})["delivered"] == 600
    assert aep_emulator.stats()["requests"]["schemas"] == {"200": 1}
    produce_values(kafka_bootstrap, topic, [json.dumps(sample_event(1, **IDS)).encode()])
    assert op.execute(context={})["delivered"] == 1
    assert aep_emulator.stats()["requests"]["schemas"] == {"200": 2}  # the next run reads it again (it may change)


def test_a_403_on_the_schema_fails_the_run_naming_the_permission_before_sending(
    kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    produce_values(kafka_bootstrap, topic, [json.dumps(sample_event(n, **IDS)).encode() for n in range(5)])
    group = f"g-{uuid.uuid4().hex[:10]}"
    aep_emulator.inject(Fault(status=403, endpoint="schemas", count=None))
    op = _op(
        topic,
        make_kafka_conn(group_id=group),
        aep_conn_id,
        payload="xdm",
        **{k: IDS[k] for k in ("schema_id", "dataset_id")},
    )
    with pytest.raises(AirflowFailException) as info:
        op.execute(context={})
    text = str(info.value)
    assert "Data Modeling > View Schemas" in text and EXAMPLE_SCHEMA_ID in text and "validate_xdm=False" in text
    assert aep_emulator.accepted() == [] and committed(kafka_bootstrap, group, topic, 1) == {0: -1001}


def test_a_schema_that_cannot_be_read_mid_run_stops_before_the_record(
    kafka_bootstrap, make_topic, make_kafka_conn, aep_conn_id, aep_emulator
):
    # Passthrough without dataset_id: each schema is read when a message first names it.
    other = {**IDS, "schema_id": "https://ns.adobe.com/test/schemas/e"}
    values = [json.dumps(sample_event(n, **other)).encode() for n in range(3)]
    values += [json.dumps(sample_event(n, **IDS)).encode() for n in range(3, 6)]
    topic = make_topic(partitions=1)
    produce_values(kafka_bootstrap, topic, values)
    group = f"g-{uuid.uuid4().hex[:10]}"
    aep_emulator.inject(Fault(count=1, endpoint="schemas"))  # the first read goes through (a fault that does nothing)
    aep_emulator.inject(Fault(status=403, endpoint="schemas", count=None))  # the second schema cannot be read
    with pytest.raises(AirflowFailException, match="View Schemas"):
        _op(topic, make_kafka_conn(group_id=group), aep_conn_id).execute(context={})
    assert aep_emulator.stats()["requests"]["schemas"] == {"200": 1, "403": 2}
    # The record whose schema could not be read was not sent: the commit never passes it.
    (offset,) = committed(kafka_bootstrap, group, topic, 1).values()
    assert offset <= 3 and all(m["body"]["xdmEntity"]["_aepprovider"]["seq"] < 3 for m in aep_emulator.accepted())


def test_a_message_naming_a_schema_the_registry_lacks_is_rejected(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    unknown = {**IDS, "schema_id": "https://ns.adobe.com/aepprovider/schemas/gone"}
    produce_values(
        kafka_bootstrap,
        topic,
        [json.dumps(sample_event(0, **IDS)).encode(), json.dumps(sample_event(1, **unknown)).encode()],
    )
    summary = _op(topic, kafka_conn_id, aep_conn_id, on_reject="skip").execute(context={})
    assert (summary["delivered"], summary["rejected"]) == (1, 1)
    assert summary["rejected_by_reason"] == {"XDM schemaRef": 1}
    assert summary["rejection_samples"][0]["reason"].startswith("/header/schemaRef/id: schema ")


def test_validation_off_sends_invalid_records_which_aep_fails_later(
    kafka_bootstrap, make_topic, kafka_conn_id, aep_conn_id, aep_emulator
):
    topic = make_topic(partitions=1)
    messages, _ = events(valid=3)
    produce_values(kafka_bootstrap, topic, messages)
    summary = _op(topic, kafka_conn_id, aep_conn_id, validate_xdm=False).execute(context={})
    assert (summary["delivered"], summary["rejected"]) == (10, 0)
    assert summary["xdm_validation"] == {"enabled": False, "schemas": []}
    assert "schemas" not in aep_emulator.stats()["requests"] or aep_emulator.stats()["requests"]["schemas"] == {}
    assert aep_emulator.wait_validated(10)
    (batch,) = aep_emulator.batches(status="failed").values()
    assert batch["metrics"]["failedRecordCount"] == 7
