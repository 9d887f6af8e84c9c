"""Batches below Faust's per-message path, while Faust still owns the worker.

Faust's drain loop hands every message to the conductor through two tasks
(``wait_first(callback(msg), suspend_flow.wait())``), which caps a worker near
7k events/s. ``BatchConsumer`` keeps Faust's group membership, assignment,
flow control, offsets and commits, but hands each ``getmany`` batch of the
topics that have a *batch agent* to that agent in one call, then acks the
messages so Faust commits them. Topics without a batch agent take Faust's
ordinary path, so ordinary agents, tables and changelogs keep working.

The same loop restores tables of raw bytes (``SurveyApp.state_table``): their
changelog records go straight into the table's dict while Faust's recovery keeps
the offsets and decides when the worker is ready.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from functools import partial
from typing import Any, cast

from faust.stores.memory import Store as MemoryStore
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message
from mode import Service
from mode.utils.futures import notify

from stream.deadline import Deadlines

# A batch agent returns None when the batch is done, or an awaitable that finishes
# when its outputs are delivered: the consumer fetches and hands over the next
# batch meanwhile, and acks each batch (in order) once its delivery is done.
BatchHandler = Callable[[Sequence[Message]], Awaitable[Awaitable[None] | None]]
InFlight = deque[tuple["asyncio.Future[None]", list[Message]]]  # one agent's batches being delivered
Unread = dict[Any, tuple[int, int]]  # partition -> first and last offset fetched and then not handled


def span(records: Sequence[Any]) -> tuple[int, int]:
    """The first and last offset of a partition's records (non-empty, in order)."""
    return records[0].offset, records[-1].offset


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, with a fetch wait fit for low latency.

    Faust hard-codes ``fetch_max_wait_ms=1500``. aiokafka leaves partitions whose
    records are still buffered out of its next fetch, so that fetch often names
    only idle partitions (say ``followup-actions``) and the broker holds it for
    the whole wait while new surveys pile up on the others: alerts came 1.5 s late
    at 5k surveys/s. A 20 ms wait costs up to ~50 empty fetches a second when idle.
    """

    fetch_max_wait_ms = 20

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        consumer._fetch_max_wait_ms = self.fetch_max_wait_ms
        return consumer

    async def rewind(self, unread: Unread) -> None:
        """Seek partitions back to records that were fetched and then not handled.

        Fetching moved each partition's position past its records. Records dropped
        because a rebalance began are normally read again after the seek that ends
        the rebalance; but a fetch can span that seek (recovery seeks the changelog
        partitions while the flow is still stopped) and come back after it, and then
        nothing reads its records again: recovery waited forever for them.
        """
        await self.call_thread(self._rewind, self._ensure_consumer(), unread)

    async def _rewind(self, consumer: Any, unread: Unread) -> None:
        rewind_positions(consumer, unread)  # on the consumer's own loop: no seek can come between


def rewind_positions(consumer: Any, unread: Unread) -> list[Any]:
    """Seek an aiokafka consumer's partitions back to ``first`` where still past ``last``.

    A position at or before ``last`` means a seek since the fetch, which reads those
    records again anyway. One past them is the fetch's own (or a seek past them:
    those records then come again and are skipped as already seen). Must run on the
    consumer's event loop. Returns the partitions it moved back.
    """
    subscription = consumer._subscription.subscription
    assignment = subscription.assignment if subscription is not None else None
    if assignment is None:
        return []
    moved = []
    for tp, (first, last) in unread.items():
        state = assignment.state_value(tp)
        if state is not None and state.has_valid_position and state.position > last:
            consumer.seek(tp, first)
            moved.append(tp)
    return moved


class BatchConsumer(faust_aiokafka.Consumer):
    """An aiokafka consumer whose drain loop feeds batch agents whole batches."""

    max_in_flight = 4  # batches handed over whose outputs are still on their way

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        deadlines: Deadlines | None = getattr(self.app, "deadlines", None)
        if deadlines is None:
            return bool(await super()._commit(offsets))
        return bool(await deadlines.within("offset commit", super()._commit(offsets)))

    def committed_and_ends(self, topics: Iterable[str]) -> tuple[dict[Any, int], dict[Any, int]]:
        """For the watchdog: committed and end offsets of this worker's partitions of ``topics``."""
        wanted = set(topics)
        committed: dict[Any, int] = {}
        ends: dict[Any, int] = {}
        for tp in self.assignment():
            if tp.topic not in wanted:
                continue
            end, done = self.highwater(tp), self._committed_offset.get(tp)
            if end is None or done is None:
                # not fetched yet, or never committed by this group (its start is unknown here:
                # an emptied partition would look like a backlog forever); the deadlines on
                # flush and commit still bound that first commit
                continue
            ends[tp], committed[tp] = end, done
        return committed, ends

    def batch_handlers(self) -> dict[str, BatchHandler]:
        """Topic name -> batch agent, as registered on the app."""
        return cast(dict[str, BatchHandler], getattr(self.app, "batch_handlers", {}))

    def restorable(self) -> dict[str, dict[bytes, bytes]]:
        """Changelog topic -> the dict behind its table, for tables of raw bytes in memory."""
        tables = getattr(self.app, "raw_tables", ())
        return {
            t.changelog_topic.get_topic_name(): cast(dict[bytes, bytes], t.data.data)
            for t in tables
            if isinstance(t.data, MemoryStore)  # other stores keep their own offsets
        }

    async def _signal_restored(self, restored: dict[Any, tuple[Message, int]]) -> None:
        """Let Faust's recovery see the progress of records applied by the drain loop.

        Recovery decides that it is done (and resumes the streams) when it handles
        a changelog event. It gets one per partition per batch: a copy of the last
        record applied with offset -1, which it skips as already seen (the offsets
        were advanced above) before checking whether every partition is restored.
        """
        metrics = getattr(self.app, "metrics", None)
        for tp, (m, n) in restored.items():
            if metrics is not None:
                metrics.restored.labels(tp.topic).inc(n)
            if not self.flow_active:
                continue  # a rebalance began: recovery starts over once it is done
            args = (m.timestamp, m.timestamp_type, m.headers, m.key, m.value, None)
            # Faust's changelog queue blocks while the flow is suspended: a rebalance that
            # starts now must not leave this loop waiting on it (that deadlocked a restart)
            poke = Message(m.topic, m.partition, -1, *args, tp=tp)
            await self.wait_first(self.callback(poke), self.suspend_flow.wait())

    def _ack_delivered(self, queue: InFlight, _done: object = None) -> None:
        """Ack the batches at the head of ``queue`` whose outputs are delivered (also a done callback)."""
        while queue:
            delivered, messages = queue[0]
            if not delivered.done() or delivered.cancelled() or delivered.exception() is not None:
                return  # a failure is raised by ``_settle``: it stops the worker with nothing acked
            queue.popleft()
            self.ack_batch(messages)

    async def _settle(self, in_flight: dict[BatchHandler, InFlight], limit: int) -> None:
        """Ack delivered batches, oldest first per agent; wait while an agent has over ``limit``.

        Each batch agent has its own queue: their topics differ, so one agent's slow
        batch (a merge of partials after a backlog) does not hold up another's.
        """
        for queue in in_flight.values():
            self._ack_delivered(queue)
            while queue and (queue[0][0].done() or len(queue) > limit):
                delivered, messages = queue.popleft()
                await delivered  # a failed delivery stops the worker with nothing acked
                self.ack_batch(messages)

    def ack_batch(self, messages: Sequence[Message]) -> None:
        """``ack`` every message of a batch: Faust's bookkeeping, done once per partition.

        The same state as calling ``Consumer.ack`` per message (acked flags, the acked
        offsets and their index, the count that triggers a commit), which costs a lock,
        a topic lookup and a notification per message.
        """
        if not messages:
            return
        acks_enabled_for = self.app.topics.acks_enabled_for
        by_tp: dict[Any, list[int]] = {}
        for message in messages:
            if not message.acked:
                message.acked = True
                by_tp.setdefault(message.tp, []).append(message.offset)
        added = 0
        for tp, offsets in by_tp.items():
            if not acks_enabled_for(tp.topic):
                continue
            committed = self._committed_offset[tp]
            index = self._acked_index[tp]
            acked = self._acked[tp]
            for offset in offsets:
                if (committed is None or offset >= committed) and offset not in index:
                    index.add(offset)
                    acked.append(offset)
                    added += 1
        self._n_acked += added
        notify(self._waiting_for_ack)

    async def fetch(self, timeout: float) -> tuple[int, list[tuple[Any, list[Message]]]]:
        """One fetch's messages per topic-partition (Faust's ``getmany``, a partition at a time).

        ``getmany`` is an async generator that, per message, yields, looks up the
        partition's high-water mark and reports it to the monitor; here that is done
        once per partition. Like ``getmany``, it returns nothing while the flow is
        suspended (after seeking back to the committed offsets) and drops partitions
        no longer active. Also returns the consumer generation the records belong to:
        the one after the wait, as ``getmany`` (a fetch that spans a rebalance brings
        the records recovery asked for, which must not be dropped).
        """
        records, active = await self._wait_next_records(timeout)
        generation = self.app.consumer_generation_id
        if records is None or self.should_stop:
            return generation, []
        if not self.flow_active:
            await self.rewind({tp: span(rs) for tp, rs in records.items() if rs})
            try:
                await self.perform_seek()
            except Exception as exc:  # as Faust's getmany: the next rebalance seeks again
                self.log.warning(f"exception performing seek when flow not active {exc}")
            return generation, []
        to_message = self._to_message
        track = self.app.monitor.track_tp_end_offset
        observe = cast(Any, self.app).metrics.observe_fetch
        handlers = self.batch_handlers()
        out: list[tuple[Any, list[Message]]] = []
        paused: Unread = {}
        for tp, batch in records.items():
            if active is not None and tp not in active and tp not in self._buffered_partitions:
                if batch:
                    paused[tp] = span(batch)
                continue
            highwater = self.highwater(tp)
            track(tp, highwater)
            if batch and tp.topic in handlers:
                observe(tp.topic, tp.partition, highwater, batch[-1])
            out.append((tp, [to_message(tp, record) for record in batch]))
        if paused:
            await self.rewind(paused)
        return generation, out

    async def rewind(self, unread: Unread) -> None:
        """Fetch again records that were fetched and then not handled (``BatchConsumerThread.rewind``)."""
        if unread:
            self.log.info("Fetching again %d partition(s) whose records were not handled", len(unread))
            await cast(BatchConsumerThread, self._thread).rewind(unread)

    async def _drain_messages(self, fetcher: Any) -> None:
        handlers = self.batch_handlers()
        callback = self.callback
        consumer_should_stop = cast(Service, self)._stopped.is_set
        fetcher_should_stop = cast(Service, fetcher)._stopped.is_set
        read_offset = self._read_offset
        acks_enabled_for = self.app.topics.acks_enabled_for
        recovery = cast(Any, self.app.tables).recovery
        active_offsets, standby_offsets = recovery.active_offsets, recovery.standby_offsets
        restorable = self.restorable()
        restored: dict[Any, tuple[Message, int]] = {}
        in_flight: dict[BatchHandler, InFlight] = {}
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                batches: dict[BatchHandler, list[Message]] = {}
                await self.sleep(0)
                if self.should_stop:
                    break
                fetched, found = await self.fetch(timeout=1.0)
                unread: Unread = {}  # dropped because a rebalance began: to be fetched again
                read_before: dict[Any, int | None] = {}  # partitions of ``batches``: read offset before
                for i, (tp, messages) in enumerate(found):
                    if not self.flow_active or self.app.consumer_generation_id != fetched:
                        # a rebalance began since the fetch: as Faust's getmany, stop here
                        unread.update((t, span(m)) for t, m in found[i:])
                        break
                    handler = handlers.get(tp.topic)
                    kept: list[Message] = []  # this partition's records for its batch agent
                    r_before = read_offset[tp]
                    if (
                        handler is not None
                        and messages
                        and (r_before is None or messages[0].offset == r_before + 1)
                        and messages[-1].offset - messages[0].offset == len(messages) - 1
                    ):
                        # the usual fetch: right after what was read, no gap, nothing seen before;
                        # the loop below would keep every record and find no gap
                        kept = list(messages)
                        read_offset[tp] = messages[-1].offset
                        messages = []
                    for message in messages:
                        offset = message.offset
                        r_offset = read_offset[tp]
                        if r_offset is not None and offset < r_offset:
                            continue  # already seen (a seek went back): Faust drops these too
                        if r_offset is not None and offset - r_offset > 1 and acks_enabled_for(tp.topic):
                            await self._add_gap(tp, r_offset + 1, offset)
                        if handler is not None:
                            kept.append(message)
                        else:
                            data = restorable.get(tp.topic)
                            offsets = None
                            if data is not None:
                                if tp in recovery.active_tps:
                                    offsets = active_offsets
                                elif tp in recovery.standby_tps:
                                    offsets = standby_offsets
                            if data is not None and offsets is not None:
                                # a table of raw bytes: apply the record here instead of one
                                # Faust event, one queue hop and one task per record
                                seen = offsets.get(tp)
                                if seen is None or offset > seen:
                                    offsets[tp] = offset
                                    key = cast(bytes, message.key)
                                    if message.value is None:
                                        data.pop(key, None)
                                    else:
                                        data[key] = message.value
                                    restored[tp] = (message, restored.get(tp, (message, 0))[1] + 1)
                            else:
                                await self.wait_first(callback(message), self.suspend_flow.wait())
                                if not self.flow_active or self.app.consumer_generation_id != fetched:
                                    # a rebalance began meanwhile: the rest is fetched again
                                    unread[tp] = (offset, messages[-1].offset)
                                    break
                        read_offset[tp] = offset
                    if kept:
                        batches.setdefault(cast(BatchHandler, handler), []).extend(kept)
                        read_before[tp] = r_before
                        unread[tp] = span(kept)  # until handed over
                if restored:
                    await self._signal_restored(restored)
                    restored.clear()
                if batches and self.flow_active and self.app.consumer_generation_id == fetched:
                    for tp in read_before:
                        del unread[tp]  # handed over below
                else:
                    # A rebalance began since the fetch: these partitions may belong to
                    # another worker now. Drop the batches unacked; they are read again
                    # from the committed offsets (or, without one, from where they began)
                    batches.clear()
                    read_offset.update(read_before)
                if unread:
                    await self.rewind(unread)
                if not batches:
                    await self._settle(in_flight, self.max_in_flight)  # deliveries ack themselves
                    continue
                for handler, messages in batches.items():
                    delivered = await handler(messages)
                    if delivered is None:
                        self.ack_batch(messages)
                    else:
                        queue = in_flight.setdefault(handler, deque())
                        future = asyncio.ensure_future(delivered)
                        queue.append((future, messages))
                        # acked as soon as delivered, even while this loop waits on a fetch
                        future.add_done_callback(partial(self._ack_delivered, queue))
                await self._settle(in_flight, self.max_in_flight)
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


class BoundedProducer(faust_aiokafka.Producer):
    """Faust's aiokafka producer whose ``flush`` (awaited before every offset commit) has a deadline.

    After a broker freeze aiokafka can leave a batch in flight for good, and the commit
    with it: the worker then stays alive and does nothing (``stream.deadline``).
    """

    async def flush(self) -> None:
        deadlines: Deadlines | None = getattr(self.app, "deadlines", None)
        if deadlines is None:
            await super().flush()
        else:
            await deadlines.within("producer flush before an offset commit", super().flush())


class BatchTransport(faust_aiokafka.Transport):
    """The aiokafka transport with ``BatchConsumer`` and ``BoundedProducer``."""

    Consumer = BatchConsumer
    Producer = BoundedProducer
