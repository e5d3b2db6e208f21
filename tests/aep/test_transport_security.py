"""
Transport security for real: https required off loopback, TLS verified against a CA the test
makes, HTTP CONNECT proxies with and without authentication, name-resolution failures.

The emulator serves HTTPS with a certificate from a CA generated here (tests/aep/tls.py); the
proxy is a CONNECT proxy on 127.0.0.1 (tests/aep/connect_proxy.py). Nothing leaves 127.0.0.1.
"""

from __future__ import annotations

import http.client
import logging
import socket
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path

import pytest

from aep_provider.aep import AEPConfigError
from aep_provider.emulator import AEPEmulator, EmulatorConfig
from aep_provider.emulator.config import EXAMPLE_DATASET_ID
from aep_provider.get_provider_info import get_provider_info
from tests.aep.connect_proxy import connect_proxy
from tests.aep.support import accepted_ids, client_for, serve_http, settings_for, xdm
from tests.aep.tls import ServerTLS, make_ca, make_server_tls

pytestmark = pytest.mark.integration

PROXY_PASSWORD = "proxy-pw-&:@-123"


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> ServerTLS:
    return make_server_tls(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def https_emulator(tls: ServerTLS) -> Iterator[AEPEmulator]:
    with AEPEmulator(EmulatorConfig(), tls_cert=str(tls.cert), tls_key=str(tls.key)) as emulator:
        yield emulator


# -- https is required off loopback --------------------------------------------------------------


@pytest.mark.parametrize("option", ["inlet_url", "ims_url", "platform_url"])
def test_plain_http_to_a_remote_host_is_refused_naming_the_url_and_the_option(option):
    with pytest.raises(AEPConfigError) as info:
        settings_for("https://aep.example.com", **{option: "http://aep.example.com:8080"})
    text = str(info.value)
    assert "'http://aep.example.com:8080'" in text and "allow_insecure_http" in text and "https://" in text


class _AnyHostToEmulator(BaseHTTPRequestHandler):
    """A forward proxy that relays every request to the emulator, whatever host it names."""

    target_port = 0
    seen: list[str] = []

    def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(self.path)
        path = self.path.split("/", 3)[3] if "://" in self.path else self.path.lstrip("/")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("proxy-authorization", "connection")}
        upstream = http.client.HTTPConnection("127.0.0.1", type(self).target_port, timeout=5)
        upstream.request("POST", f"/{path}", body, headers)
        answer = upstream.getresponse()
        payload = answer.read()
        self.send_response(answer.status)
        self.send_header("Content-Type", answer.getheader("Content-Type", "application/json"))
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        upstream.close()

    def log_message(self, *args: object) -> None:
        pass


def test_plain_http_is_refused_before_any_connection_unless_the_connection_allows_it(aep_emulator):
    """Every request would reach the proxy first: refused, the proxy sees none; allowed, it relays them."""
    _AnyHostToEmulator.target_port, _AnyHostToEmulator.seen = aep_emulator.port, []
    with serve_http(_AnyHostToEmulator) as proxy_port:
        remote = "http://aep.example.com"
        proxy = f"http://127.0.0.1:{proxy_port}"
        # Built without the settings' check (as a caller of InletClient may): the transport refuses.
        client = client_for(aep_emulator.url, proxy=proxy, auth="none")
        client.base_url = remote
        client.batch_url = f"{remote}/collection/batch/emulator-inlet"
        with pytest.raises(
            AEPConfigError, match=r"'http://aep.example.com/collection/batch/emulator-inlet'.*allow_insecure"
        ):
            client.send_batch([xdm("a")])
        assert _AnyHostToEmulator.seen == [] and accepted_ids(aep_emulator) == []

        allowed = client_for(remote, proxy=proxy, allow_insecure_http=True)
        assert allowed.send_batch([xdm("a")]).accepted == 1
    assert _AnyHostToEmulator.seen == [f"{remote}/ims/token/v3", f"{remote}/collection/batch/emulator-inlet"]
    assert accepted_ids(aep_emulator) == ["a"]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]"])
def test_plain_http_to_loopback_needs_no_option(host):
    settings = settings_for(f"http://{host}:8080")
    assert settings.allow_insecure_http is False and settings.inlet_url == f"http://{host}:8080"


def test_a_host_name_that_does_not_resolve_is_a_configuration_error_at_once(aep_emulator, monkeypatch, caplog):
    """
    Resolving a name would ask this machine's DNS server, which tests must not reach: the
    resolver's answer for one unknown name is given here (the only fake), the rest is real.
    """
    real = socket.getaddrinfo

    def resolve(host, *args, **kwargs):
        if host == "ims.example.invalid":
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    client = client_for(aep_emulator.url, ims_url="https://ims.example.invalid", max_attempts=8)
    with caplog.at_level(logging.WARNING), pytest.raises(AEPConfigError) as info:
        client.send_batch([xdm("a")])
    text = str(info.value)
    assert "ims.example.invalid" in text and "cannot be resolved" in text and "ims_url" in text
    # One attempt: not the ~50 s of retries of a transient error.
    assert not [r for r in caplog.records if "attempt" in r.getMessage()]


