from __future__ import annotations

import json

import pytest

from aep_provider.aep.results import MAX_REQUEST_BYTES
from aep_provider.engine.payload import (
    XDM_CONTENT_TYPE,
    KafkaRecord,
    import_callable,
    make_shaper,
    record_id,
)


def _record(value: bytes | None, offset: int = 3) -> KafkaRecord:
    return KafkaRecord(topic="events", partition=2, offset=offset, key=b"k", value=value, headers=[])


def test_passthrough_sends_original_bytes():
    value = b'{"header": {}, "body": {"a": 1}}'
    assert make_shaper("passthrough").shape(_record(value)).message == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8"),
        (b"[1, 2]", "JSON list, not an object"),
        (b'{"a": NaN}', "NaN is not valid JSON"),
    ],
)
def test_passthrough_rejects_bad_values_with_reason(value, reason):
    shaped = make_shaper("passthrough").shape(_record(value))
    assert shaped.message is None
    assert reason in shaped.reject_reason


def test_oversized_record_is_rejected_not_sent():
    value = json.dumps({"body": "x" * MAX_REQUEST_BYTES}).encode()
    shaped = make_shaper("passthrough").shape(_record(value))
    assert shaped.message is None
    assert "1,000,000 bytes" in shaped.reject_reason


def test_tombstone_is_skipped():
    shaped = make_shaper("passthrough").shape(_record(None))
    assert shaped.skip and shaped.message is None


def test_xdm_wraps_record_with_deterministic_id():
    shaper = make_shaper(
        "xdm",
        schema_id="https://ns.adobe.com/t/schemas/1",
        dataset_id="ds1",
        ims_org_id="ORG@AdobeOrg",
        flow_id="flow1",
        source_name="kafka",
    )
    msg = json.loads(shaper.shape(_record(b'{"eventType": "x"}')).message)
    ref = {"id": "https://ns.adobe.com/t/schemas/1", "contentType": XDM_CONTENT_TYPE}
    assert msg["header"] == {
        "schemaRef": ref,
        "datasetId": "ds1",
        "imsOrgId": "ORG@AdobeOrg",
        "flowId": "flow1",
        "source": {"name": "kafka"},
    }
    assert msg["body"]["xdmMeta"] == {"schemaRef": ref}
    assert msg["body"]["xdmEntity"] == {"eventType": "x", "_id": record_id("events", 2, 3)}
    again = json.loads(shaper.shape(_record(b'{"eventType": "x"}')).message)
    assert again["body"]["xdmEntity"]["_id"] == msg["body"]["xdmEntity"]["_id"]
    assert record_id("events", 2, 4) != record_id("events", 2, 3)


def test_xdm_keeps_existing_id():
    shaper = make_shaper("xdm", schema_id="s", dataset_id="d")
    msg = json.loads(shaper.shape(_record(b'{"_id": "mine"}')).message)
    assert msg["body"]["xdmEntity"]["_id"] == "mine"
    assert "imsOrgId" not in msg["header"]


def test_xdm_needs_schema_and_dataset():
    with pytest.raises(ValueError, match="schema_id and dataset_id"):
        make_shaper("xdm", schema_id="s")


def test_callable_builds_or_skips():
    def fn(record):
        return None if record.offset % 2 else {"offset": record.offset}

    shaper = make_shaper(fn)
    assert json.loads(shaper.shape(_record(b"raw", offset=4)).message) == {"offset": 4}
    assert shaper.shape(_record(b"raw", offset=5)).skip


def test_callable_raising_rejects_the_record():
    shaped = make_shaper(lambda record: 1 / 0).shape(_record(b"x"))
    assert "payload callable raised ZeroDivisionError" in shaped.reject_reason


def test_callable_returning_non_dict_is_rejected():
    shaped = make_shaper(lambda record: [1]).shape(_record(b"x"))
    assert "not a dict" in shaped.reject_reason


def offset_message(record: KafkaRecord) -> dict:
    """Payload callable used by dotted path below."""
    return {"at": f"{record.topic}/{record.offset}"}


def test_dotted_path_payload():
    shaper = make_shaper("tests.engine.test_payload.offset_message")
    assert shaper.shape(_record(b"raw")).message == b'{"at":"events/3"}'
    with pytest.raises(ValueError, match="cannot be imported"):
        import_callable("no_such_module_xyz.fn")
    with pytest.raises(ValueError, match="not 'passthrough', 'xdm'"):
        make_shaper("xdmm")
