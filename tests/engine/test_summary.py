from __future__ import annotations

from aep_provider.engine.summary import PartitionSummary, RunSummary


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
    }
    assert data["partitions"]["t[1]"]["lag"] == 0
    assert data["lag"] == 2


def test_lag_counts_from_start_when_nothing_committed():
    assert PartitionSummary("t", 0, start=10, end=20).lag == 10
    # committed below a retention-moved start does not inflate the lag
    assert PartitionSummary("t", 0, start=10, end=20, committed=3).lag == 10


def test_closing_line_names_totals():
    line = RunSummary(delivered=5, skipped=2, tombstones=1, seconds=2.0).closing_line()
    assert "delivered=5" in line and "skipped=2" in line and "tombstones=1" in line and "lag_left=0" in line
