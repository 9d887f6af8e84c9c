"""Produce a batch's records as one Kafka record batch per topic-partition.

``producer.send()`` costs a future, a callback and a trip through the
accumulator per record, and the worker produces about one record per input
event (state changelogs, window buckets, alerts, follow-ups). ``Records``
collects a stage's records per topic-partition into aiokafka ``BatchBuilder``s
and submits each with ``send_batch``: one future per partition, the same
wire format, the same ordering per partition.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from stream.kafka.partitioning import placed

Header = tuple[str, bytes]
T = TypeVar("T")
Within = Callable[[str, Awaitable[Any]], Awaitable[Any]]  # ``Deadlines.within``


default_partition = placed  # the process's one memo of keys' partitions


class Records:
    """The records of one delivery stage, grouped by topic-partition."""

    def __init__(
        self,
        producer: Any,
        partitions_of: Callable[[str], int | None] | None = None,
        within: Within | None = None,
    ) -> None:
        self.producer = producer  # an aiokafka AIOKafkaProducer
        self.partitions_of = partitions_of
        self.within = within  # bounds every wait on the broker (``stream.deadline``)
        self.builders: dict[tuple[str, int], list[Any]] = {}
        self.unplaced: list[tuple[str, bytes | None, bytes | None, Sequence[Header]]] = []
        self.count = 0
        self._known: dict[str, int] = {}  # topic -> partitions, looked up once per stage

    def add(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[Header] = (),
    ) -> None:
        """Queue one record; with no partition, the key's default partition is used."""
        self.count += 1
        if partition is None:
            n = self._known.get(topic) or self._partitions(topic)
            if n is None or key is None:
                self.unplaced.append((topic, key, value, headers))  # placed by the producer
                return
            partition = default_partition(key, n)
        builders = self.builders.get((topic, partition))
        if builders is None:
            builders = self.builders[(topic, partition)] = [self.producer.create_batch()]
        h = list(headers)
        if builders[-1].append(timestamp=None, key=key, value=value, headers=h) is None:
            builder = self.producer.create_batch()  # full: a fresh batch takes any record
            builder.append(timestamp=None, key=key, value=value, headers=h)
            builders.append(builder)

    def _partitions(self, topic: str) -> int | None:
        """The topic's partition count, looked up once per stage (None while unknown)."""
        if self.partitions_of is not None:
            n = self.partitions_of(topic)
        else:
            found = self.producer.client.cluster.partitions_for_topic(topic)
            n = len(found) if found else None
        if n is not None:
            self._known[topic] = n
        return n

    async def send(self) -> list[asyncio.Future[Any]]:
        """Submit every batch; returns the futures the broker's acknowledgements resolve."""
        futures = []
        for (topic, partition), builders in self.builders.items():
            for builder in builders:
                builder.close()
                futures.append(
                    await self._bounded("send", self.producer.send_batch(builder, topic, partition=partition))
                )
        for topic, key, value, headers in self.unplaced:
            futures.append(
                await self._bounded("send", self.producer.send(topic, value, key=key, headers=list(headers)))
            )
        self.builders.clear()
        self.unplaced.clear()
        return futures

    async def wait(self, futures: Sequence[asyncio.Future[Any]]) -> None:
        """Wait until the broker has acknowledged every one of ``futures`` (raises if it refused one)."""
        if futures:
            await self._bounded("produce acknowledgement", asyncio.gather(*futures))

    async def _bounded(self, operation: str, waiting: Awaitable[T]) -> T:
        return await (self.within(operation, waiting) if self.within is not None else waiting)

    async def deliver(self) -> int:
        """Submit every batch and wait until the broker has all of them; returns the record count."""
        n, self.count = self.count, 0
        await self.wait(await self.send())
        return n
