from __future__ import annotations

import pytest

from aep_provider.engine.errors import KafkaSetupError
from aep_provider.engine.plan import Watermarks, plan_partition

MARKS = Watermarks(low=100, high=250)


def test_starts_at_committed_offset():
    plan = plan_partition("t", 0, committed=120, marks=MARKS)
    assert (plan.start, plan.end, plan.lost_to_retention) == (120, 250, 0)


@pytest.mark.parametrize(("reset", "start"), [("earliest", 100), ("latest", 250), ("smallest", 100)])
def test_no_committed_offset_uses_reset_point(reset, start):
    plan = plan_partition("t", 0, committed=None, marks=MARKS, reset=reset)
    assert (plan.start, plan.end) == (start, 250)


def test_committed_below_log_start_counts_lost_records():
    plan = plan_partition("t", 1, committed=40, marks=MARKS)
    assert (plan.start, plan.lost_to_retention) == (100, 60)


def test_committed_past_snapshot_has_nothing_to_do():
    plan = plan_partition("t", 0, committed=300, marks=MARKS)
    assert plan.start == plan.end == 300


def test_unknown_reset_is_a_clear_error():
    with pytest.raises(KafkaSetupError, match=r"t\[3\].*auto.offset.reset is 'error'"):
        plan_partition("t", 3, committed=None, marks=MARKS, reset="error")
