"""
End to end, the first hour of a new user: ``make run`` (a real ``airflow standalone``), the commands
the docs give (read from the docs, see ``tests/docs_commands.py``), the UI's Test button, a green
run's log, a manual run with a hand-set data interval, metrics and lineage, ``make stop``.

One stack for the module. Kafka is the session broker (``KAFKA_BOOTSTRAP_SERVERS``, as the README
allows), the emulator, Airflow's API server and StatsD use free ports instead of 8765, 8080 and
8125, and the state directory is a temp dir (``DEVSTACK_STATE_DIR``), so this runs next to a
developer's own ``make run``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import signal
import socket
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests
from confluent_kafka import Producer

from aep_provider.emulator import RemoteEmulator
from scripts.devstack import DAG_ID, STATE_DIR_ENV, DevStack
from scripts.kafka_local import BOOTSTRAP_ENV, free_port
from scripts.sample_events import (
    DEFAULT_DATASET_ID,
    DEFAULT_SCHEMA_ID,
    EMULATOR_IMS_ORG_ID,
    sample_event,
)
from tests.docs_commands import REPO_ROOT, documented
from tests.e2e.support import diagnostics

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

EVENTS = 25
RUN_TIMEOUT = 180.0
TASK_ID = "drain_aep_events"
DATASET_URI = f"aep://{EMULATOR_IMS_ORG_ID.split('@')[0]}/prod/datasets/{DEFAULT_DATASET_ID}"
#: The docs' fixed ports, and what this module uses instead.
DOC_PORTS = {"emulator": 8765, "api": 8080, "statsd": 8125}


class Stack:
    """What ``make run`` started, with the ports and files the docs' commands must be pointed at."""

    def __init__(self, devstack: DevStack, env: dict[str, str], statsd_out: Path, lineage: Path) -> None:
        self.devstack, self.env, self.statsd_out, self.lineage = devstack, env, statsd_out, lineage
        self.ports = {"emulator": devstack.emulator_port, "api": devstack.api_port, "statsd": 0}

    def adapt(self, command: str) -> str:
        """A documented command pointed at this stack: its ports and its state directory instead of ``.local``."""
        for name, port in DOC_PORTS.items():
            command = command.replace(f"127.0.0.1:{port}", f"127.0.0.1:{self.ports[name]}")
            command = command.replace(f'"127.0.0.1", {port})', f'"127.0.0.1", {self.ports[name]})')
            command = command.replace(f"_PORT={port}", f"_PORT={self.ports[name]}")
        return command.replace(".local/openlineage.jsonl", str(self.lineage))

    def sh(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        """Run a documented command (adapted) in a shell from the repository root, as a user would."""
        return subprocess.run(
            ["bash", "-c", self.adapt(command)], cwd=REPO_ROOT, env=self.env, capture_output=True, text=True,
            timeout=timeout, stdin=subprocess.DEVNULL,
        )  # fmt: skip


def _exports(command: str) -> dict[str, str]:
    """``export A=1 B='x y'`` → ``{"A": "1", "B": "x y"}``."""
    words = shlex.split(command)
    assert words[0] == "export", command
    return dict(word.split("=", 1) for word in words[1:])


@pytest.fixture(scope="module")
def stack(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory):
    state_dir = tmp_path_factory.mktemp("stack")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AEP_", "AIRFLOW"))}  # always the emulator
    env.update({STATE_DIR_ENV: str(state_dir), BOOTSTRAP_ENV: kafka_bootstrap})
    devstack = DevStack(
        state_dir=state_dir, emulator_port=free_port(), api_port=free_port(), rate=0,
        kafka_bootstrap=kafka_bootstrap, env=env, timeout=180,
    )  # fmt: skip
    stack = Stack(devstack, env, state_dir / "statsd.txt", state_dir / "openlineage.jsonl")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        stack.ports["statsd"] = probe.getsockname()[1]
    # docs/monitoring.md's recipe: the StatsD listener, then the settings, then make run.
    listener_cmd = documented("docs/monitoring.md", ".venv/bin/python -u -c 'import socket")
    with open(stack.statsd_out, "w") as out:
        listener = subprocess.Popen(
            ["bash", "-c", stack.adapt(listener_cmd)], cwd=REPO_ROOT, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    for prefix in ("export AIRFLOW__METRICS__", "export AIRFLOW__OPENLINEAGE__"):
        env.update(_exports(stack.adapt(documented("docs/monitoring.md", prefix))))
    run_args = f" RUN_ARGS='--emulator-port {devstack.emulator_port} --api-port {devstack.api_port} --rate 0'"
    try:
        started = stack.sh(documented("README.md", "make run") + run_args, timeout=600)
        assert started.returncode == 0, f"{started.stdout}\n{started.stderr}\n{diagnostics(devstack, 30)}"
        assert "Local stack is up" in started.stdout and "make stop" in started.stdout
        yield stack
    finally:
        stopped = stack.sh(documented("README.md", "make stop"))
        os.killpg(listener.pid, signal.SIGTERM)
        listener.wait(timeout=30)
    assert stopped.returncode == 0, stopped.stderr
    assert not any(devstack.running().values()), f"left running after make stop: {devstack.running()}"


@pytest.fixture(scope="module")
def session(stack: Stack) -> requests.Session:
    return stack.devstack.api_session()


def _api(stack: Stack, path: str) -> str:
    return f"{stack.devstack.api_url}/api/v2/{path}"


def _get(session: requests.Session, url: str, **params) -> dict:
    # SQLite + scheduler + tasks on 2 cores: a slow answer is not a failure, the caller's deadline is.
    for _ in range(5):
        with contextlib.suppress(requests.RequestException):
            resp = session.get(url, params=params, timeout=30)
            if resp.ok:
                return resp.json()
        time.sleep(2)
    pytest.fail(f"GET {url} kept failing")


def _post(session: requests.Session, url: str, body: dict) -> requests.Response:
    # SQLite's write lock can be held for seconds by a busy scheduler: the stack waits up to 60 s for it.
    return session.post(url, json=body, timeout=90)


def _wait_for_run(session: requests.Session, stack: Stack, run_id: str) -> dict:
    deadline = time.monotonic() + RUN_TIMEOUT
    run: dict = {}
    while True:
        with contextlib.suppress(requests.RequestException):
            run = session.get(_api(stack, f"dags/{DAG_ID}/dagRuns/{run_id}"), timeout=30).json()
        if run.get("state") in ("success", "failed"):
            return run
        if time.monotonic() > deadline:
            pytest.fail(
                f"run {run_id} still {run.get('state')!r} after {RUN_TIMEOUT:g}s\n{diagnostics(stack.devstack)}"
            )
        time.sleep(2)


def _trigger(session: requests.Session, stack: Stack, body: dict) -> dict:
    created = _post(session, _api(stack, f"dags/{DAG_ID}/dagRuns"), body)
    assert created.status_code == 200, created.text
    run = _wait_for_run(session, stack, created.json()["dag_run_id"])
    assert run["state"] == "success", f"run ended {run['state']}\n{diagnostics(stack.devstack)}"
    return run


def _summary(session: requests.Session, stack: Stack, run_id: str) -> dict:
    url = _api(stack, f"dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{TASK_ID}/xcomEntries/return_value")
    value = _get(session, url, deserialize=True)["value"]
    return value if isinstance(value, dict) else json.loads(value)


def _produce(bootstrap: str, topic: str, timestamp_ms: int | None = None) -> set[str]:
    """``EVENTS`` sample events (stamped ``timestamp_ms`` if given); their XDM ``_id``s."""
    producer = Producer({"bootstrap.servers": bootstrap})
    ids = set()
    for seq in range(EVENTS):
        event = sample_event(
            seq, schema_id=DEFAULT_SCHEMA_ID, dataset_id=DEFAULT_DATASET_ID, ims_org_id=EMULATOR_IMS_ORG_ID
        )
        ids.add(event["body"]["xdmEntity"]["_id"])
        producer.produce(topic, json.dumps(event).encode(), timestamp=timestamp_ms or 0)
    assert producer.flush(30) == 0
    return ids


def _wait_for(what: str, check, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {timeout:g}s")
        time.sleep(1)
    return found


@pytest.mark.timeout(900)
def test_a_triggered_run_delivers_with_a_clean_log_metrics_lineage_and_an_asset_event(
    stack: Stack, session: requests.Session, make_topic
):
    kafka = stack.devstack.kafka_bootstrap
    topic, dlq = make_topic(partitions=3, prefix="e2e.events"), make_topic(prefix="e2e.events.dlq")
    ids = _produce(kafka, topic)
    assert session.get(_api(stack, "version"), timeout=30).json()["version"].startswith("3.")
    dag = _get(session, _api(stack, f"dags/{DAG_ID}"))
    assert not dag["is_paused"]

    run = _trigger(session, stack, {"logical_date": None, "conf": {"topic": topic, "dlq_topic": dlq}})
    received_ids = {m["body"]["xdmEntity"]["_id"] for m in RemoteEmulator(stack.devstack.emulator_url).accepted()}
    assert ids <= received_ids, f"{len(ids - received_ids)} of {EVENTS} events never reached the emulator"
    assert _summary(session, stack, run["dag_run_id"])["delivered"] == EVENTS

    # The log a user reads in the UI (the REST call behind it): nothing at WARNING or above.
    log_url = _api(stack, f"dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/{TASK_ID}/logs/1")
    lines = [e for e in _get(session, log_url, full_content=True)["content"] if isinstance(e, dict)]
    finished = [e for e in lines if "Drain finished (end)" in str(e.get("event"))]
    assert finished and finished[0]["level"] == "info", lines[-5:]  # each line carries its level
    # (Airflow's own "Log message source details" lines carry no level.)
    loud = [e for e in lines if str(e.get("level") or "info").lower() not in ("info", "debug")]
    assert not loud, f"a green run logged: {loud}"

    # Monitoring on the shipped stack: the dataset's asset event, StatsD lines, OpenLineage events.
    events = _get(session, _api(stack, "assets/events"), source_run_id=run["dag_run_id"])["asset_events"]
    assert [(e["uri"], e["extra"]["delivered"]) for e in events] == [(DATASET_URI, EVENTS)]
    _wait_for(
        "the StatsD line of the run",
        lambda: f"aep_provider.records.delivered:{EVENTS}|c" in stack.statsd_out.read_text(),
    )
    lineage = stack.sh(documented("docs/monitoring.md", ".venv/bin/python -c 'import json"))
    assert lineage.returncode == 0, lineage.stderr
    assert f"COMPLETE {DAG_ID}.{TASK_ID} ['kafka://{kafka}/{topic}', '{DATASET_URI}']" in lineage.stdout

    # What the emulator received, as local-stack.md shows it.
    received = stack.sh(documented("docs/local-stack.md", "curl -s 'http://127.0.0.1:8765/emulator/accepted"))
    answer = json.loads(received.stdout)
    assert answer["count"] == 5 and answer["total"] >= EVENTS
    assert all(m["receivedTimeMs"] > 0 and m["message"]["header"] for m in answer["messages"])


def _ui_test_body(connection: dict) -> dict:
    """The body Airflow 3.3.2's Test button posts for a connection of the list (its ConnectionList row)."""
    return {
        "conn_type": connection["conn_type"],
        "connection_id": connection["connection_id"],
        "description": connection["description"] or "",
        "extra": connection["extra"] or "{}",
        "host": connection["host"] or "",
        "login": connection["login"] or "",
        "password": connection["password"] or "",
        "port": int(connection["port"] or 0),  # Number(null) is 0
        "schema": connection["schema"] or "",
    }


def test_the_test_button_works_for_both_connections(stack: Stack, session: requests.Session):
    for conn_id in ("aep_default", "kafka_default"):
        connection = _get(session, _api(stack, f"connections/{conn_id}"))
        tested = _post(session, _api(stack, "connections/test"), _ui_test_body(connection))
        assert tested.status_code == 200 and tested.json()["status"] is True, (conn_id, tested.text)
    # A connection added without a port (the Add form hides it): Airflow 3.3.2 refuses its Test,
    # and the port 0 that connection.md suggests makes it work.
    aep = _get(session, _api(stack, "connections/aep_default"))
    mine = {k: aep[k] for k in ("conn_type", "host", "login", "extra")} | {
        "connection_id": "aep_mine",
        "password": "aep-emulator-secret",
    }
    assert _post(session, _api(stack, "connections"), mine).status_code == 201
    try:
        stored = _get(session, _api(stack, "connections/aep_mine"))
        refused = _post(session, _api(stack, "connections/test"), _ui_test_body(stored))
        assert refused.status_code == 400 and "differs from the stored connection" in refused.text
        patch = {"connection_id": "aep_mine", "conn_type": "adobe_aep", "port": 0}
        assert session.patch(
            _api(stack, "connections/aep_mine"), params={"update_mask": "port"}, json=patch, timeout=30
        ).ok
        tested = _post(session, _api(stack, "connections/test"), _ui_test_body(stored | {"port": 0}))
        assert tested.json()["status"] is True, tested.text
    finally:
        session.delete(_api(stack, "connections/aep_mine"), timeout=30)


def test_a_hand_set_data_interval_replays_it_and_half_of_one_is_refused(
    stack: Stack, session: requests.Session, make_topic
):
    topic = make_topic(partitions=2, prefix="e2e.interval")
    start = (datetime.now(timezone.utc) - timedelta(hours=2)).replace(minute=0, second=0, microsecond=0)
    ids = _produce(
        stack.devstack.kafka_bootstrap, topic, timestamp_ms=int((start + timedelta(minutes=10)).timestamp() * 1000)
    )
    _produce(stack.devstack.kafka_bootstrap, topic)  # now: outside the interval
    emulator = RemoteEmulator(stack.devstack.emulator_url)
    emulator.reset()
    # What the Trigger form posts with "Data Interval → Specify Manually": the logical date it
    # pre-fills (now), the interval, the params (replay_scope "all": the group never drained this topic).
    body = {
        "logical_date": datetime.now(timezone.utc).isoformat(),
        "data_interval_start": start.isoformat(),
        "data_interval_end": (start + timedelta(hours=1)).isoformat(),
        "conf": {"topic": topic, "dlq_topic": "aep.events.dlq", "replay_scope": "all"},
    }
    run = _trigger(session, stack, body)
    summary = _summary(session, stack, run["dag_run_id"])
    assert summary["mode"] == "replay" and summary["delivered"] == EVENTS
    assert summary["interval"]["start"] == start.isoformat().replace("+00:00", "Z")
    assert {m["body"]["xdmEntity"]["_id"] for m in emulator.accepted()} == ids
    half = _post(session, _api(stack, f"dags/{DAG_ID}/dagRuns"), {**body, "data_interval_end": None})
    assert half.status_code == 422 and "Either both data_interval_start and data_interval_end" in half.text


def test_the_documented_cli_commands_run_against_the_stack(stack: Stack, session: requests.Session):
    for prefix, doc, expect in (
        ("scripts/local airflow dags list", "README.md", DAG_ID),
        ("scripts/local airflow connections test aep_default", "docs/local-stack.md", "Connection success!"),
        ("scripts/local airflow dags list-runs", "docs/local-stack.md", DAG_ID),
    ):
        result = stack.sh(documented(doc, prefix))
        assert result.returncode == 0 and expect in result.stdout, (
            prefix,
            result.stdout[-2000:],
            result.stderr[-2000:],
        )
    status = stack.sh(documented("docs/local-stack.md", "make status"))
    assert status.returncode == 0 and "airflow   running" in status.stdout, status.stdout

    # The monitoring recipe's trigger: a run of the example DAG as it ships (topic aep.events).
    before = {
        r["dag_run_id"] for r in _get(session, _api(stack, f"dags/{DAG_ID}/dagRuns"), run_type="manual")["dag_runs"]
    }
    triggered = stack.sh(documented("docs/monitoring.md", "scripts/local airflow dags trigger"))
    assert triggered.returncode == 0, triggered.stderr[-2000:]
    (new,) = [
        r
        for r in _get(session, _api(stack, f"dags/{DAG_ID}/dagRuns"), run_type="manual")["dag_runs"]
        if r["dag_run_id"] not in before
    ]
    assert _wait_for_run(session, stack, new["dag_run_id"])["state"] == "success"

    # backfills.md's range gives exactly the 12 five-minute runs of 10:00-11:00 (DAG paused: only counted).
    assert session.patch(_api(stack, f"dags/{DAG_ID}"), json={"is_paused": True}, timeout=30).ok
    for attempt in range(3):
        backfill = stack.sh(documented("docs/backfills.md", "scripts/local airflow backfill create"))
        if backfill.returncode == 0 or "database is locked" not in backfill.stderr or attempt == 2:
            break
        # What backfills.md tells a user to do: SQLite answered a write that met the scheduler's at
        # once (a lock deadlock, whatever the busy timeout); cancel the backfill left without runs, run it again.
        for left in _get(session, _api(stack, "backfills"), dag_id=DAG_ID)["backfills"]:
            if left["completed_at"] is None:
                assert session.put(_api(stack, f"backfills/{left['id']}/cancel"), timeout=90).ok
    assert backfill.returncode == 0, backfill.stderr[-2000:]
    runs = _get(session, _api(stack, f"dags/{DAG_ID}/dagRuns"), run_type="backfill", limit=100)["dag_runs"]
    intervals = sorted((r["data_interval_start"], r["data_interval_end"]) for r in runs)
    assert intervals == [
        (
            f"2026-11-28T{10 + m // 60:02d}:{m % 60:02d}:00Z",
            f"2026-11-28T{10 + (m + 5) // 60:02d}:{(m + 5) % 60:02d}:00Z",
        )
        for m in range(0, 60, 5)
    ]
