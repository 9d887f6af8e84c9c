"""Dropping the keys of partitions given away, and stopping when another rebalance begins."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings
from hypothesis import strategies as st

from stream.kafka.partitioning import partition_for
from stream.worker.pacing import Pacer
from stream.worker.state import SEP, by_key, merged_key_partition, window_key_partition
from stream.worker.sweep import sweep


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(st.binary(min_size=1, max_size=12), st.binary(max_size=4), max_size=60),
    st.sets(st.integers(0, 3)),
)
def test_exactly_the_keys_of_other_partitions_are_dropped(data: dict[bytes, bytes], owned: set[int]) -> None:
    expected = {k: v for k, v in data.items() if partition_for(k, 4) in owned}
    swept = dict(data)
    dropped = asyncio.run(sweep(swept, owned, by_key(4), lambda: True))
    assert swept == expected
    assert dropped == len(data) - len(expected)


def test_it_stops_at_the_first_pause_after_a_rebalance_began_and_drops_nothing_more() -> None:
    data = {b"%d" % i: b"v" for i in range(5_000)}
    generation = [1]

    async def go() -> int | None:
        async def rebalance() -> None:
            generation[0] = 2  # as a new assignment would, while the sweep is paused

        task = asyncio.ensure_future(rebalance())  # runs at the sweep's first pause
        dropped = await sweep(data, set(), by_key(4), lambda: generation[0] == 1, Pacer(slice_s=1e-9))
        await task
        return dropped

    assert asyncio.run(go()) is None
    assert len(data) == 4_999  # the first key went before the first pause; then it stopped


def test_nothing_is_dropped_once_the_assignment_is_no_longer_current() -> None:
    data = {b"a": b"1", b"b": b"2"}
    assert asyncio.run(sweep(data, set(), by_key(4), lambda: False)) is None
    assert data == {b"a": b"1", b"b": b"2"}


def test_each_tables_keys_map_to_the_partition_their_writers_use() -> None:
    # window buckets and watermarks carry their input partition in front
    assert window_key_partition(b"3") == 3
    assert window_key_partition(f"2{SEP}team{SEP}billing{SEP}1h{SEP}1700000000".encode()) == 2
    # merged keys go where the partial's key ``dimension␟key`` went (Kafka's default partitioner)
    of = merged_key_partition(4)
    partial_key = f"team{SEP}billing".encode()
    assert of(partial_key + f"{SEP}1".encode()) == partition_for(partial_key, 4)
    assert of(partial_key + f"{SEP}1{SEP}1h{SEP}1700000000".encode()) == partition_for(partial_key, 4)
