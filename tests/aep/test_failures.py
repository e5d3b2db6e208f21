"""aep/failures.py against the emulator: failed batches counted once, however often and late they are seen."""

from __future__ import annotations

import json
from typing import Any

import pytest

from aep_provider.aep import failures
from aep_provider.aep.failures import FailureMarker, check_failed_batches
from aep_provider.emulator import DEFAULT_IMS_ORG_ID, Fault
from aep_provider.emulator.config import EXAMPLE_DATASET_ID, EXAMPLE_SCHEMA_ID
from scripts.sample_events import INVALID_KINDS, invalid_event, sample_event
from tests.aep.support import client_for, platform_for

pytestmark = pytest.mark.integration

IDS = {"schema_id": EXAMPLE_SCHEMA_ID, "dataset_id": EXAMPLE_DATASET_ID, "ims_org_id": DEFAULT_IMS_ORG_ID}


class MemoryMarker:
    """A marker store in memory (the operator's is an Airflow Variable); ``fail`` makes saving raise."""

    def __init__(self) -> None:
        self.value: dict[str, Any] | None = None
        self.fail = False

    def load(self) -> dict[str, Any] | None:
        return json.loads(json.dumps(self.value)) if self.value is not None else None

    def save(self, marker: dict[str, Any]) -> None:
        if self.fail:
            raise RuntimeError("the store is down")
        self.value = json.loads(json.dumps(marker))


def send(emulator, *, valid: int = 2, kinds=tuple(INVALID_KINDS)) -> None:
    messages = [sample_event(n, **IDS) for n in range(valid)]
    messages += [invalid_event(n, kind, **IDS) for n, kind in enumerate(kinds)]
    assert client_for(emulator.url).send_batch([json.dumps(m).encode() for m in messages]).accepted == len(messages)


def test_failed_records_are_counted_once_with_their_reasons(aep_emulator):
    send(aep_emulator)
    assert aep_emulator.wait_validated(10)
    client, store = platform_for(aep_emulator.url), MemoryMarker()

    first = check_failed_batches(client, [EXAMPLE_DATASET_ID], store)
    assert (first.status, first.failed_in_aep, first.batches) == ("checked", 7, 1)
    assert first.by_reason == {
        "/_aepprovider/seq: type (AEP)": 1, "/: required (AEP)": 1, "/timestamp: format (AEP)": 1,
        "/_aepprovider/channel: enum (AEP)": 1, "/: additionalProperties (AEP)": 1,
        "/_aepprovider/loyaltyTier: maxLength (AEP)": 1, "/_aepprovider/seq: minimum (AEP)": 1,
    }  # fmt: skip
    (sample,) = first.samples
    assert sample["failed_records"] == 7 and sample["errors"][0].startswith("INGEST-1212-400: ")
    # AEP's row messages quote values (personal data): nothing of them is kept.
    assert "phone" not in json.dumps(first.summary()) and "WINTER" not in json.dumps(first.summary())

    again = check_failed_batches(client, [EXAMPLE_DATASET_ID], store)
    assert (again.status, again.failed_in_aep) == ("checked", 0)
    # The same batch was returned by Catalog again (the look-back overlaps) and skipped.
    assert aep_emulator.stats()["requests"]["catalog"]["200"] == 2

    send(aep_emulator, valid=1, kinds=["extraneous key"])
    assert aep_emulator.wait_validated(10)
    third = check_failed_batches(client, [EXAMPLE_DATASET_ID], store)
    assert (third.failed_in_aep, third.by_reason) == (1, {"/: additionalProperties (AEP)": 1})


