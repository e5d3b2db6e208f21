"""HTTP plumbing shared by IMS, the inlet and the Platform APIs: pooled session, URL checks, one attempt, secret redaction."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.utils import get_environ_proxies

from aep_provider.aep.errors import AEPConfigError
from aep_provider.aep.retry import Action, Answer, Deadline, classify_status, parse_retry_after

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


class _Session(requests.Session):
    """
    A session that reads the environment (``HTTPS_PROXY``/``NO_PROXY``, ``REQUESTS_CA_BUNDLE``)
    once per host instead of on every request, and never reads ``~/.netrc``.

    requests looks these up per request (file checks included: a measurable share of a 1 MB
    batch's cost), and a ``.netrc`` entry for the inlet's host would replace the bearer token
    with Basic credentials. The connection's own proxy and ``verify`` beat the environment's.
    """

    def __init__(self) -> None:
        super().__init__()
        self.trust_env = False  # no .netrc; the environment is read below, once per host
        self._environment: dict[tuple[str, str], tuple[dict[str, str], str | None]] = {}

    def merge_environment_settings(self, url: Any, proxies: Any, stream: Any, verify: Any, cert: Any) -> Any:
        url = url.decode() if isinstance(url, bytes) else str(url)
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        found = self._environment.get(key)
        if found is None:
            bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
            found = self._environment[key] = (get_environ_proxies(url), bundle)
        env_proxies, bundle = found
        proxies = dict(proxies or {})
        for scheme, proxy in env_proxies.items():
            if scheme not in self.proxies:
                proxies.setdefault(scheme, proxy)
        if (verify is True or verify is None) and bundle and self.verify is True:
            verify = bundle  # only where the connection did not say (verify=false, or its own CA path)
        return super().merge_environment_settings(url, proxies, stream, verify, cert)


def build_session(*, pool_size: int = 10, verify: bool | str = True, proxy: str | None = None) -> requests.Session:
    """
    One pooled session per client: connections are reused across batches and threads.

    urllib3's own retries are off: the client's retry budget decides, once, in one place.

    :param pool_size: connections kept per host; size it to the number of sending threads.
    :param verify: TLS verification (True, False or a CA bundle path).
    :param proxy: proxy URL for both http and https, or None.
    """
    session = _Session()
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


def read_body(response: requests.Response, deadline: Deadline, *, chunk_size: int = 65536) -> None:
    """
    Read a response sent with ``stream=True`` into ``response.content``, but not past ``deadline``.

    The read timeout bounds each socket read, not the whole body: a server or proxy trickling
    a byte at a time could hold a call far past its deadline. This checks the deadline
    between reads, so a call ends at most one read timeout after it.

    :param response: a streamed response whose body is not read yet.
    :param deadline: the calling request's deadline.
    :raises requests.exceptions.ReadTimeout: the body was still arriving when the deadline passed
        (the connection is closed, not reused).
    """
    chunks: list[bytes] = []
    raw = response.raw
    while True:
        try:
            chunk = raw.read1(chunk_size, decode_content=True)
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            # Reading raw bypasses requests' own wrapping: keep callers' `except RequestException` whole.
            response.close()
            if isinstance(exc, urllib3.exceptions.ReadTimeoutError):
                raise requests.exceptions.ReadTimeout(exc) from exc
            if isinstance(exc, urllib3.exceptions.DecodeError):
                raise requests.exceptions.ContentDecodingError(exc) from exc
            raise requests.exceptions.ConnectionError(exc) from exc
        if not chunk:
            break
        chunks.append(chunk)
        # A body known to be complete is kept even at the deadline: dropping a full 207 would re-send its messages.
        if deadline.expired and raw.length_remaining != 0:
            response.close()
            raise requests.exceptions.ReadTimeout(
                f"the response body was still arriving when the {deadline.seconds:.3g}s deadline passed"
            )
    # What requests itself does when it reads a body (iter_content + _content), minus the unbounded wait.
    response._content = b"".join(chunks)
    response._content_consumed = True  # type: ignore[attr-defined]
    raw.release_conn()


def identity_headers(
    token: str | None, *, client_id: str | None, ims_org_id: str | None, sandbox_name: str | None
) -> dict[str, str]:
    """The headers naming who calls and where, on every inlet and Platform call (those that are set)."""
    headers = {}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    if client_id:
        headers["x-api-key"] = client_id
    if ims_org_id:
        headers["x-gw-ims-org-id"] = ims_org_id
    if sandbox_name:
        headers["x-sandbox-name"] = sandbox_name
    return headers


def problem_detail(response: requests.Response, secrets: Iterable[str | None] = ()) -> str:
    """A short reason from an AEP problem body (title + report.message, or message), secrets redacted."""
    try:
        payload: Any = response.json()
    except ValueError:
        text = (response.text or "").strip()
        return f" ({redact(text[:200], secrets)})" if text else ""
    if not isinstance(payload, dict):
        return ""
    parts = [str(payload.get("title") or "")]
    report = payload.get("report")
    if isinstance(report, dict) and report.get("message"):
        parts.append(str(report["message"]))
    elif payload.get("message"):
        parts.append(str(payload["message"]))
    elif payload.get("error_description") or payload.get("error"):
        parts.append(str(payload.get("error_description") or payload.get("error")))
    text = ": ".join(p for p in parts if p)
    return f" ({redact(text[:300], secrets)})" if text else ""


def exchange(
    session: requests.Session,
    method: str,
    url: str,
    *,
    deadline: Deadline,
    timeout: tuple[float, float],
    headers: Mapping[str, str] | None = None,
    data: Any = None,
    params: Mapping[str, str] | None = None,
    secrets: Iterable[str | None] = (),
) -> Answer[requests.Response]:
    """
    One request within ``deadline``, its answer classified: the one place where a response or a
    transport error becomes an :class:`~aep_provider.aep.retry.Answer` (IMS, inlet and Platform calls).

    Redirects are never followed (a bearer token or a secret must only go to the configured host);
    the body is read within the deadline (:func:`read_body`); each timeout is capped by what is
    left of the deadline. A non-success answer's ``detail`` is ``HTTP <status> (<problem>)``.

    :param secrets: values redacted from every detail (tokens, client secret, proxy password).
    """
    secrets = [s for s in secrets if s]
    remaining = max(deadline.remaining(), 0.001)
    try:
        response = session.request(
            method,
            url,
            data=data,
            params=params,
            headers=dict(headers or {}),
            timeout=(min(timeout[0], remaining), min(timeout[1], remaining)),
            allow_redirects=False,
            stream=True,
        )
        read_body(response, deadline)
    except requests.RequestException as exc:
        return Answer(Action.RETRY, detail=describe_exception(exc, secrets))
    status = response.status_code
    action = classify_status(status)
    if action is Action.SUCCESS:
        return Answer(action, value=response, status=status)
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if action is Action.RETRY else None
    detail = f"HTTP {status}{problem_detail(response, secrets)}"
    return Answer(action, value=response, status=status, detail=detail, retry_after=retry_after)
