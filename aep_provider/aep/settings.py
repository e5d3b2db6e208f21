"""Every client option in one place: read from plain values (a connection's fields), checked once."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import unquote, urlsplit

from aep_provider.aep.errors import AEPConfigError
from aep_provider.aep.ims import (
    DEFAULT_IMS_URL,
    DEFAULT_SCOPES,
    IMSTokenProvider,
    NoAuth,
    StaticToken,
    TokenProvider,
)
from aep_provider.aep.inlet import DEFAULT_INLET_URL, DEFAULT_SANDBOX, InletClient
from aep_provider.aep.ratelimit import (
    DEFAULT_MAX_MESSAGES_PER_SECOND,
    DEFAULT_MAX_REQUESTS_PER_SECOND,
    RateLimiter,
)
from aep_provider.aep.retry import RetryPolicy
from aep_provider.aep.transport import DEFAULT_TIMEOUT, build_session, normalize_base_url

AUTH_MODES = ("oauth", "token", "none")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}


@dataclass(frozen=True)
class AEPSettings:
    """
    Options of one AEP client. Secrets are left out of ``repr``.

    :param inlet_id: streaming inlet id (required).
    :param inlet_url: DCS base URL.
    :param auth: ``oauth`` (IMS client credentials), ``token`` (static access token) or ``none``.
    :param client_id: OAuth client id, also sent as ``x-api-key``.
    :param client_secret: OAuth client secret.
    :param access_token: static token for ``auth="token"``.
    :param ims_org_id: ``...@AdobeOrg``.
    :param sandbox_name: sandbox, default ``prod``.
    :param ims_url: IMS base URL.
    :param scopes: comma-separated IMS scopes.
    :param flow_id: ``x-adobe-flow-id``.
    :param timeout: (connect, read) seconds.
    :param verify: TLS verification: True, False or a CA bundle path.
    :param proxy: proxy URL.
    :param retry_deadline_seconds: total budget of one call.
    :param max_attempts: most requests of one call.
    :param backoff_base_seconds: first backoff ceiling (doubles per retry, full jitter).
    :param backoff_max_seconds: largest single backoff.
    :param max_requests_per_second: client-side limit, None/0 = off.
    :param max_messages_per_second: client-side limit, None/0 = off.
    :param pool_size: pooled HTTP connections (threads sending at once).
    """

    inlet_id: str
    inlet_url: str = DEFAULT_INLET_URL
    auth: str = "oauth"
    client_id: str | None = None
    client_secret: str | None = field(default=None, repr=False)
    access_token: str | None = field(default=None, repr=False)
    ims_org_id: str | None = None
    sandbox_name: str = DEFAULT_SANDBOX
    ims_url: str = DEFAULT_IMS_URL
    scopes: str = DEFAULT_SCOPES
    flow_id: str | None = None
    timeout: tuple[float, float] = DEFAULT_TIMEOUT
    verify: bool | str = True
    proxy: str | None = field(default=None, repr=False)
    retry_deadline_seconds: float = 120.0
    max_attempts: int = 8
    backoff_base_seconds: float = 0.5
    backoff_max_seconds: float = 30.0
    max_requests_per_second: float | None = DEFAULT_MAX_REQUESTS_PER_SECOND
    max_messages_per_second: float | None = DEFAULT_MAX_MESSAGES_PER_SECOND
    pool_size: int = 10

    @classmethod
    def option_names(cls) -> frozenset[str]:
        return frozenset(f.name for f in fields(cls))

    @classmethod
    def from_values(cls, values: Mapping[str, Any], *, source: str = "the AEP settings") -> AEPSettings:
        """
        Build from loosely typed values (strings from URIs/env vars are converted); ``None`` = default.

        :param values: option name -> value; unknown names are an error (typos must not pass).
        :param source: how the user knows where these came from (e.g. "connection 'aep_default'").
        :raises AEPConfigError: unknown option, missing inlet id, bad value.
        """
        unknown = sorted(set(values) - cls.option_names())
        if unknown:
            raise AEPConfigError(
                f"{source}: unknown option(s) {', '.join(unknown)}; valid ones are "
                f"{', '.join(sorted(cls.option_names()))}."
            )
        given = {k: v for k, v in values.items() if v is not None and v != ""}
        if not str(given.get("inlet_id", "")).strip():
            raise AEPConfigError(f"{source} has no streaming inlet id: set the 'inlet_id' extra.")
        kwargs: dict[str, Any] = {}
        for name, value in given.items():
            kwargs[name] = _convert(name, value, source)
        auth = str(kwargs.get("auth", "oauth")).strip().lower()
        if auth not in AUTH_MODES:
            raise AEPConfigError(f"{source}: auth {auth!r} is not one of {', '.join(AUTH_MODES)}.")
        kwargs["auth"] = auth
        settings = cls(**kwargs)
        settings.validate(source)
        return settings

    def validate(self, source: str = "the AEP settings") -> None:
        """Check what can be checked without the network."""
        normalize_base_url(self.inlet_url, what=f"{source}: inlet URL (host)")
        if self.auth == "oauth":
            normalize_base_url(self.ims_url, what=f"{source}: IMS URL (ims_url)")
        if self.proxy:
            normalize_base_url(self.proxy, what=f"{source}: proxy")
        if self.auth == "oauth" and not (self.client_id and self.client_secret):
            raise AEPConfigError(
                f"{source}: auth 'oauth' needs the Client ID (login) and Client secret (password); "
                "or set auth 'token' with an access_token, or 'none' for an inlet without authentication."
            )
        if self.auth == "token" and not self.access_token:
            raise AEPConfigError(f"{source}: auth 'token' needs the 'access_token' extra.")
        try:
            self.retry_policy()
        except ValueError as exc:
            raise AEPConfigError(f"{source}: {exc}") from None

    def retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            deadline_seconds=self.retry_deadline_seconds,
            max_attempts=self.max_attempts,
            backoff_base_seconds=self.backoff_base_seconds,
            backoff_max_seconds=self.backoff_max_seconds,
        )

    def secrets(self) -> list[str]:
        """Values that must never be shown (for log maskers)."""
        found = [s for s in (self.client_secret, self.access_token) if s]
        proxy_password = urlsplit(self.proxy).password if self.proxy else None
        if proxy_password:
            # As written in the URL and as sent (a '@' or ':' in it must be percent-encoded there).
            found += sorted({proxy_password, unquote(proxy_password)})
        return found

    def create_client(self, *, on_token: Callable[[str], None] | None = None) -> InletClient:
        """
        An :class:`InletClient` (no network yet).

        :param on_token: called with each IMS token minted (register it with a log masker).
        """
        session = build_session(pool_size=self.pool_size, verify=self.verify, proxy=self.proxy)
        auth: TokenProvider
        if self.auth == "oauth":
            auth = IMSTokenProvider(
                client_id=self.client_id or "",
                client_secret=self.client_secret or "",
                ims_url=self.ims_url,
                scopes=self.scopes,
                timeout=self.timeout,
                retry=self.retry_policy(),
                session=session,
                on_token=on_token,
            )
        elif self.auth == "token":
            auth = StaticToken(self.access_token or "")
        else:
            auth = NoAuth()
        return InletClient(
            inlet_id=self.inlet_id,
            inlet_url=self.inlet_url,
            auth=auth,
            client_id=self.client_id,
            ims_org_id=self.ims_org_id,
            sandbox_name=self.sandbox_name,
            flow_id=self.flow_id,
            timeout=self.timeout,
            retry=self.retry_policy(),
            rate_limiter=RateLimiter(self.max_requests_per_second, self.max_messages_per_second),
            session=session,
        )


def _convert(name: str, value: Any, source: str) -> Any:
    """Coerce one option to its type; strings come from URIs, env vars and UI text fields."""
    try:
        if name == "timeout":
            return _timeout(value)
        if name == "verify":
            return _verify(value)
        if name in ("retry_deadline_seconds", "backoff_base_seconds", "backoff_max_seconds"):
            return float(value)
        if name in ("max_attempts", "pool_size"):
            number = int(value)
            if number < 1:
                raise ValueError("must be >= 1")
            return number
        if name in ("max_requests_per_second", "max_messages_per_second"):
            if isinstance(value, str) and value.strip().lower() in ("none", "off", "null"):
                return None
            number = float(value)
            if number < 0:
                raise ValueError("must be >= 0 (0 switches the limit off)")
            return number or None
        if name == "scopes" and isinstance(value, (list, tuple)):
            return ",".join(str(v) for v in value)
        return str(value).strip() if name not in ("client_secret", "access_token") else str(value)
    except (TypeError, ValueError) as exc:
        raise AEPConfigError(f"{source}: option {name!r} has an invalid value ({exc}).") from None


def _timeout(value: Any) -> tuple[float, float]:
    if isinstance(value, str) and "," in value:
        value = [v for v in value.split(",")]
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError("give one number or [connect, read]")
        connect, read = float(value[0]), float(value[1])
    else:
        connect = read = float(value)
    if connect <= 0 or read <= 0:
        raise ValueError("seconds must be > 0")
    return (connect, read)


def _verify(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    return text  # a CA bundle path
