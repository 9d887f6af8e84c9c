"""The runtime the worker's stages are written against: a ``Protocol``, nothing concrete.

``agents`` import this interface, never the app that implements it (``stream.worker.app``)
nor the composition root that installs them (``stream.worker.main``): the dependency runs
one way, from the root to the stages to this interface. Faust is untyped, so Faust objects
(topics, tables, the consumer, the signals) are ``Any`` here.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol, TypeVar

from stream.metrics import Metrics
from stream.settings import Settings
from stream.worker.batching import BatchHandler
from stream.worker.delivery import Records
from stream.worker.sweep import PartitionOf

T = TypeVar("T")
Timer = Callable[[Callable[[], Awaitable[None]]], Any]


class StageRuntime(Protocol):
    """What a stage may use of the worker: topics, tables, batch agents, outputs, timers, signals."""

    settings: Settings
    metrics: Metrics

    @property
    def batch_handlers(self) -> Mapping[str, BatchHandler]:
        """The batch handler of each subscribed topic."""

    @property
    def in_recovery(self) -> Any:
        """Truthy while tables are being restored from their changelogs."""

    @property
    def consumer(self) -> Any:
        """The Kafka consumer (``assignment()`` is this worker's partitions)."""

    @property
    def producer(self) -> Any:
        """Faust's producer (``send`` returns a future of the record's metadata)."""

    @property
    def on_partitions_assigned(self) -> Any:
        """Signal sent after a rebalance gave partitions (``connect(async handler)``)."""

    @property
    def on_partitions_revoked(self) -> Any:
        """Signal sent when a rebalance takes partitions away."""

    @property
    def topic(self) -> Callable[..., Any]:
        """``topic(*names, **options)``: a Faust topic (declared with ``await topic.declare()``)."""

    def timer(self, interval: float, name: str) -> Timer:
        """Decorator: run an async function every ``interval`` seconds beside the agents."""

    def state_table(self, name: str, help: str, partition_of: PartitionOf) -> Any:
        """A changelog-backed table of bytes, partitioned like the inputs."""

    def recovered(self, table: Any) -> tuple[set[int], Callable[[], bool]] | None:
        """In a table's recover callback: its partitions, and whether that assignment is current."""

    def background(self, what: str, coro: Awaitable[Any]) -> asyncio.Future[Any]:
        """Run ``coro`` beside the agents; a failure is logged as ``what`` failing."""

    def settled(self, table: Any) -> bool:
        """Whether ``table`` holds exactly this worker's partitions (restored and swept since the
        last rebalance)."""

    def kafka_producer(self) -> Any:
        """The aiokafka producer under Faust's."""

    async def within(self, operation: str, waiting: Awaitable[T]) -> T:
        """``await waiting`` within the broker deadline (past it the worker exits for a restart)."""

    def outbox(self) -> Records:
        """A fresh delivery stage: records grouped into one Kafka record batch per partition."""

    def batch_agent(self, *topics: Any) -> Callable[[BatchHandler], BatchHandler]:
        """Register a handler for every batch of records of ``topics``."""
