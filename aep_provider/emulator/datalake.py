"""
The emulator's data lake: what AEP does with a message after the inlet accepted it.

The inlet checks only the envelope and answers at once; the XDM schema is checked later, as AEP
does. Every accepted batch request becomes, per dataset, one Catalog batch: ``processing`` until a
background thread (after ``validation_delay_seconds``) has checked each record against the
dataset's schema, then ``success``, or ``failed`` with ``metrics.failedRecordCount``, ``errors[]``
and the failed rows (each with ``_validationErrors``) for the Data Access API.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aep_provider.aep.xdm import XDMValidator
from aep_provider.emulator.config import EmulatorConfig

#: The batch-level error AEP reports for rows that failed validation.
ROW_ERRORS_CODE = "INGEST-1212-400"
#: The row-level errors kept per failed row (AEP's synchronous validation shows at most 5).
MAX_ROW_ERRORS = 5


@dataclass
class IngestBatch:
    """One Catalog batch: the records of one accepted request that went to one dataset."""

    batch_id: str
    dataset_id: str
    created_ms: int
    records: list[Any]
    status: str = "processing"
    updated_ms: int = 0
    failed_rows: list[dict[str, Any]] = field(default_factory=list)

    def catalog(self) -> dict[str, Any]:
        """The batch as Catalog lists it."""
        entry: dict[str, Any] = {
            "status": self.status,
            "created": self.created_ms,
            "updated": self.updated_ms or self.created_ms,
            "createdClient": "acp_streaming",
            "relatedObjects": [{"type": "dataSet", "id": self.dataset_id}],
            "metrics": {
                "inputRecordCount": len(self.records) + len(self.failed_rows),
                "recordCount": len(self.records),
                "failedRecordCount": len(self.failed_rows),
            },
        }
        if self.status == "failed":
            entry["errors"] = [
                {
                    "code": ROW_ERRORS_CODE,
                    "description": f"Encountered {len(self.failed_rows)} errors in the data. Successfully ingested "
                    f"{len(self.records)} rows. Review the associated diagnostics for more details.",
                    "recordCount": len(self.failed_rows),
                }
            ]
        return entry


class DataLake:
    """
    Catalog batches of accepted messages and their asynchronous validation.

    :param config: the emulator's config (schemas, datasets, delay).
    """

    def __init__(self, config: EmulatorConfig) -> None:
        self.config = config
        self._validators = {str(s["$id"]): XDMValidator(s) for s in config.schemas}
        self._datasets = {d.dataset_id: d for d in config.datasets}
        self._by_schema: dict[str, str] = {}
        for d in config.datasets:
            self._by_schema.setdefault(d.schema_id, d.dataset_id)
        self._lock = threading.Condition()
        self._batches: dict[str, IngestBatch] = {}
        self._queue: deque[tuple[float, IngestBatch]] = deque()
        self._ids = itertools.count(1)
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------

    def start(self) -> None:
        with self._lock:
            self._stopping = False
        self._thread = threading.Thread(target=self._run, name="aep-emulator-validation", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._lock:
            self._stopping = True
            self._lock.notify_all()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def reset(self) -> None:
        with self._lock:
            self._batches.clear()
            self._queue.clear()

    # -- the inlet hands over what it accepted -----------------------------------------------

    def ingest(self, messages: list[dict[str, Any]], received_ms: int) -> None:
        """Queue the accepted XDM messages of one request for validation, one batch per dataset."""
        by_dataset: dict[str, list[Any]] = {}
        for message in messages:
            header = message.get("header") or {}
            schema_id = str((header.get("schemaRef") or {}).get("id") or "")
            dataset_id = header.get("datasetId") or self._by_schema.get(schema_id)
            if dataset_id in self._datasets:
                by_dataset.setdefault(dataset_id, []).append((message.get("body") or {}).get("xdmEntity"))
        if not by_dataset:
            return
        due = time.monotonic() + self.config.validation_delay_seconds
        with self._lock:
            for dataset_id, records in by_dataset.items():
                batch_id = f"{received_ms:013d}-{next(self._ids):06d}-emu"
                batch = IngestBatch(batch_id, dataset_id, received_ms, records)
                self._batches[batch_id] = batch
                self._queue.append((due, batch))
            self._lock.notify_all()

    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._stopping and (not self._queue or self._queue[0][0] > time.monotonic()):
                    wait = self._queue[0][0] - time.monotonic() if self._queue else None
                    self._lock.wait(wait)
                if self._stopping:
                    return
                _, batch = self._queue.popleft()
            self._validate(batch)

    def _validate(self, batch: IngestBatch) -> None:
        dataset = self._datasets[batch.dataset_id]
        validator = self._validators.get(dataset.schema_id)
        ingested, failed = [], []
        for record in batch.records:
            errors = _row_errors(validator, record) if validator is not None else []
            if errors:
                row = dict(record) if isinstance(record, dict) else {"value": record}
                row["_validationErrors"] = errors
                failed.append(row)
            else:
                ingested.append(record)
        with self._lock:
            batch.records = ingested
            batch.failed_rows = failed
            batch.status = "failed" if failed else "success"
            batch.updated_ms = int(time.time() * 1000)
            self._lock.notify_all()

    # -- what Catalog and the Data Access API read -------------------------------------------

    def pending(self) -> int:
        """Batches still waiting for validation."""
        with self._lock:
            return len(self._queue)

    def wait_validated(self, timeout: float) -> bool:
        """Block until every queued batch is validated (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._queue or any(b.status == "processing" for b in self._batches.values()):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._lock.wait(min(left, 0.1))
        return True

    def batches(
        self,
        *,
        dataset_id: str | None = None,
        status: str | None = None,
        created_after: int | None = None,
        limit: int = 100,
        newest_first: bool = False,
    ) -> dict[str, dict[str, Any]]:
        """Catalog's ``GET /batches`` with its filters, as an object keyed by batch id."""
        with self._lock:
            found = [
                b
                for b in self._batches.values()
                if (dataset_id is None or b.dataset_id == dataset_id)
                and (status is None or b.status == status)
                and (created_after is None or b.created_ms > created_after)
            ]
            found.sort(key=lambda b: (b.created_ms, b.batch_id), reverse=newest_first)
            return {b.batch_id: b.catalog() for b in found[:limit]}

    def failed_rows(self, batch_id: str) -> list[dict[str, Any]] | None:
        """The failed rows of a batch (None: no such batch)."""
        with self._lock:
            batch = self._batches.get(batch_id)
            return None if batch is None else [dict(r) for r in batch.failed_rows]

    def dataset(self, dataset_id: str) -> Any:
        return self._datasets.get(dataset_id)

    def schema(self, schema_id: str) -> dict[str, Any] | None:
        for schema in self.config.schemas:
            if schema_id in (schema.get("$id"), schema.get("meta:altId")):
                return schema
        return None

    def stats(self) -> dict[str, int]:
        with self._lock:
            batches = list(self._batches.values())
        return {
            "batches_processing": sum(1 for b in batches if b.status == "processing"),
            "batches_success": sum(1 for b in batches if b.status == "success"),
            "batches_failed": sum(1 for b in batches if b.status == "failed"),
            "records_ingested": sum(len(b.records) for b in batches if b.status != "processing"),
            "records_failed": sum(len(b.failed_rows) for b in batches),
        }


def _row_errors(validator: XDMValidator, record: Any) -> list[dict[str, Any]]:
    """A failed row's ``_validationErrors`` in AEP's shape; like AEP's, a ``message`` may quote the value."""
    if isinstance(record, dict) and validator.is_valid(record):
        return []
    if not isinstance(record, dict):
        return [{"causingExceptions": [], "message": "Payload body is missing xdmEntity"}]
    errors = []
    for error in itertools.islice(validator.errors(record), MAX_ROW_ERRORS):
        path = "/".join(str(p) for p in error.instance_path)
        errors.append(
            {
                "causingExceptions": [],
                "keyword": error.kind.name,
                "message": _aep_message(error)[:500],
                "pointerToViolation": f"#/{path}",
                "schemaLocation": "#/" + "/".join(str(p) for p in error.schema_path),
            }
        )
    return errors


def _aep_message(error: Any) -> str:
    """The wording of AEP's validator (everit), which quotes offending values."""
    kind = error.kind
    if kind.name == "additionalProperties":
        return f"extraneous key [{', '.join(str(k) for k in kind.unexpected)}] is not permitted"
    if kind.name == "required":
        return f"required key [{kind.property}] not found"
    if kind.name == "type":
        return f"expected type: {kind.types}, found: {type(error.instance).__name__}"
    if kind.name == "format":
        return f"[{error.instance}] is not a valid {kind.format}."
    if kind.name == "enum":
        return f"{error.instance} is not a valid enum value"
    return f"[{error.instance}] violates {kind.name}"
