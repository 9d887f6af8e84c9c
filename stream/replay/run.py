"""``survey-alerts replay``: what would a rule or threshold change have done on past traffic?

The input topics' history is read from the offsets whose timestamps match ``--from`` minus
the warm-up (``--warmup``, default 7d: customer state such as tier, account value, open
tickets and cooldowns is rebuilt from it; older facts are unknown to the replay) up to
``--to``. The real pipeline (validation, customer state, detection, suppression, routing,
escalations, due times) runs over it in memory, in event-time order with ticket events first
at equal times, as the worker orders a batch. A virtual clock, the records' own timestamps,
stands in for the worker's wall clock: surveys held for their ticket are released when the
worker's timer would have released them. The follow-up stage runs on the same clock: actions apply
at their broker timestamps and the SLA timer raises overdue notices and lead escalations up to
``--to`` (``alerts.replay.SlaClock``). Nothing is produced to a live topic; ``--emit``
writes the would-be alerts and escalations to a topic of their own for inspection.

The report counts what the changed configuration would raise for causes inside the period
(a response submitted in it; a ticket escalated in it), and compares that with what the live
topics hold for the same causes: new, gone, re-routed. Alert ids are the live worker's.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

import click
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from alerts.customer import CustomerState
from alerts.ids import stable_id
from alerts.pipeline import Pipeline, Record
from alerts.replay import Outcome, SlaClock
from schemas.common import format_timestamp
from schemas.inputs import FollowupAction
from schemas.validate import Rejection, parse
from stream.errors import ConfigurationError
from stream.kafka.security import aiokafka_options
from stream.kafka.topics import partition_counts, service_topics
from stream.pipeline import pipeline_from
from stream.settings import Settings

BATCH = 2000
BATCH_SPAN_S = 0.5
BROKER_WAIT_S = 60.0
ACTION_FIELDS = set(FollowupAction.model_fields)


def settings_with(base: Mapping[str, str], rules: str | None, overrides: list[str]) -> Settings:
    """The settings a worker would read, with ``--rules`` and ``--set NAME=VALUE`` applied."""
    env = dict(base)
    if rules:
        env["SURVEY_ALERTS_ROUTING_RULES"] = rules
    for item in overrides:
        name, sep, value = item.partition("=")
        field = name.strip().lower().removeprefix("survey_alerts_")
        if not sep or field not in Settings.model_fields:
            raise ConfigurationError(
                f"--set {item!r}: expected NAME=VALUE with NAME a setting (survey-alerts settings)"
            )
        env[f"SURVEY_ALERTS_{field.upper()}"] = value
    try:
        return Settings.from_environ(env)
    except ValueError as exc:
        raise ConfigurationError(f"the replay's settings are not valid: {exc}") from None


async def read_topics(
    settings: Settings,
    topics: list[str],
    since_ms: int,
    until_ms: int | None,
    progress: Callable[[int], None],
) -> list[Any]:
    """Every record of ``topics`` from the first offset at ``since_ms`` to the end now (or ``until_ms``)."""
    consumer = AIOKafkaConsumer(group_id=None, enable_auto_commit=False, **aiokafka_options(settings))
    try:
        await asyncio.wait_for(consumer.start(), settings.connect_timeout_s)
    except BaseException:
        await consumer.stop()  # what it opened before it failed
        raise
    try:
        counts = await asyncio.get_running_loop().run_in_executor(None, partition_counts, settings, topics)
        tps = [TopicPartition(t, p) for t in topics for p in range(counts[t])]
        if not tps:
            return []
        consumer.assign(tps)
        starts = await asyncio.wait_for(
            consumer.offsets_for_times(dict.fromkeys(tps, since_ms)), BROKER_WAIT_S
        )
        ends = await asyncio.wait_for(consumer.end_offsets(tps), BROKER_WAIT_S)
        todo = {}
        for tp in tps:
            found = starts.get(tp)
            begin = found.offset if found is not None else ends[tp]
            consumer.seek(tp, begin)
            if begin < ends[tp]:
                todo[tp] = ends[tp]
        out: list[Any] = []
        while todo:
            batch = await asyncio.wait_for(
                consumer.getmany(*todo, timeout_ms=1000, max_records=5000), BROKER_WAIT_S
            )
            for tp, records in batch.items():
                for rec in records:
                    if rec.offset < todo.get(tp, -1) and (until_ms is None or rec.timestamp < until_ms):
                        out.append(rec)
                progress(len(records))
                if records and records[-1].offset + 1 >= todo.get(tp, 0):
                    todo.pop(tp, None)
        return out
    finally:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(consumer.stop(), 30)


class Run:
    """One configuration over the history, in memory."""

    def __init__(self, settings: Settings) -> None:
        live = pipeline_from(settings)
        # one partition in memory: every customer's records in their order, nothing to re-key
        self.pipeline = Pipeline(
            live.topics, live.policy, lambda cid: 0, live.router, live.ticket_wait_s, live.max_message_bytes
        )
        self.store: dict[str, CustomerState] = {}
        self.docs: list[tuple[float, dict[str, Any]]] = []  # (cause timestamp, alert or escalation)
        self.sla = SlaClock(settings.followup_policy())
        self.actions_topic = settings.followup_actions_topic

    def process(self, records: list[Record], now: float) -> None:
        """One batch as the worker takes it: the intake's records at ``now``, then the actions in it
        at their own times, the SLA clock running up to each and to ``now``."""
        intake = [r for r in records if r.topic != self.actions_topic]
        result = self.pipeline.process(intake, self.store.get, datetime.fromtimestamp(now, UTC))
        topics = self.pipeline.topics
        for emit in result.emits:
            if not isinstance(emit.value, dict):
                continue
            if emit.topic == topics.recovery_alerts or emit.topic.startswith(topics.escalations_prefix):
                cause = emit.source.timestamp if emit.source is not None and emit.source.timestamp else now
                self.docs.append((cause, emit.value))
            elif emit.topic == topics.followups:
                self.sla.follow(emit.value)
        for cid, (_, state) in result.dirty.items():
            self.store[cid] = state
        for rec in records:
            if rec.topic == self.actions_topic:
                at = float(rec.timestamp or now)
                self.tick(at)
                action = parse(FollowupAction, rec.value)
                if not isinstance(action, Rejection):  # the worker dead-letters it: no change
                    self.sla.act(action.model_dump(mode="json", exclude_none=True, include=ACTION_FIELDS))
        self.tick(now)

    def tick(self, t: float) -> None:
        """The SLA timer up to ``t``: its overdue alerts and escalations, caused when raised."""
        for doc in self.sla.advance(t):
            self.docs.append((t, doc))

    def releases(self, now: float) -> list[Record]:
        """The release requests the worker's held-survey timer would send by ``now``."""
        wait = self.pipeline.ticket_wait_s
        due = sorted(
            cid for cid, s in self.store.items() if s.held and min(h[1] for h in s.held) + wait <= now
        )
        out = []
        for cid in due:
            emit = self.pipeline.release_request(cid, 0)
            out.append(Record(emit.topic, 0, -1, emit.key, emit.value, emit.headers, now))  # type: ignore[arg-type]
        return out


