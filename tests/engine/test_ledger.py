from __future__ import annotations

import pytest

from aep_provider.engine.ledger import PartitionLedger


def test_nothing_read_commits_start():
    assert PartitionLedger(start=7).commit_offset() == 7


def test_queued_records_hold_the_commit_at_the_first_one():
    ledger = PartitionLedger(start=10)
    for offset in (10, 11, 12):
        ledger.seen(offset)
        ledger.queue.append((offset, b"{}", None))
    assert ledger.commit_offset() == 10
    ledger.queue.popleft()
    assert ledger.commit_offset() == 11
    ledger.queue.clear()
    assert ledger.commit_offset() == 13


def test_a_hold_keeps_the_commit_below_it_until_released():
    ledger = PartitionLedger(start=0)
    for offset in range(5):
        ledger.seen(offset)
    in_flight = ledger.hold(0)
    dead_letter = ledger.hold(3)
    assert ledger.commit_offset() == 0
    ledger.release(in_flight)
    assert ledger.commit_offset() == 3
    assert ledger.holds == 1
    ledger.release(dead_letter)
    assert (ledger.commit_offset(), ledger.holds) == (5, 0)


def test_holds_taken_out_of_offset_order_still_bound_the_commit():
    # A record dead-lettered at intake (offset 7) holds before the batch before it (offset 2) is cut.
    ledger = PartitionLedger(start=0)
    ledger.seen(9)
    dead_letter = ledger.hold(7)
    batch = ledger.hold(2)
    ledger.release(dead_letter)
    assert ledger.commit_offset() == 2
    ledger.release(batch)
    assert ledger.commit_offset() == 10


def test_an_unreleased_hold_blocks_everything_after_it():
    ledger = PartitionLedger(start=0)
    ledger.seen(4)
    ledger.hold(2)  # rejected under on_reject="fail": never released
    ledger.release(ledger.hold(3))
    assert ledger.commit_offset() == 2


def test_gaps_between_offsets_are_stepped_over():
    # Compacted gaps / transaction markers: offsets 5 and 9 hold records, nothing in between.
    ledger = PartitionLedger(start=5)
    ledger.seen(5)
    ledger.seen(9)
    assert ledger.commit_offset() == 10


def test_eof_advance_moves_past_markers_only_when_nothing_holds():
    ledger = PartitionLedger(start=0)
    ledger.seen(0)
    hold = ledger.hold(0)
    ledger.advance(3)
    assert ledger.commit_offset() == 0
    ledger.release(hold)
    assert ledger.commit_offset() == 3
    ledger.advance(2)  # never moves back
    assert ledger.position == 3


def test_reading_backwards_is_an_error():
    ledger = PartitionLedger(start=0)
    ledger.seen(4)
    with pytest.raises(ValueError, match="offset 3"):
        ledger.seen(3)
