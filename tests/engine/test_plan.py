from __future__ import annotations

import pytest
from confluent_kafka import KafkaError, KafkaException, TopicPartition

from aep_provider.engine.errors import KafkaSetupError, KafkaUnavailableError
from aep_provider.engine.plan import GroupOffsetsPlanner, Watermarks, nothing_to_read, plan_partition

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


class FlakyCommitted:
    """committed() answers "timed out" ``failures`` times, then the offset 120."""

    def __init__(self, failures: int) -> None:
        self.failures, self.calls = failures, 0

    def committed(self, tps, timeout):
        self.calls += 1
        if self.calls <= self.failures:
            raise KafkaException(KafkaError(KafkaError._TIMED_OUT, "Failed to get committed offsets"))
        return [TopicPartition(tp.topic, tp.partition, 120) for tp in tps]


def test_committed_offsets_are_read_again_after_an_early_timeout():
    consumer = FlakyCommitted(failures=2)
    (plan,) = GroupOffsetsPlanner(timeout=5).plan(consumer, [TopicPartition("t", 0)], {("t", 0): MARKS})
    assert (plan.start, consumer.calls) == (120, 3)


@pytest.mark.timeout(10)
def test_committed_offsets_failing_for_the_whole_budget_is_one_clear_error():
    consumer = FlakyCommitted(failures=10_000)
    with pytest.raises(KafkaUnavailableError, match="could not read the group's committed offsets within 1s"):
        GroupOffsetsPlanner(timeout=1).plan(consumer, [TopicPartition("t", 0)], {("t", 0): MARKS})
    assert consumer.calls > 1


@pytest.mark.parametrize(
    ("committed", "marks", "reset", "empty"),
    [
        (250, MARKS, "earliest", True),  # committed the end
        (260, MARKS, "earliest", True),  # another run committed past this snapshot
        (249, MARKS, "earliest", False),  # one record waits
        (None, Watermarks(250, 250), "earliest", True),  # no offset, nothing retained: lag 0
        (None, Watermarks(250, 250), "latest", False),  # a full run pins the start (else the next run skips)
        (None, MARKS, "earliest", False),  # no offset, records retained
        (40, Watermarks(250, 250), "earliest", False),  # lost to retention: the full run reports it
    ],
)
def test_nothing_to_read_from_offsets_alone(committed, marks, reset, empty):
    plans = [
        plan_partition("t", 0, committed=committed, marks=marks, reset=reset),
        plan_partition("t", 1, committed=250, marks=MARKS),
    ]
    assert nothing_to_read(plans, reset) is empty
