"""
Load generator for the AEP emulator alone: batch requests/s and messages/s it sustains.

Starts ``python -m aep_provider.emulator --port 0`` in its own process (so the load generator
does not share its GIL), takes one IMS token, then has ``--threads`` threads each post
pre-encoded batches of ``--batch`` XDM messages of about ``--message-bytes`` bytes over one
keep-alive ``requests.Session`` for ``--seconds`` seconds. Every answer must be a 207 whose
entries all succeeded. Prints one JSON line with the figures.

    .venv/bin/python bench/emulator_load.py --threads 4 --batch 500 --message-bytes 1000 --seconds 10
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time

import requests

from aep_provider.emulator import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, DEFAULT_IMS_ORG_ID, DEFAULT_INLET_ID

SCHEMA = {
    "id": "https://ns.adobe.com/bench/schemas/load",
    "contentType": "application/vnd.adobe.xed-full+json;version=1",
}


def make_message(index: int, size: int) -> bytes:
    """One XDM message of roughly ``size`` encoded bytes."""
    entity = {
        "_id": f"bench-{index}",
        "timestamp": "2026-01-01T00:00:00Z",
        "eventType": "bench.load",
        "identityMap": {"ECID": [{"id": f"{index:020d}", "primary": True}]},
        "_tenant": {"payload": ""},
    }
    message = {"header": {"schemaRef": SCHEMA}, "body": {"xdmMeta": {"schemaRef": SCHEMA}, "xdmEntity": entity}}
    pad = max(0, size - len(json.dumps(message, separators=(",", ":"))))
    entity["_tenant"]["payload"] = "x" * pad
    return json.dumps(message, separators=(",", ":")).encode()


def start_emulator(record: str | None) -> tuple[subprocess.Popen, str]:
    cmd = [sys.executable, "-m", "aep_provider.emulator", "--host", "127.0.0.1", "--port", "0"]
    if record:
        cmd += ["--record", record]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # type: ignore[union-attr]
    match = re.search(r"listening on (http://\S+)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"emulator did not start: {line!r}")
    return proc, match.group(1)


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--batch", type=int, default=500, help="messages per request")
    parser.add_argument("--message-bytes", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--record", help="also pass --record FILE to the emulator")
    args = parser.parse_args()

    messages = [make_message(i, args.message_bytes) for i in range(args.batch)]
    body = b'{"messages":[' + b",".join(messages) + b"]}"
    proc, url = start_emulator(args.record)
    try:
        token = requests.post(
            f"{url}/ims/token/v3",
            data={
                "grant_type": "client_credentials",
                "client_id": DEFAULT_CLIENT_ID,
                "client_secret": DEFAULT_CLIENT_SECRET,
            },
            timeout=10,
        ).json()["access_token"]
        headers = {
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "x-api-key": DEFAULT_CLIENT_ID,
            "x-gw-ims-org-id": DEFAULT_IMS_ORG_ID,
            "x-sandbox-name": "prod",
        }
        endpoint = f"{url}/collection/batch/{DEFAULT_INLET_ID}"
        latencies: list[float] = []
        errors: list[str] = []
        lock = threading.Lock()
        deadline = time.monotonic() + args.seconds

        def worker() -> None:
            session = requests.Session()
            mine: list[float] = []
            while time.monotonic() < deadline:
                t0 = time.perf_counter()
                response = session.post(endpoint, data=body, headers=headers, timeout=30)
                mine.append(time.perf_counter() - t0)
                # A cheap check that every entry succeeded: failures carry a status key.
                if response.status_code != 207 or b'"status' in response.content:
                    with lock:
                        errors.append(f"{response.status_code} {response.text[:200]}")
                    return
            with lock:
                latencies.extend(mine)

        started = time.perf_counter()
        threads = [threading.Thread(target=worker) for _ in range(args.threads)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - started
        stats = requests.get(f"{url}/emulator/stats", timeout=30).json()
        server_rss = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    if errors:
        raise SystemExit(f"emulator answered badly: {errors[0]}")
    requests_done = len(latencies)
    latencies.sort()
    result = {
        "threads": args.threads,
        "batch": args.batch,
        "message_bytes": len(messages[0]),
        "request_bytes": len(body),
        "seconds": round(elapsed, 2),
        "requests": requests_done,
        "requests_per_s": round(requests_done / elapsed, 1),
        "messages_per_s": round(requests_done * args.batch / elapsed),
        "mb_per_s": round(requests_done * len(body) / elapsed / 1e6, 1),
        "latency_ms_p50": round(statistics.median(latencies) * 1000, 1),
        "latency_ms_p99": round(latencies[int(0.99 * (requests_done - 1))] * 1000, 1),
        "emulator_messages_accepted": stats["messages_accepted"],
        "emulator_rss_mb": round(server_rss),
        "cpus": os.cpu_count(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
