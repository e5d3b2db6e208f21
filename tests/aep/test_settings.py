from __future__ import annotations

import pytest

from aep_provider.aep import AEPConfigError, AEPSettings, IMSTokenProvider, NoAuth, StaticToken
from aep_provider.aep.transport import normalize_base_url, redact, safe_url

SECRET = "s3cr&t+v=lue"
BASE = {"inlet_id": "inlet-1", "client_id": "cid", "client_secret": SECRET}


def test_strings_from_uris_are_converted():
    settings = AEPSettings.from_values(
        {
            **BASE,
            "timeout": "2,5",
            "verify": "false",
            "max_attempts": "3",
            "retry_deadline_seconds": "7.5",
            "max_requests_per_second": "0",
            "max_messages_per_second": "none",
            "sandbox_name": "Dev-1",
        }
    )
    assert settings.timeout == (2.0, 5.0)
    assert settings.verify is False
    assert settings.max_attempts == 3
    assert settings.retry_deadline_seconds == 7.5
    assert settings.max_requests_per_second is None
    assert settings.max_messages_per_second is None
    client = settings.create_client()
    assert not client.rate_limiter.enabled
    assert client.sandbox_name == "dev-1"


def test_defaults_follow_the_contract():
    settings = AEPSettings.from_values(BASE)
    assert settings.inlet_url == "https://dcs.adobedc.net"
    assert settings.ims_url == "https://ims-na1.adobelogin.com"
    assert settings.sandbox_name == "prod"
    assert settings.scopes == "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"
    assert (settings.max_requests_per_second, settings.max_messages_per_second) == (1000, 10000)
    client = settings.create_client()
    assert client.batch_url == "https://dcs.adobedc.net/collection/batch/inlet-1"
    assert isinstance(client.auth, IMSTokenProvider)
    assert client.auth.token_url == "https://ims-na1.adobelogin.com/ims/token/v3"


def test_auth_modes_build_their_providers():
    assert isinstance(AEPSettings.from_values({"inlet_id": "i", "auth": "none"}).create_client().auth, NoAuth)
    token = AEPSettings.from_values({"inlet_id": "i", "auth": "TOKEN", "access_token": "tok-123456"})
    assert isinstance(token.create_client().auth, StaticToken)


@pytest.mark.parametrize(
    ("values", "match"),
    [
        ({"client_id": "c", "client_secret": "s"}, "no streaming inlet id: set the 'inlet_id' extra"),
        ({**BASE, "inlet_url": "dcs.adobedc.net"}, "needs a scheme and a host"),
        ({**BASE, "inlet_url": "ftp://dcs.adobedc.net"}, "needs a scheme and a host"),
        ({**BASE, "inlet_url": "https://dcs.adobedc.net:http"}, "invalid port"),
        ({**BASE, "ims_url": "ims-na1"}, "IMS URL"),
        ({**BASE, "auth": "jwt"}, "auth 'jwt' is not one of oauth, token, none"),
        ({"inlet_id": "i", "client_id": "c"}, "needs the Client ID .login. and Client secret .password."),
        ({"inlet_id": "i", "auth": "token"}, "needs the 'access_token' extra"),
        ({**BASE, "max_attempts": "0"}, "'max_attempts' has an invalid value"),
        ({**BASE, "timeout": "soon"}, "'timeout' has an invalid value"),
        ({**BASE, "retry_deadline_seconds": "-1"}, "deadline_seconds must be > 0"),
        ({**BASE, "inlet": "x"}, "unknown option.s. inlet"),
    ],
)
def test_bad_values_give_one_clear_error(values, match):
    with pytest.raises(AEPConfigError, match=match) as info:
        AEPSettings.from_values(values, source="Connection 'aep_x'")
    assert SECRET not in str(info.value)


def test_repr_hides_secrets():
    settings = AEPSettings.from_values({**BASE, "access_token": "tok-abcdef", "proxy": "http://u:pw-xyz@proxy:3128"})
    text = repr(settings) + repr(settings.create_client())
    for secret in (SECRET, "tok-abcdef", "pw-xyz"):
        assert secret not in text
    assert set(settings.secrets()) == {SECRET, "tok-abcdef", "pw-xyz"}


def test_a_percent_encoded_proxy_password_is_masked_as_written_and_as_sent():
    settings = AEPSettings.from_values({**BASE, "proxy": "http://u:p%40ss-word-9@proxy:3128"})
    assert set(settings.secrets()) == {SECRET, "p%40ss-word-9", "p@ss-word-9"}


def test_url_helpers():
    assert normalize_base_url("https://dcs.adobedc.net/ ", what="x") == "https://dcs.adobedc.net"
    assert normalize_base_url("http://127.0.0.1:8765/base/?q=1", what="x") == "http://127.0.0.1:8765/base"
    assert safe_url("https://user:pw@host:8443/p?token=abc#f") == "https://host:8443/p"
    assert redact("a secret here", ["secret", None, ""]) == "a *** here"
