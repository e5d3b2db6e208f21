"""DCS streaming inlets: headers, 207 batches, single messages, size limit, raw data."""

from __future__ import annotations

import json
import socket

import pytest
import requests

from aep_provider.emulator import DEFAULT_IMS_ORG_ID, MAX_BODY_BYTES, EmulatorConfig, InletConfig
from aep_provider.emulator.responses import AUTH_PROBLEM_TYPE, PROBLEM_TYPE
from tests.emulator.conftest import TIMEOUT, Inlet, xdm

pytestmark = pytest.mark.integration


def test_batch_answers_207_one_entry_per_message_in_order(inlet, aep_emulator):
    messages = [
        xdm({"_id": "a"}),
        {"body": {}},  # no header
        xdm({"_id": "b"}, imsOrgId="FFFFFFFFFFFFFFFFFFFFFFFF@AdobeOrg"),
        "not an object",
        xdm({"_id": "c"}, imsOrgId=DEFAULT_IMS_ORG_ID),
    ]
    response = inlet.batch(messages)
    assert response.status_code == 207
    body = response.json()
    assert body["inletId"] == "emulator-inlet"
    assert isinstance(body["receivedTimeMs"], int)
    batch_id = body["batchId"]
    entries = body["responses"]
    assert len(entries) == 5
    assert entries[0] == {"xactionId": f"{batch_id}:0"}
    assert entries[4] == {"xactionId": f"{batch_id}:4"}
    assert entries[1]["statusCode"] == 400 and "The 'header' field is mandatory" in entries[1]["message"]
    assert entries[2] == {
        "statusCode": 400,
        "message": f"inletId: [emulator-inlet] imsOrgId: [{DEFAULT_IMS_ORG_ID}] "
        "Message has an absent or wrong ims org in the header",
    }
    assert "Message has unknown xdm format" in entries[3]["message"]
    assert "xactionId" not in entries[3]
    # Only the accepted ones are stored, in arrival order, with the org filled in.
    stored = aep_emulator.accepted()
    assert [m["body"]["xdmEntity"]["_id"] for m in stored] == ["a", "c"]
    assert all(m["header"]["imsOrgId"] == DEFAULT_IMS_ORG_ID for m in stored)
    stats = aep_emulator.stats()
    assert (stats["messages_accepted"], stats["messages_rejected"]) == (2, 3)


def test_batch_where_every_message_fails_is_still_207(inlet, aep_emulator):
    response = inlet.batch([{}, {}])
    assert response.status_code == 207
    assert [e["statusCode"] for e in response.json()["responses"]] == [400, 400]
    assert aep_emulator.accepted() == []


def test_live_failure_shape(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(failure_shape="live"))
    response = Inlet(emulator).batch([xdm(), {"body": {}}, {"header": {}}])
    entries = response.json()["responses"]
    assert "status" not in entries[0] and "statusCode" not in entries[0]
    uuid_1, _, index_1 = entries[1]["xactionId"].rpartition("-")
    uuid_2, _, index_2 = entries[2]["xactionId"].rpartition("-")
    assert (index_1, index_2) == ("1", "2") and uuid_1 == uuid_2 and len(uuid_1) == 36
    assert entries[1]["status"] == 400 and "statusCode" not in entries[1]
    assert "The 'header' field is mandatory" in entries[1]["message"]


def test_arrival_order_is_kept_across_requests(inlet, aep_emulator):
    for start in range(0, 30, 10):
        inlet.batch([xdm({"_id": str(i)}) for i in range(start, start + 10)])
    assert [m["body"]["xdmEntity"]["_id"] for m in aep_emulator.accepted()] == [str(i) for i in range(30)]


def _body_of_exact_size(size: int) -> bytes:
    message = xdm({"_id": "big", "pad": ""})
    head = b'{"messages":['
    tail = b"]}"
    without_pad = len(head) + len(json.dumps(message).encode()) + len(tail)
    message["body"]["xdmEntity"]["pad"] = "x" * (size - without_pad)
    body = head + json.dumps(message).encode() + tail
    assert len(body) == size
    return body


def test_body_of_exactly_one_million_bytes_is_accepted(inlet, aep_emulator):
    response = inlet.batch_raw(_body_of_exact_size(MAX_BODY_BYTES))
    assert response.status_code == 207
    assert "xactionId" in response.json()["responses"][0]
    assert len(aep_emulator.accepted()) == 1


def test_body_one_byte_over_is_413_and_the_connection_stays_usable(inlet, aep_emulator):
    response = inlet.batch_raw(_body_of_exact_size(MAX_BODY_BYTES + 1))
    assert response.status_code == 413
    problem = response.json()
    assert problem["status"] == 413
    assert "1,000,001 bytes exceeds the limit of 1,000,000" in problem["report"]["message"]
    assert aep_emulator.accepted() == []
    assert inlet.batch([xdm()]).status_code == 207  # same keep-alive session


