"""Intake: survey responses and ticket events in; alerts, dead letters and state out.

One batch agent consumes both input topics and the re-key topic. Each batch goes
through ``alerts.pipeline.Pipeline`` (validation, customer state, detection);
this module only does the I/O around it and waits until the broker has every
output of the batch before the batch's offsets can be committed.
"""

from __future__ import annotations

import asyncio
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
from stream.state import Changelog, CustomerStore, WindowStore
from stream.topics import service_topics

if TYPE_CHECKING:
    from stream.app import SurveyApp

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
    """Process one consumer batch: validate, update state, detect, produce."""

    def __init__(
        self,
        pipeline: Pipeline,
        store: CustomerStore,
        send: Send,
        metrics: Metrics,
        clock: Callable[[], datetime] = utc_now,
        windows: WindowStore | None = None,
    ) -> None:
        self.pipeline = pipeline
        self.store = store
        self.windows = windows
        self.lock = asyncio.Lock()  # batches and the held-survey timer take turns
        self.held: dict[str, int] | None = None  # customers with held surveys -> partition
        self.send = send
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, messages: Sequence[Message]) -> None:
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
            await self._deliver(result)
        self.metrics.observe(result, len(records), time.perf_counter() - started)

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
            await self._deliver(result)
        self.metrics.observe(result, 0, 0.0)

    async def _deliver(self, result: BatchResult) -> None:
        # Crash safety without transactions: outputs first, then the window buckets
        # (which remember the offsets they hold), then the customers. Whatever a crash
        # cuts off, a replay of the batch re-sends outputs with the same ids, and
        # neither counts a window twice nor forgets an alert it has not delivered.
        pending = [await self._send(e) for e in result.emits]
        if pending:
            await asyncio.gather(*pending)  # raises if the broker refused any output
        if self.windows is not None:
            written = await self.windows.save(result.windows)
            if written:
                await asyncio.gather(*written)
        saved = await self.store.save(result.dirty)
        if saved:
            await asyncio.gather(*saved)  # a refused state write fails the batch: it is not acked
        if self.held is not None:
            for cid, (partition, state) in result.dirty.items():
                if state.held:
                    self.held[cid] = partition
                else:
                    self.held.pop(cid, None)
        self._observe_latency(result.emits)
        self.metrics.customers.set(len(self.store))

    async def _send(self, emit: Emit) -> Any:
        value = emit.value if isinstance(emit.value, bytes) else orjson.dumps(emit.value)
        headers = emit.headers if isinstance(emit.value, bytes) else [VERSION_HEADER]
        return await self.send(emit.topic, emit.key, value, emit.partition, headers)

    def _observe_latency(self, emits: list[Emit]) -> None:
        now = time.time()
        for e in emits:
            if e.cause_timestamp is not None:
                self.metrics.alert_latency.observe(max(0.0, now - e.cause_timestamp))


def install_intake(app: SurveyApp, settings: Settings) -> IntakeAgent:
    """Declare the intake topics and table on ``app`` and register the batch agent."""
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

    async def send(
        topic: str,
        key: bytes | None,
        value: bytes,
        partition: int | None,
        headers: list[tuple[str, bytes]],
    ) -> Any:
        if topic not in declared:  # a queue first used now (rules may name queues by team)
            await app.topic(topic, partitions=settings.partitions).declare()
            declared.add(topic)
        return await app.producer.send(topic, key, value, partition, None, headers)

    windows_table = app.state_table(
        "windows", "Per-partition rolling-window buckets and watermarks (orjson documents)."
    )
    windows = WindowStore(
        windows_table,
        settings.window_specs(),
        settings.late_grace_s,
        Changelog(windows_table, lambda: app.producer),
    )
    agent = IntakeAgent(
        pipeline,
        CustomerStore(table, Changelog(table, lambda: app.producer)),
        send,
        app.metrics,
        windows=windows,
    )
    app.batch_agent(inputs, rekey)(agent)

    async def _forget(sender: Any, revoked: set[Any], **kwargs: Any) -> None:
        windows.forget({tp.partition for tp in revoked if tp.topic in app.batch_handlers})

    app.on_partitions_revoked.connect(_forget)  # type: ignore[arg-type]

    @app.timer(max(0.5, settings.ticket_wait_s / 4), name="release-held-surveys")  # type: ignore[untyped-decorator]
    async def _release() -> None:
        await agent.release_held()

    return agent
