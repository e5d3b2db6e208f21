"""Per-message results, partial re-sends, the 1 MB guard and auth modes, against the emulator."""

from __future__ import annotations

import threading

import pytest

from aep_provider.aep import (
    MAX_REQUEST_BYTES,
    AEPAuthError,
    AEPConfigError,
    AEPRequestError,
    Outcome,
    build_batch_body,
)
from aep_provider.emulator import AEPEmulator, EmulatorConfig, Fault, InletConfig
from tests.aep.support import accepted_ids, client_for, xdm

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("shape", ["documented", "live"])
def test_both_207_failure_shapes_map_by_position(shape):
    with AEPEmulator(EmulatorConfig(failure_shape=shape)) as emulator:
        client = client_for(emulator.url)
        messages = [xdm("m0"), b'{"no":"header"}', xdm("m2"), xdm("m3")]
        emulator.inject(Fault(endpoint="batch", reject_indexes=(3,), message_status=400, message="bad record"))
        result = client.send_batch(messages)
    assert [r.outcome for r in result.results] == [
        Outcome.ACCEPTED,
        Outcome.REJECTED,
        Outcome.ACCEPTED,
        Outcome.REJECTED,
    ]
    assert result.results[1].status == 400 and "header" in result.results[1].message
    assert result.results[3].status == 400 and "bad record" in result.results[3].message
    assert result.requests == 1  # rejections are final: nothing re-sent
    assert accepted_ids(emulator) == ["m0", "m2"]


def test_only_failed_retryable_entries_are_resent(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(endpoint="batch", count=1, reject_indexes=(1, 3), message_status=503))
    aep_emulator.inject(Fault(endpoint="batch", count=1, reject_indexes=(0,), message_status=429))
    messages = [xdm(f"m{i}") for i in range(5)]
    result = client.send_batch(messages)
    assert result.accepted == 5
    assert (result.requests, result.retries, result.throttled) == (3, 2, 1)
    # Second request carried m1 and m3, the third only m1 (its first entry was throttled).
    assert result.bytes_sent == len(build_batch_body(messages)) + len(
        build_batch_body([messages[1], messages[3]])
    ) + len(build_batch_body([messages[1]]))
    assert sorted(accepted_ids(aep_emulator)) == ["m0", "m1", "m2", "m3", "m4"]  # each exactly once
    assert len(result.batch_ids) == 3
    # Every HTTP request is timed (the run summary's request_seconds come from these).
    assert len(result.request_seconds) == 3 and all(seconds > 0 for seconds in result.request_seconds)


def test_entries_still_failing_when_budget_ends_are_retryable(aep_emulator):
    client = client_for(aep_emulator.url, max_attempts=3)
    aep_emulator.inject(Fault(endpoint="batch", count=None, reject_indexes=(0,), message_status=429))
    result = client.send_batch([xdm("m0"), xdm("m1")])
    assert [r.outcome for r in result.results] == [Outcome.RETRYABLE, Outcome.ACCEPTED]
    assert result.results[0].status == 429
    assert (result.requests, result.throttled) == (3, 3)
    assert accepted_ids(aep_emulator) == ["m1"]


def test_server_down_after_partial_success_reports_rest_retryable(aep_emulator):
    client = client_for(aep_emulator.url, max_attempts=3)
    aep_emulator.inject(Fault(endpoint="batch", count=1, reject_indexes=(1,), message_status=500))
    aep_emulator.inject(Fault(endpoint="batch", count=None, status=503))
    result = client.send_batch([xdm("m0"), xdm("m1")])
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED, Outcome.RETRYABLE]
    assert result.results[1].status == 503
    assert accepted_ids(aep_emulator) == ["m0"]


def test_auth_failure_after_partial_success_returns_the_error_in_the_result(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(endpoint="batch", count=1, reject_indexes=(1,), message_status=500))
    aep_emulator.inject(Fault(endpoint="batch", count=None, status=401))
    result = client.send_batch([xdm("m0"), xdm("m1")])
    assert isinstance(result.error, AEPAuthError)
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED, Outcome.RETRYABLE]
    assert accepted_ids(aep_emulator) == ["m0"]


@pytest.mark.parametrize("status", [401, 403])
def test_401_or_403_entries_in_a_207_renew_the_token_once_and_resend_them(aep_emulator, status):
    """An authorization failure of the request, answered per message: never a record rejection."""
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(endpoint="batch", count=1, reject_indexes=(1, 2), message_status=status))
    result = client.send_batch([xdm("m0"), xdm("m1"), xdm("m2")])
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED] * 3
    assert result.error is None and (result.requests, result.retries) == (2, 0)
    assert sorted(accepted_ids(aep_emulator)) == ["m0", "m1", "m2"]  # each exactly once
    assert aep_emulator.stats()["tokens_issued"] == 2  # one renewal


