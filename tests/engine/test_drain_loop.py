"""Unit tests of the drain loop's own logic, with an in-memory consumer and sender (no broker)."""

from __future__ import annotations

import logging
import re
import threading
import time
from types import SimpleNamespace

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from aep_provider.aep.errors import AEPAuthError, AEPRequestError, AEPUnavailableError
from aep_provider.aep.results import BatchResult, MessageResult, Outcome
from aep_provider.engine import DrainConfig, DrainEngine, DrainError, KafkaSetupError, KafkaUnavailableError
from aep_provider.engine.config import consumer_config
from aep_provider.engine.payload import Shaped


class FakeMessage:
    def __init__(self, topic, partition, offset, value=None, eof=False):
        self._t, self._p, self._o, self._v, self._eof = topic, partition, offset, value, eof

    def error(self):
        return KafkaError(KafkaError._PARTITION_EOF) if self._eof else None

    def topic(self):
        return self._t

    def partition(self):
        return self._p

    def offset(self):
        return self._o

    def key(self):
        return None

    def value(self):
        return self._v

    def headers(self):
        return None

    def timestamp(self):
        return (0, 0)


class FakeConsumer:
    """Serves ``logs[partition]`` (a list of values) of topic "t" from offset 0; ``stall`` = never answers."""

    def __init__(self, logs: dict[int, list[bytes]], stall: bool = False):
        self.logs, self.stall = logs, stall
        self.positions: dict[int, int] = {}
        self.commits: list[dict[int, int]] = []
        self._on_assign = None
        self._assigned = False
        self._on_commit = None
        self._answers: list = []

    def configure(self, conf):
        """The consumer factory: keep the engine's on_commit callback, as librdkafka would."""
        self._on_commit = conf.get("on_commit")
        return self

    def _serve(self):
        while self._answers:
            self._on_commit(*self._answers.pop(0))

    def list_topics(self, timeout):
        return SimpleNamespace(topics={"t": SimpleNamespace(error=None, partitions={p: None for p in self.logs})})

    def get_watermark_offsets(self, tp, timeout, cached):
        return 0, len(self.logs[tp.partition])

    def memberid(self):
        return "fake-member"

    def subscribe(self, topics, on_assign, on_revoke, on_lost):
        self._on_assign = on_assign

    def committed(self, tps, timeout):
        return [TopicPartition(tp.topic, tp.partition, -1001) for tp in tps]

    def incremental_assign(self, tps):
        self.positions = {tp.partition: tp.offset for tp in tps}

    assign = incremental_assign

    def pause(self, tps):
        pass

    def poll(self, timeout):
        self._serve()
        time.sleep(min(timeout, 0.01))
        return None

    def consume(self, num_messages, timeout):
        self._serve()
        if not self._assigned:
            self._assigned = True
            self._on_assign(self, [TopicPartition("t", p) for p in self.logs])
            return []
        if self.stall:
            time.sleep(timeout)
            return []
        out = []
        for p, pos in self.positions.items():
            if pos < len(self.logs[p]):
                take = min(num_messages, len(self.logs[p]) - pos)
                out += [FakeMessage("t", p, o, self.logs[p][o]) for o in range(pos, pos + take)]
                self.positions[p] = pos + take
                if self.positions[p] == len(self.logs[p]):
                    out.append(FakeMessage("t", p, self.positions[p], eof=True))
        return out

    def commit(self, offsets, asynchronous):
        self.commits.append({tp.partition: tp.offset for tp in offsets})
        if asynchronous:
            self._answers.append((None, [TopicPartition(tp.topic, tp.partition, tp.offset) for tp in offsets]))
            return None
        return offsets

    def close(self):
        pass


class OrderCheckingSender:
    """Accepts everything after a short pause; records concurrency per partition and arrival order."""

    def __init__(self):
        self.lock = threading.Lock()
        self.in_flight: dict[int, int] = {}
        self.max_in_flight = 0
        self.overlap = False
        self.arrived: list[bytes] = []

    def send_batch(self, messages):
        parts = {int(m.split(b":")[0]) for m in messages}
        with self.lock:
            self.overlap |= any(self.in_flight.get(p) for p in parts)
            for p in parts:
                self.in_flight[p] = 1
            self.max_in_flight = max(self.max_in_flight, sum(self.in_flight.values()))
        time.sleep(0.01)
        with self.lock:
            self.arrived += messages
            for p in parts:
                self.in_flight[p] = 0
        return BatchResult(results=[MessageResult(Outcome.ACCEPTED)] * len(messages), requests=1)


