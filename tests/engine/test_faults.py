"""Fault tests against real components: a real Kafka broker and the AEP emulator over HTTP, no fakes.

Each test states the bound it checks (duplicates after a crash, what a failed run committed),
never a duration: behaviour, not timing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from confluent_kafka import Consumer, TopicPartition

from aep_provider.emulator import Fault
from aep_provider.engine import DrainConfig, DrainEngine, DrainError, RecordRejectedError
from aep_provider.engine.dlq import HEADER_OFFSET, HEADER_REASON
from aep_provider.engine.payload import make_shaper
from scripts.kafka_local import KafkaBroker
from tests.engine.support import committed, inlet_client, kafka_conf, message, produce, produce_values, received

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
FAST = {"kafka_timeout_seconds": 10.0, "assignment_timeout_seconds": 30.0, "stop_grace_seconds": 5.0}


def _engine(conf, topic, sender, shaper=None, **cfg) -> DrainEngine:
    return DrainEngine(
        consumer_conf=conf, topics=[topic], sender=sender, config=DrainConfig(**{**FAST, **cfg}), shaper=shaper
    )


def _all_accepted(emulator) -> dict[int, list[int]]:
    return received(emulator)


# -- crash --------------------------------------------------------------------------------------


def test_sigkill_mid_run_resends_at_most_max_in_flight_batches(kafka_bootstrap, make_topic, aep_emulator, capsys):
    """The issue's scenario: 3 partitions, max_batch_records=200, default max_in_flight, killed mid-run."""
    partitions, per_partition, batch_records, max_in_flight = 3, 4000, 200, 4
    topic = make_topic(partitions=partitions)
    produce(kafka_bootstrap, topic, partitions, per_partition)
    # Slow enough that the kill lands mid-run, fast enough that many commits happened before it.
    aep_emulator.inject(Fault(delay_seconds=0.05, count=None, endpoint="batch"))
    conf = kafka_conf(kafka_bootstrap)
    cfg = {**FAST, "max_in_flight": max_in_flight, "max_batch_records": batch_records}
    args = {"emulator_url": aep_emulator.url, "consumer_conf": conf, "topic": topic, "config": cfg}
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.engine.drain_child", json.dumps(args)],
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        give_up = time.monotonic() + 120
        while len(aep_emulator.accepted()) < 3000 and child.poll() is None and time.monotonic() < give_up:
            time.sleep(0.01)
        assert child.poll() is None, "the drain ended before it could be killed"
        os.kill(child.pid, signal.SIGKILL)
        child.wait(10)
    finally:
        if child.poll() is None:
            child.kill()
    # A request the killed run had already sent is still answered by the emulator (it reads the
    # body, waits its delay, accepts): wait until nothing changes before counting the first run.
    _wait_until_quiet(aep_emulator)
    first_run = received(aep_emulator)
    first_count = sum(len(v) for v in first_run.values())
    assert 0 < first_count < partitions * per_partition

    aep_emulator.reset()
    second = _engine(conf, topic, inlet_client(aep_emulator), max_batch_records=batch_records).run()
    second_run = received(aep_emulator)

    # At least once: every record arrived in one run or the other; the rerun, in order, from where the
    # group's commit left off.
    for p in range(partitions):
        assert set(first_run.get(p, [])) | set(second_run.get(p, [])) == set(range(per_partition))
        if second_run.get(p):
            assert second_run[p] == list(range(second_run[p][0], per_partition))
    duplicates = first_count + sum(len(v) for v in second_run.values()) - partitions * per_partition
    with capsys.disabled():
        print(
            f"\n[fault] SIGKILL after {first_count} accepted: {duplicates} duplicate(s), bound {max_in_flight * batch_records}"
        )
    # The stated bound: requests in flight plus acknowledged batches whose commit was not yet
    # confirmed, which count against max_in_flight.
    assert 0 <= duplicates <= max_in_flight * batch_records
    assert second.lag == 0


def _wait_until_quiet(emulator, quiet_seconds: float = 1.0, timeout: float = 30.0) -> None:
    """Wait until the emulator's request counters stay unchanged for ``quiet_seconds``."""
    deadline = time.monotonic() + timeout
    last, since = emulator.stats(), time.monotonic()
    while time.monotonic() - since < quiet_seconds:
        assert time.monotonic() < deadline, "the emulator kept receiving requests after the run was killed"
        time.sleep(0.1)
        now = emulator.stats()
        if now != last:
            last, since = now, time.monotonic()


# -- broker outage ------------------------------------------------------------------------------


@pytest.fixture
def own_broker(tmp_path):
    """A broker of this test's own (it is stopped and restarted; the session one must stay up)."""
    broker = KafkaBroker(data_dir=tmp_path / "kafka", ready_timeout=120)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


