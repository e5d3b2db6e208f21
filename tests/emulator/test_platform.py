"""The emulator's Catalog, Schema Registry and Data Access endpoints, and its asynchronous validation."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest
import requests

from aep_provider.emulator import AEPEmulator, EmulatorConfig, EmulatorConfigError, RemoteEmulator
from aep_provider.emulator.config import EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID, DatasetConfig, example_schema
from tests.emulator.conftest import TIMEOUT, Inlet, auth_headers

pytestmark = pytest.mark.integration

XED_FULL = "application/vnd.adobe.xed-full+json; version=1"
REF = {"id": EXAMPLE_SCHEMA_ID, "contentType": "application/vnd.adobe.xed-full+json;version=1"}


def event(**entity) -> dict:
    record = {"_id": "e", "timestamp": "2026-12-05T10:00:00Z", **entity}
    return {
        "header": {"schemaRef": REF, "datasetId": EXAMPLE_DATASET_ID},
        "body": {"xdmMeta": {"schemaRef": REF}, "xdmEntity": record},
    }


def get(url: str, where: str, headers: dict, **params) -> requests.Response:
    return requests.get(f"{url}{where}", headers=headers, params=params, timeout=TIMEOUT)


def test_catalog_dataset_and_resolved_schema(aep_emulator):
    headers = auth_headers(aep_emulator.url)
    answer = get(aep_emulator.url, f"/data/foundation/catalog/dataSets/{EXAMPLE_DATASET_ID}", headers)
    assert answer.status_code == 200 and answer.json()[EXAMPLE_DATASET_ID]["schemaRef"]["id"] == EXAMPLE_SCHEMA_ID
    path = f"/data/foundation/schemaregistry/tenant/schemas/{quote(EXAMPLE_SCHEMA_ID, safe='')}"
    assert get(aep_emulator.url, path, {**headers, "Accept": XED_FULL}).json()["$id"] == EXAMPLE_SCHEMA_ID
    # By meta:altId too, as the Schema Registry allows.
    alt = "/data/foundation/schemaregistry/tenant/schemas/_aepprovider.schemas.example-experience-event"
    assert get(aep_emulator.url, alt, {**headers, "Accept": XED_FULL}).status_code == 200
    # Without a version in Accept the registry refuses (406).
    assert get(aep_emulator.url, path, {**headers, "Accept": "application/json"}).status_code == 406


@pytest.mark.parametrize(
    ("change", "status"),
    [({"Authorization": ""}, 401), ({"x-api-key": "other"}, 403), ({"x-gw-ims-org-id": "X@AdobeOrg"}, 403),
     ({"x-sandbox-name": "dev"}, 403)],
)  # fmt: skip
def test_platform_calls_need_the_four_headers(aep_emulator, change, status):
    headers = {**auth_headers(aep_emulator.url), **change}
    assert (
        get(aep_emulator.url, f"/data/foundation/catalog/dataSets/{EXAMPLE_DATASET_ID}", headers).status_code == status
    )


def test_unknown_ids_are_404(aep_emulator):
    headers = {**auth_headers(aep_emulator.url), "Accept": XED_FULL}
    assert get(aep_emulator.url, "/data/foundation/catalog/dataSets/nope", headers).status_code == 404
    assert get(aep_emulator.url, "/data/foundation/schemaregistry/tenant/schemas/nope", headers).status_code == 404
    assert get(aep_emulator.url, "/data/foundation/export/batches/nope/failed", headers).status_code == 404


def test_accepted_messages_are_validated_asynchronously_into_success_and_failed_batches(make_aep_emulator):
    emulator = make_aep_emulator(validation_delay_seconds=0.3)
    inlet = Inlet(emulator.url)
    answer = inlet.batch([event(), event(_aepprovider={"channel": "phone"}), event(extra=1)]).json()
    # Accepted at once, like AEP: the inlet answers before the schema is checked.
    assert all("xactionId" in r for r in answer["responses"])
    assert list(emulator.batches().values())[0]["status"] == "processing"
    assert emulator.wait_validated(10)
    (batch,) = emulator.batches(status="failed").values()
    assert batch["metrics"] == {"inputRecordCount": 3, "recordCount": 1, "failedRecordCount": 2}
    assert batch["errors"][0]["code"] == "INGEST-1212-400" and batch["errors"][0]["recordCount"] == 2
    stats = emulator.stats()
    assert (stats["messages_accepted"], stats["records_ingested"], stats["records_failed"]) == (3, 1, 2)
    inlet.batch([event()])
    assert emulator.wait_validated(10)
    assert len(emulator.batches(status="success")) == 1


def test_failed_rows_through_the_data_access_api(aep_emulator):
    Inlet(aep_emulator.url).batch([event(timestamp="2026-00-10T22:07:56Z")])
    assert aep_emulator.wait_validated(10)
    headers = auth_headers(aep_emulator.url)
    params = {"dataSet": EXAMPLE_DATASET_ID, "status": "failed", "createdAfter": "0"}
    (batch_id,) = get(aep_emulator.url, "/data/foundation/catalog/batches", headers, **params).json()
    listing = get(aep_emulator.url, f"/data/foundation/export/batches/{batch_id}/failed", headers).json()
    name = [f["name"] for f in listing["data"] if not f["name"].startswith("_")][0]
    rows = get(aep_emulator.url, f"/data/foundation/export/batches/{batch_id}/failed", headers, path=name).text
    (row,) = [json.loads(line) for line in rows.splitlines()]
    assert row["_validationErrors"][0]["pointerToViolation"] == "#/timestamp"
    assert row["_validationErrors"][0]["keyword"] == "format"


def test_catalog_filters_by_creation_time_and_status(aep_emulator):
    inlet = Inlet(aep_emulator.url)
    inlet.batch([event(extra=1)])
    assert aep_emulator.wait_validated(10)
    (first,) = aep_emulator.batches(status="failed").values()
    headers = auth_headers(aep_emulator.url)
    later = {"dataSet": EXAMPLE_DATASET_ID, "status": "failed", "createdAfter": str(first["created"])}
    assert get(aep_emulator.url, "/data/foundation/catalog/batches", headers, **later).json() == {}


def test_messages_of_unknown_datasets_are_not_validated(aep_emulator):
    message = event(extra=1)
    message["header"]["datasetId"] = "elsewhere"
    message["header"]["schemaRef"] = message["body"]["xdmMeta"]["schemaRef"] = {
        **REF,
        "id": "https://ns.adobe.com/x/schemas/y",
    }
    Inlet(aep_emulator.url).batch([message])
    assert aep_emulator.wait_validated(10) and aep_emulator.batches() == {}


def test_remote_inspection_waits_for_validation(aep_emulator):
    Inlet(aep_emulator.url).batch([event(extra=1)])
    remote = RemoteEmulator(aep_emulator.url)
    try:
        assert len(remote.batches(status="failed", wait=10)) == 1
    finally:
        remote.close()


def test_reset_forgets_batches(aep_emulator):
    Inlet(aep_emulator.url).batch([event(extra=1)])
    assert aep_emulator.wait_validated(10)
    aep_emulator.reset()
    assert aep_emulator.batches() == {} and aep_emulator.stats()["batches_failed"] == 0


def test_schemas_and_datasets_from_the_json_config():
    schema = {**example_schema(), "$id": "https://ns.adobe.com/t/schemas/other"}
    config = EmulatorConfig.from_dict(
        {"schemas": [schema], "datasets": [{"dataset_id": "ds-2", "schema_id": schema["$id"], "name": "other"}]}
    )
    assert config.datasets == (DatasetConfig("ds-2", schema["$id"], "other"),)
    with AEPEmulator(config) as emulator:
        headers = auth_headers(emulator.url)
        found = get(emulator.url, "/data/foundation/catalog/dataSets/ds-2", headers).json()
        assert found["ds-2"]["schemaRef"]["id"] == schema["$id"]


@pytest.mark.parametrize(
    ("data", "match"),
    [({"datasets": [{"dataset_id": "d", "schema_id": "https://nowhere"}]}, "not among 'schemas'"),
     ({"schemas": [{"title": "no id"}]}, "with a '\\$id'"),
     ({"datasets": [{"dataset_id": "d", "schema": "x"}]}, "unknown dataset key"),
     ({"validation_delay_seconds": -1}, "validation_delay_seconds")],
)  # fmt: skip
def test_bad_schema_config_is_one_clear_error(data, match):
    with pytest.raises(EmulatorConfigError, match=match):
        EmulatorConfig.from_dict(data)
