"""Intake: survey responses and ticket events in; alerts, dead letters and state out.

One batch agent consumes both input topics and the re-key topic. Each batch goes
through ``alerts.pipeline.Pipeline`` (validation, customer state, detection);
this module only does the I/O around it and waits until the broker has every
output of the batch before the batch's offsets can be committed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import Message

from alerts.pipeline import BatchResult, Emit, Pipeline, Record, Topics
from schemas.common import SCHEMA_VERSION
from stream.metrics import Metrics
from stream.partitioning import owner_function
from stream.settings import Settings
from stream.state import CustomerStore, Outbox, WindowStore
from stream.topics import service_topics

if TYPE_CHECKING:
    from stream.app import SurveyApp

log = logging.getLogger(__name__)
VERSION_HEADER = ("schema-version", str(SCHEMA_VERSION).encode())
Send = Callable[[str, bytes | None, bytes, int | None, list[tuple[str, bytes]]], Awaitable[Any]]


def utc_now() -> datetime:
    """The wall clock, aware and in UTC."""
    return datetime.now(UTC)


def headers_of(headers: Any) -> Sequence[tuple[str, bytes]]:
    if not headers:
        return ()
    return list(headers.items()) if isinstance(headers, Mapping) else list(headers)


class IntakeAgent:
    """Process one consumer batch: validate, update state, detect, produce.

    Processing is synchronous; delivery is not. Each batch's records go out in
    two stages: its outputs and window buckets are sent at once; its customers
    only when those, and every earlier batch's, are acknowledged (customer state
    is cumulative: it must never land before an alert it marks as raised).
    Meanwhile the consumer fetches and processes the next batch; it acks a batch
    only when the delivery this agent returns for it has finished.
    """

    def __init__(
        self,
        pipeline: Pipeline,
        store: CustomerStore,
        outbox: Callable[[], Outbox],
        metrics: Metrics,
        clock: Callable[[], datetime] = utc_now,
        windows: WindowStore | None = None,
        declare: Callable[[str], Awaitable[None]] | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.windows = windows
        self.lock = asyncio.Lock()  # batches and the held-survey timer take turns
        self.held: dict[str, int] | None = None  # customers with held surveys -> partition
        self.outbox = outbox
        self.declare = declare
        self.declared: set[str] = set()
        self.metrics = metrics
        self.clock = clock
        self.first: asyncio.Future[None] | None = None  # the newest batch's outputs and buckets
        self.tail: asyncio.Future[None] | None = None  # the newest batch's whole delivery

    async def __call__(self, messages: Sequence[Message]) -> asyncio.Future[None]:
        started = time.perf_counter()
        records = [
            Record(m.topic, m.partition, m.offset, m.key, m.value, headers_of(m.headers), m.timestamp)
            for m in messages
        ]
        windows = self.windows
        async with self.lock:
            result = self.pipeline.process(
                records, self.store.load, self.clock(), windows.get if windows is not None else None
            )
            return await self._stage(result, len(records), started)

    async def release_held(self) -> None:
        """Process surveys that waited their time for a ticket that never came."""
        if self.held is None:  # first run after a start: find them in the table
            self.held = self.store.with_held(self.pipeline.owner)
        if not self.held:
            return
        windows = self.windows
        async with self.lock:
            result = self.pipeline.release_due(
                sorted(self.held.items()),
                self.store.load,
                self.clock(),
                windows.get if windows is not None else None,
            )
            delivered = await self._stage(result, 0, time.perf_counter())
        await delivered

    async def drain(self) -> None:
        """Wait until every batch handed over so far is delivered."""
        if self.tail is not None:
            await self.tail

    async def _stage(self, result: BatchResult, n: int, started: float) -> asyncio.Future[None]:
        """Write the batch's state in memory and start its delivery after the previous one's."""
        # Crash safety without transactions: outputs and window buckets (which remember
        # the input offsets they hold) first, customers only once both are acknowledged.
        # Whatever a crash cuts off, a replay of the batch re-sends outputs with the same
        # ids, and neither counts a window twice nor forgets an alert it has not delivered.
        outputs = self.outbox()
        for emit in result.emits:
            if self.declare is not None and emit.topic not in self.declared:
                await self.declare(emit.topic)  # a queue first used now (rules may name queues by team)
                self.declared.add(emit.topic)
            if isinstance(emit.value, bytes):
                outputs.add(emit.topic, emit.partition, emit.key, emit.value, emit.headers)
            else:
                value = orjson.dumps(emit.value)
                outputs.add(emit.topic, emit.partition, emit.key, value, (VERSION_HEADER,))
        if self.windows is not None:
            self.windows.save(result.windows, outputs)
        customers = self.outbox()
        self.store.save(result.dirty, customers)
        if self.held is not None:
            for cid, (partition, state) in result.dirty.items():
                if state.held:
                    self.held[cid] = partition
                else:
                    self.held.pop(cid, None)
        self.metrics.customers.set(len(self.store))
        previous_first, previous = self.first, self.tail
        sent = await outputs.send()  # on its way now; one request carries it with the previous stages

        async def first() -> None:
            if previous_first is not None:
                await previous_first  # a failure before this batch is its failure too
            if sent:
                await asyncio.gather(*sent)
            self._observe_latency(result.emits)

        first_done = self.first = asyncio.ensure_future(first())

        async def deliver() -> None:
            await first_done
            if previous is not None:
                await previous
            await customers.deliver()
            self.metrics.observe(result, n, time.perf_counter() - started)

        self.tail = asyncio.ensure_future(deliver())
        return self.tail

    def _observe_latency(self, emits: list[Emit]) -> None:
        now = time.time()
        for e in emits:
            if e.cause_timestamp is not None:
                self.metrics.alert_latency.observe(max(0.0, now - e.cause_timestamp))


def install_intake(app: SurveyApp, settings: Settings) -> tuple[IntakeAgent, Send]:
    """Declare the intake topics and table on ``app`` and register the batch agent.

    Returns the agent and a ``send`` for other stages: it declares a topic on first use.
    """
    inputs = app.topic(
        settings.survey_responses_topic,
        settings.ticket_events_topic,
        key_serializer="raw",
        value_serializer="raw",
    )
    rekey = app.topic(
        settings.rekey_topic,
        partitions=settings.partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    table = app.state_table(
        "customers", "Per-customer state: tickets, profile and recent answers (orjson documents)."
    )
    topics = Topics(
        survey_responses=settings.survey_responses_topic,
        ticket_events=settings.ticket_events_topic,
        rekey=settings.rekey_topic,
        recovery_alerts=settings.recovery_alerts_topic,
        dlq=settings.dlq_topic,
        escalations_prefix=settings.escalations_prefix,
        followups=settings.followups_topic,
    )
    pipeline = Pipeline(
        topics,
        settings.policy(),
        owner_function(settings.partitions),
        settings.router(),
        settings.ticket_wait_s,
    )

    declared = set(service_topics(settings))

    async def declare(topic: str) -> None:
        if topic not in declared:  # a queue first used now (rules may name queues by team)
            await app.topic(topic, partitions=settings.partitions).declare()
            # its metadata, so records with a key can be placed on their partition
            await app.kafka_producer().partitions_for(topic)
            declared.add(topic)

    async def send(
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        await declare(topic)
        return await app.producer.send(topic, key, value, partition, None, headers)

    windows_table = app.state_table(
        "windows", "Per-partition rolling-window buckets and watermarks (orjson documents)."
    )
    windows = WindowStore(windows_table, settings.window_specs(), settings.late_grace_s)
    agent = IntakeAgent(
        pipeline,
        CustomerStore(table),
        app.outbox,
        app.metrics,
        windows=windows,
        declare=declare,
    )
    app.batch_agent(inputs, rekey)(agent)

    async def _forget(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        try:
            await agent.drain()  # what was handed over goes out before another worker takes over
        except Exception:  # the consumer raises it when it settles the batch
            log.warning("a delivery failed while partitions were revoked", exc_info=True)
        windows.forget({tp.partition for tp in revoked if tp.topic in app.batch_handlers})

    app.on_partitions_revoked.connect(_forget)  # type: ignore[arg-type]

    @app.timer(max(0.5, settings.ticket_wait_s / 4), name="release-held-surveys")  # type: ignore[untyped-decorator]
    async def _release() -> None:
        await agent.release_held()

    return agent, send
