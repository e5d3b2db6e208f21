"""The bodies AEP and IMS answer with, per status (shapes from the contract, section 4)."""

from __future__ import annotations

from typing import Any

PROBLEM_TYPE = "http://ns.adobe.com/adobecloud/problem/data-collection-service/inlet"
AUTH_PROBLEM_TYPE = "http://ns.adobe.com/adobecloud/problem/data-collection-service-authorization"

_TITLES = {
    400: "Invalid XDM Message Format",
    404: "Inlet Not Found",
    405: "Method Not Allowed",
    411: "Length Required",
    413: "Request Entity Too Large",
    429: "Too Many Requests",
    500: "Internal Server Error",
    501: "Not Implemented",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


def inlet_problem(status: int, message: str, cause: str | None = None, title: str | None = None) -> dict[str, Any]:
    """DCS problem JSON (``status`` is a number here)."""
    report: dict[str, Any] = {"message": message}
    if cause is not None:
        report["cause"] = cause
    title = title or _TITLES.get(status, "Error")
    return {"type": PROBLEM_TYPE, "status": status, "title": title, "report": report}


def auth_problem(status: int, inlet_id: str, message: str) -> dict[str, Any]:
    """DCS authorization failure: note that ``status`` is a **string** in this body."""
    return {
        "type": AUTH_PROBLEM_TYPE,
        "status": str(status),
        "title": "Authorization",
        "report": {"message": f"[{inlet_id}] {message}"},
    }


def api_key_problem() -> dict[str, Any]:
    """What Adobe's API gateway answers (403) for a missing or unknown ``x-api-key``."""
    return {"error_code": "403003", "message": "Api Key is invalid"}


def ims_error(error: str, description: str) -> dict[str, Any]:
    """RFC 6749 section 5.2 error body."""
    return {"error": error, "error_description": description}


def fault_body(status: int, endpoint: str, inlet_id: str | None) -> dict[str, Any] | None:
    """The body a real service gives with an injected ``status`` (``None``: empty body)."""
    if endpoint == "token":
        if status in (400, 401):
            return ims_error("invalid_client", "invalid client_secret parameter")
        if status == 429:
            return ims_error("too_many_requests", "Too many token requests for this client")
        if status >= 500:
            return ims_error("server_error", "IMS is temporarily unavailable")
        return ims_error("invalid_request", f"request refused with status {status}")
    if status == 401:
        return auth_problem(401, inlet_id or "", "Ims service token is invalid")
    if status == 403:
        # IP allow-list blocks come back as a bare 403.
        return None
    return inlet_problem(status, f"inletId: [{inlet_id}] request failed with status {status}")


def message_failure(shape: str, status: int, message: str, uuid: str, index: int) -> dict[str, Any]:
    """One failed entry of a 207, in the documented or the live shape."""
    if shape == "live":
        return {"xactionId": f"{uuid}-{index}", "status": status, "message": message}
    return {"statusCode": status, "message": message}
