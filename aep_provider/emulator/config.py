"""What the emulator accepts: credentials, inlets, token lifetime, failure shape, faults."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

#: Resolved schemas shipped with the emulator (the example DAG's ExperienceEvent).
SCHEMA_DIR = Path(__file__).resolve().parent / "schemas"

#: Fake credentials of the emulator's IMS: printing them is fine, they open nothing real.
DEFAULT_CLIENT_ID = "aep-emulator-client"
DEFAULT_CLIENT_SECRET = "aep-emulator-secret"
DEFAULT_IMS_ORG_ID = "0123456789ABCDEF01234567@AdobeOrg"
DEFAULT_INLET_ID = "emulator-inlet"
DEFAULT_SANDBOX = "prod"
#: What Adobe IMS hands out: a token valid for a day, in seconds.
DEFAULT_TOKEN_TTL_SECONDS = 86399
#: DCS refuses request bodies over this many bytes with 413.
MAX_BODY_BYTES = 1_000_000

#: The example DAG's dataset and its schema (``schemas/example-experience-event.json``).
EXAMPLE_DATASET_ID = "aep-provider-example-dataset"
EXAMPLE_SCHEMA_ID = "https://ns.adobe.com/aepprovider/schemas/example-experience-event"

FAILURE_SHAPES = ("documented", "live")
#: "any" means any of the inlet and token endpoints; Platform endpoints are faulted by name only.
PLATFORM_ENDPOINTS = ("catalog", "schemas", "export")
FAULT_ENDPOINTS = ("batch", "single", "token", "any", *PLATFORM_ENDPOINTS)


def example_schema() -> dict[str, Any]:
    """The example ExperienceEvent schema, resolved (``xed-full``), as the Schema Registry returns it."""
    return json.loads((SCHEMA_DIR / "example-experience-event.json").read_text(encoding="utf-8"))


class EmulatorConfigError(ValueError):
    """A configuration value is unusable; the message names the field and what is allowed."""


@dataclass(frozen=True)
class InletConfig:
    """
    One streaming inlet (a DCS streaming connection).

    :param inlet_id: the id in ``/collection/{inletId}``.
    :param authenticated: whether calls need ``Authorization: Bearer <IMS token>``, ``x-api-key``
        and ``x-gw-ims-org-id`` (an inlet created with authentication off needs none).
    :param sandbox_name: the sandbox the inlet lives in; a different ``x-sandbox-name`` is refused.
    :param ims_org_id: the org owning the inlet; defaults to the emulator's org.
    :param max_requests_per_second: answer 429 with ``Retry-After`` beyond this many requests in
        one second (``None``: no limit).
    :param max_messages_per_second: answer 429 with ``Retry-After`` to a request whose messages
        would make more than this many in the last second (a sliding window, like AEP's
        10,000 messages/s guardrail; ``None``: no limit). A request alone larger than the limit
        is admitted when the window is empty.
    :param sync_validation_supported: ``False`` answers ``?syncValidation=true`` with 501, as in
        regions without synchronous validation.
    :param schema_id: when set, messages whose ``header.schemaRef.id`` differs are rejected.
    """

    inlet_id: str = DEFAULT_INLET_ID
    authenticated: bool = True
    sandbox_name: str = DEFAULT_SANDBOX
    ims_org_id: str | None = None
    max_requests_per_second: float | None = None
    max_messages_per_second: float | None = None
    sync_validation_supported: bool = True
    schema_id: str | None = None

    def __post_init__(self) -> None:
        if not self.inlet_id or "/" in self.inlet_id:
            raise EmulatorConfigError(f"inlet_id must be a non-empty id without '/': {self.inlet_id!r}")
        if self.max_requests_per_second is not None and self.max_requests_per_second <= 0:
            raise EmulatorConfigError(
                f"max_requests_per_second of inlet {self.inlet_id!r} must be > 0 or null, "
                f"got {self.max_requests_per_second!r}"
            )
        if self.max_messages_per_second is not None and self.max_messages_per_second <= 0:
            raise EmulatorConfigError(
                f"max_messages_per_second of inlet {self.inlet_id!r} must be > 0 or null, "
                f"got {self.max_messages_per_second!r}"
            )


@dataclass(frozen=True)
class DatasetConfig:
    """
    One Catalog dataset.

    :param dataset_id: its id (``GET /data/foundation/catalog/dataSets/{id}``).
    :param schema_id: the ``$id`` of its schema (one of the config's ``schemas``).
    :param name: its display name.
    """

    dataset_id: str = EXAMPLE_DATASET_ID
    schema_id: str = EXAMPLE_SCHEMA_ID
    name: str = "aep-provider example events"

    def __post_init__(self) -> None:
        if not self.dataset_id or not self.schema_id:
            raise EmulatorConfigError(f"a dataset needs a dataset_id and a schema_id, got {self!r}")

    def catalog(self) -> dict[str, Any]:
        """The dataset as Catalog returns it (without the id key around it)."""
        return {
            "name": self.name,
            "schemaRef": {"id": self.schema_id, "contentType": "application/vnd.adobe.xed-full+json;version=1"},
            "tags": {"adobe/pqs/table": [self.dataset_id.replace("-", "_")]},
            "created": 1735689600000,
            "version": "1.0.0",
        }


@dataclass(frozen=True)
class EmulatorConfig:
    """
    Everything the emulator imitates.

    :param client_id: the only client id IMS accepts (also the expected ``x-api-key``).
    :param client_secret: the only client secret IMS accepts.
    :param ims_org_id: the org tokens belong to and inlets default to.
    :param required_scopes: scopes the token request's comma-separated ``scope`` must include.
    :param token_ttl_seconds: ``expires_in`` of issued tokens; they answer 401 once past it.
    :param inlets: the inlets served; any other inlet id is answered 404.
    :param failure_shape: per-message failure entries in a 207: ``"documented"``
        (``{"statusCode", "message"}``) or ``"live"`` (``{"xactionId", "status", "message"}``).
    :param auth_failure_status: 401 (default) or 403 for a missing/expired/revoked token.
    :param record_path: append every accepted message as one JSON line to this file.
    :param store_accepted: keep accepted messages in memory for :meth:`AEPEmulator.accepted`.
    :param schemas: resolved schemas the Schema Registry serves (``$id`` each); default: the example one.
    :param datasets: Catalog datasets; accepted messages of these (``header.datasetId``) are validated
        asynchronously against their schema and end in a success or failed batch.
    :param validation_delay_seconds: how long after a request is accepted its batch is validated.
    """

    client_id: str = DEFAULT_CLIENT_ID
    # Out of reprs: the default is fake, but a configured one may look like a real secret.
    client_secret: str = field(default=DEFAULT_CLIENT_SECRET, repr=False)
    ims_org_id: str = DEFAULT_IMS_ORG_ID
    required_scopes: tuple[str, ...] = ()
    token_ttl_seconds: int = DEFAULT_TOKEN_TTL_SECONDS
    inlets: tuple[InletConfig, ...] = (InletConfig(),)
    failure_shape: str = "documented"
    auth_failure_status: int = 401
    record_path: str | None = None
    store_accepted: bool = True
    schemas: tuple[dict[str, Any], ...] = field(default_factory=lambda: (example_schema(),))
    datasets: tuple[DatasetConfig, ...] = (DatasetConfig(),)
    validation_delay_seconds: float = 0.0

    def __post_init__(self) -> None:
        if self.failure_shape not in FAILURE_SHAPES:
            raise EmulatorConfigError(
                f"failure_shape must be one of {', '.join(FAILURE_SHAPES)}, got {self.failure_shape!r}"
            )
        if self.auth_failure_status not in (401, 403):
            raise EmulatorConfigError(f"auth_failure_status must be 401 or 403, got {self.auth_failure_status!r}")
        if (
            isinstance(self.token_ttl_seconds, bool)
            or not isinstance(self.token_ttl_seconds, int)
            or (self.token_ttl_seconds < 1)
        ):
            raise EmulatorConfigError(
                f"token_ttl_seconds must be a whole number of seconds >= 1, got {self.token_ttl_seconds!r}"
            )
        if not self.client_id or not self.client_secret:
            raise EmulatorConfigError("client_id and client_secret must not be empty")
        ids = [inlet.inlet_id for inlet in self.inlets]
        if len(set(ids)) != len(ids):
            raise EmulatorConfigError(f"inlet ids must be unique, got {ids}")
        schema_ids = set()
        for schema in self.schemas:
            if not isinstance(schema, dict) or not isinstance(schema.get("$id"), str):
                raise EmulatorConfigError("each of 'schemas' must be a resolved schema object with a '$id'")
            schema_ids.add(schema["$id"])
        for dataset in self.datasets:
            if dataset.schema_id not in schema_ids:
                raise EmulatorConfigError(
                    f"dataset {dataset.dataset_id!r} names schema {dataset.schema_id!r}, which is not among 'schemas'"
                )
        if not isinstance(self.validation_delay_seconds, (int, float)) or self.validation_delay_seconds < 0:
            raise EmulatorConfigError(
                f"validation_delay_seconds must be a number >= 0, got {self.validation_delay_seconds!r}"
            )

    def inlet(self, inlet_id: str) -> InletConfig | None:
        for inlet in self.inlets:
            if inlet.inlet_id == inlet_id:
                return inlet
        return None

    def inlet_org(self, inlet: InletConfig) -> str:
        return inlet.ims_org_id or self.ims_org_id

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EmulatorConfig:
        """Build from JSON-like data (the ``--config`` file); unknown keys are errors, not ignored."""
        if not isinstance(data, dict):
            raise EmulatorConfigError(f"config must be a JSON object, got {type(data).__name__}")
        data = dict(data)
        _reject_unknown(cls, data, "config")
        if "inlets" in data:
            data["inlets"] = _objects(data["inlets"], InletConfig, "inlets")
        if "schemas" in data:
            if not isinstance(data["schemas"], list):
                raise EmulatorConfigError("config 'schemas' must be a list of resolved schema objects")
            data["schemas"] = tuple(data["schemas"])
        if "datasets" in data:
            data["datasets"] = _objects(data["datasets"], DatasetConfig, "datasets")
        if "required_scopes" in data:
            scopes = data["required_scopes"]
            if isinstance(scopes, str):
                scopes = [s for s in scopes.split(",") if s]
            data["required_scopes"] = tuple(scopes)
        try:
            return cls(**data)
        except TypeError as err:  # a wrongly typed value that __post_init__ did not name
            raise EmulatorConfigError(f"config: {err}") from None

    @classmethod
    def from_file(cls, path: str | Path) -> EmulatorConfig:
        try:
            text = Path(path).read_text(encoding="utf-8")
        except OSError as err:
            raise EmulatorConfigError(f"cannot read config file {path}: {err.strerror}") from None
        try:
            data = json.loads(text)
        except json.JSONDecodeError as err:
            raise EmulatorConfigError(
                f"config file {path} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
            ) from None
        return cls.from_dict(data)


@dataclass
class Fault:
    """
    A misbehaviour for the next ``count`` requests to ``endpoint``.

    Faults are consulted in the order they were injected; the first one matching a request is
    used (and counted down). Effects combine: the delay comes first, then the connection drop,
    the status, or the per-message rejections.

    :param status: answer this HTTP status with the body AEP/IMS gives for it.
    :param count: how many matching requests it affects; ``None`` = until :meth:`reset`.
    :param endpoint: ``"batch"`` (default: the requests a drain makes; a token request never uses
        up a fault meant for them), ``"single"``, ``"token"`` or ``"any"``.
    :param retry_after: seconds for a ``Retry-After`` header.
    :param drop_connection: read the request, then close the connection without answering.
    :param delay_seconds: wait this long before answering.
    :param inlet_id: only requests to this inlet (``None``: all).
    :param reject_indexes: in a 207 batch, fail the messages at these positions.
    :param reject_if_contains: fail every message (batch or single) whose JSON contains this text.
    :param message_status: the status of those per-message failures.
    :param message: the text of those per-message failures.
    """

    status: int | None = None
    count: int | None = 1
    endpoint: str = "batch"
    retry_after: float | None = None
    drop_connection: bool = False
    delay_seconds: float = 0.0
    inlet_id: str | None = None
    reject_indexes: tuple[int, ...] = ()
    reject_if_contains: str | None = None
    message_status: int = 400
    message: str = "Message rejected by an injected emulator fault"

    def __post_init__(self) -> None:
        if self.endpoint not in FAULT_ENDPOINTS:
            raise EmulatorConfigError(
                f"Fault endpoint must be one of {', '.join(FAULT_ENDPOINTS)}, got {self.endpoint!r}"
            )
        if self.count is not None and self.count < 1:
            raise EmulatorConfigError(f"Fault count must be >= 1 or None (forever), got {self.count!r}")
        if self.status is not None and not 100 <= self.status <= 599:
            raise EmulatorConfigError(f"Fault status must be an HTTP status, got {self.status!r}")
        if self.delay_seconds < 0:
            raise EmulatorConfigError(f"Fault delay_seconds must be >= 0, got {self.delay_seconds!r}")
        self.reject_indexes = tuple(self.reject_indexes)

    def matches(self, endpoint: str, inlet_id: str | None) -> bool:
        if self.endpoint == "any":
            if endpoint in PLATFORM_ENDPOINTS:
                return False
        elif self.endpoint != endpoint:
            return False
        return self.inlet_id is None or self.inlet_id == inlet_id

    def to_dict(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["reject_indexes"] = list(self.reject_indexes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Fault:
        if not isinstance(data, dict):
            raise EmulatorConfigError(f"a fault must be a JSON object, got {type(data).__name__}")
        _reject_unknown(cls, data, "fault")
        try:
            return cls(**data)
        except TypeError as err:
            raise EmulatorConfigError(f"fault: {err}") from None


def _objects(raw: Any, cls: Any, what: str) -> tuple[Any, ...]:
    """A config list of objects (``inlets``, ``datasets``) as ``cls`` instances; unknown keys are errors."""
    if not isinstance(raw, list) or not all(isinstance(item, dict) for item in raw):
        raise EmulatorConfigError(f"config '{what}' must be a list of objects")
    for item in raw:
        _reject_unknown(cls, item, what.rstrip("s"))
    return tuple(cls(**item) for item in raw)


def _reject_unknown(cls: type, data: dict[str, Any], what: str) -> None:
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise EmulatorConfigError(f"unknown {what} key(s) {unknown}; known: {sorted(known)}")
