"""The drain loop: read each assigned partition up to its snapshot end, send, commit what AEP acknowledged."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, Message, TopicPartition

from aep_provider.aep.errors import AEPError, AEPUnavailableError
from aep_provider.aep.results import BatchResult, Outcome
from aep_provider.engine.batching import Batch, Batcher
from aep_provider.engine.commits import REBALANCING_COMMIT_ERRORS, AsyncCommitter, commit_targets
from aep_provider.engine.config import DrainConfig, OnReject, producer_config
from aep_provider.engine.dlq import DeadLetterWriter, check_dead_letter_topic
from aep_provider.engine.errors import DrainError, KafkaSetupError, KafkaUnavailableError, RecordRejectedError, ReplayError
from aep_provider.engine.group import GroupWatcher
from aep_provider.engine.ledger import PartitionLedger
from aep_provider.engine.logsections import LogSections, log_section
from aep_provider.engine.payload import GuardedShaper, KafkaRecord, PassthroughShaper, PayloadShaper
from aep_provider.engine.plan import GroupOffsetsPlanner, PartitionPlan, Planner, Watermarks, nothing_to_read, snapshot
from aep_provider.engine.summary import MAX_REJECTION_SAMPLES, PartitionSummary, RunSummary, shorten

log = logging.getLogger(__name__)

TopicPartitionKey = tuple[str, int]

#: How long one consume() call may block, which bounds how fast a stop request is noticed.
_POLL_SECONDS = 0.1

#: Most time the end-of-run query of each partition's current end offset may take, in all:
#: it only informs the summary, so it never holds a finished run for long.
_TOPIC_END_BUDGET_SECONDS = 5.0

#: Under cooperative rebalancing a joining member's first assignment is empty by design; wait
#: this long for the follow-up, then ask the group whether partitions are still being handed out.
_COOPERATIVE_EMPTY_GRACE_SECONDS = 2.0

#: How often an instance without partitions asks the group whether the handover is over.
_GROUP_CHECK_INTERVAL_SECONDS = 1.0

#: Titles of the task log's collapsible sections (see :mod:`~aep_provider.engine.logsections`).
SECTION_PLAN = "Plan: snapshot and assignment"
SECTION_PROGRESS = "Progress"
SECTION_TOTALS = "Totals per partition"

#: Commit answers meaning "the group is between generations" (see :mod:`~aep_provider.engine.commits`).
_REBALANCING_COMMIT_ERRORS = REBALANCING_COMMIT_ERRORS


class Sender(Protocol):
    """What the engine needs from the AEP client (:class:`~aep_provider.aep.inlet.InletClient`)."""

    def send_batch(self, messages: Sequence[bytes]) -> BatchResult: ...


@dataclass
class _PartitionState:
    plan: PartitionPlan
    ledger: PartitionLedger
    summary: PartitionSummary
    last_committed: int | None
    complete: bool = False
    progress_at: int = 0

    def where(self, offset: int) -> str:
        return f"{self.plan.topic}[{self.plan.partition}]@{offset}"


class DrainEngine:
    """
    One run of the Kafka → AEP drain.

    :param consumer_conf: full consumer configuration (see :func:`~aep_provider.engine.config.consumer_config`).
    :param topics: topics to drain.
    :param sender: the AEP client; ``send_batch`` is called from up to ``max_in_flight`` threads.
    :param config: limits and policies.
    :param shaper: turns records into AEP messages (default: passthrough).
    :param planner: decides each partition's range, whether to commit and whether to join the group
        (default: the group's offsets; :class:`~aep_provider.engine.replay.ReplayPlanner` for a replay).
    :param consumer_factory: builds the consumer from ``consumer_conf`` (tests may wrap it).
    """

    def __init__(
        self,
        *,
        consumer_conf: Mapping[str, Any],
        topics: Sequence[str],
        sender: Sender,
        config: DrainConfig | None = None,
        shaper: PayloadShaper | None = None,
        planner: Planner | None = None,
        consumer_factory: Callable[[dict[str, Any]], Consumer] = Consumer,
    ) -> None:
        if not topics:
            raise ValueError("topics must name at least one Kafka topic")
        self.topics = list(topics)
        self.config = config or DrainConfig()
        self.consumer_conf = dict(consumer_conf)
        self.sender = sender
        # Whatever one record makes the shaper raise rejects that record, never the run.
        self.shaper = GuardedShaper(shaper or PassthroughShaper())
        self.planner = planner or GroupOffsetsPlanner(
            reset=str(self.consumer_conf.get("auto.offset.reset", "earliest")),
            timeout=self.config.kafka_timeout_seconds,
        )
        self._consumer_factory = consumer_factory
        self._bootstrap = str(self.consumer_conf.get("bootstrap.servers", "?"))
        strategy = str(self.consumer_conf.get("partition.assignment.strategy", ""))
        # A planner that does not join the group (a replay) reads with a plain assign().
        self._joins_group = self.planner.joins_group
        self._cooperative = self._joins_group and (
            "cooperative" in strategy or self.consumer_conf.get("group.protocol") == "consumer"
        )
        self._stop = threading.Event()
        self.summary = RunSummary(mode=self.planner.mode, interval=self.planner.describe())
        # Run state, reset by run().
        self._consumer: Consumer | None = None
        self._snapshot: dict[TopicPartitionKey, Watermarks] = {}
        self._states: dict[TopicPartitionKey, _PartitionState] = {}
        self._batcher = Batcher.for_sender(self.config.max_batch_records, self.config.max_batch_bytes, sender)
        self._in_flight: dict[Future[BatchResult], tuple[Batch, dict[TopicPartitionKey, _PartitionState]]] = {}
        self._busy: set[TopicPartitionKey] = set()
        # Partitions this consumer paused. librdkafka keeps an application pause across a revoke
        # and a later re-assignment, so they must be resumed before they are assigned again.
        self._paused: set[TopicPartitionKey] = set()
        self._dlq: DeadLetterWriter | None = None
        self._failure: DrainError | None = None
        # A rejected record under on_reject="fail": reading stops, but what was read before it
        # is still sent so that the commit reaches exactly the rejected offset.
        self._rejected: RecordRejectedError | None = None
        self._assigned_at: float | None = None
        self._last_progress = 0.0
        self._taken = 0
        self._closing = False
        self._group = GroupWatcher(self.consumer_conf, timeout=min(self.config.kafka_timeout_seconds, 5.0))
        self._next_group_check = 0.0
        self._committer = AsyncCommitter(str(self.consumer_conf.get("group.id")), self._committed)
        self._sections = LogSections(log)
        # Set when the run found nothing to read from offsets alone and did not join the group.
        self._nothing_to_read = False

    # -- public -------------------------------------------------------------------------

    @property
    def ended_without_joining(self) -> bool:
        """True when the run found nothing to read from offsets alone and ended without joining the group."""
        return self._nothing_to_read

    def stop(self) -> None:
        """Ask the run to stop soon: no new requests, in-flight settled (bounded), acknowledged offsets committed."""
        self._stop.set()

    def run(self) -> RunSummary:
        """Drain to the snapshot end (or a limit), commit, close; return the summary or raise :class:`DrainError`."""
        started = time.monotonic()
        try:
            self._consumer = self._consumer_factory({**self.consumer_conf, "on_commit": self._committer.on_commit})
        except (KafkaException, TypeError, ValueError) as err:
            detail = err.args[0].str() if isinstance(err, KafkaException) else str(err)
            raise KafkaSetupError(f"the Kafka consumer configuration is invalid: {detail}") from None
        pool = ThreadPoolExecutor(max_workers=self.config.max_in_flight, thread_name_prefix="aep-send")
        self._sections.open(SECTION_PLAN)
        try:
            self._snapshot = snapshot(
                self._consumer, self.topics, timeout=self.config.kafka_timeout_seconds, bootstrap=self._bootstrap
            )
            if self.config.dlq_topic:
                check_dead_letter_topic(
                    self.consumer_conf, self.config.dlq_topic, self.topics, timeout=self.config.kafka_timeout_seconds
                )
            log.info(
                "Draining %s from bootstrap.servers=%s group.id=%s: %d partition(s), %d record offset(s) up to the snapshot end",
                ", ".join(self.topics),
                self._bootstrap,
                self.consumer_conf.get("group.id"),
                len(self._snapshot),
                sum(m.high - m.low for m in self._snapshot.values()),
            )
            # An empty run must stay cheap: no JoinGroup (and no rebalance of the members at work).
            if not (self._joins_group and self._end_if_nothing_to_read()):
                self._read(pool, started)
        except DrainError as err:
            self._failure = self._failure or err
        except KafkaException as err:
            self._failure = self._failure or DrainError(
                f"Kafka failed while draining {', '.join(self.topics)} (bootstrap.servers={self._bootstrap!r}): {err.args[0].str()}"
            )
        except Exception as err:  # a bug: fail the run, but still settle, commit and close (bounded)
            log.exception("Unexpected error in the drain engine")
            self._failure = self._failure or DrainError(
                f"the drain engine failed unexpectedly ({type(err).__name__}: {err}); this is a bug in aep-provider, "
                "please report it with the task log. Offsets are committed up to what AEP acknowledged.",
                retryable=False,
            )
        finally:
            if self._rejected is not None:
                self._failure = self._rejected_failure()
            self._finish(started)
            pool.shutdown(wait=False, cancel_futures=True)
            self._sections.close()
        return self._report()

    def _read(self, pool: ThreadPoolExecutor, started: float) -> None:
        """Open the dead-letter writer, join the group (or assign, for a replay) and run the loop."""
        assert self._consumer is not None
        if self.config.dlq_topic:
            dlq_conf = producer_config(self.consumer_conf)
            dlq_conf["message.timeout.ms"] = int(self.config.kafka_timeout_seconds * 1000)
            self._dlq = DeadLetterWriter(dlq_conf, self.config.dlq_topic)
        if self._joins_group:
            self._consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke, on_lost=self._on_lost)
        else:
            self._on_assign(self._consumer, [TopicPartition(t, p) for t, p in sorted(self._snapshot)])
        self._loop(pool, started)

    def _report(self) -> RunSummary:
        """Log the closing line and the details (collapsible sections), raise the run's failure or return the summary."""
        if self._failure is None and not self.planner.commit and self.summary.stopped_by != "end":
            # A green replay must mean "the interval was replayed": one cut short says so by failing.
            self._failure = ReplayError(
                f"The replay of {self.summary.interval_text()} stopped ({self.summary.stopped_by}) before the end "
                f"of the interval: {self.summary.delivered} record(s) were sent, the rest of the interval was not. "
                "Raise max_records_per_run / max_run_seconds, or replay a shorter interval (re-sent records keep "
                "their XDM _id)."
            )
        if self._failure is not None:
            self.summary.stopped_by = "failed"
        # The closing line stays visible; the listings below it fold.
        log.info(self.summary.closing_line())
        rejections = self.summary.rejection_lines()
        if rejections:
            with log_section(log, f"Rejected records ({self.summary.rejected})"):
                for line in rejections:
                    log.info(line)
        details = self.summary.detail_lines()
        if details:
            with log_section(log, SECTION_TOTALS):
                for line in details:
                    log.info(line)
        if self._failure is not None:
            raise self._failure
        return self.summary

    def _end_if_nothing_to_read(self) -> bool:
        """
        Before joining the group: when its committed offsets show nothing to read on any partition
        (and nothing to commit), fill in the summary and return True, so the run ends without a
        JoinGroup. Offsets alone decide, so other members owning partitions meanwhile do not matter.
        """
        assert self._consumer is not None
        partitions = [TopicPartition(t, p) for t, p in sorted(self._snapshot)]
        try:
            plans = self.planner.plan(self._consumer, partitions, self._snapshot)
        except KafkaUnavailableError as err:
            # The assignment path has its own handling of a coordinator that does not answer
            # (fail on the first round, defer partitions in later ones): leave it to that.
            log.warning("Could not tell from offsets alone whether anything waits (%s); joining the group", err)
            return False
        reset = str(self.consumer_conf.get("auto.offset.reset", "earliest")).lower()
        if not nothing_to_read(plans, reset):
            return False
        for plan in plans:
            summary = self.summary.add_partition(PartitionSummary(plan.topic, plan.partition, plan.start, plan.end))
            summary.committed = plan.committed
            # The snapshot end is current enough: querying it again would only cost time.
            summary.topic_end = self._snapshot[plan.key].high
        self._nothing_to_read = True
        log.info(
            "Nothing to read: group %r has committed the end of all %d partition(s) of %s; ending without joining the group",
            self.consumer_conf.get("group.id"),
            len(plans),
            ", ".join(self.topics),
        )
        return True

    # -- the loop -----------------------------------------------------------------------

    def _loop(self, pool: ThreadPoolExecutor, started: float) -> None:
        cfg = self.config
        assert self._consumer is not None
        buffer_limit = cfg.max_in_flight * cfg.max_batch_records * 2
        reading = True
        # A broker that stops answering mid-run must not keep the run alive: bound the wait for
        # anything (records, end of partition, rebalance) to arrive while partitions remain.
        stall_seconds = cfg.kafka_timeout_seconds + cfg.stop_grace_seconds
        next_progress = self._last_progress = time.monotonic()
        while self._failure is None:
            now = time.monotonic()
            if self._stop.is_set():
                self.summary.stopped_by = "stop requested"
                return
            if cfg.max_run_seconds is not None and now - started >= cfg.max_run_seconds:
                self.summary.stopped_by = "max_run_seconds"
                return
            if reading and cfg.max_records_per_run is not None and self._taken >= cfg.max_records_per_run:
                self.summary.stopped_by = "max_records_per_run"
                reading = False
            if self._rejected is not None:
                reading = False
            if self._assigned_at is None and now - started > cfg.assignment_timeout_seconds:
                raise KafkaUnavailableError(
                    f"group {self.consumer_conf.get('group.id')!r} assigned no partitions of {', '.join(self.topics)} "
                    f"within {cfg.assignment_timeout_seconds:g}s (bootstrap.servers={self._bootstrap!r})"
                )
            idle = not self._in_flight and not len(self._batcher) and not (self._dlq and self._dlq.pending)
            if idle and (not reading or self._all_complete(now)):
                return
            if reading and now - self._last_progress > stall_seconds and not self._all_complete(now):
                waiting = sorted(f"{st.plan.topic}[{st.plan.partition}]" for st in self._states.values() if not st.complete)
                raise KafkaUnavailableError(
                    f"no record or end of partition arrived from bootstrap.servers={self._bootstrap!r} for "
                    f"{stall_seconds:g}s while {', '.join(waiting) or 'the assignment'} had not reached the snapshot end; "
                    "check the broker's health."
                )

            got_all = True
            if reading and len(self._batcher) < buffer_limit:
                messages = self._consumer.consume(num_messages=cfg.max_batch_records, timeout=_POLL_SECONDS)
                got_all = len(messages) < cfg.max_batch_records
                for msg in messages:
                    self._handle(msg)
                    if cfg.max_records_per_run is not None and self._taken >= cfg.max_records_per_run:
                        self.summary.stopped_by = "max_records_per_run"
                        reading = False
                    if self._rejected is not None or not reading:
                        reading = False
                        break
            else:
                # Not waiting on Kafka while the buffer is full: that is AEP's time, bounded by its deadline.
                self._last_progress = time.monotonic()
                if self._in_flight:
                    wait(list(self._in_flight), timeout=_POLL_SECONDS, return_when=FIRST_COMPLETED)
                else:
                    time.sleep(_POLL_SECONDS / 10)
                self._serve_callbacks(reading)
            if self._dlq:
                self._dlq.poll()
            self._collect(only_done=True)
            self._dispatch(pool, flush=got_all or not reading)
            # As soon as a prefix advances, asynchronously; coalesced while one commit is outstanding.
            self._commit_step()
            now = time.monotonic()
            if now >= next_progress:
                self._log_progress(now - started)
                next_progress = now + cfg.progress_interval_seconds

    def _serve_callbacks(self, reading: bool) -> None:
        """
        Serve librdkafka's callbacks (commit answers, rebalances) while not consuming: commit
        answers free the slots of committed batches. A record poll() returns is taken while
        reading (dropping it would let the commit step over it), else left for the next run.
        """
        assert self._consumer is not None
        msg = self._consumer.poll(0)
        if msg is not None and reading:
            self._handle(msg)

    def _all_complete(self, now: float) -> bool:
        if self._assigned_at is None:
            return False
        if not self._states:
            # Nothing assigned: end at once, except that a cooperative rebalance hands a joining
            # member its partitions only in a later round, once their previous owner let go.
            if not self._cooperative:
                return True
            waited = now - self._assigned_at
            if waited < _COOPERATIVE_EMPTY_GRACE_SECONDS or now < self._next_group_check:
                return False
            if waited >= min(self.config.assignment_timeout_seconds, self.config.kafka_timeout_seconds):
                return True  # the other members hold everything; nothing left for this one
            self._next_group_check = now + _GROUP_CHECK_INTERVAL_SECONDS
            return self._group.settled(self._snapshot)
        return all(st.complete for st in self._states.values())

    def _handle(self, msg: Message) -> None:
        err = msg.error()
        if err is None or err.code() == KafkaError._PARTITION_EOF:
            self._last_progress = time.monotonic()
        key = (msg.topic(), msg.partition())
        st = self._states.get(key)
        if err is not None:
            if err.code() == KafkaError._PARTITION_EOF:
                if st is not None and not st.complete:
                    # Past transaction markers, aborted and compacted records there is no message
                    # to see: the position says the partition is done, never cap beyond the snapshot.
                    st.ledger.advance(min(msg.offset(), st.plan.end))
                    self._check_complete(key, st)
                return
            if err.fatal() or err.code() in (
                KafkaError.UNKNOWN_TOPIC_OR_PART,
                KafkaError.TOPIC_AUTHORIZATION_FAILED,
                KafkaError.GROUP_AUTHORIZATION_FAILED,
            ):
                raise KafkaSetupError(f"Kafka consumer error on {key[0]}[{key[1]}]: {err.str()}")
            log.warning("Kafka consumer reported %s (retrying)", err.str())
            return
        if st is None or st.complete:
            return  # revoked meanwhile, or past the snapshot: the next run/owner reads it
        offset = msg.offset()
        if offset >= st.plan.end:
            self._mark_complete(key, st)
            return
        st.ledger.seen(offset)
        if st.plan.window is not None and not self._replay_sends(st, offset, msg):
            st.ledger.settle(offset)
            self._check_complete(key, st)
            return
        st.summary.records += 1
        self._taken += 1
        record = KafkaRecord(
            topic=key[0],
            partition=key[1],
            offset=offset,
            key=msg.key(),
            value=msg.value(),
            headers=list(msg.headers() or []),
            timestamp_ms=msg.timestamp()[1],
        )
        shaped = self.shaper.shape(record)
        if shaped.message is not None:
            self._batcher.add(key, offset, shaped.message, record)
        elif shaped.skip:
            if record.value is None:
                self.summary.tombstones += 1
            self.summary.skipped += 1
            st.ledger.settle(offset)
        else:
            self._reject(st, record, None, shaped.reject_reason or "rejected")
        self._check_complete(key, st)

    def _replay_sends(self, st: _PartitionState, offset: int, msg: Message) -> bool:
        """A replay sends a record only when its timestamp is in the interval and the live drain handed it over."""
        assert st.plan.window is not None
        start_ms, end_ms = st.plan.window
        if not start_ms <= msg.timestamp()[1] < end_ms:
            st.summary.filtered_by_timestamp += 1
            self.summary.filtered_by_timestamp += 1
            return False
        if st.plan.send_until is not None and offset >= st.plan.send_until:
            st.summary.left_to_live_drain += 1
            self.summary.left_to_live_drain += 1
            return False
        return True

    def _check_complete(self, key: TopicPartitionKey, st: _PartitionState) -> None:
        if st.ledger.position >= st.plan.end:
            self._mark_complete(key, st)

    def _mark_complete(self, key: TopicPartitionKey, st: _PartitionState) -> None:
        st.complete = True
        st.ledger.advance(st.plan.end)
        assert self._consumer is not None
        # Stop fetching what lies beyond the snapshot: it belongs to the next run.
        self._pause(self._consumer, [TopicPartition(*key)])

    def _pause(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        try:
            consumer.pause(partitions)
        except KafkaException:
            return
        self._paused |= {(tp.topic, tp.partition) for tp in partitions}

    # -- rejections ---------------------------------------------------------------------

    def _reject(self, st: _PartitionState, record: KafkaRecord, status: int | None, reason: str) -> None:
        self.summary.add_rejection(record.topic, record.partition, record.offset, status, reason)
        where = st.where(record.offset)
        shown = f"status {status}: {shorten(reason)}" if status is not None else shorten(reason)
        # The first rejections get a line each; past that they are only counted (the closing
        # "Rejected records" section lists the first ones and the count of the rest).
        listed = self.summary.rejected <= MAX_REJECTION_SAMPLES
        if self.summary.rejected == MAX_REJECTION_SAMPLES + 1:
            log.warning(
                "More than %d records rejected: further rejections are counted, not logged one by one "
                "(see the totals at the end of the run)",
                MAX_REJECTION_SAMPLES,
            )
        if self._dlq is not None:
            if listed:
                log.warning("Record %s rejected (%s); writing it to dead-letter topic %r", where, shown, self._dlq.topic)

            def dead_lettered() -> None:
                self.summary.dead_lettered += 1
                st.ledger.settle(record.offset)

            self._dlq.send(record, status, reason, dead_lettered)
        elif self.config.on_reject is OnReject.SKIP:
            if listed:
                log.warning("Record %s rejected (%s); skipped (on_reject='skip')", where, shown)
            st.ledger.settle(record.offset)
        elif self._rejected is None:
            # Nothing after it in this partition can be committed: do not send it either.
            self._batcher.drop_after((record.topic, record.partition), record.offset)
            self._rejected = RecordRejectedError(
                f"Record {where} was rejected ({shown}). Offsets are committed up to {record.offset}; "
                "fix the record or its producer, or set dlq_topic=... or on_reject='skip' to let runs go past it.",
                topic=record.topic,
                partition=record.partition,
                offset=record.offset,
            )

    # -- sending ------------------------------------------------------------------------

    def _dispatch(self, pool: ThreadPoolExecutor, *, flush: bool) -> None:
        # Batches AEP acknowledged but whose offsets are not confirmed committed still count: that
        # bounds what a crash re-sends to max_in_flight x max_batch_records.
        while self._failure is None and len(self._in_flight) + self._committer.held < self.config.max_in_flight:
            batch = self._batcher.next_batch(self._busy, only_full=not flush)
            if batch is None:
                return
            states = {tp: self._states[tp] for tp in batch.partitions}
            future = pool.submit(self.sender.send_batch, [item.message for item in batch.items])
            self._in_flight[future] = (batch, states)
            self._busy |= batch.partitions

    def _collect(self, *, only_done: bool, keys: set[TopicPartitionKey] | None = None, timeout: float = 0.0) -> None:
        """Apply results of finished requests (optionally waiting up to ``timeout`` for those touching ``keys``)."""
        futures = [
            f for f, (batch, _) in self._in_flight.items() if keys is None or batch.partitions & keys
        ]
        if not only_done and futures:
            wait(futures, timeout=timeout)
        for future in futures:
            if not future.done():
                continue
            batch, states = self._in_flight.pop(future)
            self._busy -= batch.partitions
            self._apply(future, batch, states)
            self._committer.batch_settled()

    def _apply(self, future: Future[BatchResult], batch: Batch, states: dict[TopicPartitionKey, _PartitionState]) -> None:
        parts = ", ".join(f"{t}[{p}]" for t, p in sorted(batch.partitions))
        first = min(item.offset for item in batch.items)
        try:
            result = future.result()
        except AEPError as err:
            # Configuration, credentials or a refused request need a person; an outage may pass.
            self._fail(
                DrainError(
                    f"Sending {len(batch.items)} record(s) of {parts} (from offset {first}) to AEP failed: {err}",
                    retryable=isinstance(err, AEPUnavailableError),
                )
            )
            if err.partial is not None:
                # AEP already answered for part of the batch: settle those so that the commit
                # covers them and the next run does not send them again.
                self._settle(err.partial, batch, states, parts, report_retryable=False)
            return
        except Exception as err:  # the sender is user-replaceable; keep the run's ending bounded and clear
            self._fail(DrainError(f"Sending {len(batch.items)} record(s) of {parts} failed: {type(err).__name__}: {err}"))
            return
        self._settle(result, batch, states, parts, report_retryable=True)

    def _settle(
        self,
        result: BatchResult,
        batch: Batch,
        states: dict[TopicPartitionKey, _PartitionState],
        parts: str,
        *,
        report_retryable: bool,
    ) -> None:
        """Apply per-message outcomes: accepted ones settle, rejected ones follow the policy, retryable ones fail the run."""
        s = self.summary
        s.requests += result.requests
        s.retries += result.retries
        s.throttled += result.throttled
        s.bytes += result.bytes_sent
        s.add_request_durations(result.request_seconds)
        if len(result.results) != len(batch.items):
            self._fail(DrainError(f"AEP answered {len(result.results)} result(s) for {len(batch.items)} message(s) of {parts}"))
            return
        for item, res in zip(batch.items, result.results):
            st = states[item.tp]
            if self._states.get(item.tp) is not st:
                continue  # the partition was revoked meanwhile; its new owner re-reads uncommitted records
            if res.outcome is Outcome.ACCEPTED:
                s.delivered += 1
                st.ledger.settle(item.offset)
                rejected = self._rejected
                if rejected is not None and item.tp == (rejected.topic, rejected.partition) and item.offset > rejected.offset:
                    # Delivered, but past the uncommittable rejected offset: a retry sends it again.
                    s.accepted_past_failure += 1
            elif res.outcome is Outcome.REJECTED:
                assert isinstance(item.record, KafkaRecord)
                self._reject(st, item.record, res.status, res.message or "rejected by AEP")
            elif report_retryable:
                self._fail(
                    DrainError(
                        f"AEP still answered status {res.status} for {st.where(item.offset)} when the retry budget ran out "
                        f"({shorten(res.message)}); offsets are committed up to it and the next run sends it again."
                    )
                )

    def _fail(self, err: DrainError) -> None:
        if self._failure is None:
            self._failure = err

    # -- committing ---------------------------------------------------------------------

    def _commit(self, keys: set[TopicPartitionKey] | None = None) -> bool:
        """
        Synchronously commit each partition's settled prefix that moved.

        :return: False when the group was rebalancing and refused the commit (try again later).
        :raises DrainError: on any other error.
        """
        if not self.planner.commit or self._consumer is None:
            return True
        targets = []
        for key, st in self._states.items():
            if keys is not None and key not in keys:
                continue
            offset = st.ledger.commit_offset()
            if st.last_committed is None or offset > st.last_committed:
                targets.append((st, TopicPartition(key[0], key[1], offset)))
        if not targets:
            return True
        group = self.consumer_conf.get("group.id")
        try:
            answer = self._consumer.commit(offsets=[tp for _, tp in targets], asynchronous=False)
        except KafkaException as err:
            if err.args[0].code() in _REBALANCING_COMMIT_ERRORS:
                log.info("Group %r is rebalancing (%s); committing again once it settles", group, err.args[0].str())
                return False
            raise DrainError(f"committing offsets to group {group!r} failed: {err.args[0].str()}") from None
        errors = [tp for tp in answer or [] if tp.error is not None]
        if errors:
            tp = errors[0]
            if all(e.error.code() in _REBALANCING_COMMIT_ERRORS for e in errors):
                log.info("Group %r is rebalancing (%s); committing again once it settles", group, tp.error.str())
                return False
            raise DrainError(f"committing {tp.topic}[{tp.partition}]@{tp.offset} failed: {tp.error.str()}")
        for st, tp in targets:
            st.last_committed = tp.offset
            st.summary.committed = tp.offset
        return True

    def _commit_step(self) -> None:
        """Commit what advanced, asynchronously (one commit outstanding at most)."""
        if self._consumer is None:
            return
        if not self.planner.commit:
            self._committer.forget()
            return
        self._committer.step(self._consumer, lambda: commit_targets(self._states))

    def _committed(self, key: TopicPartitionKey, offset: int) -> None:
        """The broker confirmed ``offset`` for ``key`` (an answer to an asynchronous commit)."""
        st = self._states.get(key)
        if st is not None and (st.last_committed is None or offset > st.last_committed):
            st.last_committed = offset
        summary = self.summary.partition(*key)
        if summary is not None and (summary.committed is None or offset > summary.committed):
            summary.committed = offset

    def _uncommitted(self) -> str:
        """What was delivered (or dead-lettered) but is not committed, per partition, for error messages."""
        gaps = []
        total = 0
        for key, st in sorted(self._states.items()):
            offset = st.ledger.commit_offset()
            since = st.last_committed if st.last_committed is not None else st.plan.start
            if offset > since:
                gaps.append(f"{key[0]}[{key[1]}] {since}->{offset}")
                total += offset - since
        self.summary.uncommitted = total
        return f"{total} settled record offset(s) are not committed ({', '.join(gaps) or 'none'})"

    def _final_commit(self) -> None:
        """Commit what was acknowledged, bounded by ``kafka_timeout_seconds`` (a sync commit has no timeout)."""
        assert self._consumer is not None
        if not self.planner.commit:
            return
        self._committer.final(
            self._consumer,
            lambda: commit_targets(self._states, pin_start=True),
            timeout=self.config.kafka_timeout_seconds,
            describe=self._uncommitted,
        )

    def _rejected_failure(self) -> DrainError:
        """The on_reject="fail" error, saying how many records AEP accepted past it (a retry re-sends them)."""
        rejected = self._rejected
        assert rejected is not None
        past = self.summary.accepted_past_failure
        if not past:
            return rejected
        err = RecordRejectedError(
            f"{rejected} {past} record(s) of {rejected.topic}[{rejected.partition}] after offset {rejected.offset} "
            "were accepted by AEP in the same request; they cannot be committed past the rejected record and a "
            "retry sends them again.",
            topic=rejected.topic,
            partition=rejected.partition,
            offset=rejected.offset,
        )
        return err

    # -- rebalancing --------------------------------------------------------------------

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        if self._closing:
            # close() serves a rebalance still under way, then revokes everything. The group is
            # terminating: librdkafka answers an offset fetch with "wait for coordinator" until
            # committed() times out. Take nothing: the next owner or run drains these partitions.
            log.info(
                "Closing: not taking %s (the next owner or run drains them)",
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions) or "no partitions",
            )
            if self._cooperative:
                consumer.incremental_assign(partitions)
            else:
                consumer.assign(partitions)
            return
        try:
            self._assign(consumer, partitions)
        except DrainError as err:
            self._fail(err)
        except Exception as err:  # an exception escaping a librdkafka callback would lose its message
            self._fail(DrainError(f"planning the assigned partitions failed: {type(err).__name__}: {err}"))
        finally:
            self._assigned_at = self._assigned_at or time.monotonic()
            self._last_progress = time.monotonic()
            if self._sections.current == SECTION_PLAN:
                self._sections.open(SECTION_PROGRESS)

    def _assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        for tp in partitions:
            key = (tp.topic, tp.partition)
            if key not in self._snapshot:  # a partition added after the run started
                low, high = consumer.get_watermark_offsets(tp, timeout=self.config.kafka_timeout_seconds, cached=False)
                self._snapshot[key] = Watermarks(low, high)
        deferred: list[TopicPartition] = []
        try:
            plans = self.planner.plan(consumer, partitions, self._snapshot) if partitions else []
        except KafkaUnavailableError as err:
            if self._assigned_at is None:
                raise  # the first assignment: the broker is not answering, say so
            # A later rebalance round whose offsets cannot be read in time (a coordinator that
            # stopped answering): this run has been working, so hold these partitions without
            # reading them and leave them to the next run, untouched.
            log.warning(
                "%s; leaving %s to the next run",
                err,
                ", ".join(f"{tp.topic}[{tp.partition}]" for tp in partitions),
            )
            plans = []
            deferred = [TopicPartition(tp.topic, tp.partition) for tp in partitions]
        assignment = list(deferred)
        for plan in plans:
            if plan.lost_to_retention:
                log.warning(
                    "%s[%d]: %d record(s) were deleted by retention before they were delivered "
                    "(committed offset %s < log start %d); continuing from the log start",
                    plan.topic,
                    plan.partition,
                    plan.lost_to_retention,
                    plan.committed,
                    plan.start,
                )
            if plan.retention_note:
                log.warning("%s[%d]: %s", plan.topic, plan.partition, plan.retention_note)
            summary = self.summary.add_partition(
                PartitionSummary(
                    plan.topic, plan.partition, plan.start, plan.end, lost_to_retention=plan.lost_to_retention,
                    replayed=plan.window is not None, send_until=plan.send_until, retention_note=plan.retention_note,
                )
            )  # fmt: skip
            summary.end = plan.end
            summary.handed_over = False  # handed back to this instance by a later rebalance
            self._states[plan.key] = _PartitionState(
                plan=plan, ledger=PartitionLedger(plan.start), summary=summary, last_committed=plan.committed
            )
            if plan.committed is not None and (summary.committed is None or plan.committed > summary.committed):
                summary.committed = plan.committed
            assignment.append(TopicPartition(plan.topic, plan.partition, plan.start))
        # Resume before assigning, not after: a pause/resume right after assign() can make
        # librdkafka drop the assigned start offset (its op version barrier).
        resume = [TopicPartition(p.topic, p.partition) for p in plans if p.key in self._paused]
        if resume:
            consumer.resume(resume)
            self._paused -= {p.key for p in plans}
        if self._cooperative:
            consumer.incremental_assign(assignment)
        else:
            consumer.assign(assignment)
        if deferred:
            self._pause(consumer, deferred)
        log.info(
            "Assigned %s",
            ", ".join(f"{p.topic}[{p.partition}] {p.start}->{p.end}" for p in plans) or "no partitions",
        )
        for plan in plans:
            st = self._states[plan.key]
            if plan.start >= plan.end:
                self._mark_complete(plan.key, st)

    def _on_revoke(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, lost=False)

    def _on_lost(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        self._release(consumer, partitions, lost=True)

    def _release(self, consumer: Consumer, partitions: list[TopicPartition], *, lost: bool) -> None:
        """Settle what is in flight for these partitions, commit their prefix, forget them."""
        keys = {(tp.topic, tp.partition) for tp in partitions} & set(self._states)
        try:
            if keys and not self._closing:
                self._collect(only_done=False, keys=keys, timeout=self.config.stop_grace_seconds)
                if self._dlq is not None and self._dlq.pending:
                    self._dlq.flush(self.config.stop_grace_seconds)
                if lost:
                    log.warning("Lost %s without a clean revoke; uncommitted records will be read again", sorted(keys))
                elif not self._commit(keys):
                    log.warning("Could not commit %s before handing them over; their next owner may send some again", sorted(keys))
        except DrainError as err:
            # The next owner re-reads from the last good commit: duplicates, never loss.
            log.warning("While handing over %s: %s", sorted(keys), err)
        finally:
            for key in keys:
                self._batcher.drop(key)
                self._busy.discard(key)
                st = self._states.pop(key)
                # At close the consumer revokes everything: only a rebalance hands a partition over.
                st.summary.handed_over = not self._closing
            if self._cooperative:
                try:
                    consumer.incremental_unassign(partitions)
                except KafkaException:
                    pass
            else:
                consumer.unassign()

    # -- ending -------------------------------------------------------------------------

    def _finish(self, started: float) -> None:
        """Bounded settle of in-flight requests and DLQ writes, final commit, close the consumer."""
        grace = self.config.stop_grace_seconds
        if self._in_flight:
            self._collect(only_done=False, timeout=grace)
            if self._in_flight:
                log.warning(
                    "%d request(s) still in flight after %gs; abandoned (their records are sent again next run)",
                    len(self._in_flight),
                    grace,
                )
        try:
            if self._dlq is not None and self._dlq.pending:
                self._dlq.flush(grace)
        except DrainError as err:
            self._fail(err)
        try:
            self._final_commit()
        except (DrainError, KafkaException) as err:
            failure = err if isinstance(err, DrainError) else DrainError(f"committing offsets failed: {err.args[0].str()}")
            if self._failure is not None:
                # The run fails for an earlier reason (e.g. a rejected record); say that the commit did not happen either.
                log.warning("Also failed: %s", failure)
            self._fail(failure)
        self._read_topic_ends()
        self.summary.seconds = time.monotonic() - started
        self._closing = True
        if self._consumer is not None:
            close_bounded(self._consumer, self.config.kafka_timeout_seconds, self._bootstrap)

    def _read_topic_ends(self) -> None:
        """Best effort: each partition's current end offset, so the summary tells how far the group is behind."""
        if self._consumer is None or self._nothing_to_read:
            return
        deadline = time.monotonic() + min(self.config.kafka_timeout_seconds, _TOPIC_END_BUDGET_SECONDS)
        for p in self.summary.partitions.values():
            if p.handed_over:
                continue
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                _, p.topic_end = self._consumer.get_watermark_offsets(
                    TopicPartition(p.topic, p.partition), timeout=left, cached=False
                )
            except (KafkaException, RuntimeError):
                break  # the broker is not answering: the summary says "unknown"

    def _log_progress(self, elapsed: float) -> None:
        for st in self._states.values():
            span = st.plan.end - st.summary.start
            done = st.ledger.commit_offset() - st.summary.start
            if span <= 0 or st.progress_at == done:
                continue
            st.progress_at = done
            log.info(
                "%s[%d]: %d/%d (%.0f%%) settled, %.0f records/s",
                st.plan.topic,
                st.plan.partition,
                done,
                span,
                100.0 * done / span,
                st.summary.records / elapsed if elapsed > 0 else 0.0,
            )


def close_bounded(consumer: Consumer, timeout: float, bootstrap: str) -> bool:
    """
    ``consumer.close()`` with a bound: it leaves the group, which waits on a coordinator that may
    have gone silent. Run in a daemon thread; past ``timeout`` it is abandoned (the process exit
    ends it; the group drops the member after ``session.timeout.ms``). Return True when it closed.
    """
    errors: list[BaseException] = []

    def close() -> None:
        try:
            consumer.close()
        except (KafkaException, RuntimeError) as err:
            errors.append(err)

    closer = threading.Thread(target=close, name="aep-kafka-close", daemon=True)
    closer.start()
    closer.join(timeout)
    if closer.is_alive():
        log.warning(
            "Closing the Kafka consumer (bootstrap.servers=%s) did not finish within %gs; abandoned "
            "(the group removes this member after session.timeout.ms)",
            bootstrap,
            timeout,
        )
        return False
    if errors:
        log.warning("Closing the Kafka consumer failed: %s", errors[0])
    return not errors


def run_drain(
    *,
    consumer_conf: Mapping[str, Any],
    topics: Sequence[str],
    sender: Sender,
    config: DrainConfig | None = None,
    shaper: PayloadShaper | None = None,
    planner: Planner | None = None,
) -> RunSummary:
    """Build a :class:`DrainEngine` and run it once (see there for the parameters)."""
    return DrainEngine(
        consumer_conf=consumer_conf, topics=topics, sender=sender, config=config, shaper=shaper, planner=planner
    ).run()
