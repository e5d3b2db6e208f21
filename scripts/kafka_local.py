"""A real single-node Apache Kafka (KRaft) broker on 127.0.0.1, without Docker.

The broker's jars are resolved once with Maven from ``scripts/kafka/pom.xml`` into a cache outside
the git tree (``${AEP_PROVIDER_CACHE:-~/.cache/aep-provider}/kafka-<version>/lib``) and reused.
Only Java 17+ (and Maven for the first download) are needed.

Command line::

    python -m scripts.kafka_local fetch                  # download the jars (once)
    python -m scripts.kafka_local start [--port 9092] [--data-dir .local/kafka] [--detach] [--fresh]
    python -m scripts.kafka_local status [--data-dir .local/kafka]
    python -m scripts.kafka_local stop [--data-dir .local/kafka]

Python API (used by the test fixtures)::

    with KafkaBroker(data_dir=tmp_path) as broker:
        print(broker.bootstrap)  # "127.0.0.1:<port>"

When ``KAFKA_BOOTSTRAP_SERVERS`` is set, ``start``/``stop`` leave that existing broker alone.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ctypes
import errno
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

KAFKA_VERSION = "4.1.1"  # keep in step with <kafka.version> in scripts/kafka/pom.xml
MIN_JAVA = 17
BOOTSTRAP_ENV = "KAFKA_BOOTSTRAP_SERVERS"
CACHE_ENV = "AEP_PROVIDER_CACHE"

SCRIPTS_DIR = Path(__file__).resolve().parent
REPO_ROOT = SCRIPTS_DIR.parent
POM_FILE = SCRIPTS_DIR / "kafka" / "pom.xml"
LOG4J_CONFIG = SCRIPTS_DIR / "kafka" / "log4j2.properties"
DEFAULT_DATA_DIR = REPO_ROOT / ".local" / "kafka"

STATE_FILE = "broker.json"  # written by a detached start, read by stop/status
BROKER_LOG = "broker.log"  # log4j output
CONSOLE_LOG = "console.log"  # the JVM's own stdout/stderr (crashes before log4j is up)
LOG_DIR = "kraft"  # Kafka's log.dirs (data + metadata)
READY_TOPIC = "_kafka_local.ready"

MAVEN_TIMEOUT = 600
#: Formatting a KRaft log dir takes a few seconds; a JVM stuck longer than this is reported.
FORMAT_TIMEOUT = 120.0
STOP_TIMEOUT = 30.0

Log = Callable[[str], None]


class KafkaLocalError(Exception):
    """A problem the user can fix; its message is one line saying what is wrong and what to do."""


def _stderr(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------------------------
# Java and the jar cache


def new_cluster_id() -> str:
    """
    A KRaft cluster id: 16 random bytes, URL-safe base64 without padding.

    One in 64 such ids starts with "-", which StorageTool's argument parser takes for an option
    ("argument --cluster-id/-t: expected one argument"); Kafka's own Uuid.randomUuid() skips those too.
    """
    while True:
        cluster_id = base64.urlsafe_b64encode(os.urandom(16)).decode().rstrip("=")
        if not cluster_id.startswith("-"):
            return cluster_id


def find_java() -> str:
    """Return the ``java`` executable (``$JAVA_HOME/bin/java`` first, then ``PATH``), checking it is 17+."""
    java_home = os.environ.get("JAVA_HOME")
    java = None
    if java_home and os.access(Path(java_home, "bin", "java"), os.X_OK):
        java = str(Path(java_home, "bin", "java"))
    java = java or shutil.which("java")
    if not java:
        raise KafkaLocalError(
            f"Java not found (no java on PATH, JAVA_HOME unset): Kafka {KAFKA_VERSION} needs Java "
            f"{MIN_JAVA}+; install e.g. openjdk-{MIN_JAVA}-jre-headless"
        )
    try:
        out = subprocess.run([java, "-version"], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise KafkaLocalError(f"could not run {java} -version: {exc}") from None
    text = out.stderr + out.stdout
    match = re.search(r'version "(\d+)(?:\.(\d+))?', text)
    if not match:
        raise KafkaLocalError(f"could not read the Java version from `{java} -version`: {text.strip()[:200]!r}")
    major = int(match.group(1))
    if major == 1 and match.group(2):  # "1.8.0_392" style
        major = int(match.group(2))
    if major < MIN_JAVA:
        raise KafkaLocalError(
            f"Java {major} at {java} is too old: Kafka {KAFKA_VERSION} needs Java {MIN_JAVA}+; "
            f"install a newer JDK or point JAVA_HOME at one"
        )
    return java


def cache_dir() -> Path:
    """Directory holding the resolved jars of this Kafka version (outside the git tree)."""
    root = os.environ.get(CACHE_ENV) or str(Path.home() / ".cache" / "aep-provider")
    return Path(root).expanduser() / f"kafka-{KAFKA_VERSION}"


@dataclass(frozen=True)
class FetchResult:
    """Where the jars are and whether they came from the cache (no Maven call)."""

    lib_dir: Path
    cache_hit: bool
    seconds: float


def _maven_error(output: str) -> str:
    """Pick the line of Maven's output that explains a failure."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    for pattern in ("Could not transfer", "Could not resolve", "UnknownHost", "Connection refused", "[ERROR]"):
        for line in lines:
            if pattern in line:
                return line.removeprefix("[ERROR]").strip()[:300]
    return lines[-1][:300] if lines else "no output"


