"""Fault injection, token revocation and the per-inlet rate limit."""

from __future__ import annotations

import time

import pytest
import requests

from aep_provider.emulator import EmulatorConfig, Fault, InletConfig
from aep_provider.emulator.responses import AUTH_PROBLEM_TYPE, PROBLEM_TYPE
from tests.emulator.conftest import Inlet, request_token, xdm

pytestmark = pytest.mark.integration


def test_status_fault_for_count_requests_then_normal(inlet, aep_emulator):
    aep_emulator.inject(Fault(status=503, count=3, retry_after=1))
    answers = [inlet.batch([xdm()]) for _ in range(4)]
    assert [a.status_code for a in answers] == [503, 503, 503, 207]
    assert answers[0].headers["Retry-After"] == "1"
    assert answers[0].json()["type"] == PROBLEM_TYPE and answers[0].json()["status"] == 503
    assert len(aep_emulator.accepted()) == 1
    stats = aep_emulator.stats()
    assert stats["requests"]["batch"] == {"503": 3, "207": 1}
    assert stats["faults_applied"] == 3
    assert aep_emulator.faults() == []


@pytest.mark.parametrize(
    ("status", "check"),
    [
        (401, lambda r: r.json()["type"] == AUTH_PROBLEM_TYPE and r.json()["status"] == "401"),
        (403, lambda r: r.content == b""),
        (429, lambda r: r.json()["title"] == "Too Many Requests" and r.headers["Retry-After"] == "2"),
        (500, lambda r: r.json()["status"] == 500),
        (502, lambda r: r.json()["title"] == "Bad Gateway"),
        (504, lambda r: r.json()["title"] == "Gateway Timeout"),
    ],
)
def test_status_faults_carry_the_aep_body_for_that_status(inlet, aep_emulator, status, check):
    aep_emulator.inject(Fault(status=status, retry_after=2 if status == 429 else None))
    response = inlet.batch([xdm()])
    assert response.status_code == status
    assert check(response)


def test_endpoint_selector(inlet, aep_emulator):
    aep_emulator.inject(Fault(status=500, endpoint="single", count=1))
    assert inlet.batch([xdm()]).status_code == 207  # not the selected endpoint
    assert request_token(aep_emulator.url).status_code == 200
    assert inlet.single(xdm()).status_code == 500
    assert inlet.single(xdm()).status_code == 200


def test_a_fault_targets_the_next_batch_by_default_not_the_next_token_request(aep_emulator):
    aep_emulator.inject(Fault(status=503))
    inlet = Inlet(aep_emulator)  # requests a token first
    assert inlet.single(xdm()).status_code == 200
    assert inlet.batch([xdm()]).status_code == 503
    assert aep_emulator.stats()["requests"]["token"] == {"200": 1}


def test_token_endpoint_fault_uses_oauth_error_body(aep_emulator):
    aep_emulator.inject(Fault(status=503, endpoint="token", count=1, retry_after=3))
    failed = request_token(aep_emulator.url)
    assert failed.status_code == 503
    assert failed.json()["error"] == "server_error"
    assert failed.headers["Retry-After"] == "3"
    assert request_token(aep_emulator.url).status_code == 200
    assert aep_emulator.stats()["tokens_issued"] == 1


def test_fault_forever_until_reset(inlet, aep_emulator):
    aep_emulator.inject(Fault(status=502, count=None, endpoint="batch"))
    assert [inlet.batch([xdm()]).status_code for _ in range(3)] == [502, 502, 502]
    assert aep_emulator.faults()[0]["remaining"] is None
    aep_emulator.reset()
    inlet.headers = Inlet(aep_emulator).headers  # reset forgets tokens too
    assert inlet.batch([xdm()]).status_code == 207


def test_faults_apply_in_injection_order(inlet, aep_emulator):
    aep_emulator.inject(Fault(status=500, count=1))
    aep_emulator.inject(Fault(status=429, count=1))
    assert [inlet.batch([xdm()]).status_code for _ in range(3)] == [500, 429, 207]


def test_fault_for_one_inlet_only(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(inlets=(InletConfig(inlet_id="a"), InletConfig(inlet_id="b"))))
    emulator.inject(Fault(status=503, inlet_id="b"))
    assert Inlet(emulator, "a").batch([xdm()]).status_code == 207
    assert Inlet(emulator, "b").batch([xdm()]).status_code == 503