@pytest.mark.timeout(600)
def test_broker_stopped_mid_run_then_restarted_nothing_lost(own_broker, aep_emulator):
    from confluent_kafka.admin import AdminClient, NewTopic

    bootstrap = own_broker.bootstrap
    topic = "outage"
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, 2, 1)])[topic].result(30)
    per_partition = 3000
    produce(bootstrap, topic, 2, per_partition)
    aep_emulator.inject(Fault(delay_seconds=0.05, count=None, endpoint="batch"))
    conf = kafka_conf(bootstrap)
    cfg = {"kafka_timeout_seconds": 5.0, "stop_grace_seconds": 3.0, "max_batch_records": 100, "max_in_flight": 2}
    outcome: dict[str, object] = {}

    def first_run() -> None:
        try:
            outcome["summary"] = _engine(conf, topic, inlet_client(aep_emulator), **cfg).run()
        except DrainError as err:
            outcome["error"] = err

    runner = threading.Thread(target=first_run, daemon=True)
    runner.start()
    give_up = time.monotonic() + 120
    while len(aep_emulator.accepted()) < 500 and runner.is_alive() and time.monotonic() < give_up:
        time.sleep(0.02)
    assert runner.is_alive(), "the drain ended before the broker could be stopped"
    own_broker.halt()
    # The run must end by itself, broker down: stall bound + grace + final commit + close bounds.
    runner.join(5 + 3 + 5 + 3 + 5 + 5 + 60)
    alive_while_down = runner.is_alive()
    own_broker.resume()
    runner.join(120)
    assert not alive_while_down, "the run did not end while the broker was down"
    assert "summary" in outcome or "error" in outcome
    if "error" in outcome:
        assert outcome["error"].retryable, outcome["error"]
    first = received(aep_emulator)

    # Next run on the restarted broker completes the rest; nothing lost.
    _engine(conf, topic, inlet_client(aep_emulator), **{**cfg, "kafka_timeout_seconds": 30.0}).run()
    got = received(aep_emulator)
    for p in range(2):
        assert set(got.get(p, [])) == set(range(per_partition)), f"partition {p} lost records"
    assert committed(bootstrap, conf["group.id"], topic, 2) == {0: per_partition, 1: per_partition}
    first_count = sum(len(v) for v in first.values())
    total = sum(len(v) for v in got.values())
    # Duplicates: only what the first run delivered but could not commit (it was down).
    assert total - 2 * per_partition <= first_count


# -- AEP outage ---------------------------------------------------------------------------------


def test_inlet_503_and_429_past_the_deadline_fail_retryably_then_recover(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=2)
    per_partition = 1000
    produce(kafka_bootstrap, topic, 2, per_partition)
    conf = kafka_conf(kafka_bootstrap)
    client = inlet_client(aep_emulator, deadline=1.0, max_attempts=4)
    batch_records, max_in_flight = 100, 2

    class OutageAfterFourBatches:
        """The real client; from its 5th batch on, the inlet answers 503 and 429 until reset."""

        calls = 0
        lock = threading.Lock()

        def send_batch(self, messages):
            with self.lock:
                self.calls += 1
                if self.calls == 5:
                    aep_emulator.inject(Fault(status=503, count=None, retry_after=0.1, endpoint="batch"))
                    aep_emulator.inject(Fault(status=429, count=None, endpoint="batch"))
            return client.send_batch(messages)

    with pytest.raises(DrainError, match=r"503") as info:
        _engine(
            conf, topic, OutageAfterFourBatches(), max_batch_records=batch_records, max_in_flight=max_in_flight
        ).run()
    assert info.value.retryable
    first = received(aep_emulator)
    first_count = sum(len(v) for v in first.values())
    assert 0 < first_count < 2 * per_partition
    # What was committed is exactly the acknowledged prefix of each partition.
    assert committed(kafka_bootstrap, conf["group.id"], topic, 2) == {p: len(first.get(p, [])) for p in range(2)}

    aep_emulator.reset()  # the inlet recovers
    _engine(conf, topic, client, max_batch_records=batch_records).run()
    second = received(aep_emulator)
    for p in range(2):
        assert first.get(p, []) + second[p] == list(range(per_partition))  # nothing twice, nothing lost
    assert committed(kafka_bootstrap, conf["group.id"], topic, 2) == {0: per_partition, 1: per_partition}