def fetch_jars(log: Log = _stderr) -> FetchResult:
    """Make sure the broker's jars are in the cache, downloading them with Maven if needed.

    A marker file is written only after a complete copy, so an interrupted download is redone.
    Concurrent callers (parallel test sessions) are serialised with a file lock.

    :param log: where progress messages go.
    """
    started = time.monotonic()
    root = cache_dir()
    lib, marker = root / "lib", root / "complete.json"
    if marker.exists() and lib.is_dir():
        return FetchResult(lib, True, time.monotonic() - started)
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".fetch.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if marker.exists() and lib.is_dir():  # someone else finished while we waited
            return FetchResult(lib, True, time.monotonic() - started)
        mvn = shutil.which("mvn")
        if not mvn:
            raise KafkaLocalError(
                f"Maven (mvn) not found on PATH: it is needed once to download Kafka {KAFKA_VERSION} "
                f"into {root}; install maven, or set {BOOTSTRAP_ENV} to use an existing broker"
            )
        log(f"kafka_local: downloading Kafka {KAFKA_VERSION} jars with Maven into {lib} (once) ...")
        staging = Path(tempfile.mkdtemp(prefix="lib-", dir=root))
        cmd = [
            mvn, "-B", "-q", "-f", str(POM_FILE), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={staging}",
        ]  # fmt: skip
        try:
            proc = subprocess.run(
                cmd, capture_output=True, text=True, timeout=MAVEN_TIMEOUT, cwd=root, stdin=subprocess.DEVNULL
            )
        except subprocess.TimeoutExpired:
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaLocalError(
                f"Maven did not finish downloading Kafka {KAFKA_VERSION} within {MAVEN_TIMEOUT}s "
                f"(slow or unreachable repository?); retry, or set {BOOTSTRAP_ENV}"
            ) from None
        jars = sorted(p.name for p in staging.glob("*.jar"))
        if proc.returncode != 0 or not any(j.startswith("kafka_2.13-") for j in jars):
            shutil.rmtree(staging, ignore_errors=True)
            raise KafkaLocalError(
                f"Maven could not download Kafka {KAFKA_VERSION} (offline or repository unreachable?): "
                f"{_maven_error(proc.stdout + proc.stderr)}; check network/proxy in ~/.m2/settings.xml "
                f"and retry, or set {BOOTSTRAP_ENV} to use an existing broker"
            )
        shutil.rmtree(lib, ignore_errors=True)
        staging.rename(lib)
        marker.write_text(json.dumps({"kafka": KAFKA_VERSION, "jars": jars}, indent=1))
        seconds = time.monotonic() - started
        log(f"kafka_local: {len(jars)} jars cached in {lib} ({seconds:.1f}s)")
        return FetchResult(lib, False, seconds)


