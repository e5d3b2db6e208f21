"""Every row of the contract's error table, against the emulator over real HTTP."""

from __future__ import annotations

import pytest

from aep_provider.aep import AEPAuthError, AEPRequestError, AEPUnavailableError, Outcome
from aep_provider.emulator import AEPEmulator, EmulatorConfig, Fault
from tests.aep.support import accepted_ids, client_for, xdm

pytestmark = pytest.mark.integration


def batch(n: int, tag: str = "m") -> list[bytes]:
    return [xdm(f"{tag}{i}") for i in range(n)]


def batch_statuses(emulator: AEPEmulator) -> dict[str, int]:
    return emulator.stats()["requests"]["batch"]


def test_happy_batch_sends_contract_headers(aep_emulator):
    # The emulator refuses a wrong x-api-key/org and a sandbox not in lower case.
    client = client_for(aep_emulator.url, sandbox_name="PROD")
    result = client.send_batch(batch(3))
    assert [r.outcome for r in result.results] == [Outcome.ACCEPTED] * 3
    assert (result.requests, result.retries, result.throttled) == (1, 0, 0)
    assert len(result.batch_ids) == 1
    assert result.bytes_sent == sum(len(m) for m in batch(3)) + 2 + len(b'{"messages":[]}')
    assert accepted_ids(aep_emulator) == ["m0", "m1", "m2"]


@pytest.mark.parametrize("status", [400, 413, 501])
def test_final_whole_request_statuses_are_not_retried(aep_emulator, status):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(status=status, count=None, endpoint="batch"))
    with pytest.raises(AEPRequestError, match=f"HTTP {status}") as info:
        client.send_batch(batch(2))
    assert info.value.status == status
    assert client.batch_url in str(info.value)
    assert batch_statuses(aep_emulator) == {str(status): 1}


def test_401_renews_the_token_and_retries_once(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(status=401, count=1, endpoint="batch"))
    result = client.send_batch(batch(2))
    assert result.accepted == 2
    assert aep_emulator.stats()["tokens_issued"] == 2
    assert batch_statuses(aep_emulator) == {"401": 1, "207": 1}


def test_401_after_renewal_is_an_auth_error(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(status=401, count=None, endpoint="batch"))
    with pytest.raises(AEPAuthError, match="a fresh token was refused too") as info:
        client.send_batch(batch(2))
    assert "HTTP 401" in str(info.value)
    assert batch_statuses(aep_emulator) == {"401": 2}
    assert aep_emulator.stats()["tokens_issued"] == 2


def test_403_renews_once_then_points_at_permissions_and_allow_list(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(status=403, count=None, endpoint="batch"))
    with pytest.raises(AEPAuthError, match="IP allow-list"):
        client.send_batch(batch(1))
    assert batch_statuses(aep_emulator) == {"403": 2}


def test_403_once_recovers_after_renewal(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(status=403, count=1, endpoint="batch"))
    assert client.send_batch(batch(2)).accepted == 2
    assert accepted_ids(aep_emulator) == ["m0", "m1"]


def test_429_honours_retry_after(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(status=429, count=1, retry_after=1, endpoint="batch"))
    result = client.send_batch(batch(2))
    assert result.accepted == 2
    assert (result.requests, result.retries, result.throttled) == (2, 1, 1)


def test_retry_after_beyond_the_deadline_fails_at_once(aep_emulator):
    client = client_for(aep_emulator.url, retry_deadline_seconds=2)
    aep_emulator.inject(Fault(status=503, count=None, retry_after=30, endpoint="batch"))
    with pytest.raises(AEPUnavailableError, match=r"1 attempt\(s\).*HTTP 503"):
        client.send_batch(batch(1))
    assert batch_statuses(aep_emulator) == {"503": 1}


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_recover_within_the_budget(aep_emulator, status):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(status=status, count=2, endpoint="batch"))
    result = client.send_batch(batch(3))
    assert result.accepted == 3
    assert result.retries == 2
    assert batch_statuses(aep_emulator) == {str(status): 2, "207": 1}
    assert accepted_ids(aep_emulator) == ["m0", "m1", "m2"]


def test_server_errors_past_max_attempts_raise_naming_url_status_attempts(aep_emulator):
    client = client_for(aep_emulator.url, max_attempts=3)
    aep_emulator.inject(Fault(status=503, count=None, endpoint="batch"))
    with pytest.raises(AEPUnavailableError) as info:
        client.send_batch(batch(1))
    text = str(info.value)
    assert client.batch_url in text
    assert "HTTP 503" in text
    assert "3 attempt(s)" in text
    assert batch_statuses(aep_emulator) == {"503": 3}


def test_dropped_connection_is_retried(aep_emulator):
    client = client_for(aep_emulator.url)
    aep_emulator.inject(Fault(drop_connection=True, count=1, endpoint="batch"))
    assert client.send_batch(batch(2)).accepted == 2
    assert accepted_ids(aep_emulator) == ["m0", "m1"]


def test_read_timeout_is_retried(aep_emulator):
    client = client_for(aep_emulator.url, timeout=(1.0, 0.3))
    aep_emulator.inject(Fault(delay_seconds=1.0, count=1, endpoint="batch"))
    result = client.send_batch(batch(1))
    assert result.accepted == 1
    assert result.retries == 1


def test_revoked_token_mid_run_is_renewed_once_without_loss(aep_emulator):
    client = client_for(aep_emulator.url)
    assert client.send_batch(batch(2, "a")).accepted == 2
    aep_emulator.revoke_tokens()
    assert client.send_batch(batch(2, "b")).accepted == 2
    assert client.send_batch(batch(2, "c")).accepted == 2
    assert aep_emulator.stats()["tokens_issued"] == 2
    assert accepted_ids(aep_emulator) == ["a0", "a1", "b0", "b1", "c0", "c1"]


def test_expired_token_answered_403_is_renewed():
    with AEPEmulator(EmulatorConfig(auth_failure_status=403)) as emulator:
        client = client_for(emulator.url)
        client.send_batch(batch(1, "a"))
        emulator.revoke_tokens()
        assert client.send_batch(batch(1, "b")).accepted == 1
        assert accepted_ids(emulator) == ["a0", "b0"]
