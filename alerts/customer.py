"""Per-customer state: tickets, profile and recent answers, built from events.

The state is plain data so it can live in a Faust table as one orjson document
per customer. Times are epoch seconds (floats): compact and cheap to compare.
Every collection is bounded so one customer cannot grow without limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from operator import attrgetter
from typing import Any

from schemas.fast import FastSurvey, FastTicket
from schemas.inputs import CustomerProfile

MAX_TICKETS = 50
MAX_RESPONSES = 100
MAX_SEEN_EVENTS = 500
RECENT_SCORES = 5
# what an alert carries of a profile: whom to call (tier and value go to the state's own fields)
PROFILE_FIELDS = ("name", "company", "email", "phone", "preferred_channel", "crm_url")
CLOSED_STATES = frozenset({"resolved", "closed"})
_STATUS_BY_TYPE = {
    "created": "open",
    "assigned": "open",
    "first_response": "pending",
    "agent_reply": "pending",
    "customer_reply": "open",
    "escalated": "escalated",
    "resolved": "resolved",
    "reopened": "reopened",
    "closed": "closed",
}


def to_epoch(ts: datetime) -> float:
    """Epoch seconds of an aware datetime."""
    return ts.timestamp()


def from_epoch(seconds: float) -> datetime:
    """Aware UTC datetime of epoch seconds."""
    return datetime.fromtimestamp(seconds, UTC)


@dataclass(slots=True)
class Ticket:
    """What is known of one ticket; attributes follow the newest event (by ``occurred_at``)."""

    ticket_id: str
    status: str = "open"
    team: str | None = None
    agent_id: str | None = None
    channel: str | None = None
    category: str | None = None
    priority: str | None = None
    opened_at: float | None = None
    last_at: float = 0.0
    reopened: int = 0
    escalated: bool = False
    agent_replies: int = 0
    first_response_at: float | None = None
    answered: bool = False  # its speed of answer (queue_seconds) was counted
    awaiting_since: float | None = None  # the customer's first reply an agent has not answered yet

    @property
    def is_open(self) -> bool:
        """Not resolved and not closed."""
        return self.status not in CLOSED_STATES


@dataclass(slots=True)
class Answer:
    """One survey response as last submitted, and the alert kinds it already raised."""

    response_id: str
    submitted_at: float
    nps: int | None = None
    csat: int | None = None
    ces: int | None = None
    stars: int | None = None
    alerted: list[str] = field(default_factory=list)
    ves: float | None = None
    goal: bool | None = None
    # where the answer was counted: (dimension, key) pairs and a bit per window size
    dims: list[list[str]] = field(default_factory=list)
    windows: int = 0
    ticket_id: str | None = None
    own: list[str | None] = field(default_factory=list)  # the response's own team, channel, agent


TICKET_FIELDS = [f.name for f in fields(Ticket)]
ANSWER_FIELDS = [f.name for f in fields(Answer)]
_ticket_row = attrgetter(*TICKET_FIELDS)  # a row as a tuple (orjson writes it as an array)
_answer_row = attrgetter(*ANSWER_FIELDS)


@dataclass(slots=True)
class CustomerState:
    """Everything the service remembers of one customer."""

    tier: str | None = None
    account_value: float | None = None
    profile_at: float = 0.0
    tickets: dict[str, Ticket] = field(default_factory=dict)
    answers: dict[str, Answer] = field(default_factory=dict)
    seen_events: list[str] = field(default_factory=list)
    last_alert: dict[str, float] = field(default_factory=dict)  # kind -> event time of the last alert
    # surveys waiting for the ticket they name: [raw JSON, wall time held, broker timestamp]
    held: list[list[Any]] = field(default_factory=list)
    # the newest customer-profiles record (whom to call; personal data) and its updated_at; an
    # erasure keeps only the time, so an older record arriving later does not bring it back
    contact: dict[str, str] | None = None
    contact_at: float = 0.0

    # -- profile ---------------------------------------------------------------

    def apply_profile(self, profile: CustomerProfile) -> bool:
        """Keep ``profile`` if it is the newest seen (``deleted`` erases). False when it is older."""
        at = to_epoch(profile.updated_at)
        if at < self.contact_at:
            return False
        self.contact_at = at
        if profile.deleted:
            self.contact = None
            return True
        self.contact = {
            name: value for name in PROFILE_FIELDS if (value := getattr(profile, name)) is not None
        }
        # the CRM's tier and value; a ticket event newer than the profile still wins
        if at >= self.profile_at and (profile.tier is not None or profile.account_value is not None):
            if profile.tier is not None:
                self.tier = profile.tier
            if profile.account_value is not None:
                self.account_value = profile.account_value
            self.profile_at = at
        return True

    def erase_profile(self, at: float) -> bool:
        """A tombstone (no value, so no ``updated_at``): erase whatever is held, as of ``at``."""
        had = self.contact is not None
        self.contact = None
        self.contact_at = max(self.contact_at, at)
        return had

    def profile_doc(self) -> dict[str, str] | None:
        """The profile as alerts carry it (``customer.profile``), or None."""
        if self.contact is None:
            return None
        return {"updated_at": from_epoch(self.contact_at).isoformat().replace("+00:00", "Z"), **self.contact}

    # -- tickets ---------------------------------------------------------------

    def apply_ticket_event(self, ev: FastTicket) -> bool:
        """Fold a ticket event into the state. Returns False for a duplicate delivery."""
        if ev.event_id in self.seen_events:
            return False
        self.seen_events.append(ev.event_id)
        if len(self.seen_events) > MAX_SEEN_EVENTS:
            del self.seen_events[: len(self.seen_events) - MAX_SEEN_EVENTS]

        at = to_epoch(ev.occurred_at)
        if at >= self.profile_at and (ev.customer_tier is not None or ev.account_value is not None):
            self.tier = ev.customer_tier if ev.customer_tier is not None else self.tier
            if ev.account_value is not None:
                self.account_value = ev.account_value
            self.profile_at = at

        ticket = self.tickets.get(ev.ticket_id)
        if ticket is None:
            ticket = self.tickets[ev.ticket_id] = Ticket(ev.ticket_id)
        newest = at >= ticket.last_at
        if ev.type == "created" and (ticket.opened_at is None or at < ticket.opened_at):
            ticket.opened_at = at
        if ev.type == "reopened":
            ticket.reopened += 1
        if ev.type == "escalated":
            ticket.escalated = True
        if ev.type == "agent_reply":
            ticket.agent_replies += 1
            if ticket.awaiting_since is not None and at >= ticket.awaiting_since:
                ticket.awaiting_since = None  # answered (the gap is counted from the state before)
        if ev.type == "customer_reply" and (ticket.awaiting_since is None or at < ticket.awaiting_since):
            ticket.awaiting_since = at
        if ev.type in ("assigned", "first_response") and ev.queue_seconds is not None:
            ticket.answered = True
        if ev.type == "first_response" and (
            ticket.first_response_at is None or at < ticket.first_response_at
        ):
            ticket.first_response_at = at
        for name in ("team", "agent_id", "channel", "category", "priority"):
            value = getattr(ev, name)
            # The newest event wins; an older one only fills what is still unknown.
            if value is not None and (newest or getattr(ticket, name) is None):
                setattr(ticket, name, value)
        if newest:
            ticket.status = _STATUS_BY_TYPE[ev.type]
            ticket.last_at = at
        self._bound_tickets()
        return True

    def _bound_tickets(self) -> None:
        if len(self.tickets) <= MAX_TICKETS:
            return
        # Forget the oldest closed tickets first, then the oldest of any kind.
        order = sorted(self.tickets.values(), key=lambda t: (t.is_open, t.last_at))
        for ticket in order[: len(self.tickets) - MAX_TICKETS]:
            del self.tickets[ticket.ticket_id]

    def open_tickets(self) -> list[Ticket]:
        """Open tickets, newest activity first."""
        return sorted((t for t in self.tickets.values() if t.is_open), key=lambda t: t.last_at, reverse=True)

    # -- answers ---------------------------------------------------------------

    def record_answer(self, resp: FastSurvey) -> Answer:
        """Store (or replace, for an edit) a response's answers; returns the stored answer.

        The kinds already alerted for the response id are carried over, so an edit
        can never raise the same kind twice.
        """
        previous = self.answers.get(resp.response_id)
        s = resp.scores
        answer = Answer(
            resp.response_id,
            to_epoch(resp.submitted_at),
            s.nps,
            s.csat,
            s.ces,
            s.stars,
            list(previous.alerted) if previous else [],
            (s.ves.achieve + s.ves.confidence) / 2 if s.ves is not None else None,
            s.goal_completed,
            ticket_id=resp.ticket_id,
            own=[resp.team, resp.channel, resp.agent_id],
        )
        self.answers[resp.response_id] = answer
        if len(self.answers) > MAX_RESPONSES:
            oldest = min(self.answers.values(), key=lambda a: a.submitted_at)
            del self.answers[oldest.response_id]
        return answer

    def recent_answers(self, n: int = RECENT_SCORES) -> list[Answer]:
        """The newest ``n`` answers by submission time."""
        return sorted(self.answers.values(), key=lambda a: a.submitted_at, reverse=True)[:n]

    # -- (de)serialisation -------------------------------------------------------

    def to_doc(self) -> dict[str, Any]:
        """A JSON-able document (compact keys, empty collections left out; read back by ``from_doc``).

        A million customers live in memory as these documents, so every byte counts.
        """
        doc: dict[str, Any] = {
            "v": 1,
            "tier": self.tier,
            "av": self.account_value,
            "pa": self.profile_at,
            # rows in field order: adding a field to Ticket or Answer cannot be forgotten here
            "t": [_ticket_row(t) for t in self.tickets.values()],
            "e": self.seen_events,
        }
        if self.answers:
            doc["a"] = [_answer_row(a) for a in self.answers.values()]
        if self.last_alert:
            doc["la"] = self.last_alert
        if self.held:
            doc["h"] = self.held
        if self.contact_at:
            doc["pc"] = [self.contact_at, self.contact]
        return doc

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> CustomerState:
        """Rebuild the state written by ``to_doc``."""
        if doc.get("v") != 1:
            raise ValueError(f"unknown customer state version {doc.get('v')!r}")
        tickets = {row[0]: Ticket(*row) for row in doc["t"]}
        answers = {row[0]: Answer(*row) for row in doc.get("a", ())}
        contact_at, contact = doc.get("pc") or (0.0, None)
        return cls(
            doc["tier"],
            doc["av"],
            doc["pa"],
            tickets,
            answers,
            list(doc["e"]),
            dict(doc.get("la", {})),
            [list(h) for h in doc.get("h", [])],
            dict(contact) if contact is not None else None,
            contact_at,
        )
