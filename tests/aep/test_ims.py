"""IMS OAuth Server-to-Server tokens against the emulator's IMS over real HTTP."""

from __future__ import annotations

import pytest

from aep_provider.aep import AEPAuthError, AEPConfigError, AEPUnavailableError, IMSTokenProvider, RetryPolicy
from aep_provider.emulator import AEPEmulator, EmulatorConfig, Fault
from tests.aep.fakes import FakeClock
from tests.aep.support import client_for, closed_port, xdm

pytestmark = pytest.mark.integration

FAST_RETRY = RetryPolicy(deadline_seconds=3, max_attempts=3, backoff_base_seconds=0.01, backoff_max_seconds=0.05)


def provider(url: str, **kwargs) -> IMSTokenProvider:
    values = {
        "client_id": "aep-emulator-client",
        "client_secret": "aep-emulator-secret",
        "ims_url": url,
        "retry": FAST_RETRY,
        "timeout": (1.0, 2.0),
    }
    values.update(kwargs)
    return IMSTokenProvider(**values)


def test_token_is_cached_for_its_life_and_renewed_ahead_of_expiry():
    with AEPEmulator(EmulatorConfig(token_ttl_seconds=3600)) as emulator:
        clock = FakeClock()
        ims = provider(emulator.url, clock=clock, sleep=clock.sleep)
        first = ims.get_token()
        clock.advance(3600 - 301)  # margin for a 1 h token: 5 minutes
        assert ims.get_token() == first
        clock.advance(2)
        second = ims.get_token()
        assert second != first
        assert emulator.stats()["tokens_issued"] == 2


def test_short_lived_tokens_renew_at_ten_percent_of_their_life():
    with AEPEmulator(EmulatorConfig(token_ttl_seconds=100)) as emulator:
        clock = FakeClock()
        ims = provider(emulator.url, clock=clock, sleep=clock.sleep)
        first = ims.get_token()
        clock.advance(89)
        assert ims.get_token() == first
        clock.advance(2)
        assert ims.get_token() != first


def test_invalidate_only_drops_the_token_it_names(aep_emulator):
    ims = provider(aep_emulator.url)
    first = ims.get_token()
    ims.invalidate("some-older-token")
    assert ims.get_token() == first
    ims.invalidate(first)
    assert ims.get_token() != first
    assert ims.fetches == 2


def test_wrong_secret_is_an_auth_error_naming_ims_and_the_reason(aep_emulator):
    wrong = "wrong-s3cret&=+"
    with pytest.raises(AEPAuthError) as info:
        provider(aep_emulator.url, client_secret=wrong).get_token()
    text = str(info.value)
    assert f"{aep_emulator.url}/ims/token/v3" in text
    assert "invalid_client" in text and "invalid client_secret parameter" in text
    assert wrong not in text
    assert aep_emulator.stats()["requests"]["token"] == {"400": 1}  # refusals are not retried


def test_ims_server_errors_are_retried(aep_emulator):
    aep_emulator.inject(Fault(status=503, count=2, endpoint="token"))
    assert provider(aep_emulator.url).get_token()
    assert aep_emulator.stats()["requests"]["token"] == {"503": 2, "200": 1}


def test_ims_down_past_the_deadline_is_unavailable(aep_emulator):
    aep_emulator.inject(Fault(status=500, count=None, endpoint="token"))
    with pytest.raises(AEPUnavailableError, match=r"did not issue a token after 3 attempt\(s\).*HTTP 500"):
        provider(aep_emulator.url).get_token()


def test_ims_unreachable_is_unavailable_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    with pytest.raises(AEPUnavailableError, match=f"{url}/ims/token/v3.*ConnectionError"):
        provider(url).get_token()


def test_ims_url_that_is_not_ims_is_a_config_error(aep_emulator):
    with pytest.raises(AEPConfigError, match="check the IMS URL"):
        provider(f"{aep_emulator.url}/elsewhere").get_token()


def test_inlet_call_fails_with_the_ims_error_when_credentials_are_wrong(aep_emulator):
    with pytest.raises(AEPAuthError, match="Client secret .password."):
        client_for(aep_emulator.url, client_secret="not-the-secret").send_batch([xdm("a")])
    assert aep_emulator.stats()["requests"]["batch"] == {}


def test_failed_renewal_ahead_of_expiry_keeps_the_valid_token():
    with AEPEmulator(EmulatorConfig(token_ttl_seconds=3600)) as emulator:
        clock = FakeClock()
        ims = provider(emulator.url, clock=clock, sleep=clock.sleep)
        first = ims.get_token()
        clock.advance(3400)  # inside the renewal margin, 200 s before expiry
        emulator.inject(Fault(status=503, count=None, endpoint="token"))
        assert ims.get_token() == first
        assert ims.get_token() == first  # no new attempt right away...
        assert emulator.stats()["requests"]["token"] == {"200": 1, "503": 1}
        emulator.reset()
        clock.advance(31)  # ...but one after RENEWAL_RETRY_SECONDS
        assert ims.get_token() != first


def test_expired_token_is_not_used_when_ims_is_down():
    with AEPEmulator(EmulatorConfig(token_ttl_seconds=3600)) as emulator:
        clock = FakeClock()
        ims = provider(emulator.url, clock=clock, sleep=clock.sleep)
        ims.get_token()
        clock.advance(3601)
        emulator.inject(Fault(status=503, count=None, endpoint="token"))
        with pytest.raises(AEPUnavailableError, match="did not issue a token after 3 attempt"):
            ims.get_token()
