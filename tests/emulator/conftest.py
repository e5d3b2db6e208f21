"""Helpers for talking to the emulator the way AEP clients do: real HTTP through ``requests``."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from typing import Any

import pytest
import requests

from aep_provider.emulator import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    DEFAULT_IMS_ORG_ID,
    DEFAULT_INLET_ID,
    AEPEmulator,
)

SCHEMA_REF = {
    "id": "https://ns.adobe.com/tenant/schemas/0123456789abcdef",
    "contentType": "application/vnd.adobe.xed-full+json;version=1",
}
#: Short enough that a hung emulator fails the test fast, long enough for a loaded 2-core box.
TIMEOUT = 10


def xdm(entity: dict[str, Any] | None = None, **header: Any) -> dict[str, Any]:
    """A valid XDM message around ``entity``; ``header`` entries are added to its header."""
    return {
        "header": {"schemaRef": copy.deepcopy(SCHEMA_REF), **header},
        "body": {"xdmMeta": {"schemaRef": copy.deepcopy(SCHEMA_REF)}, "xdmEntity": entity or {"_id": "e-1"}},
    }


def request_token(url: str, **form: str) -> requests.Response:
    data = {
        "grant_type": "client_credentials",
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "scope": "openid,AdobeID,read_organizations",
    }
    data.update(form)
    return requests.post(f"{url}/ims/token/v3", data=data, timeout=TIMEOUT)


def auth_headers(url: str) -> dict[str, str]:
    response = request_token(url)
    assert response.status_code == 200, response.text
    return {
        "Authorization": f"Bearer {response.json()['access_token']}",
        "x-api-key": DEFAULT_CLIENT_ID,
        "x-gw-ims-org-id": DEFAULT_IMS_ORG_ID,
        "x-sandbox-name": "prod",
    }


class Inlet:
    """Posts to one inlet of an emulator with fresh, valid credentials."""

    def __init__(
        self, emulator: AEPEmulator | str, inlet_id: str = DEFAULT_INLET_ID, authenticated: bool = True
    ) -> None:
        self.url = emulator if isinstance(emulator, str) else emulator.url
        self.inlet_id = inlet_id
        self.session = requests.Session()
        self.headers = auth_headers(self.url) if authenticated else {}

    def batch(self, messages: list[Any], **kwargs: Any) -> requests.Response:
        return self.batch_raw(json.dumps({"messages": messages}).encode(), **kwargs)

    def batch_raw(self, body: bytes, headers: dict[str, str] | None = None, **kwargs: Any) -> requests.Response:
        return self.session.post(
            f"{self.url}/collection/batch/{self.inlet_id}",
            data=body,
            headers={"Content-Type": "application/json", **self.headers, **(headers or {})},
            timeout=kwargs.pop("timeout", TIMEOUT),
            **kwargs,
        )

    def single(
        self, message: Any, params: dict[str, str] | None = None, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> requests.Response:
        return self.session.post(
            f"{self.url}/collection/{self.inlet_id}",
            data=json.dumps(message).encode(),
            params=params,
            headers={"Content-Type": "application/json", **self.headers, **(headers or {})},
            timeout=kwargs.pop("timeout", TIMEOUT),
            **kwargs,
        )


@pytest.fixture
def inlet(aep_emulator: AEPEmulator) -> Iterator[Inlet]:
    """The default emulator's authenticated inlet, with a token already taken."""
    client = Inlet(aep_emulator)
    yield client
    client.session.close()
