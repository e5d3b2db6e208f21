"""What one call to the batch inlet tells about each message, by position."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from aep_provider.aep.errors import AEPError

#: AEP refuses request bodies over 1 MB (413); the client never sends more than this.
MAX_REQUEST_BYTES = 1_000_000

#: ``{"messages":[`` + ``]}`` around the comma-joined messages.
_BATCH_WRAPPER_BYTES = len(b'{"messages":[]}')


def batch_body_size(message_sizes_total: int, message_count: int) -> int:
    """Encoded size of a batch body whose messages total ``message_sizes_total`` bytes."""
    commas = max(message_count - 1, 0)
    return _BATCH_WRAPPER_BYTES + message_sizes_total + commas


class Outcome(str, enum.Enum):
    ACCEPTED = "accepted"
    #: AEP refused the message itself (a 400 entry in the 207, or over the size limit):
    #: sending it again cannot succeed.
    REJECTED = "rejected"
    #: still failing with a retryable status when the retry budget ran out.
    RETRYABLE = "retryable"


class MessageResult(NamedTuple):
    """AEP's answer for one message (a named tuple: a batch answer makes one per message)."""

    outcome: Outcome
    status: int | None = None
    message: str | None = None
    xaction_id: str | None = None

    @property
    def accepted(self) -> bool:
        return self.outcome is Outcome.ACCEPTED


@dataclass
class BatchResult:
    """One entry per message sent, in request order, plus what it cost to get there."""

    results: list[MessageResult]
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    bytes_sent: int = 0
    batch_ids: list[str] = field(default_factory=list)
    #: Duration of each HTTP request of the call (retries included), in seconds.
    request_seconds: list[float] = field(default_factory=list)
    #: The final error that ended the call after AEP had already answered for some messages
    #: (credentials refused on a re-send, a refused request, IMS down): the results above
    #: stand, the messages without an answer are RETRYABLE. None when the call ended normally.
    error: AEPError | None = None

    @property
    def accepted(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.ACCEPTED)

    @property
    def rejected(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.REJECTED)

    @property
    def retryable(self) -> int:
        return sum(1 for r in self.results if r.outcome is Outcome.RETRYABLE)