class RawShaper:
    """Values are b"<partition>:<n>"; send them as they are (the sender above parses them)."""

    def shape(self, record):
        return Shaped(message=record.value)


def _engine(consumer, sender, **cfg):
    conf = consumer_config({"bootstrap.servers": "fake:9092", "group.id": "g"})
    return DrainEngine(
        consumer_conf=conf,
        topics=["t"],
        sender=sender,
        shaper=RawShaper(),
        config=DrainConfig(**cfg),
        consumer_factory=consumer.configure,
    )


def test_several_requests_in_flight_but_never_two_for_one_partition():
    logs = {p: [f"{p}:{n}".encode() for n in range(200)] for p in range(4)}
    consumer, sender = FakeConsumer(logs), OrderCheckingSender()
    summary = _engine(consumer, sender, max_batch_records=10, max_in_flight=3).run()
    assert summary.delivered == 800
    assert not sender.overlap and sender.max_in_flight > 1
    for p in range(4):
        assert [m for m in sender.arrived if m.startswith(f"{p}:".encode())] == logs[p]
    assert {p: max(c.get(p, 0) for c in consumer.commits) for p in range(4)} == {p: 200 for p in range(4)}


def test_a_broker_that_stops_answering_fails_the_run_in_bounded_time():
    consumer = FakeConsumer({0: [b"0:0"]}, stall=True)
    with pytest.raises(KafkaSetupError, match=r"no record or end of partition arrived .* for 0.4s while t\[0\]"):
        _engine(consumer, OrderCheckingSender(), kafka_timeout_seconds=0.2, stop_grace_seconds=0.2).run()


class PartialAnswerSender:
    """
    Accepts the first batch; on the second, returns a partial answer whose ``error`` ended the
    call, as the client does (``outcomes=None``: raises ``error``, nothing was answered).
    """

    def __init__(self, error, outcomes):
        self.error, self.outcomes = error, outcomes
        self.calls = 0

    def send_batch(self, messages):
        self.calls += 1
        if self.calls == 1:
            return BatchResult(results=[MessageResult(Outcome.ACCEPTED)] * len(messages), requests=1)
        if self.outcomes is None:
            raise self.error
        results = [
            MessageResult(o, status=400 if o is Outcome.REJECTED else None, message="bad") for o in self.outcomes
        ]
        results += [MessageResult(Outcome.RETRYABLE)] * (len(messages) - len(results))
        return BatchResult(results=results, requests=1, error=self.error)


A, R = Outcome.ACCEPTED, Outcome.REJECTED


@pytest.mark.parametrize(
    ("error", "retryable"),
    [
        (AEPAuthError("the inlet refused a fresh token (401)"), False),
        (AEPUnavailableError("503 past the deadline"), True),
    ],
    ids=["auth", "unavailable"],
)
def test_a_partial_answer_settles_what_aep_accepted_before_failing(error, retryable):
    logs = {0: [f"0:{n}".encode() for n in range(20)]}
    consumer = FakeConsumer(logs)
    sender = PartialAnswerSender(error, [A, A, R, A])
    with pytest.raises(DrainError, match=re.escape(str(error))) as info:
        _engine(consumer, sender, max_batch_records=10, max_in_flight=1, on_reject="skip").run()
    assert info.value.retryable is retryable
    # Batch 2 holds offsets 10..19: 10, 11 accepted, 12 rejected (skipped), 13 accepted, 14.. unanswered.
    assert max(c[0] for c in consumer.commits) == 14


def test_without_partial_answers_nothing_of_the_failed_batch_is_committed():
    consumer = FakeConsumer({0: [f"0:{n}".encode() for n in range(20)]})
    with pytest.raises(DrainError, match="refused"):
        _engine(
            consumer,
            PartialAnswerSender(AEPRequestError("refused", status=400), None),
            max_batch_records=10,
            max_in_flight=1,
        ).run()
    assert max(c[0] for c in consumer.commits) == 10


