"""
Local XDM validation during shaping: each record is checked against its schema before it is batched.

:class:`SchemaValidators` holds the run's compiled validators, one per schema ``$id``, each
fetched from the Schema Registry and compiled once per run (:class:`SchemaSource` does the
fetching, through any client with ``schema(id)`` and ``dataset_schema_id(dataset_id)``: the
Platform client). A record that breaks its schema is rejected like any other rejection (its
reason names path, rule and type, never the value); a schema that cannot be read fails the run
(:class:`ValidationSetupError`), except a schema id named by one passthrough message that the
Schema Registry does not have, which rejects that record (AEP would fail it too).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any, Protocol

from aep_provider.aep.errors import AEPError, AEPRequestError, AEPUnavailableError
from aep_provider.aep.xdm import XDMSchemaError, XDMValidator, XDMViolation
from aep_provider.engine.errors import DrainError

log = logging.getLogger(__name__)

#: How a run's messages tell the user to send without validating.
TURN_OFF = "or set validate_xdm=False to send without local validation (AEP still validates, asynchronously)"


class ValidationSetupError(DrainError):
    """The schema to validate against cannot be read or used: the run fails before sending anything more."""

    retryable = False


class SchemaReader(Protocol):
    """What :class:`SchemaSource` needs: :class:`~aep_provider.aep.platform.PlatformClient` has it."""

    def schema(self, schema_id: str) -> dict[str, Any]: ...

    def dataset_schema_id(self, dataset_id: str) -> str: ...


class SchemaSource:
    """
    Fetches and compiles schemas from the Schema Registry (through ``reader``), logging each one's ``$id`` and version.

    :param reader: the Platform client.
    """

    def __init__(self, reader: SchemaReader) -> None:
        self.reader = reader
        #: Schema Registry reads made (a schema is read once per run).
        self.fetched: list[str] = []

    def dataset_schema(self, dataset_id: str, schema_id: str | None = None) -> XDMValidator:
        """
        The compiled schema of Catalog dataset ``dataset_id``.

        :param schema_id: the schema the messages name (``payload="xdm"``'s ``schema_id``); one
            that is not the dataset's fails the run (AEP would fail every record).
        :raises ValidationSetupError: the dataset or its schema cannot be read or used.
        """
        try:
            found = self.reader.dataset_schema_id(dataset_id)
        except AEPError as err:
            raise _setup_error(err, f"reading Catalog dataset {dataset_id!r}") from None
        if schema_id and found != schema_id:
            raise ValidationSetupError(
                f"Catalog dataset {dataset_id!r} conforms to schema {found}, but schema_id is {schema_id}: AEP "
                f"would fail every record. Set schema_id={found!r} (or the dataset id of that schema), {TURN_OFF}."
            )
        return self.schema(found)

    def schema(self, schema_id: str) -> XDMValidator:
        """
        The compiled schema ``schema_id``.

        :raises AEPRequestError: 404, the Schema Registry has no such schema (the caller decides).
        :raises ValidationSetupError: any other reason it cannot be read or used.
        """
        self.fetched.append(schema_id)
        try:
            document = self.reader.schema(schema_id)
        except AEPRequestError as err:
            if err.status == 404:
                raise
            raise _setup_error(err, f"reading schema {schema_id}") from None
        except AEPError as err:
            raise _setup_error(err, f"reading schema {schema_id}") from None
        try:
            validator = XDMValidator(document)
        except XDMSchemaError as err:
            raise ValidationSetupError(f"{err}; fix the schema, {TURN_OFF}.") from None
        log.info(
            "Validating records against XDM schema %s version %s (%s) before sending",
            validator.schema_id or schema_id,
            validator.version or "?",
            validator.title or "untitled",
        )
        return validator


def _setup_error(err: AEPError, doing: str) -> ValidationSetupError:
    failure = ValidationSetupError(
        f"Local XDM validation needs the schema, but {doing} failed: {err} Fix that, {TURN_OFF}."
    )
    # An outage may pass; a refused permission or a wrong id needs someone to fix it.
    failure.retryable = isinstance(err, AEPUnavailableError)
    return failure


class SchemaValidators:
    """
    The run's validators by schema ``$id``: each fetched and compiled once, on first use.

    :param load: fetches and compiles one schema (:meth:`SchemaSource.schema`).
    :param preloaded: validators already built (the dataset's schema, read when the run starts).
    """

    def __init__(self, load: Callable[[str], XDMValidator], preloaded: dict[str, XDMValidator] | None = None) -> None:
        self._load = load
        self._lock = threading.Lock()
        #: schema id -> its validator, the reason records naming it are rejected, or why the run fails.
        self._by_id: dict[str, XDMValidator | str | ValidationSetupError] = dict(preloaded or {})

    def schemas(self) -> list[dict[str, str]]:
        """The schemas this run validated against: ``[{"id", "version"}]`` (for the run summary)."""
        return [{"id": v.schema_id, "version": v.version} for v in self._by_id.values() if isinstance(v, XDMValidator)]

    def get(self, schema_id: str) -> XDMValidator:
        """The validator of ``schema_id``; raises :class:`XDMViolation` when the Schema Registry has no such schema."""
        found = self._by_id.get(schema_id)
        if found is None:
            with self._lock:
                found = self._by_id.get(schema_id)
                if found is None:
                    try:
                        found = self._load(schema_id)
                    except AEPRequestError as err:  # 404: this message's schemaRef names no schema
                        found = (
                            f"/header/schemaRef/id: schema {schema_id} is not in the Schema Registry (HTTP "
                            f"{err.status}); AEP would fail the record (XDM schemaRef)"
                        )
                    except ValidationSetupError as err:  # read once: asking again would not help
                        found = err
                    self._by_id[schema_id] = found
        if isinstance(found, str):
            raise XDMViolation(found)
        if isinstance(found, ValidationSetupError):
            raise found
        return found

    def check_message(self, message: dict[str, Any]) -> None:
        """
        Validate a passthrough message's ``body.xdmEntity`` against its ``header.schemaRef.id``.

        A message without a schema reference or an entity is left to AEP (it refuses the envelope).

        :raises XDMViolation: the entity breaks its schema, or names a schema that does not exist.
        :raises ValidationSetupError: the schema cannot be read (the run fails).
        """
        header = message.get("header")
        ref = header.get("schemaRef") if isinstance(header, dict) else None
        schema_id = ref.get("id") if isinstance(ref, dict) else None
        body = message.get("body")
        entity = body.get("xdmEntity") if isinstance(body, dict) else None
        if not isinstance(schema_id, str) or not schema_id or not isinstance(entity, dict):
            return
        self.get(schema_id).check(entity)
