"""
Every option of the ``adobe_aep`` connection, declared once.

Each :class:`Option` carries its type, default, form label and help text. From this one tuple
come the connection form fields (``get_provider_info`` ``conn-fields``), the parsing and
coercion of values (:class:`~aep_provider.aep.settings.AEPSettings`), the defaults of
``AEPSettings`` and the connection tables in ``docs/connection.md`` (``scripts/gen_docs.py``); a test fails
when any of them drifts from it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from aep_provider.aep.ims import DEFAULT_IMS_URL, DEFAULT_SCOPES
from aep_provider.aep.inlet import DEFAULT_INLET_URL, DEFAULT_SANDBOX
from aep_provider.aep.platform import DEFAULT_PLATFORM_URL
from aep_provider.aep.ratelimit import DEFAULT_MAX_MESSAGES_PER_SECOND, DEFAULT_MAX_REQUESTS_PER_SECOND
from aep_provider.aep.retry import RetryPolicy
from aep_provider.aep.transport import DEFAULT_TIMEOUT

AUTH_MODES = ("oauth", "token", "none")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off"}
_RETRY = RetryPolicy()  # its defaults are the connection's defaults


# -- value types: (coerce a loosely typed value, JSON schema type of the form field) --------


def _text(value: Any) -> str:
    return str(value).strip()


def _secret(value: Any) -> str:
    return str(value)  # a secret is taken as given: spaces may be part of it


def _auth(value: Any) -> str:
    mode = str(value).strip().lower()
    if mode not in AUTH_MODES:
        raise ValueError(f"{mode!r} is not one of {', '.join(AUTH_MODES)}")
    return mode


def _scopes(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value).strip()


def _seconds(value: Any) -> float:
    return float(value)


def _count(value: Any) -> int:
    number = int(value)
    if number < 1:
        raise ValueError("must be >= 1")
    return number


def _rate(value: Any) -> float | None:
    if isinstance(value, str) and value.strip().lower() in ("none", "off", "null"):
        return None
    number = float(value)
    if number < 0:
        raise ValueError("must be >= 0 (0 switches the limit off)")
    return number or None


def _timeout(value: Any) -> tuple[float, float]:
    if isinstance(value, str) and "," in value:
        value = value.split(",")
    if isinstance(value, (list, tuple)):
        if len(value) != 2:
            raise ValueError("give one number or [connect, read]")
        connect, read = float(value[0]), float(value[1])
    else:
        connect = read = float(value)
    if connect <= 0 or read <= 0:
        raise ValueError("seconds must be > 0")
    return (connect, read)


def _flag(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise ValueError(f"{value!r} is not true or false")


def _verify(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    text = str(value).strip()
    if text.lower() in _TRUE:
        return True
    if text.lower() in _FALSE:
        return False
    return text  # a CA bundle path


#: type name -> (coercion, JSON schema type of the form field)
TYPES: dict[str, tuple[Callable[[Any], Any], str]] = {
    "text": (_text, "string"),
    "secret": (_secret, "string"),
    "auth": (_auth, "string"),
    "scopes": (_scopes, "string"),
    "seconds": (_seconds, "number"),
    "count": (_count, "integer"),
    "rate": (_rate, "number"),
    "timeout": (_timeout, "number"),
    "verify": (_verify, "boolean"),
    "flag": (_flag, "boolean"),
}


@dataclass(frozen=True)
class Option:
    """
    One connection option.

    :param name: the extra's key (and ``AEPSettings`` field / hook keyword).
    :param type: a key of :data:`TYPES`: how a value is coerced and shown in the form.
    :param default: the value when unset (None: none).
    :param label: the form field's label.
    :param help: one line for the form; it starts the description in ``docs/connection.md`` too.
    :param secret: masked in logs, a password field in the form, left out of ``repr``.
    :param doc: more detail for ``docs/connection.md`` only.
    :param attr: the connection attribute holding it (``host``/``login``/``password``) when it
        is not an extra.
    :param placeholder: the form field's placeholder.
    :param shown_default: how ``docs/connection.md`` shows the default, when ``repr`` would mislead.
    :param required: the connection is unusable without it.
    """

    name: str
    type: str
    default: Any
    label: str
    help: str
    secret: bool = False
    doc: str = ""
    attr: str | None = None
    placeholder: str | None = None
    shown_default: str | None = None
    required: bool = False

    def coerce(self, value: Any) -> Any:
        """The value as its type; raises ``ValueError``/``TypeError`` when it is not one."""
        return TYPES[self.type][0](value)

    @property
    def is_extra(self) -> bool:
        return self.attr is None

    def conn_field(self) -> dict[str, Any]:
        """The ``conn-fields`` entry of the connection form."""
        schema: dict[str, Any] = {"type": [TYPES[self.type][1], "null"]}
        # A tuple default (timeout) has no single form value: the help text gives it.
        if self.default is not None and not isinstance(self.default, tuple):
            schema["default"] = self.default
        if self.type == "auth":
            schema["enum"] = list(AUTH_MODES)
        if self.secret:
            schema["format"] = "password"
        description = f"{self.help} Required." if self.required else self.help
        return {"label": self.label, "description": description, "schema": schema}

    def readme_row(self) -> str:
        """One row of a table in ``docs/connection.md``: name, meaning, default."""
        if self.attr:
            name = f"**{self.label}** (`{self.attr}`)"
        else:
            name = f"`{self.name}`"
        meaning = self.help + (f" {self.doc}" if self.doc else "")
        if self.required:
            meaning = f"**Required.** {meaning}"
        meaning = meaning.replace("|", "\\|")  # a pipe would end the cell
        return f"| {name} | {meaning} | {self.shown_default or _show(self.default)} |"


def _show(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, tuple):
        return "`[" + ", ".join(_show(v).strip("`") for v in value) + "]`"
    return f"`{value}`"


OPTIONS: tuple[Option, ...] = (
    Option(
        "inlet_url",
        "text",
        DEFAULT_INLET_URL,
        "Inlet URL",
        "DCS base URL: the `inletUrl` Flow Service gave for your streaming connection, without the "
        "`/collection/...` path.",
        doc="Scheme required (`https://`; `http://` only for a local emulator).",
        attr="host",
        placeholder=DEFAULT_INLET_URL,
    ),
    Option(
        "client_id",
        "text",
        None,
        "Client ID",
        "OAuth Server-to-Server client id (Adobe Developer Console); also sent as `x-api-key`.",
        attr="login",
        placeholder="OAuth Server-to-Server client id (Adobe Developer Console)",
    ),
    Option(
        "client_secret",
        "secret",
        None,
        "Client secret",
        "Its client secret. Masked in logs.",
        secret=True,
        attr="password",
        placeholder="OAuth Server-to-Server client secret",
    ),
    Option(
        "inlet_id",
        "text",
        None,
        "Inlet ID",
        "Streaming inlet (connection) id: the last part of the inlet URL.",
        doc="Sent percent-encoded as one path segment. An id containing `/` (typically the whole inlet URL "
        "pasted) is refused with `AEPConfigError`: put the id here and the base URL in the host.",
        placeholder="streaming inlet id (the end of the inlet URL)",
        required=True,
    ),
    Option(
        "ims_org_id",
        "text",
        None,
        "IMS org ID",
        "Your organisation id, ending in @AdobeOrg (sent as x-gw-ims-org-id).",
        placeholder="0123456789ABCDEF01234567@AdobeOrg",
    ),
    Option(
        "sandbox_name",
        "text",
        DEFAULT_SANDBOX,
        "Sandbox name",
        "Sandbox of the inlet (sent lower-cased as x-sandbox-name).",
        placeholder=DEFAULT_SANDBOX,
    ),
    Option(
        "auth",
        "auth",
        "oauth",
        "Authentication",
        "oauth: OAuth Server-to-Server via IMS (client id/secret); token: a static access token; none: inlet "
        "created with authentication off.",
        doc="With `oauth` the token is cached for its life, renewed ahead of expiry (5 min, or 10 % of a short "
        "life; if IMS fails then, the still-valid token is kept and renewal tried again 30 s later) and once "
        "more when the inlet answers 401/403; an `expires_in` that is missing, zero, negative or unreadable "
        "counts as 1 hour rather than minting a token per request. `token` is never renewed: a 401 fails. "
        "`none` sends no `Authorization` header.",
    ),
    Option(
        "ims_url",
        "text",
        DEFAULT_IMS_URL,
        "IMS URL",
        "Adobe IMS base URL; the token is requested from {ims_url}/ims/token/v3.",
        placeholder=DEFAULT_IMS_URL,
    ),
    Option("scopes", "scopes", DEFAULT_SCOPES, "Scopes", "Comma-separated IMS scopes."),
    Option(
        "platform_url",
        "text",
        DEFAULT_PLATFORM_URL,
        "Platform URL",
        "Platform API host: Catalog (datasets, failed batches), the Schema Registry and the Data Access API.",
        doc="Read with the same token, once per run: the dataset's schema for local XDM validation (`validate_xdm`) "
        "and the dataset's failed batches (`failed_in_aep`). The credential needs the product-profile permissions "
        "*Data Modeling > View Schemas* and *Data Management > View Datasets*.",
        placeholder=DEFAULT_PLATFORM_URL,
    ),
    Option(
        "access_token",
        "secret",
        None,
        "Access token",
        "Static bearer token for auth 'token' (expires; no renewal).",
        secret=True,
        doc="Masked in logs.",
    ),
    Option("flow_id", "text", None, "Flow ID", "Sent as x-adobe-flow-id (HTTP API source dataflows)."),
    Option(
        "timeout",
        "timeout",
        DEFAULT_TIMEOUT,
        "Timeout (s)",
        "Connect and read timeout of each request, in seconds (default: 10 to connect, 30 to read).",
        doc="One number or `[connect, read]`; never more than what remains of the retry deadline. The read "
        "timeout bounds each socket read; the deadline also bounds a body that trickles in (a call ends at "
        "most one read timeout after its deadline).",
    ),
    Option(
        "verify",
        "verify",
        True,
        "Verify TLS",
        "Verify TLS certificates (a CA bundle path may be set in the extra JSON instead).",
        doc="`true`, `false` or the path of a CA bundle (PEM) on the worker, e.g. a company CA that signs a TLS-"
        "inspecting proxy's certificates. A certificate no trusted CA signed fails at once, naming the URL and this "
        "option; a path that is not a file is refused when the connection is read.",
    ),
    Option(
        "proxy",
        "text",
        None,
        "Proxy URL",
        "HTTP(S) proxy for IMS and inlet calls, e.g. http://proxy:3128.",
        doc="`http://user@proxy:3128`, the password in `proxy_password` (a password written in the URL works too, "
        "and is masked). HTTPS calls are tunnelled (CONNECT); a 407 from the proxy fails at once, naming the proxy "
        "but never the password. It beats `HTTPS_PROXY`; `~/.netrc` is never read.",
        shown_default="none (`HTTPS_PROXY`/`NO_PROXY` env vars apply, read once per host)",
    ),
    Option(
        "proxy_password",
        "secret",
        None,
        "Proxy password",
        "Password of the proxy user named in the proxy URL. Masked in logs.",
        secret=True,
    ),
    Option(
        "allow_insecure_http",
        "flag",
        False,
        "Allow plain HTTP",
        "Let http:// URLs reach hosts other than this machine (secrets and tokens then travel in clear text).",
        doc="Without it, an `http://` inlet, IMS or Platform URL is refused before any connection unless its host "
        "is loopback (`localhost`, `127.0.0.1`, `::1`: a local emulator). Only for a network you trust, e.g. an "
        "emulator in another container (`docker-compose.yaml` sets it).",
    ),
    Option(
        "retry_deadline_seconds",
        "seconds",
        _RETRY.deadline_seconds,
        "Retry deadline (s)",
        "Total time one send may spend retrying 429/5xx/network errors.",
        doc="Waits included; a `Retry-After` longer than what remains ends the call at once.",
    ),
    Option(
        "max_attempts",
        "count",
        _RETRY.max_attempts,
        "Max attempts",
        "Most requests one send may make, the first included.",
    ),
    Option(
        "backoff_base_seconds",
        "seconds",
        _RETRY.backoff_base_seconds,
        "Backoff base (s)",
        "First backoff ceiling; doubles each retry, with full jitter below it. Retry-After wins.",
    ),
    Option(
        "backoff_max_seconds",
        "seconds",
        _RETRY.backoff_max_seconds,
        "Backoff max (s)",
        "Longest single backoff between retries.",
    ),
    Option(
        "max_requests_per_second",
        "rate",
        DEFAULT_MAX_REQUESTS_PER_SECOND,
        "Max requests/s",
        "Client-side request rate limit (AEP guardrail 1,000/s per org); 0 switches it off.",
        doc="A sliding window: even the first second never bursts past it, and a request counts from its "
        "send until a second after its answer, so the inlet, which counts arrivals, never sees more.",
    ),
    Option(
        "max_messages_per_second",
        "rate",
        DEFAULT_MAX_MESSAGES_PER_SECOND,
        "Max messages/s",
        "Client-side message rate limit (AEP guardrail 10,000/s per org); 0 switches it off.",
        doc="Counted like requests (until a second after the answer); a single batch larger than the limit goes alone.",
    ),
    Option(
        "pool_size",
        "count",
        10,
        "Connection pool size",
        "Pooled HTTP connections: the number of threads sending at once.",
    ),
)

#: name -> option
BY_NAME: Mapping[str, Option] = {o.name: o for o in OPTIONS}
#: the connection's extras (everything but host/login/password), in declaration order.
EXTRAS: tuple[str, ...] = tuple(o.name for o in OPTIONS if o.is_extra)


def default(name: str) -> Any:
    """The declared default of option ``name`` (for ``AEPSettings``' field defaults)."""
    return BY_NAME[name].default


def conn_fields() -> dict[str, Any]:
    """``conn-fields`` of the ``adobe_aep`` connection type."""
    return {o.name: o.conn_field() for o in OPTIONS if o.is_extra}


def ui_field_behaviour() -> dict[str, Any]:
    """``ui-field-behaviour``: hidden fields, the relabelled standard fields and placeholders."""
    return {
        "hidden-fields": ["schema", "port"],
        "relabeling": {o.attr: o.label for o in OPTIONS if o.attr},
        "placeholders": {(o.attr or o.name): o.placeholder for o in OPTIONS if o.placeholder},
    }


def readme_tables() -> tuple[str, str]:
    """The two connection tables of ``docs/connection.md``: standard fields, then extras."""
    fields = ["| Form field (connection attribute) | Meaning | Default |", "|---|---|---|"]
    fields += [o.readme_row() for o in OPTIONS if o.attr]
    extras = ["| Extra | Meaning | Default |", "|---|---|---|"]
    extras += [o.readme_row() for o in OPTIONS if o.is_extra]
    return "\n".join(fields), "\n".join(extras)
