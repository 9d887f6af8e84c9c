"""Follow-up: alerts and people's actions in, overdue alerts and lead escalations out.

State is kept per alert id in the table ``followups``, partitioned like the
internal ``<app>-followups`` topic (keyed by alert id). ``followup-actions`` that
arrive on another partition than their alert's are forwarded there once. A timer
checks the SLA of every open follow-up on the clock (injectable, for tests).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, cast

import orjson
from faust.types import Message

from agents.intake import Send, headers_of, utc_now
from alerts.followup import (
    Changes,
    FollowUp,
    SlaIndex,
    Summary,
    apply_action,
    check_overdue,
    open_alert,
    update_alert,
)
from alerts.pipeline import VERSION_HEADER, Record, dead_letter_emit
from schemas.inputs import FollowupAction
from schemas.validate import Rejection, parse
from stream.kafka.partitioning import placement
from stream.metrics import Metrics
from stream.settings import Settings
from stream.worker.outputs import OutputGate
from stream.worker.pacing import Pacer
from stream.worker.runtime import StageRuntime
from stream.worker.state import Changelog, Outbox, by_key, compact

ACTION_FIELDS = set(FollowupAction.model_fields)


class FollowUpAgent:
    """Batches of alerts and actions -> follow-up state; a clock check -> overdue alerts."""

    def __init__(
        self,
        table: Any,
        settings: Settings,
        send: Send,
        metrics: Metrics,
        clock: Callable[[], datetime] = utc_now,
        outbox: Callable[[], Outbox] | None = None,
        owned: Callable[[], set[int]] | None = None,
        restoring: Callable[[], bool] | None = None,
        gate: OutputGate | None = None,
    ) -> None:
        self.table = table
        self.gate = gate or OutputGate(settings.dlq_topic, settings.max_message_bytes, metrics)
        self.changelog = Changelog(table)
        self.settings = settings
        self.send = send
        self.outbox = outbox
        self.tail: asyncio.Future[None] | None = None  # the newest delivery of state
        self.owned = owned  # partitions of the follow-ups topic this worker has
        self.restoring = restoring  # True while tables are being restored after an assignment
        self.summaries: SlaIndex | None = None  # alert id -> summary and the totals; None: to build
        self.metrics = metrics
        self.clock = clock
        self.owner = placement(settings.partitions)  # alert ids: the process's shared memo
        self.policy = settings.followup_policy()

    def _load(self, alert_id: str, dirty: dict[str, FollowUp]) -> FollowUp:
        fu = dirty.get(alert_id)
        if fu is None:
            raw = self.table.data.get(alert_id.encode())
            fu = FollowUp.from_doc(orjson.loads(raw)) if raw is not None else FollowUp(alert_id)
            dirty[alert_id] = fu
        return fu

    async def __call__(self, messages: Sequence[Message]) -> asyncio.Future[None]:
        """Apply a batch; returns its delivery (the consumer acks the batch when it is done)."""
        s = self.settings
        dirty: dict[str, FollowUp] = {}
        changes = Changes()
        outputs = self._outbox()
        now = self.clock()
        for m in messages:
            if m.topic == s.followup_actions_topic:
                action = parse(FollowupAction, m.value)
                if isinstance(action, Rejection):
                    rec = Record(m.topic, m.partition, m.offset, m.key, m.value, headers_of(m.headers))
                    self.metrics.invalid.labels(m.topic, action.code).inc()
                    letter = dead_letter_emit(s.dlq_topic, rec, action, now, self.gate.limit)
                    outputs.add(letter.topic, None, letter.key, cast(bytes, letter.value), letter.headers)
                    continue
                self.metrics.consumed.labels(m.topic).inc()
                # the contract's fields only: extra fields would grow the stored follow-up
                doc = action.model_dump(mode="json", exclude_none=True, include=ACTION_FIELDS)
                target = self.owner(action.alert_id)
                if target != m.partition:
                    forward = orjson.dumps({"op": "action", "action": doc})
                    outputs.add(s.followups_topic, target, action.alert_id.encode(), forward)
                    continue
                apply_action(self._load(action.alert_id, dirty), doc, self.policy, changes)
            else:
                doc = orjson.loads(m.value or b"{}")
                op = doc.get("op")
                if op == "open":
                    alert = doc["alert"]
                    open_alert(self._load(alert["alert_id"], dirty), alert, self.policy, changes)
                elif op == "update":
                    update_alert(self._load(doc["alert_id"], dirty), doc, changes)
                elif op == "action":
                    action = doc["action"]
                    apply_action(self._load(action["alert_id"], dirty), action, self.policy, changes)
        for role, key, doc in changes.outputs:  # the batch path changes state, it raises no alerts
            assert role == "event"
            self._event(outputs, key, doc)
        for seconds in changes.contact_seconds:
            self.metrics.time_to_contact.observe(seconds)
        for seconds in changes.resolve_seconds:
            self.metrics.time_to_resolve.observe(seconds)
        return self._deliver(await outputs.send(), self._save(dirty))

    def _event(self, out: Outbox, alert_id: str, doc: dict[str, Any]) -> None:
        """Queue a ``followup-events`` record: keyed by alert id, so one alert's stay in order."""
        self.metrics.followup_events.labels(doc["type"]).inc()
        out.add(
            self.settings.followup_events_topic, None, alert_id.encode(), orjson.dumps(doc), [VERSION_HEADER]
        )

    def _outbox(self) -> Outbox:
        if self.outbox is None:
            raise RuntimeError("FollowUpAgent needs an outbox to produce")
        return self.outbox()

    def _save(self, dirty: dict[str, FollowUp]) -> Outbox:
        """Write changed follow-ups in memory; returns their changelog records, still to deliver."""
        out = self._outbox()
        summaries = self.summaries
        for alert_id, fu in dirty.items():
            self.changelog.put(out, self.owner(alert_id), alert_id.encode(), orjson.dumps(fu.to_doc()))
            if summaries is not None:
                summaries.put(alert_id, Summary.of(fu, self.policy))
        return out

    def _deliver(self, sent: list[asyncio.Future[Any]], state: Outbox) -> asyncio.Future[None]:
        """State after the outputs it follows, and after every earlier delivery (batches and checks).

        The table in memory changes in call order; its changelog records leave in the same
        order, so a restart restores the newest state of every follow-up.
        """
        previous = self.tail

        async def deliver() -> None:
            if sent:
                await asyncio.gather(*sent)
            if previous is not None:
                await previous  # its failure is this one's: nothing after it is acked
            await state.deliver()

        self.tail = asyncio.ensure_future(deliver())
        return self.tail

    async def check(self) -> Changes:
        """Raise what is overdue now; refresh the follow-up gauges.

        Reads the summaries kept as follow-ups are saved (``SlaIndex``): the gauges come
        from its totals, and only the follow-ups due are decoded, so a check costs what
        is due, not what is open. The first check after a start (or a rebalance) builds
        the index from the table, seconds with a few hundred thousand follow-ups, so
        the work pauses every few milliseconds and batches go on meanwhile. A follow-up
        is read, checked and written back with no pause in between, so a batch that
        changes it meanwhile is never overwritten.
        """
        now = self.clock()
        t = now.timestamp()
        changes = Changes()
        pacer = Pacer()
        if self.summaries is None:
            if self.restoring is not None and self.restoring():
                return changes  # the table is still being restored: check when it is complete
            await self._summarise_table(pacer)
        summaries = self.summaries
        if summaries is None:
            return changes  # partitions moved while the summaries were built: the next check
        notified: list[str] = []
        for alert_id in summaries.take_due(t):
            if self.summaries is not summaries:
                break  # partitions moved meanwhile: the next check starts over
            raw = self.table.data.get(alert_id.encode())
            if raw is not None:
                fu = FollowUp.from_doc(orjson.loads(raw))
                if check_overdue(fu, now, self.policy, changes):
                    self._write(alert_id, fu)
                    notified.append(alert_id)
                else:
                    summaries.recheck(alert_id)  # as a scan would: due again at the next check
            await pacer.pause()
        pending = []
        events = self._outbox()
        for role, key, doc in changes.outputs:
            if role == "event":
                self._event(events, key, doc)
                continue
            if role == "alert":
                topic = self.settings.recovery_alerts_topic
                self.metrics.alerts.labels(doc["kind"], doc["severity"]).inc()
            else:
                topic = self.settings.escalations_prefix + doc["queue"]
                self.metrics.escalations.labels(doc["queue"]).inc()
            # a timer's output: its dead letter names the follow-up's place in the table
            followed = doc.get("original_alert_id") or doc["alert_id"]
            where = (self.settings.followups_topic, self.owner(followed), -1)
            topic, bkey, value, headers = await self.gate.admit(
                topic, key.encode(), orjson.dumps(doc), [VERSION_HEADER], where, now
            )
            pending.append(await self.send(topic, bkey, value, None, headers))
        pending.extend(await events.send())
        # the overdue alerts are delivered before the state says "notified"
        await self._deliver(pending, self._records_of(notified))
        m = self.metrics
        if self.summaries is summaries:  # else partitions moved meanwhile: the next check sets them
            m.followups_open.set(summaries.waiting)
            m.followups_overdue.set(summaries.overdue(t))
            m.close_rate.set(summaries.resolved / summaries.total if summaries.total else float("nan"))
        return changes

    def _write(self, alert_id: str, fu: FollowUp) -> None:
        """A follow-up changed by the check: in the table and its summary, now."""
        self.table.data[alert_id.encode()] = compact(orjson.dumps(fu.to_doc()))
        if self.summaries is not None:
            self.summaries.put(alert_id, Summary.of(fu, self.policy))

    def _records_of(self, alert_ids: list[str]) -> Outbox:
        """Changelog records of these follow-ups as they are in the table when queued.

        A batch may have changed one since the check wrote it: its newest value goes
        out last, so a restart restores that.
        """
        out = self._outbox()
        for alert_id in alert_ids:
            key = alert_id.encode()
            out.add(self.changelog.topic, self.owner(alert_id), key, self.table.data.get(key))
        return out

    async def _summarise_table(self, pacer: Pacer) -> None:
        """Summaries of every follow-up on this worker's partitions, built a slice at a time.

        The dict is in place from the start, so batches keep it current meanwhile: a
        follow-up is summarised from the table as it is when its turn comes.
        """
        owned = self.owned() if self.owned is not None else None
        summaries = SlaIndex()
        self.summaries = summaries
        for key in list(self.table.data):
            if self.summaries is not summaries:
                return  # partitions moved meanwhile: the next check starts over
            raw = self.table.data.get(key)
            alert_id = key.decode()
            if raw is not None and (owned is None or self.owner(alert_id) in owned):
                summaries.put(alert_id, Summary.of(FollowUp.from_doc(orjson.loads(raw)), self.policy))
            await pacer.pause()

    def forget(self) -> None:
        """Partitions moved: rebuild the summaries from the table at the next check."""
        self.summaries = None


