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
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any, cast

import orjson
from faust.types import Message

from alerts.pipeline import VERSION_HEADER, BatchResult, Pipeline, Record
from stream.kafka.topics import service_topics
from stream.metrics import Metrics
from stream.pipeline import pipeline_from
from stream.settings import Settings
from stream.worker.outputs import OutputGate, source
from stream.worker.runtime import StageRuntime
from stream.worker.state import CustomerStore, Outbox, WindowStore, by_key, window_key_partition

log = logging.getLogger(__name__)
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
        gate: OutputGate | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.windows = windows
        self.held: dict[str, int] | None = None  # customers with held surveys -> partition
        self.due: dict[str, float] = {}  # -> when their oldest held survey has waited long enough
        self.requested: dict[str, float] = {}  # -> when their release was requested
        self.outbox = outbox
        self.gate = gate or OutputGate(pipeline.topics.dlq, pipeline.max_message_bytes, metrics)
        self.metrics = metrics
        # read at each scrape: also right after a rebalance dropped the partitions given away
        metrics.customers.set_function(lambda: len(store))
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
        result = self.pipeline.process(
            records, self.store.load, self.clock(), windows.get if windows is not None else None
        )
        return await self._stage(result, len(records), started)

    async def release_held(self) -> None:
        """Ask for the surveys that waited their time for a ticket that never came.

        The timer does not release them itself: it sends one release request per customer
        to the re-key topic, on the customer's partition, and the batch that reads it
        releases them. The request is an input record with an offset, so after a crash the
        replayed release counts nothing twice in the windows (a release done here, outside
        any record, could: its window buckets could land and its customer state not).
        """
        if self.held is None:  # first run after a start or a rebalance: find them in the table
            self.held = self.store.with_held(self.pipeline.owner)
        if not self.held:
            return
        now = time.time()
        due = sorted(
            (cid, partition)
            for cid, partition in self.held.items()
            if cid not in self.requested and self.due.get(cid, 0.0) <= now
        )
        if not due:
            return
        out = self.outbox()
        for cid, partition in due:
            request = self.pipeline.release_request(cid, partition)
            out.add(
                request.topic, request.partition, request.key, cast(bytes, request.value), request.headers
            )
            self.requested[cid] = now
        try:
            await out.deliver()
        except Exception:
            for cid, _ in due:
                self.requested.pop(cid, None)  # asked again on the next tick
            raise

    def forget_held(self) -> None:
        """Partitions moved: find the customers with held surveys in the table again."""
        self.held = None
        self.due.clear()
        self.requested.clear()

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
        gate, limit = self.gate, self.gate.limit
        now: datetime | None = None
        for emit in result.emits:
            if isinstance(emit.value, bytes):
                value, headers = emit.value, emit.headers
            else:
                value, headers = orjson.dumps(emit.value), [VERSION_HEADER]
            topic, key, partition = emit.topic, emit.key, emit.partition
            if topic not in gate.declared or len(value) > limit // 2:  # else nothing to check
                now = now or self.clock()
                where = source(emit.source, (self.pipeline.topics.survey_responses, -1, -1))
                topic, key, value, headers = await gate.admit(topic, key, value, headers, where, now)
                if topic != emit.topic:
                    partition = None
            outputs.add(topic, partition, key, value, headers)
        if self.windows is not None:
            self.windows.save(result.windows, outputs)
        customers = self.outbox()
        self.store.save(result.dirty, customers)
        if self.held is not None:
            wait = self.pipeline.ticket_wait_s
            for cid, (partition, state) in result.dirty.items():
                if state.held:
                    self.held[cid] = partition
                    self.due[cid] = min(h[1] for h in state.held) + wait
                else:
                    self.held.pop(cid, None)
                    self.due.pop(cid, None)
                self.requested.pop(cid, None)  # its state as of now is known: ask again when due
        # The deliveries below keep only the counts and the alerts' cause times: the batch's
        # documents and customer states (their records are built) are freed now, not when the
        # broker answers. Up to four batches are on their way; kept alive, their objects
        # made every garbage collection meanwhile traverse them (a 2,000-record batch is
        # ~40k objects).
        causes = [e.cause_timestamp for e in result.emits if e.cause_timestamp is not None]
        counts = replace(result, emits=[], dirty={}, windows=set())
        del result
        previous_first, previous = self.first, self.tail
        sent = await outputs.send()  # on its way now; one request carries it with the previous stages

        async def first() -> None:
            if previous_first is not None:
                await previous_first  # a failure before this batch is its failure too
            await outputs.wait(sent)
            self._observe_latency(causes)

        first_done = self.first = asyncio.ensure_future(first())

        async def deliver() -> None:
            await first_done
            if previous is not None:
                await previous
            await customers.deliver()
            self.metrics.observe(counts, n, time.perf_counter() - started)

        self.tail = asyncio.ensure_future(deliver())
        return self.tail

    def _observe_latency(self, causes: list[float]) -> None:
        """Alert latency: from the cause's record timestamp to the alert's acknowledgement."""
        now = time.time()
        for cause in causes:
            self.metrics.alert_latency.observe(max(0.0, now - cause))


