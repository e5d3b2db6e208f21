"""Airflow hook for Adobe Experience Platform streaming inlets: a connection becomes an InletClient."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping, Sequence
from functools import cached_property
from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.log import mask_secret

from aep_provider.aep.errors import AEPConfigError, AEPError
from aep_provider.aep.inlet import DEFAULT_INLET_URL, InletClient
from aep_provider.aep.options import EXTRAS
from aep_provider.aep.platform import PlatformClient
from aep_provider.aep.results import BatchResult
from aep_provider.aep.settings import AEPSettings

#: Extras (and constructor keyword arguments) the connection understands, beyond host/login/password.
CONNECTION_EXTRAS = tuple(sorted(EXTRAS))

#: What :meth:`AEPStreamingHook.send_batch` accepts per message.
Message = Mapping[str, Any] | str | bytes | bytearray | memoryview


class AEPStreamingHook(BaseHook):
    """
    Sends messages to an AEP streaming inlet described by an ``adobe_aep`` connection.

    Connection: host = inlet base URL (default ``https://dcs.adobedc.net``), login = OAuth
    client id, password = client secret, extra ``inlet_id`` (required); every other extra,
    its type, default and meaning is declared in :data:`aep_provider.aep.options.OPTIONS`
    (the connection tables in ``docs/connection.md`` are generated from it). Nothing touches the network until
    the first call.

    :param aep_conn_id: the ``adobe_aep`` connection id.
    :param inlet_id: overrides the connection's ``inlet_id`` extra.
    :param client_overrides: any extra by name (e.g. ``retry_deadline_seconds=30``), or
        ``inlet_url``/``client_id``/``client_secret``; they win over the connection.
    """

    conn_name_attr = "aep_conn_id"
    default_conn_name = "aep_default"
    conn_type = "adobe_aep"
    hook_name = "Adobe Experience Platform (streaming)"

    def __init__(
        self, aep_conn_id: str = default_conn_name, inlet_id: str | None = None, **client_overrides: Any
    ) -> None:
        super().__init__()
        unknown = sorted(set(client_overrides) - AEPSettings.option_names())
        if unknown:
            raise AEPConfigError(
                f"AEPStreamingHook got unknown option(s) {', '.join(unknown)}; valid ones are "
                f"{', '.join(sorted(AEPSettings.option_names()))}."
            )
        self.aep_conn_id = aep_conn_id
        self._inlet_id = inlet_id
        self._overrides = client_overrides
        # The engine sends from several threads: they must share one client (one token, one pool).
        self._client_lock = threading.Lock()
        self._client: InletClient | None = None
        self._platform: PlatformClient | None = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}(aep_conn_id={self.aep_conn_id!r})"

    @cached_property
    def settings(self) -> AEPSettings:
        """The connection merged with constructor overrides, checked; secrets registered with the masker."""
        conn = self.get_connection(self.aep_conn_id)
        # Register secrets before anything can fail and print them.
        for secret in (conn.password, self._overrides.get("client_secret"), self._overrides.get("access_token")):
            if secret:
                mask_secret(secret)
        extra = dict(conn.extra_dejson or {})
        values: dict[str, Any] = {}
        for key, value in extra.items():
            if key in CONNECTION_EXTRAS:
                values[key] = value
            else:
                self.log.warning("Connection %r: ignoring unknown extra %r", self.aep_conn_id, key)
        if values.get("access_token"):
            mask_secret(values["access_token"])
        values.update(
            inlet_url=_host_url(conn.host, conn.port),
            client_id=conn.login,
            client_secret=conn.password,
        )
        values.update({k: v for k, v in self._overrides.items() if v is not None})
        if self._inlet_id:
            values["inlet_id"] = self._inlet_id
        settings = AEPSettings.from_values(values, source=f"Connection {self.aep_conn_id!r}")
        for secret in settings.secrets():
            mask_secret(secret)
        return settings

    @property
    def ims_org_id(self) -> str | None:
        """The connection's ``ims_org_id`` extra (for ``header.imsOrgId`` of the messages), or None."""
        return self.settings.ims_org_id

    def get_client(self) -> InletClient:
        """The connection's :class:`InletClient` (built once per hook, then reused; thread-safe)."""
        with self._client_lock:
            if self._client is None:
                self._client = self.settings.create_client(on_token=mask_secret)
            return self._client

    def get_platform_client(self) -> PlatformClient:
        """
        The connection's :class:`PlatformClient` (Catalog, Schema Registry, Data Access on ``platform_url``),
        sharing the inlet client's session and token; built once per hook.
        """
        client = self.get_client()
        with self._client_lock:
            if self._platform is None:
                self._platform = self.settings.create_platform_client(client)
            return self._platform

    def get_conn(self) -> InletClient:
        """Airflow's usual name for :meth:`get_client`."""
        return self.get_client()

    def send_batch(self, messages: Sequence[Message]) -> BatchResult:
        """
        Send messages to the inlet in one batch request; see :meth:`InletClient.send_batch`
        (once AEP answered for part of the batch, a later error is returned in ``result.error``,
        not raised: what AEP accepted must not be sent again).

        Each message is one AEP message (an XDM ``{"header": ..., "body": ...}`` object, or a raw
        JSON object for a flow with ``flow_id``), given as any of:

        * a ``dict`` (any ``Mapping``): encoded once as compact UTF-8 JSON;
        * a ``str`` holding the JSON text: encoded once as UTF-8;
        * ``bytes``/``bytearray``/``memoryview``: already-encoded UTF-8 JSON, sent as is.

        Nothing is validated here beyond encoding: AEP answers for each message. The request body
        must stay within 1,000,000 bytes (``AEPConfigError`` otherwise; split the batch).

        :param messages: the messages, in the order the result reports them.
        :return: one result per message, by position, plus counters.
        :raises TypeError: a message of another type (naming its position).
        """
        return self.get_client().send_batch([encode_message(m, i) for i, m in enumerate(messages)])

    def test_connection(self) -> tuple[bool, str]:
        """
        Obtain a token and post an empty batch (``{"messages":[]}``) to the inlet.

        Nothing is ingested; any answer but 401/403/404/5xx/network errors proves the inlet
        is reachable and accepted the credentials.
        """
        try:
            return True, self.get_client().check()
        except AEPError as exc:
            return False, str(exc)

    def close(self) -> None:
        """Close the client's pooled connections (the hook can be used again after)."""
        with self._client_lock:
            client, self._client = self._client, None
            self._platform = None
        if client is not None:
            client.close()


def encode_message(message: Message, position: int = 0) -> bytes:
    """One message as the UTF-8 JSON bytes the inlet client sends (see :meth:`AEPStreamingHook.send_batch`)."""
    if isinstance(message, bytes):
        return message
    if isinstance(message, (bytearray, memoryview)):
        return bytes(message)
    if isinstance(message, str):
        return message.encode("utf-8")
    if isinstance(message, Mapping):
        # Compact and non-ASCII kept as UTF-8: the smallest body, so more records fit per request.
        return json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    raise TypeError(f"message {position} is a {type(message).__name__}: send a dict, a JSON str or UTF-8 JSON bytes")


def _host_url(host: str | None, port: int | None) -> str:
    """The connection's host as a base URL: keep its scheme, add the port field if set apart."""
    url = (host or "").strip() or DEFAULT_INLET_URL
    if port and "://" in url:
        scheme, rest = url.split("://", 1)
        authority, sep, path = rest.partition("/")
        if ":" not in authority.rsplit("]", 1)[-1]:
            url = f"{scheme}://{authority}:{port}{sep}{path}"
    return url
