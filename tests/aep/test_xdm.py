"""aep/xdm.py: AEP's rules compiled from a resolved schema; reasons with path, rule and type, never the value."""

from __future__ import annotations

import copy

import pytest

from aep_provider.aep.xdm import XDMSchemaError, XDMValidator, XDMViolation, aep_rules, json_type
from aep_provider.emulator.config import example_schema

SCHEMA = example_schema()
TENANT = "_aepprovider"
#: Personal data a record may carry: never part of a reason.
SECRET_VALUE = "jane.doe@example.com-4111111111111111"


def valid() -> dict:
    return {
        "_id": "e-1",
        "timestamp": "2026-12-05T10:00:00.000Z",
        "eventType": "commerce.productViews",
        "identityMap": {"ECID": [{"id": "1" * 38, "primary": True}], "Email": [{"id": "a@b.example"}]},
        "web": {"webPageDetails": {"name": "home", "URL": "https://shop.example.com/"}},
        "environment": {"type": "browser", "browserDetails": {"viewportWidth": 1280}},
        TENANT: {"channel": "web", "seq": 7, "loyaltyTier": "gold", "sessionDate": "2026-12-05"},
    }


def broken(path: list[str], value=None, *, delete: bool = False) -> dict:
    record = valid()
    node = record
    for key in path[:-1]:
        node = node.setdefault(key, {})
    if delete:
        del node[path[-1]]
    else:
        node[path[-1]] = value
    return record


@pytest.fixture(scope="module")
def validator() -> XDMValidator:
    return XDMValidator(SCHEMA)


def test_a_valid_record_passes(validator):
    assert validator.is_valid(valid())
    validator.check(valid())


# The seven kinds, each with its JSON path and rule.
SEVEN = [
    ("integer sent as a string", [TENANT, "seq"], "12", "/_aepprovider/seq: expected integer, got string (XDM type)"),
    ("missing required timestamp", ["timestamp"], None, "/timestamp: required field is missing (XDM required)"),
    ("bad date-time", ["timestamp"], "2026-13-05T10:00:00Z", "/timestamp: string value is not a valid RFC 3339 date-time (XDM format)"),
    ("enum outside the list", [TENANT, "channel"], "phone", "/_aepprovider/channel: string value is not one of the allowed values (web, mobile, email, store) (XDM enum)"),
    ("extraneous key", ["workEmail"], "x", "/workEmail: field is not in the schema (XDM additionalProperties)"),
    ("string over maxLength", [TENANT, "loyaltyTier"], "platinum-plus-plus", "/_aepprovider/loyaltyTier: string value is longer than 16 characters (XDM maxLength)"),
    ("negative below minimum", [TENANT, "seq"], -1, "/_aepprovider/seq: integer value is below the minimum of 0 (XDM minimum)"),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "path", "value", "reason"), SEVEN, ids=[k for k, *_ in SEVEN])
def test_each_of_the_seven_invalid_kinds_is_named_with_its_path(validator, kind, path, value, reason):
    record = broken(path, delete=True) if value is None else broken(path, value)
    with pytest.raises(XDMViolation) as info:
        validator.check(record)
    assert str(info.value) == reason


@pytest.mark.parametrize(
    "path",
    [[TENANT, "channel"], [TENANT, "seq"], ["timestamp"], [TENANT, "loyaltyTier"], [TENANT, "sessionDate"]],
)
def test_a_reason_never_holds_the_value(validator, path):
    reason = validator.reason(broken(path, SECRET_VALUE))
    assert reason.startswith("/" + "/".join(path) + ":")
    assert SECRET_VALUE not in reason and "jane" not in reason and "4111" not in reason


def test_several_violations_are_named_and_bounded(validator):
    record = broken([TENANT], {"seq": -5, "channel": "fax", "loyaltyTier": "x" * 40, "attempts": "3"})
    reason = validator.reason(record)
    assert reason.count("(XDM ") == 3 and reason.endswith("; and more")


