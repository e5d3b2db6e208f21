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


def test_the_environments_proxy_applies_when_the_connection_names_none(aep_emulator, proxy_port, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{proxy_port}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    client = client_for(aep_emulator.url)
    assert client.send_batch([xdm("a")]).accepted == 1
    assert client.send_batch([xdm("b")]).accepted == 1
    assert [path for path, _ in _ForwardProxy.seen] == [
        f"{aep_emulator.url}/ims/token/v3",
        f"{aep_emulator.url}/collection/batch/emulator-inlet",
        f"{aep_emulator.url}/collection/batch/emulator-inlet",
    ]


def test_no_proxy_and_the_connections_own_proxy_beat_the_environment(aep_emulator, proxy_port, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{closed_port()}")  # would fail every call
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    assert client_for(aep_emulator.url).send_batch([xdm("a")]).accepted == 1
    monkeypatch.delenv("NO_PROXY")
    client = client_for(aep_emulator.url, proxy=f"http://127.0.0.1:{proxy_port}")
    assert client.send_batch([xdm("b")]).accepted == 1
    assert len(_ForwardProxy.seen) == 2


def test_a_netrc_entry_never_replaces_the_bearer_token(aep_emulator, tmp_path, monkeypatch):
    netrc = tmp_path / ".netrc"
    netrc.write_text("machine 127.0.0.1 login someone password netrc-pw-123\n")
    netrc.chmod(0o600)
    monkeypatch.setenv("NETRC", str(netrc))
    monkeypatch.setenv("HOME", str(tmp_path))
    client = client_for(aep_emulator.url)
    assert client.send_batch([xdm("a")]).accepted == 1
    assert accepted_ids(aep_emulator) == ["a"]


def test_a_ca_bundle_from_the_environment_applies_only_where_the_connection_sets_no_verify(monkeypatch):
    from aep_provider.aep.transport import build_session

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/env-bundle.pem")
    url = "https://platform.adobe.io/x"
    assert build_session().merge_environment_settings(url, {}, None, None, None)["verify"] == "/etc/env-bundle.pem"
    assert build_session(verify=False).merge_environment_settings(url, {}, None, None, None)["verify"] is False
    own = build_session(verify="/etc/own.pem").merge_environment_settings(url, {}, None, None, None)
    assert own["verify"] == "/etc/own.pem"
