"""Errors raised by the AEP client. Messages name the URL and what to do; never a secret."""

from __future__ import annotations


class AEPError(Exception):
    """Base class for every error this provider raises about AEP or IMS."""


class AEPConfigError(AEPError):
    """The connection or arguments are unusable (missing inlet id, malformed URL, ...)."""


class AEPAuthError(AEPError):
    """IMS refused the credentials, or the inlet refused a fresh token (401/403 after renewal)."""


class AEPRequestError(AEPError):
    """The inlet refused the whole request with a status that retrying cannot fix (400, 413, 501)."""

    def __init__(self, message: str, *, status: int | None = None, url: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.url = url


class AEPUnavailableError(AEPError):
    """The inlet or IMS kept failing (5xx, 429, timeouts, refused connections) past the retry deadline."""
