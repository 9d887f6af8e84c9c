"""The worker's Faust app: batch agents, changelog tables with sweeps, outputs, readiness.

``SurveyApp`` implements ``stream.worker.runtime.StageRuntime``, the interface the stages in
``agents`` are written against; ``stream.worker.main`` builds it and installs them.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import faust
from faust.stores.memory import Store as MemoryStore

from stream.deadline import Deadlines
from stream.metrics import Metrics
from stream.settings import Settings
from stream.watchdog import Offsets, Watchdog
from stream.worker.batching import BatchHandler, BatchTransport
from stream.worker.delivery import Records
from stream.worker.sweep import PartitionOf, sweep

log = logging.getLogger(__name__)
T = TypeVar("T")


class SurveyApp(faust.App):
    """A Faust app whose consumer hands batch agents whole batches (see ``stream.worker.batching``)."""

    def __init__(self, *args: Any, settings: Settings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.metrics = metrics
        self.batch_handlers: dict[str, BatchHandler] = {}
        self.raw_tables: list[Any] = []  # restored by the batch consumer (see stream.worker.batching)
        self.sweeps: dict[str, asyncio.Future[None]] = {}  # table name -> its running sweep
        # table name -> the consumer generation whose recovery it last completed
        self._recovered_in: dict[str, int] = {}
        self._background: set[asyncio.Future[Any]] = set()
        self.deadlines = Deadlines(settings.broker_deadline_s, registry=metrics.registry)

    def state_table(self, name: str, help: str, partition_of: PartitionOf) -> Any:
        """A changelog-backed table of orjson documents, partitioned like the inputs.

        ``partition_of(key)`` is the changelog partition its writers give ``key``: after
        each rebalance the keys of partitions this worker no longer has are dropped.
        """
        table = self.Table(
            name, partitions=self.settings.partitions, key_type=bytes, value_type=bytes, help=help
        )
        self.raw_tables.append(table)

        async def recovered() -> None:
            self._start_sweep(table, partition_of)

        table.on_recover(recovered)
        return table

    def recovered(self, table: Any) -> tuple[set[int], Callable[[], bool]] | None:
        """In a table's recover callback: its partitions now, and whether that assignment is still current.

        None when a newer assignment came before its recovery began (that recovery
        calls back again once it is done).
        """
        recovery = cast(Any, self.tables).recovery
        tps = recovery.actives_for_table.get(table, set()) | recovery.standbys_for_table.get(table, set())
        generation = self.consumer_generation_id
        if getattr(recovery, "_generation_id", generation) != generation:
            return None
        return {tp.partition for tp in tps}, lambda: self.consumer_generation_id == generation

    def _start_sweep(self, table: Any, partition_of: PartitionOf) -> None:
        """Drop ``table``'s keys of partitions given away, a slice at a time (``stream.worker.sweep``)."""
        if not isinstance(table.data, MemoryStore):
            self._recovered_in[table.name] = self.consumer_generation_id
            return  # other stores keep their partitions themselves
        running = self.sweeps.pop(table.name, None)
        if running is not None:
            running.cancel()  # of an earlier assignment
        found = self.recovered(table)
        if found is None:
            return
        self._recovered_in[table.name] = self.consumer_generation_id
        owned, current = found
        if len(owned) >= self.settings.partitions:
            return  # every partition is this worker's: nothing to drop

        async def run() -> None:
            try:
                dropped = await sweep(table.data.data, owned, partition_of, current)
            except Exception:  # a key its table's partition_of cannot place: a bug, said loudly
                log.exception("Table %s: sweep failed; keys of partitions given away stay", table.name)
                return
            finally:
                if self.sweeps.get(table.name) is task:
                    del self.sweeps[table.name]
            if dropped:
                log.info("Table %s: dropped %d keys of partitions given away", table.name, dropped)

        task = self.sweeps[table.name] = asyncio.ensure_future(run())

    def background(self, what: str, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``coro`` beside the agents (kept referenced); a failure is logged as ``what`` failing."""
        task = asyncio.ensure_future(coro)
        self._background.add(task)

        def done(t: asyncio.Future[Any]) -> None:
            self._background.discard(t)
            if not t.cancelled() and t.exception() is not None:
                log.error("%s failed", what, exc_info=t.exception())

        task.add_done_callback(done)
        return task

    def settled(self, table: Any) -> bool:
        """Whether ``table`` holds exactly this worker's partitions: restored for the current
        assignment and cleared of the keys of partitions given away.

        False from a rebalance until then, including the moments between the assignment
        and the start of recovery and between its end and the sweep (``in_recovery`` is
        false in both).
        """
        return self._recovered_in.get(table.name) == self.consumer_generation_id and (
            table.name not in self.sweeps
        )

    def kafka_producer(self) -> Any:
        """The aiokafka producer under Faust's (started with the app)."""
        return cast(Any, self.producer)._ensure_producer()

    def outbox(self) -> Records:
        """A fresh delivery stage: records grouped into one Kafka record batch per partition."""
        return Records(self.kafka_producer(), within=self.deadlines.within)

    async def within(self, operation: str, waiting: Awaitable[T]) -> T:
        """``await waiting`` within the broker deadline; past it the worker exits for a restart."""
        return await self.deadlines.within(operation, waiting)

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def batch_agent(self, *topics: faust.types.TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register ``handler(messages)`` for every batch of records of ``topics``.

        The handler runs inside the consumer's drain loop; when it returns, the
        messages are acked and Faust commits them. If it raises, nothing is acked
        and the worker stops, so the batch is processed again (at least once).
        """

        def register(handler: BatchHandler) -> BatchHandler:
            for topic in topics:
                self.topics.add(topic)  # subscribe, with no per-message agent
                for name in topic.topics:
                    if name in self.batch_handlers:
                        raise ValueError(f"topic {name!r} already has a batch agent")
                    self.batch_handlers[name] = handler
            return handler

        return register


class Readiness:
    """``/ready``: tables recovered, partitions assigned, and the broker answering a metadata request."""

    def __init__(self, app: SurveyApp, watchdog: Watchdog | None = None) -> None:
        self.app = app
        self.watchdog = watchdog
        self.checked_at = 0.0
        self.reachable = False

    async def check(self) -> dict[str, Any]:
        app = self.app
        now = time.monotonic()
        if now - self.checked_at > 5:  # a probe every second must not become a metadata storm
            self.checked_at = now
            try:
                client = app.kafka_producer().client
                self.reachable = bool(await asyncio.wait_for(client.force_metadata_update(), 5))
            except Exception:  # not started yet, or the broker is away
                self.reachable = False
        try:
            assigned = len(app.consumer.assignment())
        except Exception:
            assigned = 0
        recovering = bool(app.in_recovery)
        stalled = self.watchdog is not None and self.watchdog.stalled
        return {
            "ready": self.reachable and assigned > 0 and not recovering and not stalled,
            "broker_reachable": self.reachable,
            "partitions_assigned": assigned,
            "recovering": recovering,
            "stalled": stalled,
        }


def tune_runtime() -> None:
    """The interpreter settings a worker runs with, once everything long-lived is loaded.

    Everything imported and declared so far lives as long as the worker: keep it out of
    the collector's scans, and collect young objects less often (a batch allocates tens of
    thousands of short-lived ones). Measured on the pipeline alone: +8-15% events/s.
    The consumer thread parses fetches while this thread runs the pipeline; a shorter
    switch interval gets the GIL back sooner (measured: +4% surveys/s and a lower p50 at
    5k/s).
    """
    sys.setswitchinterval(0.0005)
    gc.freeze()
    gc.set_threshold(50_000, 20, 50)


def worker_watchdog(app: SurveyApp) -> Watchdog:
    """The worker's progress watchdog over the partitions of its batch agents' topics."""

    async def read() -> tuple[Offsets, Offsets] | None:
        if app.in_recovery:
            return None  # restoring state from changelogs is progress of its own
        consumer = cast(Any, app.consumer)
        return cast(tuple[Offsets, Offsets], consumer.committed_and_ends(app.batch_handlers))

    s = app.settings
    return Watchdog("The worker", read, s.stall_s, s.stall_restart_s, registry=app.metrics.registry)
