from __future__ import annotations

import re

import pytest

from aep_provider.engine.summary import (
    DEAD_LETTERED,
    MAX_MARKS_PER_PARTITION,
    MAX_MARKS_PER_RUN,
    MAX_REASON_CHARS,
    MAX_REJECTION_SAMPLES,
    PartitionSummary,
    RunSummary,
    reason_class,
)


def test_summary_dict_has_totals_and_per_partition_lag():
    summary = RunSummary(delivered=8, rejected=1, requests=2, seconds=1.23456)
    summary.add_partition(PartitionSummary("t", 0, start=10, end=20, committed=18))
    summary.add_partition(PartitionSummary("t", 1, start=5, end=5, committed=None))
    data = summary.to_dict()
    assert data["delivered"] == 8 and data["seconds"] == 1.235
    assert data["partitions"]["t[0]"] == {
        "topic": "t",
        "partition": 0,
        "start": 10,
        "end": 20,
        "committed": 18,
        "records": 0,
        "lost_to_retention": 0,
        "lag": 2,
        "topic_end": None,
        "handed_over": False,
        "topic_lag": None,
    }
    assert data["partitions"]["t[1]"]["lag"] == 0
    assert data["lag"] == 2
    assert data["topic_lag"] is None and data["rejection_samples"] == [] and data["rejected_by_reason"] == {}


def test_lag_counts_from_start_when_nothing_committed():
    assert PartitionSummary("t", 0, start=10, end=20).lag == 10
    # committed below a retention-moved start does not inflate the lag
    assert PartitionSummary("t", 0, start=10, end=20, committed=3).lag == 10


def test_closing_line_names_totals():
    line = RunSummary(delivered=5, skipped=2, tombstones=1, seconds=2.0).closing_line()
    assert "delivered=5" in line and "skipped=2" in line and "tombstones=1" in line and "lag_left=0" in line


def test_topic_lag_counts_what_was_produced_past_the_snapshot():
    summary = RunSummary()
    summary.add_partition(PartitionSummary("t", 0, start=0, end=20, committed=15, topic_end=50))
    summary.add_partition(PartitionSummary("t", 1, start=0, end=5, committed=5))  # end unknown
    assert summary.partition("t", 0).topic_lag == 35 and summary.partition("t", 1).topic_lag is None
    assert summary.topic_lag == 35
    assert "topic_lag=35" in summary.closing_line()
    assert summary.detail_lines() == ["t[0]: committed=15 topic_end=50 topic_lag=35"]


def test_rejections_are_counted_by_reason_and_sampled_up_to_the_bound():
    summary = RunSummary()
    for n in range(MAX_REJECTION_SAMPLES + 5):
        summary.add_rejection("t", 0, n, 400, "y" * 1000)
    summary.add_rejection("t", 1, 7, None, "encoded message is 1,200,000 bytes; AEP accepts at most 1,000,000 bytes")
    assert summary.rejected == MAX_REJECTION_SAMPLES + 6
    assert summary.rejected_by_reason == {"AEP 400": MAX_REJECTION_SAMPLES + 5, "over 1 MB": 1}
    assert len(summary.rejection_samples) == MAX_REJECTION_SAMPLES
    assert all(len(s.reason) == MAX_REASON_CHARS + 3 for s in summary.rejection_samples)


@pytest.mark.parametrize(
    ("status", "reason", "label"),
    [
        (400, "anything", "AEP 400"),
        (None, "value is not valid UTF-8 (byte 0)", "not UTF-8"),
        (None, "value is not valid JSON: Expecting value at line 1 column 1", "invalid JSON"),
        (None, "value is JSON list, not an object", "not a JSON object"),
        (None, "payload callable raised KeyError: 'x'", "payload callable failed"),
        (None, "something new", "other"),
    ],
)
def test_reason_classes(status, reason, label):
    assert reason_class(status, reason) == label


def test_a_partition_handed_over_to_another_instance_does_not_count_as_lag():
    summary = RunSummary()
    summary.add_partition(PartitionSummary("t", 0, start=0, end=20, committed=5, topic_end=30, handed_over=True))
    summary.add_partition(PartitionSummary("t", 1, start=0, end=10, committed=10, topic_end=12))
    assert (summary.lag, summary.topic_lag) == (0, 2)
    assert summary.to_dict()["partitions"]["t[0]"]["handed_over"] is True


