"""The per-batch pipeline: raw records in, alerts, dead letters and state changes out.

Pure logic with no Kafka or Faust import: the agents hand it whole consumer
batches and do the I/O. Bad records become dead letters (data, not crashes).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson

from alerts.customer import CustomerState, to_epoch
from alerts.deadletters import ORIGIN_HEADER, dead_letter, dead_letter_key, source_of
from alerts.detector import detect
from alerts.escalation import alert_escalation, ticket_escalation
from alerts.feedback import Before, answer_dims, count_answer, count_ticket, reattribute
from alerts.followup import for_follow_up
from alerts.policy import AlertPolicy
from alerts.routing import DEFAULT_RULES, Router
from alerts.windows import PartitionWindows
from schemas.common import SCHEMA_VERSION
from schemas.fast import (
    FastSurvey,
    FastTicket,
    decode_survey,
    decode_ticket,
    from_model,
    held_text,
    survey_from,
)
from schemas.inputs import CustomerProfile, SurveyResponse, TicketEvent
from schemas.validate import Rejection, decode_json, validate_doc

SURVEY = "survey_response"
TICKET = "ticket_event"
PROFILE = "customer_profile"
# A request from the held-survey timer, on the re-key topic: "process this customer's held
# surveys that have waited long enough". Going through the topic gives the release an input
# offset, so a replay after a crash is muted in the windows like any other record.
RELEASE = "release_held"
KIND_HEADER = "survey-alerts-kind"
VERSION_HEADER = ("schema-version", str(SCHEMA_VERSION).encode())
# The most bytes one produced record may take (Faust's producer_max_request_size default).
DEFAULT_MAX_MESSAGE_BYTES = 1_000_000
# Surveys of one customer that may wait for their tickets at once (each up to ~11 KB in the
# customer's state, which is one Kafka record).
MAX_HELD = 20


@dataclass(slots=True)
class Record:
    """One consumed Kafka record, independent of the client library (read-only by convention).

    Not ``frozen``: one is built per consumed record, and a frozen dataclass's
    ``__init__`` (``object.__setattr__`` per field) costs four times as much.
    """

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]] = ()
    timestamp: float | None = None  # broker timestamp, epoch seconds


@dataclass(slots=True)
class Emit:
    """A message to produce: ``value`` is a JSON document or raw bytes passed through."""

    topic: str
    key: bytes | None
    value: dict[str, Any] | bytes
    partition: int | None = None
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    cause_timestamp: float | None = None  # broker timestamp of the record that caused it
    source: Record | None = None  # the input record that caused it (for its dead letter)


@dataclass(slots=True)
class BatchResult:
    """Everything one batch produced, for the agent to send, store and count."""

    emits: list[Emit] = field(default_factory=list)
    dirty: dict[str, tuple[int, CustomerState]] = field(default_factory=dict)
    consumed: Counter[str] = field(default_factory=Counter)
    invalid: Counter[tuple[str, str]] = field(default_factory=Counter)
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)
    suppressed: Counter[str] = field(default_factory=Counter)
    escalations: Counter[str] = field(default_factory=Counter)
    late: Counter[str] = field(default_factory=Counter)
    windows: set[int] = field(default_factory=set)  # partitions whose windows changed
    duplicates: int = 0
    profiles: int = 0  # customer-profiles records kept (erasures included)
    stale_profiles: int = 0  # older than the profile held: ignored
    held: int = 0
    edits: int = 0
    rekeyed: int = 0


@dataclass(frozen=True)
class Topics:
    """Names of the topics the pipeline reads and writes."""

    survey_responses: str
    ticket_events: str
    rekey: str
    recovery_alerts: str
    dlq: str
    escalations_prefix: str = "escalations."
    followups: str = "followups"
    customer_profiles: str = "customer-profiles"


def dead_letter_emit(dlq: str, rec: Record, err: Rejection, now: datetime, limit: int) -> Emit:
    """The dead letter of input record ``rec`` (contract: ``feedback-dlq``), sized to fit ``limit``."""
    source = source_of(rec.topic, rec.partition, rec.offset, rec.headers)
    value = dead_letter(source, rec.key, rec.value, err, now, limit)
    return Emit(dlq, dead_letter_key(rec.key), value, headers=[VERSION_HEADER])


def interleave(records: Sequence[Record], first: str | None = None) -> list[Record]:
    """Merge a batch's partitions by broker timestamp, keeping each partition's own order.

    A batch holds runs of records per topic-partition. A ticket's ``created`` event
    and the survey about it sit on different topics; processing them by time lets
    the survey see the ticket it refers to. Order inside a partition is never
    changed, so an edit still follows the response it edits.

    At equal timestamps the records of topic ``first`` go first (the pipeline names
    the ticket events). Kafka keeps milliseconds, and a producer sends many records
    within one: a survey sent just after its ticket's events often shares their
    timestamp, and a ticket event never follows from a survey sent in the same
    millisecond.
    """
    runs: dict[tuple[str, int], list[Record]] = {}
    for rec in records:
        runs.setdefault((rec.topic, rec.partition), []).append(rec)
    if len(runs) <= 1:
        return list(records)
    # heapq.merge breaks ties by the order of its inputs
    ordered = sorted(runs.items(), key=lambda run: run[0][0] != first)
    return list(heapq.merge(*(run for _, run in ordered), key=lambda r: r.timestamp or 0.0))


class Pipeline:
    """Validate, keep customer state and detect alerts for batches of records.

    ``owner(customer_id)`` names the partition whose state holds the customer. A
    record that arrived elsewhere (no key, a wrong key, another partitioner) is
    forwarded to the re-key topic on that partition instead of being processed
    against state this worker may not own.
    """

    def __init__(
        self,
        topics: Topics,
        policy: AlertPolicy,
        owner: Callable[[str], int],
        router: Router | None = None,
        ticket_wait_s: float = 0.0,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        place: Callable[[str], int] | None = None,
    ) -> None:
        self.topics = topics
        self.max_message_bytes = max_message_bytes
        self.policy = policy
        self.owner = owner
        # ``place(alert_id)``: the follow-up's partition, by the same partitioner as ``owner``;
        # given apart so that alert ids (seen once or twice) stay out of a memo of customers
        self.place: Callable[[str], int] = place or owner
        self.router = router or Router(DEFAULT_RULES)
        self.ticket_wait_s = ticket_wait_s
        self._kinds = {
            topics.survey_responses: SURVEY,
            topics.ticket_events: TICKET,
            topics.customer_profiles: PROFILE,
        }

    def process(
        self,
        records: Sequence[Record],
        load: Callable[[str], CustomerState | None],
        now: datetime,
        windows: Callable[[int], PartitionWindows] | None = None,
    ) -> BatchResult:
        """Process one batch in order.

        ``load`` reads a customer's stored state; ``windows`` gives a partition's
        rolling windows (omit it to skip the windows).
        """
        out = BatchResult()
        dirty = out.dirty
        emits = out.emits
        cause: Record | None = None
        mark = 0
        for rec in interleave(records, first=self.topics.ticket_events):
            if len(emits) > mark:  # what the previous record caused, for its dead letter
                for e in emits[mark:]:
                    e.source = cause
                mark = len(emits)
            cause = rec
            kind = self._kind_of(rec)
            out.consumed[rec.topic] += 1
            if kind == RELEASE:
                self._release_request(rec, load, now, windows, out)
                continue
            if kind == PROFILE:
                self._profile(rec, load, now, out)
                continue
            event = self._parse(kind, rec)
            if isinstance(event, Rejection):
                self._reject(rec, event, now, out)
                continue
            cid = event.customer_id
            partition = self.owner(cid)
            if partition != rec.partition:
                self._forward(rec, kind, cid, partition, out)
                continue
            held = dirty.get(cid)
            state = held[1] if held else (load(cid) or CustomerState())
            pw = windows(partition) if windows is not None else None
            source = f"{rec.topic}/{rec.partition}"
            if pw is not None:
                pw.begin(source, rec.offset)
            late: list[int] = []
            if isinstance(event, FastTicket):
                before = state.tickets.get(event.ticket_id)
                kpi_before = Before.of(before)
                facts = (before.team, before.channel, before.agent_id, before.category) if before else None
                if not state.apply_ticket_event(event):
                    out.duplicates += 1
                    if pw is not None:
                        pw.done(source, rec.offset)
                    continue
                ticket = state.tickets.get(event.ticket_id)
                if event.type == "escalated":
                    self._escalate(ticket_escalation(event, state, self.router, now), out)
                if pw is not None and ticket is not None:
                    late = count_ticket(pw, event, ticket, to_epoch(event.occurred_at), kpi_before)
                    if facts != (ticket.team, ticket.channel, ticket.agent_id, ticket.category):
                        reattribute(pw, state.answers.values(), ticket)  # only when attribution changed
                self._release(state, cid, pw, out, now, ticket_id=event.ticket_id)
            elif self._hold(state, event, rec, now, out):
                pass  # waits for its ticket; counted when released
            else:
                late = self._survey(state, event, pw, out, now, rec.timestamp)
            if pw is not None:
                out.windows.add(partition)
                if not pw.muted:
                    for i in late:
                        out.late[pw.specs[i].name] += 1
                pw.done(source, rec.offset)
            dirty[cid] = (partition, state)
        for e in emits[mark:]:
            e.source = cause
        if windows is not None:
            for p in out.windows:
                windows(p).flush()
        return out

    def _survey(
        self,
        state: CustomerState,
        event: FastSurvey,
        pw: PartitionWindows | None,
        out: BatchResult,
        now: datetime,
        timestamp: float | None,
    ) -> list[int]:
        """Alerts, escalations, follow-ups and window counts of one survey response."""
        cid = event.customer_id
        previous = state.answers.get(event.response_id)
        if previous is not None:
            out.edits += 1
        found = detect(state, event, self.policy, now, self.router)
        late: list[int] = []
        if pw is not None:
            ticket = state.tickets.get(event.ticket_id) if event.ticket_id else None
            late = count_answer(pw, previous, found.answer, answer_dims(found.answer, ticket))
        if found.suppressed:
            out.suppressed.update(found.suppressed)
        for alert in found.alerts:
            out.alerts[(alert["kind"], alert["severity"])] += 1
            out.emits.append(
                Emit(self.topics.recovery_alerts, cid.encode(), alert, cause_timestamp=timestamp)
            )
            self._follow_up({"op": "open", "alert": for_follow_up(alert)}, alert["alert_id"], out)
            if self.policy.escalates(state.tier, state.account_value):
                self._escalate(alert_escalation(alert, state, self.router, now), out)
        for alert_id, score in found.updated:
            # the edit's event time and broker timestamp: a replay gives the same follow-up event
            at = to_epoch(event.submitted_at)
            edit = {"op": "update", "alert_id": alert_id, "score": score, "at": at, "ts": timestamp}
            self._follow_up(edit, alert_id, out)
        return late

    def _hold(
        self, state: CustomerState, event: FastSurvey, rec: Record, now: datetime, out: BatchResult
    ) -> bool:
        """Hold a survey that names a ticket not seen yet (its events travel on another topic).

        It waits up to ``ticket_wait_s`` for the ticket, so its alert is routed with the
        ticket's team, category and priority; an edit of a held survey replaces it.
        """
        if self.ticket_wait_s <= 0 or not event.ticket_id or event.ticket_id in state.tickets:
            return False
        if len(state.held) >= MAX_HELD and all(
            orjson.loads(h[0])["response_id"] != event.response_id for h in state.held
        ):
            return False  # enough of this customer's surveys wait already: this one goes on now
        # the contract's fields only (a struct keeps no others): a survey may carry any extra
        # fields, and the held copy lives in the customer's state, whose record must stay small
        doc = held_text(event)
        for h in state.held:
            if orjson.loads(h[0])["response_id"] == event.response_id:
                h[0] = doc
                return True
        state.held.append([doc, now.timestamp(), rec.timestamp])
        out.held += 1
        return True

    def _release(
        self,
        state: CustomerState,
        cid: str,
        pw: PartitionWindows | None,
        out: BatchResult,
        now: datetime,
        ticket_id: str | None = None,
        at: float | None = None,
    ) -> None:
        """Process held surveys whose ticket arrived, or that waited long enough by ``at`` (epoch s)."""
        if not state.held:
            return
        at = now.timestamp() if at is None else at
        keep = []
        for h in state.held:
            event = _held_survey(h[0])
            if event.ticket_id != ticket_id and at - h[1] < self.ticket_wait_s:
                keep.append(h)
                continue
            late = self._survey(state, event, pw, out, now, h[2])
            if pw is not None and not pw.muted:
                for i in late:
                    out.late[pw.specs[i].name] += 1
        state.held = keep

    def release_request(self, customer_id: str, partition: int) -> Emit:
        """The record that asks for ``customer_id``'s held surveys that have waited long enough.

        The held-survey timer sends it to the re-key topic on the customer's partition;
        ``process`` handles it like an input record (see ``RELEASE``).
        """
        return Emit(
            self.topics.rekey,
            customer_id.encode(),
            orjson.dumps({"customer_id": customer_id}),
            partition,
            [(KIND_HEADER, RELEASE.encode())],
        )

    def _release_request(
        self,
        rec: Record,
        load: Callable[[str], CustomerState | None],
        now: datetime,
        windows: Callable[[int], PartitionWindows] | None,
        out: BatchResult,
    ) -> None:
        """Release the held surveys that have waited ``ticket_wait_s`` by the request's timestamp.

        The decision uses the record's timestamp, not the clock, so a replay decides the same.
        """
        doc = decode_json(rec.value)
        cid = doc.get("customer_id") if isinstance(doc, dict) else None
        if not isinstance(cid, str) or not cid:
            why = (
                doc
                if isinstance(doc, Rejection)
                else Rejection("missing_field", "a held-survey release names no customer_id", "customer_id")
            )
            self._reject(rec, why, now, out)
            return
        partition = self.owner(cid)
        if partition != rec.partition:
            self._forward(rec, RELEASE, cid, partition, out)
            return
        dirty = out.dirty
        held = dirty.get(cid)
        state = held[1] if held else load(cid)
        if state is None or not state.held:
            return  # released already (by its ticket, or an earlier request)
        pw = windows(partition) if windows is not None else None
        source = f"{rec.topic}/{rec.partition}"
        if pw is not None:
            pw.begin(source, rec.offset)  # a replayed request counts nothing twice
        self._release(state, cid, pw, out, now, at=rec.timestamp)
        if pw is not None:
            out.windows.add(partition)
            pw.done(source, rec.offset)
        dirty[cid] = (partition, state)  # also when nothing was due yet: the agent learns its due time

    def _profile(
        self, rec: Record, load: Callable[[str], CustomerState | None], now: datetime, out: BatchResult
    ) -> None:
        """Keep the newest profile of a customer; ``deleted: true`` or a tombstone erases it.

        A tombstone has no ``updated_at``: its broker timestamp dates the erasure, so a
        record updated before it and delivered late does not bring the profile back.
        """
        profile: CustomerProfile | Rejection | None
        if not rec.value:  # a tombstone: the key names the customer
            profile, cid = None, _key_text(rec.key)
            if isinstance(cid, Rejection):
                self._reject(rec, cid, now, out)
                return
        else:
            doc = decode_json(rec.value)
            profile = doc if isinstance(doc, Rejection) else validate_doc(CustomerProfile, doc)
            if isinstance(profile, Rejection):
                self._reject(rec, profile, now, out)
                return
            cid = profile.customer_id
        partition = self.owner(cid)
        if partition != rec.partition:
            self._forward(rec, PROFILE, cid, partition, out)
            return
        held = out.dirty.get(cid)
        state = held[1] if held else load(cid)
        if profile is None:
            if state is None:
                return  # nothing held of this customer: nothing to erase
            state.erase_profile(rec.timestamp if rec.timestamp is not None else now.timestamp())
            out.profiles += 1
        else:
            state = state or CustomerState()
            if not state.apply_profile(profile):
                out.stale_profiles += 1
                return
            out.profiles += 1
        out.dirty[cid] = (partition, state)

    def _reject(self, rec: Record, why: Rejection, now: datetime, out: BatchResult) -> None:
        """Count ``rec`` as invalid and emit its dead letter (the offset moves on)."""
        out.invalid[(rec.topic, why.code)] += 1
        out.emits.append(dead_letter_emit(self.topics.dlq, rec, why, now, self.max_message_bytes))

    def _escalate(self, doc: dict[str, Any], out: BatchResult) -> None:
        out.escalations[doc["queue"]] += 1
        topic = self.topics.escalations_prefix + doc["queue"]
        out.emits.append(Emit(topic, doc["customer_id"].encode(), doc))

    def _follow_up(self, doc: dict[str, Any], alert_id: str, out: BatchResult) -> None:
        # keyed and placed by alert id: the follow-up stage keeps its state by alert
        out.emits.append(Emit(self.topics.followups, alert_id.encode(), doc, self.place(alert_id)))

    def _kind_of(self, rec: Record) -> str:
        kind = self._kinds.get(rec.topic)
        if kind is None:
            kind = dict(rec.headers).get(KIND_HEADER, b"").decode() or "unknown"
        return kind

    def _parse(self, kind: str, rec: Record) -> FastSurvey | FastTicket | Rejection:
        """The survey or ticket event in ``rec``: the hot path's struct, or pydantic's rejection."""
        if kind == SURVEY:
            fast: FastSurvey | FastTicket | None = decode_survey(rec.value) if rec.value else None
            model: type[SurveyResponse] | type[TicketEvent] = SurveyResponse
        elif kind == TICKET:
            fast, model = (decode_ticket(rec.value) if rec.value else None), TicketEvent
        else:
            return Rejection("unknown_source", f"no schema for records of kind {kind!r}")
        if fast is not None:
            return fast
        # refused by the struct: pydantic, the contract, says why (or accepts an edge it refused)
        doc = decode_json(rec.value)
        if isinstance(doc, Rejection):
            return doc
        checked = validate_doc(model, doc)
        return checked if isinstance(checked, Rejection) else from_model(checked)

    def _forward(self, rec: Record, kind: str, cid: str, partition: int, out: BatchResult) -> None:
        """Send ``rec`` to the re-key topic on its customer's partition (it arrived on another)."""
        out.rekeyed += 1
        out.emits.append(self._rekey(rec, kind, cid, partition))

    def _rekey(self, rec: Record, kind: str, cid: str, partition: int) -> Emit:
        origin = dict(rec.headers).get(ORIGIN_HEADER) or (
            f"{rec.topic}/{rec.partition}/{rec.offset}".encode()
        )
        return Emit(
            self.topics.rekey,
            cid.encode(),
            rec.value or b"",
            partition,
            [(KIND_HEADER, kind.encode()), (ORIGIN_HEADER, origin)],
        )


def _held_survey(text: str) -> FastSurvey:
    """A held survey back from the customer's state (written by ``held_text``, or by pydantic before)."""
    raw = text.encode()
    fast = decode_survey(raw)
    if fast is not None:
        return fast
    return survey_from(SurveyResponse.model_validate(orjson.loads(raw)))


def _key_text(key: bytes | None) -> str | Rejection:
    """The customer id a tombstone's key names."""
    if not key:
        return Rejection(
            "empty_payload", "a customer-profiles tombstone without a key names no customer to erase", "key"
        )
    try:
        text = key.decode("utf-8")
    except UnicodeDecodeError:
        return Rejection("invalid_utf8", "the key of a customer-profiles tombstone is not UTF-8", "key")
    if len(text) > 128:
        return Rejection(
            "out_of_range", "the key of a customer-profiles tombstone is over 128 characters", "key"
        )
    return text
