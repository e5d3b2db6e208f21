"""Reading the batch inlet's 207 answer: one entry per message, matched by position."""

from __future__ import annotations

from typing import Any

from aep_provider.aep.errors import AEPRequestError
from aep_provider.aep.results import MessageResult, Outcome
from aep_provider.aep.retry import Action, classify_status


def entry_status(entry: dict[str, Any]) -> int | None | bool:
    """
    The failure status of one ``responses`` entry.

    Returns ``False`` when the entry is a success, the status as an int when it failed, or
    ``None`` when it failed with a status that is not a number. AEP documents ``statusCode``
    and the live service sends ``status``, as a number or a string: accept all of them.
    """
    if "status" not in entry and "statusCode" not in entry:
        return False
    # A null in one key must not hide a number in the other.
    raw = entry.get("status") if entry.get("status") is not None else entry.get("statusCode")
    try:
        status = int(str(raw).strip())
    except (TypeError, ValueError):
        return None
    if 200 <= status < 300:
        return False
    return status


def classify_entry(entry: Any) -> MessageResult:
    """One entry as ACCEPTED, REJECTED (do not resend) or RETRYABLE (429/5xx: resend this one)."""
    if type(entry) is dict and "status" not in entry and "statusCode" not in entry:
        # The common entry, a success: {"xactionId": "..."}.
        xaction_id = entry.get("xactionId")
        return MessageResult(Outcome.ACCEPTED, None, None, xaction_id if xaction_id is None else str(xaction_id))
    if not isinstance(entry, dict):
        return MessageResult(Outcome.REJECTED, None, f"unreadable response entry: {entry!r:.200}")
    xaction_id = entry.get("xactionId")
    xaction_id = str(xaction_id) if xaction_id is not None else None
    status = entry_status(entry)
    if status is False:
        return MessageResult(Outcome.ACCEPTED, None, None, xaction_id)
    message = entry.get("message")
    message = str(message) if message is not None else None
    # An entry is classified like a whole answer; a status that is not a number is no transport
    # error (AEP did answer for it), so it is final.
    if isinstance(status, int) and classify_status(status) is Action.RETRY:
        return MessageResult(Outcome.RETRYABLE, status, message, xaction_id)
    return MessageResult(Outcome.REJECTED, status, message, xaction_id)


def parse_batch_response(payload: Any, expected: int, *, url: str) -> tuple[list[MessageResult], str | None]:
    """
    Per-message results of a 207 batch answer, in request order, plus its ``batchId``.

    :param payload: the decoded JSON body.
    :param expected: how many messages the request carried.
    :param url: the inlet URL, for error messages.
    :raises AEPRequestError: the answer cannot be matched to the messages (no ``responses``
        list, or not exactly one entry per message): nothing can be attributed safely.
    """
    responses = payload.get("responses") if isinstance(payload, dict) else None
    if not isinstance(responses, list):
        raise AEPRequestError(
            f"The inlet at {url} answered 207 without a 'responses' list, so no message can be marked "
            "delivered. Check that the connection's host is the DCS inlet URL.",
            status=207,
            url=url,
        )
    if len(responses) != expected:
        raise AEPRequestError(
            f"The inlet at {url} answered {len(responses)} responses for {expected} messages; results "
            "cannot be matched to messages, so none is marked delivered. Re-send the batch.",
            status=207,
            url=url,
        )
    batch_id = payload.get("batchId")
    return [classify_entry(entry) for entry in responses], (str(batch_id) if batch_id is not None else None)
