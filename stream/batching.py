"""Batches below Faust's per-message path, while Faust still owns the worker.

Faust's drain loop hands every message to the conductor through two tasks
(``wait_first(callback(msg), suspend_flow.wait())``), which caps a worker near
7k events/s. ``BatchConsumer`` keeps Faust's group membership, assignment,
flow control, offsets and commits, but hands each ``getmany`` batch of the
topics that have a *batch agent* to that agent in one call, then acks the
messages so Faust commits them. Topics without a batch agent take Faust's
ordinary path, so ordinary agents, tables and changelogs keep working.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, cast

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message
from mode import Service

BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


class BatchConsumer(faust_aiokafka.Consumer):
    """An aiokafka consumer whose drain loop feeds batch agents whole batches."""

    def batch_handlers(self) -> dict[str, BatchHandler]:
        """Topic name -> batch agent, as registered on the app."""
        return cast(dict[str, BatchHandler], getattr(self.app, "batch_handlers", {}))

    async def _drain_messages(self, fetcher: Any) -> None:
        handlers = self.batch_handlers()
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                generation = self.app.consumer_generation_id
                batches: dict[BatchHandler, list[Message]] = {}
                await self.sleep(0)
                if self.should_stop:
                    break
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    r_offset = read_offset[tp]
                    if r_offset is not None and offset < r_offset:
                        continue  # already seen (a seek went back): Faust drops these too
                    if r_offset is not None and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                        await self._add_gap(tp, r_offset + 1, offset)
                    handler = handlers.get(tp.topic)
                    if handler is None:
                        if tp.topic.endswith("-changelog") and self.flow_active:
                            # table recovery reads millions of these: skip the two tasks per
                            # message; a rebalance still stops this loop by cancelling it
                            await callback(message)
                        else:
                            await self.wait_first(callback(message), self.suspend_flow.wait())
                    else:
                        batches.setdefault(handler, []).append(message)
                    read_offset[tp] = offset
                if not batches:
                    continue
                if not self.flow_active or self.app.consumer_generation_id != generation:
                    # A rebalance started while fetching: these partitions may belong
                    # to another worker now. Drop the batch unacked; recovery seeks
                    # every assigned partition back to its committed offset.
                    continue
                for handler, messages in batches.items():
                    await handler(messages)
                    for message in messages:
                        self.ack(message)
                if self._commit_every is not None and self._n_acked >= self._commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            if self.transport.app.should_stop:
                return
            raise


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with ``BatchConsumer``."""

    Consumer = BatchConsumer
