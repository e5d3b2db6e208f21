"""Per-message XDM envelope checks, as DCS applies them (plain dict checks: this is the hot path)."""

from __future__ import annotations

from typing import Any

UNKNOWN_FORMAT = "Message has unknown xdm format"
HEADER_MANDATORY = "The 'header' field is mandatory"
WRONG_ORG = "Message has an absent or wrong ims org in the header"


def check_message(message: Any, org_id: str, schema_id: str | None = None) -> str | None:
    """
    Check one XDM message; fill a missing ``header.imsOrgId`` with the inlet's org in place.

    :param message: the decoded message.
    :param org_id: the org owning the inlet.
    :param schema_id: when set, the only schema id the inlet accepts.
    :return: ``None`` when the message is accepted, else why it is rejected.
    """
    if not isinstance(message, dict):
        return f"{UNKNOWN_FORMAT}: a message must be a JSON object"
    header = message.get("header")
    if not isinstance(header, dict):
        return f"{HEADER_MANDATORY}: 'header' must be a JSON object"
    body = message.get("body")
    if not isinstance(body, dict):
        return f"{UNKNOWN_FORMAT}: the 'body' field is mandatory and must be a JSON object"
    schema_ref = header.get("schemaRef")
    if not isinstance(schema_ref, dict) or not isinstance(schema_ref.get("id"), str) or not schema_ref["id"]:
        return f"{UNKNOWN_FORMAT}: 'header.schemaRef.id' is mandatory"
    if not isinstance(schema_ref.get("contentType"), str) or not schema_ref["contentType"]:
        return f"{UNKNOWN_FORMAT}: 'header.schemaRef.contentType' is mandatory"
    if schema_id is not None and schema_ref["id"] != schema_id:
        return f"{UNKNOWN_FORMAT}: schema {schema_ref['id']} is not the inlet's schema {schema_id}"
    org = header.get("imsOrgId")
    if org is None:
        header["imsOrgId"] = org_id
    elif org != org_id:
        return WRONG_ORG
    meta = body.get("xdmMeta")
    meta_ref = meta.get("schemaRef") if isinstance(meta, dict) else None
    if not isinstance(meta_ref, dict) or not meta_ref.get("id"):
        return f"{UNKNOWN_FORMAT}: 'body.xdmMeta.schemaRef' is mandatory"
    if meta_ref["id"] != schema_ref["id"]:
        return f"{UNKNOWN_FORMAT}: 'body.xdmMeta.schemaRef.id' differs from 'header.schemaRef.id'"
    if not isinstance(body.get("xdmEntity"), dict):
        return f"{UNKNOWN_FORMAT}: 'body.xdmEntity' must be a JSON object"
    return None
