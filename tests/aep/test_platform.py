"""PlatformClient against the emulator: Catalog, Schema Registry, failed rows; errors name the permission or id."""

from __future__ import annotations

import json
import logging

import pytest

from aep_provider.aep.errors import AEPAuthError, AEPConfigError, AEPRequestError, AEPUnavailableError
from aep_provider.aep.platform import XED_FULL
from aep_provider.emulator import DEFAULT_CLIENT_SECRET, DEFAULT_IMS_ORG_ID, Fault
from aep_provider.emulator.config import EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID
from scripts.sample_events import sample_event
from tests.aep.support import client_for, platform_for, settings_for

pytestmark = pytest.mark.integration


def test_dataset_schema_is_resolved_through_catalog_then_the_registry(aep_emulator):
    client = platform_for(aep_emulator.url)
    schema_id = client.dataset_schema_id(EXAMPLE_DATASET_ID)
    schema = client.schema(schema_id)
    assert schema_id == EXAMPLE_SCHEMA_ID and schema["$id"] == EXAMPLE_SCHEMA_ID
    assert schema["meta:tenantNamespace"] == "_aepprovider" and schema["version"]
    stats = aep_emulator.stats()["requests"]
    assert stats["catalog"] == {"200": 1} and stats["schemas"] == {"200": 1}


def test_the_registry_is_asked_for_the_resolved_form_with_the_four_headers(aep_emulator, monkeypatch):
    client = platform_for(aep_emulator.url)
    seen: list[dict] = []
    send = client._session.request

    def spy(method, url, **kwargs):
        seen.append(kwargs["headers"])
        return send(method, url, **kwargs)

    monkeypatch.setattr(client._session, "request", spy)
    client.schema(EXAMPLE_SCHEMA_ID)
    headers = seen[-1]
    assert headers["Accept"] == XED_FULL
    assert headers["Authorization"].startswith("Bearer ")
    assert (
        headers["x-api-key"]
        and headers["x-gw-ims-org-id"] == DEFAULT_IMS_ORG_ID
        and headers["x-sandbox-name"] == "prod"
    )


def test_a_403_names_the_permission_and_never_the_secret(aep_emulator):
    aep_emulator.inject(Fault(status=403, endpoint="schemas", count=None))
    client = platform_for(aep_emulator.url)
    with pytest.raises(AEPAuthError) as info:
        client.schema(EXAMPLE_SCHEMA_ID)
    text = str(info.value)
    assert "Data Modeling > View Schemas" in text and EXAMPLE_SCHEMA_ID in text and "sandbox 'prod'" in text
    assert DEFAULT_CLIENT_SECRET not in text
    # A 403 is worth one token renewal, then it is final.
    assert aep_emulator.stats()["requests"]["schemas"] == {"403": 2}


def test_a_catalog_403_names_the_datasets_permission(aep_emulator):
    aep_emulator.inject(Fault(status=403, endpoint="catalog", count=None))
    with pytest.raises(AEPAuthError) as info:
        platform_for(aep_emulator.url).dataset(EXAMPLE_DATASET_ID)
    assert "Data Management > View Datasets" in str(info.value) and f"dataset {EXAMPLE_DATASET_ID!r}" in str(info.value)


@pytest.mark.parametrize(
    ("call", "arg", "named"),
    [("schema", "https://ns.adobe.com/aepprovider/schemas/nope", "schema https://ns.adobe.com/aepprovider/schemas/nope"),
     ("dataset", "no-such-dataset", "dataset 'no-such-dataset'")],
)  # fmt: skip
def test_a_404_names_what_is_missing(aep_emulator, call, arg, named):
    with pytest.raises(AEPRequestError) as info:
        getattr(platform_for(aep_emulator.url), call)(arg)
    assert info.value.status == 404 and named in str(info.value) and "check the id" in str(info.value)


def test_server_trouble_is_retried_then_succeeds(aep_emulator):
    aep_emulator.inject(Fault(status=503, endpoint="schemas", count=2, retry_after=0))
    assert platform_for(aep_emulator.url).schema(EXAMPLE_SCHEMA_ID)["$id"] == EXAMPLE_SCHEMA_ID
    assert aep_emulator.stats()["requests"]["schemas"] == {"503": 2, "200": 1}


def test_server_trouble_past_the_budget_is_unavailable(aep_emulator):
    aep_emulator.inject(Fault(status=502, endpoint="catalog", count=None))
    with pytest.raises(AEPUnavailableError, match="kept failing"):
        platform_for(aep_emulator.url, max_attempts=2).dataset(EXAMPLE_DATASET_ID)


def test_an_expired_token_is_renewed_once(aep_emulator, caplog):
    client = platform_for(aep_emulator.url)
    client.dataset(EXAMPLE_DATASET_ID)
    aep_emulator.revoke_tokens()
    with caplog.at_level(logging.WARNING):
        assert client.dataset_schema_id(EXAMPLE_DATASET_ID) == EXAMPLE_SCHEMA_ID
    assert aep_emulator.stats()["tokens_issued"] == 2


def test_the_platform_url_is_checked_like_the_others():
    with pytest.raises(AEPConfigError, match="platform_url"):
        settings_for("http://127.0.0.1:1", platform_url="ftp://example")


def test_failed_batches_files_and_rows_after_asynchronous_validation(aep_emulator):
    inlet = client_for(aep_emulator.url)
    messages = []
    for seq in range(6):
        message = sample_event(
            seq, schema_id=EXAMPLE_SCHEMA_ID, dataset_id=EXAMPLE_DATASET_ID, ims_org_id=DEFAULT_IMS_ORG_ID
        )
        if seq in (1, 4):
            message["body"]["xdmEntity"]["timestamp"] = "2026-13-40T00:00:00Z"
        messages.append(json.dumps(message).encode())
    assert inlet.send_batch(messages).accepted == 6  # the inlet checks the envelope only
    assert aep_emulator.wait_validated(10)
    client = platform_for(aep_emulator.url)
    batches = client.failed_batches(EXAMPLE_DATASET_ID, 0)
    assert len(batches) == 1 and batches[0]["metrics"]["failedRecordCount"] == 2
    assert batches[0]["errors"][0]["recordCount"] == 2
    assert client.failed_batches(EXAMPLE_DATASET_ID, batches[0]["created"]) == []
    files = client.failed_files(batches[0]["id"])
    assert files and all(not f.startswith("_") for f in files)
    rows = client.failed_rows(batches[0]["id"], files[0], limit=10)
    assert [r["_validationErrors"][0]["pointerToViolation"] for r in rows] == ["#/timestamp", "#/timestamp"]
    assert client.failed_rows(batches[0]["id"], files[0], limit=1)[0]["_validationErrors"][0]["keyword"] == "format"


def test_a_bounded_copy_gives_up_sooner_and_shares_the_token(aep_emulator):
    client = platform_for(
        aep_emulator.url, retry_deadline_seconds=30, max_attempts=50, backoff_base_seconds=0.5, backoff_max_seconds=0.5
    )
    bounded = client.bounded(1.0)
    assert (bounded.retry.deadline_seconds, client.retry.deadline_seconds) == (1.0, 30.0)
    assert bounded.auth is client.auth and bounded._session is client._session
    aep_emulator.inject(Fault(status=503, endpoint="catalog", count=None))
    with pytest.raises(AEPUnavailableError):
        bounded.dataset(EXAMPLE_DATASET_ID)
    assert aep_emulator.stats()["requests"]["catalog"]["503"] < 20  # not the 50 attempts of the unbounded client
