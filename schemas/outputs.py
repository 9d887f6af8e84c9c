"""Output messages: recovery alerts, escalations, window snapshots and dead letters.

At run time the service builds these as plain dicts (validation per message would
cost more than the rest of the pipeline); the tests validate what it emits against
these models, and ``schemas/json`` is generated from them.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from schemas.common import Id, OutputModel, Timestamp

Severity = Literal["info", "warning", "critical"]


class _Part(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class OpenTicket(_Part):
    """A ticket of the customer that is not closed."""

    ticket_id: str
    status: str
    team: str | None
    category: str | None
    priority: str | None
    channel: str | None
    opened_at: Timestamp | None
    reopened: int
    escalated: bool


class RecentScore(_Part):
    """One recent survey answer of the customer (newest first in the list)."""

    response_id: str
    submitted_at: Timestamp
    nps: int | None = None
    csat: int | None = None
    ces: int | None = None
    stars: int | None = None


class CustomerProfileContext(_Part):
    """Whom to call: the newest ``customer-profiles`` record held for the customer (personal data).

    Only the fields the CRM sent; absent when no profile is held (none sent, or erased).
    """

    updated_at: Timestamp
    name: str | None = None
    company: str | None = None
    email: str | None = None
    phone: str | None = None
    preferred_channel: str | None = None
    crm_url: str | None = None


class CustomerContext(_Part):
    """What the service knows of the customer, so a follow-up needs no look-up."""

    tier: str | None
    account_value: float | None
    open_tickets: list[OpenTicket]
    open_ticket_count: int
    recent_scores: list[RecentScore]
    profile: CustomerProfileContext | None = None  # added in schema_version 1: optional


class PlaybookTier(_Part):
    """A suggested action and its concession cap (credit or percent, whichever is less)."""

    action: str
    credit: float | None
    percent: float | None
    cap: float | None


class Playbook(_Part):
    """Suggested recovery: a first-tier action and a fallback on push-back."""

    first_tier: PlaybookTier
    second_tier: PlaybookTier | None


class TicketSummary(_Part):
    """A short history of the ticket behind an escalation."""

    ticket_id: str
    status: str
    opened_at: Timestamp | None
    first_response_seconds: float | None
    agent_replies: int
    reopened: int
    escalated: bool
    category: str | None
    priority: str | None


class RecoveryAlert(OutputModel):
    """A customer needs a follow-up (topic ``recovery-alerts``, keyed by customer_id)."""

    alert_id: Id
    kind: Annotated[str, Field(min_length=1)]
    severity: Severity
    status: Literal["open"] = "open"
    customer_id: Id
    response_id: str | None
    ticket_id: str | None
    team: str | None
    agent_id: str | None
    channel: str | None
    category: str | None
    queue: str
    rule: str
    priority: Literal["low", "normal", "high", "urgent"]
    owner: str | None
    metric: str
    score: int | float
    threshold: int | float
    submitted_at: Timestamp | None
    created_at: Timestamp
    follow_up_due_at: Timestamp
    cause_at: Timestamp | None = Field(
        None,
        description="Event time of its cause, by which reports place it: the survey's submitted_at, the"
        " ticket event's occurred_at; for an overdue notice, when the SLA clock found it overdue.",
    )
    playbook: Playbook | None = None
    comment: str | None = Field(None, description="The survey's free text (personal data).")
    touchpoint: str | None = None
    original_alert_id: str | None = Field(None, description="On followup_overdue: the alert not contacted.")
    notice: int | None = Field(None, description="On followup_overdue: 1, 2, ...")
    customer: CustomerContext


class Escalation(OutputModel):
    """Work routed to a team's queue (topic ``escalations.<queue>``)."""

    escalation_id: Id
    source: str
    queue: str
    team: str | None
    priority: str
    customer_id: Id
    ticket_id: str | None
    customer_tier: str | None
    account_value: float | None
    reason: str | None
    rule: str
    routed_at: Timestamp
    cause_at: Timestamp | None = Field(
        None,
        description="Event time of its cause, by which reports place it: the survey's submitted_at, the"
        " ticket event's occurred_at; for an overdue notice, when the SLA clock found it overdue.",
    )
    alert_id: str | None = None
    owner: str | None = None
    ticket: TicketSummary | None = None
    customer: CustomerContext | None = None


