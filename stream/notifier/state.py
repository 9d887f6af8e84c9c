"""The notifier's durable state: a compacted topic of deliveries and disabled destinations.

Key ``d:<delivery id>``: the delivery while it is pending (document, destination,
attempts, next attempt), then its final status (delivered, rejected, disabled,
exhausted, expired) so that a record read again after a restart is not delivered
again. Key ``x:<destination>:<fingerprint>``: a destination that answered 410 (a new
URL has another fingerprint, so a corrected configuration is enabled again).

An input offset is committed only once the deliveries it caused are written here,
so a restart resumes every retry where it was and resends nothing already delivered
(what a crash cuts between a delivery and its record here is sent once more, with
the same ``webhook-id`` / ``Message-ID``).
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from stream.destinations.senders import Delivery

log = logging.getLogger(__name__)

FINAL = ("delivered", "rejected", "disabled", "exhausted", "expired")
DONE_RETENTION_S = 7 * 86_400.0  # how long final statuses are remembered (and kept by compaction)
BROKER_WAIT_S = 60.0


def encode_pending(d: Delivery) -> bytes:
    return orjson.dumps(
        {
            "s": "pending",
            "type": d.type,
            "doc": d.doc,
            "dest": d.destination,
            "attempt": d.attempt,
            "first_at": d.first_at,
            "next_at": d.next_at,
            "src": list(d.source),
            "created_at": d.created_at,
        }
    )


def decode_pending(delivery_id: str, doc: dict[str, Any]) -> Delivery:
    topic, partition = doc["src"]
    return Delivery(
        delivery_id,
        doc["type"],
        doc["doc"],
        doc["dest"],
        doc["attempt"],
        doc["first_at"],
        doc["next_at"],
        (topic, int(partition)),
        doc.get("created_at"),
    )


class NotifierState:
    """Deliveries pending and done, and destinations disabled, as the state topic has them."""

    def __init__(self, topic: str, producer: Any) -> None:
        self.topic = topic
        self.producer = producer  # an aiokafka producer
        self.pending: dict[str, Delivery] = {}
        self.done: dict[str, float] = {}  # delivery id -> when it became final
        self.disabled: dict[str, dict[str, Any]] = {}  # "<destination>:<fingerprint>" -> why, when

    def known(self, delivery_id: str) -> bool:
        return delivery_id in self.pending or delivery_id in self.done

    async def load(self, consumer_kwargs: dict[str, Any]) -> int:
        """Read the whole state topic into memory (it is compacted: about what is pending)."""
        consumer = AIOKafkaConsumer(enable_auto_commit=False, group_id=None, **consumer_kwargs)
        await asyncio.wait_for(consumer.start(), BROKER_WAIT_S)
        read = 0
        try:
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            end = (await asyncio.wait_for(consumer.end_offsets([tp]), BROKER_WAIT_S))[tp]
            while await consumer.position(tp) < end:
                batch = await asyncio.wait_for(consumer.getmany(tp, timeout_ms=1000), BROKER_WAIT_S)
                for records in batch.values():
                    for rec in records:
                        self._apply(rec.key.decode(), rec.value)
                        read += 1
        finally:
            await consumer.stop()
        self.prune(time.time())
        return read

    def _apply(self, key: str, value: bytes | None) -> None:
        kind, _, name = key.partition(":")
        if kind == "x":
            if value is None:
                self.disabled.pop(name, None)
            else:
                self.disabled[name] = orjson.loads(value)
            return
        if value is None:
            self.pending.pop(name, None)
            self.done.pop(name, None)
            return
        doc = orjson.loads(value)
        if doc["s"] == "pending":
            self.pending[name] = decode_pending(name, doc)
            self.done.pop(name, None)
        else:
            self.pending.pop(name, None)
            self.done[name] = doc.get("at", 0.0)

    def prune(self, now: float) -> None:
        """Forget final statuses older than the retention (compaction drops their records too)."""
        old = [k for k, at in self.done.items() if now - at > DONE_RETENTION_S]
        for k in old:
            del self.done[k]

    async def put_pending(self, deliveries: list[Delivery]) -> None:
        """Record deliveries as pending (new, or after a failed attempt); returns once the broker has them."""
        for d in deliveries:
            self.pending[d.id] = d
            self.done.pop(d.id, None)
        await self._write([(f"d:{d.id}".encode(), encode_pending(d)) for d in deliveries])

    async def put_final(self, delivery_id: str, status: str, now: float) -> None:
        self.pending.pop(delivery_id, None)
        self.done[delivery_id] = now
        await self._write([(f"d:{delivery_id}".encode(), orjson.dumps({"s": status, "at": now}))])

    async def put_disabled(self, destination_key: str, why: dict[str, Any]) -> None:
        self.disabled[destination_key] = why
        await self._write([(f"x:{destination_key}".encode(), orjson.dumps(why))])

    async def _write(self, records: list[tuple[bytes, bytes]]) -> None:
        futures = [
            await self.producer.send(self.topic, value, key=key, partition=0) for key, value in records
        ]
        if futures:
            # aiokafka can wait for ever while the broker is away (aiokafka #1101): bound it
            await asyncio.wait_for(asyncio.gather(*futures), BROKER_WAIT_S)
