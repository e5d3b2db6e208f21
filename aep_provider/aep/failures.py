"""
AEP's asynchronous failures: records the inlet accepted that AEP later failed (Catalog failed batches).

The streaming inlet checks only the envelope; the XDM schema is checked afterwards, and records
that fail end in *failed batches* of the dataset. :func:`check_failed_batches` asks Catalog for
the dataset's failed batches created since the last check (``GET /catalog/batches?dataSet=..&
status=failed&createdAfter=..``), reads where it can the failed rows' ``_validationErrors`` (Data
Access API), and counts the records of batches not reported before.

"Not reported before" is kept in a *marker*: per dataset, how far checks got and the ids of the
failed batches already counted (:class:`FailureMarker`, plain JSON). Where it is stored is the
caller's choice (:class:`MarkerStore`; the operator keeps it in an Airflow Variable). A batch is
created before it fails, so each check looks back :data:`OVERLAP_MS` before the last one and
skips the batches already counted: a batch is counted once, even when it fails late.

Reasons name the failed field's path and the rule it broke (``/timestamp: format (AEP)``) or the
batch's error code and description; AEP's row messages quote values and are never kept.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from aep_provider.aep.errors import AEPError

log = logging.getLogger(__name__)

#: Each check looks back this far before the previous one: a batch may fail well after it was created.
OVERLAP_MS = 24 * 3600 * 1000
#: With no marker yet, a dataset's failures of this long before the first check are reported.
FIRST_LOOKBACK_MS = 24 * 3600 * 1000
#: Failed batches read per dataset and check (oldest first; the rest wait for the next check).
MAX_BATCHES = 100
#: Failed batches whose rows are read (Data Access API), and rows read in each.
MAX_ROW_BATCHES = 5
MAX_ROWS_PER_BATCH = 20
#: Failed batches listed in a report's samples, and rows shown per sample.
MAX_SAMPLES = 20
MAX_SAMPLE_ROWS = 5
#: Failed rows are read only while the check is younger than this (seconds): a slow Data Access API
#: must not hold a finished run; the counts come from Catalog and do not need the rows.
ROWS_BUDGET_SECONDS = 30.0
_REASON_CHARS = 160


class FailedBatchReader(Protocol):
    """What the check needs from the Platform client (:class:`~aep_provider.aep.platform.PlatformClient`)."""

    def failed_batches(self, dataset_id: str, created_after_ms: int, *, limit: int = ...) -> list[dict[str, Any]]: ...

    def failed_files(self, batch_id: str) -> list[str]: ...

    def failed_rows(self, batch_id: str, path: str, *, limit: int) -> list[dict[str, Any]]: ...


class MarkerStore(Protocol):
    """Where the marker survives between runs (an Airflow Variable for the operator)."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, marker: dict[str, Any]) -> None: ...


@dataclass
class DatasetMark:
    """How far the checks of one dataset got."""

    #: ms: batches created after this (less the overlap when ``complete``) are asked for next time.
    checked_until: int
    #: False when the last check hit :data:`MAX_BATCHES`: the next one resumes exactly there.
    complete: bool = True
    #: failed batches already counted: id -> created (ms); older than the next query are dropped.
    reported: dict[str, int] = field(default_factory=dict)

    def next_since(self) -> int:
        return self.checked_until - OVERLAP_MS if self.complete else self.checked_until


@dataclass
class FailureMarker:
    """Per dataset, what was checked and counted (JSON: ``{"v": 1, "datasets": {...}}``)."""

    datasets: dict[str, DatasetMark] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: Any) -> FailureMarker:
        """Read a stored marker; anything unreadable counts as none (the first check's lookback applies)."""
        marker = cls()
        if not isinstance(data, dict) or data.get("v") != 1 or not isinstance(data.get("datasets"), dict):
            return marker
        for dataset_id, mark in data["datasets"].items():
            try:
                reported = {str(k): int(v) for k, v in (mark.get("reported") or {}).items()}
                marker.datasets[str(dataset_id)] = DatasetMark(
                    int(mark["checked_until"]), bool(mark.get("complete", True)), reported
                )
            except (AttributeError, KeyError, TypeError, ValueError):
                continue
        return marker

    def to_json(self) -> dict[str, Any]:
        return {
            "v": 1,
            "datasets": {
                ds: {"checked_until": m.checked_until, "complete": m.complete, "reported": m.reported}
                for ds, m in sorted(self.datasets.items())
            },
        }


