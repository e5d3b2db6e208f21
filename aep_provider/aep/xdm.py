"""
AEP's XDM rules as a compiled validator: a dataset's resolved schema checks each record locally.

The Schema Registry's resolved form (``application/vnd.adobe.xed-full+json; version=1``) is JSON
Schema draft-06 with Adobe's ``meta:*`` keywords. AEP's streaming validation differs from a plain
draft-06 validator in a few places; :func:`aep_rules` turns the schema into the JSON Schema that
enforces them, and :class:`XDMValidator` compiles it once (jsonschema-rs, chosen by measurement:
see ``BENCHMARKS.md``):

* ``enum`` is enforced; ``meta:enum`` only labels suggested values, and every other ``meta:*``
  keyword is an annotation: all are dropped before compiling;
* ``format: date-time`` (RFC 3339) and ``format: date`` are checked; other formats (``uri``,
  ``email``, ...) are left to AEP, so a record is never refused here on a format AEP may accept;
* integers get the range of their ``meta:xdmType`` (``long``, ``int``, ``short``, ``byte``) on
  top of any ``minimum``/``maximum`` the schema sets;
* the root object and the tenant's objects (``meta:tenantNamespace``) admit no field the schema
  does not declare (``additionalProperties: false``) unless the schema says otherwise (maps);
* identity values in ``identityMap``: an ``ECID`` is exactly 38 digits, any other at most 1,024
  characters.

A failing record's reason names the JSON path, what was expected and the value's JSON *type*, never
the value itself (it may be personal data): ``/_tenant/seq: expected integer, got string (XDM type)``.
This module has no Airflow imports and makes no network calls.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import jsonschema_rs

#: What ``meta:xdmType`` means for an integer field's range (XDM field constraints).
INTEGER_RANGES: dict[str, tuple[int, int]] = {
    "long": (-(2**53) + 1, 2**53 - 1),
    "int": (-(2**31), 2**31 - 1),
    "short": (-(2**15), 2**15 - 1),
    "byte": (-(2**7), 2**7 - 1),
}
#: Formats AEP's streaming validation enforces that are checked here too.
CHECKED_FORMATS = frozenset({"date-time", "date"})
#: An ECID is exactly 38 digits; any other identity value at most this many characters.
ECID_PATTERN = "^[0-9]{38}$"
MAX_IDENTITY_CHARS = 1024
#: Errors named in one reason (AEP's synchronous validation reports at most 5).
MAX_REASON_ERRORS = 3
#: What stands for the value in the library's own messages (used only for kinds not worded here).
_MASK = "the value"
_ENUM_SHOWN = 10
_KEY_CHARS = 64

__all__ = ["XDMSchemaError", "XDMValidator", "XDMViolation", "aep_rules", "json_type"]


class XDMSchemaError(ValueError):
    """The schema itself cannot be used for validation (not resolved, not compilable)."""


class XDMViolation(ValueError):
    """A record breaks the schema; ``str()`` is the reason (paths, rules and types: no values)."""


def json_type(value: Any) -> str:
    """The JSON type name of a decoded value (``bool`` is ``boolean``, not ``integer``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, (list, tuple)):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return type(value).__name__


# -- the schema AEP enforces ---------------------------------------------------------------------


def aep_rules(schema: Mapping[str, Any]) -> dict[str, Any]:
    """
    The JSON Schema (draft-06) that checks records as AEP's streaming validation does.

    :param schema: a resolved schema from the Schema Registry (``xed-full``); not modified.
    """
    rules = copy.deepcopy(dict(schema))
    tenant = rules.get("meta:tenantNamespace")
    _rewrite(rules)
    if rules.get("type", "object") == "object" and "properties" in rules:
        rules.setdefault("additionalProperties", False)
    properties = rules.get("properties")
    if isinstance(properties, dict):
        if isinstance(tenant, str) and isinstance(properties.get(tenant), dict):
            _close_objects(properties[tenant])
        identity_map = properties.get("identityMap")
        if isinstance(identity_map, dict):
            _limit_identities(identity_map)
    # Annotations of the document itself; the draft is fixed by the validator class.
    for key in ("$schema", "version", "title", "description"):
        rules.pop(key, None)
    return rules