class Rejecting400Sender:
    """AEP answers 400 for every message whose JSON has no "header"; accepts the rest."""

    def send_batch(self, messages):
        results = [
            MessageResult(Outcome.ACCEPTED) if b'"header"' in m else MessageResult(Outcome.REJECTED, 400, "x" * 500)
            for m in messages
        ]
        return BatchResult(results=results, requests=1)


class GrowingTopicConsumer(FakeConsumer):
    """Seven more records arrive in the partition once the run has committed (the topic moved on)."""

    def get_watermark_offsets(self, tp, timeout, cached):
        low, high = super().get_watermark_offsets(tp, timeout, cached)
        return low, high + (7 if self.commits else 0)


def test_summary_counts_rejections_by_reason_keeps_bounded_samples_and_reports_topic_lag(caplog):
    good = b'{"header": {}, "body": {}}'
    values = [b"{not json %d" % n for n in range(25)] + [b"\xff\xfe", b'{"body": {}}', b"[1]", good]
    consumer = GrowingTopicConsumer({0: values})
    engine = DrainEngine(
        consumer_conf=consumer_config({"bootstrap.servers": "fake:9092", "group.id": "g"}),
        topics=["t"],
        sender=Rejecting400Sender(),
        config=DrainConfig(on_reject="skip"),
        consumer_factory=consumer.configure,
    )
    with caplog.at_level(logging.INFO, logger="aep_provider.engine"):
        data = engine.run().to_dict()
    assert data["rejected"] == 28 and data["delivered"] == 1
    assert data["rejected_by_reason"] == {"invalid JSON": 25, "not UTF-8": 1, "AEP 400": 1, "not a JSON object": 1}
    samples = data["rejection_samples"]
    assert len(samples) == 20
    assert [s["offset"] for s in samples] == list(range(20))
    assert samples[0]["topic"] == "t" and samples[0]["partition"] == 0 and samples[0]["status"] is None
    assert "not valid JSON" in samples[0]["reason"]
    part = data["partitions"]["t[0]"]
    assert (part["end"], part["committed"], part["topic_end"], part["topic_lag"]) == (29, 29, 36, 7)
    assert data["topic_lag"] == 7
    lines = [r.getMessage() for r in caplog.records]
    assert any("topic_lag=7" in line and line.startswith("Drain finished") for line in lines)
    assert any(line.startswith("Rejected by reason:") and "invalid JSON=25" in line for line in lines)
    # The 500-character reason AEP gave is cut in the logs as in the samples.
    assert not any("x" * 201 in line for line in lines)


class LateRoundConsumer(FakeConsumer):
    """
    A cooperative group where this member first gets nothing, then partition 0 in a later round
    (another member left) while the committed offsets cannot be read; ``paused`` records pauses.
    """

    def __init__(self, logs, *, first_round_empty: bool):
        super().__init__(logs)
        self.first_round_empty = first_round_empty
        self.rounds = 0
        self.paused: list[int] = []

    def committed(self, tps, timeout):
        raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets"))

    def pause(self, tps):
        self.paused += [tp.partition for tp in tps]

    def consume(self, num_messages, timeout):
        if self.rounds < 2:
            self.rounds += 1
            empty = self.rounds == 1 and self.first_round_empty
            self._on_assign(self, [] if empty else [TopicPartition("t", p) for p in self.logs])
            return []
        return super().consume(num_messages, timeout) if self.positions else []

    def incremental_assign(self, tps):
        pass  # the deferred partition is held, never read


def test_unreadable_committed_offsets_in_a_later_round_leave_the_partition_to_the_next_run(caplog):
    consumer = LateRoundConsumer({0: [b"0:0", b"0:1"]}, first_round_empty=True)
    sender = OrderCheckingSender()
    engine = _engine(consumer, sender, kafka_timeout_seconds=0.3)
    engine._group.settled = lambda partitions: True  # the group reports every partition owned
    with caplog.at_level(logging.WARNING, logger="aep_provider.engine"):
        summary = engine.run()
    assert sender.arrived == [] and consumer.commits == [] and summary.delivered == 0
    assert consumer.paused == [0]
    assert any("leaving t[0] to the next run" in r.getMessage() for r in caplog.records)


