"""Turn one Kafka record into one encoded AEP message, a skip, or a rejection with its reason."""

from __future__ import annotations

import importlib
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aep_provider.aep.results import MAX_REQUEST_BYTES, batch_body_size
from aep_provider.aep.xdm import XDMValidator
from aep_provider.engine.errors import DrainError
from aep_provider.engine.jsonvalue import check_object, decode_object
from aep_provider.engine.validation import SchemaValidators

XDM_CONTENT_TYPE = "application/vnd.adobe.xed-full+json;version=1"

#: Namespace of the deterministic XDM ``_id`` built from a record's Kafka coordinates.
_ID_NAMESPACE = uuid.UUID("5d0f3c1e-6a43-4d55-9a1e-8e0f7f3b2a10")


@dataclass(frozen=True)
class KafkaRecord:
    """One Kafka record as the engine and user payload callables see it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    timestamp_ms: int | None = None

    @classmethod
    def from_message(cls, msg: Any) -> KafkaRecord:
        """The record of a consumed ``confluent_kafka.Message``."""
        return cls(
            topic=msg.topic(),
            partition=msg.partition(),
            offset=msg.offset(),
            key=msg.key(),
            value=msg.value(),
            headers=list(msg.headers() or []),
            timestamp_ms=msg.timestamp()[1],
        )


def as_record(source: Any, tp: tuple[str, int], offset: int) -> KafkaRecord:
    """The record a queued entry came from (intake queues the consumed message itself, not a copy)."""
    if isinstance(source, KafkaRecord):
        return source
    if source is None:
        return KafkaRecord(tp[0], tp[1], offset, None, None, [])
    return KafkaRecord.from_message(source)


@dataclass(frozen=True)
class Shaped:
    """Result of shaping a record: exactly one of ``message``, ``skip`` or ``reject_reason`` is set."""

    message: bytes | None = None
    skip: bool = False
    reject_reason: str | None = None


PayloadFn = Callable[[KafkaRecord], "dict[str, Any] | None"]


def record_id(topic: str, partition: int, offset: int) -> str:
    """Deterministic XDM ``_id`` for a record, so a replayed record is deduplicated by AEP."""
    return str(uuid.uuid5(_ID_NAMESPACE, f"{topic}/{partition}/{offset}"))


def _encode(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


#: The largest message that fits a request alone; a larger one would be refused with 413 for the whole batch.
MAX_MESSAGE_BYTES = MAX_REQUEST_BYTES - batch_body_size(0, 1)


def _size_checked(message: bytes) -> bytes:
    if len(message) > MAX_MESSAGE_BYTES:
        raise ValueError(
            f"encoded message is {len(message):,} bytes; AEP accepts at most "
            f"{MAX_REQUEST_BYTES:,} bytes per request (10 KB per record is recommended)"
        )
    return message


class PayloadShaper:
    """Base: tombstones are skipped, everything else goes through :meth:`build`."""

    def shape(self, record: KafkaRecord) -> Shaped:
        if record.value is None:
            return Shaped(skip=True)
        try:
            return self.build(record)
        except ValueError as err:
            return Shaped(reject_reason=str(err))

    def build(self, record: KafkaRecord) -> Shaped:  # pragma: no cover - abstract
        raise NotImplementedError


class GuardedShaper:
    """
    Wraps any shaper so that whatever one record makes it raise becomes that record's rejection.

    Decoding, validating and shaping only look at one record: an exception there (a
    ``RecursionError`` from deep nesting, a bug in a custom shaper, anything a payload callable
    raises) concerns that record, so it goes to the DLQ / ``on_reject`` instead of stopping every
    run at the same offset (a poison pill).
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        # The built-in shapers need only the value and its coordinates: intake calls their
        # encode() directly and builds a KafkaRecord only for a record that is rejected. A
        # subclass may override build(), so only the exact classes qualify.
        self.encode: Callable[[str, int, int, bytes], bytes] | None = (
            inner.encode if type(inner) in (PassthroughShaper, XDMShaper) else None
        )

    def shape(self, record: KafkaRecord) -> Shaped:
        try:
            shaped = self.inner.shape(record)
        except DrainError:
            raise  # not this record's fault (a schema that cannot be read): the run fails
        except Exception as err:
            return Shaped(reject_reason=f"shaping the record raised {type(err).__name__}: {str(err)[:200]}")
        if not isinstance(shaped, Shaped):
            return Shaped(reject_reason=f"the shaper returned {type(shaped).__name__}, not Shaped")
        return shaped

    def __getattr__(self, name: str) -> Any:
        if name == "inner":  # not set yet (copy, pickle): never recurse
            raise AttributeError(name)
        return getattr(self.inner, name)


class PassthroughShaper(PayloadShaper):
    """
    The value already is a full AEP message (header + body): validated, then sent byte for byte.

    :param schemas: when given, each message's ``body.xdmEntity`` is also checked against the
        schema its ``header.schemaRef.id`` names (local XDM validation).
    """

    def __init__(self, schemas: SchemaValidators | None = None) -> None:
        self.schemas = schemas

    def encode(self, topic: str, partition: int, offset: int, value: bytes) -> bytes:
        """The message for a non-null value; ValueError says why the record is rejected."""
        if self.schemas is None:
            check_object(value)
        else:
            # Validation needs the objects: orjson builds them and applies the same strict rules.
            self.schemas.check_message(decode_object(value))
        # The validated original bytes join the batch body as is: no re-encoding cost.
        return _size_checked(value)

    def build(self, record: KafkaRecord) -> Shaped:
        assert record.value is not None
        return Shaped(message=self.encode(record.topic, record.partition, record.offset, record.value))


