from __future__ import annotations

import pytest

from aep_provider.engine.ledger import PartitionLedger


def test_commit_offset_is_first_unsettled_offset():
    ledger = PartitionLedger(start=10)
    for offset in (10, 11, 12):
        ledger.seen(offset)
    ledger.settle(11)
    ledger.settle(12)
    assert ledger.commit_offset() == 10
    ledger.settle(10)
    assert ledger.commit_offset() == 13
    assert ledger.outstanding == 0


def test_nothing_read_commits_start():
    assert PartitionLedger(start=7).commit_offset() == 7


def test_gaps_between_offsets_are_stepped_over():
    # Compacted gaps / transaction markers: offsets 5 and 9 hold records, nothing in between.
    ledger = PartitionLedger(start=5)
    ledger.seen(5)
    ledger.seen(9)
    ledger.settle(9)
    assert ledger.commit_offset() == 5
    ledger.settle(5)
    assert ledger.commit_offset() == 10


def test_eof_advance_moves_past_markers_only_when_nothing_is_pending():
    ledger = PartitionLedger(start=0)
    ledger.seen(0)
    ledger.advance(3)
    assert ledger.commit_offset() == 0
    ledger.settle(0)
    assert ledger.commit_offset() == 3
    ledger.advance(2)  # never moves back
    assert ledger.position == 3


def test_unsettled_record_blocks_later_ones():
    ledger = PartitionLedger(start=0)
    for offset in range(5):
        ledger.seen(offset)
    for offset in (0, 1, 3, 4):
        ledger.settle(offset)
    assert ledger.commit_offset() == 2
    assert ledger.outstanding == 1


def test_reading_backwards_is_an_error():
    ledger = PartitionLedger(start=0)
    ledger.seen(4)
    with pytest.raises(ValueError, match="offset 3"):
        ledger.seen(3)