def test_unreadable_committed_offsets_on_the_first_assignment_fail_the_run():
    consumer = LateRoundConsumer({0: [b"0:0"]}, first_round_empty=False)
    with pytest.raises(KafkaUnavailableError, match="could not read the group's committed offsets"):
        _engine(consumer, OrderCheckingSender(), kafka_timeout_seconds=0.3).run()


class ClosingRoundConsumer(FakeConsumer):
    """
    Like librdkafka when close() finds a rebalance under way: close() serves the pending
    assignment of partition 1 (another member left) while the group is terminating, when an
    offset fetch can only time out.
    """

    def __init__(self, logs):
        super().__init__(logs)
        self.closing = False
        self.fetched_while_closing = 0
        self.handed: list[int] = []

    def committed(self, tps, timeout):
        if self.closing:
            self.fetched_while_closing += 1
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets"))
        return super().committed(tps, timeout)

    def incremental_assign(self, tps):
        if self.closing:
            self.handed += [tp.partition for tp in tps]
        else:
            super().incremental_assign(tps)

    def close(self):
        self.closing = True
        self._on_assign(self, [TopicPartition("t", 1)])


def test_an_assignment_served_by_close_is_handed_back_unread(caplog):
    consumer = ClosingRoundConsumer({0: [b"0:0", b"0:1"]})
    sender = OrderCheckingSender()
    with caplog.at_level(logging.WARNING, logger="aep_provider.engine"):
        summary = _engine(consumer, sender).run()
    assert sender.arrived == [b"0:0", b"0:1"] and summary.delivered == 2
    # The late partition is neither planned (no offset fetch), nor read, nor reported as drained.
    assert consumer.fetched_while_closing == 0 and consumer.handed == [1]
    assert list(summary.to_dict()["partitions"]) == ["t[0]"]
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


class RebalancingCommitConsumer(FakeConsumer):
    """The group is between generations for the first ``refusals`` commits; poll() lets it settle."""

    def __init__(self, logs, refusals: int, per_partition: bool):
        super().__init__(logs)
        self.refusals, self.per_partition = refusals, per_partition
        self.polls = 0

    def commit(self, offsets, asynchronous):
        if self.refusals > 0:
            self.refusals -= 1
            # An asynchronous commit is answered through on_commit, like librdkafka does.
            if self.per_partition:
                self._answers.append((None, [_with_error(tp, KafkaError.REBALANCE_IN_PROGRESS) for tp in offsets]))
            else:
                error = KafkaError(
                    KafkaError.ILLEGAL_GENERATION, "Commit failed: Broker: Specified group generation id is not valid"
                )
                self._answers.append((error, [TopicPartition(tp.topic, tp.partition, tp.offset) for tp in offsets]))
            return None
        return super().commit(offsets, asynchronous)

    def poll(self, timeout):
        self.polls += 1
        return super().poll(timeout)


def _with_error(tp: TopicPartition, code: int) -> SimpleNamespace:
    return SimpleNamespace(topic=tp.topic, partition=tp.partition, offset=tp.offset, error=KafkaError(code))


@pytest.mark.parametrize("per_partition", [False, True], ids=["request-refused", "partition-refused"])
def test_a_commit_refused_during_a_rebalance_is_made_once_the_group_settles(per_partition):
    consumer = RebalancingCommitConsumer({0: [b"0:0", b"0:1", b"0:2"]}, refusals=3, per_partition=per_partition)
    # Every commit refused until the run ends: the final one must wait for the rebalance.
    engine = _engine(consumer, OrderCheckingSender())
    summary = engine.run()
    assert consumer.commits == [{0: 3}] and summary.partition("t", 0).committed == 3
    assert consumer.polls >= 2


def test_a_group_rebalancing_past_the_timeout_fails_the_run_with_a_clear_error():
    consumer = RebalancingCommitConsumer({0: [b"0:0"]}, refusals=10**9, per_partition=False)
    with pytest.raises(
        DrainError,
        match=r"group 'g' did not confirm the final commit within 0.3s.*t\[0\] 0->1.*sent again by the next run",
    ):
        _engine(consumer, OrderCheckingSender(), kafka_timeout_seconds=0.3).run()
    assert consumer.commits == []


