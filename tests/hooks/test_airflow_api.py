"""The adobe_aep connection as Airflow's API server shows it (form) and tests it (Test button)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from aep_provider.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_IMS_ORG_ID, DEFAULT_INLET_ID

# The connection form and Test button as each supported Airflow serves them (`make test-versions`).
pytestmark = pytest.mark.smoke


@pytest.fixture(scope="module")
def api() -> Iterator[Any]:
    """Airflow's core API app in-process, called as a logged-in admin."""
    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi.testclient import TestClient

    app = create_app(apps="core")
    # Stand in for a logged-in admin instead of minting a JWT (which needs the revoked-token table).
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    with TestClient(app) as client:
        yield client


@pytest.fixture(scope="module")
def hook_meta(api) -> dict:
    response = api.get("/ui/connections/hook_meta")
    assert response.status_code == 200, response.text
    return {meta["connection_type"]: meta for meta in response.json()}


def test_adobe_aep_is_offered_with_relabelled_standard_fields(hook_meta):
    meta = hook_meta["adobe_aep"]
    assert meta["hook_name"] == "Adobe Experience Platform (streaming)"
    assert meta["hook_class_name"] == "aep_provider.hooks.aep.AEPStreamingHook"
    fields = meta["standard_fields"]
    assert fields["host"] == {"hidden": False, "title": "Inlet URL", "placeholder": "https://dcs.adobedc.net"}
    assert fields["login"]["title"] == "Client ID"
    assert fields["password"]["title"] == "Client secret"
    assert fields["port"]["hidden"] is True
    assert fields["url_schema"]["hidden"] is True


def test_extras_have_labels_and_the_token_is_a_secret(hook_meta):
    extras = hook_meta["adobe_aep"]["extra_fields"]
    from aep_provider.hooks.aep import CONNECTION_EXTRAS

    # Every form field is an option the hook reads, and every option has a form field.
    assert set(extras) == set(CONNECTION_EXTRAS)
    assert {"inlet_id", "ims_org_id", "sandbox_name", "auth", "access_token", "ims_url", "scopes"} <= set(extras)
    assert extras["inlet_id"]["schema"]["title"] == "Inlet ID"
    assert extras["access_token"]["schema"]["format"] == "password"
    assert extras["auth"]["schema"]["enum"] == ["oauth", "token", "none"]
    assert extras["sandbox_name"]["value"] == "prod"
    secret_fields = {name for name, field in extras.items() if field["schema"].get("format") == "password"}
    assert secret_fields == {"access_token", "proxy_password"}


def test_provider_info_satisfies_airflows_schema():
    import json
    from importlib.resources import files

    import jsonschema

    from aep_provider.get_provider_info import get_provider_info

    schema = json.loads(files("airflow").joinpath("provider_info.schema.json").read_text())
    jsonschema.validate(get_provider_info(), schema)
    # ...and the form behaviour against the schema Airflow checks it with (silently dropped if invalid).
    behaviour_schema = json.loads(files("airflow").joinpath("customized_form_field_behaviours.schema.json").read_text())
    (aep,) = [c for c in get_provider_info()["connection-types"] if c["connection-type"] == "adobe_aep"]
    behaviour = aep["ui-field-behaviour"]
    jsonschema.validate(
        {
            "hidden_fields": behaviour["hidden-fields"],
            "relabeling": behaviour["relabeling"],
            "placeholders": behaviour["placeholders"],
        },
        behaviour_schema,
    )


def _ui_body(url: str, password: str) -> dict[str, Any]:
    return {
        "connection_id": "aep_from_the_form",
        "conn_type": "adobe_aep",
        "host": url,
        "login": DEFAULT_CLIENT_ID,
        "password": password,
        "extra": json.dumps({"inlet_id": DEFAULT_INLET_ID, "ims_org_id": DEFAULT_IMS_ORG_ID, "ims_url": url}),
    }


@pytest.mark.integration
def test_test_button_reaches_the_emulator(api, airflow_db, aep_emulator, monkeypatch):
    # The API server hands the form to the hook as a transient AIRFLOW_CONN_* URI: this checks
    # the URI round trip (scheme inside host, a secret with & + =) as well as test_connection().
    monkeypatch.setenv("AIRFLOW__CORE__TEST_CONNECTION", "Enabled")
    ok = api.post("/api/v2/connections/test", json=_ui_body(aep_emulator.url, DEFAULT_CLIENT_SECRET))
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] is True
    assert "reachable and authorised" in ok.json()["message"]
    wrong = "wr&ng+secret=1"
    bad = api.post("/api/v2/connections/test", json=_ui_body(aep_emulator.url, wrong)).json()
    assert bad["status"] is False
    assert "invalid_client" in bad["message"] and f"{aep_emulator.url}/ims/token/v3" in bad["message"]
    assert wrong not in bad["message"]
    assert aep_emulator.stats()["messages_accepted"] == 0  # testing ingests nothing