def test_401_entries_again_after_the_renewal_fail_the_call_without_rejecting_records(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(endpoint="batch", count=None, reject_indexes=(0,), message_status=401))
    result = client.send_batch([xdm("m0"), xdm("m1")])
    assert isinstance(result.error, AEPAuthError) and "a fresh token was refused too" in str(result.error)
    # m0 was not rejected: it stays unsent (RETRYABLE), so it is never dead-lettered or skipped.
    assert [r.outcome for r in result.results] == [Outcome.RETRYABLE, Outcome.ACCEPTED]
    assert result.results[0].status == 401
    assert accepted_ids(aep_emulator) == ["m1"] and aep_emulator.stats()["tokens_issued"] == 2


def test_a_call_ending_normally_has_no_error(aep_emulator):
    result = client_for(aep_emulator.url).send_batch([xdm("m0")])
    assert result.error is None and result.accepted == 1


def _padded_to(body_size: int, count: int) -> list[bytes]:
    """``count`` messages whose batch body is exactly ``body_size`` bytes (the last one padded)."""
    messages = [xdm(f"m{i}") for i in range(count - 1)] + [xdm(f"m{count - 1}", pad=1)]
    # The pad is plain 'x's: each one more adds exactly one byte.
    messages[-1] = xdm(f"m{count - 1}", pad=1 + body_size - len(build_batch_body(messages)))
    assert len(build_batch_body(messages)) == body_size
    return messages


def test_body_of_exactly_1mb_is_accepted(aep_emulator):
    client = client_for(aep_emulator.url)
    messages = _padded_to(MAX_REQUEST_BYTES, 3)
    result = client.send_batch(messages)
    assert result.accepted == 3
    assert result.bytes_sent == MAX_REQUEST_BYTES
    assert aep_emulator.stats()["requests"]["batch"] == {"207": 1}


def test_body_one_byte_over_is_refused_before_sending(aep_emulator):
    client = client_for(aep_emulator.url)
    messages = _padded_to(MAX_REQUEST_BYTES + 1, 3)
    with pytest.raises(AEPConfigError, match="1,000,001-byte body.*split it"):
        client.send_batch(messages)
    assert aep_emulator.stats()["requests_total"] == 0


def test_message_too_big_alone_is_rejected_and_the_rest_sent(aep_emulator):
    client = client_for(aep_emulator.url)
    huge = _padded_to(MAX_REQUEST_BYTES + 1, 1)[0]
    result = client.send_batch([xdm("a"), huge, xdm("b")])
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED, Outcome.REJECTED, Outcome.ACCEPTED]
    assert result.results[1].status == 413
    assert "not sent" in result.results[1].message
    assert accepted_ids(aep_emulator) == ["a", "b"]
    assert result.bytes_sent == len(build_batch_body([xdm("a"), xdm("b")]))


def test_non_bytes_message_is_a_config_error(aep_emulator):
    with pytest.raises(AEPConfigError, match="message 1 is str, not bytes"):
        client_for(aep_emulator.url).send_batch([xdm("a"), "{}"])  # type: ignore[list-item]


def test_empty_batch_sends_nothing(aep_emulator):
    result = client_for(aep_emulator.url).send_batch([])
    assert result.results == [] and result.requests == 0
    assert aep_emulator.stats()["requests_total"] == 0


def test_secret_with_form_special_characters_is_url_encoded():
    secret = "p&ss+w=rd%26 x?"
    with AEPEmulator(EmulatorConfig(client_secret=secret)) as emulator:
        client = client_for(emulator.url, client_secret=secret)
        assert client.send_batch([xdm("a")]).accepted == 1
        assert emulator.stats()["tokens_issued"] == 1


def test_scopes_are_sent_comma_separated():
    with AEPEmulator(EmulatorConfig(required_scopes=("openid", "AdobeID", "session"))) as emulator:
        assert client_for(emulator.url).send_batch([xdm("a")]).accepted == 1
        with pytest.raises(AEPAuthError, match="invalid_scope"):
            client_for(emulator.url, scopes="openid").send_batch([xdm("b")])


def test_auth_none_sends_no_token_to_an_open_inlet():
    config = EmulatorConfig(inlets=(InletConfig(authenticated=False),))
    with AEPEmulator(config) as emulator:
        client = client_for(emulator.url, auth="none")
        assert client.send_batch([xdm("a")]).accepted == 1
        assert emulator.stats()["tokens_issued"] == 0


def test_auth_none_against_an_authenticated_inlet_says_what_to_set(aep_emulator):
    with pytest.raises(AEPAuthError, match="requires authentication: set auth 'oauth'"):
        client_for(aep_emulator.url, auth="none").send_batch([xdm("a")])


def test_static_token_mode_uses_the_token_and_cannot_renew(aep_emulator):
    import requests

    token = requests.post(
        f"{aep_emulator.url}/ims/token/v3",
        data={
            "grant_type": "client_credentials",
            "client_id": "aep-emulator-client",
            "client_secret": "aep-emulator-secret",
        },
        timeout=5,
    ).json()["access_token"]
    client = client_for(aep_emulator.url, auth="token", access_token=token)
    assert client.send_batch([xdm("a")]).accepted == 1
    aep_emulator.revoke_tokens()
    with pytest.raises(AEPAuthError, match="static access token was refused"):
        client.send_batch([xdm("b")])


