"""Asynchronous, coalesced offset commits whose completion is known, so every wait on them is bounded."""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from aep_provider.engine.errors import DrainError, KafkaSetupError

if TYPE_CHECKING:
    from aep_provider.engine.state import RunState

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]

#: Commit answers meaning "the group is between generations": the offsets stay acknowledged and
#: are committed again once the rebalance is over (librdkafka does not retry these itself).
REBALANCING_COMMIT_ERRORS = frozenset(
    {KafkaError.REBALANCE_IN_PROGRESS, KafkaError.ILLEGAL_GENERATION, KafkaError.UNKNOWN_MEMBER_ID}
)

#: Answers no later commit can fix: the run fails without retries.
_FATAL_COMMIT_ERRORS = frozenset(
    {
        KafkaError.GROUP_AUTHORIZATION_FAILED,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.OFFSET_METADATA_TOO_LARGE,
        KafkaError.INVALID_COMMIT_OFFSET_SIZE,
    }
)

#: How long one poll() may block while the final commit waits for its answer.
_FINAL_POLL_SECONDS = 0.1

Answer = tuple["KafkaError | None", "list[tuple[str, int, int, KafkaError | None]]"]


class AsyncCommitter:
    """
    At most one asynchronous commit outstanding; what settles meanwhile waits for the next one.

    librdkafka answers an asynchronous commit through the consumer's ``on_commit`` callback,
    served by ``consume()``/``poll()`` on the engine's thread: :meth:`on_commit` only queues the
    answer, :meth:`step` applies it. A synchronous ``commit()`` has no timeout (librdkafka holds a
    manual commit while the coordinator is unreachable), so the final commit is an asynchronous
    one plus a bounded wait for its answer (:meth:`final`).

    The committer also counts *batches* acknowledged by AEP whose offsets are not yet confirmed
    committed (:attr:`held`): the engine counts them against ``max_in_flight``, which is what
    bounds the records sent again after a crash to ``max_in_flight × max_batch_records``.

    :param group: the consumer group id (for messages).
    :param on_committed: called with ``(key, offset)`` for each offset the broker confirmed.
    """

    def __init__(self, group: str, on_committed: Callable[[TopicPartitionKey, int], None]) -> None:
        self.group = group
        self._on_committed = on_committed
        self._answers: deque[Answer] = deque()
        self._outstanding: dict[TopicPartitionKey, int] | None = None
        self._outstanding_batches = 0
        self._pending_batches = 0
        self._failure: DrainError | None = None
        self.commits = 0
        # Since when acknowledged batches have waited without any commit being confirmed.
        self._waiting_since = time.monotonic()

    # -- called from librdkafka (on the thread that polls) -----------------------------------

    def on_commit(self, err: KafkaError | None, partitions: list[TopicPartition]) -> None:
        """The consumer's ``on_commit`` callback: queue the answer (never raise inside librdkafka)."""
        self._answers.append((err, [(tp.topic, tp.partition, tp.offset, tp.error) for tp in partitions or []]))

    # -- bookkeeping --------------------------------------------------------------------------

    @property
    def held(self) -> int:
        """Acknowledged batches not yet confirmed committed (they count as in flight)."""
        return self._pending_batches + self._outstanding_batches

    @property
    def outstanding(self) -> bool:
        return self._outstanding is not None

    def batch_settled(self) -> None:
        """A batch's results were applied: its offsets wait for the next commit."""
        if self.held == 0:
            self._waiting_since = time.monotonic()
        self._pending_batches += 1

    def unconfirmed_seconds(self, now: float) -> float:
        """
        How long acknowledged batches have waited without the broker confirming any commit (0 when none waits).

        Held batches count against ``max_in_flight``, so while this grows nothing else is sent:
        the engine bounds it (:func:`~aep_provider.engine.watchdog.check_commits`).
        """
        return now - self._waiting_since if self.held else 0.0

    def forget(self) -> None:
        """Nothing is committed by this run (a replay): acknowledged batches hold no slot."""
        self._pending_batches = self._outstanding_batches = 0

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise self._failure

    # -- committing ---------------------------------------------------------------------------

    def step(self, consumer: Consumer, targets: Callable[[], Mapping[TopicPartitionKey, int]]) -> None:
        """
        Apply the answers received, then commit ``targets()`` (offsets past what is confirmed
        committed, read after the answers) unless a commit is still outstanding: that one's answer
        triggers the next (coalescing).

        :raises DrainError: a commit answer no retry can fix.
        """
        self._apply_answers()
        self.raise_if_failed()
        if self._outstanding is not None:
            return
        todo = targets()
        if not todo:
            # Everything acknowledged is committed (or waits behind an unsettled offset).
            self._pending_batches = 0
            return
        offsets = [TopicPartition(t, p, o) for (t, p), o in todo.items()]
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as err:
            # E.g. no current assignment during a rebalance: the next step commits again.
            log.info("Committing to group %r was refused (%s); trying again", self.group, err.args[0].str())
            return
        self.commits += 1
        self._outstanding = dict(todo)
        self._outstanding_batches += self._pending_batches
        self._pending_batches = 0

    def _apply_answers(self) -> None:
        while self._answers:
            err, parts = self._answers.popleft()
            mine = self._outstanding is not None and {(t, p): o for t, p, o, _ in parts} == self._outstanding
            retry = False
            for topic, partition, offset, perr in parts:
                code = perr.code() if perr is not None else (err.code() if err is not None else None)
                if code is None:
                    self._waiting_since = time.monotonic()
                    self._on_committed((topic, partition), offset)
                    continue
                retry = True
                where = f"{topic}[{partition}]@{offset}"
                text = perr.str() if perr is not None else err.str()  # type: ignore[union-attr]
                if not mine:
                    # A hand-over commit (made without waiting, in a rebalance callback).
                    log.warning(
                        "Committing %s to group %r before handing it over failed (%s); its next owner reads "
                        "from the last confirmed commit and may send those records again",
                        where,
                        self.group,
                        text,
                    )
                elif code in _FATAL_COMMIT_ERRORS:
                    self._failure = self._failure or KafkaSetupError(
                        f"committing {where} to group {self.group!r} was refused: {text}; "
                        "grant the group's principal READ on the group and topic (or fix the setting), then rerun."
                    )
                elif code in REBALANCING_COMMIT_ERRORS:
                    log.info(
                        "Group %r is rebalancing (%s); committing %s again once it settles", self.group, text, where
                    )
                else:
                    log.warning("Committing %s to group %r failed (%s); trying again", where, self.group, text)
            if not parts and err is not None:
                retry = True
                log.warning("Committing to group %r failed (%s); trying again", self.group, err.str())
            if mine:
                self._outstanding = None
                if retry:
                    # Their offsets are not committed: they are held until a later commit confirms them.
                    self._pending_batches += self._outstanding_batches
                self._outstanding_batches = 0

    def final(
        self,
        consumer: Consumer,
        targets: Callable[[], Mapping[TopicPartitionKey, int]],
        *,
        timeout: float,
        describe: Callable[[], str],
    ) -> None:
        """
        Commit until nothing acknowledged is left uncommitted, waiting at most ``timeout`` seconds.

        ``poll()`` serves the answers (and a rebalance, whose callbacks commit what they hand
        over); a record it returns lies past what this run acknowledged and is simply not taken.

        :param targets: what is still to commit, re-read after each answer.
        :param describe: what was delivered but not committed (for the error).
        :raises DrainError: the broker did not confirm within ``timeout`` (retryable: the next run
            sends those records again).
        """
        deadline = time.monotonic() + timeout
        while True:
            self.step(consumer, targets)
            if self._outstanding is None and not targets():
                return
            left = deadline - time.monotonic()
            if left <= 0:
                raise DrainError(
                    f"group {self.group!r} did not confirm the final commit within {timeout:g}s "
                    f"(broker or group coordinator unavailable, or the group rebalancing); {describe()}. "
                    "Those records were delivered to AEP but will be sent again by the next run."
                )
            consumer.poll(min(_FINAL_POLL_SECONDS, left))


