"""HTTP plumbing shared by IMS and the inlet: pooled session, URL checks, secret redaction."""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit, urlunsplit

import requests
from requests.adapters import HTTPAdapter

from aep_provider.aep.errors import AEPConfigError

#: (connect, read) seconds applied to every request.
DEFAULT_TIMEOUT: tuple[float, float] = (10.0, 30.0)


def normalize_base_url(url: str | None, *, what: str, default: str | None = None) -> str:
    """
    ``scheme://host[:port][/path]`` without a trailing slash, query or fragment.

    :param url: the configured URL (None or blank takes ``default``).
    :param what: how the user knows this setting, for the error message.
    :raises AEPConfigError: no scheme, unsupported scheme or no host.
    """
    value = (url or "").strip() or (default or "")
    if not value:
        raise AEPConfigError(f"{what} is not set: give a URL such as https://dcs.adobedc.net.")
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise AEPConfigError(
            f"{what} {safe_url(value)!r} is not a valid URL: it needs a scheme and a host, "
            "for example https://dcs.adobedc.net (http:// only for a local emulator)."
        )
    try:
        parts.port  # noqa: B018 -- raises on a non-numeric port
    except ValueError:
        raise AEPConfigError(f"{what} {safe_url(value)!r} has an invalid port.") from None
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/"), "", ""))


def safe_url(url: str) -> str:
    """The URL without user info, query or fragment: fit for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable URL>"
    netloc = parts.hostname or ""
    if ":" in netloc:  # IPv6 literal
        netloc = f"[{netloc}]"
    try:
        if parts.port:
            netloc += f":{parts.port}"
    except ValueError:
        pass
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """Replace every occurrence of each non-empty secret in ``text`` with ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 3:
            text = text.replace(secret, "***")
    return text


def build_session(*, pool_size: int = 10, verify: bool | str = True, proxy: str | None = None) -> requests.Session:
    """
    One pooled session per client: connections are reused across batches and threads.

    urllib3's own retries are off: the client's retry budget decides, once, in one place.

    :param pool_size: connections kept per host; size it to the number of sending threads.
    :param verify: TLS verification (True, False or a CA bundle path).
    :param proxy: proxy URL for both http and https, or None.
    """
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=max(pool_size, 1), max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.verify = verify
    if proxy:
        session.proxies = {"http": proxy, "https": proxy}
    return session


def describe_exception(exc: BaseException, secrets: Iterable[str | None] = ()) -> str:
    """A one-line description of a transport error (class and message), secrets redacted."""
    text = f"{type(exc).__name__}: {exc}"
    return redact(text, secrets)[:500]
