"""Feeding the read model: the output topics in the inbox's own consumer group.

Offsets live in the database, written in the transaction of the rows they produced;
on every assignment each partition is sought to the stored offset (or the beginning),
so the read model is exactly the topics, however often it is replayed or rebuilt.
They are committed to Kafka as well, only so that Kafka's tools show the group's lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, Gauge

from schemas.inputs import CustomerProfile
from schemas.validate import Rejection, parse
from stream.kafka.security import aiokafka_options
from stream.kafka.topics import Outputs
from stream.metrics import PREFIX
from stream.readmodel.db import ReadModel
from stream.settings import Settings
from stream.supervise import supervise
from stream.watchdog import ConsumerOffsets, Offsets

log = logging.getLogger(__name__)
BROKER_WAIT_S = 60.0
# feedback-windows snapshots kept (every other dimension, by far the most keys, is skipped: the digest
# reads the overall scores and the contact drivers, and storing all of them made the feed fall behind)
DIGEST_DIMENSIONS = ("overall", "category")


def profile_record(key: bytes | None, value: bytes | None, timestamp_ms: int | None) -> dict[str, Any] | None:
    """A ``customer-profiles`` record for the read model: its customer, time and fields, or an erasure.

    A tombstone (no value) erases the customer its key names, as of its broker timestamp (as the
    worker dates it); a record that is not a valid profile is skipped (the worker dead-letters it).
    """
    if not value:
        try:
            cid = (key or b"").decode("utf-8")
        except UnicodeDecodeError:
            return None
        at = (timestamp_ms or 0) / 1000
        return {"customer_id": cid, "at": at, "deleted": True} if cid and at else None
    found = parse(CustomerProfile, value)
    if isinstance(found, Rejection):
        return None
    doc = found.model_dump(mode="json", exclude_none=True)
    return {**doc, "at": found.updated_at.timestamp()}


class FeedMetrics:
    """The read model's lag and size."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.lag = Gauge(
            f"{PREFIX}_inbox_lag_records",
            "Records of the output topics not yet in the inbox's read model, by type.",
            ["type"],
            registry=registry,
        )
        self.rows = Gauge(
            f"{PREFIX}_inbox_rows", "Rows in the inbox's read model, by table.", ["table"], registry=registry
        )
        self.applied = Gauge(
            f"{PREFIX}_inbox_records_applied",
            "Records applied to the read model since the start.",
            registry=registry,
        )


class _Seek(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, feed: Feed) -> None:
        self.feed = feed

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        return None

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.feed.seek(assigned)


class Feed:
    """Consumes the output topics into the read model."""

    def __init__(self, settings: Settings, model: ReadModel, metrics: FeedMetrics) -> None:
        self.settings = settings
        self.model = model
        self.metrics = metrics
        self.outputs = Outputs(
            settings,
            {
                "recovery_alerts_topic": "alert",
                "followup_events_topic": "event",
                "feedback_windows_topic": "window",
                "customer_profiles_topic": "profile",
            },
        )
        self.consumer: Any = None
        self.applied = 0
        self.caught_up = False
        self.progress = ConsumerOffsets()  # what is applied, for the watchdog

    def kind_of(self, topic: str) -> str:
        return self.outputs.kind_of(topic) or "escalation"

    async def seek(self, assigned: set[TopicPartition]) -> None:
        positions = await self.model.positions()
        for tp in assigned:
            stored = positions.get((tp.topic, tp.partition))
            if stored is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, stored)

    async def progress_read(self) -> tuple[Offsets, Offsets] | None:
        """Offsets applied and end offsets, for the watchdog (of the consumer running now)."""
        return await self.progress.read()

    async def run_supervised(self, stop: asyncio.Event) -> None:
        """``run`` again after any failure, with a growing pause: the page stays up meanwhile."""

        def failed() -> None:
            self.caught_up = False

        await supervise(self.run, stop, "The inbox's feed", on_failure=failed)

    async def run(self, stop: asyncio.Event) -> None:
        """Consume until ``stop`` is set."""
        self.consumer = AIOKafkaConsumer(
            group_id=self.settings.inbox_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5_000,
            max_poll_records=1000,
            **aiokafka_options(self.settings),
        )
        self.consumer.subscribe(pattern=self.outputs.pattern, listener=_Seek(self))
        await asyncio.wait_for(self.consumer.start(), BROKER_WAIT_S)
        self.progress = ConsumerOffsets()
        self.progress.consumer = self.consumer
        try:
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=500)
                if batch:
                    await self._apply(batch)
                await self._lag()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.consumer.stop(), 30)

    async def _apply(self, batch: dict[TopicPartition, list[Any]]) -> None:
        records = []
        for tp, recs in batch.items():
            kind = self.kind_of(tp.topic)
            for r in recs:
                if kind == "profile":
                    records.append(
                        (kind, tp.topic, tp.partition, r.offset, profile_record(r.key, r.value, r.timestamp))
                    )
                    continue
                try:
                    doc = orjson.loads(r.value or b"")
                except orjson.JSONDecodeError:
                    doc = None  # the worker's dead-letter topic is where bad input goes; skip it here
                if (
                    kind == "window"
                    and isinstance(doc, dict)
                    and doc.get("dimension") not in DIGEST_DIMENSIONS
                ):
                    doc = None  # only the offset moves: the read model keeps what the digest reads
                records.append(
                    (kind, tp.topic, tp.partition, r.offset, doc if isinstance(doc, dict) else None)
                )
        await self.model.apply(records)
        self.progress.finished(batch)  # in the read model, with its offsets
        self.applied += len(records)
        self.metrics.applied.set(self.applied)
        offsets = {tp: OffsetAndMetadata(recs[-1].offset + 1, "") for tp, recs in batch.items() if recs}
        with contextlib.suppress(Exception):  # only for Kafka's lag tools: the database has the offsets
            await asyncio.wait_for(self.consumer.commit(offsets), 10)
        for table, n in (await self.model.sizes()).items():
            self.metrics.rows.labels(table).set(n)

    async def _lag(self) -> None:
        totals: dict[str, int] = {"alert": 0, "event": 0, "escalation": 0, "window": 0, "profile": 0}
        behind = False
        for tp in self.consumer.assignment():
            high = self.consumer.highwater(tp)
            if high is None:  # nothing fetched from it yet
                behind = True
                continue
            lag = max(0, high - await self.consumer.position(tp))
            totals[self.kind_of(tp.topic)] += lag
            behind = behind or lag > 0
        for kind, n in totals.items():
            self.metrics.lag.labels(kind).set(n)
        self.caught_up = not behind
