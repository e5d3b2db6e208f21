"""The /emulator/ HTTP control API (via RemoteEmulator) and JSONL recording."""

from __future__ import annotations

import json
import time

import pytest
import requests

from aep_provider.emulator import AEPEmulator, EmulatorConfig, Fault, RemoteEmulator
from tests.emulator.conftest import TIMEOUT, Inlet, xdm

pytestmark = pytest.mark.integration


@pytest.fixture
def remote(aep_emulator):
    client = RemoteEmulator(aep_emulator.url, timeout=TIMEOUT)
    yield client
    client.close()


def test_health_lists_inlets(remote):
    assert remote.health() == {"status": "ok", "inlets": ["emulator-inlet"]}


def test_accepted_and_stats_over_http_match_in_process(aep_emulator, remote, inlet):
    inlet.batch([xdm({"_id": "1"}), {}, xdm({"_id": "2"})])
    assert remote.accepted() == aep_emulator.accepted()
    assert [m["body"]["xdmEntity"]["_id"] for m in remote.accepted("emulator-inlet")] == ["1", "2"]
    assert remote.accepted("other") == []
    assert remote.stats() == aep_emulator.stats()
    assert remote.stats()["requests"]["batch"] == {"207": 1}


def test_accepted_over_http_takes_since_and_limit_and_shows_when_each_arrived(aep_emulator, remote, inlet):
    before = int(time.time() * 1000)
    inlet.batch([xdm({"_id": "1"}), xdm({"_id": "2"})])
    time.sleep(0.01)
    middle = int(time.time() * 1000)
    inlet.batch([xdm({"_id": "3"}), {}, xdm({"_id": "4"}), xdm({"_id": "5"})])
    after = int(time.time() * 1000) + 1

    def ids(**params: str) -> tuple[list[str], int, int]:
        answer = requests.get(f"{aep_emulator.url}/emulator/accepted", params=params, timeout=10).json()
        return [m["message"]["body"]["xdmEntity"]["_id"] for m in answer["messages"]], answer["count"], answer["total"]

    assert ids() == (["1", "2", "3", "4", "5"], 5, 5)
    assert ids(since=str(middle)) == (["3", "4", "5"], 3, 5)
    assert ids(limit="2") == (["4", "5"], 2, 5)  # the last two, in arrival order
    assert ids(since=str(before), limit="4") == (["2", "3", "4", "5"], 4, 5)
    assert ids(since=str(after)) == ([], 0, 5)
    received = remote.received(since_ms=middle)
    assert [(r["inletId"], before <= r["receivedTimeMs"] < after) for r in received] == [("emulator-inlet", True)] * 3
    assert received[0]["receivedTimeMs"] >= middle
    assert remote.received(limit=1) == aep_emulator.received(limit=1)
    for bad in ({"since": "yesterday"}, {"limit": "-1"}):
        answer = requests.get(f"{aep_emulator.url}/emulator/accepted", params=bad, timeout=10)
        assert answer.status_code == 400 and "must be a whole number" in answer.json()["error"]


def test_inject_faults_over_http(remote, inlet):
    remote.inject(Fault(status=503, count=2, endpoint="batch", retry_after=4))
    assert remote.faults()[0]["remaining"] == 2
    answers = [inlet.batch([xdm()]) for _ in range(3)]
    assert [a.status_code for a in answers] == [503, 503, 207]
    assert answers[0].headers["Retry-After"] == "4"


def test_inject_a_list_of_faults_as_raw_json(aep_emulator, inlet):
    response = requests.post(
        f"{aep_emulator.url}/emulator/faults",
        json=[{"drop_connection": True}, {"status": 500, "endpoint": "batch"}],
        timeout=TIMEOUT,
    )
    assert response.status_code == 201 and response.json() == {"injected": 2}
    with pytest.raises(requests.ConnectionError):
        inlet.batch([xdm()])
    assert inlet.batch([xdm()]).status_code == 500


@pytest.mark.parametrize("body", [b"{", b'{"stauts": 503}', b'{"endpoint": "nowhere"}'])
def test_bad_fault_is_400_with_reason(aep_emulator, body):
    response = requests.post(f"{aep_emulator.url}/emulator/faults", data=body, timeout=TIMEOUT)
    assert response.status_code == 400
    assert response.json()["error"].startswith("bad fault:")
    assert aep_emulator.faults() == []


def test_revoke_and_reset_over_http(aep_emulator, remote, inlet):
    inlet.batch([xdm()])
    remote.revoke_tokens()
    assert inlet.batch([xdm()]).status_code == 401
    remote.reset()
    assert remote.accepted() == []
    assert remote.stats()["messages_accepted"] == 0
    assert remote.stats()["tokens_issued"] == 0


def test_unknown_control_endpoint(aep_emulator):
    response = requests.get(f"{aep_emulator.url}/emulator/nope", timeout=TIMEOUT)
    assert response.status_code == 404
    assert "unknown control endpoint" in response.json()["error"]


def test_record_file_gets_one_json_line_per_accepted_message(tmp_path):
    path = tmp_path / "accepted.jsonl"
    with AEPEmulator(EmulatorConfig(record_path=str(path))) as emulator:
        inlet = Inlet(emulator)
        batch = inlet.batch([xdm({"_id": "a", "text": "h\u00e9llo\nworld"}), {}, xdm({"_id": "b"})]).json()
        single = inlet.single(xdm({"_id": "c"})).json()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert [line["message"]["body"]["xdmEntity"]["_id"] for line in lines] == ["a", "b", "c"]
    assert lines[0]["message"]["body"]["xdmEntity"]["text"] == "h\u00e9llo\nworld"
    assert [line["xactionId"] for line in lines] == [
        batch["responses"][0]["xactionId"],
        batch["responses"][2]["xactionId"],
        single["xactionId"],
    ]
    assert {line["inletId"] for line in lines} == {"emulator-inlet"}
    assert lines[0]["receivedTimeMs"] == batch["receivedTimeMs"]


def test_store_accepted_off_still_counts(tmp_path):
    with AEPEmulator(EmulatorConfig(store_accepted=False)) as emulator:
        Inlet(emulator).batch([xdm(), xdm()])
        assert emulator.accepted() == []
        assert emulator.stats()["messages_accepted"] == 2


def test_stop_closes_keep_alive_connections_and_frees_the_port():
    emulator = AEPEmulator().start()
    inlet = Inlet(emulator)
    assert inlet.batch([xdm()]).status_code == 207
    port = emulator.port
    emulator.stop()
    with pytest.raises(requests.ConnectionError):
        inlet.batch([xdm()])
    # The same port can be served again right away (a restarted local stack).
    with AEPEmulator(port=port) as again:
        assert again.url.endswith(f":{port}")
        assert RemoteEmulator(again.url).health()["status"] == "ok"


def test_reprs_name_the_url_and_never_the_secret(aep_emulator):
    assert repr(aep_emulator) == f"AEPEmulator(url={aep_emulator.url!r})"
    config = EmulatorConfig(client_secret="configured-s3cret")
    assert "configured-s3cret" not in repr(config) and "client_id" in repr(config)


def test_restart_keeps_recording(tmp_path):
    path = tmp_path / "accepted.jsonl"
    emulator = AEPEmulator(EmulatorConfig(record_path=str(path)))
    for run in ("first", "second"):
        with emulator:
            Inlet(emulator).batch([xdm({"_id": run})])
    ids = [json.loads(line)["message"]["body"]["xdmEntity"]["_id"] for line in path.read_text().splitlines()]
    assert ids == ["first", "second"]
