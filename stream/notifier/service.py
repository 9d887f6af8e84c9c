"""The notifier: output topics in, one delivery per document and destination out, at least once.

It reads ``recovery-alerts``, every ``escalations.*`` queue, ``ops-alerts`` and
``followup-events`` in its own consumer group (never the worker's hot path), routes
each document with the notify rules, and records the deliveries in its state topic
before it commits the input offsets (``stream.notifier.state``). Each destination has
a lane: at most ``concurrency`` attempts at once and ``rate_per_s`` per second.
Every attempt is logged to ``notification-deliveries``; what cannot be delivered
(rejected, retries exhausted, destination disabled, too old) goes to
``notification-dlq`` with the answer, so nothing is dropped silently.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from alerts.customer import from_epoch
from alerts.ids import stable_id
from alerts.notify.render import delivery_id, document_id, message_id
from alerts.notify.retry import Outcome, RetryPolicy
from alerts.notify.rules import GROUPED_TYPES, MAX_GROUP, Notifications, facts_of
from schemas.common import SCHEMA_VERSION, epoch_or_none, format_timestamp
from stream.destinations.senders import Delivery, Group, Sender, fingerprint
from stream.kafka.security import aiokafka_options
from stream.kafka.topics import Outputs
from stream.notifier.metrics import NotifierMetrics
from stream.notifier.state import BROKER_WAIT_S, NotifierState
from stream.settings import Settings
from stream.supervise import supervise
from stream.watchdog import ConsumerOffsets, Offsets

log = logging.getLogger(__name__)
VERSION_HEADER = ("schema-version", str(SCHEMA_VERSION).encode())
_TIMES = {"recovery_alert": "created_at", "escalation": "routed_at", "ops_alert": "created_at"}


def created_time(message_type: str, doc: dict[str, Any]) -> float | None:
    """When the document came to be (epoch seconds), for the delivery latency and the age limit."""
    return epoch_or_none(doc.get(_TIMES.get(message_type, "at")))


class Lane:
    """One destination's queue: ``parallel`` attempts at once, at most ``rate`` per second
    (a grouped message counts once)."""

    def __init__(self, rate: float, parallel: int) -> None:
        self.interval = 1.0 / rate
        self.parallel = parallel
        self.queue: deque[Delivery | Group] = deque()
        self.ready = asyncio.Event()
        self.next_slot = 0.0

    def put(self, d: Delivery | Group) -> None:
        self.queue.append(d)
        self.ready.set()

    async def take(self) -> Delivery | Group:
        while not self.queue:
            self.ready.clear()
            await self.ready.wait()
        d = self.queue.popleft()
        now = time.monotonic()
        wait = self.next_slot - now
        self.next_slot = max(now, self.next_slot) + self.interval
        if wait > 0:
            await asyncio.sleep(wait)
        return d


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, notifier: Notifier) -> None:
        self.notifier = notifier

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        self.notifier.revoke({(tp.topic, tp.partition) for tp in revoked})

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        await self.notifier.assign({(tp.topic, tp.partition) for tp in assigned})


class Notifier:
    """Consumes the output topics and delivers to the destinations the rules name."""

    def __init__(
        self,
        settings: Settings,
        notifications: Notifications,
        senders: Mapping[str, Sender],
        metrics: NotifierMetrics,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.rules = notifications
        self.senders = dict(senders)
        self.metrics = metrics
        self.clock = clock
        self.rng = rng or random.Random()
        self.policy = RetryPolicy(
            base_s=settings.notify_backoff_base_s,
            cap_s=settings.notify_backoff_max_s,
            max_attempts=settings.notify_max_attempts,
            max_age_s=settings.notify_max_age_s,
        )
        self.lanes = {n: Lane(d.rate, d.parallel) for n, d in notifications.destinations.items()}
        self.keys = {n: f"{n}:{fingerprint(s)}" for n, s in self.senders.items()}
        self.assigned: set[tuple[str, int]] = set()
        self.heap: list[tuple[float, str]] = []
        self.wake = asyncio.Event()
        self.inflight: set[str] = set()
        # deliveries due to a destination with group_s, by (destination, type, queue): until when
        # they gather, and who is in
        self.gathering: dict[tuple[str, str, str], tuple[float, list[Delivery]]] = {}
        self.producer: Any = None
        self.consumer: Any = None
        self.state: NotifierState | None = None
        self.assignments = 0
        self.ready = False
        self.progress = ConsumerOffsets()  # what is taken, for the watchdog
        self._tasks: list[asyncio.Task[None]] = []
        self._logs: set[asyncio.Future[Any]] = set()
        self.outputs = Outputs(
            settings,
            {
                "recovery_alerts_topic": "recovery_alert",
                "ops_alerts_topic": "ops_alert",
                "followup_events_topic": "followup_event",
            },
        )

    async def progress_read(self) -> tuple[Offsets, Offsets] | None:
        """Offsets taken and end offsets, for the watchdog (of the consumer running now)."""
        return await self.progress.read()

    def type_of(self, topic: str) -> str | None:
        """The message type of an input topic."""
        return self.outputs.kind_of(topic)

    # -- life cycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, read the state topic, and subscribe (deliveries start once partitions are assigned)."""
        s = self.settings
        # (again after a failure: what was queued is in the state topic, read below)
        self.assigned, self.heap, self.assignments = set(), [], 0
        self.inflight.clear()
        self.gathering.clear()
        for lane in self.lanes.values():
            lane.queue.clear()
        kafka = aiokafka_options(s)
        self.producer = AIOKafkaProducer(
            acks="all",
            max_request_size=s.max_message_bytes,
            request_timeout_ms=30_000,
            linger_ms=5,
            **kafka,
        )
        await asyncio.wait_for(self.producer.start(), BROKER_WAIT_S)
        self.state = NotifierState(s.notifier_state_topic, self.producer)
        read = await self.state.load(kafka)
        log.info(
            "Notifier state: %d records read, %d deliveries pending, %d destinations disabled",
            read,
            len(self.state.pending),
            len(self.state.disabled),
        )
        for name, key in self.keys.items():
            self.metrics.disabled.labels(name).set(1 if key in self.state.disabled else 0)
            if self.rules.destinations[name].group_s > 0:
                self.metrics.group_messages.labels(name)
                self.metrics.grouped.labels(name)
        self.consumer = AIOKafkaConsumer(
            group_id=s.notifier_group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            metadata_max_age_ms=5_000,  # new escalation queues are found within seconds
            max_poll_records=500,
            session_timeout_ms=int(s.session_timeout_s * 1000),
            heartbeat_interval_ms=int(min(3.0, s.session_timeout_s / 3) * 1000),
            **kafka,
        )
        self.consumer.subscribe(pattern=self.outputs.pattern, listener=_Rebalance(self))
        await asyncio.wait_for(self.consumer.start(), BROKER_WAIT_S)
        self.progress = ConsumerOffsets()
        self.progress.consumer = self.consumer
        self._tasks.append(asyncio.ensure_future(self._scheduler()))
        for name, dest in self.rules.destinations.items():
            for _ in range(dest.parallel):
                self._tasks.append(asyncio.ensure_future(self._lane_worker(name)))

    async def run(self, stop: asyncio.Event) -> None:
        """Start, then consume until ``stop`` is set; always closes what it opened."""
        try:
            await self.start()
            while not stop.is_set():
                batch = await self.consumer.getmany(timeout_ms=500)
                if batch:
                    await self.take(batch)
                    self.progress.finished(batch)  # recorded in the state topic: done with
                    await self._commit(batch)
                self.ready = True
        finally:
            await self.close()

    async def _commit(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Commit what was taken. A rebalance can revoke the partitions in between: not a failure,
        since the deliveries are in the state topic and a record read again is skipped."""
        try:
            await asyncio.wait_for(self.consumer.commit(self._offsets(batch)), BROKER_WAIT_S)
        except (KafkaError, TimeoutError) as exc:
            log.info(
                "Notifier: offsets not committed (%s); the records are read again and skipped",
                type(exc).__name__,
            )

    async def run_supervised(self, stop: asyncio.Event) -> None:
        """``run`` again after any failure (with a growing pause): in the worker's process, the
        notifier must never stop the worker, nor stop for good itself."""
        await supervise(self.run, stop, "The notifier", reset_after_s=300)

    async def close(self) -> None:
        self.ready = False
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._logs:
            await asyncio.wait(self._logs, timeout=10)
        for client in (self.consumer, self.producer):
            if client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(client.stop(), 30)
        for sender in self.senders.values():
            await sender.close()

    @staticmethod
    def _offsets(batch: dict[TopicPartition, list[Any]]) -> dict[TopicPartition, OffsetAndMetadata]:
        return {tp: OffsetAndMetadata(records[-1].offset + 1, "") for tp, records in batch.items() if records}

    # -- partitions -------------------------------------------------------------------------

    def revoke(self, tps: set[tuple[str, int]]) -> None:
        """Partitions went to another notifier: it resumes their pending deliveries from the state topic."""
        self.assigned -= tps

    async def assign(self, tps: set[tuple[str, int]]) -> None:
        """Partitions came: schedule their pending deliveries (after a rebalance, as others left them)."""
        assert self.state is not None
        self.assignments += 1
        if self.assignments > 1:  # another notifier may have written since this one loaded
            await self.state.load(aiokafka_options(self.settings))
        new = tps - self.assigned
        self.assigned |= tps
        resumed = 0
        for d in list(self.state.pending.values()):
            if d.source in new:
                self._schedule(d)
                resumed += 1
        log.info(
            "Notifier: %d partitions assigned (%d new), %d pending deliveries resumed",
            len(tps),
            len(new),
            resumed,
        )
        self._gauge_pending()

    # -- intake -----------------------------------------------------------------------------

    async def take(self, batch: dict[TopicPartition, list[Any]]) -> None:
        """Turn a batch of output records into deliveries, recorded before the offsets are committed."""
        assert self.state is not None
        now = self.clock()
        new: list[Delivery] = []
        letters: list[tuple[str, bytes]] = []
        finals: list[tuple[str, str]] = []
        for tp, records in batch.items():
            message_type = self.type_of(tp.topic)
            if message_type is None:
                continue
            for rec in records:
                self.metrics.consumed.labels(message_type).inc()
                doc = _document(rec.value)
                if doc is None:
                    letters.append(self._invalid(message_type, tp, rec, now))
                    continue
                created = created_time(message_type, doc)
                for dest in self.rules.route(facts_of(message_type, doc)):
                    did = delivery_id(message_type, doc, dest)
                    if self.state.known(did) or any(d.id == did for d in new):
                        continue  # read again after a restart: already recorded
                    d = Delivery(did, message_type, doc, dest, 0, now, now, (tp.topic, tp.partition), created)
                    if created is not None and now - created > self.policy.max_age_s:
                        age = f"{(now - created) / 3600:.1f} h old"
                        letters.append(self._letter(d, "expired", f"not sent: {age}", None, now))
                        finals.append((did, "expired"))
                        continue
                    new.append(d)
        if new:
            await self.state.put_pending(new)
        for did, status in finals:
            await self.state.put_final(did, status, now)
        await self._produce(self.settings.notification_dlq_topic, letters)
        for d in new:
            self._schedule(d)
        self._gauge_pending()

    def _invalid(self, message_type: str, tp: TopicPartition, rec: Any, now: float) -> tuple[str, bytes]:
        value = rec.value or b""
        doc = {
            "schema_version": SCHEMA_VERSION,
            "delivery_id": None,
            "destination": None,
            "type": message_type,
            "code": "invalid_document",
            "message": "the record is not a JSON object; nothing was delivered",
            "source_topic": tp.topic,
            "partition": tp.partition,
            "offset": rec.offset,
            "payload_size": len(value),
            "at": format_timestamp_s(now),
        }
        return stable_id("ndl", tp.topic, str(tp.partition), str(rec.offset)), orjson.dumps(doc)

    # -- scheduling and attempts ----------------------------------------------------------

    def _schedule(self, d: Delivery) -> None:
        heapq.heappush(self.heap, (d.next_at, d.id))
        self.wake.set()

    def _gauge_pending(self) -> None:
        assert self.state is not None
        counts = dict.fromkeys(self.rules.destinations, 0)
        for d in self.state.pending.values():
            if d.source in self.assigned and d.destination in counts:
                counts[d.destination] += 1
        for name, n in counts.items():
            self.metrics.pending.labels(name).set(n)

    async def _scheduler(self) -> None:
        """Hands due deliveries to their destination's lane."""
        assert self.state is not None
        while True:
            now = self.clock()
            while self.heap and self.heap[0][0] <= now:
                _, did = heapq.heappop(self.heap)
                d = self.state.pending.get(did)
                if d is None or did in self.inflight or d.source not in self.assigned or d.next_at > now:
                    continue  # done, already on its way, moved to another notifier, or rescheduled
                if d.destination not in self.lanes:
                    log.warning(
                        "A pending delivery names destination %r, no longer configured", d.destination
                    )
                    await self._final(
                        d,
                        "rejected",
                        "destination_removed",
                        "the destination is no longer in the rules file",
                        None,
                    )
                    continue
                self.inflight.add(did)
                group_s = self.rules.destinations[d.destination].group_s
                if group_s > 0 and d.type in GROUPED_TYPES:
                    key = (d.destination, d.type, str(d.doc.get("queue") or ""))
                    self.gathering.setdefault(key, (now + group_s, []))[1].append(d)
                else:
                    self.lanes[d.destination].put(d)
            self._flush_groups(now)
            self.wake.clear()
            timeout = min(1.0, self.heap[0][0] - now) if self.heap else 1.0
            if self.gathering:
                timeout = min(timeout, min(at for at, _ in self.gathering.values()) - now)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), max(0.001, timeout))

    def _flush_groups(self, now: float) -> None:
        """Hand each group whose time is up (or that is full) to its lane as one message."""
        for key, (until, members) in list(self.gathering.items()):
            if until > now and len(members) < MAX_GROUP:
                continue
            del self.gathering[key]
            live = []
            for d in members:  # a partition moved away meanwhile: the new owner sends its deliveries
                if d.source in self.assigned:
                    live.append(d)
                else:
                    self.inflight.discard(d.id)
            for i in range(0, len(live), MAX_GROUP):
                chunk = live[i : i + MAX_GROUP]
                lane = self.lanes[key[0]]
                lane.put(chunk[0] if len(chunk) == 1 else Group(key[1], key[0], chunk))

    async def _lane_worker(self, name: str) -> None:
        lane = self.lanes[name]
        while True:
            item = await lane.take()
            members = item.members if isinstance(item, Group) else [item]
            try:
                if isinstance(item, Group):
                    await self.attempt_group(item)
                else:
                    await self.attempt(item)
            except asyncio.CancelledError:
                raise
            except Exception:  # the state topic is away: try again soon, nothing is lost
                log.warning(
                    "Delivery of %d to %s: recording the outcome failed; tried again",
                    len(members),
                    name,
                    exc_info=True,
                )
                for d in members:
                    d.next_at = self.clock() + 5.0
                    self._schedule(d)
            finally:
                assert self.state is not None
                for d in members:
                    self.inflight.discard(d.id)
                    if d.id in self.state.pending:
                        # rescheduled: if it came due while the rest of its group was settled, the
                        # scheduler skipped it (in flight); offered again (a second heap entry is
                        # harmless: the scheduler hands out a delivery only when not in flight)
                        self._schedule(d)

    async def attempt(self, d: Delivery) -> Outcome | None:
        """One attempt of ``d``, and what follows from its outcome."""
        assert self.state is not None
        name = d.destination
        if self.keys[name] in self.state.disabled:
            await self._final(
                d,
                "disabled",
                "destination_disabled",
                f"destination {name} is disabled (it answered 410)",
                None,
            )
            return None
        sender = self.senders[name]
        started = time.monotonic()
        outcome = await self._try(name, sender.send(d))
        return await self._settle(d, outcome, time.monotonic() - started)

    async def attempt_group(self, g: Group) -> Outcome | None:
        """One attempt of a grouped message; each member takes its outcome as if sent alone."""
        assert self.state is not None
        name = g.destination
        if self.keys[name] in self.state.disabled:
            for d in g.members:
                await self._final(
                    d, "disabled", "destination_disabled", f"destination {name} is disabled", None
                )
            return None
        started = time.monotonic()
        outcome = await self._try(name, self.senders[name].send_group(g))
        elapsed = time.monotonic() - started
        self.metrics.grouped.labels(name).inc(len(g.members))
        self.metrics.group_messages.labels(name).inc()
        for d in g.members:
            await self._settle(d, outcome, elapsed)
        return outcome

    async def _try(self, name: str, sending: Any) -> Outcome:
        try:
            return await asyncio.wait_for(sending, self.rules.destinations[name].timeout_s + 10)
        except TimeoutError:
            return Outcome("retry", detail="the attempt did not finish in time")
        except Exception as exc:  # an adapter's bug must not stop the lane: counted and retried
            log.warning("Delivery to %s raised %s", name, type(exc).__name__, exc_info=True)
            return Outcome("retry", detail=f"{type(exc).__name__} while sending")

    async def _settle(self, d: Delivery, outcome: Outcome, elapsed: float) -> Outcome:
        """What follows from one attempt's outcome for ``d``: recorded, retried or dead-lettered."""
        assert self.state is not None
        name = d.destination
        d.attempt += 1
        now = self.clock()
        m = self.metrics
        m.deliveries.labels(name, outcome.status).inc()
        m.attempt_seconds.labels(name).observe(elapsed)
        if outcome.status == "delivered":
            self._log(d, outcome, elapsed, now)
            if d.created_at is not None:
                m.latency.labels(name).observe(max(0.0, now - d.created_at))
            await self.state.put_final(d.id, "delivered", now)
        elif outcome.status == "retry":
            next_at = now + self.policy.delay(d.attempt, outcome.retry_after, self.rng)
            if self.policy.gives_up(d.attempt, d.first_at, next_at):
                self._log(d, outcome, elapsed, now)
                why = f"gave up after {d.attempt} attempts: {outcome.detail}"
                await self._final(d, "exhausted", "retries_exhausted", why, outcome)
            else:
                d.next_at = next_at
                self._log(d, outcome, elapsed, now)
                m.retries.labels(name).inc()
                await self.state.put_pending([d])
                self._schedule(d)
        elif outcome.status == "disabled":
            self._log(d, outcome, elapsed, now)
            if self.keys[name] not in self.state.disabled:  # once, also for a group's members
                await self._disable(name, outcome, now)
            await self._final(
                d, "disabled", "destination_disabled", f"{name} answered 410: disabled", outcome
            )
        else:
            self._log(d, outcome, elapsed, now)
            await self._final(d, "rejected", "rejected", f"{name} refused it: {outcome.detail}", outcome)
        self._gauge_pending()
        return outcome

    async def _final(
        self, d: Delivery, status: str, code: str, message: str, outcome: Outcome | None
    ) -> None:
        assert self.state is not None
        now = self.clock()
        await self._produce(
            self.settings.notification_dlq_topic, [self._letter(d, code, message, outcome, now)]
        )
        await self.state.put_final(d.id, status, now)

    async def _disable(self, name: str, outcome: Outcome, now: float) -> None:
        assert self.state is not None
        key = self.keys[name]
        log.error(
            "Destination %s answered %s (gone): disabled; its messages go to %s until it is reconfigured",
            name,
            outcome.code,
            self.settings.notification_dlq_topic,
        )
        await self.state.put_disabled(key, {"at": now, "code": outcome.code})
        self.metrics.disabled.labels(name).set(1)
        sender = self.senders[name]
        alert_id = stable_id("ops", "destination_disabled", key)
        alert = {
            "schema_version": SCHEMA_VERSION,
            "alert_id": alert_id,
            "kind": "destination_disabled",
            "severity": "critical",
            "destination": name,
            "destination_kind": sender.kind,
            "status": outcome.code,
            "summary": f"{name} ({sender.kind}) answered {outcome.code} Gone; its notifications go to "
            f"{self.settings.notification_dlq_topic} until its configuration changes",
            "created_at": format_timestamp_s(now),
        }
        await self._produce(self.settings.ops_alerts_topic, [(alert_id, orjson.dumps(alert))])

    # -- records out ------------------------------------------------------------------------

    def _letter(
        self, d: Delivery, code: str, message: str, outcome: Outcome | None, now: float
    ) -> tuple[str, bytes]:
        sender = self.senders.get(d.destination)
        doc: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION,
            "delivery_id": d.id,
            "destination": d.destination,
            "destination_kind": sender.kind if sender else None,
            "type": d.type,
            "document_id": document_id(d.type, d.doc),
            "code": code,
            "message": message,
            "response": {"status": outcome.code, "detail": outcome.detail} if outcome else None,
            "attempts": d.attempt,
            "source_topic": d.source[0],
            "partition": d.source[1],
            "document": d.doc,
            "at": format_timestamp_s(now),
        }
        self.metrics.dead_letters.labels(d.destination, code).inc()
        value = orjson.dumps(doc)
        if (
            len(value) > self.settings.max_message_bytes - 4096
        ):  # it came from a topic: only the wrapper grows
            doc["document"] = None
            doc["document_truncated"] = True
            value = orjson.dumps(doc)
        return d.id, value

    def _log(self, d: Delivery, outcome: Outcome, elapsed: float, now: float) -> None:
        sender = self.senders[d.destination]
        doc = {
            "schema_version": SCHEMA_VERSION,
            "delivery_id": d.id,
            "message_id": message_id(d.id, self.settings.email_domain) if sender.kind == "email" else d.id,
            "destination": d.destination,
            "destination_kind": sender.kind,
            "type": d.type,
            "document_id": document_id(d.type, d.doc),
            "alert_id": d.doc.get("alert_id"),
            "attempt": d.attempt,
            "status": outcome.status,
            "code": outcome.code,
            "detail": outcome.detail,
            "attempt_seconds": round(elapsed, 6),
            "latency_seconds": round(now - d.created_at, 6)
            if d.created_at is not None and outcome.status == "delivered"
            else None,
            "next_attempt_at": format_timestamp_s(d.next_at)
            if outcome.status == "retry" and d.next_at > now
            else None,
            "at": format_timestamp_s(now),
        }
        future = asyncio.ensure_future(
            self._produce(self.settings.notification_deliveries_topic, [(d.id, orjson.dumps(doc))])
        )
        self._logs.add(future)

        def done(f: asyncio.Future[Any]) -> None:
            self._logs.discard(f)
            if not f.cancelled() and f.exception() is not None:
                log.warning("A delivery log record could not be produced: %s", type(f.exception()).__name__)

        future.add_done_callback(done)

    async def _produce(self, topic: str, records: list[tuple[str, bytes]]) -> None:
        if not records:
            return
        futures = [
            await self.producer.send(topic, value, key=key.encode(), headers=[VERSION_HEADER])
            for key, value in records
        ]
        await asyncio.wait_for(asyncio.gather(*futures), BROKER_WAIT_S)


def _document(value: bytes | None) -> dict[str, Any] | None:
    try:
        doc = orjson.loads(value or b"")
    except orjson.JSONDecodeError:
        return None
    return doc if isinstance(doc, dict) else None


def format_timestamp_s(epoch: float) -> str:
    """Epoch seconds as RFC 3339 UTC."""
    return format_timestamp(from_epoch(epoch))
