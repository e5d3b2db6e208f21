"""Per-message XDM envelope checks."""

from __future__ import annotations

import pytest

from aep_provider.emulator.xdm import HEADER_MANDATORY, UNKNOWN_FORMAT, WRONG_ORG, check_message
from tests.emulator.conftest import xdm

ORG = "0123456789ABCDEF01234567@AdobeOrg"


def test_valid_message_gets_the_inlet_org_filled_in():
    message = xdm()
    assert check_message(message, ORG) is None
    assert message["header"]["imsOrgId"] == ORG


def test_matching_org_is_accepted_and_wrong_org_rejected():
    assert check_message(xdm(imsOrgId=ORG), ORG) is None
    assert check_message(xdm(imsOrgId="FFFF@AdobeOrg"), ORG) == WRONG_ORG


def _without(path: str):
    message = xdm()
    *parents, leaf = path.split(".")
    node = message
    for key in parents:
        node = node[key]
    del node[leaf]
    return message


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ([1, 2], UNKNOWN_FORMAT),
        ("text", UNKNOWN_FORMAT),
        ({"body": {}}, HEADER_MANDATORY),
        (_without("header"), HEADER_MANDATORY),
        (_without("body"), UNKNOWN_FORMAT),
        (_without("header.schemaRef"), "header.schemaRef.id"),
        (_without("header.schemaRef.contentType"), "header.schemaRef.contentType"),
        (_without("body.xdmMeta"), "body.xdmMeta.schemaRef"),
        (_without("body.xdmEntity"), "body.xdmEntity"),
    ],
)
def test_malformed_messages_say_what_is_missing(message, expected):
    error = check_message(message, ORG)
    assert error is not None and expected in error


def test_schema_mismatch_between_header_and_body_is_rejected():
    message = xdm()
    message["body"]["xdmMeta"]["schemaRef"]["id"] = "https://ns.adobe.com/tenant/schemas/other"
    assert "differs" in check_message(message, ORG)


def test_inlet_schema_id_restricts_messages():
    assert check_message(xdm(), ORG, schema_id="https://ns.adobe.com/tenant/schemas/0123456789abcdef") is None
    assert "is not the inlet's schema" in check_message(xdm(), ORG, schema_id="https://ns.adobe.com/x")
