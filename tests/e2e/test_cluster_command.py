"""
The documented ``make cluster`` / ``make cluster-stop`` commands, run as written (docs/running-in-production.md).

tests/e2e/test_cluster.py drives the same topology through ``scripts.cluster.ClusterStack`` with
test settings (free ports, one slot per worker); this test proves that what a user types on a
fresh clone starts it (PostgreSQL, Redis, the Airflow components, two Celery workers, Kafka and
the emulator on their default ports) and stops all of it.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
import requests

from scripts.cluster import CLUSTER_STATE_DIR, ClusterStack
from tests.docs_commands import REPO_ROOT, commands, documented

pytestmark = [pytest.mark.e2e, pytest.mark.integration, pytest.mark.cluster]

DOC = "docs/running-in-production.md"


def _sh(command: str, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["bash", "-c", command], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=timeout,
        stdin=subprocess.DEVNULL,
    )  # fmt: skip


def _health(api_url: str, deadline: float) -> dict:
    """The API server's health answer once the scheduler reports healthy (a busy machine is slow, not failed)."""
    last: object = None
    while time.monotonic() < deadline:
        try:
            answer = requests.get(f"{api_url}/api/v2/monitor/health", timeout=10)
            last = answer.status_code, answer.text[:300]
            if answer.ok and answer.json().get("scheduler", {}).get("status") == "healthy":
                return answer.json()
        except requests.RequestException as exc:
            last = exc
        time.sleep(2)
    raise AssertionError(f"the cluster's API server never reported a healthy scheduler: {last}")


def test_make_cluster_starts_the_documented_topology_and_make_cluster_stop_stops_it():
    # A user's shell: no test settings for Airflow or AEP leak into the cluster.
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEP_", "AIRFLOW", "CLUSTER_"))}
    # The plain form, as the doc gives it first ("make cluster" is also the prefix of its variants).
    assert "make cluster" in {c.text for c in commands() if c.doc == DOC}, f"{DOC} no longer gives `make cluster`"
    start, stop = "make cluster", documented(DOC, "make cluster-stop")
    stack = ClusterStack(state_dir=CLUSTER_STATE_DIR)
    try:
        started = _sh(start, env, timeout=900)
        assert started.returncode == 0, f"{started.stdout[-3000:]}\n{started.stderr[-3000:]}"
        assert "Cluster is up (CeleryExecutor)" in started.stdout, started.stdout
        state = stack.read_state()
        assert state.get("api_url") == "http://127.0.0.1:8090", state
        health = _health(state["api_url"], time.monotonic() + 120)
        assert health["metadatabase"]["status"] == "healthy", health
        running = stack.running()
        assert running and all(running.values()), f"not every component runs: {running}"
        assert {"postgres", "redis", "worker-1", "worker-2", "scheduler", "triggerer"} <= running.keys(), running
    finally:
        stopped = _sh(stop, env, timeout=300)
    assert stopped.returncode == 0, f"{stopped.stdout}\n{stopped.stderr}"
    assert not any(stack.running().values()), f"left running after {stop}: {stack.running()}"