def test_request_latency_figures_by_nearest_rank():
    from aep_provider.engine.summary import latency_figures

    assert latency_figures([]) == {"count": 0, "mean": None, "p50": None, "p95": None, "max": None}
    figures = latency_figures([n / 100 for n in range(100, 0, -1)])  # 0.01 .. 1.00, unordered
    assert figures == {"count": 100, "mean": 0.505, "p50": 0.5, "p95": 0.95, "max": 1.0}
    assert latency_figures([0.2]) == {"count": 1, "mean": 0.2, "p50": 0.2, "p95": 0.2, "max": 0.2}
    summary = RunSummary()
    summary.add_request_durations([0.1, 0.3])
    data = summary.to_dict()
    assert data["request_seconds"]["count"] == 2 and data["request_seconds"]["max"] == 0.3
    assert not any(key.startswith("_") for key in data)


def test_every_summary_key_is_documented_in_the_operator_page():
    """docs/operator.md ("What a run returns") is where the UI page and alerting read the keys from."""
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "docs" / "operator.md").read_text(encoding="utf-8")
    section = doc[doc.index("## What a run returns") :]
    documented = set(re.findall(r"^\| `([a-z_]+)`", section, flags=re.M))
    documented |= {k for row in re.findall(r"^\| (`[a-z_]+`(?:, `[a-z_]+`)+) \|", section, flags=re.M)
                   for k in re.findall(r"`([a-z_]+)`", row)}  # fmt: skip
    keys = set(RunSummary().to_dict()) | set(RunSummary(mode="replay").to_dict())
    assert keys - documented == set(), "summary keys missing from docs/operator.md"


def test_records_settled_without_delivery_are_located_as_ranges():
    summary = RunSummary()
    summary.add_partition(PartitionSummary("t", 0, start=0, end=100, committed=100))
    for offset in (10, 11, 12):
        summary.add_rejection("t", 0, offset, 400, "bad", DEAD_LETTERED)
    summary.add_rejection("t", 0, 13, None, "value is not valid JSON: x", DEAD_LETTERED)  # another reason
    summary.add_skip("t", 0, 14, tombstone=True)
    summary.add_skip("t", 0, 15, tombstone=True)
    summary.add_rejection("t", 0, 5, 400, "bad", DEAD_LETTERED)  # settled out of order (intake before AEP)
    summary.add_rejection("t", 0, 50, 400, "bad")  # no outcome given: counted, not located
    data = summary.to_dict()["partitions"]["t[0]"]
    assert data["marks"] == [
        [5, 6, "dead_lettered", "AEP 400"],
        [10, 13, "dead_lettered", "AEP 400"],
        [13, 14, "dead_lettered", "invalid JSON"],
        [14, 16, "skipped", "tombstone"],
    ]
    assert "marks_cut_at" not in data
    assert (summary.skipped, summary.tombstones, summary.rejected) == (2, 2, 6)


def test_locations_are_bounded_per_partition_and_per_run():
    summary = RunSummary()
    partitions = MAX_MARKS_PER_RUN // MAX_MARKS_PER_PARTITION + 2
    for p in range(partitions):
        summary.add_partition(PartitionSummary("t", p, start=0, end=10_000))
        # every other offset: no two records share a range
        for offset in range(0, 2 * (MAX_MARKS_PER_PARTITION + 10), 2):
            summary.add_skip("t", p, offset, tombstone=False)
    data = summary.to_dict()["partitions"]
    first = data["t[0]"]
    assert len(first["marks"]) == MAX_MARKS_PER_PARTITION
    assert first["marks_cut_at"] == 2 * MAX_MARKS_PER_PARTITION
    assert sum(len(p.get("marks", [])) for p in data.values()) == MAX_MARKS_PER_RUN
    # past the run's bound a partition locates nothing and says from where
    assert data[f"t[{partitions - 1}]"] == {**data[f"t[{partitions - 1}]"], "marks_cut_at": 0}
    assert "marks" not in data[f"t[{partitions - 1}]"]
    # a record joining the last range still extends it: ranges never lose what they cover
    summary.add_skip("t", 0, 2 * MAX_MARKS_PER_PARTITION - 1, tombstone=False)
    assert summary.partition("t", 0).marks[-1][:2] == [2 * MAX_MARKS_PER_PARTITION - 2, 2 * MAX_MARKS_PER_PARTITION]
