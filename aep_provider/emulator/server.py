"""The emulator's HTTP/1.1 server: IMS token endpoint, DCS inlets and the /emulator/ control API."""

from __future__ import annotations

import hmac
import json
import socket
import ssl
import sys
import threading
import time
import uuid
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from aep_provider.emulator import platform
from aep_provider.emulator.config import MAX_BODY_BYTES, EmulatorConfig, EmulatorConfigError, Fault, InletConfig
from aep_provider.emulator.responses import (
    api_key_problem,
    auth_problem,
    fault_body,
    ims_error,
    inlet_problem,
    message_failure,
)
from aep_provider.emulator.state import Accepted, EmulatorState, retry_after_header
from aep_provider.emulator.xdm import check_message

TOKEN_PATH = "/ims/token/v3"
BATCH_PREFIX = "/collection/batch/"
SINGLE_PREFIX = "/collection/"
CONTROL_PREFIX = "/emulator/"
#: Token requests are small forms; anything bigger is not a token request.
_MAX_FORM_BYTES = 64 * 1024
#: Control requests (fault lists) are small too.
_MAX_CONTROL_BYTES = 1024 * 1024
_JSON = "application/json"


class _BodyTooLarge(Exception):
    def __init__(self, size: int) -> None:
        self.size = size


class _BadFraming(Exception):
    """The body's length cannot be known (bad Content-Length or chunk size): answer 400 and hang up."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # SO_REUSEADDR lets a restarted emulator take its port back from TIME_WAIT; a port some
    # process still listens on stays refused (EADDRINUSE). No SO_REUSEPORT: no sharing.
    allow_reuse_address = True
    allow_reuse_port = False

    def __init__(
        self,
        address: tuple[str, int],
        state: EmulatorState,
        stopping: threading.Event,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.state = state
        self.stopping = stopping
        self.tls = tls
        self.connections: set[socket.socket] = set()
        self.connections_lock = threading.Lock()
        super().__init__(address, _Handler)

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        if self.tls is not None:
            # The handshake happens on the first read, in the connection's own thread: a client
            # that never completes it must not hold up accepting the next one.
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, address

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client hanging up mid-request is normal (timeouts, dropped-connection faults), and so
        # is one refusing the certificate (a TLS test); anything else is an emulator bug: one
        # line naming the exception type, never the request's data.
        exc = sys.exc_info()[1]
        if isinstance(exc, (ConnectionError, TimeoutError, ssl.SSLError)):
            return
        print(f"aep-emulator: internal error serving {client_address[0]}: {type(exc).__name__}", file=sys.stderr)

    def close_connections(self) -> None:
        """Cut idle keep-alive connections so clients see the emulator go away."""
        with self.connections_lock:
            conns = list(self.connections)
        for conn in conns:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "AEPEmulator/1.0"
    # Idle keep-alive connections are closed after this many seconds.
    timeout = 120
    server: _Server

    # -- plumbing ----------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in one write, but the client's next request must not wait on
        # Nagle + delayed ACK either.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        with self.server.connections_lock:
            self.server.connections.add(self.connection)

    def finish(self) -> None:
        with self.server.connections_lock:
            self.server.connections.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        # Silent on purpose: request lines are harmless, but nothing a client sends (headers,
        # forms with secrets) may ever reach a log from here.
        pass

    def _send(self, status: int, body: Any = None, headers: dict[str, str] | None = None) -> None:
        # Callers record a request in the state *before* answering it, so that a client holding
        # its answer always finds it in stats() and accepted().
        if isinstance(body, bytes):
            payload = body  # a file (JSON lines), sent as is
        else:
            payload = b"" if body is None else json.dumps(body, separators=(",", ":")).encode()
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Status"
        head = [f"HTTP/1.1 {status} {phrase}", f"Server: {self.server_version}"]
        if body is not None:
            head.append(f"Content-Type: {_JSON}")
        head.append(f"Content-Length: {len(payload)}")
        for name, value in (headers or {}).items():
            head.append(f"{name}: {value}")
        if self.close_connection:
            head.append("Connection: close")
        self.wfile.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + payload)

    def _read_body(self, limit: int) -> bytes:
        """The request body; raises :class:`_BodyTooLarge` (after draining it) past ``limit``."""
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            return self._read_chunked(limit)
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            return b""
        try:
            length = int(length_header)
        except ValueError:
            raise _BadFraming(f"Content-Length {length_header[:40]!r} is not a number") from None
        if length < 0:
            raise _BadFraming(f"Content-Length {length} is negative")
        if length > limit:
            remaining = length
            while remaining > 0:  # drain, so the client reads our 413 instead of a broken pipe
                chunk = self.rfile.read(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)
            raise _BodyTooLarge(length)
        return self.rfile.read(length) if length else b""

    def _read_chunked(self, limit: int) -> bytes:
        parts: list[bytes] = []
        size = 0
        while True:
            line = self.rfile.readline(1024)
            try:
                chunk_len = int(line.split(b";")[0].strip(), 16)
            except ValueError:
                raise _BadFraming("malformed chunked transfer encoding") from None
            if chunk_len == 0:
                while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                    pass  # trailers
                break
            data = self.rfile.read(chunk_len)
            self.rfile.readline(8)
            size += len(data)
            if size <= limit:
                parts.append(data)
        if size > limit:
            raise _BodyTooLarge(size)
        return b"".join(parts)

    def _drop(self) -> None:
        self.server.state.count("connections_dropped")
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def _apply_fault(self, fault: Fault, endpoint: str, inlet_id: str | None) -> bool:
        """Delay, drop or answer as ``fault`` says; ``True`` when the request is finished."""
        if fault.delay_seconds:
            self.server.stopping.wait(fault.delay_seconds)
        if fault.drop_connection:
            self.server.state.record(endpoint, "dropped")
            self._drop()
            return True
        if fault.status is not None:
            headers = {}
            if fault.retry_after is not None:
                headers["Retry-After"] = retry_after_header(fault.retry_after)
            self.server.state.record(endpoint, fault.status)
            self._send(fault.status, fault_body(fault.status, endpoint, inlet_id), headers)
            return True
        return False

    # -- routing -----------------------------------------------------------------------------

    def _guarded(self, route: Any) -> None:
        try:
            route()
        except _BadFraming as err:
            self.close_connection = True
            self._send(400, inlet_problem(400, f"malformed HTTP request: {err}", title="Bad Request"))
        except (ConnectionError, TimeoutError):
            raise
        except Exception as err:  # an emulator bug must not look like a network failure
            self.close_connection = True
            where = f"{self.command} {urlsplit(self.path).path}"
            print(f"aep-emulator: internal error on {where}: {type(err).__name__}", file=sys.stderr)
            self._send(500, inlet_problem(500, f"emulator internal error ({type(err).__name__})"))

    def do_POST(self) -> None:
        self._guarded(self._route_post)

    def _route_post(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path == TOKEN_PATH:
            self._token()
        elif path.startswith(BATCH_PREFIX):
            self._inlet("batch", unquote(path[len(BATCH_PREFIX) :]), url.query)
        elif path.startswith(SINGLE_PREFIX):
            self._inlet("single", unquote(path[len(SINGLE_PREFIX) :]), url.query)
        elif path.startswith(CONTROL_PREFIX):
            self._control("POST", path[len(CONTROL_PREFIX) :], url.query)
        else:
            self._not_found(path)

    def do_GET(self) -> None:
        self._guarded(self._route_get)

    def _route_get(self) -> None:
        url = urlsplit(self.path)
        if url.path.startswith(CONTROL_PREFIX):
            self._control("GET", url.path[len(CONTROL_PREFIX) :], url.query)
        elif url.path.startswith(platform.PREFIX):
            self._platform(url.path, url.query)
        elif url.path in (TOKEN_PATH,) or url.path.startswith(SINGLE_PREFIX):
            self._method_not_allowed()
        else:
            self._not_found(url.path)

    def do_PUT(self) -> None:
        self._method_not_allowed()

    do_DELETE = do_PATCH = do_PUT

    def _not_found(self, path: str) -> None:
        self._discard_body()
        self._send(404, inlet_problem(404, f"No such endpoint: {path}"))

    def _method_not_allowed(self) -> None:
        self._discard_body()
        self._send(405, inlet_problem(405, f"{self.command} is not allowed here; use POST"), {"Allow": "POST"})

    def _discard_body(self) -> None:
        try:
            self._read_body(0)
        except _BodyTooLarge:
            pass
        except _BadFraming:
            self.close_connection = True

    # -- IMS ---------------------------------------------------------------------------------

    def _token(self) -> None:
        state = self.server.state
        config = state.config
        try:
            raw = self._read_body(_MAX_FORM_BYTES)
        except _BodyTooLarge:
            state.record("token", 413)
            self._send(413, ims_error("invalid_request", "token request body too large"))
            return
        fault = state.take_fault("token", None)
        if fault is not None and self._apply_fault(fault, "token", None):
            return
        status, body = 400, None
        content_type = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/x-www-form-urlencoded":
            body = ims_error("invalid_request", "Content-Type must be application/x-www-form-urlencoded")
        else:
            form = {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), keep_blank_values=True).items()}
            scopes = {s.strip() for s in form.get("scope", "").split(",") if s.strip()}
            missing = [s for s in config.required_scopes if s not in scopes]
            if form.get("grant_type") != "client_credentials":
                body = ims_error("unsupported_grant_type", "grant_type must be client_credentials")
            elif not hmac.compare_digest(form.get("client_id", "").encode(), config.client_id.encode()):
                body = ims_error("invalid_client", "invalid client_id parameter")
            elif not hmac.compare_digest(form.get("client_secret", "").encode(), config.client_secret.encode()):
                body = ims_error("invalid_client", "invalid client_secret parameter")
            elif missing:
                body = ims_error("invalid_scope", f"scope must include {','.join(missing)}")
            else:
                status = 200
                body = {
                    "access_token": state.issue_token(),
                    "token_type": "bearer",
                    "expires_in": config.token_ttl_seconds,
                }
        state.record("token", status, body_bytes=len(raw))
        self._send(status, body)

    # -- Platform APIs (Catalog, Schema Registry, Data Access) -------------------------------

    def _platform(self, path: str, query: str) -> None:
        state = self.server.state
        self._discard_body()
        endpoint = platform.endpoint_of(path) or "catalog"
        fault = state.take_fault(endpoint, None)
        if fault is not None and self._apply_fault(fault, endpoint, None):
            return
        refusal = platform.check_headers(self.headers, state.config, state.token_valid)
        if refusal is None:
            params = {k: v[0] for k, v in parse_qs(query).items()}
            refusal = platform.route(path, params, self.headers, state.lake)
        state.record(endpoint, refusal[0])
        self._send(*refusal)

    # -- DCS ---------------------------------------------------------------------------------

    def _inlet(self, endpoint: str, inlet_id: str, query: str) -> None:
        state = self.server.state
        config = state.config
        try:
            raw = self._read_body(MAX_BODY_BYTES)
        except _BodyTooLarge as err:
            state.record(endpoint, 413, inlet_id=inlet_id)
            self._send(
                413,
                inlet_problem(
                    413,
                    f"inletId: [{inlet_id}] request body of {err.size:,} bytes exceeds the limit of "
                    f"{MAX_BODY_BYTES:,} bytes",
                ),
            )
            return
        fault = state.take_fault(endpoint, inlet_id)
        if fault is not None and self._apply_fault(fault, endpoint, inlet_id):
            return
        inlet = config.inlet(inlet_id)
        if inlet is None or not inlet_id:
            state.record(endpoint, 404, inlet_id=inlet_id, body_bytes=len(raw))
            self._send(404, inlet_problem(404, f"inletId: [{inlet_id}] Invalid inlet id: no such streaming inlet"))
            return
        refusal = self._check_headers(inlet, config)
        if refusal is not None:
            state.record(endpoint, refusal[0], inlet_id=inlet_id, body_bytes=len(raw))
            self._send(*refusal)
            return
        sync = endpoint == "single" and parse_qs(query).get("syncValidation", [""])[0].lower() == "true"
        if sync and not inlet.sync_validation_supported:
            state.record(endpoint, 501, inlet_id=inlet_id, body_bytes=len(raw))
            text = f"inletId: [{inlet_id}] syncValidation is not supported in this region"
            self._send(501, inlet_problem(501, text))
            return
        wait = state.admit(inlet_id, inlet.max_requests_per_second, sync)
        if wait is not None:
            state.record(endpoint, 429, inlet_id=inlet_id, body_bytes=len(raw))
            self._send(
                429,
                inlet_problem(429, f"inletId: [{inlet_id}] too many requests"),
                {"Retry-After": retry_after_header(wait)},
            )
            return
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as err:
            state.record(endpoint, 400, inlet_id=inlet_id, body_bytes=len(raw))
            self._send(
                400,
                inlet_problem(400, f"inletId: [{inlet_id}] request body is not valid JSON", cause=str(err)),
            )
            return
        messages = data.get("messages") if endpoint == "batch" and isinstance(data, dict) else None
        count = len(messages) if isinstance(messages, list) else 1
        wait = state.admit_messages(inlet_id, inlet.max_messages_per_second, count)
        if wait is not None:
            state.record(endpoint, 429, inlet_id=inlet_id, body_bytes=len(raw))
            self._send(
                429,
                inlet_problem(429, f"inletId: [{inlet_id}] too many messages"),
                {"Retry-After": retry_after_header(wait)},
            )
            return
        org = config.inlet_org(inlet)
        if endpoint == "batch":
            self._batch(inlet, org, data, fault, raw)
        else:
            self._single(inlet, org, data, fault, sync, raw)

    def _check_headers(self, inlet: InletConfig, config: EmulatorConfig) -> tuple[int, Any] | None:
        """``(status, body)`` refusing the request on its headers, or ``None``."""
        if inlet.authenticated:
            status = config.auth_failure_status
            scheme, _, token = self.headers.get("Authorization", "").partition(" ")
            token = token.strip()
            if scheme.lower() != "bearer" or not token:
                return status, auth_problem(status, inlet.inlet_id, "Ims service token is empty")
            if not self.server.state.token_valid(token):
                return status, auth_problem(status, inlet.inlet_id, "Ims service token is invalid or expired")
            if self.headers.get("x-api-key") != config.client_id:
                return 403, api_key_problem()
            if self.headers.get("x-gw-ims-org-id") != config.inlet_org(inlet):
                return 403, auth_problem(
                    403, inlet.inlet_id, "x-gw-ims-org-id is missing or is not the org that owns this inlet"
                )
        sandbox = self.headers.get("x-sandbox-name")
        if sandbox is not None and sandbox != inlet.sandbox_name:
            return 403, auth_problem(403, inlet.inlet_id, f"the inlet is not in sandbox {sandbox!r} (x-sandbox-name)")
        return None

    def _batch(self, inlet: InletConfig, org: str, data: Any, fault: Fault | None, raw: bytes) -> None:
        state = self.server.state
        inlet_id = inlet.inlet_id
        messages = data.get("messages") if isinstance(data, dict) else None
        if not isinstance(messages, list) or not messages:
            state.record("batch", 400, inlet_id=inlet_id, body_bytes=len(raw))
            self._send(
                400,
                inlet_problem(
                    400,
                    f"inletId: [{inlet_id}] the batch body must be an object with a non-empty 'messages' array",
                ),
            )
            return
        batch_id = state.next_id()
        received_ms = int(time.time() * 1000)
        shape = state.config.failure_shape
        live_uuid = str(uuid.uuid4())
        schema_id = inlet.schema_id
        reject = _message_rejecter(fault)
        responses: list[dict[str, Any]] = []
        accepted: list[dict[str, Any]] = []
        accepted_ids: list[str] = []
        accepted_indexes: list[int] = []
        for index, message in enumerate(messages):
            error = check_message(message, org, schema_id)
            status = 400
            if error is None and reject is not None and reject(index, message):
                status, error = fault.message_status, fault.message  # type: ignore[union-attr]
            if error is None:
                xaction_id = f"{batch_id}:{index}"
                responses.append({"xactionId": xaction_id})
                accepted.append(message)
                accepted_ids.append(xaction_id)
                accepted_indexes.append(index)
            else:
                text = f"inletId: [{inlet_id}] imsOrgId: [{org}] {error}"
                responses.append(message_failure(shape, status, text, live_uuid, index))
        body = {"inletId": inlet_id, "batchId": batch_id, "receivedTimeMs": received_ms, "responses": responses}
        # Accepted means "received": the schema is checked later, in the data lake (a failed batch).
        state.lake.ingest(accepted, received_ms)
        state.record(
            "batch",
            207,
            inlet_id=inlet_id,
            accepted=Accepted(inlet_id, raw, accepted_indexes, org, accepted, accepted_ids, received_ms),
            rejected=len(messages) - len(accepted),
            body_bytes=len(raw),
        )
        self._send(207, body)

    def _single(self, inlet: InletConfig, org: str, message: Any, fault: Fault | None, sync: bool, raw: bytes) -> None:
        state = self.server.state
        inlet_id = inlet.inlet_id
        status = 400
        raw_data = bool(self.headers.get("x-adobe-flow-id"))
        if raw_data:
            # Raw data for an HTTP API dataflow: any JSON object; mapping happens later in AEP.
            error = None if isinstance(message, dict) else "raw data must be a JSON object"
        else:
            error = check_message(message, org, inlet.schema_id)
        reject = _message_rejecter(fault)
        if error is None and reject is not None and reject(0, message):
            status, error = fault.message_status, fault.message  # type: ignore[union-attr]
        if error is not None:
            text = f"inletId: [{inlet_id}] imsOrgId: [{org}] {error}"
            cause = "syncValidation" if sync else None
            state.record("single", status, inlet_id=inlet_id, rejected=1, body_bytes=len(raw))
            self._send(status, inlet_problem(status, text, cause=cause))
            return
        xaction_id = state.next_id()
        received_ms = int(time.time() * 1000)
        body = {
            "inletId": inlet_id,
            "xactionId": xaction_id,
            "receivedTimeMs": received_ms,
            "syncValidation": {"status": "pass"} if sync else {"skipped": True},
        }
        fill_org = None if raw_data else org
        if not raw_data:
            state.lake.ingest([message], received_ms)
        state.record(
            "single",
            200,
            inlet_id=inlet_id,
            accepted=Accepted(inlet_id, raw, None, fill_org, [message], [xaction_id], received_ms),
            body_bytes=len(raw),
        )
        self._send(200, body)

    # -- control -----------------------------------------------------------------------------

    def _control(self, method: str, action: str, query: str) -> None:
        state = self.server.state
        try:
            raw = self._read_body(_MAX_CONTROL_BYTES)
        except _BodyTooLarge:
            self._send(413, {"error": "control request body too large"})
            return
        params = {k: v[0] for k, v in parse_qs(query).items()}
        route = (method, action.rstrip("/"))
        if route == ("GET", "health"):
            self._send(200, {"status": "ok", "inlets": [i.inlet_id for i in state.config.inlets]})
        elif route == ("GET", "stats"):
            self._send(200, state.stats())
        elif route == ("GET", "accepted"):
            try:
                since, limit = (_whole_number(params, name) for name in ("since", "limit"))
            except ValueError as err:
                self._send(400, {"error": str(err)})
                return
            messages, total = state.received(params.get("inlet"), since, limit)
            self._send(200, {"count": len(messages), "total": total, "messages": messages})
        elif route == ("GET", "batches"):
            timeout = float(params.get("wait", "0") or 0)
            if timeout > 0:
                state.lake.wait_validated(min(timeout, 60.0))
            batches = state.lake.batches(status=params.get("status"), dataset_id=params.get("dataset"), limit=10**9)
            self._send(200, {"count": len(batches), "pending": state.lake.pending(), "batches": batches})
        elif route == ("GET", "faults"):
            self._send(200, {"faults": state.faults()})
        elif route == ("POST", "faults"):
            self._inject(raw)
        elif route == ("POST", "revoke-tokens"):
            state.revoke_tokens()
            self._send(200, {"revoked": True})
        elif route == ("POST", "reset"):
            state.reset()
            self._send(200, {"reset": True})
        else:
            self._send(404, {"error": f"unknown control endpoint {method} /emulator/{action}"})

    def _inject(self, raw: bytes) -> None:
        try:
            data = json.loads(raw or b"null")
            items = data if isinstance(data, list) else [data]
            faults = [Fault.from_dict(item) for item in items]
        except (ValueError, EmulatorConfigError) as err:
            self._send(400, {"error": f"bad fault: {err}"})
            return
        for fault in faults:
            self.server.state.inject(fault)
        self._send(201, {"injected": len(faults)})


def _whole_number(params: dict[str, str], name: str) -> int | None:
    """A query parameter that must be a whole number >= 0 (``since`` in epoch ms, ``limit``), or None."""
    value = params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise ValueError(f"{name} must be a whole number >= 0, got {value!r}")
    return int(value)


def _message_rejecter(fault: Fault | None):  # noqa: ANN202
    """A ``(index, message) -> bool`` for the fault's per-message rejections, or ``None``."""
    if fault is None or (not fault.reject_indexes and fault.reject_if_contains is None):
        return None
    indexes = frozenset(fault.reject_indexes)
    needle = fault.reject_if_contains

    def reject(index: int, message: Any) -> bool:
        if index in indexes:
            return True
        return needle is not None and needle in json.dumps(message, ensure_ascii=False)

    return reject