@dataclass
class FailureReport:
    """
    What one check found. :meth:`summary` is what the run summary carries.

    :param failed_in_aep: records AEP failed in batches not counted before.
    :param by_reason: those records by reason.
    :param samples: the first new failed batches (id, dataset, counts, errors, row reasons).
    :param status: ``checked``, ``skipped`` or ``error``.
    :param detail: why skipped, what failed, or what was checked.
    """

    failed_in_aep: int = 0
    by_reason: dict[str, int] = field(default_factory=dict)
    samples: list[dict[str, Any]] = field(default_factory=list)
    status: str = "skipped"
    detail: str = ""
    datasets: list[str] = field(default_factory=list)
    batches: int = 0

    def summary(self) -> dict[str, Any]:
        """The run summary's keys (stable; documented in docs/operator.md)."""
        return {
            "failed_in_aep": self.failed_in_aep,
            "failed_in_aep_by_reason": dict(sorted(self.by_reason.items())),
            "failed_in_aep_samples": self.samples,
            "failed_in_aep_check": {
                "status": self.status,
                "detail": self.detail,
                "datasets": self.datasets,
                "new_failed_batches": self.batches,
            },
        }

    def failed_in_aep_reasons(self) -> str:
        """The reasons as one line, most frequent first."""
        return ", ".join(f"{r}={n}" for r, n in sorted(self.by_reason.items(), key=lambda kv: -kv[1]))

    def lines(self) -> list[str]:
        """Log lines: the total, the reasons, the first batches."""
        if not self.failed_in_aep:
            return []
        reasons = self.failed_in_aep_reasons()
        lines = [
            f"AEP failed {self.failed_in_aep} record(s) it had accepted, in {self.batches} failed batch(es) of "
            f"dataset(s) {', '.join(self.datasets)}, not reported before. By reason: {reasons}"
        ]
        for s in self.samples:
            rows = "; ".join(" | ".join(r) for r in s.get("rows", []))
            lines.append(
                f"failed batch {s['batch_id']} (dataset {s['dataset_id']}): {s['failed_records']} record(s)"
                + (f"; rows: {rows}" if rows else f"; {', '.join(s.get('errors', []))}")
            )
        return lines


def check_failed_batches(
    reader: FailedBatchReader,
    dataset_ids: Sequence[str],
    store: MarkerStore,
    *,
    now_ms: int | None = None,
) -> FailureReport:
    """
    Count the records of failed batches of ``dataset_ids`` not counted before, and move the marker on.

    The marker is saved before anything is reported: if it cannot be saved the report counts
    nothing (``status: error``) and the next check counts those batches instead, never twice.
    Catalog or row read errors do not raise: the report says what failed (``status: error``).

    :param reader: the Platform client.
    :param store: where the marker is loaded from and saved to.
    :param now_ms: the check's time (epoch ms); default now.
    """
    now = int(time.time() * 1000) if now_ms is None else now_ms
    report = FailureReport(datasets=list(dataset_ids))
    if not dataset_ids:
        report.detail = "no dataset to check: set dataset_id"
        return report
    try:
        marker = FailureMarker.from_json(store.load())
    except Exception as err:  # a store is the caller's code (Airflow's API): say what failed, count nothing
        report.status, report.detail = "error", f"could not read the marker: {type(err).__name__}: {err}"
        return report
    new: list[dict[str, Any]] = []
    problems: list[str] = []
    for dataset_id in dataset_ids:
        mark = marker.datasets.get(dataset_id) or DatasetMark(now - FIRST_LOOKBACK_MS + OVERLAP_MS)
        since = mark.next_since()
        try:
            batches = reader.failed_batches(dataset_id, since, limit=MAX_BATCHES)
        except AEPError as err:
            problems.append(f"dataset {dataset_id}: {err}")
            continue
        fresh = [b for b in batches if b["id"] not in mark.reported]
        for batch in fresh:
            batch.setdefault("dataset_id", dataset_id)
            mark.reported[batch["id"]] = int(batch.get("created") or now)
        if len(batches) >= MAX_BATCHES:
            # More than one check reads: the next resumes at the newest read (those are skipped as counted).
            newest = max(int(b.get("created") or 0) for b in batches)
            mark.checked_until, mark.complete = max(newest - 1, since), False
        else:
            mark.checked_until, mark.complete = now, True
        # No later check asks for batches created before now - OVERLAP_MS: those need not be remembered.
        mark.reported = {k: v for k, v in mark.reported.items() if v > now - OVERLAP_MS}
        marker.datasets[dataset_id] = mark
        new.extend(fresh)
    try:
        store.save(marker.to_json())
    except Exception as err:
        report.status = "error"
        report.detail = (
            f"could not save the marker ({type(err).__name__}: {err}); {len(new)} new failed batch(es) are "
            "counted by the next check instead"
        )
        return report
    _count(reader, new, report, problems, rows_until=time.monotonic() + ROWS_BUDGET_SECONDS)
    report.batches = len(new)
    report.status = "error" if problems else "checked"
    report.detail = (
        "; ".join(problems) if problems else f"failed batches created after {_iso(min_since(marker, dataset_ids))}"
    )
    return report


