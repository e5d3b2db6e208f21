"""Adobe IMS OAuth Server-to-Server tokens, and the two simpler auth modes (static token, none)."""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable
from typing import NoReturn, Protocol

import requests

from aep_provider.aep.errors import AEPAuthError, AEPConfigError, AEPUnavailableError
from aep_provider.aep.retry import Action, Answer, Deadline, RetryDriver, RetryPolicy
from aep_provider.aep.transport import DEFAULT_TIMEOUT, build_session, exchange, normalize_base_url, redact, safe_url

log = logging.getLogger(__name__)

DEFAULT_IMS_URL = "https://ims-na1.adobelogin.com"
TOKEN_PATH = "/ims/token/v3"
#: The scopes Adobe's own Kafka sink asks for when it writes to AEP.
DEFAULT_SCOPES = "openid,AdobeID,read_organizations,additional_info.projectedProductContext,session"
#: Renew this long before expiry at most; short-lived tokens renew at 10 % of their life instead.
RENEWAL_MARGIN_SECONDS = 300.0
#: After a failed renewal ahead of expiry, try again this much later (or at half the time left).
RENEWAL_RETRY_SECONDS = 30.0
#: Assumed life when IMS omits ``expires_in`` (the inlet's 401 renews it earlier if need be).
FALLBACK_EXPIRES_IN = 3600.0


def token_life(expires_in: object) -> float:
    """
    Seconds a new token may be used, from IMS's ``expires_in``.

    A missing, unreadable, zero, negative or infinite value gives :data:`FALLBACK_EXPIRES_IN`:
    taken literally it would mint a token before every request, and Adobe throttles
    integrations that do (a too-long guess is cut short by the inlet's 401 and one renewal).

    :param expires_in: the value IMS sent, if any.
    """
    try:
        life = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return FALLBACK_EXPIRES_IN
    return life if math.isfinite(life) and life > 0 else FALLBACK_EXPIRES_IN


class TokenProvider(Protocol):
    """What the inlet client needs from an auth mode."""

    #: whether :meth:`invalidate` can lead to a different token (a 401 is then worth one retry).
    renewable: bool

    def get_token(self, deadline: Deadline | None = None) -> str | None: ...

    def invalidate(self, token: str | None) -> None: ...


class NoAuth:
    """Inlets created with authentication off: no ``Authorization`` header at all."""

    renewable = False
    mode = "none"

    def get_token(self, deadline: Deadline | None = None) -> str | None:
        return None

    def invalidate(self, token: str | None) -> None:
        return None

    def __repr__(self) -> str:
        return "NoAuth()"


class StaticToken:
    """
    An access token pasted from the Adobe Developer Console; it cannot be renewed.

    :param token: the bearer token.
    """

    renewable = False
    mode = "token"

    def __init__(self, token: str) -> None:
        if not token:
            raise AEPConfigError("auth 'token' needs an access token: set the 'access_token' extra.")
        self._token = token

    def get_token(self, deadline: Deadline | None = None) -> str | None:
        return self._token

    def invalidate(self, token: str | None) -> None:
        return None

    def __repr__(self) -> str:
        return "StaticToken(token=***)"


