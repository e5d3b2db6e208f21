"""The cluster topology behind ``make cluster``: the local stack of ``make run`` as a small Airflow cluster.

PostgreSQL (metadata database) and Redis (Celery broker), then Airflow's own components as
separate processes: API server, scheduler, DAG processor, triggerer and ``--workers`` Celery
workers (CeleryExecutor); plus Kafka, the AEP emulator and the sample producer as in
:mod:`scripts.devstack`, whose pieces this reuses. Everything listens on 127.0.0.1; no Docker.

Command line::

    python -m scripts.cluster start [--api-port 8090] [--kafka-port 9094] [--emulator-port 8775]
                                    [--postgres-port 5433] [--redis-port 6380] [--workers 2] [--rate 2]
    python -m scripts.cluster status
    python -m scripts.cluster stop

Each port also comes from the environment (``CLUSTER_API_PORT``, ``CLUSTER_KAFKA_PORT``,
``CLUSTER_EMULATOR_PORT``, ``CLUSTER_POSTGRES_PORT``, ``CLUSTER_REDIS_PORT``); the defaults differ
from ``make run``'s, so both can run at once. ``KAFKA_BOOTSTRAP_SERVERS`` and the ``AEP_*``
variables work as for ``make run``. Everything lives under ``.local/cluster/``: ``postgres/``
(the database cluster, initialised on first start and kept; run as root from a directory other
users cannot enter, it lives in the system temp dir instead), ``airflow/`` (AIRFLOW_HOME),
``logs/<component>.log`` and ``cluster.json``.

PostgreSQL needs the server binaries (Debian's ``postgresql``: ``initdb`` and ``postgres`` in
``/usr/lib/postgresql/<version>/bin``, or on ``PATH``) and refuses to run as root: run as root,
the database processes run as the ``postgres`` user that package creates. It accepts connections
from 127.0.0.1 only, without a password (``trust``), like the local Kafka. Redis needs
``redis-server``.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import re
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from scripts.devstack import DEFAULT_STATE_DIR, DevStack, DevStackError, _say
from scripts.kafka_local import KafkaLocalError, check_port_free, free_port, tail

CLUSTER_STATE_DIR = DEFAULT_STATE_DIR / "cluster"
DB_NAME = "airflow"
DB_USER = "airflow"
#: The user the database runs as when this script runs as root (PostgreSQL refuses root).
DB_OS_USER = "postgres"
#: How long a task's heartbeat may be missing before the scheduler fails it (and retries apply).
#: Airflow's default is 300 s; a killed worker's tasks are retried this much sooner.
HEARTBEAT_TIMEOUT_SECONDS = 30
PORT_DEFAULTS = {"api": 8090, "kafka": 9094, "emulator": 8775, "postgres": 5433, "redis": 6380}
SECRETS_FILE = "cluster-secrets.json"


def worker_hostname() -> str:
    """``[core] hostname_callable`` of the workers: each records its own name on the task instances it runs.

    All workers of this cluster share one machine, so the default (the machine's FQDN) would not
    tell them apart in the UI or the REST API.
    """
    return os.environ.get("AEP_CLUSTER_WORKER_NAME") or socket.getfqdn()


def find_server_binary(name: str) -> str:
    """``initdb``/``postgres``/``pg_isready`` from PATH or Debian's versioned directory; a clear error if absent."""
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
    )
    if candidates:
        return str(candidates[-1])
    package = "redis-server" if name.startswith("redis") else "postgresql"
    raise DevStackError(f"{name} not found: install Debian's {package} package (apt-get install {package})")


def _enterable_by_others(path: Path) -> bool:
    """Whether another user can reach ``path`` (every existing directory on the way is o+x)."""
    for directory in (path, *path.parents):
        with contextlib.suppress(FileNotFoundError):
            if not directory.stat().st_mode & stat.S_IXOTH:
                return False
    return True