def test_ims_token_expiring_mid_run_is_renewed_without_loss_or_duplicates(
    kafka_bootstrap, make_topic, make_aep_emulator
):
    emulator = make_aep_emulator(token_ttl_seconds=1)
    emulator.inject(Fault(delay_seconds=0.05, count=None, endpoint="batch"))  # the run outlives several tokens
    topic = make_topic(partitions=2)
    per_partition = 1500
    produce(kafka_bootstrap, topic, 2, per_partition)
    conf = kafka_conf(kafka_bootstrap)
    summary = _engine(conf, topic, inlet_client(emulator), max_batch_records=50, max_in_flight=2).run()
    assert received(emulator) == {p: list(range(per_partition)) for p in range(2)}
    assert summary.delivered == 2 * per_partition
    assert emulator.stats()["tokens_issued"] >= 2


def test_a_token_revoked_mid_drain_costs_one_401_and_one_renewal_and_loses_nothing(
    kafka_bootstrap, make_topic, aep_emulator
):
    """
    The emulator invalidates the token while the drain runs (a token revoked or expired early,
    not a short life renewed ahead of time): one request is answered 401, the client renews
    the token once and sends that request again; every record arrives exactly once.
    """
    aep_emulator.inject(Fault(delay_seconds=0.02, count=None, endpoint="batch"))
    topic = make_topic(partitions=2)
    per_partition = 1000
    produce(kafka_bootstrap, topic, 2, per_partition)
    revoked = threading.Event()

    def revoke_mid_run() -> None:
        deadline = time.monotonic() + 120
        while len(aep_emulator.accepted()) < 500 and time.monotonic() < deadline:
            time.sleep(0.01)
        aep_emulator.revoke_tokens()
        revoked.set()

    watcher = threading.Thread(target=revoke_mid_run, daemon=True)
    watcher.start()
    # One request at a time: exactly one of them meets the revoked token.
    summary = _engine(
        kafka_conf(kafka_bootstrap), topic, inlet_client(aep_emulator), max_batch_records=50, max_in_flight=1
    ).run()
    watcher.join(10)
    assert revoked.is_set()
    stats = aep_emulator.stats()
    assert stats["requests"]["batch"].get("401") == 1, stats["requests"]
    assert stats["tokens_issued"] == 2  # the first token, and one renewal
    assert received(aep_emulator) == {p: list(range(per_partition)) for p in range(2)}
    assert (summary.delivered, summary.lag) == (2 * per_partition, 0)


# -- poison pills -------------------------------------------------------------------------------

DEEP = b'{"a":' * 1000 + b"1" + b"}" * 1000  # ~6 KB: Python's JSON decoder recurses past its limit


def _poison_values() -> list[bytes]:
    return [
        message("poison", 0, 0),
        DEEP,  # 1: nested too deeply
        b"\xc3\x28 not utf-8",  # 2
        b"just text, not json",  # 3
        json.dumps({"header": {}, "body": {"pad": "x" * 1_100_000}}).encode(),  # 4: over 1 MB
        message("poison", 0, 1).replace(b'"n":1', b'"n":1,"boom":true'),  # 5: the user callable raises on it
        message("poison", 0, 2),
    ]


def explode_on_boom(record):
    """A user payload callable: raises for records carrying "boom", passes the others through."""
    value = json.loads(record.value)
    if value["body"]["xdmEntity"].get("boom"):
        raise KeyError("boom")
    return value


@pytest.fixture
def poison_topic(kafka_bootstrap, make_topic) -> str:
    topic = make_topic(partitions=1, config={"max.message.bytes": "2000000"})
    produce_values(kafka_bootstrap, topic, _poison_values(), **{"message.max.bytes": 2_100_000})
    return topic


@pytest.mark.parametrize("payload", ["passthrough", "callable"])
def test_poison_pills_go_to_the_dlq_and_the_run_goes_on(
    kafka_bootstrap, make_topic, poison_topic, aep_emulator, payload
):
    dlq = make_topic(partitions=1, config={"max.message.bytes": "2000000"}, prefix="dlq")
    conf = kafka_conf(kafka_bootstrap)
    shaper = make_shaper(explode_on_boom if payload == "callable" else "passthrough")
    summary = _engine(conf, poison_topic, inlet_client(aep_emulator), shaper=shaper, dlq_topic=dlq).run()

    rejected = [1, 2, 3, 4, 5] if payload == "callable" else [1, 2, 3, 4]
    assert summary.rejected == summary.dead_lettered == len(rejected)
    assert committed(kafka_bootstrap, conf["group.id"], poison_topic, 1) == {0: 7}
    reader = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": "r", "auto.offset.reset": "earliest"})
    reader.assign([TopicPartition(dlq, 0, 0)])
    reasons = {}
    while len(reasons) < len(rejected):
        msg = reader.poll(10)
        assert msg is not None and msg.error() is None
        headers = {k: v.decode() for k, v in msg.headers()}
        reasons[int(headers[HEADER_OFFSET])] = headers[HEADER_REASON]
    reader.close()
    assert sorted(reasons) == rejected
    if payload == "passthrough":
        assert "nested too deeply" in reasons[1]
        assert "not valid UTF-8" in reasons[2] and "not valid JSON" in reasons[3] and "1,000,000 bytes" in reasons[4]
    else:
        assert all("payload callable raised" in reasons[o] for o in (1, 2, 3, 5))
        assert "RecursionError" in reasons[1] and "KeyError" in reasons[5]