def install_followup(app: StageRuntime, settings: Settings, send: Send, gate: OutputGate) -> FollowUpAgent:
    """Declare the follow-up topics, table, batch agent and SLA timer on ``app``."""
    actions = app.topic(settings.followup_actions_topic, key_serializer="raw", value_serializer="raw")
    internal = app.topic(
        settings.followups_topic,
        partitions=settings.partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    table = app.state_table(
        "followups", "Follow-up state per alert id (orjson documents).", by_key(settings.partitions)
    )

    def owned() -> set[int]:
        return {tp.partition for tp in app.consumer.assignment() if tp.topic == settings.followups_topic}

    agent = FollowUpAgent(
        table,
        settings,
        send,
        app.metrics,
        outbox=app.outbox,
        owned=owned,
        restoring=lambda: bool(app.in_recovery),
        gate=gate,
    )

    async def _moved(sender: Any, *args: Any, **kwargs: Any) -> None:
        agent.forget()

    app.on_partitions_revoked.connect(_moved)
    app.on_partitions_assigned.connect(_moved)
    app.batch_agent(actions, internal)(agent)

    @app.timer(settings.followup_check_interval_s, name="followup-sla")
    async def sla() -> None:
        started = time.perf_counter()
        await agent.check()
        app.metrics.followup_check_seconds.observe(time.perf_counter() - started)

    return agent
