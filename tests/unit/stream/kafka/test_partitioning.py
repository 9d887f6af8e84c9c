"""The fast murmur2 and the partitioner built on it agree with aiokafka's reference."""

from __future__ import annotations

from aiokafka.partitioner import DefaultPartitioner
from aiokafka.partitioner import murmur2 as reference
from hypothesis import given
from hypothesis import strategies as st

from stream.kafka.partitioning import (
    murmur2,
    murmur2_python,
    owner_function,
    partition_for,
    placed,
    placement,
)
from stream.worker.delivery import default_partition


@given(st.binary(max_size=600))
def test_murmur2_equals_the_byte_at_a_time_reference(data: bytes) -> None:
    assert murmur2(data) == reference(data) == murmur2_python(data)


@given(st.binary(min_size=1, max_size=80), st.integers(1, 64))
def test_keys_land_where_the_default_partitioner_puts_them(key: bytes, n: int) -> None:
    expected = DefaultPartitioner()(key, list(range(n)), list(range(n)))
    assert partition_for(key, n) == expected == default_partition(key, n)


@given(st.text(min_size=1, max_size=60), st.integers(1, 64))
def test_a_customer_is_owned_by_its_key_partition(customer_id: str, n: int) -> None:
    assert owner_function(n)(customer_id) == partition_for(customer_id.encode(), n)


@given(st.text(min_size=1, max_size=60), st.integers(1, 64))
def test_the_placement_agrees_with_the_owner(key: str, n: int) -> None:
    assert placement(n)(key) == owner_function(n)(key) == partition_for(key.encode(), n)


def test_one_memo_serves_the_placement_of_alert_ids_and_the_records() -> None:
    """An alert id placed once is not hashed again for its records, but is for another partition count."""
    placed.cache_clear()
    place = placement(8)
    assert place("a-1") == placement(8)("a-1") == default_partition(b"a-1", 8) == partition_for(b"a-1", 8)
    assert placed.cache_info().misses == 1 and placed.cache_info().hits == 2
    assert placement(3)("a-1") == partition_for(b"a-1", 3) and placed.cache_info().misses == 2
    owner_function(8)("c-1")  # customers have the owner's memo, not this one
    assert placed.cache_info().misses == 2


def test_known_values_from_the_java_client() -> None:
    # org.apache.kafka.common.utils.Utils.murmur2 test vectors (UtilsTest.testMurmur2)
    cases = {b"21": -973932308, b"foobar": -790332482, b"a-little-bit-long-string": -985981536}
    for data, java in cases.items():
        assert murmur2(data) == murmur2_python(data) == java & 0xFFFFFFFF