def test_meta_enum_only_labels_while_enum_is_enforced(validator):
    # eventType and loyaltyTier carry meta:enum (suggested values) but no enum: anything goes.
    assert validator.is_valid(broken(["eventType"], "my.own.event"))
    assert validator.is_valid(broken([TENANT, "loyaltyTier"], "diamond"))
    assert not validator.is_valid(broken(["environment", "type"], "toaster"))


@pytest.mark.parametrize(
    ("field", "xdm_type", "low", "high"),
    [("seq", "long", 0, 2**53 - 1), ("attempts", "short", -(2**15), 2**15 - 1)],
)
def test_integer_ranges_come_from_meta_xdm_type(validator, field, xdm_type, low, high):
    assert validator.is_valid(broken([TENANT, field], high))
    assert "above the maximum" in validator.reason(broken([TENANT, field], high + 1))
    assert validator.is_valid(broken([TENANT, field], low))
    assert not validator.is_valid(broken([TENANT, field], low - 1))


def test_byte_and_int_ranges_apply_where_the_schema_has_no_bounds():
    schema = copy.deepcopy(SCHEMA)
    schema["properties"][TENANT]["properties"]["level"] = {"type": "integer", "meta:xdmType": "byte"}
    v = XDMValidator(schema)
    assert v.is_valid(broken([TENANT, "level"], 127)) and not v.is_valid(broken([TENANT, "level"], 128))
    width = ["environment", "browserDetails", "viewportWidth"]
    assert not v.is_valid(broken(width, 2**31))


def test_additional_properties_closed_at_the_root_and_in_the_tenant_not_in_maps(validator):
    assert "/_aepprovider/cart/coupon: field is not in the schema" in validator.reason(
        broken([TENANT, "cart"], {"items": 1, "coupon": "X"})
    )
    assert "/_aepprovider/nope" in validator.reason(broken([TENANT, "nope"], 1))
    # identityMap is a map: any namespace is a key.
    assert validator.is_valid(broken(["identityMap", "CRMID"], [{"id": "crm-1"}]))


def test_identity_values_ecid_38_digits_others_at_most_1024_characters(validator):
    assert "/identityMap/ECID/0/id: string value does not match the pattern" in validator.reason(
        broken(["identityMap", "ECID"], [{"id": "123"}])
    )
    assert validator.is_valid(broken(["identityMap", "Email"], [{"id": "a" * 1024}]))
    assert "longer than 1024 characters (XDM maxLength)" in validator.reason(
        broken(["identityMap", "Email"], [{"id": "a" * 1025}])
    )


def test_date_and_date_time_formats_are_checked_other_formats_left_to_aep():
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["web"]["properties"]["webPageDetails"]["properties"]["URL"]["format"] = "uri"
    v = XDMValidator(schema)
    assert v.is_valid(broken(["web", "webPageDetails", "URL"], "not a uri at all"))
    assert "RFC 3339 date" in v.reason(broken([TENANT, "sessionDate"], "2026-02-30"))
    assert v.is_valid(broken(["timestamp"], "2026-12-05T10:00:00+01:00"))
    assert not v.is_valid(broken(["timestamp"], "2026-12-05 10:00:00"))


def test_unknown_meta_keywords_are_ignored_and_the_input_schema_is_untouched():
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["timestamp"]["meta:somethingNew"] = {"weird": [1, 2]}
    before = copy.deepcopy(schema)
    rules = aep_rules(schema)
    assert schema == before
    assert not any(k.startswith("meta:") for k in rules) and "meta:somethingNew" not in rules["properties"]["timestamp"]
    assert XDMValidator(schema).is_valid(valid())


def test_a_schema_with_a_remote_ref_is_refused_without_fetching_it():
    schema = copy.deepcopy(SCHEMA)
    schema["properties"]["web"] = {"$ref": "https://ns.adobe.com/xdm/context/webinfo"}
    with pytest.raises(XDMSchemaError, match="resolved form"):
        XDMValidator(schema)


def test_json_type_names():
    assert [json_type(v) for v in (None, True, 1, 1.5, "s", [], {})] == [
        "null", "boolean", "integer", "number", "string", "array", "object",
    ]  # fmt: skip