def test_poison_pills_without_dlq_skip_or_fail_with_a_reason(kafka_bootstrap, poison_topic, aep_emulator):
    conf = kafka_conf(kafka_bootstrap)
    with pytest.raises(RecordRejectedError, match=rf"{poison_topic}\[0\]@1 .*nested too deeply") as info:
        _engine(conf, poison_topic, inlet_client(aep_emulator)).run()
    assert not info.value.retryable
    assert committed(kafka_bootstrap, conf["group.id"], poison_topic, 1) == {0: 1}

    summary = _engine(conf, poison_topic, inlet_client(aep_emulator), on_reject="skip").run()
    assert summary.rejected_by_reason == {"nested too deeply": 1, "not UTF-8": 1, "invalid JSON": 1, "over 1 MB": 1}
    assert committed(kafka_bootstrap, conf["group.id"], poison_topic, 1) == {0: 7}
    assert received(aep_emulator) == {0: [0, 1, 2]}


class RaisingShaper:
    """A custom shaper with a bug for one record: the run must treat it as that record's rejection."""

    def shape(self, record):
        if record.offset == 1:
            raise RecursionError("maximum recursion depth exceeded")
        return make_shaper("passthrough").shape(record)


def test_a_custom_shaper_raising_rejects_only_that_record(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce_values(kafka_bootstrap, topic, [message(topic, 0, n) for n in range(3)])
    conf = kafka_conf(kafka_bootstrap)
    summary = _engine(conf, topic, inlet_client(aep_emulator), shaper=RaisingShaper(), on_reject="skip").run()
    assert received(aep_emulator) == {0: [0, 2]}
    assert summary.rejected_by_reason == {"shaper failed": 1}
    assert "RecursionError" in summary.rejection_samples[0].reason


# -- dead-letter topic checked up front ---------------------------------------------------------


def test_a_missing_dlq_topic_fails_before_any_record_without_retries(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    produce(kafka_bootstrap, topic, 1, 10)
    conf = kafka_conf(kafka_bootstrap)
    with pytest.raises(DrainError, match=r"dead-letter topic 'no-such-dlq' cannot be used.*create it") as info:
        _engine(conf, topic, inlet_client(aep_emulator), dlq_topic="no-such-dlq").run()
    assert not info.value.retryable
    assert aep_emulator.accepted() == []


def test_a_dlq_smaller_than_the_source_warns_up_front(kafka_bootstrap, make_topic, aep_emulator, caplog):
    topic = make_topic(partitions=1, config={"max.message.bytes": "2000000"})
    dlq = make_topic(partitions=1, prefix="dlq")  # broker default, ~1 MB
    produce(kafka_bootstrap, topic, 1, 3)
    conf = kafka_conf(kafka_bootstrap)
    with caplog.at_level("WARNING", logger="aep_provider.engine"):
        _engine(conf, topic, inlet_client(aep_emulator), dlq_topic=dlq).run()
    assert any(f"Dead-letter topic '{dlq}' accepts records up to" in r.getMessage() for r in caplog.records)


# -- on_reject="fail" after a per-message 400 ----------------------------------------------------


def test_on_reject_fail_reports_accepted_records_past_the_rejection(kafka_bootstrap, make_topic, aep_emulator):
    topic = make_topic(partitions=1)
    values = [message(topic, 0, n) for n in range(10)]
    values[3] = b'{"no": "header"}'  # AEP rejects it in its 207 answer; 4..9 of the batch are accepted
    produce_values(kafka_bootstrap, topic, values)
    conf = kafka_conf(kafka_bootstrap)
    engine = _engine(conf, topic, inlet_client(aep_emulator), max_batch_records=10)
    with pytest.raises(RecordRejectedError, match=r"@3 was rejected.*6 record\(s\) .* after offset 3 were accepted"):
        engine.run()
    assert engine.summary.accepted_past_failure == 6
    assert engine.summary.to_dict()["accepted_past_failure"] == 6
    assert committed(kafka_bootstrap, conf["group.id"], topic, 1) == {0: 3}
