"""``python -m aep_provider.emulator``: start, serve, stop; one-line errors with exit code 2."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from aep_provider.emulator import RemoteEmulator
from tests.emulator.conftest import Inlet, request_token, xdm

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "aep_provider.emulator", "--host", "127.0.0.1"]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=60)


class _Started:
    def __init__(self, proc: subprocess.Popen[str], banner: list[str], url: str) -> None:
        self.proc, self.banner, self.url = proc, banner, url
        self.port = int(url.rsplit(":", 1)[1])


@pytest.fixture
def start_cli() -> Iterator:
    procs: list[subprocess.Popen[str]] = []

    def start(*args: str, ignore_sigint: bool = False) -> _Started:
        proc = subprocess.Popen(
            [*CLI, "--port", "0", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # As a process started from a background job (`cmd &`, many CI scripts) inherits it.
            preexec_fn=(lambda: signal.signal(signal.SIGINT, signal.SIG_IGN)) if ignore_sigint else None,
        )
        procs.append(proc)
        banner: list[str] = []
        for line in proc.stdout:  # type: ignore[union-attr]
            banner.append(line.rstrip("\n"))
            if line.startswith("  control"):
                break
        match = re.search(r"listening on (http://127\.0\.0\.1:\d+)", banner[0] if banner else "")
        if not match:
            proc.kill()
            pytest.fail(f"aep-emulator did not start; stderr: {proc.communicate(timeout=10)[1]}")
        return _Started(proc, banner, match.group(1))

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_cli_serves_prints_credentials_and_stops_cleanly(start_cli, tmp_path):
    record = tmp_path / "rec.jsonl"
    started = start_cli("--token-ttl", "60", "--failure-shape", "live", "--record", str(record))
    text = "\n".join(started.banner)
    assert "client_id          : aep-emulator-client" in text
    assert "aep-emulator-secret" in text
    assert f"{started.url}/collection/batch/emulator-inlet" in text
    inlet = Inlet(started.url)
    entries = inlet.batch([xdm({"_id": "cli"}), {}]).json()["responses"]
    assert "xactionId" in entries[0] and entries[1]["status"] == 400  # --failure-shape live
    remote = RemoteEmulator(started.url)
    assert remote.stats()["messages_accepted"] == 1
    assert remote.accepted()[0]["body"]["xdmEntity"]["_id"] == "cli"

    started.proc.send_signal(signal.SIGTERM)
    out, err = started.proc.communicate(timeout=20)
    assert started.proc.returncode == 0, err
    assert "AEP emulator stopped" in out
    assert err == ""
    assert json.loads(record.read_text().splitlines()[0])["message"]["body"]["xdmEntity"]["_id"] == "cli"


def test_cli_never_prints_what_clients_send(start_cli):
    started = start_cli()
    inlet = Inlet(started.url)
    token = inlet.headers["Authorization"]
    inlet.batch([xdm()])
    request_token(started.url, client_secret="a-client-sent-secret&+=")
    started.proc.send_signal(signal.SIGINT)
    out, err = started.proc.communicate(timeout=20)
    assert started.proc.returncode == 0
    for leaked in (token.split()[1], "a-client-sent-secret"):
        assert leaked not in out and leaked not in err


def test_sigint_stops_the_cli_even_when_inherited_as_ignored(start_cli):
    started = start_cli(ignore_sigint=True)
    started.proc.send_signal(signal.SIGINT)
    out, err = started.proc.communicate(timeout=20)
    assert started.proc.returncode == 0 and "AEP emulator stopped" in out, err


def test_a_secret_from_the_config_file_is_not_printed(start_cli, tmp_path):
    # A user may point the emulator at the credentials their real connection uses.
    config = tmp_path / "emulator.json"
    config.write_text(json.dumps({"client_secret": "my-own-secret-value-77"}))
    started = start_cli("--config", str(config))
    text = "\n".join(started.banner)
    assert "my-own-secret-value-77" not in text
    assert "client_secret      : (set in the config file; not shown)" in text
    assert request_token(started.url, client_secret="my-own-secret-value-77").status_code == 200


def test_port_in_use_is_one_line_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _run("--port", str(port))
    assert result.returncode == 2
    assert result.stderr.strip() == (
        f"aep-emulator: error: port {port} on 127.0.0.1 is already in use; pick another with --port (0 = any free port)"
    )
    assert "Traceback" not in result.stderr and result.stdout == ""


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "is not valid JSON"),
        (json.dumps({"failure_shape": "xml"}), "failure_shape must be one of documented, live"),
        (json.dumps({"inlets": [{"inlet_id": "a", "speed": 1}]}), "unknown inlet key(s) ['speed']"),
    ],
)
def test_bad_config_is_one_line_exit_2(tmp_path, content, expected):
    path = tmp_path / "emu.json"
    path.write_text(content)
    result = _run("--port", "0", "--config", str(path))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aep-emulator: error: ") and expected in lines[0]


def test_unwritable_record_file_is_one_line_exit_2(tmp_path):
    result = _run("--port", "0", "--record", str(tmp_path / "no-such-dir" / "rec.jsonl"))
    assert result.returncode == 2
    assert result.stderr.startswith("aep-emulator: error: cannot open record file ")
    assert "No such file or directory" in result.stderr and len(result.stderr.splitlines()) == 1


def test_bad_token_ttl_is_one_line_exit_2():
    result = _run("--port", "0", "--token-ttl", "0")
    assert result.returncode == 2
    assert "token_ttl_seconds must be a whole number of seconds >= 1" in result.stderr
    assert "Traceback" not in result.stderr


def test_config_file_inlets_are_served(start_cli, tmp_path):
    path = tmp_path / "emu.json"
    path.write_text(json.dumps({"inlets": [{"inlet_id": "open", "authenticated": False}]}))
    started = start_cli("--config", str(path))
    assert any("collection/batch/open" in line and "no authentication" in line for line in started.banner)
    assert RemoteEmulator(started.url).health()["inlets"] == ["open"]
