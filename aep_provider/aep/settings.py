"""Every client option in one place: read from plain values (a connection's fields), checked once."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from aep_provider.aep.errors import AEPConfigError
from aep_provider.aep.ims import IMSTokenProvider, NoAuth, StaticToken, TokenProvider
from aep_provider.aep.inlet import InletClient
from aep_provider.aep.options import AUTH_MODES, BY_NAME, default
from aep_provider.aep.platform import PlatformClient
from aep_provider.aep.ratelimit import RateLimiter
from aep_provider.aep.retry import RetryPolicy
from aep_provider.aep.transport import build_session, check_transport, normalize_base_url

__all__ = ["AUTH_MODES", "AEPSettings"]


@dataclass(frozen=True)
class AEPSettings:
    """
    Options of one AEP client. Secrets are left out of ``repr``.

    Types, defaults and help text are declared once, in :mod:`aep_provider.aep.options`; the
    fields here only give them names Python tools can check.

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
    :param platform_url: Platform API host (Catalog, Schema Registry, Data Access).
    :param flow_id: ``x-adobe-flow-id``.
    :param timeout: (connect, read) seconds.
    :param verify: TLS verification: True, False or a CA bundle path.
    :param proxy: proxy URL.
    :param proxy_password: the proxy user's password (the user is in ``proxy``).
    :param allow_insecure_http: plain http:// may reach hosts other than this machine.
    :param retry_deadline_seconds: total budget of one call.
    :param max_attempts: most requests of one call.
    :param backoff_base_seconds: first backoff ceiling (doubles per retry, full jitter).
    :param backoff_max_seconds: largest single backoff.
    :param max_requests_per_second: client-side limit, None/0 = off.
    :param max_messages_per_second: client-side limit, None/0 = off.
    :param pool_size: pooled HTTP connections (threads sending at once).
    """

    inlet_id: str
    inlet_url: str = default("inlet_url")
    auth: str = default("auth")
    client_id: str | None = default("client_id")
    client_secret: str | None = field(default=default("client_secret"), repr=False)
    access_token: str | None = field(default=default("access_token"), repr=False)
    ims_org_id: str | None = default("ims_org_id")
    sandbox_name: str = default("sandbox_name")
    ims_url: str = default("ims_url")
    scopes: str = default("scopes")
    platform_url: str = default("platform_url")
    flow_id: str | None = default("flow_id")
    timeout: tuple[float, float] = default("timeout")
    verify: bool | str = default("verify")
    proxy: str | None = field(default=default("proxy"), repr=False)
    proxy_password: str | None = field(default=default("proxy_password"), repr=False)
    allow_insecure_http: bool = default("allow_insecure_http")
    retry_deadline_seconds: float = default("retry_deadline_seconds")
    max_attempts: int = default("max_attempts")
    backoff_base_seconds: float = default("backoff_base_seconds")
    backoff_max_seconds: float = default("backoff_max_seconds")
    max_requests_per_second: float | None = default("max_requests_per_second")
    max_messages_per_second: float | None = default("max_messages_per_second")
    pool_size: int = default("pool_size")

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
            try:
                kwargs[name] = BY_NAME[name].coerce(value)
            except (TypeError, ValueError) as exc:
                if name == "auth":
                    raise AEPConfigError(f"{source}: auth {exc}.") from None
                raise AEPConfigError(f"{source}: option {name!r} has an invalid value ({exc}).") from None
        settings = cls(**kwargs)
        settings.validate(source)
        return settings

    def validate(self, source: str = "the AEP settings") -> None:
        """Check what can be checked without the network."""
        urls = {"inlet URL (host)": self.inlet_url, "Platform URL (platform_url)": self.platform_url}
        if self.auth == "oauth":
            urls["IMS URL (ims_url)"] = self.ims_url
        for what, url in urls.items():
            normalized = normalize_base_url(url, what=f"{source}: {what}")
            check_transport(normalized, allow_insecure_http=self.allow_insecure_http, what=f"{source}: {what}")
        if self.proxy:
            normalize_base_url(self.proxy, what=f"{source}: proxy")
        if self.proxy_password and not (self.proxy and urlsplit(self.proxy).username):
            raise AEPConfigError(
                f"{source}: 'proxy_password' is set but the 'proxy' URL names no proxy user: write it as "
                "http://USER@proxy:3128 (the password stays in 'proxy_password')."
            )
        if isinstance(self.verify, str) and not os.path.isfile(self.verify):
            raise AEPConfigError(
                f"{source}: 'verify' names the CA bundle {self.verify!r}, which is not a file on this worker: give "
                "the path of a PEM file holding the CA certificates that signed AEP's (or the proxy's) certificates, "
                "or true/false."
            )
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
        in_url = urlsplit(self.proxy).password if self.proxy else None
        if in_url:
            # As written in the URL and as sent (a '@' or ':' in it must be percent-encoded there).
            found += sorted({in_url, unquote(in_url)})
        if self.proxy_password:
            found += sorted({self.proxy_password, quote(self.proxy_password, safe="")})
        return found

    def proxy_url(self) -> str | None:
        """The proxy URL requests are sent through, with ``proxy_password`` in it (percent-encoded)."""
        if not self.proxy or not self.proxy_password:
            return self.proxy
        parts = urlsplit(self.proxy)
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{parts.username}:{quote(self.proxy_password, safe='')}@{host}"
        return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))

    def create_client(self, *, on_token: Callable[[str], None] | None = None) -> InletClient:
        """
        An :class:`InletClient` (no network yet).

        :param on_token: called with each IMS token minted (register it with a log masker).
        """
        session = build_session(
            pool_size=self.pool_size,
            verify=self.verify,
            proxy=self.proxy_url(),
            allow_insecure_http=self.allow_insecure_http,
            secrets=self.secrets(),
        )
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

    def create_platform_client(self, inlet: InletClient) -> PlatformClient:
        """
        A :class:`PlatformClient` sharing ``inlet``'s session and token (no network yet).

        :param inlet: the client :meth:`create_client` built: one token, one connection pool.
        """
        return PlatformClient(
            platform_url=self.platform_url,
            auth=inlet.auth,
            client_id=self.client_id,
            ims_org_id=self.ims_org_id,
            sandbox_name=self.sandbox_name,
            timeout=self.timeout,
            retry=self.retry_policy(),
            session=inlet.session,
        )