class XDMShaper(PayloadShaper):
    """
    The value is an XDM record: wrap it in the AEP envelope.

    :param schema_id: the XDM schema id (``https://ns.adobe.com/<tenant>/schemas/<id>``).
    :param dataset_id: target dataset id.
    :param ims_org_id: the IMS org (``...@AdobeOrg``); None lets the inlet fill it in.
    :param flow_id: dataflow id, if any.
    :param source_name: ``header.source.name``, if any.
    :param validator: when given, each record is checked against it (the dataset's schema).
    """

    def __init__(
        self,
        *,
        schema_id: str,
        dataset_id: str,
        ims_org_id: str | None = None,
        flow_id: str | None = None,
        source_name: str | None = None,
        validator: XDMValidator | None = None,
    ) -> None:
        if not schema_id or not dataset_id:
            raise ValueError("payload='xdm' needs schema_id and dataset_id")
        schema_ref = {"id": schema_id, "contentType": XDM_CONTENT_TYPE}
        header: dict[str, Any] = {"schemaRef": schema_ref, "datasetId": dataset_id}
        if ims_org_id:
            header["imsOrgId"] = ims_org_id
        if flow_id:
            header["flowId"] = flow_id
        if source_name:
            header["source"] = {"name": source_name}
        self._header = header
        self._schema_ref = schema_ref
        self.validator = validator
        # The envelope around the entity never changes: encoded once, so each record only costs
        # a parse (the validation) and a concatenation.
        self._prefix = (
            b'{"header":'
            + _encode(header)
            + b',"body":{"xdmMeta":{"schemaRef":'
            + _encode(schema_ref)
            + b'},"xdmEntity":'
        )

    def encode(self, topic: str, partition: int, offset: int, value: bytes) -> bytes:
        """The message for a non-null value; ValueError says why the record is rejected."""
        entity = decode_object(value)
        if self.validator is not None:
            self.validator.check(entity)
        if "_id" not in entity:
            # Insert the id right after the entity's opening brace (the first non-blank byte of a
            # valid object) instead of re-encoding it: the record's own bytes, numbers and
            # escapes included, reach AEP unchanged.
            start = value.index(b"{") + 1
            id_member = b'"_id":"' + record_id(topic, partition, offset).encode() + b'"'
            value = value[:start] + id_member + (b"," if entity else b"") + value[start:]
        return _size_checked(self._prefix + value + b"}}")

    def build(self, record: KafkaRecord) -> Shaped:
        assert record.value is not None
        return Shaped(message=self.encode(record.topic, record.partition, record.offset, record.value))


class CallableShaper(PayloadShaper):
    """``fn(record) -> dict | None`` builds the message; None skips the record."""

    def __init__(self, fn: PayloadFn) -> None:
        self._fn = fn

    def build(self, record: KafkaRecord) -> Shaped:
        try:
            message = self._fn(record)
        except Exception as err:  # user code: a failure concerns this record, routed like any rejection
            return Shaped(reject_reason=f"payload callable raised {type(err).__name__}: {err}")
        if message is None:
            return Shaped(skip=True)
        if not isinstance(message, dict):
            return Shaped(reject_reason=f"payload callable returned {type(message).__name__}, not a dict or None")
        try:
            encoded = _encode(message)
        except (TypeError, ValueError, RecursionError) as err:
            return Shaped(reject_reason=f"payload callable returned a dict that is not JSON-serialisable: {err}")
        return Shaped(message=_size_checked(encoded))  # too big: a ValueError, which shape() rejects


def import_callable(path: str) -> PayloadFn:
    """Import ``"package.module.function"`` (or ``"package.module:function"``); ValueError if impossible."""
    module_name, sep, attr = path.replace(":", ".").rpartition(".")
    if not sep or not module_name:
        raise ValueError(f"payload {path!r} is not 'passthrough', 'xdm' or a dotted path to a callable")
    try:
        fn = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"payload {path!r} cannot be imported: {err}") from None
    if not callable(fn):
        raise ValueError(f"payload {path!r} is not callable")
    return fn


def make_shaper(
    payload: str | PayloadFn,
    *,
    schema_id: str | None = None,
    dataset_id: str | None = None,
    ims_org_id: str | None = None,
    flow_id: str | None = None,
    source_name: str | None = None,
    schemas: SchemaValidators | None = None,
) -> PayloadShaper:
    """
    Build the shaper for the ``payload`` option.

    :param payload: ``"passthrough"``, ``"xdm"``, a callable, or a dotted path to one.
    :param schemas: local XDM validation (None: none). With ``"xdm"`` it must hold ``schema_id``;
        a payload callable's messages are not validated.
    """
    if callable(payload):
        return CallableShaper(payload)
    if payload == "passthrough":
        return PassthroughShaper(schemas)
    if payload == "xdm":
        return XDMShaper(
            schema_id=schema_id or "",
            dataset_id=dataset_id or "",
            ims_org_id=ims_org_id,
            flow_id=flow_id,
            source_name=source_name,
            validator=schemas.get(schema_id or "") if schemas is not None else None,
        )
    if isinstance(payload, str):
        return CallableShaper(import_callable(payload))
    raise ValueError(f"payload must be 'passthrough', 'xdm', a callable or a dotted path, got {payload!r}")
