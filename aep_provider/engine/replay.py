"""
Replays: a time interval of the topics sent to AEP again, without touching the consumer group.

The interval ``[start, end)`` is mapped to an offset range per partition with the broker's
timestamp index, the range is read with ``assign()`` (never joining the group) and nothing is
committed, so replays can run in parallel with each other and with the scheduled drain.
"""

from __future__ import annotations

import enum
import logging
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import pendulum
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient, ConfigResource, OffsetSpec, ResourceType

from aep_provider.engine.config import client_config
from aep_provider.engine.errors import KafkaUnavailableError, ReplayError
from aep_provider.engine.plan import PartitionPlan, TopicPartitionKey, Watermarks, committed_offsets

log = logging.getLogger(__name__)

#: Default of how far past the interval's end (by timestamp) a replay keeps reading for late
#: records: producer timestamps are not monotonic, so a record of the interval can sit after
#: the first record stamped at or after its end.
DEFAULT_LATENESS_SECONDS = 300.0


class ReplayScope(str, enum.Enum):
    """Which records of the interval a replay sends."""

    #: Only what the live drain already handed over (offsets below the group's committed
    #: offset); the rest is counted and left to the live drain, which sends it once.
    HANDED_OVER = "handed_over"
    #: Every record of the interval up to the run's snapshot, whether the live drain sent it or not.
    ALL = "all"


def parse_scope(value: str | ReplayScope) -> ReplayScope:
    """``value`` as a :class:`ReplayScope`, or a ValueError naming the choices."""
    try:
        return ReplayScope(value)
    except ValueError:
        choices = ", ".join(repr(s.value) for s in ReplayScope)
        raise ValueError(f"replay_scope must be one of {choices}, got {value!r}") from None


#: Epoch milliseconds from 1973-03-03 to 5138: anything else is epoch seconds (or microseconds) by mistake.
_EPOCH_MS_RANGE = (100_000_000_000, 100_000_000_000_000)
#: A string of digits: epoch milliseconds when in range, else ISO 8601's basic form (``{{ ds_nodash }}``).
_DIGITS = re.compile(r"[0-9]+(\.[0-9]*)?")


