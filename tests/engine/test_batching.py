from __future__ import annotations

from aep_provider.aep.results import batch_body_size
from aep_provider.engine.batching import Batcher

A = ("t", 0)
B = ("t", 1)


def _fill(batcher: Batcher, tp, count: int, size: int = 10, first: int = 0) -> None:
    for offset in range(first, first + count):
        batcher.add(tp, offset, b"x" * size)


def test_batch_bounded_by_records_and_keeps_order():
    batcher = Batcher(max_records=3, max_bytes=1_000_000)
    _fill(batcher, A, 7)
    offsets = []
    while (batch := batcher.next_batch(set())) is not None:
        assert len(batch.items) <= 3
        offsets += [item.offset for item in batch.items]
    assert offsets == list(range(7))


def test_batch_bounded_by_encoded_bytes():
    batcher = Batcher(max_records=100, max_bytes=batch_body_size(30, 3))
    _fill(batcher, A, 5, size=10)
    batch = batcher.next_batch(set())
    assert [i.offset for i in batch.items] == [0, 1, 2]
    assert batch.body_size == batch_body_size(30, 3)


def test_oversized_message_goes_alone():
    batcher = Batcher(max_records=100, max_bytes=50)
    batcher.add(A, 0, b"y" * 80)
    _fill(batcher, A, 2, first=1)
    first = batcher.next_batch(set())
    assert [i.offset for i in first.items] == [0]
    assert [i.offset for i in batcher.next_batch(set()).items] == [1, 2]


def test_busy_partition_contributes_nothing():
    batcher = Batcher(max_records=10, max_bytes=1_000_000)
    _fill(batcher, A, 3)
    _fill(batcher, B, 3)
    batch = batcher.next_batch({A})
    assert batch.partitions == {B}
    assert batcher.next_batch({A}) is None
    assert len(batcher) == 3


def test_batches_mix_free_partitions():
    batcher = Batcher(max_records=10, max_bytes=1_000_000)
    _fill(batcher, A, 2)
    _fill(batcher, B, 2)
    assert batcher.next_batch(set()).partitions == {A, B}


def test_only_full_keeps_partial_batches_queued_in_order():
    batcher = Batcher(max_records=4, max_bytes=1_000_000)
    _fill(batcher, A, 3)
    assert batcher.next_batch(set(), only_full=True) is None
    _fill(batcher, A, 2, first=3)
    assert [i.offset for i in batcher.next_batch(set(), only_full=True).items] == [0, 1, 2, 3]
    assert [i.offset for i in batcher.next_batch(set()).items] == [4]


def test_drop_forgets_a_revoked_partition():
    batcher = Batcher(max_records=4, max_bytes=1_000_000)
    _fill(batcher, A, 3)
    _fill(batcher, B, 1)
    assert batcher.drop(A) == 3
    assert len(batcher) == 1


def test_drop_after_keeps_what_came_before():
    batcher = Batcher(max_records=10, max_bytes=1_000_000)
    _fill(batcher, A, 6)
    assert batcher.drop_after(A, 2) == 3
    assert [i.offset for i in batcher.next_batch(set()).items] == [0, 1, 2]