def test_send_one_and_sync_validation(aep_emulator):
    client = client_for(aep_emulator.url)
    ok = client.send_one(xdm("a"), sync_validation=True)
    assert ok.results[0].outcome is Outcome.ACCEPTED and ok.results[0].xaction_id
    bad = client.send_one(b'{"body":{}}', sync_validation=True)
    assert bad.results[0].outcome is Outcome.REJECTED and bad.results[0].status == 400
    assert accepted_ids(aep_emulator) == ["a"]


def test_sync_validation_unsupported_is_501_not_retried():
    with AEPEmulator(EmulatorConfig(inlets=(InletConfig(sync_validation_supported=False),))) as emulator:
        with pytest.raises(AEPRequestError, match="not supported in this region") as info:
            client_for(emulator.url).send_one(xdm("a"), sync_validation=True)
        assert info.value.status == 501
        assert emulator.stats()["requests"]["single"] == {"501": 1}


def test_unknown_inlet_is_a_clear_error(aep_emulator):
    with pytest.raises(AEPRequestError, match="check the connection's 'inlet_id'") as info:
        client_for(aep_emulator.url, inlet_id="nope").send_batch([xdm("a")])
    assert info.value.status == 404


def test_inlet_id_is_sent_as_one_encoded_path_segment():
    # Unencoded, '?' would start a query and '#' a fragment: the messages would go to inlet "in let".
    odd = "in let?x=1#frag"
    inlets = (InletConfig(inlet_id="in let", authenticated=False), InletConfig(inlet_id=odd, authenticated=False))
    with AEPEmulator(EmulatorConfig(inlets=inlets)) as emulator:
        client = client_for(emulator.url, auth="none", inlet_id=odd)
        assert client.send_batch([xdm("a")]).accepted == 1
        assert client.send_one(xdm("b")).accepted == 1
        assert [m["body"]["xdmEntity"]["_id"] for m in emulator.accepted(odd)] == ["a", "b"]
        assert emulator.accepted("in let") == []


def test_a_pasted_inlet_url_as_id_is_one_clear_error():
    with pytest.raises(AEPConfigError, match="contains '/': set 'inlet_id' to the id alone"):
        client_for("http://127.0.0.1:9", inlet_id="https://dcs.adobedc.net/collection/abc123")


def test_concurrent_batches_share_one_token_and_lose_nothing(aep_emulator):
    client = client_for(aep_emulator.url, pool_size=8)
    errors: list[BaseException] = []
    accepted: list[int] = []

    def worker(n: int) -> None:
        try:
            for b in range(5):
                accepted.append(client.send_batch([xdm(f"t{n}-{b}-{i}") for i in range(10)]).accepted)
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert errors == []
    assert sum(accepted) == 400
    assert len(set(accepted_ids(aep_emulator))) == 400
    assert aep_emulator.stats()["tokens_issued"] == 1


@pytest.mark.parametrize(("client_limit", "throttled"), [(4, False), (0, True)])
def test_client_rate_limit_keeps_under_the_inlet_limit(client_limit, throttled):
    with AEPEmulator(EmulatorConfig(inlets=(InletConfig(max_requests_per_second=5),))) as emulator:
        client = client_for(emulator.url, max_requests_per_second=client_limit)
        results = [client.send_batch([xdm(f"m{i}")]) for i in range(9)]
        assert all(r.accepted == 1 for r in results)
        assert (sum(r.throttled for r in results) > 0) is throttled
        assert (emulator.stats()["rate_limited"] > 0) is throttled
        assert len(accepted_ids(emulator)) == 9


def test_flow_id_header_lets_raw_data_through_the_single_endpoint(aep_emulator):
    raw = b'{"customerId":"c-1","amount":3}'
    assert client_for(aep_emulator.url).send_one(raw).results[0].outcome is Outcome.REJECTED
    result = client_for(aep_emulator.url, flow_id="flow-123").send_one(raw)
    assert result.results[0].outcome is Outcome.ACCEPTED
    assert aep_emulator.accepted() == [{"customerId": "c-1", "amount": 3}]


def test_burst_of_401s_from_many_threads_mints_one_new_token(aep_emulator):
    client = client_for(aep_emulator.url, pool_size=8)
    phase = threading.Barrier(9)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            client.send_batch([xdm(f"a{n}")])
            phase.wait(10)  # everyone holds the first token...
            phase.wait(10)  # ...which the main thread revokes here
            client.send_batch([xdm(f"b{n}")])
        except BaseException as exc:  # noqa: BLE001 -- reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    phase.wait(10)
    aep_emulator.revoke_tokens()
    phase.wait(10)
    for t in threads:
        t.join(30)
    assert errors == []
    assert aep_emulator.stats()["tokens_issued"] == 2
    assert sorted(accepted_ids(aep_emulator)) == sorted([f"a{n}" for n in range(8)] + [f"b{n}" for n in range(8)])