# -- TLS ------------------------------------------------------------------------------------------


def test_tls_with_the_connections_ca_bundle(https_emulator, tls):
    assert https_emulator.url.startswith("https://127.0.0.1:")
    client = client_for(https_emulator.url, verify=str(tls.ca))
    assert client.send_batch([xdm("a"), xdm("b")]).accepted == 2
    assert accepted_ids(https_emulator) == ["a", "b"]
    assert https_emulator.stats()["tokens_issued"] == 1  # IMS over TLS too


@pytest.mark.parametrize("verify", ["default", "wrong CA"])
def test_a_certificate_no_trusted_ca_signed_fails_at_once_with_a_clear_message(
    https_emulator, tmp_path: Path, verify, caplog
):
    settings = {} if verify == "default" else {"verify": str(make_ca(tmp_path, "another-ca")[0])}
    client = client_for(https_emulator.url, max_attempts=8, **settings)
    with caplog.at_level(logging.WARNING), pytest.raises(AEPConfigError) as info:
        client.send_batch([xdm("a")])
    text = str(info.value)
    assert f"{https_emulator.url}/ims/token/v3" in text and "certificate" in text and "'verify'" in text
    assert not [r for r in caplog.records if "attempt" in r.getMessage()]  # not retried
    assert https_emulator.stats()["tokens_issued"] == 0 and accepted_ids(https_emulator) == []


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
def test_verification_can_be_switched_off_explicitly(https_emulator):
    assert client_for(https_emulator.url, verify=False).send_batch([xdm("a")]).accepted == 1


def test_a_ca_bundle_path_that_does_not_exist_is_a_configuration_error(tmp_path: Path):
    missing = tmp_path / "missing.pem"
    with pytest.raises(AEPConfigError, match=f"'verify'.*{missing}"):
        settings_for("https://aep.example.com", verify=str(missing))


# -- proxies --------------------------------------------------------------------------------------


def test_https_through_a_connect_proxy(https_emulator, tls):
    with connect_proxy() as proxy:
        settings = settings_for(https_emulator.url, verify=str(tls.ca), proxy=proxy.url)
        client = settings.create_client()
        assert client.send_batch([xdm("a")]).accepted == 1
        # The Platform API too (same session): Catalog answers through the tunnel.
        assert settings.create_platform_client(client).dataset(EXAMPLE_DATASET_ID)["name"]
    target = f"CONNECT 127.0.0.1:{https_emulator.port} "
    assert proxy.requests and all(line.startswith(target) for line, _ in proxy.requests), proxy.requests
    assert all(auth is None for _, auth in proxy.requests)
    assert accepted_ids(https_emulator) == ["a"]


def test_https_through_an_authenticating_connect_proxy(https_emulator, tls):
    with connect_proxy(("proxyuser", PROXY_PASSWORD)) as proxy:
        client = client_for(
            https_emulator.url,
            verify=str(tls.ca),
            proxy=f"http://proxyuser@127.0.0.1:{proxy.port}",
            proxy_password=PROXY_PASSWORD,
        )
        assert client.send_batch([xdm("a")]).accepted == 1
    assert {auth for _, auth in proxy.requests} == {proxy._expected_authorization()}
    assert PROXY_PASSWORD not in repr(client)


def test_a_407_is_a_clear_error_that_never_shows_the_proxy_password(https_emulator, tls, caplog):
    with connect_proxy(("proxyuser", "the-right-one")) as proxy:
        settings = settings_for(
            https_emulator.url,
            verify=str(tls.ca),
            proxy=f"http://proxyuser@127.0.0.1:{proxy.port}",
            proxy_password=PROXY_PASSWORD,
            max_attempts=8,
        )
        with caplog.at_level(logging.DEBUG), pytest.raises(AEPConfigError) as info:
            settings.create_client().send_batch([xdm("a")])
    text = str(info.value)
    assert "407" in text and f"http://127.0.0.1:{proxy.port}" in text and "proxy_password" in text
    assert len(proxy.requests) == 1  # not retried
    shown = text + repr(settings) + caplog.text
    for form in (PROXY_PASSWORD, "proxy-pw-%26%3A%40-123"):
        assert form not in shown
    assert set(settings.secrets()) >= {PROXY_PASSWORD, "proxy-pw-%26%3A%40-123"}


def test_the_proxy_password_is_a_masked_connection_field():
    fields = get_provider_info()["connection-types"][0]["conn-fields"]
    assert fields["proxy_password"]["schema"]["format"] == "password"
    assert fields["allow_insecure_http"]["schema"]["type"][0] == "boolean"
    assert fields["allow_insecure_http"]["schema"]["default"] is False


def test_a_proxy_password_without_a_proxy_user_is_a_configuration_error():
    with pytest.raises(AEPConfigError, match="proxy user"):
        settings_for("https://aep.example.com", proxy="http://127.0.0.1:3128", proxy_password=PROXY_PASSWORD)