def replay_records(records: list[Any], settings: Settings) -> list[Record]:
    """The history in the order the worker would process it: by time, ticket events first at ties."""
    tickets = settings.ticket_events_topic
    rows = [
        Record(r.topic, 0, r.offset, r.key, r.value, list(r.headers or ()), r.timestamp / 1000)
        for r in sorted(records, key=lambda r: (r.timestamp, r.topic != tickets, r.partition, r.offset))
    ]
    return rows


def run(
    records: list[Record],
    settings: Settings,
    progress: Callable[[int], None] = lambda n: None,
    until: float | None = None,
) -> Run:
    """The pipeline of ``settings`` over ``records`` (``replay_records`` order), with a virtual clock
    that runs on to ``until`` (the SLA timer's last notices)."""
    r = Run(settings)
    for batch in batches(records):
        now = float(batch[-1].timestamp or 0.0)
        released = r.releases(now)
        r.process(released + batch, now)
        progress(len(batch))
    if records:  # the last held surveys: the timer would release them once their wait is over
        end = float(records[-1].timestamp or 0.0) + r.pipeline.ticket_wait_s + 1
        released = r.releases(end)
        if released:
            r.process(released, end)
    if until is not None:
        r.tick(until)
    return r


def batches(records: list[Record]) -> Iterator[list[Record]]:
    """``records`` in batches as the worker would have taken them: at most ``BATCH``, and none
    spanning more than ``BATCH_SPAN_S`` of broker time. The batch's last timestamp is the virtual
    clock for all of it (the alerts' creation and due times, as the worker's wall clock), so a
    batch must not reach from one burst of traffic to a later one."""
    batch: list[Record] = []
    for rec in records:
        if batch and (
            len(batch) >= BATCH
            or float(rec.timestamp or 0.0) - float(batch[0].timestamp or 0.0) > BATCH_SPAN_S
        ):
            yield batch
            batch = []
        batch.append(rec)
    if batch:
        yield batch


def causes_in_period(
    records: list[Record], settings: Settings, start: float, end: float
) -> tuple[set[str], set[str]]:
    """Responses submitted, and escalation ids of tickets escalated, in ``[start, end)`` (broker time)."""
    responses, escalated = set(), set()
    for rec in records:
        if rec.timestamp is None or not start <= rec.timestamp < end or not rec.value:
            continue
        try:
            doc = orjson.loads(rec.value)
        except orjson.JSONDecodeError:
            continue
        if not isinstance(doc, dict):
            continue
        if rec.topic == settings.survey_responses_topic and isinstance(doc.get("response_id"), str):
            responses.add(doc["response_id"])
        elif doc.get("type") == "escalated" and isinstance(doc.get("event_id"), str):
            escalated.add(stable_id("esc", "ticket_escalated", doc["event_id"]))
    return responses, escalated


