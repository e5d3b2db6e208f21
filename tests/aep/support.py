"""Helpers for client tests against the emulator: XDM messages and a client with short budgets."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aep_provider.aep import AEPSettings, InletClient
from aep_provider.aep.platform import PlatformClient
from aep_provider.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_IMS_ORG_ID, DEFAULT_INLET_ID

SCHEMA = {
    "id": "https://ns.adobe.com/tenant/schemas/test",
    "contentType": "application/vnd.adobe.xed-full+json;version=1",
}

#: Budgets small enough that failing tests end in a second or two.
FAST = {
    "retry_deadline_seconds": 5.0,
    "max_attempts": 4,
    "backoff_base_seconds": 0.01,
    "backoff_max_seconds": 0.05,
    "timeout": (1.0, 2.0),
}


def xdm(key: str, pad: int = 0) -> bytes:
    """One valid XDM message whose ``_id`` is ``key``; ``pad`` adds that many bytes."""
    entity: dict[str, Any] = {"_id": key}
    if pad:
        entity["pad"] = "x" * pad
    return json.dumps(
        {
            "header": {"schemaRef": SCHEMA, "imsOrgId": DEFAULT_IMS_ORG_ID},
            "body": {"xdmMeta": {"schemaRef": SCHEMA}, "xdmEntity": entity},
        },
        separators=(",", ":"),
    ).encode()


def accepted_ids(emulator: Any) -> list[str]:
    return [m["body"]["xdmEntity"]["_id"] for m in emulator.accepted()]


def settings_for(url: str, **overrides: Any) -> AEPSettings:
    values: dict[str, Any] = {
        "inlet_id": DEFAULT_INLET_ID,
        "inlet_url": url,
        "ims_url": url,
        "platform_url": url,
        "client_id": DEFAULT_CLIENT_ID,
        "client_secret": DEFAULT_CLIENT_SECRET,
        "ims_org_id": DEFAULT_IMS_ORG_ID,
        **FAST,
    }
    values.update(overrides)
    return AEPSettings.from_values(values)


def client_for(url: str, *, on_token: Callable[[str], None] | None = None, **overrides: Any) -> InletClient:
    return settings_for(url, **overrides).create_client(on_token=on_token)


def platform_for(url: str, **overrides: Any) -> PlatformClient:
    """A Platform client on ``url`` sharing a fresh inlet client's session and token."""
    settings = settings_for(url, **overrides)
    return settings.create_platform_client(settings.create_client())


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def serve_http(handler: type[BaseHTTPRequestHandler]) -> Iterator[int]:
    """Serve ``handler`` on a free 127.0.0.1 port in a background thread; yield the port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