class AEPEmulator:
    """
    A local AEP: IMS ``POST /ims/token/v3`` and DCS ``POST /collection[/batch]/{inletId}``.

    Serves on ``host:port`` (``port=0``: any free port) from a background thread; use as a
    context manager or call :meth:`start` / :meth:`stop`.

    :param config: what to imitate; defaults to one authenticated inlet ``emulator-inlet``.
    :param host: interface to bind.
    :param port: port to bind; 0 picks a free one (see :attr:`url`).
    :param tls_cert: serve HTTPS with this certificate (PEM file; with ``tls_key``).
    :param tls_key: the certificate's private key (PEM file).
    """

    def __init__(
        self,
        config: EmulatorConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        tls_cert: str | None = None,
        tls_key: str | None = None,
    ) -> None:
        self.config = config or EmulatorConfig()
        self.host = host
        self._port = port
        self._tls: ssl.SSLContext | None = None
        if tls_cert or tls_key:
            if not (tls_cert and tls_key):
                raise EmulatorConfigError("HTTPS needs both tls_cert and tls_key (PEM files)")
            self._tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            try:
                self._tls.load_cert_chain(tls_cert, tls_key)
            except (OSError, ssl.SSLError) as err:
                raise EmulatorConfigError(
                    f"cannot load the TLS certificate {tls_cert} and key {tls_key}: {err}"
                ) from None
        self._state = EmulatorState(self.config)
        self._stopping = threading.Event()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def __repr__(self) -> str:
        return f"AEPEmulator(url={self.url if self._server else None!r})"

    @property
    def port(self) -> int:
        if self._server is None:
            return self._port
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        """``http://<host>:<port>``, or ``https://`` when serving TLS (IMS and DCS share it)."""
        return f"{'https' if self._tls else 'http'}://{self.host}:{self.port}"

    def start(self) -> AEPEmulator:
        """
        Bind and serve.

        :raises OSError: the port is taken (``errno.EADDRINUSE``) or cannot be bound.
        :raises EmulatorConfigError: the record file cannot be opened.
        """
        if self._server is not None:
            return self
        self._stopping.clear()
        self._state.open()
        self._state.lake.start()
        try:
            self._server = _Server((self.host, self._port), self._state, self._stopping, self._tls)
        except OSError:
            self._state.close()
            raise
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.1},
            name=f"aep-emulator-{self.port}",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and close every connection (idempotent)."""
        server, self._server = self._server, None
        if server is None:
            return
        self._port = server.server_address[1]
        self._stopping.set()
        self._state.lake.stop()
        server.shutdown()
        server.server_close()
        server.close_connections()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._state.close()

    def serve_forever(self) -> None:
        """Start, then block until interrupted (the CLI)."""
        self.start()
        assert self._thread is not None
        try:
            # Sleep, not Thread.join(): in CPython < 3.13 a KeyboardInterrupt (SIGINT, or SIGTERM
            # turned into one) raised inside join() marks the still-running thread as stopped.
            while self._thread.is_alive():
                time.sleep(0.5)
        finally:
            self.stop()

    def __enter__(self) -> AEPEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- inspection and control --------------------------------------------------------------

    def accepted(self, inlet_id: str | None = None) -> list[dict[str, Any]]:
        """Every accepted message (``header.imsOrgId`` filled in), in arrival order."""
        return self._state.accepted(inlet_id)

    def received(
        self, inlet_id: str | None = None, since_ms: int | None = None, limit: int | None = None
    ) -> list[dict[str, Any]]:
        """Accepted messages with when they arrived: ``{"inletId", "receivedTimeMs", "message"}`` (see ``GET /emulator/accepted``)."""
        return self._state.received(inlet_id, since_ms, limit)[0]

    def stats(self) -> dict[str, Any]:
        """Counters: ``requests[endpoint][str(status)]``, ``messages_accepted``, ``tokens_issued``, ..."""
        return self._state.stats()

    def inject(self, fault: Fault) -> None:
        """Misbehave as ``fault`` says for the next matching requests."""
        self._state.inject(fault)

    def faults(self) -> list[dict[str, Any]]:
        """Faults still pending, with how many requests each has left (``remaining``)."""
        return self._state.faults()

    def revoke_tokens(self) -> None:
        """Every token issued so far now answers 401 (token expiry mid-run)."""
        self._state.revoke_tokens()

    def reset(self) -> None:
        """Forget tokens, faults, accepted messages, batches and counters."""
        self._state.reset()

    def batches(self, status: str | None = None, dataset_id: str | None = None) -> dict[str, dict[str, Any]]:
        """Catalog batches made of accepted messages (``status``: processing, success, failed)."""
        return self._state.lake.batches(status=status, dataset_id=dataset_id, limit=10**9)

    def wait_validated(self, timeout: float = 30.0) -> bool:
        """Block until asynchronous validation has finished every batch (False after ``timeout`` seconds)."""
        return self._state.lake.wait_validated(timeout)
