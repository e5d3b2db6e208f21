"""The adobe_aep connection form as Airflow's API server serves it to the UI."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def hook_meta() -> dict:
    from fastapi.testclient import TestClient

    from airflow.api_fastapi.app import create_app
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser
    from airflow.api_fastapi.core_api.security import get_user

    app = create_app(apps="core")
    # The form metadata needs no database: stand in for a logged-in admin instead of minting a JWT.
    app.dependency_overrides[get_user] = lambda: SimpleAuthManagerUser(username="admin", role="admin")
    with TestClient(app) as client:
        response = client.get("/ui/connections/hook_meta")
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

    # Every form field is an option the hook reads.
    assert set(extras) <= set(CONNECTION_EXTRAS)
    assert {"inlet_id", "ims_org_id", "sandbox_name", "auth", "access_token", "ims_url", "scopes"} <= set(extras)
    assert extras["inlet_id"]["schema"]["title"] == "Inlet ID"
    assert extras["access_token"]["schema"]["format"] == "password"
    assert extras["auth"]["schema"]["enum"] == ["oauth", "token", "none"]
    assert extras["sandbox_name"]["value"] == "prod"
    secret_fields = {name for name, field in extras.items() if field["schema"].get("format") == "password"}
    assert secret_fields == {"access_token"}


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