def _rewrite(node: Any) -> None:
    """Drop ``meta:*`` keywords and unchecked formats; give integers their XDM range (in place, every subschema)."""
    if isinstance(node, list):
        for item in node:
            _rewrite(item)
        return
    if not isinstance(node, dict):
        return
    xdm_type = node.get("meta:xdmType")
    for key in [k for k in node if isinstance(k, str) and k.startswith("meta:")]:
        del node[key]
    if isinstance(node.get("format"), str) and node["format"] not in CHECKED_FORMATS:
        del node["format"]
    if xdm_type in INTEGER_RANGES:
        low, high = INTEGER_RANGES[xdm_type]
        node["type"] = "integer"
        node["minimum"] = max(node["minimum"], low) if isinstance(node.get("minimum"), (int, float)) else low
        node["maximum"] = min(node["maximum"], high) if isinstance(node.get("maximum"), (int, float)) else high
    for key, value in node.items():
        if key in ("properties", "patternProperties", "definitions", "dependencies"):
            if isinstance(value, dict):
                for sub in value.values():
                    _rewrite(sub)
        elif key in ("items", "additionalProperties", "additionalItems", "allOf", "anyOf", "oneOf", "not"):
            _rewrite(value)


def _close_objects(node: Any) -> None:
    """``additionalProperties: false`` on every object of the tenant's field group that declares its fields."""
    if not isinstance(node, dict):
        return
    properties = node.get("properties")
    if isinstance(properties, dict):
        node.setdefault("additionalProperties", False)
        for sub in properties.values():
            _close_objects(sub)
    if isinstance(node.get("items"), dict):
        _close_objects(node["items"])


def _limit_identities(identity_map: dict[str, Any]) -> None:
    """ECIDs are 38 digits, other identity values at most 1,024 characters."""
    entries = identity_map.get("additionalProperties")
    if not isinstance(entries, dict):
        return
    item = entries.get("items")
    if not isinstance(item, dict) or not isinstance(item.get("properties"), dict):
        return
    ecid = copy.deepcopy(entries)
    ecid["items"]["properties"].setdefault("id", {"type": "string"})["pattern"] = ECID_PATTERN
    identity_map.setdefault("properties", {}).setdefault("ECID", ecid)
    other = item["properties"].setdefault("id", {"type": "string"})
    other["maxLength"] = min(int(other.get("maxLength", MAX_IDENTITY_CHARS)), MAX_IDENTITY_CHARS)


# -- the validator -------------------------------------------------------------------------------


class XDMValidator:
    """
    One schema, compiled once; :meth:`check` validates a decoded record against it.

    :param schema: the resolved schema (``xed-full``) as the Schema Registry returned it.
    :raises XDMSchemaError: it references other documents (not resolved) or does not compile.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        if not isinstance(schema, Mapping):
            raise XDMSchemaError(f"a schema must be a JSON object, got {json_type(schema)}")
        self.schema_id = str(schema.get("$id") or "")
        self.version = str(schema.get("version") or "")
        self.title = str(schema.get("title") or "")
        self.rules = aep_rules(schema)
        try:
            # offline: a $ref left in the document must never make the worker fetch it.
            self._validator = jsonschema_rs.Draft6Validator(self.rules, validate_formats=True, mask=_MASK, offline=True)
        except (jsonschema_rs.ValidationError, ValueError, TypeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise XDMSchemaError(
                f"schema {self.schema_id or '(no $id)'} cannot be used for validation: {first[:300]} "
                "(a schema must be the resolved form, Accept: application/vnd.adobe.xed-full+json; version=1)"
            ) from None
        #: whether a decoded record passes (no reason computed: the cheap check).
        self.is_valid = self._validator.is_valid

    def __repr__(self) -> str:
        return f"XDMValidator(schema_id={self.schema_id!r}, version={self.version!r})"

    def check(self, record: Any) -> None:
        """Return if ``record`` (decoded) is valid; raise :class:`XDMViolation` with the reason otherwise."""
        if self._validator.is_valid(record):
            return
        raise XDMViolation(self.reason(record))

    def reason(self, record: Any) -> str:
        """Why ``record`` fails: its first violations, each ``<path>: <what> (XDM <rule>)``."""
        problems = list(_first(self.problems(record), MAX_REASON_ERRORS + 1))
        text = "; ".join(problems[:MAX_REASON_ERRORS])
        if len(problems) > MAX_REASON_ERRORS:
            text += "; and more"
        return text or "the record does not match the schema (XDM)"

    def problems(self, record: Any) -> Iterator[str]:
        """Each violation of ``record``, worded without its values."""
        for error in self._validator.iter_errors(record):
            yield describe(error)

    def errors(self, record: Any) -> Iterator[Any]:
        """The library's errors for ``record`` (``kind``, ``instance_path``, ``schema_path``, ``instance``)."""
        return iter(self._validator.iter_errors(record))


