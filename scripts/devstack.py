"""The local stack behind ``make run``: Kafka, the AEP emulator, Airflow standalone and a sample producer.

Command line::

    python -m scripts.devstack start [--kafka-port 9092] [--emulator-port 8765] [--api-port 8080] [--rate 2]
    python -m scripts.devstack status
    python -m scripts.devstack stop
    python -m scripts.devstack wipe-kafka          # delete the broker's data (topics, records, offsets)
    python -m scripts.devstack exec -- airflow ...  # a command with the stack's environment (scripts/local)

Everything lives under ``.local/`` (git-ignored): ``kafka/`` (broker; its data survives stop/start),
``airflow/`` (AIRFLOW_HOME), ``logs/`` and ``devstack.json`` (what was started, so ``stop`` ends exactly that).

Environment:

- ``DEVSTACK_STATE_DIR``: the state directory (default ``.local``), as ``--state-dir``.
- ``KAFKA_BOOTSTRAP_SERVERS``: use that Kafka instead of starting one.
- ``AEP_CLIENT_ID``, ``AEP_CLIENT_SECRET``, ``AEP_IMS_ORG_ID``, ``AEP_INLET_ID`` (and optionally
  ``AEP_INLET_URL``, ``AEP_SANDBOX_NAME``, ``AEP_IMS_URL``, ``AEP_SCHEMA_ID``, ``AEP_DATASET_ID``):
  ``aep_default`` points at real AEP and the emulator is not started.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import requests

from scripts import kafka_local
from scripts.kafka_local import KafkaLocalError, check_port_free, pid_alive, tail

REPO_ROOT = kafka_local.REPO_ROOT
DEFAULT_STATE_DIR = REPO_ROOT / ".local"
STATE_DIR_ENV = "DEVSTACK_STATE_DIR"
DAGS_FOLDER = REPO_ROOT / "dags"
DAG_ID = "kafka_to_aep_example"
TOPIC = "aep.events"
DLQ_TOPIC = "aep.events.dlq"
TOPIC_PARTITIONS = 6
KAFKA_GROUP_ID = "aep-provider-example"
PASSWORDS_FILE = "simple_auth_manager_passwords.json.generated"
#: Seconds an Airflow process of the stack waits for SQLite's write lock before "database is locked".
SQLITE_BUSY_TIMEOUT = 60.0

EMULATOR_DEFAULTS = {  # aep_provider.emulator's defaults (kept literal: no import of the package here)
    "client_id": "aep-emulator-client",
    "client_secret": "aep-emulator-secret",
    "ims_org_id": "0123456789ABCDEF01234567@AdobeOrg",
    "inlet_id": "emulator-inlet",
}
REAL_AEP_REQUIRED = ("AEP_CLIENT_ID", "AEP_CLIENT_SECRET", "AEP_IMS_ORG_ID", "AEP_INLET_ID")
# Connections from the environment would shadow the ones this stack creates in the UI/DB.
SHADOWING_ENV = ("AIRFLOW_CONN_KAFKA_DEFAULT", "AIRFLOW_CONN_AEP_DEFAULT", "AIRFLOW__CORE__UNIT_TEST_MODE")


class DevStackError(KafkaLocalError):
    """A start/stop problem the user can fix (one line plus, at most, a log tail)."""


def _say(msg: str) -> None:
    print(msg, flush=True)


def _group_alive(pgid: int) -> bool:
    """True while any process of group ``pgid`` exists (zombie leaders excluded)."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    if pid_alive(pgid):
        return True
    # The leader is gone (or a zombie): look for live members.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
    return False


