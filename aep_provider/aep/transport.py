"""HTTP plumbing shared by IMS, the inlet and the Platform APIs: pooled session, URL checks, one attempt, secret redaction."""

from __future__ import annotations

import ipaddress
import os
import socket
import ssl
from collections.abc import Iterable, Iterator, Mapping
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

#: The connection option that lets plain http:// reach a host other than this machine.
INSECURE_OPTION = "allow_insecure_http"


def is_loopback(host: str | None) -> bool:
    """Whether ``host`` is this machine: ``localhost`` (and ``*.localhost``) or a loopback address."""
    name = (host or "").strip("[]").lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def check_transport(url: str, *, allow_insecure_http: bool, what: str = "URL") -> None:
    """
    The one rule for every URL the client calls: ``https://``, except to this machine (an
    emulator on loopback) or when the connection sets ``allow_insecure_http``.

    Plain HTTP would carry the client secret and bearer tokens in clear text, so it is refused
    before any connection is made: :func:`exchange` checks each request, the settings check the
    configured URLs when they are read.

    :raises AEPConfigError: plain http:// to another host without the option.
    """
    parts = urlsplit(url)
    if parts.scheme != "http" or allow_insecure_http or is_loopback(parts.hostname):
        return
    raise AEPConfigError(
        f"{what} {safe_url(url)!r} uses plain http:// to {parts.hostname}, which is not this machine: the client "
        "secret and access tokens would travel in clear text, so nothing was sent. Use https://, or set the "
        f"connection's {INSECURE_OPTION!r} extra to true (only on a network you trust, e.g. a local emulator "
        "in another container)."
    )


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
        self.allow_insecure_http = False
        self.secrets: list[str] = []
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


def build_session(
    *,
    pool_size: int = 10,
    verify: bool | str = True,
    proxy: str | None = None,
    allow_insecure_http: bool = False,
    secrets: Iterable[str] = (),
) -> requests.Session:
    """
    One pooled session per client: connections are reused across batches and threads.

    urllib3's own retries are off: the client's retry budget decides, once, in one place.

    :param pool_size: connections kept per host; size it to the number of sending threads.
    :param verify: TLS verification (True, False or a CA bundle path).
    :param proxy: proxy URL for both http and https, or None.
    :param allow_insecure_http: plain http:// may reach other hosts than this machine (:func:`check_transport`).
    :param secrets: values :func:`exchange` redacts from every message (e.g. the proxy password).
    """
    session = _Session()
    session.allow_insecure_http = allow_insecure_http
    session.secrets = [s for s in secrets if s]
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
    what: str = "URL",
) -> Answer[requests.Response]:
    """
    One request within ``deadline``, its answer classified: the one place where a response or a
    transport error becomes an :class:`~aep_provider.aep.retry.Answer` (IMS, inlet and Platform calls).

    Redirects are never followed (a bearer token or a secret must only go to the configured host);
    the body is read within the deadline (:func:`read_body`); each timeout is capped by what is
    left of the deadline. A non-success answer's ``detail`` is ``HTTP <status> (<problem>)``.

    :param secrets: values redacted from every detail (tokens, client secret, proxy password).
    :param what: the setting the URL comes from, for configuration errors (e.g. "IMS URL (ims_url)").
    :raises AEPConfigError: the request would go out in plain HTTP (:func:`check_transport`), or
        the transport failed in a way no retry can fix (:func:`transport_config_error`).
    """
    secrets = [s for s in (*secrets, *getattr(session, "secrets", ())) if s]
    check_transport(url, allow_insecure_http=getattr(session, "allow_insecure_http", False), what=what)
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
        fatal = transport_config_error(exc, url, session, what=what)
        if fatal is not None:
            raise fatal from None
        return Answer(Action.RETRY, detail=describe_exception(exc, secrets))
    status = response.status_code
    if status == 407:  # a forward proxy (plain-http target) refused the credentials
        raise AEPConfigError(_proxy_refused(session, url))
    action = classify_status(status)
    if action is Action.SUCCESS:
        return Answer(action, value=response, status=status)
    retry_after = parse_retry_after(response.headers.get("Retry-After")) if action is Action.RETRY else None
    detail = f"HTTP {status}{problem_detail(response, secrets)}"
    return Answer(action, value=response, status=status, detail=detail, retry_after=retry_after)


def _causes(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and what it wraps (urllib3 nests the real cause in ``reason`` and ``args``), depth-first."""
    seen: set[int] = set()
    todo = [exc]
    while todo:
        current = todo.pop()
        if id(current) in seen or len(seen) > 50:
            continue
        seen.add(id(current))
        yield current
        nested = [getattr(current, "reason", None), current.__cause__, current.__context__, *current.args]
        todo.extend(e for e in nested if isinstance(e, BaseException))


def _proxy_url(session: requests.Session, url: str) -> str:
    proxy = (session.proxies or {}).get(urlsplit(url).scheme) or "the proxy"
    return safe_url(proxy) if "://" in proxy else proxy


def _proxy_refused(session: requests.Session, url: str) -> str:
    return (
        f"The proxy {_proxy_url(session, url)} refused this worker's credentials (HTTP 407 Proxy Authentication "
        f"Required) for {safe_url(url)}: check the proxy user (in the connection's 'proxy' URL, "
        "http://USER@proxy:3128) and its 'proxy_password'."
    )


def transport_config_error(
    exc: requests.RequestException, url: str, session: requests.Session, *, what: str = "URL"
) -> AEPConfigError | None:
    """
    The configuration error a transport failure stands for, or None when a retry may help.

    A host name that does not resolve, a certificate no trusted CA signed, and a proxy refusing
    the credentials (407) stay so on every retry: they fail at once, saying which setting to fix.
    """
    proxied = isinstance(exc, requests.exceptions.ProxyError)
    for cause in _causes(exc):
        if isinstance(cause, (urllib3.exceptions.NameResolutionError, socket.gaierror)):
            if proxied:
                return AEPConfigError(
                    f"The proxy {_proxy_url(session, url)} cannot be resolved (DNS) while calling {safe_url(url)}: "
                    "check the host name in the connection's 'proxy' URL."
                )
            host = urlsplit(url).hostname
            return AEPConfigError(
                f"The host name {host!r} of {what} {safe_url(url)!r} cannot be resolved (DNS): check the URL in the "
                "connection (a typo, or a host this worker's DNS does not know); nothing was sent."
            )
        if isinstance(cause, ssl.SSLCertVerificationError):
            reason = cause.verify_message or str(cause)
            return AEPConfigError(
                f"TLS verification of {safe_url(url)} failed ({reason}): its certificate was not signed by a CA "
                "this worker trusts, or names another host. Set the connection's 'verify' extra to the CA bundle "
                "(a PEM file) that signed it; 'false' switches verification off (never in production)."
            )
        if proxied and "Tunnel connection failed: 407" in str(cause):
            return AEPConfigError(_proxy_refused(session, url))
    return None
