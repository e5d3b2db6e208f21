"""The ``proxy`` option: IMS and inlet calls go through a (local, forwarding) HTTP proxy."""

from __future__ import annotations

import http.client
from http.server import BaseHTTPRequestHandler
from urllib.parse import urlsplit

import pytest

from aep_provider.aep import AEPUnavailableError
from tests.aep.support import accepted_ids, client_for, closed_port, serve_http, xdm

pytestmark = pytest.mark.integration


class _ForwardProxy(BaseHTTPRequestHandler):
    """A plain-HTTP forward proxy: requests arrive in absolute form and are relayed as they are."""

    seen: list[tuple[str, str | None]] = []

    def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append((self.path, self.headers.get("Proxy-Authorization")))
        target = urlsplit(self.path)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "connection")}
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=5)
        upstream.request("POST", target.path + (f"?{target.query}" if target.query else ""), body, headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        for key, value in answer.getheaders():
            if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def proxy_port():
    _ForwardProxy.seen = []
    with serve_http(_ForwardProxy) as port:
        yield port


def test_calls_go_through_the_proxy_with_its_credentials(aep_emulator, proxy_port):
    client = client_for(aep_emulator.url, proxy=f"http://proxyuser:proxy-pw-123@127.0.0.1:{proxy_port}")
    assert client.send_batch([xdm("a")]).accepted == 1
    paths = [path for path, _ in _ForwardProxy.seen]
    assert paths == [f"{aep_emulator.url}/ims/token/v3", f"{aep_emulator.url}/collection/batch/emulator-inlet"]
    assert all(auth and auth.startswith("Basic ") for _, auth in _ForwardProxy.seen)
    assert accepted_ids(aep_emulator) == ["a"]
    assert "proxy-pw-123" not in repr(client)


def test_unreachable_proxy_fails_clearly_without_its_password(aep_emulator):
    proxy = f"http://proxyuser:proxy-pw-123@127.0.0.1:{closed_port()}"
    client = client_for(aep_emulator.url, auth="none", proxy=proxy, max_attempts=2)
    with pytest.raises(AEPUnavailableError, match="ProxyError") as info:
        client.send_batch([xdm("a")])
    assert "proxy-pw-123" not in str(info.value)