# --------------------------------------------------------------------------------------------
# Ports, processes, state


def free_port() -> int:
    """An ephemeral TCP port on 127.0.0.1 that is free right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_port_free(port: int, what: str = "Kafka", option: str = "--port") -> None:
    """
    Fail with a clear message, naming what holds it, when ``port`` on 127.0.0.1 cannot be bound.

    Asks the question the servers will: Kafka, uvicorn (Airflow's API server) and the emulator
    bind with ``SO_REUSEADDR``, so connections of a previous run lingering in TIME_WAIT (about a
    minute after any HTTP traffic) do not count as taken; only a live socket on the port does.
    """
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            raise KafkaLocalError(
                f"port {port} on 127.0.0.1 (for {what}) is already in use by {port_holder(port)}: "
                f"stop it (`make stop` if it is this repository's local stack) or choose another port with {option}"
            ) from None


def port_holder(port: int) -> str:
    """Who holds TCP ``port`` on this machine: ``pid N (command line)``, for error messages."""
    try:
        import psutil  # Airflow's own dependency: always in the project's .venv

        sockets = [c for c in psutil.net_connections(kind="tcp") if c.laddr and c.laddr.port == port]
    except Exception:  # no psutil, or not allowed to list sockets: say what we know
        return "another process"
    # A listener first; else whatever socket is bound there (e.g. a client using it as its local port).
    sockets.sort(key=lambda c: c.status != psutil.CONN_LISTEN)
    for conn in sockets:
        if conn.status == psutil.CONN_TIME_WAIT:
            continue
        if conn.pid is None:
            return f"a process this user cannot see ({conn.status} socket)"
        try:
            command = " ".join(psutil.Process(conn.pid).cmdline())
        except psutil.Error:
            command = "?"
        return f"pid {conn.pid} ({command[:150]})"
    return "another process"


def pid_alive(pid: int) -> bool:
    """True when ``pid`` exists and is not a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] != "Z"
    return True


def _is_our_broker(pid: int, data_dir: Path) -> bool:
    """Guard against pid reuse: the process must be a kafka.Kafka running from ``data_dir``."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return pid_alive(pid)  # no /proc: trust the state file
    return b"kafka.Kafka" in cmdline and str(data_dir / "server.properties").encode() in cmdline


def stop_pid(pid: int, timeout: float = STOP_TIMEOUT, log: Log = _stderr) -> None:
    """SIGTERM (a clean broker shutdown), wait up to ``timeout`` seconds, then SIGKILL."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return
        time.sleep(0.2)
    log(f"kafka_local: broker pid {pid} ignored SIGTERM for {timeout:.0f}s, sending SIGKILL")
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)


def read_state(data_dir: Path) -> dict | None:
    """The state of a detached broker started from ``data_dir``, or None."""
    try:
        return json.loads((data_dir / STATE_FILE).read_text())
    except (OSError, ValueError):
        return None


def running_pid(data_dir: Path) -> int | None:
    """Pid of a live broker started from ``data_dir`` (by this tool), else None."""
    state = read_state(data_dir)
    if state and pid_alive(state["pid"]) and _is_our_broker(state["pid"], data_dir):
        return state["pid"]
    return None


