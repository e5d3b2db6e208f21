"""
A TCP proxy in front of a real Kafka broker that can hold back the group's offset commits.

The broker advertises the proxy's address, so every client connection goes through it. Requests
are relayed frame by frame (Kafka frames are a 4-byte size, then the request, which starts with
its 2-byte API key); while :attr:`KafkaProxy.hold_commits` is set, OffsetCommit requests are
swallowed, never answered: to the client the coordinator is alive (heartbeats, fetches and
metadata are answered) but no commit ever completes, which is what a real broker does when its
offsets log cannot be written. Nothing else is changed.
"""

from __future__ import annotations

import contextlib
import socket
import socketserver
import struct
import threading

#: Kafka's API key of OffsetCommit.
OFFSET_COMMIT = 8


class KafkaProxy:
    """
    Relays 127.0.0.1:<port> to the broker at 127.0.0.1:``broker_port``.

    :attr:`hold_commits`: swallow OffsetCommit requests while set; :attr:`held` counts them.
    """

    def __init__(self, broker_port: int, port: int = 0) -> None:
        self.broker_port = broker_port
        self.hold_commits = threading.Event()
        self.held = 0
        self._lock = threading.Lock()
        proxy = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                proxy._handle(self.request)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler)
        self._server.daemon_threads = True

    @property
    def port(self) -> int:
        return self._server.server_address[1]

    def start(self) -> KafkaProxy:
        threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _handle(self, client: socket.socket) -> None:
        try:
            broker = socket.create_connection(("127.0.0.1", self.broker_port), timeout=10)
        except OSError:
            return
        broker.settimeout(None)
        client.settimeout(None)
        answers = threading.Thread(target=_pump, args=(broker, client), daemon=True)
        answers.start()
        with contextlib.closing(broker):
            with contextlib.suppress(OSError):
                while True:
                    head = _read_exactly(client, 4)
                    if head is None:
                        break
                    (size,) = struct.unpack(">i", head)
                    body = _read_exactly(client, size)
                    if body is None:
                        break
                    (api_key,) = struct.unpack(">h", body[:2])
                    if api_key == OFFSET_COMMIT and self.hold_commits.is_set():
                        with self._lock:
                            self.held += 1
                        continue
                    broker.sendall(head + body)
            with contextlib.suppress(OSError):
                broker.shutdown(socket.SHUT_RDWR)
        answers.join(10)


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def _pump(src: socket.socket, dst: socket.socket) -> None:
    with contextlib.suppress(OSError):
        while data := src.recv(65536):
            dst.sendall(data)
    with contextlib.suppress(OSError):
        dst.shutdown(socket.SHUT_RDWR)