def min_since(marker: FailureMarker, dataset_ids: Iterable[str]) -> int:
    """The earliest creation time the next check asks for, over ``dataset_ids`` (for the report's detail)."""
    return min((marker.datasets[d].next_since() for d in dataset_ids if d in marker.datasets), default=0)


def _count(
    reader: FailedBatchReader,
    batches: list[dict[str, Any]],
    report: FailureReport,
    problems: list[str],
    *,
    rows_until: float,
) -> None:
    reasons: Counter[str] = Counter()
    for index, batch in enumerate(batches):
        metrics = batch.get("metrics") or {}
        failed = int(metrics.get("failedRecordCount") or metrics.get("recordCount") or 0)
        errors = [e for e in batch.get("errors") or [] if isinstance(e, dict)]
        rows: list[list[str]] = []
        if index < MAX_ROW_BATCHES and failed and time.monotonic() < rows_until:
            try:
                rows = _row_reasons(reader, batch["id"])
            except AEPError as err:
                problems.append(f"rows of failed batch {batch['id']}: {err}")
        for row in rows:
            reasons[row[0]] += 1
        left = max(failed - len(rows), 0)
        if left:
            if errors:
                for error in errors:
                    share = min(int(error.get("recordCount") or left), left)
                    reasons[_batch_reason(error, short=True)] += share
                    left -= share
            if left:
                reasons["AEP failed batch (no reason given)"] += left
        report.failed_in_aep += failed
        if len(report.samples) < MAX_SAMPLES:
            report.samples.append(
                {
                    "batch_id": batch["id"],
                    "dataset_id": batch.get("dataset_id"),
                    "created": batch.get("created"),
                    "failed_records": failed,
                    "errors": [_batch_reason(e) for e in errors],
                    "rows": rows[:MAX_SAMPLE_ROWS],
                }
            )
    report.by_reason = dict(reasons)


def _row_reasons(reader: FailedBatchReader, batch_id: str) -> list[list[str]]:
    """Each failed row's violations as ``<path>: <keyword> (AEP)`` (AEP's messages quote values: left out)."""
    rows: list[list[str]] = []
    for path in reader.failed_files(batch_id):
        for row in reader.failed_rows(batch_id, path, limit=MAX_ROWS_PER_BATCH - len(rows)):
            found = [_violation(e) for e in row.get("_validationErrors") or [] if isinstance(e, dict)]
            rows.append(found or ["AEP failed the row (no validation error given)"])
        if len(rows) >= MAX_ROWS_PER_BATCH:
            break
    return rows


def _violation(error: dict[str, Any]) -> str:
    pointer = str(error.get("pointerToViolation") or "#").lstrip("#") or "/"
    keyword = str(error.get("keyword") or "validation")
    return f"{pointer[:_REASON_CHARS]}: {keyword[:40]} (AEP)"


def _batch_reason(error: dict[str, Any], *, short: bool = False) -> str:
    """``<code>: <description>``; ``short``: the code alone when there is one (descriptions hold counts)."""
    code = str(error.get("code") or "").strip()
    description = str(error.get("description") or error.get("message") or "").strip()
    if short and code:
        return f"{code[:_REASON_CHARS]} (AEP)"
    text = f"{code}: {description}" if code and description else (code or description or "AEP error")
    return text[:_REASON_CHARS]


def _iso(ms: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ms / 1000))
