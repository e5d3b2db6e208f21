"""Sending: batches go to AEP on a thread pool, at most ``max_in_flight`` at a time; finished requests are settled."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Protocol, runtime_checkable

from aep_provider.aep.errors import AEPError, AEPUnavailableError
from aep_provider.aep.results import BatchResult
from aep_provider.engine.batching import Batch
from aep_provider.engine.commits import AsyncCommitter
from aep_provider.engine.errors import DrainError
from aep_provider.engine.settle import Settler
from aep_provider.engine.state import PartitionState, RunState, TopicPartitionKey

log = logging.getLogger(__name__)


class Sender(Protocol):
    """
    What the engine needs from the AEP client (:class:`~aep_provider.aep.inlet.InletClient`).

    ``send_batch`` returns one result per message; once AEP answered for part of the batch it
    must not raise: a later error comes back in ``BatchResult.error`` (what AEP accepted is then
    committed before the run fails). It raises :class:`~aep_provider.aep.errors.AEPError` only
    when nothing was answered.
    """

    def send_batch(self, messages: Sequence[bytes]) -> BatchResult: ...


@runtime_checkable
class SharesGuardrail(Protocol):
    """A sender whose rate limits adapt (:class:`~aep_provider.aep.inlet.InletClient`): the engine claims its part."""

    def claim_share(self, share: float, ceiling: float) -> None: ...


class InFlight:
    """
    The requests under way. A partition with a request in flight ("busy") gets no other one,
    which keeps each partition's records in order at AEP while other partitions proceed.

    :param state: the run's shared state (its batcher supplies the batches).
    :param sender: the AEP client, called from the pool's threads.
    :param pool: runs the requests.
    :param settler: applies each finished request's per-record outcomes.
    :param committer: its acknowledged-but-uncommitted batches count against ``max_in_flight``.
    """

    def __init__(
        self, state: RunState, sender: Sender, pool: ThreadPoolExecutor, settler: Settler, committer: AsyncCommitter
    ) -> None:
        self.state = state
        self.sender = sender
        self.pool = pool
        self.settler = settler
        self.committer = committer
        self.requests: dict[Future[BatchResult], tuple[Batch, dict[TopicPartitionKey, PartitionState]]] = {}
        self.busy: set[TopicPartitionKey] = set()
        self._claimed: float | None = None

    def __len__(self) -> int:
        return len(self.requests)

    def dispatch(self, *, flush: bool) -> None:
        """Send what the batcher has, full batches only unless ``flush`` (nothing more is coming soon)."""
        state = self.state
        # Batches AEP acknowledged but whose offsets are not confirmed committed still count: that
        # bounds what a crash re-sends to max_in_flight x max_batch_records.
        while state.failure is None and len(self.requests) + self.committer.held < state.config.max_in_flight:
            batch = state.batcher.next_batch(self.busy, only_full=not flush)
            if batch is None:
                return
            states = {}
            for part in batch.parts:
                st = states[part.tp] = state.partitions[part.tp]
                # Off the queue, onto a hold: the commit stays below these records until settled.
                part.hold = st.ledger.hold(part.first)
            future = self.pool.submit(self.sender.send_batch, batch.messages)
            self.requests[future] = (batch, states)
            self.busy |= states.keys()

    def claim_share(self) -> None:
        """
        Claim this member's part of the group's ``guardrail_share``: the part of the snapshot's
        partitions it holds. The members of one group then start out adding up to the group's
        share instead of each claiming all of it; the sender adapts from there (up to the whole
        share, e.g. when the others are done) and a rebalance claims anew.
        """
        total = len(self.state.snapshot)
        if not total or not isinstance(self.sender, SharesGuardrail):
            return
        ceiling = self.state.config.guardrail_share
        share = ceiling * len(self.state.partitions) / total
        if share != self._claimed:
            self._claimed = share
            self.sender.claim_share(share, ceiling)
            log.info(
                "Claiming %.0f%% of the AEP connection's rate limits: %d of %d partition(s) of a guardrail_share of %g",
                share * 100,
                len(self.state.partitions),
                total,
                ceiling,
            )

    def wait_any(self, timeout: float) -> None:
        """Block until a request finishes (or ``timeout``): the loop's wait while it does not read."""
        wait(list(self.requests), timeout=timeout, return_when=FIRST_COMPLETED)

    def collect(self, *, only_done: bool, keys: set[TopicPartitionKey] | None = None, timeout: float = 0.0) -> None:
        """Apply results of finished requests (optionally waiting up to ``timeout`` for those touching ``keys``)."""
        futures = [f for f, (batch, _) in self.requests.items() if keys is None or batch.partitions & keys]
        if not only_done and futures:
            wait(futures, timeout=timeout)
        for future in futures:
            if not future.done():
                continue
            batch, states = self.requests.pop(future)
            # Only partitions this run still holds as they were: one handed over and assigned back
            # meanwhile may already have a newer request in flight, which keeps it busy.
            held = self.state.partitions
            self.busy -= {tp for tp, st in states.items() if held.get(tp) is st}
            self._apply(future, batch, states)
            self.committer.batch_settled()

    def forget(self, key: TopicPartitionKey) -> None:
        """The partition was handed over: a request still under way for it no longer holds it."""
        self.busy.discard(key)

    def _apply(
        self, future: Future[BatchResult], batch: Batch, states: dict[TopicPartitionKey, PartitionState]
    ) -> None:
        parts = ", ".join(f"{t}[{p}]" for t, p in sorted(batch.partitions))
        first = min(part.first for part in batch.parts)
        try:
            result = future.result()
        except AEPError as err:
            self._fail(err, batch, parts, first)
            return
        except Exception as err:  # the sender is user-replaceable; keep the run's ending bounded and clear
            self.state.fail(
                DrainError(f"Sending {len(batch)} record(s) of {parts} failed: {type(err).__name__}: {err}")
            )
            return
        if result.error is not None:
            self._fail(result.error, batch, parts, first)
            # AEP already answered for part of the batch: settle those so that the commit covers
            # them and the next run does not send them again.
            self.settler.settle(result, batch, states, parts, report_retryable=False)
            return
        self.settler.settle(result, batch, states, parts, report_retryable=True)

    def _fail(self, err: AEPError, batch: Batch, parts: str, first: int) -> None:
        """Configuration, credentials or a refused request need a person; an outage may pass."""
        self.state.fail(
            DrainError(
                f"Sending {len(batch)} record(s) of {parts} (from offset {first}) to AEP failed: {err}",
                retryable=isinstance(err, AEPUnavailableError),
            )
        )
