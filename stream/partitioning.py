"""Which partition owns a customer: the Java client's default (murmur2) partitioner."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

from aiokafka.partitioner import murmur2


def owner_function(partitions: int) -> Callable[[str], int]:
    """Return ``customer_id -> partition`` as Kafka's default partitioner would place its key."""

    @lru_cache(maxsize=262_144)
    def owner(customer_id: str) -> int:
        return int(murmur2(customer_id.encode("utf-8")) & 0x7FFFFFFF) % partitions

    return owner