def install_intake(app: StageRuntime, settings: Settings) -> tuple[IntakeAgent, Send, OutputGate]:
    """Declare the intake topics and table on ``app`` and register the batch agent.

    Returns the agent, a ``send`` for other stages, and the gate their outputs pass
    (it creates a queue's topic on first use).
    """
    inputs = app.topic(
        settings.survey_responses_topic,
        settings.ticket_events_topic,
        settings.customer_profiles_topic,
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
        "customers",
        "Per-customer state: tickets, profile and recent answers (orjson documents).",
        by_key(settings.partitions),
    )
    pipeline = pipeline_from(settings)

    async def declare(topic: str) -> None:
        """Create a queue first used now (rules may name queues by team)."""
        await app.within("topic creation", app.topic(topic, partitions=settings.partitions).declare())
        # its metadata, so records with a key can be placed on their partition
        await app.within("topic metadata", app.kafka_producer().partitions_for(topic))

    gate = OutputGate(
        settings.dlq_topic, settings.max_message_bytes, app.metrics, declare, service_topics(settings)
    )

    async def send(
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        return await app.producer.send(topic, key, value, partition, None, headers)

    windows_table = app.state_table(
        "windows",
        "Per-partition rolling-window buckets and watermarks (orjson documents).",
        window_key_partition,
    )
    windows = WindowStore(windows_table, settings.window_specs(), settings.late_grace_s)

    async def _warm_windows() -> None:
        found = app.recovered(windows_table)
        if found is not None:  # (else a newer assignment's recovery calls back when done)

            async def warm() -> None:
                loaded = await windows.warm(*found)
                if loaded:
                    log.info("Windows of partitions %s loaded ahead of their first batch", sorted(loaded))

            app.background("loading the windows of new partitions", warm())

    windows_table.on_recover(_warm_windows)
    agent = IntakeAgent(
        pipeline,
        CustomerStore(table),
        app.outbox,
        app.metrics,
        windows=windows,
        gate=gate,
    )
    app.batch_agent(inputs, rekey)(agent)

    async def _forget(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        try:
            await agent.drain()  # what was handed over goes out before another worker takes over
        except Exception:  # the consumer raises it when it settles the batch
            log.warning("a delivery failed while partitions were revoked", exc_info=True)
        windows.forget({tp.partition for tp in revoked if tp.topic in app.batch_handlers})
        agent.forget_held()

    app.on_partitions_revoked.connect(_forget)

    @app.timer(max(0.5, settings.ticket_wait_s / 4), name="release-held-surveys")
    async def _release() -> None:
        await agent.release_held()

    return agent, send, gate