def test_single_over_limit_is_413(inlet):
    message = xdm({"_id": "big", "pad": "x" * MAX_BODY_BYTES})
    assert inlet.single(message).status_code == 413


@pytest.mark.parametrize("body", [b"{not json", b'{"messages": [', "caf\u00e9".encode("latin-1")])
def test_malformed_json_is_400_problem(inlet, body):
    response = inlet.batch_raw(body)
    assert response.status_code == 400
    problem = response.json()
    assert problem["type"] == PROBLEM_TYPE
    assert problem["status"] == 400
    assert problem["title"] == "Invalid XDM Message Format"
    assert "not valid JSON" in problem["report"]["message"]


@pytest.mark.parametrize("body", [{"messages": []}, {"messages": {}}, {"records": [1]}, [1, 2]])
def test_batch_without_messages_array_is_400(inlet, body):
    response = inlet.batch_raw(json.dumps(body).encode())
    assert response.status_code == 400
    assert "'messages' array" in response.json()["report"]["message"]


def test_unknown_inlet_is_404_problem(aep_emulator, inlet):
    inlet.inlet_id = "no-such-inlet"
    for response in (inlet.batch([xdm()]), inlet.single(xdm())):
        assert response.status_code == 404
        assert response.json()["type"] == PROBLEM_TYPE
        assert "[no-such-inlet] Invalid inlet id" in response.json()["report"]["message"]


def test_missing_token_is_401_with_string_status(aep_emulator):
    response = requests.post(
        f"{aep_emulator.url}/collection/batch/emulator-inlet", json={"messages": [xdm()]}, timeout=TIMEOUT
    )
    assert response.status_code == 401
    assert response.json() == {
        "type": AUTH_PROBLEM_TYPE,
        "status": "401",
        "title": "Authorization",
        "report": {"message": "[emulator-inlet] Ims service token is empty"},
    }
    assert aep_emulator.stats()["requests"]["batch"] == {"401": 1}


def test_unknown_token_is_refused(inlet):
    response = inlet.batch([xdm()], headers={"Authorization": "Bearer forged"})
    assert response.status_code == 401
    assert "invalid or expired" in response.json()["report"]["message"]


def test_auth_failure_status_403_option(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(auth_failure_status=403))
    inlet = Inlet(emulator)
    response = inlet.batch([xdm()], headers={"Authorization": "Bearer forged"})
    assert response.status_code == 403
    assert response.json()["status"] == "403"


@pytest.mark.parametrize(
    ("header", "value", "expected"),
    [
        ("x-api-key", "another-client", "Api Key is invalid"),
        ("x-gw-ims-org-id", "FFFF@AdobeOrg", "x-gw-ims-org-id"),
        ("x-sandbox-name", "dev", "sandbox 'dev'"),
    ],
)
def test_wrong_identity_headers_are_403(inlet, aep_emulator, header, value, expected):
    response = inlet.batch([xdm()], headers={header: value})
    assert response.status_code == 403
    assert expected in response.text
    assert aep_emulator.accepted() == []


def test_unauthenticated_inlet_needs_no_credentials(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(inlets=(InletConfig(inlet_id="open", authenticated=False),)))
    response = requests.post(f"{emulator.url}/collection/batch/open", json={"messages": [xdm()]}, timeout=TIMEOUT)
    assert response.status_code == 207
    assert "xactionId" in response.json()["responses"][0]
    assert len(emulator.accepted("open")) == 1


def test_messages_are_kept_per_inlet(make_aep_emulator):
    config = EmulatorConfig(inlets=(InletConfig(inlet_id="a"), InletConfig(inlet_id="b", authenticated=False)))
    emulator = make_aep_emulator(config)
    Inlet(emulator, "a").batch([xdm({"_id": "1"})])
    Inlet(emulator, "b", authenticated=False).batch([xdm({"_id": "2"})])
    Inlet(emulator, "a").single(xdm({"_id": "3"}))
    ids = lambda ms: [m["body"]["xdmEntity"]["_id"] for m in ms]  # noqa: E731
    assert ids(emulator.accepted("a")) == ["1", "3"]
    assert ids(emulator.accepted("b")) == ["2"]
    assert ids(emulator.accepted()) == ["1", "2", "3"]
    assert emulator.stats()["accepted_by_inlet"] == {"a": 2, "b": 1}


