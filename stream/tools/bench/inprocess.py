"""In-process measurements for ``survey-alerts bench``: where the per-event time goes, no broker.

Both run over the same generated events as the rest of the bench, placed on their
partitions as Kafka's default partitioner places them, in batches of the worker's
``max_poll_records``:

* ``intake``: the real ``IntakeAgent`` (validation, customer state, windows,
  detection, suppression, routing, escalations, follow-ups, metrics) with a
  producer that builds every Kafka record batch and sends none. What the worker
  does per event minus the Kafka client and Faust's consumer around it.
* ``floor``: only what any implementation of the service on its libraries must
  do per event: decode and validate (the hot path's ``msgspec`` structs, one call
  from bytes to a checked survey or ticket), find the customer's partition, load
  and update the customer's state, and write it back with its changelog record
  (one per changed customer per batch). No windows, detection,
  outputs or metrics. Its rate bounds what a worker could do in Python with those
  libraries, before any Kafka I/O.
"""

from __future__ import annotations

import asyncio
import gc
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any, NamedTuple

from aiokafka.producer.message_accumulator import BatchBuilder

from agents.intake import IntakeAgent
from alerts.customer import CustomerState
from schemas.fast import FastSurvey, FastTicket, decode_survey, decode_ticket
from stream.kafka.partitioning import owner_function, partition_for
from stream.metrics import Metrics
from stream.pipeline import pipeline_from
from stream.settings import Settings
from stream.worker.app import tune_runtime
from stream.worker.delivery import Records
from stream.worker.state import CustomerStore, MemoryTable, WindowStore

FLOOR_STAGES = ("decode", "partition", "state", "changelog")  # decode: bytes to a validated struct


class Message(NamedTuple):
    """A consumed record as the batch agent sees it."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    timestamp: float


class BuildOnlyProducer:
    """A producer that builds record batches as aiokafka's does and sends nothing."""

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(1 << 20, 0, is_transactional=False)

    async def send_batch(self, batch: BatchBuilder, topic: str, partition: int) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    async def send(self, topic: str, value: bytes | None, **kwargs: Any) -> asyncio.Future[None]:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def placed(
    items: Iterable[tuple[str, bytes | None, bytes]], partitions: int, start: float, rate: float
) -> list[Message]:
    """``(topic, key, value)`` items as consumed records: Kafka's partition, offsets and timestamps.

    The timestamps are those a producer sending ``rate`` items a second from ``start``
    would stamp, in Kafka's milliseconds: the agent orders a batch's topics by them, so
    that a survey meets the ticket events sent before it.
    """
    offsets: dict[tuple[str, int], int] = {}
    out = []
    for i, (topic, key, value) in enumerate(items):
        p = partition_for(key, partitions) if key is not None else 0
        o = offsets.get((topic, p), 0)
        offsets[(topic, p)] = o + 1
        out.append(Message(topic, p, o, key, value, (), int((start + i / rate) * 1000) / 1000))
    return out


def batches(messages: list[Message], size: int) -> Iterable[list[Message]]:
    """Consecutive batches of ``size``, each grouped by topic-partition as a fetch returns them."""
    for i in range(0, len(messages), size):
        yield sorted(messages[i : i + size], key=lambda m: (m.topic, m.partition))


@contextmanager
def as_in_a_worker() -> Iterator[None]:
    """The interpreter tuned as a worker's (``tune_runtime``) for the block, then as it was."""
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.collect()
    tune_runtime()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


def intake(settings: Settings, messages: list[Message]) -> tuple[float, Metrics]:
    """The real intake agent over ``messages``; returns events/s and the agent's metrics."""
    partitions = settings.partitions
    producer = BuildOnlyProducer()
    windows = WindowStore(MemoryTable("windows-changelog"), settings.window_specs(), settings.late_grace_s)
    metrics = Metrics()
    agent = IntakeAgent(
        pipeline_from(settings),
        CustomerStore(MemoryTable("customers-changelog")),
        lambda: Records(producer, lambda topic: partitions),
        metrics,
        windows=windows,
    )

    async def run() -> float:
        started = time.perf_counter()
        for batch in batches(messages, settings.max_poll_records):
            await agent(batch)  # type: ignore[arg-type]  # the fields a faust Message has
        await agent.drain()
        return time.perf_counter() - started

    with as_in_a_worker():
        seconds = asyncio.run(run())
    return len(messages) / seconds, metrics


class Floor(NamedTuple):
    """What ``floor`` measured, and the state it built."""

    events_per_s: float
    us_per_event: dict[str, float]  # each of ``FLOOR_STAGES``
    store: CustomerStore
    records: int  # changelog records written


def floor(settings: Settings, messages: list[Message]) -> Floor:
    """The unavoidable per-event work (see the module's docstring)."""
    partitions = settings.partitions
    owner: Callable[[str], int] = owner_function(partitions)
    store = CustomerStore(MemoryTable("customers-changelog"))
    producer = BuildOnlyProducer()
    decoders: dict[str, Callable[[bytes], FastSurvey | FastTicket | None]] = {
        settings.survey_responses_topic: decode_survey,
        settings.ticket_events_topic: decode_ticket,
    }
    spent = dict.fromkeys(FLOOR_STAGES, 0.0)
    records = 0
    clock = time.perf_counter
    with as_in_a_worker():
        started = clock()
        for batch in batches(messages, settings.max_poll_records):
            dirty: dict[str, tuple[int, CustomerState]] = {}
            for m in batch:
                t0 = clock()
                event = decoders[m.topic](m.value) if m.value else None
                t2 = clock()
                spent["decode"] += t2 - t0
                if event is None:
                    continue  # refused (the worker asks pydantic why: a dead letter's cost)
                cid = event.customer_id
                partition = owner(cid)
                t3 = clock()
                spent["partition"] += t3 - t2
                known = dirty.get(cid)
                state = known[1] if known else (store.load(cid) or CustomerState())
                if isinstance(event, FastTicket):
                    state.apply_ticket_event(event)
                else:
                    state.record_answer(event)
                dirty[cid] = (partition, state)
                spent["state"] += clock() - t3
            t4 = clock()
            out = Records(producer, lambda topic: partitions)
            store.save(dirty, out)
            spent["changelog"] += clock() - t4
            records += out.count
        seconds = clock() - started
    n = len(messages)
    return Floor(n / seconds, {k: round(v / n * 1e6, 2) for k, v in spent.items()}, store, records)
