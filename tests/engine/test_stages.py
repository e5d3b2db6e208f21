"""The drain's stages on their own, without a broker: settling, requests in flight, commit confirmations."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

from aep_provider.aep.results import BatchResult, MessageResult, Outcome
from aep_provider.engine.batching import Batch, Item
from aep_provider.engine.commits import AsyncCommitter
from aep_provider.engine.config import DrainConfig, OnReject
from aep_provider.engine.payload import KafkaRecord
from aep_provider.engine.plan import PartitionPlan
from aep_provider.engine.sending import InFlight
from aep_provider.engine.settle import Settler
from aep_provider.engine.state import RunState
from aep_provider.engine.summary import PartitionSummary, RunSummary

ACCEPTED = MessageResult(Outcome.ACCEPTED)
REJECTED = MessageResult(Outcome.REJECTED, status=400, message="bad record")


def _state(partitions: int = 1, **config) -> RunState:
    state = RunState(DrainConfig(**config), RunSummary())
    for p in range(partitions):
        plan = PartitionPlan("t", p, 0, 100)
        summary = state.summary.add_partition(PartitionSummary("t", p, 0, 100))
        state.add_partition(plan, summary, last_committed=None)
    return state


def _read(state: RunState, partition: int, count: int) -> Batch:
    """``count`` records of the partition read and put in one batch in flight (held by its ledger)."""
    batch = Batch()
    ledger = state.partitions[("t", partition)].ledger
    for offset in range(count):
        ledger.seen(offset)
        record = KafkaRecord("t", partition, offset, None, b"{}", [])
        batch.add(Item(("t", partition), offset, b"{}", record))
    for part in batch.parts:
        part.hold = ledger.hold(part.first)
    return batch


def _settle(settler: Settler, state: RunState, batch: Batch, outcomes: list[MessageResult]) -> None:
    states = {tp: state.partitions[tp] for tp in batch.partitions}
    settler.settle(BatchResult(outcomes, requests=1), batch, states, "t[0]", report_retryable=True)


def test_an_all_accepted_answer_settles_the_batch():
    state = _state()
    batch = _read(state, 0, 3)
    _settle(Settler(state, OnReject.FAIL), state, batch, [ACCEPTED] * 3)
    assert state.partitions[("t", 0)].ledger.commit_offset() == 3
    assert (state.summary.delivered, state.summary.requests, state.failure) == (3, 1, None)


def test_a_rejection_under_fail_stops_the_commit_at_it_and_counts_what_was_accepted_past_it():
    state = _state()
    settler = Settler(state, OnReject.FAIL)
    batch = _read(state, 0, 3)
    _settle(settler, state, batch, [ACCEPTED, REJECTED, ACCEPTED])
    assert state.partitions[("t", 0)].ledger.commit_offset() == 1
    assert state.rejected is not None and state.rejected.offset == 1
    assert state.summary.accepted_past_failure == 1
    assert "1 record(s) of t[0] after offset 1 were accepted" in str(settler.rejected_failure())


def test_a_rejection_under_skip_is_settled():
    state = _state()
    batch = _read(state, 0, 3)
    _settle(Settler(state, OnReject.SKIP), state, batch, [ACCEPTED, REJECTED, ACCEPTED])
    assert state.partitions[("t", 0)].ledger.commit_offset() == 3
    assert (state.summary.delivered, state.summary.rejected, state.rejected) == (2, 1, None)


def test_answers_for_a_partition_handed_over_meanwhile_are_left_to_its_next_owner():
    state = _state()
    batch = _read(state, 0, 2)
    states = {tp: state.partitions[tp] for tp in batch.partitions}
    state.partitions.clear()
    Settler(state, OnReject.FAIL).settle(BatchResult([ACCEPTED] * 2), batch, states, "t[0]", report_retryable=True)
    assert state.summary.delivered == 0 and states[("t", 0)].ledger.commit_offset() == 0


def test_a_short_answer_fails_the_run():
    state = _state()
    batch = _read(state, 0, 2)
    _settle(Settler(state, OnReject.FAIL), state, batch, [ACCEPTED])
    assert state.failure is not None and "1 result(s) for 2 message(s)" in str(state.failure)


class GatedSender:
    def __init__(self) -> None:
        self.gate = threading.Event()
        self.sent: list[int] = []

    def send_batch(self, messages: Sequence[bytes]) -> BatchResult:
        self.sent.append(len(messages))
        self.gate.wait(5)
        return BatchResult([ACCEPTED] * len(messages), requests=1)


def test_in_flight_holds_at_most_max_in_flight_requests_and_one_per_partition():
    state = _state(partitions=3, max_in_flight=2, max_batch_records=4)
    for p in range(3):
        for offset in range(4):
            state.partitions[("t", p)].ledger.seen(offset)
            state.batcher.add(("t", p), offset, b"{}", KafkaRecord("t", p, offset, None, b"{}", []))
    assert [state.partitions[("t", p)].ledger.commit_offset() for p in range(3)] == [0, 0, 0]
    sender = GatedSender()
    committer = AsyncCommitter("g", state.confirmed)
    with ThreadPoolExecutor(max_workers=2) as pool:
        in_flight = InFlight(state, sender, pool, Settler(state, OnReject.FAIL), committer)
        in_flight.dispatch(flush=True)
        assert len(in_flight) == 2 and len(in_flight.busy) == 2
        sender.gate.set()
        in_flight.collect(only_done=False, timeout=5)
    assert len(in_flight) == 0 and not in_flight.busy
    assert state.summary.delivered == 8 and committer.held == 2
    # Two partitions settled in full; the third is still queued and holds its commit at 0.
    assert sorted(state.partitions[("t", p)].ledger.commit_offset() for p in range(3)) == [0, 4, 4]
    # Acknowledged batches not yet committed hold their slots: nothing more is sent.
    in_flight.dispatch(flush=True)
    assert len(in_flight) == 0


def test_a_commit_confirmation_only_moves_forward():
    state = _state()
    state.confirmed(("t", 0), 5)
    state.confirmed(("t", 0), 3)
    state.confirmed(("t", 9), 7)  # a partition handed over meanwhile
    assert state.partitions[("t", 0)].last_committed == 5
    assert state.summary.partition("t", 0).committed == 5


def test_the_run_keeps_the_batcher_fitted_to_the_senders_rate_limit():
    """An empty Batcher is falsy (it has a length): the run must still use the one it was given."""
    from types import SimpleNamespace

    from aep_provider.engine.batching import Batcher

    sender = SimpleNamespace(rate_limiter=SimpleNamespace(max_messages_per_second=10_000))
    fitted = Batcher.for_sender(2_000, 1_000_000, sender)
    state = RunState(DrainConfig(), RunSummary(), fitted)
    assert state.batcher is fitted and state.batcher.messages_per_second == 10_000


def test_a_dead_lettered_rejection_holds_the_commit_until_the_topic_acknowledges_it():
    state = _state()
    sent: list = []

    class DeadLetters:
        topic = "dlq"
        pending = 0

        def send(self, record, status, reason, on_done):
            sent.append((record.offset, status, on_done))

    state.dlq = DeadLetters()  # type: ignore[assignment]
    batch = _read(state, 0, 3)
    _settle(Settler(state, OnReject.FAIL), state, batch, [ACCEPTED, REJECTED, ACCEPTED])
    ledger = state.partitions[("t", 0)].ledger
    assert [(offset, status) for offset, status, _ in sent] == [(1, 400)]
    assert ledger.commit_offset() == 1
    sent[0][2]()  # the dead-letter topic acknowledged it
    assert ledger.commit_offset() == 3 and state.summary.dead_lettered == 1


def test_a_retryable_answer_at_the_end_of_the_budget_stops_the_commit_and_fails_the_run():
    state = _state()
    batch = _read(state, 0, 3)
    retryable = MessageResult(Outcome.RETRYABLE, status=503, message="busy")
    _settle(Settler(state, OnReject.FAIL), state, batch, [ACCEPTED, retryable, ACCEPTED])
    assert state.partitions[("t", 0)].ledger.commit_offset() == 1
    assert state.failure is not None and "t[0]@1" in str(state.failure)


class _ManualPool:
    """Runs nothing: the test finishes each request by hand."""

    def __init__(self) -> None:
        self.futures: list = []

    def submit(self, fn, messages):
        from concurrent.futures import Future

        future: Future = Future()
        self.futures.append(future)
        return future


def test_a_request_of_a_partition_handed_over_and_assigned_back_does_not_free_the_newer_one():
    # Handed over while its request runs past the grace, then assigned back in the same run: the
    # old request's answer must not make the partition free while the newer request is in flight,
    # or a third request would overtake the second (per-partition order at AEP).
    state = _state(max_in_flight=4, max_batch_records=2)
    key = ("t", 0)
    pool = _ManualPool()
    in_flight = InFlight(
        state, GatedSender(), pool, Settler(state, OnReject.FAIL), AsyncCommitter("g", state.confirmed)
    )  # type: ignore[arg-type]
    for offset in range(2):
        state.batcher.add(key, offset, b"{}")
    in_flight.dispatch(flush=True)
    # The rebalancer hands it over ...
    state.batcher.drop(key)
    in_flight.forget(key)
    summary = state.summary.partition(*key)
    state.partitions.pop(key)
    # ... and it comes back, read again from the committed offset.
    state.add_partition(PartitionPlan("t", 0, 0, 100), summary, last_committed=None)
    for offset in range(4):
        state.batcher.add(key, offset, b"{}")
    in_flight.dispatch(flush=True)
    assert len(in_flight) == 2
    pool.futures[0].set_result(BatchResult([ACCEPTED] * 2, requests=1))  # the old one answers
    in_flight.collect(only_done=True)
    assert key in in_flight.busy
    in_flight.dispatch(flush=True)
    assert len(in_flight) == 1  # offsets 2-3 wait for the request carrying 0-1
    assert state.partitions[key].ledger.commit_offset() == 0


def test_each_rejection_under_fail_drops_what_its_partition_queued_after_it():
    state = _state(partitions=2)
    settler = Settler(state, OnReject.FAIL)
    for p in range(2):
        for offset in range(5):
            state.partitions[("t", p)].ledger.seen(offset)
            state.batcher.add(("t", p), offset, b"{}")
    settler.reject(state.partitions[("t", 0)], KafkaRecord("t", 0, 1, None, b"[]", []), None, "not an object")
    settler.reject(state.partitions[("t", 1)], KafkaRecord("t", 1, 3, None, b"[]", []), None, "not an object")
    assert [entry[0] for entry in state.batcher.queue(("t", 0))] == [0, 1]
    assert [entry[0] for entry in state.batcher.queue(("t", 1))] == [0, 1, 2, 3]
    assert state.rejected is not None and state.rejected.partition == 0
    assert [state.partitions[("t", p)].ledger.commit_offset() for p in range(2)] == [0, 0]
