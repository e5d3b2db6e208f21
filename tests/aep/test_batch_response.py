from __future__ import annotations

import pytest

from aep_provider.aep.batch_response import classify_entry, parse_batch_response
from aep_provider.aep.errors import AEPRequestError
from aep_provider.aep.results import Outcome

URL = "http://127.0.0.1:1/collection/batch/inlet"


def test_documented_shape_maps_failures_by_position():
    payload = {
        "batchId": "1565638336649:1750:244",
        "responses": [
            {"xactionId": "1565638336649:1750:244:0"},
            {"statusCode": 400, "message": "Message has unknown xdm format"},
            {"xactionId": "1565638336649:1750:244:2"},
        ],
    }
    results, batch_id = parse_batch_response(payload, 3, url=URL)
    assert batch_id == "1565638336649:1750:244"
    assert [r.outcome for r in results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert results[1].status == 400
    assert results[1].message == "Message has unknown xdm format"
    assert results[2].xaction_id == "1565638336649:1750:244:2"


def test_live_shape_with_string_status_is_a_failure_despite_its_xaction_id():
    # The live service puts an xactionId on failed entries too: only status decides.
    payload = {
        "responses": [
            {"xactionId": "0f1e-0", "status": "400", "message": "The 'header' field is mandatory"},
            {"xactionId": "0f1e-1"},
        ]
    }
    results, batch_id = parse_batch_response(payload, 2, url=URL)
    assert batch_id is None
    assert results[0].outcome is Outcome.REJECTED
    assert results[0].status == 400
    assert results[1].outcome is Outcome.ACCEPTED


@pytest.mark.parametrize("status", [429, "429", 500, "503", 502, 504])
def test_throttled_or_server_error_entries_are_retryable(status):
    assert classify_entry({"statusCode": status, "message": "busy"}).outcome is Outcome.RETRYABLE


@pytest.mark.parametrize("status", [400, 413, "404", 422])
def test_client_error_entries_are_rejected(status):
    result = classify_entry({"status": status, "message": "bad"})
    assert result.outcome is Outcome.REJECTED
    assert result.status == int(status)


def test_entry_with_2xx_status_counts_as_accepted():
    assert classify_entry({"xactionId": "a", "status": 200}).outcome is Outcome.ACCEPTED


def test_unreadable_status_is_rejected_without_a_number():
    result = classify_entry({"status": "weird", "message": "?"})
    assert result.outcome is Outcome.REJECTED
    assert result.status is None


def test_a_null_status_does_not_hide_a_status_code():
    result = classify_entry({"status": None, "statusCode": 503, "message": "busy"})
    assert result.outcome is Outcome.RETRYABLE
    assert result.status == 503


def test_non_object_entry_is_rejected():
    assert classify_entry("oops").outcome is Outcome.REJECTED


def test_count_mismatch_cannot_be_attributed():
    with pytest.raises(AEPRequestError, match="2 responses for 3 messages") as info:
        parse_batch_response({"responses": [{}, {}]}, 3, url=URL)
    assert info.value.status == 207
    assert URL in str(info.value)


@pytest.mark.parametrize("payload", [None, [], {"batchId": "x"}, {"responses": "nope"}])
def test_missing_responses_list_is_an_error_naming_the_url(payload):
    with pytest.raises(AEPRequestError, match="without a 'responses' list") as info:
        parse_batch_response(payload, 1, url=URL)
    assert URL in str(info.value)