def real_aep_from_env(env: Mapping[str, str]) -> dict[str, str] | None:
    """The real AEP target described by ``AEP_*`` variables, or None to use the emulator."""
    if not any(env.get(name) for name in REAL_AEP_REQUIRED):
        return None
    missing = [name for name in REAL_AEP_REQUIRED if not env.get(name)]
    if missing:
        raise DevStackError(
            f"real AEP needs {', '.join(REAL_AEP_REQUIRED)}; missing: {', '.join(missing)} "
            f"(unset all AEP_* variables to use the local emulator)"
        )
    return {
        "inlet_url": env.get("AEP_INLET_URL") or "https://dcs.adobedc.net",
        "client_id": env["AEP_CLIENT_ID"],
        "client_secret": env["AEP_CLIENT_SECRET"],
        "ims_org_id": env["AEP_IMS_ORG_ID"],
        "inlet_id": env["AEP_INLET_ID"],
        "sandbox_name": env.get("AEP_SANDBOX_NAME") or "",  # unset: the connection's default (prod)
        "ims_url": env.get("AEP_IMS_URL") or "",
        "platform_url": env.get("AEP_PLATFORM_URL") or "",
    }


def airflow_connections(kafka_bootstrap: str, aep: Mapping[str, str]) -> dict[str, dict]:
    """
    ``kafka_default`` and ``aep_default`` as Airflow REST API connection bodies (``extra`` is a JSON string).

    Extras hold only what differs from the options' defaults: Airflow registers every extra value
    with its secret masker, and a short one (the default sandbox ``prod``) makes each task log
    "Skipping masking for a secret as it's too short" as a WARNING. ``port`` is 0, not null:
    Airflow 3.3.2's Test button posts ``Number(port)`` (0 for null) and the API refuses a port that
    differs from the stored one (apache/airflow#73298, fixed after 3.3.2).
    """
    aep_extra = {"inlet_id": aep["inlet_id"], "ims_org_id": aep["ims_org_id"]}
    for key in ("sandbox_name", "ims_url"):
        if aep.get(key):
            aep_extra[key] = aep[key]
    if aep.get("platform_url"):  # Catalog and the Schema Registry: the emulator serves them too
        aep_extra["platform_url"] = aep["platform_url"]
    return {
        "kafka_default": {
            "conn_type": "kafka",
            "port": 0,
            "extra": json.dumps({"bootstrap.servers": kafka_bootstrap, "group.id": KAFKA_GROUP_ID}),
        },
        "aep_default": {
            "conn_type": "adobe_aep",
            "host": aep["inlet_url"],
            "port": 0,
            "login": aep["client_id"],
            "password": aep["client_secret"],
            "extra": json.dumps(aep_extra),
        },
    }


