"""
A minimal batch inlet for ``make bench``'s main cases: it parses each body, accepts every message
and counts, nothing more.

The AEP emulator checks every message of every request in Python, which on a 2-core machine
takes more CPU than the clients it serves, so both the peer and ours would measure the emulator.
Like the issue's own baseline ("a minimal local inlet that only counts"), the main cases post
here; the cases that need the emulator's behaviour (latency faults, rate limits) still use it.

    python -m bench.counting_inlet --port 0     # prints "counting inlet listening on http://..."
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import orjson


class _Counts:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.messages = 0
        self.requests = 0
        self.bytes = 0
        self.batches = 0

    def snapshot(self) -> dict[str, Any]:
        # The same keys the bench reads from the emulator's stats.
        return {
            "messages_accepted": self.messages,
            "requests": {"batch": {"207": self.batches}} if self.batches else {},
            "rate_limited": 0,
            "bytes": self.bytes,
        }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes: with Nagle's algorithm the body waits for the
    # client's delayed ACK (40 ms per request).
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
        return

    def _answer(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        if self.path == "/stats":
            self._answer(200, json.dumps(self.server.counts.snapshot()).encode())
        else:
            self._answer(404, b"{}")

    def do_POST(self) -> None:
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        counts = self.server.counts
        if self.path == "/reset":
            with counts.lock:
                counts.reset()
            self._answer(200, b"{}")
            return
        if not self.path.startswith("/collection/batch/"):
            self._answer(404, b"{}")
            return
        try:
            # simdjson validates the body without building Python objects: this inlet must cost
            # less than the clients it measures.
            count = len(self.server.parser().parse(raw)["messages"])
        except (ValueError, KeyError, TypeError):
            self._answer(400, b'{"title": "not a batch body"}')
            return
        with counts.lock:
            counts.batches += 1
            counts.requests += 1
            counts.messages += count
            counts.bytes += len(raw)
            batch_id = f"{int(time.time() * 1000)}:{counts.batches}"
        head = orjson.dumps({"inletId": self.path.rsplit("/", 1)[-1], "batchId": batch_id})[:-1]
        entries = b",".join(b'{"xactionId":"%s:%d"}' % (batch_id.encode(), i) for i in range(count))
        self._answer(207, head + b',"responses":[' + entries + b"]}")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int]) -> None:
        super().__init__(address, _Handler)
        self.counts = _Counts()
        self._local = threading.local()

    def parser(self) -> Any:
        """A simdjson parser for the calling thread (they are not thread-safe)."""
        parser = getattr(self._local, "parser", None)
        if parser is None:
            import simdjson

            parser = self._local.parser = simdjson.Parser()
        return parser


class CountingInletClient:
    """What the bench's runner needs of an inlet: its URL, reset() and stats()."""

    def __init__(self, url: str) -> None:
        import requests

        self.url = url
        self._session = requests.Session()

    def reset(self) -> None:
        self._session.post(f"{self.url}/reset", timeout=30).raise_for_status()

    def stats(self) -> dict[str, Any]:
        answer = self._session.get(f"{self.url}/stats", timeout=30)
        answer.raise_for_status()
        return dict(answer.json())

    def inject(self, fault: Any) -> None:
        raise NotImplementedError("the counting inlet has no faults; use the emulator")

    def close(self) -> None:
        self._session.close()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.counting_inlet", description=__doc__.strip().split("\n\n")[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    server = _Server((args.host, args.port))
    host, port = server.server_address[:2]
    print(f"counting inlet listening on http://{host}:{port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