def test_single_message_is_accepted_with_validation_skipped(inlet, aep_emulator):
    response = inlet.single(xdm({"_id": "s"}))
    assert response.status_code == 200
    body = response.json()
    assert body["inletId"] == "emulator-inlet"
    assert body["syncValidation"] == {"skipped": True}
    assert body["xactionId"].count(":") == 2
    assert isinstance(body["receivedTimeMs"], int)
    assert aep_emulator.accepted()[0]["body"]["xdmEntity"] == {"_id": "s"}


def test_sync_validation_pass_and_fail(inlet, aep_emulator):
    passed = inlet.single(xdm(), params={"syncValidation": "true"})
    assert passed.status_code == 200
    assert passed.json()["syncValidation"] == {"status": "pass"}
    failed = inlet.single({"header": {"schemaRef": {}}, "body": {}}, params={"syncValidation": "true"})
    assert failed.status_code == 400
    problem = failed.json()
    assert problem["title"] == "Invalid XDM Message Format"
    assert "Message has unknown xdm format" in problem["report"]["message"]
    assert len(aep_emulator.accepted()) == 1


def test_sync_validation_is_limited_to_60_per_minute(inlet):
    statuses = [inlet.single(xdm(), params={"syncValidation": "true"}).status_code for _ in range(61)]
    assert statuses[:60] == [200] * 60
    assert statuses[60] == 429
    assert inlet.single(xdm()).status_code == 200  # plain single calls are not limited


def test_sync_validation_unsupported_region_is_501(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(inlets=(InletConfig(sync_validation_supported=False),)))
    response = Inlet(emulator).single(xdm(), params={"syncValidation": "true"})
    assert response.status_code == 501
    assert "syncValidation is not supported" in response.json()["report"]["message"]


def test_raw_json_with_flow_id_is_accepted_on_single(inlet, aep_emulator):
    raw = {"customer": "42", "event": "purchase"}
    assert inlet.single(raw).status_code == 400  # not XDM, no flow id
    response = inlet.single(raw, headers={"x-adobe-flow-id": "d8a68f7c-1234"})
    assert response.status_code == 200
    assert aep_emulator.accepted() == [raw]


def test_wrong_methods_and_paths(aep_emulator):
    assert requests.get(f"{aep_emulator.url}/collection/batch/emulator-inlet", timeout=TIMEOUT).status_code == 405
    assert requests.post(f"{aep_emulator.url}/nowhere", timeout=TIMEOUT).status_code == 404


def test_concurrent_batches_all_land(aep_emulator):
    from concurrent.futures import ThreadPoolExecutor

    def send(n: int) -> int:
        client = Inlet(aep_emulator)
        return client.batch([xdm({"_id": f"{n}-{i}"}) for i in range(50)]).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(send, range(16)))
    assert statuses == [207] * 16
    ids = {m["body"]["xdmEntity"]["_id"] for m in aep_emulator.accepted()}
    assert len(ids) == 16 * 50


def test_null_org_is_filled_in_too(inlet, aep_emulator):
    assert "xactionId" in inlet.batch([xdm(imsOrgId=None)]).json()["responses"][0]
    assert aep_emulator.accepted()[0]["header"]["imsOrgId"] == DEFAULT_IMS_ORG_ID


def test_chunked_request_body_is_read(inlet, aep_emulator):
    body = json.dumps({"messages": [xdm({"_id": "chunked"})]}).encode()
    chunks = iter([body[:10], body[10:]])  # a generator body makes requests send it chunked
    response = inlet.session.post(
        f"{inlet.url}/collection/batch/emulator-inlet",
        data=chunks,
        headers={"Content-Type": "application/json", **inlet.headers},
        timeout=TIMEOUT,
    )
    assert response.status_code == 207
    assert aep_emulator.accepted()[0]["body"]["xdmEntity"]["_id"] == "chunked"


@pytest.mark.parametrize(
    ("framing", "expected"),
    [
        (b"Content-Length: lots\r\n\r\n", b"Content-Length 'lots' is not a number"),
        (b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", b"malformed chunked transfer encoding"),
    ],
)
def test_bad_http_framing_is_400_then_hang_up(aep_emulator, framing, expected):
    with socket.create_connection(("127.0.0.1", aep_emulator.port), timeout=TIMEOUT) as conn:
        conn.sendall(b"POST /collection/batch/emulator-inlet HTTP/1.1\r\nHost: x\r\n" + framing)
        answer = b""
        while chunk := conn.recv(65536):  # the emulator closes: recv returns b"" at the end
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert b"Connection: close" in answer and expected in answer


def test_missing_token_wins_over_wrong_sandbox(aep_emulator):
    response = requests.post(
        f"{aep_emulator.url}/collection/batch/emulator-inlet",
        json={"messages": [xdm()]},
        headers={"x-sandbox-name": "dev"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 401