def in_period(docs: list[dict[str, Any]], responses: set[str], escalated: set[str]) -> Outcome:
    """The alerts and escalations caused in the period (the same test on both sides)."""
    alert_response = {
        d["alert_id"]: d.get("response_id") for d in docs if "alert_id" in d and "escalation_id" not in d
    }
    out = Outcome()
    for d in docs:
        if "escalation_id" in d:
            if d.get("source") == "ticket_escalated":
                keep = d["escalation_id"] in escalated
            else:
                keep = alert_response.get(d.get("alert_id") or "") in responses
        else:
            keep = d.get("response_id") in responses
        if keep:
            out.add(d)
    return out


async def emit(settings: Settings, topic: str, docs: list[dict[str, Any]]) -> None:
    """Write the would-be documents to ``topic``: never a live one."""
    live = set(service_topics(settings))
    if topic in live or topic.startswith(settings.escalations_prefix):
        raise ConfigurationError(f"--emit {topic!r} is a live topic of the service; pick a topic of its own")
    producer = AIOKafkaProducer(acks="all", **aiokafka_options(settings))
    await asyncio.wait_for(producer.start(), BROKER_WAIT_S)
    try:
        futures = [
            await producer.send(topic, orjson.dumps(d), key=(d.get("customer_id") or "").encode())
            for d in docs
        ]
        if futures:
            await asyncio.wait_for(asyncio.gather(*futures), BROKER_WAIT_S)
    finally:
        await asyncio.wait_for(producer.stop(), 30)


def replay(
    start: float,
    end: float | None,
    warmup_s: float,
    candidate: Settings,
    live: Settings,
    emit_topic: str | None = None,
    quiet: bool = False,
) -> dict[str, Any]:
    """The whole replay; returns the report (``alerts.replay.report``)."""
    from alerts.replay import report

    until = end if end is not None else time.time()
    since = start - warmup_s
    started = time.monotonic()
    progress = Progress()
    inputs = [live.survey_responses_topic, live.ticket_events_topic, live.followup_actions_topic]
    with progress.show(quiet, "reading the history"):
        raw = asyncio.run(read_topics(live, inputs, int(since * 1000), int(until * 1000), progress))
    records = replay_records(raw, live)
    events = len(records)
    with progress.show(quiet, "replaying", events):
        changed = run(records, candidate, progress, until)
    seconds = time.monotonic() - started
    responses, escalated = causes_in_period(records, live, start, until)
    would = in_period([d for _, d in changed.docs], responses, escalated)
    outputs = [live.recovery_alerts_topic, *_escalation_topics(live)]
    raised = asyncio.run(read_topics(live, outputs, int((since - 3600) * 1000), None, lambda n: None))
    actual = in_period(
        [d for r in raised if r.value and raised_by(d := orjson.loads(r.value), until)], responses, escalated
    )
    if emit_topic:
        asyncio.run(emit(live, emit_topic, [*would.alerts.values(), *would.escalations.values()]))
    warm = sum(1 for r in records if (r.timestamp or 0) < start)
    period = {
        "from": format_timestamp(datetime.fromtimestamp(start, UTC)),
        "to": format_timestamp(datetime.fromtimestamp(until, UTC)),
        "warmup_from": format_timestamp(datetime.fromtimestamp(since, UTC)),
        "events": events,
        "warmup_events": warm,
        "seconds": round(seconds, 3),
        "events_per_s": round(events / seconds, 1) if seconds else None,
    }
    return report(would, actual, period)


def raised_by(doc: dict[str, Any], until: float) -> bool:
    """Whether the live side had raised ``doc`` by ``until``: an overdue notice raised later (the
    live timer went on) is not compared; every other document is placed by its cause."""
    if doc.get("kind") != "followup_overdue" and doc.get("source") != "followup_overdue":
        return True
    stamp = doc.get("created_at") or doc.get("routed_at")
    if not isinstance(stamp, str):
        return True
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp() <= until


def _escalation_topics(settings: Settings) -> list[str]:
    from kafka import KafkaConsumer

    from stream.kafka.security import kafka_python_options

    consumer = KafkaConsumer(**kafka_python_options(settings))
    try:
        return sorted(t for t in consumer.topics() if t.startswith(settings.escalations_prefix))
    finally:
        consumer.close()


class Progress:
    """A progress bar on stderr with the events per second so far."""

    def __init__(self) -> None:
        self.bar: Any = None
        self.label = ""
        self.count = 0
        self.since = time.monotonic()

    def __call__(self, n: int) -> None:
        if self.bar is None:
            return
        self.count += n
        rate = self.count / max(time.monotonic() - self.since, 1e-6)
        self.bar.label = f"{self.label} ({rate:,.0f} events/s)"
        self.bar.update(n)

    @contextlib.contextmanager
    def show(self, quiet: bool, label: str, length: int | None = None) -> Iterator[None]:
        self.label, self.count, self.since = label, 0, time.monotonic()
        if quiet:
            yield
            return
        with click.progressbar(length=length or 0, label=label, file=sys.stderr, show_pos=True) as bar:
            self.bar = bar
            try:
                yield
            finally:
                self.bar = None