def parse_instant(value: Any, name: str, *, naive_timezone: str = "UTC") -> datetime:
    """
    A point in time from a datetime, an ISO 8601 string or epoch milliseconds (a number or a
    string of digits). A date-time without a time zone is read in ``naive_timezone``, and the
    log says so.

    :param name: how the user knows the value (for messages).
    :param naive_timezone: IANA zone of date-times given without one (the operator passes
        Airflow's ``[core] default_timezone``).
    :raises ValueError: naming ``name`` and the value when it is none of those.
    """
    implausible = ValueError(
        f"{name} {value!r} is not a number of epoch milliseconds between 1973 and 5138 (epoch seconds? give "
        "milliseconds, e.g. 1764547200000) nor an ISO 8601 date-time such as '2026-11-29T00:00:00Z'"
    )
    if isinstance(value, str) and _DIGITS.fullmatch(value.strip()):
        if float(value) >= _EPOCH_MS_RANGE[0]:
            value = float(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not _EPOCH_MS_RANGE[0] <= value < _EPOCH_MS_RANGE[1]:
            raise implausible
        return datetime.fromtimestamp(value / 1000.0, tz=timezone.utc)
    parsed: Any = value
    if isinstance(value, str) and value.strip():
        try:
            parsed = pendulum.parse(value.strip(), tz=None)
        except (ValueError, pendulum.parsing.exceptions.ParserError):
            if _DIGITS.fullmatch(value.strip()):
                raise implausible from None
            parsed = None
    if not isinstance(parsed, datetime):
        raise ValueError(
            f"{name} must be a date-time such as '2026-11-29T00:00:00Z' (ISO 8601) or epoch milliseconds, got {value!r}"
        )
    if parsed.tzinfo is not None:
        return parsed
    aware = pendulum.timezone(naive_timezone).convert(datetime(*parsed.timetuple()[:6], parsed.microsecond))
    log.info(
        "%s %r has no time zone: read in %s as %s",
        name,
        value if isinstance(value, str) else parsed.isoformat(),
        naive_timezone,
        format_ms(int(aware.timestamp() * 1000)),
    )
    return aware


def format_ms(ms: int) -> str:
    """Epoch milliseconds as an ISO 8601 UTC string (what the summary and messages show)."""
    return datetime.fromtimestamp(ms / 1000.0, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ReplayWindow:
    """
    The interval a replay sends, ``[start_ms, end_ms)`` in epoch milliseconds, and how.

    :param scope: which records of the interval are sent (see :class:`ReplayScope`).
    :param lateness_ms: how far past ``end_ms`` (by timestamp) to keep reading for late records.
    :param source: where the interval came from, for messages (e.g. "the backfill run's data interval").
    """

    start_ms: int
    end_ms: int
    scope: ReplayScope = ReplayScope.HANDED_OVER
    lateness_ms: int = int(DEFAULT_LATENESS_SECONDS * 1000)
    source: str = "the requested interval"

    @classmethod
    def between(
        cls,
        start: Any,
        end: Any,
        *,
        scope: str | ReplayScope = ReplayScope.HANDED_OVER,
        lateness_seconds: float = DEFAULT_LATENESS_SECONDS,
        now: datetime | None = None,
        source: str = "the requested interval",
        empty_hint: str = "",
        naive_timezone: str = "UTC",
    ) -> ReplayWindow:
        """
        Check and build a window; every problem is a :class:`ReplayError` that says what to change.

        :param empty_hint: added to the message for a zero-length interval (e.g. which timetable to use).
        :param naive_timezone: where date-times without a time zone are read (see :func:`parse_instant`).
        """
        try:
            start_at = parse_instant(start, "the replay start", naive_timezone=naive_timezone)
            end_at = parse_instant(end, "the replay end", naive_timezone=naive_timezone)
            scope = parse_scope(scope)
        except ValueError as err:
            raise ReplayError(f"{source}: {err}") from None
        if lateness_seconds is None or lateness_seconds < 0:
            raise ReplayError(f"replay_lateness_seconds must be 0 or more, got {lateness_seconds!r}")
        now = now or datetime.now(timezone.utc)
        shown = f"[{start_at.isoformat()}, {end_at.isoformat()})"
        if end_at == start_at:
            raise ReplayError(
                f"{source} {shown} is empty (its start equals its end), so there is nothing to replay. {empty_hint}".rstrip()
            )
        if end_at < start_at:
            raise ReplayError(f"{source} {shown} ends before it starts; give an end after the start.")
        if end_at > now:
            raise ReplayError(
                f"{source} {shown} ends in the future (now is {now.isoformat(timespec='seconds')}); "
                "replay only intervals that are over, and let the scheduled drain deliver current records."
            )
        return cls(
            start_ms=int(start_at.timestamp() * 1000),
            end_ms=int(end_at.timestamp() * 1000),
            scope=scope,
            lateness_ms=int(lateness_seconds * 1000),
            source=source,
        )

    def __contains__(self, timestamp_ms: int) -> bool:
        return self.start_ms <= timestamp_ms < self.end_ms

    def describe(self) -> str:
        return f"[{format_ms(self.start_ms)}, {format_ms(self.end_ms)})"

    def to_dict(self) -> dict[str, Any]:
        return {
            "start": format_ms(self.start_ms),
            "end": format_ms(self.end_ms),
            "scope": self.scope.value,
            "lateness_seconds": self.lateness_ms / 1000.0,
        }


@dataclass(frozen=True)
class Retention:
    """
    What can have deleted a topic's records, read from its configuration.

    :param horizon_ms: the age limit of time retention (``retention.ms``) when it is the only
        thing that deletes records (``cleanup.policy`` ``delete``, no ``retention.bytes``): every
        deleted record was stamped more than this long before it was deleted, so records stamped
        within ``horizon_ms`` of now cannot have been deleted. None: any record may have been.
    :param detail: the settings, for messages.
    """

    horizon_ms: int | None
    detail: str

    def clip(self, up_to_ms: int, *, now_ms: int) -> int:
        """The end of the part of ``[.., up_to_ms)`` whose records this retention can have deleted."""
        if self.horizon_ms is None:
            return up_to_ms
        return min(up_to_ms, now_ms - self.horizon_ms)

    def describe(self) -> str:
        return self.detail


def topic_retention(admin: AdminClient, topic: str, timeout: float) -> Retention:
    """
    The topic's retention settings (``cleanup.policy``, ``retention.ms``, ``retention.bytes``).

    Records can also be removed with the admin API (``kafka-delete-records``): those are told
    apart from records that never existed only when time retention cannot explain the deletion.
    """
    try:
        resource = ConfigResource(ResourceType.TOPIC, topic)
        entries = admin.describe_configs([resource], request_timeout=timeout)[resource].result(timeout=timeout + 1)
        config = {name: entry.value for name, entry in entries.items()}
    except (KafkaException, TimeoutError) as err:
        detail = err.args[0].str() if isinstance(err, KafkaException) and err.args else str(err) or "timed out"
        return Retention(None, f"its retention settings could not be read: {detail}")
    policy = str(config.get("cleanup.policy") or "delete")
    retention_ms = int(config.get("retention.ms") or -1)
    retention_bytes = int(config.get("retention.bytes") or -1)
    detail = f"cleanup.policy={policy}, retention.ms={retention_ms}, retention.bytes={retention_bytes}"
    if "delete" in policy and retention_ms >= 0 and retention_bytes < 0:
        return Retention(retention_ms, detail)
    return Retention(None, detail + ": deletions are not bounded by time")


class ReplayPlanner:
    """
    Plans a replay: per partition, the offsets between the interval's start and end (plus lateness).

    :param window: the interval and scope.
    :param consumer_conf: the run's consumer settings (its client settings reach the admin API).
    :param timeout: seconds allowed for each offsets request.
    """

    commit = False
    joins_group = False
    mode = "replay"

    def __init__(self, window: ReplayWindow, consumer_conf: Mapping[str, Any], *, timeout: float = 30.0) -> None:
        self.window = window
        self.timeout = timeout
        self._client_conf = client_config(consumer_conf)
        self._group = consumer_conf.get("group.id")

    def describe(self) -> dict[str, Any] | None:
        return self.window.to_dict()

    def plan(
        self, consumer: Consumer, partitions: list[TopicPartition], snapshot: Mapping[TopicPartitionKey, Watermarks]
    ) -> list[PartitionPlan]:
        keys = [(tp.topic, tp.partition) for tp in partitions]
        w = self.window
        admin = AdminClient(self._client_conf)
        firsts = self._offsets_at(admin, keys, w.start_ms)
        lasts = self._offsets_at(admin, keys, w.end_ms + w.lateness_ms)
        committed: dict[TopicPartitionKey, int | None] = {}
        if w.scope is ReplayScope.HANDED_OVER:
            committed = committed_offsets(consumer, partitions, timeout=self.timeout)
        plans: list[PartitionPlan] = []
        gone: list[str] = []
        retention: dict[str, Retention] = {}
        for key in keys:
            marks = snapshot[key]
            first, first_ts = firsts[key]
            last, _ = lasts[key]
            # -1: no record at or after that time; the range ends at the run's snapshot.
            start = min(marks.high if first < 0 else first, marks.high)
            end = max(start, min(marks.high if last < 0 else last, marks.high))
            note = None
            if marks.low > 0 and (first == marks.low or first < 0):
                # Records before the log start were deleted, and no retained record lies between
                # the interval's start and the first retained one: the deleted records may have
                # belonged to [start, up_to). Whatever the topic's retention cannot have deleted
                # did not exist (an idle partition whose records all expired is simply empty).
                if key[0] not in retention:
                    retention[key[0]] = topic_retention(admin, key[0], self.timeout)
                up_to = w.end_ms if first < 0 else min(first_ts, w.end_ms)
                up_to = retention[key[0]].clip(up_to, now_ms=int(time.time() * 1000))
                if up_to >= w.end_ms:
                    gone.append(
                        f"{key[0]}[{key[1]}] (log start {marks.low}"
                        + ("" if first < 0 else f", first retained record from {format_ms(first_ts)}")
                        + ")"
                    )
                    continue
                if up_to > w.start_ms:
                    note = (
                        f"records before offset {marks.low} were deleted ({retention[key[0]].describe()}); any "
                        f"stamped between {format_ms(w.start_ms)} and {format_ms(up_to)} are not replayed"
                    )
            if w.scope is ReplayScope.ALL:
                send_until = end
            else:
                # Without a committed offset the live drain handed nothing over yet.
                group_offset = committed.get(key)
                send_until = start if group_offset is None else max(min(group_offset, end), start)
            plans.append(
                PartitionPlan(
                    key[0], key[1], start, end,
                    committed=committed.get(key), window=(w.start_ms, w.end_ms),
                    send_until=send_until, retention_note=note,
                )
            )  # fmt: skip
        if gone:
            topics = sorted({g.split("[", 1)[0] for g in gone})
            why = "; ".join(f"{t}: {retention[t].describe()}" for t in topics)
            raise ReplayError(
                f"Records of {w.describe()} are gone on {', '.join(gone)}: the interval lies before the oldest "
                f"record the broker still keeps, and the records deleted before it may have been stamped inside "
                f"it ({why}), so it cannot be replayed. Replay a later interval, or raise the topic's retention.ms "
                "for the future."
            )
        return plans

    def _offsets_at(
        self, admin: AdminClient, keys: list[TopicPartitionKey], timestamp_ms: int
    ) -> dict[TopicPartitionKey, tuple[int, int]]:
        """Per partition, the first offset whose timestamp is at or after ``timestamp_ms``, and that timestamp (-1, -1: none)."""
        query = {TopicPartition(t, p): OffsetSpec.for_timestamp(timestamp_ms) for t, p in keys}
        answers: dict[TopicPartitionKey, tuple[int, int]] = {}
        try:
            futures = admin.list_offsets(query, request_timeout=self.timeout)
            for tp, future in futures.items():
                info = future.result(timeout=self.timeout + 1)
                answers[(tp.topic, tp.partition)] = (info.offset, info.timestamp)
        except (KafkaException, TimeoutError) as err:
            detail = err.args[0].str() if isinstance(err, KafkaException) and err.args else str(err) or "timed out"
            raise KafkaUnavailableError(
                f"could not look up offsets by timestamp ({format_ms(timestamp_ms)}) within {self.timeout:g}s: {detail}"
            ) from None
        return answers