def test_a_batch_that_fails_after_a_check_is_counted_by_the_next(make_aep_emulator):
    emulator = make_aep_emulator(validation_delay_seconds=1.0)
    client, store = platform_for(emulator.url), MemoryMarker()
    send(emulator, valid=1, kinds=["bad date-time"])
    early = check_failed_batches(client, [EXAMPLE_DATASET_ID], store)  # still processing: not failed yet
    assert (early.status, early.failed_in_aep) == ("checked", 0)
    assert emulator.wait_validated(10)
    late = check_failed_batches(client, [EXAMPLE_DATASET_ID], store)
    assert late.failed_in_aep == 1  # created before the previous check, failed after it


def test_nothing_is_counted_when_the_marker_cannot_be_saved_and_the_next_check_counts_it(aep_emulator):
    send(aep_emulator, kinds=["bad date-time", "extraneous key"])
    assert aep_emulator.wait_validated(10)
    client, store = platform_for(aep_emulator.url), MemoryMarker()
    store.fail = True
    broken = check_failed_batches(client, [EXAMPLE_DATASET_ID], store)
    assert (broken.status, broken.failed_in_aep) == ("error", 0) and "could not save the marker" in broken.detail
    store.fail = False
    assert check_failed_batches(client, [EXAMPLE_DATASET_ID], store).failed_in_aep == 2


def test_catalog_refusing_is_reported_not_raised(aep_emulator):
    aep_emulator.inject(Fault(status=403, endpoint="catalog", count=None))
    report = check_failed_batches(platform_for(aep_emulator.url), [EXAMPLE_DATASET_ID], MemoryMarker())
    assert report.status == "error" and "View Datasets" in report.detail and report.failed_in_aep == 0


def test_rows_that_cannot_be_read_still_count_with_the_batch_reason(aep_emulator):
    send(aep_emulator, kinds=["bad date-time", "bad date-time"])
    assert aep_emulator.wait_validated(10)
    aep_emulator.inject(Fault(status=403, endpoint="export", count=None))
    report = check_failed_batches(platform_for(aep_emulator.url), [EXAMPLE_DATASET_ID], MemoryMarker())
    assert report.failed_in_aep == 2 and report.by_reason == {"INGEST-1212-400 (AEP)": 2}
    assert report.status == "error" and "rows of failed batch" in report.detail


def test_more_failed_batches_than_one_check_reads_are_taken_in_turn(aep_emulator, monkeypatch):
    monkeypatch.setattr(failures, "MAX_BATCHES", 2)
    for _ in range(5):
        send(aep_emulator, valid=0, kinds=["extraneous key"])
    assert aep_emulator.wait_validated(10)
    client, store = platform_for(aep_emulator.url), MemoryMarker()
    counts = [check_failed_batches(client, [EXAMPLE_DATASET_ID], store).failed_in_aep for _ in range(7)]
    # Each check reads 2 and goes on where the last one stopped: all 5 counted, each once.
    assert counts[0] == 2 and all(n >= 1 for n in counts[:4]) and sum(counts) == 5 and counts[-2:] == [0, 0]


def test_the_marker_forgets_batches_older_than_the_look_back():
    marker = FailureMarker.from_json(
        {"v": 1, "datasets": {"d": {"checked_until": 10**13, "complete": True, "reported": {"old": 1, "new": 10**13}}}}
    )
    assert marker.datasets["d"].next_since() == 10**13 - failures.OVERLAP_MS
    assert FailureMarker.from_json({"v": 2}).datasets == {}
    assert FailureMarker.from_json("garbage").datasets == {}


def test_rows_are_not_read_past_their_budget_the_counts_stand(aep_emulator, monkeypatch):
    monkeypatch.setattr(failures, "ROWS_BUDGET_SECONDS", 0.0)
    send(aep_emulator, kinds=["bad date-time"])
    assert aep_emulator.wait_validated(10)
    report = check_failed_batches(platform_for(aep_emulator.url), [EXAMPLE_DATASET_ID], MemoryMarker())
    assert (report.status, report.failed_in_aep, report.by_reason) == ("checked", 1, {"INGEST-1212-400 (AEP)": 1})
    assert "export" not in aep_emulator.stats()["requests"]
