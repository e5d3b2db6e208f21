"""AEPStreamingHook.send_batch from plain Python: dicts, JSON strings and bytes in one batch."""

from __future__ import annotations

import json

import pytest

from aep_provider.aep import Outcome
from aep_provider.hooks.aep import AEPStreamingHook, encode_message
from tests.aep.support import accepted_ids, xdm


def test_encode_message_accepts_dicts_strings_and_bytes():
    doc = {"header": {"k": "é"}, "body": {"n": 1}}
    assert encode_message(doc) == '{"header":{"k":"é"},"body":{"n":1}}'.encode()
    assert encode_message('{"a": "é"}') == '{"a": "é"}'.encode()
    raw = b'{"a":1}'
    assert encode_message(raw) is raw
    assert encode_message(bytearray(raw)) == raw and encode_message(memoryview(raw)) == raw
    with pytest.raises(TypeError, match="message 3 is a list: send a dict, a JSON str or UTF-8 JSON bytes"):
        encode_message([1], 3)


@pytest.mark.integration
def test_send_batch_takes_dicts_strings_and_bytes(aep_emulator, aep_conn_id):
    hook = AEPStreamingHook(aep_conn_id)
    as_dict = json.loads(xdm("from-dict"))
    as_str = xdm("from-str-é").decode()
    result = hook.send_batch([as_dict, as_str, xdm("from-bytes")])
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED] * 3
    assert accepted_ids(aep_emulator) == ["from-dict", "from-str-é", "from-bytes"]
    hook.close()


def test_send_batch_refuses_other_types_before_sending(aep_conn_id):
    with pytest.raises(TypeError, match="message 1 is a int"):
        AEPStreamingHook(aep_conn_id).send_batch([{"a": 1}, 5])