def _log_dir_locked(log_dir: Path) -> bool:
    """True when a live process (a broker we did not record) holds Kafka's lock on ``log_dir``."""
    lock_file = log_dir / ".lock"
    if not lock_file.exists():
        return False
    # Kafka takes a java.nio FileChannel lock, which on Linux is an fcntl (POSIX) lock.
    with open(lock_file, "r+") as handle:
        try:
            fcntl.lockf(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            return True
        fcntl.lockf(handle, fcntl.LOCK_UN)
    return False


def tail(path: Path, lines: int = 12) -> str:
    """Last ``lines`` lines of a log file, without Java stack frames (empty when missing)."""
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join([line for line in text if not line.lstrip().startswith("at ")][-lines:])


def _die_with_parent() -> None:
    """In the child: get SIGTERM when the parent dies, so a crashed test run leaves no broker behind."""
    with contextlib.suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


# --------------------------------------------------------------------------------------------
# The broker


def server_properties(port: int, controller_port: int, log_dir: Path, extra: dict[str, str] | None = None) -> str:
    """``server.properties`` of a single-node broker+controller; defaults assume 3 nodes and break one."""
    props = {
        "process.roles": "broker,controller",
        "node.id": "1",
        "controller.quorum.voters": f"1@127.0.0.1:{controller_port}",
        # 127.0.0.1, not localhost: librdkafka would also try ::1
        "listeners": f"PLAINTEXT://127.0.0.1:{port},CONTROLLER://127.0.0.1:{controller_port}",
        "advertised.listeners": f"PLAINTEXT://127.0.0.1:{port}",
        "controller.listener.names": "CONTROLLER",
        "inter.broker.listener.name": "PLAINTEXT",
        "listener.security.protocol.map": "CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT",
        "log.dirs": str(log_dir),
        "num.partitions": "1",
        "offsets.topic.replication.factor": "1",
        "offsets.topic.num.partitions": "1",  # default 50 makes the first consumer group join slow
        "transaction.state.log.replication.factor": "1",
        "transaction.state.log.min.isr": "1",
        "transaction.state.log.num.partitions": "1",
        "share.coordinator.state.topic.replication.factor": "1",
        "share.coordinator.state.topic.min.isr": "1",
        "group.initial.rebalance.delay.ms": "0",
        "log.cleaner.dedupe.buffer.size": str(2 * 1024 * 1024),  # default takes 128 MB of heap
        "auto.create.topics.enable": "true",
        **(extra or {}),
    }
    return "".join(f"{key}={value}\n" for key, value in props.items())


class KafkaBroker:
    """A single-node Kafka broker process on 127.0.0.1 with a freshly formatted log dir.

    :param port: client port; a free one is picked when None.
    :param data_dir: config, Kafka log dir, ``broker.log`` and state live here; a temp dir when None.
    :param controller_port: KRaft controller port; a free one is picked when None.
    :param ready_timeout: seconds to wait for the broker to serve requests.
    :param heap: JVM max heap (``-Xmx``).
    :param extra_properties: broker settings added to (or overriding) ``server.properties``.
    :param log: where progress messages go.
    :param keep_data: start from the log dir a previous (stopped or crashed) broker left in ``data_dir``:
        topics, records and committed offsets survive a restart. False formats a fresh one every start.
    """

    def __init__(
        self,
        port: int | None = None,
        data_dir: str | Path | None = None,
        *,
        controller_port: int | None = None,
        ready_timeout: float = 120.0,
        heap: str = "512m",
        extra_properties: dict[str, str] | None = None,
        log: Log = _stderr,
        keep_data: bool = False,
    ) -> None:
        self.port = port
        self.controller_port = controller_port
        self._own_dir = data_dir is None  # a temp dir we made is removed again after a clean stop
        self.data_dir = Path(data_dir).resolve() if data_dir else Path(tempfile.mkdtemp(prefix="kafka-local-"))
        self.ready_timeout = ready_timeout
        self.heap = heap
        self.extra_properties = dict(extra_properties or {})
        self.log = log
        self.keep_data = keep_data
        self.process: subprocess.Popen | None = None
        self.start_seconds: float | None = None
        self.fetch: FetchResult | None = None

    @property
    def bootstrap(self) -> str:
        """``127.0.0.1:<port>``, for ``bootstrap.servers``."""
        if self.port is None:
            raise KafkaLocalError("the broker has not been started")
        return f"127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def broker_log(self) -> Path:
        return self.data_dir / BROKER_LOG

    def __repr__(self) -> str:
        return f"KafkaBroker(port={self.port}, data_dir={str(self.data_dir)!r}, pid={self.pid})"

    def __enter__(self) -> KafkaBroker:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _prepare_data_dir(self) -> tuple[Path, bool]:
        """The Kafka log dir, and whether it holds a previous run's data (kept with ``keep_data``, else replaced)."""
        data_dir, log_dir = self.data_dir, self.data_dir / LOG_DIR
        pid = running_pid(data_dir)
        if pid:
            raise KafkaLocalError(
                f"a broker (pid {pid}) is already running from {data_dir}: "
                f"stop it with `python -m scripts.kafka_local stop --data-dir {data_dir}` or use another --data-dir"
            )
        if _log_dir_locked(log_dir):
            raise KafkaLocalError(
                f"Kafka log dir {log_dir} is locked by another running process: stop that broker "
                f"or use another --data-dir"
            )
        if data_dir.exists() and any(data_dir.iterdir()):
            ours = (data_dir / "server.properties").exists() or log_dir.exists()
            if not ours:
                raise KafkaLocalError(
                    f"data dir {data_dir} is not empty and was not made by kafka_local: "
                    f"choose an empty or new --data-dir"
                )
            if self.keep_data and (log_dir / "meta.properties").exists():
                (data_dir / STATE_FILE).unlink(missing_ok=True)
                self.log(f"kafka_local: keeping the data of a previous run in {log_dir}")
                return log_dir, True
            if log_dir.exists():
                self.log(f"kafka_local: removing the log dir of a previous run in {log_dir}")
            for name in (LOG_DIR, STATE_FILE, BROKER_LOG, CONSOLE_LOG):
                path = data_dir / name
                if path.is_dir():
                    shutil.rmtree(path)
                else:
                    path.unlink(missing_ok=True)
        data_dir.mkdir(parents=True, exist_ok=True)
        return log_dir, False

    def _free_previous_controller_port(self) -> int | None:
        """The kept log dir's last controller port if it is free (the quorum's address then stays the same)."""
        with contextlib.suppress(OSError, KafkaLocalError):
            match = re.search(r"^controller\.quorum\.voters=1@127\.0\.0\.1:(\d+)$",
                              (self.data_dir / "server.properties").read_text(), re.M)  # fmt: skip
            if match:
                check_port_free(int(match.group(1)), "the Kafka controller")
                return int(match.group(1))
        return None

    def _java_cmd(self, java: str, lib: Path, main: list[str]) -> list[str]:
        return [
            java, f"-Xmx{self.heap}", "-Xms128m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={LOG4J_CONFIG}", f"-Dkafka.logs.dir={self.data_dir}",
            "-cp", f"{lib}/*", *main,
        ]  # fmt: skip

    def start(self, *, detach: bool = False) -> str:
        """Fetch the jars if needed, format a fresh log dir (or keep one, see ``keep_data``), start the broker and wait until it serves.

        :param detach: leave the broker running after this process exits and record it in
            ``<data_dir>/broker.json`` for ``stop``/``status``.
        :return: the bootstrap servers string.
        """
        started = time.monotonic()
        java = find_java()
        self.fetch = fetch_jars(self.log)
        log_dir, kept = self._prepare_data_dir()
        if not self.port:  # None or 0: any free port
            self.port = free_port()
        else:
            check_port_free(self.port)
        if self.controller_port:
            check_port_free(self.controller_port, "the Kafka controller")
        else:
            self.controller_port = self._free_previous_controller_port() if kept else None
            self.controller_port = self.controller_port or free_port()
        config = self.data_dir / "server.properties"
        config.write_text(server_properties(self.port, self.controller_port, log_dir, self.extra_properties))
        if not kept:
            self._format(java, config, log_dir)
        self._launch(java, config, detach)
        self.start_seconds = time.monotonic() - started
        if detach:
            state = {"pid": self.process.pid, "bootstrap": self.bootstrap, "port": self.port,
                     "controller_port": self.controller_port, "kafka": KAFKA_VERSION,
                     "broker_log": str(self.broker_log), "started_at": time.time()}  # fmt: skip
            (self.data_dir / STATE_FILE).write_text(json.dumps(state, indent=1))
        jars = "jar cache hit" if self.fetch.cache_hit else f"jars downloaded in {self.fetch.seconds:.1f}s"
        self.log(
            f"kafka_local: Kafka {KAFKA_VERSION} ready at {self.bootstrap} in {self.start_seconds:.1f}s "
            f"({jars}); log: {self.broker_log}"
        )
        return self.bootstrap

    def _format(self, java: str, config: Path, log_dir: Path) -> None:
        """Format a new single-node KRaft log dir (a new cluster id)."""
        cluster_id = new_cluster_id()
        try:
            fmt = subprocess.run(
                self._java_cmd(java, self.fetch.lib_dir, ["kafka.tools.StorageTool", "format", "-t", cluster_id, "-c", str(config)]),
                capture_output=True, text=True, timeout=FORMAT_TIMEOUT, stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            raise KafkaLocalError(
                f"formatting the Kafka log dir {log_dir} with {java} did not finish within {FORMAT_TIMEOUT:g}s: "
                "check that this Java works (`java -version`) and that the machine is not overloaded, then retry"
            ) from None
        if fmt.returncode != 0:
            raise KafkaLocalError(
                f"formatting the Kafka log dir {log_dir} failed: {(fmt.stderr or fmt.stdout).strip()[-300:]}"
            )

    def _launch(self, java: str, config: Path, detach: bool) -> None:
        """Start the broker process and wait until it serves (stopping it again if it does not)."""
        assert self.fetch is not None
        with open(self.data_dir / CONSOLE_LOG, "ab") as console:
            self.process = subprocess.Popen(
                self._java_cmd(java, self.fetch.lib_dir, ["kafka.Kafka", str(config)]),
                stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=detach, preexec_fn=None if detach else _die_with_parent,
            )  # fmt: skip
        try:
            self._wait_ready()
        except BaseException:
            self._own_dir = False  # keep the logs the error message points at
            self.stop()
            raise

    def _died_message(self) -> str:
        log_tail = tail(self.broker_log) or tail(self.data_dir / CONSOLE_LOG)
        return (
            f"the Kafka broker exited with code {self.process.returncode} during start; "
            f"full log: {self.broker_log} (and {self.data_dir / CONSOLE_LOG}); last lines:\n{log_tail}"
        )

    def _wait_ready(self) -> None:
        """Ready = the process is alive, metadata lists the broker, and one record can be produced.

        The port is bound before the broker serves requests, so an open port proves nothing.
        """
        from confluent_kafka import KafkaException, Producer
        from confluent_kafka.admin import AdminClient, NewTopic

        deadline = time.monotonic() + self.ready_timeout
        conf = {"bootstrap.servers": self.bootstrap, "socket.timeout.ms": 2000, "log_level": 0}
        admin = AdminClient(conf)
        listed = False
        while not listed:
            if self.process.poll() is not None:
                raise KafkaLocalError(self._died_message())
            try:
                # Bounded by what is left of the deadline: a call that outlives it must not count as ready.
                listed = bool(admin.list_topics(timeout=max(0.1, min(2.0, deadline - time.monotonic()))).brokers)
            except KafkaException:
                pass
            if time.monotonic() > deadline:
                raise KafkaLocalError(
                    f"Kafka at {self.bootstrap} was not ready within {self.ready_timeout:g}s "
                    f"({'it listed itself too late' if listed else 'metadata does not list it'}); "
                    f"see {self.broker_log}; last lines:\n{tail(self.broker_log)}"
                )
            if not listed:
                time.sleep(0.2)
        with contextlib.suppress(KafkaException):
            admin.create_topics([NewTopic(READY_TOPIC, 1, 1)])[READY_TOPIC].result(timeout=30)
        # Idempotent, like the drain's dead-letter producer: the broker's first producer id request
        # answers "Coordinator load in progress" until the controller hands it a block of ids, and
        # that should happen here, not as a WARNING in a user's first run.
        producer = Producer(
            {
                **conf,
                "enable.idempotence": True,
                "message.timeout.ms": max(1000, int((deadline - time.monotonic()) * 1000)),
            }
        )
        delivered: list[object] = []
        producer.produce(READY_TOPIC, b"ready", on_delivery=lambda err, _msg: delivered.append(err))
        while not delivered and time.monotonic() < deadline and self.process.poll() is None:
            producer.poll(0.2)
        if self.process.poll() is not None:
            raise KafkaLocalError(self._died_message())
        if not delivered or delivered[0] is not None:
            raise KafkaLocalError(
                f"Kafka at {self.bootstrap} was not ready within {self.ready_timeout:g}s: it lists itself but "
                f"could not store a record ({delivered[0] if delivered else 'no answer'}); see {self.broker_log}"
            )
        self._wait_group_coordinator(admin, deadline)

    def _wait_group_coordinator(self, admin: Any, deadline: float) -> None:
        """
        Wait until the group coordinator answers: right after a start it loads ``__consumer_offsets``
        and answers "Coordinator load in progress" (for ~0.2 s here), which the first offset read of a
        drain or a lag sensor would otherwise meet.
        """
        from confluent_kafka import ConsumerGroupTopicPartitions, KafkaError, KafkaException

        loading = {
            KafkaError.COORDINATOR_LOAD_IN_PROGRESS,
            KafkaError.COORDINATOR_NOT_AVAILABLE,
            KafkaError.NOT_COORDINATOR,
        }
        while True:
            try:
                answer = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(READY_TOPIC)])
                answer[READY_TOPIC].result(timeout=max(0.1, deadline - time.monotonic()))
                return
            except KafkaException as err:
                if err.args[0].code() not in loading or time.monotonic() > deadline:
                    raise KafkaLocalError(
                        f"Kafka at {self.bootstrap} was not ready within {self.ready_timeout:g}s: its group "
                        f"coordinator does not answer ({err.args[0].str()}); see {self.broker_log}"
                    ) from None
            time.sleep(0.1)

    def halt(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the broker process but keep its data dir and ports, for :meth:`resume` (fault tests)."""
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, timeout, self.log)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)

    def resume(self) -> str:
        """Start the broker again after :meth:`halt`: same port, config and data (no format); wait until it serves."""
        if self.process is None or self.port is None:
            raise KafkaLocalError("resume() needs a broker started (and halted) by this object")
        if self.process.poll() is None:
            raise KafkaLocalError(f"the broker (pid {self.process.pid}) is still running; halt() it first")
        assert self.fetch is not None
        # No check_port_free: the old broker's connections linger in TIME_WAIT, which a plain
        # bind() counts as taken; Kafka binds with SO_REUSEADDR and gets its port back.
        with open(self.data_dir / CONSOLE_LOG, "ab") as console:
            self.process = subprocess.Popen(
                self._java_cmd(find_java(), self.fetch.lib_dir, ["kafka.Kafka", str(self.data_dir / "server.properties")]),
                stdout=console, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
            )  # fmt: skip
        self._wait_ready()
        return self.bootstrap

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds. Safe to call twice."""
        if self.process is not None and self.process.poll() is None:
            stop_pid(self.process.pid, timeout, self.log)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)
        if self._own_dir and self.process is not None and self.process.poll() is not None:
            shutil.rmtree(self.data_dir, ignore_errors=True)