def _first(items: Iterable[str], n: int) -> Iterator[str]:
    for i, item in enumerate(items):
        if i >= n:
            return
        yield item


def _pointer(parts: Iterable[Any]) -> str:
    """A JSON pointer (RFC 6901) for an instance path."""
    escaped = [str(p).replace("~", "~0").replace("/", "~1") for p in parts]
    return "/" + "/".join(escaped)


def _key(name: Any) -> str:
    text = str(name)
    return text if len(text) <= _KEY_CHARS else text[:_KEY_CHARS] + "..."


def _listed(options: Any) -> str:
    values = list(options) if isinstance(options, (list, tuple)) else [options]
    shown = ", ".join(str(v) for v in values[:_ENUM_SHOWN])
    return shown + (", ..." if len(values) > _ENUM_SHOWN else "")


def describe(error: Any) -> str:
    """
    One jsonschema-rs error as ``<JSON path>: <what was expected>, <the value's type> (XDM <rule>)``.

    The schema's own words (field names, allowed values, limits) are shown; the record's value
    never is, only its JSON type. Kinds not worded here use the library's message, which has the
    value masked.
    """
    kind = error.kind
    rule = kind.name
    path = list(error.instance_path)
    got = json_type(error.instance)
    if rule == "type":
        types = kind.types if isinstance(kind.types, (list, tuple)) else [kind.types]
        what = f"expected {' or '.join(str(t) for t in types)}, got {got}"
    elif rule == "required":
        path.append(kind.property)
        what = "required field is missing"
    elif rule == "additionalProperties":
        unexpected = list(kind.unexpected)
        if len(unexpected) == 1:
            path.append(_key(unexpected[0]))
            what = "field is not in the schema"
        else:
            what = f"fields not in the schema: {', '.join(_key(u) for u in unexpected[:_ENUM_SHOWN])}"
    elif rule == "enum":
        what = f"{got} value is not one of the allowed values ({_listed(kind.options)})"
    elif rule == "format":
        what = f"{got} value is not a valid {'RFC 3339 ' if kind.format in CHECKED_FORMATS else ''}{kind.format}"
    elif rule in ("maxLength", "minLength"):
        what = f"{got} value is {'longer' if rule == 'maxLength' else 'shorter'} than {kind.limit} characters"
    elif rule in ("minimum", "exclusiveMinimum"):
        what = f"{got} value is below the {'exclusive ' if rule == 'exclusiveMinimum' else ''}minimum of {kind.limit}"
    elif rule in ("maximum", "exclusiveMaximum"):
        what = f"{got} value is above the {'exclusive ' if rule == 'exclusiveMaximum' else ''}maximum of {kind.limit}"
    elif rule == "pattern":
        what = f"{got} value does not match the pattern {kind.pattern}"
    elif rule in ("minItems", "maxItems"):
        what = f"array has {'fewer' if rule == 'minItems' else 'more'} than {kind.limit} items"
    else:
        what = str(error.message).replace(_MASK, f"the {got} value", 1)
    return f"{_pointer(path)}: {what} (XDM {rule})"