class IMSTokenProvider:
    """
    Client-credentials tokens from ``POST {ims_url}/ims/token/v3``, cached for their life.

    One fetch at a time: concurrent callers wait on the lock and then reuse the new token, so
    a burst of 401s from many threads mints one token, not one each.

    :param client_id: OAuth Server-to-Server client id.
    :param client_secret: its secret (never logged).
    :param ims_url: IMS base URL.
    :param scopes: comma-separated scopes.
    :param timeout: (connect, read) seconds per request.
    :param retry: retry budget for IMS 429/5xx/connection errors.
    :param session: HTTP session to use (a private pooled one by default).
    :param on_token: called with each newly minted token (e.g. to register it with a log masker).
    """

    renewable = True
    mode = "oauth"

    def __init__(
        self,
        *,
        client_id: str,
        client_secret: str,
        ims_url: str = DEFAULT_IMS_URL,
        scopes: str = DEFAULT_SCOPES,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
        on_token: Callable[[str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not client_id:
            raise AEPConfigError("auth 'oauth' needs a client id: set the connection's login (Client ID).")
        if not client_secret:
            raise AEPConfigError("auth 'oauth' needs a client secret: set the connection's password (Client secret).")
        self.client_id = client_id
        self._client_secret = client_secret
        self.token_url = normalize_base_url(ims_url, what="IMS URL", default=DEFAULT_IMS_URL) + TOKEN_PATH
        self.scopes = ",".join(s.strip() for s in (scopes or DEFAULT_SCOPES).split(",") if s.strip())
        self.timeout = timeout
        self.retry = retry or RetryPolicy()
        self._session = session or build_session(pool_size=2)
        self._on_token = on_token
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._token: str | None = None
        self._renew_at = 0.0
        self._expires_at = 0.0
        #: how many tokens this provider minted (for tests and run summaries).
        self.fetches = 0

    def __repr__(self) -> str:
        return f"IMSTokenProvider(token_url={self.token_url!r}, client_id={self.client_id!r}, client_secret=***)"

    def get_token(self, deadline: Deadline | None = None) -> str:
        """A valid token: the cached one, or a new one when it is missing or near expiry."""
        token = self._token
        if token is not None and self._clock() < self._renew_at:
            return token
        timeout = -1 if deadline is None else max(deadline.remaining(), 0.001)
        if not self._lock.acquire(timeout=timeout):
            raise AEPUnavailableError(f"Timed out waiting for another thread's token request to {self.token_url}.")
        try:
            now = self._clock()
            # Another thread may have renewed it while this one waited.
            if self._token is not None and now < self._renew_at:
                return self._token
            if self._token is None or now >= self._expires_at:
                return self._fetch(deadline)
            # Renewing ahead of expiry: one try, and IMS trouble must not stop a still-valid token.
            try:
                return self._fetch(deadline, max_attempts=1)
            except AEPUnavailableError as exc:
                left = self._expires_at - now
                self._renew_at = now + min(RENEWAL_RETRY_SECONDS, left / 2)
                log.warning("Renewing the IMS token failed (%s); the current one is valid %.0fs more", exc, left)
                return self._token
        finally:
            self._lock.release()

    def invalidate(self, token: str | None) -> None:
        """Forget ``token`` if it is still the cached one (the inlet refused it)."""
        with self._lock:
            if token is not None and token == self._token:
                self._token = None
                self._renew_at = self._expires_at = 0.0

    def _fetch(self, deadline: Deadline | None, max_attempts: int | None = None) -> str:
        seconds = self.retry.deadline_seconds
        if deadline is not None:
            seconds = min(seconds, deadline.remaining())
        if seconds <= 0:
            raise AEPUnavailableError(f"No time left in the deadline to request a token from {self.token_url}.")
        # The caller's deadline caps IMS retries: a token fetch inside send_batch spends its budget.
        policy = dataclasses.replace(
            self.retry, deadline_seconds=seconds, max_attempts=max_attempts or self.retry.max_attempts
        )
        driver = RetryDriver(policy, clock=self._clock, sleep=self._sleep)
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "scope": self.scopes,
        }

        def attempt(deadline: Deadline) -> Answer[requests.Response]:
            # A dict body makes requests form-encode every value (secrets hold & + =).
            answer = exchange(
                self._session,
                "POST",
                self.token_url,
                deadline=deadline,
                timeout=self.timeout,
                headers={"Accept": "application/json"},
                data=form,
                secrets=[self._client_secret],
                what="IMS URL (ims_url)",
            )
            if answer.action is Action.RETRY:
                log.warning(
                    "Token request to %s failed (%s); attempt %d", self.token_url, answer.detail, driver.budget.attempts
                )
            return answer

        # No renewal here: a 401/403 from IMS itself is a refusal of the credentials.
        final = driver.run(attempt)
        if final.action is Action.SUCCESS and final.value is not None:
            return self._accept(final.value)
        if final.action is Action.RETRY:
            budget = driver.budget
            raise AEPUnavailableError(
                f"Adobe IMS at {self.token_url} did not issue a token after {budget.attempts} attempt(s) "
                f"in {budget.deadline.elapsed():.1f}s (last: {final.detail}). Check that the IMS URL is reachable "
                "from this worker, or retry later."
            )
        assert final.value is not None  # every final answer but a transport error carries its response
        self._refuse(final.value)

    def _accept(self, response: requests.Response) -> str:
        try:
            payload = response.json()
        except ValueError:
            payload = None
        token = payload.get("access_token") if isinstance(payload, dict) else None
        if not token or not isinstance(token, str):
            raise AEPConfigError(
                f"{self.token_url} answered 200 without an access_token: check that the IMS URL points at "
                "Adobe IMS (default https://ims-na1.adobelogin.com)."
            )
        life = token_life(payload.get("expires_in"))
        margin = min(RENEWAL_MARGIN_SECONDS, 0.1 * life)
        if self._on_token is not None:
            self._on_token(token)
        now = self._clock()
        self._token = token
        self._renew_at = now + max(life - margin, 0.0)
        self._expires_at = now + life
        self.fetches += 1
        log.info("Obtained an IMS access token from %s (expires in %.0fs)", self.token_url, life)
        return token

    def _refuse(self, response: requests.Response) -> NoReturn:
        status = response.status_code
        detail = ""
        try:
            payload = response.json()
        except ValueError:
            payload = None
        if "Location" in response.headers:
            detail = f"redirects to {safe_url(response.headers['Location'])}"
        elif isinstance(payload, dict):
            error = payload.get("error") or payload.get("error_code") or ""
            description = payload.get("error_description") or payload.get("message") or ""
            detail = redact(f"{error}: {description}".strip(": "), [self._client_secret])[:300]
        if status in (400, 401, 403):
            raise AEPAuthError(
                f"Adobe IMS at {self.token_url} refused the credentials (HTTP {status}"
                f"{', ' + detail if detail else ''}). Check the connection's Client ID (login), Client secret "
                "(password) and scopes against the OAuth Server-to-Server credential in the Adobe Developer "
                "Console."
            )
        raise AEPConfigError(
            f"Adobe IMS at {self.token_url} answered HTTP {status}{' (' + detail + ')' if detail else ''}: check "
            "the IMS URL (default https://ims-na1.adobelogin.com)."
        )
