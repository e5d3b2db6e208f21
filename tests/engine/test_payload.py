from __future__ import annotations

import json

import pytest

from aep_provider.aep.results import MAX_REQUEST_BYTES
from aep_provider.engine.jsonvalue import MAX_NESTING_DEPTH
from aep_provider.engine.payload import (
    XDM_CONTENT_TYPE,
    KafkaRecord,
    import_callable,
    make_shaper,
    record_id,
)
from aep_provider.engine.summary import reason_class


def _record(value: bytes | None, offset: int = 3) -> KafkaRecord:
    return KafkaRecord(topic="events", partition=2, offset=offset, key=b"k", value=value, headers=[])


def test_passthrough_sends_original_bytes():
    value = b'{"header": {}, "body": {"a": 1}}'
    assert make_shaper("passthrough").shape(_record(value)).message == value


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b"\xff\xfe{}", "not valid UTF-8 (byte 0)"),
        (b'{"a": "caf\xc3"}', "not valid UTF-8 (byte 10)"),  # truncated multi-byte sequence
        (b'{"a": "\\ud800"}', "not valid JSON"),  # a lone surrogate cannot become UTF-8
        (b"[1, 2]", "JSON list, not an object"),
        (b'"text"', "JSON str, not an object"),
        (b"3", "JSON int, not an object"),
        (b"null", "JSON NoneType, not an object"),
        (b'{"a": NaN}', "not valid JSON: NaN (JSON has no NaN or Infinity)"),
        (b'{"a": Infinity}', "not valid JSON: Infinity"),
        (b'{"a": -Infinity}', "not valid JSON: -Infinity"),
        (b'{"a": 1e400}', "not valid JSON"),  # overflows to infinity: the stdlib decoder let it through
        (b'{"a": 1} {"b": 2}', "not valid JSON"),  # exactly one document
        (b'{"a": 1}x', "not valid JSON"),
        (b"", "not valid JSON"),
        (b"\xef\xbb\xbf{}", "not valid JSON"),  # a byte order mark is not JSON
    ],
)
def test_passthrough_rejects_bad_values_with_reason(value, reason):
    shaped = make_shaper("passthrough").shape(_record(value))
    assert shaped.message is None
    assert reason in shaped.reject_reason


def _nested(depth: int) -> bytes:
    return b'{"a":' * depth + b"1" + b"}" * depth


@pytest.mark.parametrize("depth", [MAX_NESTING_DEPTH + 1, 1_000, 1_025, 100_000])
def test_deep_nesting_is_a_clean_rejection(depth):
    shaped = make_shaper("passthrough").shape(_record(_nested(depth)))
    assert shaped.message is None
    assert f"nested too deeply (more than {MAX_NESTING_DEPTH} levels)" in shaped.reject_reason
    assert reason_class(None, shaped.reject_reason) == "nested too deeply"


def test_nesting_limit_counts_levels_not_brackets():
    assert make_shaper("passthrough").shape(_record(_nested(MAX_NESTING_DEPTH))).message is not None
    # Many brackets, little depth: the bracket count alone must not reject it.
    wide = b'{"a":[' + b",".join([b'{"b":[1]}'] * (2 * MAX_NESTING_DEPTH)) + b"]}"
    assert make_shaper("passthrough").shape(_record(wide)).message == wide
    deep_in_list = b'{"a":[' + b"[" * MAX_NESTING_DEPTH + b"]" * MAX_NESTING_DEPTH + b"]}"
    assert "nested too deeply" in make_shaper("passthrough").shape(_record(deep_in_list)).reject_reason


@pytest.mark.parametrize(
    "value",
    [
        b'{"header": {}, "body": {"a": 1}}',
        b' \n{"a": 1}\n',  # blanks around the one document are JSON
        '{"a": "café ☕"}'.encode(),
        b'{"big": 123456789012345678901234567890}',  # passed as bytes: no precision lost
    ],
)
def test_passthrough_passes_the_same_bytes_object(value):
    assert make_shaper("passthrough").shape(_record(value)).message is value


@pytest.mark.parametrize("label", ["not valid UTF-8", "not valid JSON", "not an object", "nested too deeply"])
def test_reasons_keep_the_wording_the_summary_counts(label):
    values = {
        "not valid UTF-8": b"\xff",
        "not valid JSON": b"{",
        "not an object": b"[]",
        "nested too deeply": _nested(1_000),
    }
    reason = make_shaper("passthrough").shape(_record(values[label])).reject_reason
    assert label in reason
    assert reason_class(None, reason) != "other"


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


@pytest.mark.parametrize(
    ("value", "entity"),
    [
        (b"{}", {}),
        (b' \n{ "n" : 1 }\n', {"n": 1}),
        ('{"s": "caf\u00e9"}'.encode(), {"s": "café"}),
    ],
)
def test_xdm_inserts_the_id_into_the_records_own_bytes(value, entity):
    shaper = make_shaper("xdm", schema_id="s", dataset_id="d")
    message = shaper.shape(_record(value)).message
    assert json.loads(message)["body"]["xdmEntity"] == {**entity, "_id": record_id("events", 2, 3)}


def test_xdm_keeps_numbers_as_written():
    shaper = make_shaper("xdm", schema_id="s", dataset_id="d")
    message = shaper.shape(_record(b'{"big": 123456789012345678901234567890, "f": 1.10}')).message
    assert b'"big": 123456789012345678901234567890, "f": 1.10}' in message
    assert json.loads(message)["body"]["xdmEntity"]["big"] == 123456789012345678901234567890


def test_xdm_rejects_what_passthrough_rejects():
    shaper = make_shaper("xdm", schema_id="s", dataset_id="d")
    assert "not an object" in shaper.shape(_record(b"[1]")).reject_reason
    assert "nested too deeply" in shaper.shape(_record(_nested(1_000))).reject_reason
    assert "NaN" in shaper.shape(_record(b'{"a": NaN}')).reject_reason


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
