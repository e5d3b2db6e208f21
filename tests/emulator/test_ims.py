"""IMS ``POST /ims/token/v3``: OAuth server-to-server client credentials, RFC 6749 errors."""

from __future__ import annotations

import time

import pytest
import requests

from aep_provider.emulator import EmulatorConfig
from tests.emulator.conftest import TIMEOUT, Inlet, request_token, xdm

pytestmark = pytest.mark.integration


def test_token_is_issued_for_the_configured_credentials(aep_emulator):
    response = request_token(aep_emulator.url)
    assert response.status_code == 200
    body = response.json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 86399
    assert body["access_token"]
    assert aep_emulator.stats()["tokens_issued"] == 1
    assert aep_emulator.stats()["requests"]["token"] == {"200": 1}


def test_form_values_are_url_decoded_secret_with_reserved_characters(make_aep_emulator):
    secret = "p&ss+w=rd%20 x"
    emulator = make_aep_emulator(EmulatorConfig(client_secret=secret))
    # requests URL-encodes every value; a secret taken literally would split at & and =.
    assert request_token(emulator.url, client_secret=secret).status_code == 200
    # The same secret sent without encoding is a different (wrong) secret.
    raw = f"grant_type=client_credentials&client_id=aep-emulator-client&client_secret={secret}"
    response = requests.post(
        f"{emulator.url}/ims/token/v3",
        data=raw,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_client"


@pytest.mark.parametrize(
    ("form", "error", "description"),
    [
        ({"client_secret": "wrong"}, "invalid_client", "invalid client_secret parameter"),
        ({"client_id": "someone-else"}, "invalid_client", "invalid client_id parameter"),
        ({"grant_type": "password"}, "unsupported_grant_type", "client_credentials"),
        ({"grant_type": ""}, "unsupported_grant_type", "client_credentials"),
    ],
)
def test_rfc6749_errors(aep_emulator, form, error, description):
    response = request_token(aep_emulator.url, **form)
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "application/json"
    assert response.json()["error"] == error
    assert description in response.json()["error_description"]
    assert aep_emulator.stats()["tokens_issued"] == 0


def test_required_scopes_are_enforced(make_aep_emulator):
    emulator = make_aep_emulator(required_scopes=("openid", "additional_info.projectedProductContext"))
    response = request_token(emulator.url, scope="openid,AdobeID")
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_scope"
    assert "additional_info.projectedProductContext" in response.json()["error_description"]
    ok = request_token(emulator.url, scope="openid, AdobeID,additional_info.projectedProductContext")
    assert ok.status_code == 200


def test_json_body_is_not_a_token_request(aep_emulator):
    response = requests.post(
        f"{aep_emulator.url}/ims/token/v3",
        json={"grant_type": "client_credentials", "client_id": "aep-emulator-client"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_request"


def test_each_request_mints_a_new_token(aep_emulator):
    first = request_token(aep_emulator.url).json()["access_token"]
    second = request_token(aep_emulator.url).json()["access_token"]
    assert first != second
    assert aep_emulator.stats()["tokens_issued"] == 2


def test_token_expires_after_its_ttl(make_aep_emulator):
    emulator = make_aep_emulator(EmulatorConfig(token_ttl_seconds=2))
    inlet = Inlet(emulator)
    assert inlet.batch([xdm()]).status_code == 207
    assert request_token(emulator.url).json()["expires_in"] == 2
    time.sleep(2.1)
    expired = inlet.batch([xdm()])
    assert expired.status_code == 401
    assert expired.json()["report"]["message"].endswith("Ims service token is invalid or expired")