@dataclass
class DevStack:
    """Start/stop the local stack; ``state_dir`` holds everything it writes.

    :param state_dir: root of the stack's files (default ``.local``).
    :param kafka_port: port of the local broker (ignored with ``kafka_bootstrap``).
    :param emulator_port: port of the AEP emulator.
    :param api_port: port of Airflow's API server / UI.
    :param rate: sample events per second; 0 starts no producer.
    :param kafka_bootstrap: an existing Kafka (default ``$KAFKA_BOOTSTRAP_SERVERS``).
    :param env: environment to read ``AEP_*`` from and to pass on (default ``os.environ``).
    :param timeout: seconds each component may take to become ready.
    :param dags_folder: Airflow's DAGs folder (default: the repository's ``dags/``).
    """

    #: Processes ``start`` records, in the order ``stop`` ends them (Kafka is stopped last).
    COMPONENTS = ("producer", "airflow", "emulator")
    #: What the state file is called inside ``state_dir``.
    STATE_FILE = "devstack.json"

    state_dir: Path = DEFAULT_STATE_DIR
    kafka_port: int = 9092
    emulator_port: int = 8765
    api_port: int = 8080
    rate: float = 2.0
    kafka_bootstrap: str | None = None
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    timeout: float = 180.0
    dags_folder: Path = DAGS_FOLDER

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()
        self.kafka_bootstrap = self.kafka_bootstrap or self.env.get(kafka_local.BOOTSTRAP_ENV) or None

    # -- paths and state ---------------------------------------------------------------------
    @property
    def logs_dir(self) -> Path:
        return self.state_dir / "logs"

    @property
    def airflow_home(self) -> Path:
        return self.state_dir / "airflow"

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def state_file(self) -> Path:
        return self.state_dir / self.STATE_FILE

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def emulator_url(self) -> str:
        return f"http://127.0.0.1:{self.emulator_port}"

    def read_state(self) -> dict:
        try:
            return json.loads(self.state_file.read_text())
        except (OSError, ValueError):
            return {}

    def _save(self, state: dict) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        self.state_file.write_text(json.dumps(state, indent=1))

    def airflow_env(self) -> dict[str, str]:
        """Environment of every Airflow process of the stack."""
        env = {k: v for k, v in self.env.items() if k not in SHADOWING_ENV}
        env.update(
            AIRFLOW_HOME=str(self.airflow_home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.api_port),
            AIRFLOW__API__BASE_URL=self.api_url,
            # Workers reach the Execution API here; the default assumes port 8080.
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.api_url}/execution/",
            PYTHONUNBUFFERED="1",
            # The connection form's Test button (and POST /api/v2/connections/test); Airflow 3 ships it disabled.
            AIRFLOW__CORE__TEST_CONNECTION="Enabled",
            # SQLite lets one writer in at a time; with the default 5 s busy timeout a trigger over the
            # REST API met "database is locked" while a task started (a lock deadlock still fails at once).
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.airflow_home / 'airflow.db'}?timeout={SQLITE_BUSY_TIMEOUT:g}",
            # standalone starts its components as `airflow ...` found on PATH
            PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", os.defpath)]),
        )
        return env

    def admin_password(self) -> str | None:
        """The generated password of ``admin`` (SimpleAuthManager), once Airflow wrote it."""
        try:
            return json.loads((self.airflow_home / PASSWORDS_FILE).read_text())["admin"]
        except (OSError, ValueError, KeyError):
            return None

    # -- processes -----------------------------------------------------------------------------
    def _spawn(self, name: str, cmd: list[str], marker: str, env: Mapping[str, str] | None = None) -> dict:
        """Start ``cmd`` in its own process group (so stop can end its children), output to logs/<name>.log.

        :param marker: a string of its command line, checked before signalling it later.
        """
        self.logs_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.logs_dir / f"{name}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                env=dict(env or self.env), cwd=REPO_ROOT, start_new_session=True,
            )  # fmt: skip
        return {"pid": proc.pid, "log": str(log_path), "marker": marker}

    @staticmethod
    def _is_ours(proc: dict) -> bool:
        """The recorded process is alive and still the one we started (guards against pid reuse)."""
        pid = proc.get("pid")
        if not pid or not pid_alive(pid):
            return False
        with contextlib.suppress(OSError):
            return proc["marker"].encode() in Path(f"/proc/{pid}/cmdline").read_bytes()
        return True

    @classmethod
    def _stop_group(cls, name: str, proc: dict, timeout: float = 30.0) -> None:
        """SIGTERM the process group, wait up to ``timeout`` s, then SIGKILL it."""
        if not cls._is_ours(proc):
            return
        pgid = proc["pid"]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _group_alive(pgid):
            time.sleep(0.2)
        # Children (scheduler, api-server, task processes) that outlived the grace period.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        _say(f"stopped {name} (pid {pgid})")

    def _wait_http(self, name: str, proc: dict, url: str) -> None:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            if not pid_alive(proc["pid"]):
                raise DevStackError(
                    f"{name} exited during start; log {proc['log']}; last lines:\n{tail(Path(proc['log']))}"
                )
            with contextlib.suppress(requests.RequestException):
                if requests.get(url, timeout=2).status_code == 200:
                    return
            time.sleep(0.5)
        raise DevStackError(
            f"{name} did not answer {url} within {self.timeout:g}s; log {proc['log']}; last lines:\n{tail(Path(proc['log']))}"
        )

    # -- steps ---------------------------------------------------------------------------------
    def _start_kafka(self, state: dict) -> str:
        if self.kafka_bootstrap:
            _say(f"Kafka: using the existing broker at {self.kafka_bootstrap}")
            return self.kafka_bootstrap
        # keep_data: topics, records and the group's committed offsets outlive `make stop`, like
        # Airflow's history next to them (`make wipe-kafka` deletes them).
        broker = kafka_local.KafkaBroker(
            port=self.kafka_port, data_dir=self.kafka_dir, ready_timeout=self.timeout, keep_data=True
        )
        broker.start(detach=True)
        state["kafka"] = {"data_dir": str(self.kafka_dir), "bootstrap": broker.bootstrap, "pid": broker.pid}
        self._save(state)
        return broker.bootstrap

    def _create_topics(self, bootstrap: str) -> None:
        from confluent_kafka import KafkaException
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0})
        existing = admin.list_topics(timeout=10).topics
        wanted = [NewTopic(t, p, 1) for t, p in ((TOPIC, TOPIC_PARTITIONS), (DLQ_TOPIC, 1)) if t not in existing]
        for topic, future in admin.create_topics(wanted, operation_timeout=30).items() if wanted else ():
            try:
                future.result(timeout=30)
            except KafkaException as exc:
                if "TOPIC_ALREADY_EXISTS" not in str(exc):
                    raise DevStackError(f"could not create topic {topic} on {bootstrap}: {exc.args[0]}") from None

    def check_ports(self, emulator: bool) -> None:
        """Every fixed port this start needs is free (before anything starts, so nothing is left half up)."""
        if not self.kafka_bootstrap:
            check_port_free(self.kafka_port, "Kafka", "--kafka-port")
        if emulator:
            check_port_free(self.emulator_port, "the AEP emulator", "--emulator-port")
        check_port_free(self.api_port, "Airflow's API server", "--api-port")

    def _start_emulator(self, state: dict) -> dict[str, str]:
        proc = self._spawn(
            "emulator",
            [sys.executable, "-m", "aep_provider.emulator", "--host", "127.0.0.1", "--port", str(self.emulator_port)],
            marker="aep_provider.emulator",
        )
        state["emulator"] = proc
        self._save(state)
        self._wait_http("the AEP emulator", proc, f"{self.emulator_url}/emulator/health")
        url = self.emulator_url
        return {**EMULATOR_DEFAULTS, "inlet_url": url, "ims_url": url, "platform_url": url}

    def put_connections(self, connections: Mapping[str, dict]) -> None:
        """Create or replace connections through the REST API, so they are stored and shown in the UI.

        Through the API rather than ``airflow connections add``: no secret on a command line (``ps``),
        and no extra Airflow CLI start-up.
        """
        session = self.api_session()
        for conn_id, conn in connections.items():
            body = {"connection_id": conn_id, **conn}
            resp = session.post(f"{self.api_url}/api/v2/connections", json=body, timeout=30)
            if resp.status_code == 409:
                resp = session.patch(f"{self.api_url}/api/v2/connections/{conn_id}", json=body, timeout=30)
            if resp.status_code not in (200, 201):
                # the body may echo the request: name the status only, never the secret
                raise DevStackError(f"Airflow refused connection {conn_id!r} (HTTP {resp.status_code})")

    def api_session(self) -> requests.Session:
        """A requests session authenticated as ``admin`` against the stack's REST API."""
        password = self.admin_password()
        if password is None:
            raise DevStackError(f"no admin password in {self.airflow_home / PASSWORDS_FILE} (is Airflow up?)")
        resp = requests.post(f"{self.api_url}/auth/token", json={"username": "admin", "password": password}, timeout=30)
        resp.raise_for_status()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {resp.json()['access_token']}"
        return session

    def _start_airflow(self, state: dict) -> None:
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        airflow = str(Path(sys.executable).with_name("airflow"))
        proc = self._spawn("airflow", [airflow, "standalone"], marker=airflow, env=self.airflow_env())
        state["airflow"] = proc
        self._save(state)
        self._wait_http("Airflow", proc, f"{self.api_url}/api/v2/monitor/health")
        deadline = time.monotonic() + self.timeout
        while self.admin_password() is None and time.monotonic() < deadline:
            time.sleep(0.5)

    def unpause_dag(self, dag_id: str = DAG_ID) -> None:
        """Wait until the DAG is parsed, then unpause it."""
        session = self.api_session()
        deadline = time.monotonic() + self.timeout
        while True:
            with contextlib.suppress(requests.RequestException):  # a busy API server may answer slowly
                if session.patch(f"{self.api_url}/api/v2/dags/{dag_id}", json={"is_paused": False}, timeout=30).ok:
                    return
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"DAG {dag_id} could not be unpaused within {self.timeout:g}s (not parsed?); "
                    f"check {self.dags_folder} and {self.logs_dir / 'airflow.log'}"
                )
            time.sleep(1)

    def _start_producer(self, state: dict, bootstrap: str) -> None:
        if self.rate <= 0:
            return
        state["producer"] = self._spawn(
            "producer",
            [sys.executable, "-m", "scripts.sample_events", "--bootstrap", bootstrap, "--topic", TOPIC,
             "--rate", str(self.rate)],
            marker="scripts.sample_events",
        )  # fmt: skip
        self._save(state)

    # -- public ------------------------------------------------------------------------------
    def running(self) -> dict[str, bool]:
        """Which recorded components are alive."""
        state = self.read_state()
        alive = {name: self._is_ours(state[name]) for name in self.COMPONENTS if name in state}
        if "kafka" in state:
            alive["kafka"] = kafka_local.running_pid(Path(state["kafka"]["data_dir"])) is not None
        return alive

    def start(self, unpause: bool = True) -> dict:
        """Start every component (stopping what was started if one fails) and return the state."""
        alive = self.running()
        if alive and all(alive.values()):
            _say(f"the local stack in {self.state_dir} is already running")
            return self.read_state()
        if any(alive.values()):
            raise DevStackError(
                f"the local stack in {self.state_dir} is partly running ({', '.join(n for n, up in alive.items() if not up)} "
                f"down): `make stop`, then `make run`"
            )
        aep = real_aep_from_env(self.env)
        self.check_ports(emulator=aep is None)
        state: dict = {"api_url": self.api_url, "started_at": time.time()}
        self._save(state)
        try:
            bootstrap = self._start_kafka(state)
            state["kafka_bootstrap"] = bootstrap
            if aep is None:
                aep = self._start_emulator(state)
            state["aep_target"] = aep["inlet_url"]
            self._save(state)
            self._create_topics(bootstrap)
            self._start_producer(state, bootstrap)
            self._start_airflow(state)
            self.put_connections(airflow_connections(bootstrap, aep))
            if unpause:
                self.unpause_dag()
        except BaseException:
            self.stop(quiet=True)
            raise
        return state

    def stop(self, quiet: bool = False) -> None:
        """Stop what ``start`` recorded, newest first; Kafka last so the DAG's consumers close cleanly."""
        state = self.read_state()
        for name in self.COMPONENTS:
            if name in state:
                self._stop_group(name, state[name])
        if "kafka" in state:
            data_dir = Path(state["kafka"]["data_dir"])
            pid = kafka_local.running_pid(data_dir)
            if pid:
                kafka_local.stop_pid(pid)
                (data_dir / kafka_local.STATE_FILE).unlink(missing_ok=True)
                _say(f"stopped kafka (pid {pid})")
        if not state and not quiet:
            _say(f"nothing recorded in {self.state_file}: the local stack is not running")
        self.state_file.unlink(missing_ok=True)

    def wipe_kafka(self) -> None:
        """Delete the local broker's data (topics, records, committed offsets); refused while it runs."""
        if self.kafka_bootstrap:
            raise DevStackError(
                f"{kafka_local.BOOTSTRAP_ENV} is set ({self.kafka_bootstrap}): that Kafka is not ours to wipe"
            )
        pid = kafka_local.running_pid(self.kafka_dir)
        if pid:
            raise DevStackError(f"Kafka (pid {pid}) is running from {self.kafka_dir}: `make stop` first")
        if not self.kafka_dir.exists():
            _say(f"nothing to wipe: {self.kafka_dir} does not exist")
            return
        shutil.rmtree(self.kafka_dir)
        _say(
            f"deleted {self.kafka_dir} (topics, records, committed offsets); the next `make run` starts an empty broker"
        )

    def command_env(self, command: list[str]) -> dict[str, str]:
        """
        The environment to run ``command`` against this stack: Airflow's (``AIRFLOW_HOME``, the DAGs
        folder, the API port), with the virtualenv's ``bin`` first on ``PATH`` (``airflow``, ``aep-emulator``).
        """
        if command and Path(command[0]).name == "airflow" and not (self.airflow_home / "airflow.db").exists():
            raise DevStackError(
                f"the local stack has not been started here ({self.airflow_home / 'airflow.db'} does not exist): "
                "`make run` first; the Airflow CLI would otherwise create an empty Airflow home"
            )
        return self.airflow_env()

    def summary(self, state: dict) -> str:
        real = state.get("emulator") is None
        lines = [
            "Local stack is up:",
            f"  Airflow UI    {self.api_url}   user admin, password in {self.airflow_home / PASSWORDS_FILE}",
            f"  Kafka         {state['kafka_bootstrap']}   topics {TOPIC} ({TOPIC_PARTITIONS} partitions), {DLQ_TOPIC}",
            f"  AEP           {state['aep_target']}" + ("   (real AEP, from AEP_* variables)" if real else
                                                       f"   (emulator; received events: {self.emulator_url}/emulator/accepted)"),
            f"  DAG           {DAG_ID} (unpaused, every 5 minutes; trigger it in the UI to run now)",
            f"  producer      {self.rate:g} sample events/s to {TOPIC}" if self.rate > 0 else "  producer      off",
            f"  logs          {self.logs_dir}/*.log, Airflow task logs in {self.airflow_home / 'logs'}"
            + ("" if self.kafka_bootstrap else f", Kafka {self.kafka_dir / kafka_local.BROKER_LOG}"),
            "  CLI           scripts/local airflow <command>   (the Airflow CLI against this stack)",
            "Stop it with: make stop" + ("" if self.kafka_bootstrap else " (Kafka's data is kept; make wipe-kafka deletes it)"),
        ]  # fmt: skip
        return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.devstack", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=Path(os.environ.get(STATE_DIR_ENV) or DEFAULT_STATE_DIR),
        help=f"where the stack keeps its files (default ${STATE_DIR_ENV}, else .local)",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start Kafka, the emulator, Airflow and the sample producer")
    start.add_argument("--kafka-port", type=int, default=9092)
    start.add_argument("--emulator-port", type=int, default=8765)
    start.add_argument("--api-port", type=int, default=8080, help="Airflow UI / REST API port")
    start.add_argument("--rate", type=float, default=2.0, help="sample events per second, 0 = no producer")
    start.add_argument("--timeout", type=float, default=180.0, help="seconds each component may take to start")
    sub.add_parser("status", help="which components are running")
    sub.add_parser("stop", help="stop everything `start` started")
    sub.add_parser("wipe-kafka", help="delete the local broker's data (topics, records, committed offsets)")
    run = sub.add_parser("exec", help="run a command (airflow, aep-emulator, ...) with the stack's environment")
    run.add_argument("cmd", nargs=argparse.REMAINDER, help="the command and its arguments")
    args = parser.parse_args(argv)
    try:
        if args.command == "exec":
            command = args.cmd[1:] if args.cmd[:1] == ["--"] else args.cmd
            if not command:
                parser.error("exec needs a command, e.g. exec airflow dags list")
            stack = DevStack(args.state_dir)
            stack.api_port = urlsplit(stack.read_state().get("api_url") or stack.api_url).port or stack.api_port
            env = stack.command_env(command)
            try:
                os.execvpe(command[0], command, env)
            except FileNotFoundError:
                raise DevStackError(
                    f"{command[0]}: command not found (in {env['PATH'].split(os.pathsep)[0]} or on PATH)"
                ) from None
        elif args.command == "wipe-kafka":
            DevStack(args.state_dir).wipe_kafka()
        elif args.command == "start":
            stack = DevStack(args.state_dir, args.kafka_port, args.emulator_port, args.api_port, args.rate,
                             timeout=args.timeout)  # fmt: skip
            _say(stack.summary(stack.start()))
        elif args.command == "stop":
            DevStack(args.state_dir).stop()
        else:
            stack = DevStack(args.state_dir)
            alive = stack.running()
            if not alive:
                _say("the local stack is not running")
                return 1
            for name, up in alive.items():
                _say(f"{name:9} {'running' if up else 'NOT running'}")
            _say(f"Airflow UI: {stack.read_state().get('api_url')}")
            return 0 if all(alive.values()) else 1
    except (KafkaLocalError, requests.RequestException) as exc:
        print(f"devstack: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