def commit_targets(states: Mapping[TopicPartitionKey, Any], *, pin_start: bool = False) -> dict[TopicPartitionKey, int]:
    """
    Each partition's settled prefix that lies past its last confirmed commit.

    :param pin_start: also commit the start of partitions the group has no offset for and this
        run did not move (the final commit does, so that ``auto.offset.reset=latest`` cannot skip
        what is produced before the next run).
    """
    out = {}
    for key, st in states.items():
        offset = st.ledger.commit_offset()
        if st.last_committed is None:
            if offset > st.plan.start or pin_start:
                out[key] = offset
        elif offset > st.last_committed:
            out[key] = offset
    return out


class OffsetCommits:
    """
    Commits each partition's settled prefix: asynchronously as it advances and when a rebalance
    hands partitions over, and once more, bounded, at the end of the run.

    :param state: the run's shared state (the partitions and their ledgers).
    :param group: the consumer group id (for messages).
    :param enabled: False for a run that commits nothing (a replay).
    """

    def __init__(self, state: RunState, group: str, *, enabled: bool) -> None:
        self.state = state
        self.group = group
        self.enabled = enabled
        self.committer = AsyncCommitter(group, state.confirmed)

    def step(self, consumer: Consumer) -> None:
        """Commit what advanced, asynchronously (one commit outstanding at most)."""
        if not self.enabled:
            self.committer.forget()
            return
        self.committer.step(consumer, lambda: commit_targets(self.state.partitions))

    def handover(self, consumer: Consumer, keys: set[TopicPartitionKey]) -> bool:
        """
        Commit the settled prefix of partitions about to be handed over, without waiting for the answer.

        A rebalance callback cannot wait for a commit within a bound: a synchronous ``commit()``
        has no timeout (librdkafka holds it until its request timeout while the coordinator does
        not answer, even when called from another thread), and the answer to an asynchronous one
        only comes through ``poll()``, which cannot run inside the callback. The request goes to
        the coordinator before this member rejoins the group, so the next owner reads the offsets
        it commits; its answer comes later through ``on_commit`` (a failure is logged, and the next
        owner sends those records again: duplicates, never loss). What bounds the run meanwhile
        is :func:`~aep_provider.engine.watchdog.check_commits`.

        :return: False when the commit could not even be requested (the group is rebalancing).
        :raises DrainError: on any other error.
        """
        if not self.enabled:
            return True
        targets = []
        for key, st in self.state.partitions.items():
            if key not in keys:
                continue
            offset = st.ledger.commit_offset()
            if st.last_committed is None or offset > st.last_committed:
                targets.append((st, TopicPartition(key[0], key[1], offset)))
        if not targets:
            return True
        offsets = [tp for _, tp in targets]
        log.info(
            "Handing over %s: committing their settled prefix to group %r (the answer is not waited for)",
            ", ".join(f"{tp.topic}[{tp.partition}]@{tp.offset}" for tp in offsets),
            self.group,
        )
        try:
            consumer.commit(offsets=offsets, asynchronous=True)
        except KafkaException as err:
            if err.args[0].code() in REBALANCING_COMMIT_ERRORS:
                log.info("Group %r is rebalancing (%s)", self.group, err.args[0].str())
                return False
            raise DrainError(f"committing offsets to group {self.group!r} failed: {err.args[0].str()}") from None
        return True

    def final(self, consumer: Consumer) -> None:
        """Commit what was acknowledged, bounded by ``kafka_timeout_seconds`` (a sync commit has no timeout)."""
        if not self.enabled:
            return
        self.committer.final(
            consumer,
            lambda: commit_targets(self.state.partitions, pin_start=True),
            timeout=self.state.config.kafka_timeout_seconds,
            describe=self.uncommitted,
        )

    def uncommitted(self) -> str:
        """What was delivered (or dead-lettered) but is not committed, per partition, for error messages."""
        gaps = []
        total = 0
        for key, st in sorted(self.state.partitions.items()):
            offset = st.ledger.commit_offset()
            since = st.last_committed if st.last_committed is not None else st.plan.start
            if offset > since:
                gaps.append(f"{key[0]}[{key[1]}] {since}->{offset}")
                total += offset - since
        self.state.summary.uncommitted = total
        return f"{total} settled record offset(s) are not committed ({', '.join(gaps) or 'none'})"