def _as_db_user(cmd: list[str]) -> list[str]:
    """Run ``cmd`` as the ``postgres`` user when we are root (PostgreSQL will not run as root)."""
    if os.geteuid() != 0:
        return cmd
    try:
        pwd.getpwnam(DB_OS_USER)
    except KeyError:
        raise DevStackError(
            f"PostgreSQL refuses to run as root and there is no {DB_OS_USER!r} user to run it as: "
            f"install Debian's postgresql package, or run `make cluster` as a normal user"
        ) from None
    return ["runuser", "-u", DB_OS_USER, "--", *cmd]


@dataclass
class ClusterStack(DevStack):
    """Start/stop the cluster topology; see the module docstring. Parameters as :class:`DevStack`, plus:

    :param postgres_port: port of the metadata database.
    :param redis_port: port of the Celery broker.
    :param workers: Celery workers to start.
    :param worker_concurrency: task slots of each worker.
    :param heartbeat_timeout: seconds without a task heartbeat before the scheduler fails the task.
    :param dag_refresh_seconds: how often the DAG processor looks for new DAG files (Airflow's default 300).
    """

    COMPONENTS = ("producer", "workers", "triggerer", "dag-processor", "scheduler", "api-server", "emulator",
                  "redis", "postgres")  # fmt: skip
    STATE_FILE = "cluster.json"

    state_dir: Path = CLUSTER_STATE_DIR
    kafka_port: int = PORT_DEFAULTS["kafka"]
    emulator_port: int = PORT_DEFAULTS["emulator"]
    api_port: int = PORT_DEFAULTS["api"]
    postgres_port: int = PORT_DEFAULTS["postgres"]
    redis_port: int = PORT_DEFAULTS["redis"]
    workers: int = 2
    worker_concurrency: int = 2
    heartbeat_timeout: int = HEARTBEAT_TIMEOUT_SECONDS
    dag_refresh_seconds: int = 30

    def __post_init__(self) -> None:
        super().__post_init__()
        # The triggerer serves its logs on a port of its own (8794 by default, taken by `make run`'s).
        self._trigger_log_port = free_port()

    # -- paths -----------------------------------------------------------------------------------
    @property
    def postgres_dir(self) -> Path:
        """The database cluster's directory: ``postgres/`` in the state dir, unless run as root from a
        directory the ``postgres`` user cannot enter (a 0700 home or temp dir): then one in the system
        temp dir named after the state dir, kept across restarts like the other."""
        inside = self.state_dir / "postgres"
        if os.geteuid() != 0 or _enterable_by_others(self.state_dir):
            return inside
        digest = hashlib.sha1(str(self.state_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"aep-provider-cluster-postgres-{digest}"

    @property
    def database_url(self) -> str:
        return f"postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.postgres_port}/{DB_NAME}"

    @property
    def broker_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def worker_names(self) -> list[str]:
        return [f"worker-{n}" for n in range(1, self.workers + 1)]

    def _secrets(self) -> dict[str, str]:
        """Keys every component must share (Fernet for stored connections, JWT for the Execution API), made once."""
        path = self.state_dir / SECRETS_FILE
        with contextlib.suppress(OSError, ValueError):
            return dict(json.loads(path.read_text()))
        from cryptography.fernet import Fernet

        secrets = {"fernet_key": Fernet.generate_key().decode(), "jwt_secret": os.urandom(32).hex(),
                   "secret_key": os.urandom(32).hex()}  # fmt: skip
        self.state_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(secrets, handle)
        return secrets

    def airflow_env(self) -> dict[str, str]:
        env = super().airflow_env()
        secrets = self._secrets()
        env.update(
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=self.database_url,
            AIRFLOW__CELERY__BROKER_URL=self.broker_url,
            AIRFLOW__CELERY__RESULT_BACKEND=f"db+postgresql+psycopg2://{DB_USER}@127.0.0.1:{self.postgres_port}/{DB_NAME}",
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(self.worker_concurrency),
            AIRFLOW__CORE__FERNET_KEY=secrets["fernet_key"],
            AIRFLOW__API_AUTH__JWT_SECRET=secrets["jwt_secret"],
            AIRFLOW__API__SECRET_KEY=secrets["secret_key"],
            AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT=str(self.heartbeat_timeout),
            AIRFLOW__CORE__HOSTNAME_CALLABLE="scripts.cluster.worker_hostname",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL=str(self.dag_refresh_seconds),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(self._trigger_log_port),
            # The hostname callable lives in this repository's scripts package.
            PYTHONPATH=os.pathsep.join(
                p for p in (str(Path(__file__).resolve().parents[1]), env.get("PYTHONPATH")) if p
            ),
        )
        return env

    # -- PostgreSQL and Redis ----------------------------------------------------------------------
    def _start_postgres(self, state: dict) -> None:
        check_port_free(self.postgres_port, "PostgreSQL")
        data = self.postgres_dir
        if not (data / "PG_VERSION").is_file():
            data.mkdir(parents=True, exist_ok=True)
            if os.geteuid() == 0:
                shutil.chown(data, DB_OS_USER, DB_OS_USER)
            self.logs_dir.mkdir(parents=True, exist_ok=True)
            initdb = subprocess.run(
                _as_db_user([find_server_binary("initdb"), "-D", str(data), "-U", DB_USER, "--auth=trust",
                             "--encoding=UTF8", "--no-instructions"]),
                capture_output=True, text=True, timeout=self.timeout,
            )  # fmt: skip
            (self.logs_dir / "initdb.log").write_text(initdb.stdout + initdb.stderr)
            if initdb.returncode != 0:
                raise DevStackError(f"initdb of {data} failed:\n{initdb.stderr.strip()[-2000:]}")
        proc = self._spawn(
            "postgres",
            _as_db_user([find_server_binary("postgres"), "-D", str(data), "-p", str(self.postgres_port),
                         "-c", "listen_addresses=127.0.0.1", "-c", "unix_socket_directories=",
                         "-c", "max_connections=200"]),
            marker="postgres",
        )  # fmt: skip
        state["postgres"] = proc
        self._save(state)
        ready = [find_server_binary("pg_isready"), "-h", "127.0.0.1", "-p", str(self.postgres_port), "-q"]
        self._wait_for("PostgreSQL", proc, lambda: subprocess.run(ready, timeout=10).returncode == 0)
        psql = [find_server_binary("psql"), "-h", "127.0.0.1", "-p", str(self.postgres_port), "-U", DB_USER, "-d",
                "postgres", "-tAc"]  # fmt: skip
        exists = subprocess.run([*psql, f"SELECT 1 FROM pg_database WHERE datname = '{DB_NAME}'"],
                                capture_output=True, text=True, timeout=30)  # fmt: skip
        if exists.stdout.strip() != "1":
            created = subprocess.run([*psql, f"CREATE DATABASE {DB_NAME}"], capture_output=True, text=True, timeout=60)
            if created.returncode != 0:
                raise DevStackError(f"could not create database {DB_NAME}: {created.stderr.strip()}")

    def _start_redis(self, state: dict) -> None:
        check_port_free(self.redis_port, "Redis")
        redis_dir = self.state_dir / "redis"
        redis_dir.mkdir(parents=True, exist_ok=True)
        proc = self._spawn(
            "redis",
            [find_server_binary("redis-server"), "--port", str(self.redis_port), "--bind", "127.0.0.1",
             "--save", "", "--appendonly", "no", "--dir", str(redis_dir)],
            marker="redis-server",
        )  # fmt: skip
        state["redis"] = proc
        self._save(state)

        def pong() -> bool:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", self.redis_port), 2) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
            return False

        self._wait_for("Redis", proc, pong)

    def _wait_for(self, name: str, proc: dict, ready: object) -> None:
        """Poll ``ready()`` until true, failing with the log's tail if the process exits or time runs out."""
        deadline = time.monotonic() + self.timeout
        while not ready():  # type: ignore[operator]
            if not self._is_ours(proc):
                raise DevStackError(f"{name} exited during start; log {proc['log']}:\n{tail(Path(proc['log']))}")
            if time.monotonic() > deadline:
                raise DevStackError(
                    f"{name} not ready within {self.timeout:g}s; log {proc['log']}:\n{tail(Path(proc['log']))}"
                )
            time.sleep(0.3)

    # -- Airflow -----------------------------------------------------------------------------------
    def _airflow(self, *args: str) -> list[str]:
        return [str(Path(sys.executable).with_name("airflow")), *args]

    def _start_airflow(self, state: dict) -> None:
        """PostgreSQL, Redis, the schema, then Airflow's components, each in its own process."""
        check_port_free(self.api_port, "Airflow's API server")
        self._start_postgres(state)
        self._start_redis(state)
        self.airflow_home.mkdir(parents=True, exist_ok=True)
        env = self.airflow_env()
        with open(self.logs_dir / "db-migrate.log", "ab") as log:
            migrated = subprocess.run(self._airflow("db", "migrate"), stdout=log, stderr=subprocess.STDOUT, env=env,
                                      stdin=subprocess.DEVNULL, timeout=self.timeout * 2)  # fmt: skip
        if migrated.returncode != 0:
            raise DevStackError(f"airflow db migrate failed; log {self.logs_dir / 'db-migrate.log'}:\n"
                                f"{tail(self.logs_dir / 'db-migrate.log')}")  # fmt: skip
        for name, args in (("api-server", ("api-server",)), ("scheduler", ("scheduler",)),
                           ("dag-processor", ("dag-processor",)), ("triggerer", ("triggerer",))):  # fmt: skip
            state[name] = self._spawn(name, self._airflow(*args), marker="airflow", env=env)
            self._save(state)
        workers = state["workers"] = {}
        for name in self.worker_names():
            # Logs are files on this machine's disk, read by the API server directly: no log server.
            cmd = self._airflow("celery", "worker", "--celery-hostname", f"{name}@%h", "--skip-serve-logs",
                                "--concurrency", str(self.worker_concurrency))  # fmt: skip
            workers[name] = self._spawn(name, cmd, marker="celery", env={**env, "AEP_CLUSTER_WORKER_NAME": name})
            self._save(state)
        self._wait_http("Airflow's API server", state["api-server"], f"{self.api_url}/api/v2/monitor/health")
        deadline = time.monotonic() + self.timeout
        while self.admin_password() is None and time.monotonic() < deadline:
            time.sleep(0.5)
        for name, proc in workers.items():
            self._wait_for(f"Celery {name}", proc, lambda p=proc: b" ready." in Path(p["log"]).read_bytes())
        self._wait_healthy()

    def _wait_healthy(self) -> None:
        """Until the API server reports the scheduler, the DAG processor and the triggerer healthy."""
        deadline = time.monotonic() + self.timeout
        health: dict = {}
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException, ValueError):
                health = requests.get(f"{self.api_url}/api/v2/monitor/health", timeout=10).json()
                if all(health.get(part, {}).get("status") == "healthy"
                       for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")):  # fmt: skip
                    return
            time.sleep(1)
        raise DevStackError(
            f"the cluster did not become healthy within {self.timeout:g}s: {health}; logs in {self.logs_dir}"
        )

    # -- the worker table in the state -----------------------------------------------------------
    def running(self) -> dict[str, bool]:
        state = self.read_state()
        alive = super().running()
        alive.pop("workers", None)
        for name, proc in state.get("workers", {}).items():
            alive[name] = self._is_ours(proc)
        return alive

    @classmethod
    def _stop_group(cls, name: str, proc: dict, timeout: float = 30.0) -> None:
        if name == "workers":  # a table of workers, each its own process group
            for worker, worker_proc in proc.items():
                super()._stop_group(worker, worker_proc, timeout)
            return
        if name == "postgres" and cls._is_ours(proc):
            # SIGINT is PostgreSQL's fast shutdown; SIGTERM's smart one waits for every client to leave.
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc["pid"], signal.SIGINT)
        super()._stop_group(name, proc, timeout)

    def kill_worker(self, name: str) -> int:
        """SIGKILL one worker's whole process group (its task processes included); return its pid. For fault tests."""
        proc = self.read_state()["workers"][name]
        os.killpg(proc["pid"], signal.SIGKILL)
        return int(proc["pid"])

    def summary(self, state: dict) -> str:
        lines = super().summary(state).splitlines()
        lines[0] = "Cluster is up (CeleryExecutor):"
        lines[-1:] = [
            f"  metadata DB   PostgreSQL on 127.0.0.1:{self.postgres_port} (database {DB_NAME}, data {self.postgres_dir})",
            f"  Celery broker Redis on 127.0.0.1:{self.redis_port}",
            f"  components    api-server, scheduler, dag-processor, triggerer, {', '.join(self.worker_names())}",
            "Stop it with: make cluster-stop",
        ]
        return "\n".join(lines).replace("make stop", "make cluster-stop")


def _port(name: str) -> int:
    value = os.environ.get(f"CLUSTER_{name.upper()}_PORT")
    if value is None:
        return PORT_DEFAULTS[name]
    if not re.fullmatch(r"\d{1,5}", value):
        raise SystemExit(f"CLUSTER_{name.upper()}_PORT must be a port number, got {value!r}")
    return int(value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m scripts.cluster", description=__doc__.split("\n\n")[0])
    parser.add_argument("--state-dir", type=Path, default=CLUSTER_STATE_DIR, help="default .local/cluster")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser("start", help="start the cluster")
    for name in PORT_DEFAULTS:
        start.add_argument(f"--{name}-port", type=int, default=_port(name),
                           help=f"default $CLUSTER_{name.upper()}_PORT or {PORT_DEFAULTS[name]}")  # fmt: skip
    start.add_argument("--workers", type=int, default=2, help="Celery workers (default 2)")
    start.add_argument("--worker-concurrency", type=int, default=2, help="task slots per worker (default 2)")
    start.add_argument("--rate", type=float, default=2.0, help="sample events per second, 0 = no producer")
    start.add_argument("--timeout", type=float, default=240.0, help="seconds each component may take to start")
    sub.add_parser("status", help="which components are running")
    sub.add_parser("stop", help="stop everything `start` started")
    args = parser.parse_args(argv)
    try:
        if args.command == "start":
            if args.workers < 1 or args.worker_concurrency < 1:
                parser.error("--workers and --worker-concurrency must be >= 1")
            stack = ClusterStack(
                state_dir=args.state_dir, kafka_port=args.kafka_port, emulator_port=args.emulator_port,
                api_port=args.api_port, postgres_port=args.postgres_port, redis_port=args.redis_port,
                workers=args.workers, worker_concurrency=args.worker_concurrency, rate=args.rate, timeout=args.timeout,
            )  # fmt: skip
            _say(stack.summary(stack.start()))
        elif args.command == "stop":
            ClusterStack(state_dir=args.state_dir).stop()
        else:
            stack = ClusterStack(state_dir=args.state_dir)
            alive = stack.running()
            if not alive:
                _say("the cluster is not running")
                return 1
            for name, up in alive.items():
                _say(f"{name:14} {'running' if up else 'NOT running'}")
            _say(f"Airflow UI: {stack.read_state().get('api_url')}")
            return 0 if all(alive.values()) else 1
    except (KafkaLocalError, requests.RequestException) as exc:
        print(f"cluster: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