# --------------------------------------------------------------------------------------------
# Command line


def _external_bootstrap() -> str | None:
    return os.environ.get(BOOTSTRAP_ENV) or None


def cmd_fetch(args: argparse.Namespace) -> int:
    result = fetch_jars()
    state = "cache hit" if result.cache_hit else f"downloaded in {result.seconds:.1f}s"
    print(f"Kafka {KAFKA_VERSION} jars: {result.lib_dir} ({state})")
    return 0


def cmd_start(args: argparse.Namespace) -> int:
    external = _external_bootstrap()
    if external:
        print(f"{BOOTSTRAP_ENV} is set ({external}): using that broker, not starting one")
        return 0
    broker = KafkaBroker(port=args.port, data_dir=args.data_dir, ready_timeout=args.timeout, keep_data=not args.fresh)
    if args.detach:
        broker.start(detach=True)
        print(f"Kafka running at {broker.bootstrap} (pid {broker.pid}); stop: python -m scripts.kafka_local stop"
              + ("" if args.data_dir == DEFAULT_DATA_DIR else f" --data-dir {args.data_dir}"))  # fmt: skip
        return 0

    def _terminate(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _terminate)
    try:
        broker.start()
        print(f"Kafka running at {broker.bootstrap}; Ctrl-C stops it", flush=True)
        code = broker.process.wait()
        print(f"Kafka exited with code {code}; see {broker.broker_log}", file=sys.stderr)
        return 2 if code else 0
    except KeyboardInterrupt:
        return 0
    finally:
        broker.stop()


