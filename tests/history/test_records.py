"""Run summaries as history rows: read generically, ranges per mode."""

from __future__ import annotations

import json

from aep_provider.history import records


def test_a_summary_without_newer_keys_is_read_with_nulls():
    old = {"mode": "drain", "delivered": 5, "rejected": 0, "partitions": {}, "stopped_by": "end", "seconds": 1.5}
    assert records.is_run_summary(old) and not records.is_run_summary({"delivered": 5})
    row = records.delivery_row(old)
    assert (row["delivered"], row["failed_in_aep"], row["lag"], row["group_id"], row["seconds"]) == (
        5,
        None,
        None,
        None,
        1.5,
    )
    assert records.delivery_row({**old, "failed_in_aep": 3})["failed_in_aep"] == 3
    # 0 from a run that did not look at AEP's failed batches is "not reported", not "none failed".
    checked = {**old, "failed_in_aep": 0, "failed_in_aep_check": {"status": "checked"}}
    assert records.delivery_row(checked)["failed_in_aep"] == 0
    for status in ("skipped", "error"):
        skipped = {**checked, "failed_in_aep_check": {"status": status}}
        assert records.delivery_row(skipped)["failed_in_aep"] is None
    assert json.loads(row["detail"]) == {}


def test_failed_in_aep_is_unknown_when_the_run_did_not_check_aeps_failed_batches():
    """A run without dataset_id reports failed_in_aep 0 with the check "skipped": shown as "—", not as 0."""
    summary = {"mode": "drain", "delivered": 5, "partitions": {}, "failed_in_aep": 0}
    skipped = {**summary, "failed_in_aep_check": {"status": "skipped", "detail": "no dataset_id"}}
    failed = {**summary, "failed_in_aep_check": {"status": "error", "detail": "Catalog unreachable"}}
    checked = {**summary, "failed_in_aep_check": {"status": "checked", "detail": ""}}
    assert records.delivery_row(skipped)["failed_in_aep"] is None
    assert records.delivery_row(failed)["failed_in_aep"] is None
    assert records.delivery_row(checked)["failed_in_aep"] == 0


def test_a_drain_handled_what_it_committed_a_replay_what_it_scanned_up_to_the_live_drain():
    drain = {"topic": "t", "partition": 0, "start": 10, "end": 50, "committed": 40}
    assert records.handled_end(drain, "drain") == 40
    assert records.handled_end({**drain, "committed": None}, "drain") == 10  # nothing committed: nothing handled
    replay = {"topic": "t", "partition": 0, "start": 10, "end": 50, "send_until": 30}
    assert records.handled_end(replay, "replay") == 30
    assert records.handled_end({**replay, "send_until": None}, "replay") == 50


def test_marks_and_reasons_become_rows():
    summary = {
        "mode": "drain", "delivered": 1, "rejected": 2, "stopped_by": "end",
        "rejected_by_reason": {"AEP 400": 2},
        "partitions": {"t[1]": {"topic": "t", "partition": 1, "start": 0, "end": 9, "committed": 9,
                                "marks": [[3, 5, "dead_lettered", "AEP 400"]], "marks_cut_at": 7}},
    }  # fmt: skip
    assert records.range_rows(summary) == [
        {"topic": "t", "kafka_partition": 1, "start_offset": 0, "end_offset": 9, "snapshot_end": 9, "topic_end": None,
         "marks_cut_at": 7}
    ]  # fmt: skip
    assert records.mark_rows(summary) == [
        {
            "topic": "t",
            "kafka_partition": 1,
            "start_offset": 3,
            "end_offset": 5,
            "kind": "dead_lettered",
            "label": "AEP 400",
        }
    ]
    assert records.reason_rows(summary) == [{"reason": "AEP 400", "count": 2}]