class FeedbackWindow(OutputModel):
    """A rolling score snapshot (topic ``feedback-windows``, keyed ``<dimension>:<key>``)."""

    dimension: str
    key: str
    window: str
    window_start: Timestamp
    window_end: Timestamp
    metric: str
    responses: int
    value: float | None
    insufficient: bool
    estimate: float | None
    stderr: float | None
    ci_low: float | None
    ci_high: float | None
    min_responses: int
    as_of: Timestamp
    emitted_at: Timestamp
    promoters: int | None = None
    passives: int | None = None
    detractors: int | None = None


class TrendAlert(OutputModel):
    """A team's recent score fell significantly below its baseline (topic ``ops-alerts``)."""

    alert_id: Id
    kind: Literal["trend_drop"]
    severity: Severity
    dimension: str
    key: str
    metric: str
    short_window: str
    long_window: str
    value: float
    baseline: float
    responses: int
    baseline_responses: int
    z: float
    alpha: float
    window_start: Timestamp
    window_end: Timestamp
    created_at: Timestamp


FollowupEventType = Literal[
    "opened", "acknowledged", "contacted", "resolved", "reopened", "overdue", "updated", "withdrawn"
]
FollowupStatus = Literal["open", "acknowledged", "contacted", "resolved", "reopened", "withdrawn"]


class FollowupEvent(OutputModel):
    """One change of an alert's follow-up (topic ``followup-events``, keyed by ``alert_id``).

    One record per change, in order per alert. ``event_id`` is derived from the alert,
    the change and its time, so a replay is recognisable; ``actor`` is null for the
    service's own changes (opened, overdue, updated, withdrawn).
    """

    event_id: Id
    alert_id: Id
    type: Literal[
        "opened", "acknowledged", "contacted", "resolved", "reopened", "overdue", "updated", "withdrawn"
    ]
    status: Literal["open", "acknowledged", "contacted", "resolved", "reopened", "withdrawn"]
    at: Timestamp
    actor: str | None
    queue: str | None
    team: str | None
    customer_id: str | None
    kind: str | None = Field(None, description="The alert's kind.")
    severity: Severity | None = Field(None, description="The alert's severity.")
    follow_up_due_at: Timestamp | None
    root_cause: str | None = Field(None, description="On resolved.")
    notice: int | None = Field(None, description="On overdue: 1, 2, ...")
    overdue_alert_id: str | None = Field(None, description="On overdue: the followup_overdue alert raised.")
    score: int | float | None = Field(None, description="On opened and updated: the alert's score now.")
    action_id: str | None = Field(None, description="The followup-actions record behind the change.")
    note: str | None = None
    concession: ConcessionRecord | None = Field(None, description="On resolved: what the agent spent.")
    cap: int | float | None = Field(
        None, description="On resolved: the alert's playbook cap (its highest tier's), in the cap currency."
    )
    over_cap: bool | None = Field(
        None,
        description="On resolved with a concession in the cap currency: above the cap (the inbox asked "
        "for a note saying why).",
    )
    seq: int | None = Field(
        None,
        ge=1,
        description="The worker's order of this alert's follow-up events: 1, 2, ... (the newest is the "
        "status). Ordering by `at` is wrong: an action may be dated before the alert was raised.",
    )


class ConcessionRecord(_Part):
    """What the agent spent (the resolving action's ``concession``)."""

    amount: int | float = Field(ge=0)
    currency: str = Field(pattern=r"^[A-Z]{3}$")
    kind: Literal["credit", "refund", "discount", "gift", "none"]


class DeadLetterError(_Part):
    """Why a message could not be processed."""

    code: str
    message: str
    field: str | None = None


class DeadLetter(OutputModel):
    """Input that could not be processed, or an output that could not be produced (``feedback-dlq``).

    A dead letter always fits under the broker's message limit: a payload that would
    not is truncated (``payload_truncated``), with the original's size and SHA-256.
    The dead letter of an output (codes ``output_too_large``, ``invalid_destination``)
    quotes the output, names the topic it was meant for (``destination_topic``), and
    points at the input record that caused it (``source_topic``, ``partition``,
    ``offset``; offset -1 for the follow-up timer's outputs).
    """

    source_topic: str
    partition: int
    offset: int
    key: str | None
    key_encoding: Literal["utf-8", "base64"] | None = None
    key_truncated: bool | None = None
    payload: str
    payload_encoding: Literal["utf-8", "base64"] = "utf-8"
    payload_truncated: bool | None = None
    payload_size: int | None = Field(None, description="Bytes of the original payload, when truncated.")
    payload_sha256: str | None = Field(
        None, description="SHA-256 (hex) of the original payload, when truncated."
    )
    destination_topic: str | None = Field(None, description="Where the output was meant to go.")
    error: DeadLetterError
    received_at: Timestamp
