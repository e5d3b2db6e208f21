"""What a run did, as counters for the XCom and one closing log line."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

#: Rejection samples kept per run: enough to see what goes wrong, bounded for the XCom.
MAX_REJECTION_SAMPLES = 20

#: Partitions listed in the closing log lines (the XCom has them all).
MAX_PARTITION_LINES = 50

#: Reasons can echo record contents: samples keep only this much of them.
MAX_REASON_CHARS = 200

#: How local XDM validation ends each violation in a reason (``aep_provider.aep.xdm``).
_XDM_RULE = re.compile(r"\(XDM (\w+)\)")
#: Offset ranges of records settled without being delivered (dead-lettered, skipped, rejected)
#: kept per partition and per run: what "where is this record?" reads; bounded for the XCom.
MAX_MARKS_PER_PARTITION = 64
MAX_MARKS_PER_RUN = 1024

#: Kinds of :attr:`PartitionSummary.marks`.
DEAD_LETTERED, SKIPPED, REJECTED = "dead_lettered", "skipped", "rejected"


def shorten(text: str | None, limit: int = MAX_REASON_CHARS) -> str:
    """``text`` cut to ``limit`` characters (with "..." when cut)."""
    text = text or ""
    return text if len(text) <= limit else text[:limit] + "..."


def reason_class(status: int | None, reason: str) -> str:
    """
    A short, stable label for counting rejections: ``"AEP 400"`` for AEP's per-message answers,
    ``"XDM <rule>"`` for local XDM validation (the first violation's rule: ``XDM enum``,
    ``XDM required``, ...), else what the record's own check found (``"invalid JSON"``,
    ``"not UTF-8"``, ``"over 1 MB"``, ...).
    """
    if status is not None:
        return f"AEP {status}"
    xdm = _XDM_RULE.search(reason)
    if xdm:
        return f"XDM {xdm.group(1)}"
    for marker, label in (
        ("not valid UTF-8", "not UTF-8"),
        ("not valid JSON", "invalid JSON"),
        ("nested too deeply", "nested too deeply"),
        ("shaping the record raised", "shaper failed"),
        ("not an object", "not a JSON object"),
        ("bytes; AEP accepts at most", "over 1 MB"),
        ("payload callable", "payload callable failed"),
    ):
        if marker in reason:
            return label
    return "other"


def latency_figures(samples: Sequence[float]) -> dict[str, Any]:
    """
    ``count``, ``mean``, ``p50``, ``p95`` and ``max`` of request durations in seconds (None when
    there are none). Percentiles by nearest rank: plain Python, exact, no dependency.
    """
    if not samples:
        return {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    ordered = sorted(samples)
    n = len(ordered)

    def rank(q: float) -> float:
        return ordered[max(math.ceil(q * n) - 1, 0)]

    return {
        "count": n,
        "mean": round(sum(ordered) / n, 4),
        "p50": round(rank(0.50), 4),
        "p95": round(rank(0.95), 4),
        "max": round(ordered[-1], 4),
    }


#: Keys of the XCom that only a replay fills in.
_REPLAY_RUN_KEYS = ("interval", "filtered_by_timestamp", "left_to_live_drain")
#: Keys of the XCom that mean nothing for a replay (it commits nothing).
_DRAIN_ONLY_RUN_KEYS = ("uncommitted",)
_REPLAY_PARTITION_KEYS = ("replayed", "send_until", "filtered_by_timestamp", "left_to_live_drain", "retention_note")
#: Keys of a partition's XCom entry that mean nothing for a replay (it commits nothing, owns no lag).
_DRAIN_ONLY_PARTITION_KEYS = ("committed", "lost_to_retention", "lag", "topic_end", "topic_lag", "handed_over")


def _without(data: dict[str, Any], keys: tuple[str, ...]) -> dict[str, Any]:
    return {k: v for k, v in data.items() if k not in keys}


@dataclass(frozen=True)
class RejectionSample:
    """Where a rejected record sits and why (the reason shortened; never the record's contents)."""

    topic: str
    partition: int
    offset: int
    status: int | None
    reason: str


@dataclass
class PartitionSummary:
    """
    One partition's range and where the run left it.

    :param start: first offset this run read. :param end: snapshot end offset.
    :param committed: offset committed at the end of the run (None if nothing was committed).
    :param topic_end: the partition's end offset when the run finished (None if it could not be read).
    :param handed_over: a rebalance moved the partition to another instance during the run, which
        continues from ``committed``: its lag is that instance's to report, not counted here.
    :param replayed: read by a replay, which commits nothing: ``start``/``end`` is the offset
        range scanned, ``send_until`` the group's committed offset (records past it were left to
        the live drain), and lag is not this run's to report.
    :param marks: records settled without being delivered, as ``[start, end, kind, label]``
        offset ranges (end exclusive; kind :data:`DEAD_LETTERED`, :data:`SKIPPED` or
        :data:`REJECTED`; label the reason class): every other offset of ``[start, committed)``
        was delivered. Adjacent offsets of one kind and label share a range.
    :param marks_cut_at: set when the bound on ranges was reached: from this offset on, records
        settled without being delivered are counted, not located.
    """

    topic: str
    partition: int
    start: int
    end: int
    committed: int | None = None
    records: int = 0
    lost_to_retention: int = 0
    topic_end: int | None = None
    handed_over: bool = False
    replayed: bool = False
    send_until: int | None = None
    filtered_by_timestamp: int = 0
    left_to_live_drain: int = 0
    retention_note: str | None = None
    marks: list[list[Any]] = field(default_factory=list)
    marks_cut_at: int | None = None

    def mark(self, offset: int, kind: str, label: str, room: bool = True) -> bool:
        """
        Locate one record settled without being delivered; False when no range was added
        (joined to the previous one, or the bound was reached: see :attr:`marks_cut_at`).

        :param room: False when the run's bound on ranges is reached.
        """
        last = self.marks[-1] if self.marks else None
        if last is not None and last[1] == offset and last[2] == kind and last[3] == label:
            last[1] = offset + 1
            return False
        if self.marks_cut_at is not None and offset >= self.marks_cut_at:
            return False
        if not room or len(self.marks) >= MAX_MARKS_PER_PARTITION:
            self.marks_cut_at = offset if self.marks_cut_at is None else min(self.marks_cut_at, offset)
            return False
        self.marks.append([offset, offset + 1, kind, label])
        return True

    @property
    def lag(self) -> int:
        """Records of the snapshot range left for the next run."""
        return 0 if self.handed_over or self.replayed else max(self.end - self._done, 0)

    @property
    def topic_lag(self) -> int | None:
        """How far the group is behind the topic at the end of the run (records produced meanwhile included)."""
        if self.topic_end is None or self.handed_over or self.replayed:
            return None
        return max(self.topic_end - self._done, 0)

    @property
    def _done(self) -> int:
        return self.start if self.committed is None else max(self.committed, self.start)


@dataclass
class RunSummary:
    """
    Counters of one run; :meth:`to_dict` is what the operator returns (XCom).

    :param mode: ``"drain"`` (the group's records up to the snapshot, committed) or ``"replay"``
        (a past interval sent again, nothing committed).
    :param interval: replays only: the interval, its scope and lateness.
    :param filtered_by_timestamp: replays only: records read in the offset range whose timestamp
        lies outside the interval (not sent).
    :param left_to_live_drain: replays only: records of the interval the live drain has not
        handed over yet (at or past the group's committed offset; not sent by this run).
    """

    mode: str = "drain"
    interval: dict[str, Any] | None = None
    delivered: int = 0
    rejected: int = 0
    dead_lettered: int = 0
    skipped: int = 0
    tombstones: int = 0
    filtered_by_timestamp: int = 0
    left_to_live_drain: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    bytes: int = 0
    seconds: float = 0.0
    stopped_by: str = "end"
    #: under on_reject="fail": records AEP accepted past the rejected one (a retry sends them again).
    accepted_past_failure: int = 0
    #: settled (delivered or dead-lettered) record offsets the run could not commit (sent again next run).
    uncommitted: int = 0
    partitions: dict[str, PartitionSummary] = field(default_factory=dict)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)
    rejection_samples: list[RejectionSample] = field(default_factory=list)
    #: local XDM validation: ``{"enabled": bool, "schemas": [{"id", "version"}]}``.
    xdm_validation: dict[str, Any] = field(default_factory=lambda: {"enabled": False, "schemas": []})
    #: records AEP accepted, then failed (failed batches), not reported by an earlier run.
    failed_in_aep: int = 0
    failed_in_aep_by_reason: dict[str, int] = field(default_factory=dict)
    failed_in_aep_samples: list[dict[str, Any]] = field(default_factory=list)
    #: whether the failed batches were checked: ``{"status", "detail", "datasets", "new_failed_batches"}``.
    failed_in_aep_check: dict[str, Any] = field(
        default_factory=lambda: {"status": "skipped", "detail": "not checked", "datasets": [], "new_failed_batches": 0}
    )
    #: the consumer group whose offsets the run read and committed (None for a replay).
    group_id: str | None = None
    #: where rejected records went (None: no dead-letter topic).
    dlq_topic: str | None = None

    def __post_init__(self) -> None:
        # Each inlet request's duration; kept out of the dataclass fields (and so out of
        # asdict()): the XCom carries only the figures of :meth:`request_seconds`.
        self._request_durations: list[float] = []
        self._marks = 0

    def add_request_durations(self, seconds: Sequence[float]) -> None:
        """Record the duration of inlet requests (one per HTTP request, retries included)."""
        self._request_durations.extend(seconds)

    def request_seconds(self) -> dict[str, Any]:
        """Inlet request latency: count, mean, p50, p95, max in seconds (see :func:`latency_figures`)."""
        return latency_figures(self._request_durations)

    def add_aep_failures(self, found: dict[str, Any]) -> None:
        """Take the ``failed_in_aep*`` keys of a failure check (:meth:`FailureReport.summary`)."""
        self.failed_in_aep = int(found["failed_in_aep"])
        self.failed_in_aep_by_reason = dict(found["failed_in_aep_by_reason"])
        self.failed_in_aep_samples = list(found["failed_in_aep_samples"])
        self.failed_in_aep_check = dict(found["failed_in_aep_check"])

    def partition(self, topic: str, partition: int) -> PartitionSummary | None:
        return self.partitions.get(f"{topic}[{partition}]")

    def add_partition(self, summary: PartitionSummary) -> PartitionSummary:
        return self.partitions.setdefault(f"{summary.topic}[{summary.partition}]", summary)

    def add_rejection(
        self, topic: str, partition: int, offset: int, status: int | None, reason: str, outcome: str | None = None
    ) -> None:
        """
        Count one rejected record by reason class and keep it as a sample while there is room.

        :param outcome: where the record went (:data:`DEAD_LETTERED`, :data:`SKIPPED` or
            :data:`REJECTED`), located in its partition's :attr:`PartitionSummary.marks`.
        """
        self.rejected += 1
        label = reason_class(status, reason)
        self.rejected_by_reason[label] = self.rejected_by_reason.get(label, 0) + 1
        if len(self.rejection_samples) < MAX_REJECTION_SAMPLES:
            self.rejection_samples.append(RejectionSample(topic, partition, offset, status, shorten(reason)))
        if outcome is not None:
            self.add_mark(topic, partition, offset, outcome, label)

    def add_skip(self, topic: str, partition: int, offset: int, tombstone: bool) -> None:
        """Count one record skipped by policy (a tombstone, or the payload callable returned None) and locate it."""
        self.skipped += 1
        self.tombstones += tombstone
        self.add_mark(topic, partition, offset, SKIPPED, "tombstone" if tombstone else "payload returned None")

    def add_mark(self, topic: str, partition: int, offset: int, kind: str, label: str) -> None:
        """Locate a record settled without being delivered (bounded per partition and per run)."""
        p = self.partition(topic, partition)
        if p is not None and p.mark(offset, kind, label, room=self._marks < MAX_MARKS_PER_RUN):
            self._marks += 1

    @property
    def lag(self) -> int:
        return sum(p.lag for p in self.partitions.values())

    @property
    def lost_to_retention(self) -> int:
        """Records deleted by retention before this run could read them (every partition's count)."""
        return sum(p.lost_to_retention for p in self.partitions.values())

    @property
    def topic_lag(self) -> int | None:
        """Total of :attr:`PartitionSummary.topic_lag`; None when no partition's end could be read."""
        lags = [p.topic_lag for p in self.partitions.values() if p.topic_lag is not None]
        return sum(lags) if lags else None

    def to_dict(self) -> dict[str, Any]:
        """The XCom: a drain's summary leaves out the replay-only keys, a replay's the lag (it is not its to report)."""
        replay = self.mode == "replay"
        data = _without(asdict(self), _DRAIN_ONLY_RUN_KEYS if replay else _REPLAY_RUN_KEYS)
        data["seconds"] = round(self.seconds, 3)
        data["request_seconds"] = self.request_seconds()
        if not replay:
            data["lag"] = self.lag
            data["topic_lag"] = self.topic_lag
            data["lost_to_retention"] = self.lost_to_retention
        data["partitions"] = {key: self._partition_dict(p, replay) for key, p in sorted(self.partitions.items())}
        return data

    @staticmethod
    def _partition_dict(p: PartitionSummary, replay: bool) -> dict[str, Any]:
        data = _without(
            {**asdict(p), "lag": p.lag, "topic_lag": p.topic_lag},
            _DRAIN_ONLY_PARTITION_KEYS if replay else _REPLAY_PARTITION_KEYS,
        )
        # A clean partition's entry stays as it was: the location keys only when there is something to locate.
        if p.marks:
            data["marks"] = sorted(p.marks)
        else:
            del data["marks"]
        if p.marks_cut_at is None:
            del data["marks_cut_at"]
        return data

    def interval_text(self) -> str:
        """A replay's interval as ``[start, end)``."""
        interval = self.interval or {}
        return f"[{interval.get('start')}, {interval.get('end')})"

    def closing_line(self) -> str:
        rate = self.delivered / self.seconds if self.seconds > 0 else 0.0
        if self.mode == "replay":
            return (
                f"Replay of {self.interval_text()} (scope {(self.interval or {}).get('scope')}) finished "
                f"({self.stopped_by}) in {self.seconds:.1f}s: delivered={self.delivered} rejected={self.rejected} "
                f"dead_lettered={self.dead_lettered} skipped={self.skipped} filtered_by_timestamp={self.filtered_by_timestamp} "
                f"left_to_live_drain={self.left_to_live_drain} requests={self.requests} retries={self.retries} "
                f"throttled={self.throttled} bytes={self.bytes} rate={rate:.0f}/s partitions={len(self.partitions)}; "
                "nothing committed"
            )
        topic_lag = "unknown" if self.topic_lag is None else self.topic_lag
        return (
            f"Drain finished ({self.stopped_by}) in {self.seconds:.1f}s: delivered={self.delivered} "
            f"rejected={self.rejected} dead_lettered={self.dead_lettered} skipped={self.skipped} "
            f"(tombstones={self.tombstones}) requests={self.requests} retries={self.retries} "
            f"throttled={self.throttled} bytes={self.bytes} rate={rate:.0f}/s "
            f"partitions={len(self.partitions)} lag_left={self.lag} topic_lag={topic_lag}"
            + (f" lost_to_retention={self.lost_to_retention}" if self.lost_to_retention else "")
        )

    def rejection_lines(self) -> list[str]:
        """
        Rejections by reason, then the first :data:`MAX_REJECTION_SAMPLES` rejected records with
        their reasons, then one line counting the rest: a topic full of bad records cannot flood the log.
        """
        if not self.rejected:
            return []
        counts = ", ".join(f"{label}={n}" for label, n in sorted(self.rejected_by_reason.items()))
        lines = [f"Rejected by reason: {counts} ({self.rejected} record(s))"]
        for sample in self.rejection_samples:
            lines.append(
                f"{sample.topic}[{sample.partition}]@{sample.offset} (status {sample.status}): {sample.reason}"
            )
        rest = self.rejected - len(self.rejection_samples)
        if rest > 0:
            lines.append(f"... and {rest} more rejected record(s), not listed (counted by reason above)")
        return lines

    def detail_lines(self) -> list[str]:
        """Log lines after the closing line: per-partition ranges (replays) and lag behind the topic."""
        lines = []
        replayed = [(key, p) for key, p in sorted(self.partitions.items()) if p.replayed]
        for key, p in replayed[:MAX_PARTITION_LINES]:
            lines.append(
                f"{key}: offsets {p.start}->{p.end} read, sent up to {p.send_until}: records={p.records} "
                f"filtered_by_timestamp={p.filtered_by_timestamp} left_to_live_drain={p.left_to_live_drain}"
                + (f"; {p.retention_note}" if p.retention_note else "")
            )
        if len(replayed) > MAX_PARTITION_LINES:
            lines.append(f"... and {len(replayed) - MAX_PARTITION_LINES} more partition(s) (see the XCom summary)")
        known = [(key, p) for key, p in sorted(self.partitions.items()) if p.topic_lag is not None]
        # Busiest first, bounded: a topic with hundreds of partitions must not flood the log.
        known.sort(key=lambda kp: -(kp[1].topic_lag or 0))
        for key, p in known[:MAX_PARTITION_LINES]:
            lines.append(f"{key}: committed={p.committed} topic_end={p.topic_end} topic_lag={p.topic_lag}")
        if len(known) > MAX_PARTITION_LINES:
            lines.append(f"... and {len(known) - MAX_PARTITION_LINES} more partition(s) (see the XCom summary)")
        return lines
