"""Unreachable, vanishing or redirecting endpoints end in one clear error, within the (short) deadline."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

import pytest

from aep_provider.aep import AEPConfigError, AEPRequestError, AEPUnavailableError
from aep_provider.emulator import AEPEmulator, EmulatorConfig, InletConfig
from tests.aep.support import client_for, closed_port, serve_http, xdm

pytestmark = [pytest.mark.integration, pytest.mark.timeout(30)]


def test_unreachable_inlet_fails_naming_the_url():
    url = f"http://127.0.0.1:{closed_port()}"
    client = client_for(url, auth="none", max_attempts=3)
    with pytest.raises(AEPUnavailableError) as info:
        client.send_batch([xdm("a")])
    text = str(info.value)
    assert f"{url}/collection/batch/emulator-inlet" in text
    assert "ConnectionError" in text and "3 attempt(s)" in text


def test_emulator_down_past_the_deadline():
    emulator = AEPEmulator(EmulatorConfig(inlets=(InletConfig(authenticated=False),))).start()
    client = client_for(
        emulator.url, auth="none", retry_deadline_seconds=1.0, max_attempts=100, backoff_max_seconds=0.2
    )
    assert client.send_batch([xdm("a")]).accepted == 1
    emulator.stop()
    with pytest.raises(AEPUnavailableError, match="kept failing") as info:
        client.send_batch([xdm("b")])
    # The deadline, not the attempt count, ended it.
    assert "100 attempts, 1s" in str(info.value)


class _Redirector(BaseHTTPRequestHandler):
    """Answers every POST with a redirect to a "different host", recording what it was sent."""

    seen: list[dict[str, str]] = []

    def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        type(self).seen.append(dict(self.headers))
        self.send_response(307)
        self.send_header("Location", "http://127.0.0.2:1/elsewhere?sig=abc")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def redirector():
    _Redirector.seen = []
    with serve_http(_Redirector) as port:
        yield f"http://127.0.0.1:{port}"


def test_inlet_redirect_is_not_followed(redirector):
    client = client_for(redirector, auth="token", access_token="tok-never-elsewhere")
    with pytest.raises(
        AEPRequestError, match="redirects to http://127.0.0.2:1/elsewhere; redirects are not followed"
    ) as info:
        client.send_batch([xdm("a")])
    assert info.value.status == 307
    assert "sig=abc" not in str(info.value)
    assert len(_Redirector.seen) == 1


def test_ims_redirect_is_a_config_error_naming_the_target(redirector):
    with pytest.raises(AEPConfigError, match="HTTP 307 .redirects to http://127.0.0.2:1/elsewhere.: check the IMS URL"):
        client_for(redirector).send_batch([xdm("a")])
    assert len(_Redirector.seen) == 1


class _Trickler(BaseHTTPRequestHandler):
    """Answers at once, then sends its (valid) body a byte at a time: each read is quick, the whole is not."""

    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 -- http.server's naming
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path.startswith("/ims/"):
            status, body = 200, b'{"access_token": "tok-trickled", "expires_in": 3600}'
        else:
            status, body = 207, b'{"responses": [{"xactionId": "b:0"}]}'
        body += b" " * 40  # ~12 s at the pace below: far past the deadline
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            for byte in body:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
                time.sleep(0.15)
        except OSError:
            pass  # the client gave up, as it should

    def log_message(self, *args: object) -> None:
        pass


@pytest.mark.parametrize("auth", ["none", "oauth"])
def test_a_trickled_answer_cannot_hold_a_call_past_its_deadline(auth):
    # The read timeout bounds each socket read, not the whole body: the deadline must bound that.
    with serve_http(_Trickler) as port:
        url = f"http://127.0.0.1:{port}"
        client = client_for(url, auth=auth, retry_deadline_seconds=1.5, timeout=(1.0, 5.0))
        with pytest.raises(AEPUnavailableError, match="still arriving when the 1.5s deadline passed") as info:
            client.send_batch([xdm("a")])
    assert (url + ("/ims/token/v3" if auth == "oauth" else "/collection/batch/emulator-inlet")) in str(info.value)
