from __future__ import annotations

import pytest

from aep_provider.aep.ratelimit import RateLimiter
from aep_provider.aep.results import MAX_REQUEST_BYTES, batch_body_size
from aep_provider.engine.batching import Batcher
from aep_provider.engine.config import DrainConfig

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


def _cut_all(batcher: Batcher) -> list:
    batches = []
    while (batch := batcher.next_batch(set())) is not None:
        batches.append(batch)
    return batches


def test_default_limits_fill_requests_to_the_byte_limit_on_a_backlog():
    config = DrainConfig()
    batcher = Batcher(config.max_batch_records, config.max_batch_bytes)
    for partition in range(6):
        _fill(batcher, ("t", partition), 2_000, size=1_068)
    full = _cut_all(batcher)[:-1]  # the last one takes what is left
    assert all(b.body_size <= MAX_REQUEST_BYTES for b in full)
    # Bytes bind, not records: 935 messages of 1,068 bytes fill 99.9 % of the body.
    assert {len(b.items) for b in full} == {935}
    assert min(b.body_size for b in full) / config.max_batch_bytes >= 0.99


def test_records_bind_for_small_messages():
    config = DrainConfig()
    batcher = Batcher(config.max_batch_records, config.max_batch_bytes)
    _fill(batcher, A, 5_000, size=100)
    assert [len(b.items) for b in _cut_all(batcher)] == [2_000, 2_000, 1_000]


def test_full_batches_are_evened_out_to_the_messages_per_second_limit():
    batcher = Batcher(2_000, MAX_REQUEST_BYTES, messages_per_second=10_000)
    _fill(batcher, A, 3_000, size=1_068)
    _fill(batcher, B, 3_000, size=1_068)
    batches = _cut_all(batcher)
    # 935 fit the bytes; 11 requests of 909 use 9,999 of each 10,000 messages/s, 10 of 935 only 9,350.
    assert {len(b.items) for b in batches[:-1]} == {909}
    assert batches[0].body_size == batch_body_size(909 * 1_068, 909)
    offsets = {A: [], B: []}
    for batch in batches:
        for item in batch.items:
            offsets[item.tp].append(item.offset)
    assert offsets == {A: list(range(3_000)), B: list(range(3_000))}  # nothing lost, order kept


@pytest.mark.parametrize(
    ("full", "limit", "kept"),
    [(500, 10_000, 500), (935, 10_000, 909), (2_000, 10_000, 2_000), (1, 10_000, 1), (50, 20, 20), (3, 0.5, 1)],
)
def test_even_out(full, limit, kept):
    batcher = Batcher(full, MAX_REQUEST_BYTES, messages_per_second=limit)
    _fill(batcher, A, full + 1)
    assert len(batcher.next_batch(set(), only_full=True).items) == kept


def test_a_partial_batch_is_not_trimmed():
    batcher = Batcher(2_000, MAX_REQUEST_BYTES, messages_per_second=10_000)
    _fill(batcher, A, 1_500)
    assert len(batcher.next_batch(set()).items) == 1_500  # a flush of what is left goes whole


def test_for_sender_reads_the_clients_messages_limit():
    class Sender:
        rate_limiter = RateLimiter(max_requests_per_second=1_000, max_messages_per_second=10_000)

    assert Batcher.for_sender(2_000, MAX_REQUEST_BYTES, Sender()).messages_per_second == 10_000
    Sender.rate_limiter = RateLimiter(None, None)
    assert Batcher.for_sender(2_000, MAX_REQUEST_BYTES, Sender()).messages_per_second is None
    assert Batcher.for_sender(2_000, MAX_REQUEST_BYTES, object()).messages_per_second is None
