"""
Platform API reads: Catalog datasets and batches, the Schema Registry, failed rows (Data Access).

Read-only GETs on ``platform_url`` (default ``https://platform.adobe.io``) with the headers every
Platform API wants (``Authorization``, ``x-api-key``, ``x-gw-ims-org-id``, ``x-sandbox-name``),
through the same session, IMS token, retry driver and answer classification as the inlet
(:func:`~aep_provider.aep.transport.exchange`, :class:`~aep_provider.aep.retry.RetryDriver`).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import orjson
import requests

from aep_provider.aep.errors import AEPAuthError, AEPRequestError, AEPUnavailableError
from aep_provider.aep.ims import NoAuth, TokenProvider
from aep_provider.aep.retry import Action, Answer, Deadline, RetryDriver, RetryPolicy
from aep_provider.aep.transport import (
    DEFAULT_TIMEOUT,
    build_session,
    exchange,
    identity_headers,
    normalize_base_url,
    safe_url,
)

log = logging.getLogger(__name__)

DEFAULT_PLATFORM_URL = "https://platform.adobe.io"
#: The Schema Registry's resolved form: ``$ref``/``allOf`` expanded into one document.
XED_FULL = "application/vnd.adobe.xed-full+json; version=1"
CATALOG = "/data/foundation/catalog"
SCHEMA_REGISTRY = "/data/foundation/schemaregistry/tenant/schemas"
EXPORT = "/data/foundation/export"


@dataclass(frozen=True)
class Access:
    """What a call reads, for the error that says which permission or id is missing."""

    #: e.g. "the Schema Registry", "Catalog".
    service: str
    #: the permission of an Adobe Admin Console product profile that grants it.
    permission: str
    #: what the caller asked for, e.g. "schema https://ns.adobe.com/...".
    subject: str


SCHEMAS = "Schema Registry", "Data Modeling > View Schemas"
DATASETS = "Catalog", "Data Management > View Datasets"


class PlatformClient:
    """
    Reads from the Platform APIs of one org and sandbox. Thread-safe; no network until a call.

    :param platform_url: the Platform API host.
    :param auth: the token provider (shared with the inlet client: one token for both).
    :param client_id: sent as ``x-api-key``.
    :param ims_org_id: sent as ``x-gw-ims-org-id``.
    :param sandbox_name: sent lower-cased as ``x-sandbox-name``.
    :param timeout: (connect, read) seconds per request; also capped by the remaining deadline.
    :param retry: deadline and attempt limits of one call.
    :param session: HTTP session (shared with the inlet client: one pool, one proxy setting).
    """

    def __init__(
        self,
        *,
        platform_url: str = DEFAULT_PLATFORM_URL,
        auth: TokenProvider | None = None,
        client_id: str | None = None,
        ims_org_id: str | None = None,
        sandbox_name: str | None = "prod",
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        proxy: str | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = normalize_base_url(
            platform_url, what="Platform URL (platform_url)", default=DEFAULT_PLATFORM_URL
        )
        self.auth: TokenProvider = auth or NoAuth()
        self.client_id = client_id or None
        self.ims_org_id = ims_org_id or None
        self.sandbox_name = (sandbox_name or "prod").strip().lower()
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._session = session or build_session(pool_size=2, proxy=proxy)
        self._proxy = proxy
        self._clock = clock
        self._sleep = sleep
        #: GET requests made (for tests and logs: "fetched once per run").
        self.requests = 0

    def bounded(self, deadline_seconds: float) -> PlatformClient:
        """A copy (same session and token) whose calls each give up after ``deadline_seconds`` at most."""
        copy = object.__new__(PlatformClient)
        copy.__dict__.update(self.__dict__)
        copy.retry = dataclasses.replace(
            self.retry, deadline_seconds=min(self.retry.deadline_seconds, deadline_seconds)
        )
        return copy

    def __repr__(self) -> str:
        return f"PlatformClient(base_url={self.base_url!r}, auth={self.auth!r}, sandbox_name={self.sandbox_name!r})"

    # -- the calls ----------------------------------------------------------------------------

    def dataset(self, dataset_id: str) -> dict[str, Any]:
        """The Catalog dataset ``dataset_id`` (its ``schemaRef``, ``name``, ...)."""
        url = f"{self.base_url}{CATALOG}/dataSets/{quote(dataset_id, safe='')}"
        found = self.get_json(url, Access(*DATASETS, f"dataset {dataset_id!r}"))
        # Catalog answers an object keyed by id.
        entry = found.get(dataset_id) if isinstance(found, dict) else None
        if entry is None and isinstance(found, dict) and len(found) == 1:
            entry = next(iter(found.values()))
        if not isinstance(entry, dict):
            raise AEPRequestError(f"{url} answered without dataset {dataset_id!r}: check the dataset id.", url=url)
        return entry

    def dataset_schema_id(self, dataset_id: str) -> str:
        """The ``$id`` of the schema dataset ``dataset_id`` conforms to (``schemaRef.id``)."""
        ref = self.dataset(dataset_id).get("schemaRef")
        schema_id = ref.get("id") if isinstance(ref, dict) else None
        if not isinstance(schema_id, str) or not schema_id:
            raise AEPRequestError(
                f"Catalog dataset {dataset_id!r} has no schemaRef.id: it is not an XDM dataset, so there is no "
                "schema to validate against."
            )
        return schema_id

    def schema(self, schema_id: str) -> dict[str, Any]:
        """The resolved schema (``xed-full``) with ``$id`` (or ``meta:altId``) ``schema_id``."""
        url = f"{self.base_url}{SCHEMA_REGISTRY}/{quote(schema_id, safe='')}"
        found = self.get_json(url, Access(*SCHEMAS, f"schema {schema_id}"), accept=XED_FULL)
        if not isinstance(found, dict):
            raise AEPRequestError(f"{url} answered a schema that is not a JSON object.", url=url)
        return found

    def failed_batches(self, dataset_id: str, created_after_ms: int, *, limit: int = 100) -> list[dict[str, Any]]:
        """
        Catalog batches of ``dataset_id`` with status ``failed`` created after ``created_after_ms``,
        oldest first, at most ``limit``; each has its ``id`` added.
        """
        url = f"{self.base_url}{CATALOG}/batches"
        params = {
            "dataSet": dataset_id,
            "status": "failed",
            "createdAfter": str(int(created_after_ms)),
            "orderBy": "asc:created",
            "limit": str(limit),
        }
        found = self.get_json(url, Access(*DATASETS, f"the batches of dataset {dataset_id!r}"), params=params)
        if not isinstance(found, dict):
            return []
        batches = [{**batch, "id": batch_id} for batch_id, batch in found.items() if isinstance(batch, dict)]
        batches.sort(key=lambda b: (int(b.get("created") or 0), b["id"]))
        return batches

    def failed_files(self, batch_id: str) -> list[str]:
        """Names of the files holding a failed batch's rows (Data Access API), ``_SUCCESS`` markers left out."""
        url = f"{self.base_url}{EXPORT}/batches/{quote(batch_id, safe='')}/failed"
        found = self.get_json(url, Access(*DATASETS, f"the failed rows of batch {batch_id}"))
        files = found.get("data") if isinstance(found, dict) else None
        return [
            str(f["name"])
            for f in files or []
            if isinstance(f, dict) and f.get("name") and not str(f["name"]).startswith("_")
        ]

    def failed_rows(self, batch_id: str, path: str, *, limit: int) -> list[dict[str, Any]]:
        """The first ``limit`` rows of one failed file: JSON lines (or one JSON document), each with ``_validationErrors``."""
        url = f"{self.base_url}{EXPORT}/batches/{quote(batch_id, safe='')}/failed"
        body = self.get(url, Access(*DATASETS, f"the failed rows of batch {batch_id}"), params={"path": path})
        rows: list[dict[str, Any]] = []
        try:
            whole = orjson.loads(body)
        except ValueError:
            for line in body.splitlines():
                if len(rows) >= limit:
                    break
                try:
                    row = orjson.loads(line)
                except ValueError:
                    continue
                if isinstance(row, dict):
                    rows.append(row)
            return rows
        items = whole if isinstance(whole, list) else [whole]
        return [r for r in items if isinstance(r, dict)][:limit]

    # -- plumbing -----------------------------------------------------------------------------

    def get_json(
        self, url: str, access: Access, *, params: Mapping[str, str] | None = None, accept: str = "application/json"
    ) -> Any:
        """GET ``url`` and decode its JSON body."""
        body = self.get(url, access, params=params, accept=accept)
        try:
            return orjson.loads(body)
        except ValueError:
            raise AEPRequestError(
                f"{safe_url(url)} answered a body that is not JSON: check the Platform URL (platform_url).", url=url
            ) from None

    def get(
        self, url: str, access: Access, *, params: Mapping[str, str] | None = None, accept: str = "application/json"
    ) -> bytes:
        """
        GET ``url`` with retries (429/5xx/network errors) and one token renewal (401/403).

        :raises AEPAuthError: 401/403 after renewal: the message names the permission ``access`` needs.
        :raises AEPRequestError: a final answer (404 names what was not found; ``status`` is set).
        :raises AEPUnavailableError: still failing when the retry budget ran out.
        """
        driver = RetryDriver(self.retry, clock=self._clock, sleep=self._sleep)
        tokens: list[str | None] = []

        def attempt(deadline: Deadline) -> Answer[requests.Response]:
            token = self.auth.get_token(deadline)
            tokens.append(token)
            self.requests += 1
            answer = exchange(
                self._session,
                "GET",
                url,
                deadline=deadline,
                timeout=self.timeout,
                headers=self._headers(token, accept),
                params=params,
                secrets=[token, self._proxy],
                what="Platform URL (platform_url)",
            )
            if answer.action is Action.RETRY:
                log.warning("GET %s: %s (attempt %d)", url, answer.detail, driver.budget.attempts)
            return answer

        def renew() -> None:
            log.warning("GET %s: refused; renewing the access token and retrying once", url)
            self.auth.invalidate(tokens[-1] if tokens else None)

        final = driver.run(attempt, renew=renew if self.auth.renewable else None)
        if final.action is Action.SUCCESS and final.value is not None:
            return final.value.content
        where = safe_url(url)
        if final.action is Action.RENEW_TOKEN:
            raise AEPAuthError(
                f"{where} answered {final.detail}: the credential may not read {access.subject} from "
                f"{access.service} in sandbox {self.sandbox_name!r}. Grant its product profile the permission "
                f"'{access.permission}' (Adobe Admin Console), and check the IMS org id and sandbox name."
            )
        if final.action is Action.DONT_RETRY:
            status = final.status or 0
            if status == 404:
                text = (
                    f"{access.service} has no {access.subject} in sandbox {self.sandbox_name!r} of org "
                    f"{self.ims_org_id or '(no ims_org_id)'} ({where} answered {final.detail}): check the id."
                )
            else:
                text = f"{where} refused the request with {final.detail}."
            raise AEPRequestError(text, status=status, url=where)
        budget = driver.budget
        raise AEPUnavailableError(
            f"{where} kept failing: {budget.attempts} attempt(s) in {budget.deadline.elapsed():.1f}s; last: "
            f"{final.detail}. Check that the Platform URL is reachable from this worker; the run can be retried."
        )

    def _headers(self, token: str | None, accept: str) -> dict[str, str]:
        headers = {"Accept": accept}
        headers.update(
            identity_headers(
                token, client_id=self.client_id, ims_org_id=self.ims_org_id, sandbox_name=self.sandbox_name
            )
        )
        return headers
