"""
The emulator's Platform API reads: Catalog datasets and batches, the Schema Registry, failed rows.

``route(...)`` answers one ``GET /data/foundation/...`` request as ``(status, body)``; a body that
is ``bytes`` is sent as is (a failed-rows file is JSON lines), anything else as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote

from aep_provider.emulator.config import EmulatorConfig
from aep_provider.emulator.datalake import DataLake

CATALOG_DATASETS = "/data/foundation/catalog/dataSets/"
CATALOG_BATCHES = "/data/foundation/catalog/batches"
SCHEMAS = "/data/foundation/schemaregistry/tenant/schemas/"
EXPORT_BATCHES = "/data/foundation/export/batches/"
PREFIX = "/data/foundation/"


def endpoint_of(path: str) -> str | None:
    """Which Platform endpoint (a fault's ``endpoint``) a path belongs to, or None."""
    if path.startswith("/data/foundation/catalog/"):
        return "catalog"
    if path.startswith(SCHEMAS):
        return "schemas"
    if path.startswith(EXPORT_BATCHES):
        return "export"
    return None


def problem(status: int, title: str, message: str) -> dict[str, Any]:
    """The problem body the Platform APIs answer with."""
    return {
        "type": f"http://ns.adobe.com/aep/errors/EMU-{status}",
        "title": title,
        "status": status,
        "report": {"message": message},
    }


def check_headers(headers: Any, config: EmulatorConfig, token_valid: Any) -> tuple[int, Any] | None:
    """
    ``(status, body)`` refusing a Platform call on its headers, or None: the API gateway's checks.

    :param headers: the request's headers (an ``http.client.HTTPMessage``: case-insensitive ``get``).
    """
    scheme, _, token = headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or not token_valid(token.strip()):
        return 401, {"error_code": "401013", "message": "Oauth token is not valid"}
    if headers.get("x-api-key") != config.client_id:
        return 403, {"error_code": "403003", "message": "Api Key is invalid"}
    if headers.get("x-gw-ims-org-id") != config.ims_org_id:
        return 403, {"error_code": "403025", "message": "Profile is not valid"}
    sandboxes = {inlet.sandbox_name for inlet in config.inlets} or {"prod"}
    if headers.get("x-sandbox-name") not in sandboxes:
        return 403, problem(403, "Forbidden", f"sandbox {headers.get('x-sandbox-name')!r} is not accessible")
    return None


def route(path: str, params: Mapping[str, str], headers: Any, lake: DataLake) -> tuple[int, Any]:
    """Answer ``GET path`` (headers already checked)."""
    if path.startswith(CATALOG_DATASETS):
        dataset_id = unquote(path[len(CATALOG_DATASETS) :])
        dataset = lake.dataset(dataset_id)
        if dataset is None:
            return 404, problem(404, "Not Found", f"dataSet {dataset_id} not found")
        return 200, {dataset_id: dataset.catalog()}
    if path == CATALOG_BATCHES:
        try:
            created_after = int(params["createdAfter"]) if "createdAfter" in params else None
            limit = int(params.get("limit", "100"))
        except ValueError:
            return 400, problem(400, "Bad Request", "createdAfter and limit must be integers")
        return 200, lake.batches(
            dataset_id=params.get("dataSet"),
            status=params.get("status"),
            created_after=created_after,
            limit=max(1, min(limit, 100)),
            newest_first=params.get("orderBy", "").startswith("desc"),
        )
    if path.startswith(SCHEMAS):
        accept = headers.get("Accept", "")
        if "application/vnd.adobe.xed" not in accept or "version=" not in accept:
            return 406, problem(
                406,
                "Not Acceptable",
                "Accept must name a format and a version, e.g. application/vnd.adobe.xed-full+json; version=1",
            )
        schema_id = unquote(path[len(SCHEMAS) :])
        schema = lake.schema(schema_id)
        if schema is None:
            return 404, problem(404, "Not Found", f"schema {schema_id} not found")
        return 200, schema
    if path.startswith(EXPORT_BATCHES) and path.endswith("/failed"):
        batch_id = unquote(path[len(EXPORT_BATCHES) : -len("/failed")])
        rows = lake.failed_rows(batch_id)
        if rows is None:
            return 404, problem(404, "Not Found", f"batch {batch_id} not found")
        name = "part-00000-failed.json"
        if "path" in params:
            if params["path"] != name or not rows:
                return 404, problem(404, "Not Found", f"file {params['path']} not found in batch {batch_id}")
            return 200, "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows).encode()
        files: list[dict[str, Any]] = [{"name": "_SUCCESS", "length": "0"}]
        if rows:
            files.append({"name": name, "length": str(sum(len(json.dumps(r)) + 1 for r in rows))})
        for f in files:
            f["_links"] = {"self": {"href": f"{EXPORT_BATCHES}{batch_id}/failed?path={f['name']}"}}
        return 200, {"data": files, "_page": {"limit": 100, "count": len(files)}}
    return 404, problem(404, "Not Found", f"No such endpoint: {path}")
