"""A small ``make bench``: every case runs in its own process and moves exactly its events (counts only, never timings)."""

from __future__ import annotations

import json

import pytest

from bench import compare

pytestmark = pytest.mark.integration


def test_every_case_moves_exactly_its_events(kafka_bootstrap, tmp_path):
    out, report = tmp_path / "bench.json", tmp_path / "BENCHMARKS.md"
    report.write_text(
        "# Benchmarks\n\nprose kept\n\n<!-- generated: bench -->\nold figures\n<!-- end generated: bench -->\n"
    )
    argv = [
        "--bootstrap", kafka_bootstrap, "--events", "1200", "--partitions", "3", "--message-bytes", "300",
        "--repeat", "1", "--peer-batch", "100", "--latency-ms", "5", "--latency-events", "400",
        "--throttled-events", "400", "--validation-events", "400", "--timeout", "120", "--json-out", str(out), "--write", str(report),
    ]  # fmt: skip
    assert compare.main(argv) == 0
    document = json.loads(out.read_text())
    moved = {(r["label"], r["case"]): r["events"] for r in document["runs"]}
    assert moved == {
        ("main", "limit"): 1200,
        ("main", "peer"): 1200,
        ("main", "ours"): 1200,
        ("empty", "ours"): 0,
        ("memory N", "ours"): 300,
        ("memory 4N", "ours"): 1200,
        ("latency", "peer"): 400,
        ("latency", "ours"): 400,
        ("throttled", "ours"): 400,
        ("validation off (xdm)", "ours"): 400,
        ("validation on (xdm)", "ours"): 400,
        ("validation off (passthrough)", "ours"): 400,
        ("validation on (passthrough)", "ours"): 400,
    }
    by_case = {(r["label"], r["case"]): r for r in document["runs"]}
    # Only the cases that send make requests; 1,200 events in batches of at most 100 is at least 12.
    assert by_case[("main", "limit")]["requests"] == 0
    assert by_case[("main", "peer")]["requests"] >= 12
    assert by_case[("empty", "ours")]["requests"] == 0
    # Every figure the report names is there, and the markers' old content is replaced.
    text = report.read_text()
    assert "prose kept" in text and "old figures" not in text
    for name in (
        "main/limit",
        "main/peer",
        "main/ours",
        "latency/ours",
        "throttled/ours",
        "memory 4N/ours",
        "empty/ours",
        "validation on (xdm)/ours",
        "CPU per run, validation on / off (xdm, 1 KB records)",
    ):
        assert name in text