class ReassigningConsumer(FakeConsumer):
    """
    Like librdkafka, an application pause outlives a revoke and a later re-assignment, and a
    paused partition is never fetched. Partition 0 is drained (and so paused), then revoked
    while its commit is refused (the group is rebalancing), then handed back to this member.
    """

    def __init__(self, logs):
        super().__init__(logs)
        self.paused: set[int] = set()
        self.steps = 0
        self.refuse_commits = False

    def subscribe(self, topics, on_assign, on_revoke, on_lost):
        super().subscribe(topics, on_assign, on_revoke, on_lost)
        self._on_revoke = on_revoke

    def pause(self, tps):
        self.paused |= {tp.partition for tp in tps}

    def resume(self, tps):
        self.paused -= {tp.partition for tp in tps}

    def incremental_assign(self, tps):
        self.positions.update({tp.partition: tp.offset for tp in tps})

    def incremental_unassign(self, tps):
        for tp in tps:
            self.positions.pop(tp.partition, None)

    def commit(self, offsets, asynchronous):
        if self.refuse_commits:
            return [_with_error(tp, KafkaError.REBALANCE_IN_PROGRESS) for tp in offsets]
        return super().commit(offsets, asynchronous)

    def consume(self, num_messages, timeout):
        self.steps += 1
        if self.steps == 1:
            self._assigned = True
            self._on_assign(self, [TopicPartition("t", 0), TopicPartition("t", 1)])
            return []
        if self.steps == 2:  # only partition 0 is served: it reaches its end and gets paused
            saved, self.positions = self.positions, {0: self.positions[0]}
            out = super().consume(num_messages, timeout)
            saved[0] = self.positions[0]
            self.positions = saved
            return out
        if self.steps == 3:
            self.refuse_commits = True
            self._on_revoke(self, [TopicPartition("t", 0)])
            self.refuse_commits = False
            self._on_assign(self, [TopicPartition("t", 0)])
            return []
        saved = self.positions
        self.positions = {p: o for p, o in saved.items() if p not in self.paused}
        try:
            return super().consume(num_messages, timeout)
        finally:
            saved.update(self.positions)
            self.positions = saved


def test_a_partition_paused_then_handed_back_is_resumed_and_drained():
    consumer = ReassigningConsumer({0: [b"0:0", b"0:1"], 1: [b"1:0", b"1:1"]})
    sender = OrderCheckingSender()
    summary = _engine(consumer, sender, kafka_timeout_seconds=1, stop_grace_seconds=1).run()
    # Partition 0's handover commit was refused, so it is read again from the start after it
    # comes back: duplicates, never a stall or a loss.
    assert sorted(set(sender.arrived)) == [b"0:0", b"0:1", b"1:0", b"1:1"]
    assert summary.stopped_by == "end"
    assert summary.partition("t", 0).committed == 2 and summary.partition("t", 1).committed == 2


class SlowCommitAnswers(FakeConsumer):
    """Answers asynchronous commits only every third consume()/poll(): the engine must coalesce meanwhile."""

    def __init__(self, logs):
        super().__init__(logs)
        self.outstanding = self.max_outstanding = self.serves = 0

    def commit(self, offsets, asynchronous):
        if asynchronous:
            self.outstanding += 1
            self.max_outstanding = max(self.max_outstanding, self.outstanding)
        return super().commit(offsets, asynchronous)

    def _serve(self):
        self.serves += 1
        if self.serves % 3 == 0:
            self.outstanding -= len(self._answers)
            super()._serve()


def test_commits_follow_progress_with_at_most_one_outstanding():
    logs = {p: [f"{p}:{n}".encode() for n in range(200)] for p in range(4)}
    consumer, sender = SlowCommitAnswers(logs), OrderCheckingSender()
    summary = _engine(consumer, sender, max_batch_records=10, max_in_flight=3).run()
    assert summary.delivered == 800
    assert consumer.max_outstanding == 1
    assert len(consumer.commits) > 2  # committed as the run went, not only at the end
    assert consumer.commits[-1] == {p: 200 for p in range(4)} or {
        p: max(c.get(p, 0) for c in consumer.commits) for p in range(4)
    } == {p: 200 for p in range(4)}
    assert all(summary.partition("t", p).committed == 200 for p in range(4))