def test_drop_connection_gives_the_client_a_connection_error(inlet, aep_emulator):
    aep_emulator.inject(Fault(drop_connection=True, count=1))
    with pytest.raises(requests.ConnectionError):
        inlet.batch([xdm()])
    assert aep_emulator.accepted() == []
    assert aep_emulator.stats()["connections_dropped"] == 1
    assert inlet.batch([xdm()]).status_code == 207  # the session reconnects


def test_delay_fault_trips_a_shorter_client_timeout_but_still_lands(inlet, aep_emulator):
    aep_emulator.inject(Fault(delay_seconds=1.0, count=1))
    with pytest.raises(requests.ReadTimeout):
        inlet.batch([xdm({"_id": "slow"})], timeout=0.3)
    inlet.session.close()
    assert Inlet(aep_emulator).batch([xdm({"_id": "next"})]).status_code == 207
    # A client timeout does not mean AEP dropped the message: it lands once the delay is over,
    # which is why re-sends must be idempotent (same XDM _id).
    deadline = time.monotonic() + 10
    while len(aep_emulator.accepted()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [m["body"]["xdmEntity"]["_id"] for m in aep_emulator.accepted()] == ["next", "slow"]


def test_delay_then_status(inlet, aep_emulator):
    aep_emulator.inject(Fault(delay_seconds=0.2, status=504))
    assert inlet.batch([xdm()]).status_code == 504


def test_reject_indexes_fails_those_messages_only(inlet, aep_emulator):
    aep_emulator.inject(Fault(reject_indexes=(1, 3), message="rejected for the test", message_status=400))
    entries = inlet.batch([xdm({"_id": str(i)}) for i in range(5)]).json()["responses"]
    assert ["xactionId" in e for e in entries] == [True, False, True, False, True]
    assert entries[1]["statusCode"] == 400 and "rejected for the test" in entries[1]["message"]
    assert [m["body"]["xdmEntity"]["_id"] for m in aep_emulator.accepted()] == ["0", "2", "4"]


def test_reject_if_contains_with_retryable_status(inlet, aep_emulator):
    aep_emulator.inject(Fault(reject_if_contains="poison", count=None, message_status=503, endpoint="any"))
    entries = inlet.batch([xdm({"_id": "ok"}), xdm({"_id": "poison-pill"})]).json()["responses"]
    assert "xactionId" in entries[0]
    assert entries[1]["statusCode"] == 503
    single = inlet.single(xdm({"_id": "poison-again"}))
    assert single.status_code == 503


def test_revoke_tokens_makes_issued_tokens_401_until_renewed(inlet, aep_emulator):
    assert inlet.batch([xdm()]).status_code == 207
    aep_emulator.revoke_tokens()
    refused = inlet.batch([xdm()])
    assert refused.status_code == 401
    assert refused.json()["status"] == "401"
    inlet.headers = Inlet(aep_emulator).headers  # a fresh token works again
    assert inlet.batch([xdm()]).status_code == 207
    assert aep_emulator.stats()["token_revocations"] == 1


def test_rate_limit_answers_429_with_retry_after(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(inlets=(InletConfig(max_requests_per_second=2),)))
    inlet = Inlet(emulator)
    answers = []
    for _ in range(20):  # bounded: a stalled machine may roll the 1 s window once or twice
        answers.append(inlet.batch([xdm()]))
        if answers[-1].status_code == 429:
            break
    statuses = [a.status_code for a in answers]
    assert statuses[-1] == 429 and set(statuses[:-1]) == {207} and len(statuses) >= 3
    assert answers[-1].headers["Retry-After"] == "1"
    assert answers[-1].json()["status"] == 429
    assert emulator.stats()["rate_limited"] == 1
    assert len(emulator.accepted()) == len(statuses) - 1


def test_message_rate_limit_counts_messages_in_any_second(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(inlets=(InletConfig(max_messages_per_second=5),)))
    inlet = Inlet(emulator)
    # 3 + 2 messages fit the window; 1 more does not, whatever the request count.
    assert inlet.batch([xdm(), xdm(), xdm()]).status_code == 207
    assert inlet.batch([xdm(), xdm()]).status_code == 207
    refused = inlet.batch([xdm()])
    assert refused.status_code == 429 and refused.headers["Retry-After"] == "1"
    assert "too many messages" in refused.json()["report"]["message"]
    assert emulator.stats()["rate_limited"] == 1
    assert len(emulator.accepted()) == 5
    time.sleep(1.05)
    assert inlet.batch([xdm()]).status_code == 207


def test_message_rate_limit_admits_one_batch_larger_than_it_alone(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(inlets=(InletConfig(max_messages_per_second=2),)))
    assert Inlet(emulator).batch([xdm(), xdm(), xdm()]).status_code == 207
