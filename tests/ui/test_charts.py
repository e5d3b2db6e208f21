"""The deliveries page's SVG charts and sentences: values escaped, empty history handled."""

from __future__ import annotations

from aep_provider.ui import answers, charts


def test_bars_scale_to_the_largest_value_and_escape_labels():
    svg = charts.bar_chart([("run <1>", 10), ("run 2", 5)], "Delivered per run")
    assert svg.count("<rect") == 2 and "run &lt;1&gt;: 10" in svg and "<1>" not in svg
    assert 'height="104.0"' in svg and 'height="52.0"' in svg  # 160 - 2 * 28 = 104 px for the largest


def test_a_chart_without_runs_says_so():
    assert "no runs" in charts.line_chart([], "Lag") and "<polyline" not in charts.line_chart([], "Lag")
    assert charts.line_chart([("a", 0), ("b", 0)], "Lag").count("<circle") == 2  # all zero: no division by zero


def test_each_status_reads_as_a_sentence():
    run = {"run_id": "r1", "dag_id": "d", "task_id": "t", "try_number": 2, "state": "failed", "end_date": "2026-12-05"}
    assert answers.describe({**run, "status": "delivered", "group_id": "g"}, 5).startswith(
        "Delivered to AEP by run r1 (DAG d, task t, try 2, failed, ended 2026-12-05)"
    )
    dead = answers.describe({**run, "status": "dead_lettered", "reason": "AEP 400", "dlq_topic": "x.dlq"}, 5)
    assert "rejected (AEP 400). It is in x.dlq, with headers aep.source.offset=5" in dead
    waiting = answers.describe({**run, "status": "not_yet_drained", "group_id": "g", "committed": 4, "lag": 9}, 5)
    assert "group g had committed up to offset 4" in waiting and "lag then 9" in waiting
