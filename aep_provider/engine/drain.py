"""
The drain: plan each assigned partition's range, then loop — intake (:mod:`.intake`), send
(:mod:`.sending`), settle (:mod:`.settle`), commit (:mod:`.commits`) — until every partition
reaches the end offset snapshotted when the run began; rebalances are handled in
:mod:`.rebalance`, the bounds on waiting for Kafka in :mod:`.watchdog`, the bounded ending in
:mod:`.closing`, the log lines in :mod:`.report`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, KafkaException, TopicPartition

from aep_provider.engine import watchdog
from aep_provider.engine.batching import Batcher
from aep_provider.engine.closing import close_bounded, finish
from aep_provider.engine.commits import OffsetCommits
from aep_provider.engine.config import DrainConfig, producer_config, with_logger
from aep_provider.engine.dlq import DeadLetterWriter, check_dead_letter_topic
from aep_provider.engine.errors import DrainError, KafkaSetupError
from aep_provider.engine.group import GroupWatcher
from aep_provider.engine.intake import Intake
from aep_provider.engine.logsections import SECTION_PLAN, LogSections
from aep_provider.engine.payload import GuardedShaper, PassthroughShaper, PayloadShaper
from aep_provider.engine.plan import GroupOffsetsPlanner, Planner, snapshot
from aep_provider.engine.rebalance import Rebalancer
from aep_provider.engine.report import STOP_REQUESTED, log_progress, report
from aep_provider.engine.sending import InFlight, Sender
from aep_provider.engine.settle import Settler
from aep_provider.engine.state import RunState, all_complete
from aep_provider.engine.summary import RunSummary

__all__ = ["DrainEngine", "Sender", "close_bounded", "run_drain"]

log = logging.getLogger(__name__)

#: How long one consume() call may block, which bounds how fast a stop request is noticed.
_POLL_SECONDS = 0.1
#: Most records taken per round: the loop settles finished requests and sends between rounds, so
#: a smaller take turns slots over sooner (500 against 2,000: about a tenth more events/s in
#: the benchmark); a full request is still cut from several rounds' records.
_CONSUME_BATCH = 500
#: How long Kafka is waited on while a request or a commit answer is due (a commit answer takes
#: a few milliseconds and frees slots; only poll() delivers it).
_ANSWER_POLL_SECONDS = 0.005


@dataclass
class _Stages:
    """One run's consumer and stages, built by :meth:`DrainEngine.run`."""

    consumer: Consumer
    state: RunState
    intake: Intake
    in_flight: InFlight
    settler: Settler
    commits: OffsetCommits
    rebalancer: Rebalancer


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
        self._reset = str(self.consumer_conf.get("auto.offset.reset", "earliest"))
        self.planner = planner or GroupOffsetsPlanner(
            reset=self._reset,
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
        self.summary = RunSummary(
            mode=self.planner.mode,
            interval=self.planner.describe(),
            # Whose committed offsets the run's ranges continue (a replay commits to no group).
            group_id=str(self.consumer_conf.get("group.id")) if self.planner.commit else None,
            dlq_topic=self.config.dlq_topic,
        )
        self._group = GroupWatcher(self.consumer_conf, timeout=min(self.config.kafka_timeout_seconds, 5.0))
        self._sections = LogSections(log)
        # Set when the run found nothing to read from offsets alone and did not join the group.
        self._nothing_to_read = False

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
        state = RunState(
            self.config,
            self.summary,
            Batcher.for_sender(self.config.max_batch_records, self.config.max_batch_bytes, self.sender),
        )
        commits = OffsetCommits(state, str(self.consumer_conf.get("group.id")), enabled=self.planner.commit)
        try:
            # auto.offset.reset is the planner's (a partition without a committed offset starts where
            # it says). Once reading, an offset out of range must not make librdkafka jump on its own:
            # "error" hands the decision to the intake, which counts and reports it.
            consumer = self._consumer_factory(
                with_logger(
                    {**self.consumer_conf, "auto.offset.reset": "error", "on_commit": commits.committer.on_commit}
                )
            )
        except (KafkaException, TypeError, ValueError) as err:
            detail = err.args[0].str() if isinstance(err, KafkaException) else str(err)
            raise KafkaSetupError(f"the Kafka consumer configuration is invalid: {detail}") from None
        pool = ThreadPoolExecutor(max_workers=self.config.max_in_flight, thread_name_prefix="aep-send")
        stages = self._stages(consumer, state, commits, pool)
        self._sections.open(SECTION_PLAN)
        try:
            self._snapshot(consumer, state)
            if self._joins_group and stages.rebalancer.ends_before_joining(
                consumer, reset=self._reset, group_id=self.consumer_conf.get("group.id"), topics=self.topics
            ):
                # An empty run must stay cheap: no JoinGroup (and no rebalance of the members at work).
                self._nothing_to_read = True
            else:
                self._read(stages, started)
        except DrainError as err:
            state.fail(err)
        except KafkaException as err:
            state.fail(
                DrainError(
                    f"Kafka failed while draining {', '.join(self.topics)} (bootstrap.servers={self._bootstrap!r}): {err.args[0].str()}"
                )
            )
        except Exception as err:  # a bug: fail the run, but still settle, commit and close (bounded)
            log.exception("Unexpected error in the drain engine")
            state.fail(
                DrainError(
                    f"the drain engine failed unexpectedly ({type(err).__name__}: {err}); this is a bug in aep-provider, "
                    "please report it with the task log. Offsets are committed up to what AEP acknowledged.",
                    retryable=False,
                )
            )
        finally:
            if state.rejected is not None:
                state.failure = stages.settler.rejected_failure()
            finish(
                consumer,
                state,
                stages.in_flight,
                commits,
                started=started,
                read_ends=not self._nothing_to_read,
                bootstrap=self._bootstrap,
            )
            pool.shutdown(wait=False, cancel_futures=True)
            self._sections.close()
        return report(self.summary, state.failure, commits=self.planner.commit)

    def _snapshot(self, consumer: Consumer, state: RunState) -> None:
        """Each partition's end offset now is where this run stops; a dead-letter topic must be writable before."""
        state.snapshot = snapshot(
            consumer, self.topics, timeout=self.config.kafka_timeout_seconds, bootstrap=self._bootstrap
        )
        if self.config.dlq_topic:
            check_dead_letter_topic(
                self.consumer_conf, self.config.dlq_topic, self.topics, timeout=self.config.kafka_timeout_seconds
            )
        # What the run reads is only known once the group assigns partitions: the "Assigned" line counts it.
        if self._joins_group:
            log.info(
                "Draining %s from bootstrap.servers=%s group.id=%s: %d partition(s), end offsets snapshotted",
                ", ".join(self.topics),
                self._bootstrap,
                self.consumer_conf.get("group.id"),
                len(state.snapshot),
            )
        else:
            log.info(
                "Replaying %s from bootstrap.servers=%s: %d partition(s), read with assign() (no group joined, nothing committed)",
                ", ".join(self.topics),
                self._bootstrap,
                len(state.snapshot),
            )

    def _stages(self, consumer: Consumer, state: RunState, commits: OffsetCommits, pool: ThreadPoolExecutor) -> _Stages:
        settler = Settler(state, self.config.on_reject)
        in_flight = InFlight(state, self.sender, pool, settler, commits.committer)
        rebalancer = Rebalancer(
            state, self.planner, in_flight, commits, self._sections, self._group, cooperative=self._cooperative
        )
        intake = Intake(state, consumer, self.shaper, settler, limit=self.config.max_records_per_run)
        return _Stages(consumer, state, intake, in_flight, settler, commits, rebalancer)

    def _read(self, stages: _Stages, started: float) -> None:
        """Open the dead-letter writer, join the group (or assign, for a replay) and run the loop."""
        consumer, rebalancer = stages.consumer, stages.rebalancer
        if self.config.dlq_topic:
            dlq_conf = producer_config(self.consumer_conf)
            dlq_conf["message.timeout.ms"] = int(self.config.kafka_timeout_seconds * 1000)
            # A redrive reads dead letters: one rejected again goes back as the record it was made from.
            stages.state.dlq = DeadLetterWriter(dlq_conf, self.config.dlq_topic, redrive=self.planner.mode == "redrive")
        if self._joins_group:
            consumer.subscribe(
                self.topics, on_assign=rebalancer.on_assign, on_revoke=rebalancer.on_revoke, on_lost=rebalancer.on_lost
            )
        else:
            rebalancer.on_assign(consumer, [TopicPartition(t, p) for t, p in sorted(stages.state.snapshot)])
        self._loop(stages, started)

    def _loop(self, stages: _Stages, started: float) -> None:
        """Each round: take what Kafka has, settle what AEP answered, send what is ready, commit what advanced."""
        cfg, state, in_flight = self.config, stages.state, stages.in_flight
        buffer_limit = cfg.max_in_flight * cfg.max_batch_records * 2
        reading = True
        next_progress = state.last_progress = time.monotonic()
        while state.failure is None:
            now = time.monotonic()
            ended = self._ended_by(now - started)
            if ended:
                self.summary.stopped_by = ended
                return
            reading = reading and self._may_read(state)
            watchdog.check_assigned(
                state, now - started, self.consumer_conf.get("group.id"), self.topics, self._bootstrap
            )
            idle = not in_flight and not len(state.batcher) and not (state.dlq and state.dlq.pending)
            if idle and (not reading or stages.rebalancer.all_read(now)):
                return
            if reading:
                watchdog.check_stalled(state, stages.rebalancer, now, self._bootstrap)
            watchdog.check_commits(state, stages.commits, now, self._bootstrap)
            got_all = True
            if reading and len(state.batcher) < buffer_limit and not (state.partitions and all_complete(state)):
                reading, got_all = self._take(stages)
            else:
                self._wait_for_aep(stages, reading)
            if state.dlq:
                state.dlq.poll()
            # Settle what finished and commit, then send. A batch's slot is free once its commit is
            # confirmed: step() applies the answers the last poll brought, so sending after it uses
            # those slots now (sending before it left them idle for up to a 100 ms wait: about a
            # third of the throughput with 250 ms requests).
            in_flight.collect(only_done=True)
            # As soon as a prefix advances, asynchronously; coalesced while one commit is outstanding.
            stages.commits.step(stages.consumer)
            # After a rebalance the member's part of the group's guardrail share changes.
            in_flight.claim_share()
            in_flight.dispatch(flush=got_all or not reading)
            now = time.monotonic()
            if now >= next_progress:
                log_progress(state.partitions.values(), now - started)
                next_progress = now + cfg.progress_interval_seconds

    def _ended_by(self, elapsed: float) -> str | None:
        """Why the run ends now, before reaching the snapshot end (a stop request or its time limit)."""
        if self._stop.is_set():
            return STOP_REQUESTED
        if self.config.max_run_seconds is not None and elapsed >= self.config.max_run_seconds:
            return "max_run_seconds"
        return None

    def _may_read(self, state: RunState) -> bool:
        """False once a record past the run's record limit came, or a record was rejected under on_reject="fail"."""
        if state.limit_hit:
            self.summary.stopped_by = "max_records_per_run"
            return False
        return state.rejected is None

    def _take(self, stages: _Stages) -> tuple[bool, bool]:
        """One consume(), taken in order; return whether to go on reading and whether it got all that was ready."""
        # Kafka's wait must not delay noticing a finished request or a commit answer.
        waiting_on_aep = bool(stages.in_flight) or stages.commits.committer.outstanding
        timeout = _ANSWER_POLL_SECONDS if waiting_on_aep else _POLL_SECONDS
        messages = stages.consumer.consume(num_messages=_CONSUME_BATCH, timeout=timeout)
        stages.intake.take_all(messages)
        return self._may_read(stages.state), len(messages) < _CONSUME_BATCH

    def _wait_for_aep(self, stages: _Stages, reading: bool) -> None:
        """Not waiting on Kafka while the buffer is full: that is AEP's time, bounded by its deadline."""
        stages.state.last_progress = time.monotonic()
        # A wait ends when a request finishes, or at its bound: a few milliseconds while a commit
        # answer is due, since that answer frees the slots of committed batches and arrives only
        # through poll(). A record poll() returns is taken while reading (dropping it would let the
        # commit step over it), else left for the next run.
        wait = _ANSWER_POLL_SECONDS if stages.commits.committer.outstanding else _POLL_SECONDS
        if stages.in_flight:
            stages.in_flight.wait_any(wait)
        else:
            time.sleep(min(wait, _POLL_SECONDS / 10))
        polled = stages.consumer.poll(0)
        if polled is not None and reading:
            stages.intake.take(polled)


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
