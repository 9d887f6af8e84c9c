"""Records fetched and then dropped (a rebalance began) are fetched again, on a real broker."""

from __future__ import annotations

import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from stream.tools.brokers import LocalBroker
from stream.worker.batching import rewind_positions
from tests.support.factories import uid

pytestmark = pytest.mark.integration


def topic_with(kafka: LocalBroker, n: int) -> str:
    name = uid("rewind")
    admin = KafkaAdminClient(bootstrap_servers=kafka.bootstrap)
    try:
        admin.create_topics([NewTopic(name, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all")
    for i in range(n):
        producer.send(name, key=b"k%d" % i, value=b"v%d" % i)
    producer.flush()
    producer.close()
    return name


async def fetch_offsets(consumer: AIOKafkaConsumer, tp: TopicPartition, want: int) -> list[int]:
    offsets: list[int] = []
    deadline = time.monotonic() + 30
    while len(offsets) < want and time.monotonic() < deadline:
        batch = await consumer.getmany(tp, timeout_ms=500)
        offsets.extend(r.offset for r in batch.get(tp, []))
    return offsets


def test_a_partition_is_moved_back_to_records_fetched_and_not_handled_unless_a_seek_came_since(
    kafka: LocalBroker,
) -> None:
    topic = topic_with(kafka, 10)
    tp = TopicPartition(topic, 0)

    async def go() -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            consumer.assign([tp])
            consumer.seek(tp, 0)
            assert await fetch_offsets(consumer, tp, 10) == list(range(10))
            assert await consumer.position(tp) == 10

            # records 4-9 were fetched and dropped: they come again
            assert rewind_positions(consumer, {tp: (4, 9)}) == [tp]
            assert await fetch_offsets(consumer, tp, 6) == list(range(4, 10))

            # a seek since the fetch (recovery seeking the changelog) already covers them
            consumer.seek(tp, 2)
            assert rewind_positions(consumer, {tp: (4, 9)}) == []
            assert await consumer.position(tp) == 2

            # a partition no longer assigned is left alone
            other = TopicPartition(topic, 1)
            assert rewind_positions(consumer, {other: (0, 3)}) == []
        finally:
            await consumer.stop()

    asyncio.run(go())