def cmd_stop(args: argparse.Namespace) -> int:
    external = _external_bootstrap()
    if external:
        print(f"{BOOTSTRAP_ENV} is set ({external}): that broker is not ours, leaving it alone")
        return 0
    data_dir = Path(args.data_dir).resolve()
    pid = running_pid(data_dir)
    if pid is None:
        (data_dir / STATE_FILE).unlink(missing_ok=True)
        print(f"no kafka_local broker running from {data_dir}")
        return 0
    stop_pid(pid)
    (data_dir / STATE_FILE).unlink(missing_ok=True)
    print(f"stopped Kafka (pid {pid})")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    external = _external_bootstrap()
    bootstrap = external
    if not external:
        data_dir = Path(args.data_dir).resolve()
        pid = running_pid(data_dir)
        if pid is None:
            print(f"not running (no live broker recorded in {data_dir / STATE_FILE})")
            return 1
        bootstrap = read_state(data_dir)["bootstrap"]
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    try:
        brokers = AdminClient({"bootstrap.servers": bootstrap, "log_level": 0}).list_topics(timeout=5).brokers
    except KafkaException as exc:
        print(f"Kafka at {bootstrap} does not answer: {exc.args[0]}")
        return 1
    origin = f"from {BOOTSTRAP_ENV}" if external else f"pid {pid}"
    print(f"Kafka at {bootstrap} is up ({origin}, {len(brokers)} broker(s))")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m scripts.kafka_local", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("fetch", help=f"download the Kafka {KAFKA_VERSION} jars into {cache_dir()} (once)")
    start = sub.add_parser("start", help="start a broker on 127.0.0.1 and wait until it serves")
    start.add_argument("--port", type=int, default=None, help="client port (default: a free one; 0 = a free one)")
    mode = start.add_mutually_exclusive_group()
    mode.add_argument("--foreground", dest="detach", action="store_false", help="run until Ctrl-C (default)")
    mode.add_argument("--detach", dest="detach", action="store_true", help="leave it running; stop with `stop`")
    start.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for readiness (default 120)")
    start.add_argument(
        "--fresh", action="store_true", help="delete the data a previous broker left in --data-dir (default: keep it)"
    )
    for name, help_text in (("stop", "stop a detached broker"), ("status", "is a detached broker up?")):
        sub.add_parser(name, help=help_text)
    for name in ("start", "stop", "status"):
        sub.choices[name].add_argument(
            "--data-dir", type=Path, default=DEFAULT_DATA_DIR, help=f"broker files (default {DEFAULT_DATA_DIR})"
        )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    handler = {"fetch": cmd_fetch, "start": cmd_start, "stop": cmd_stop, "status": cmd_status}[args.command]
    try:
        return handler(args)
    except KafkaLocalError as exc:
        print(f"kafka_local: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
