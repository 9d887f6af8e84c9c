"""Input messages: ``survey-responses``, ``ticket-events``, ``followup-actions``, ``customer-profiles``."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, model_validator
from pydantic_core import PydanticCustomError

from schemas.common import Id, Name, Timestamp, WireModel

Channel = Literal["email", "chat", "phone", "sms", "social", "web", "in_person"]
Priority = Literal["low", "normal", "high", "urgent"]
TicketEventType = Literal[
    "created",
    "assigned",
    "first_response",
    "agent_reply",
    "customer_reply",
    "escalated",
    "resolved",
    "reopened",
    "closed",
]
ActionType = Literal["acknowledged", "contacted", "resolved", "reopened"]
NonNegative = Annotated[float, Field(ge=0)]


class Ves(WireModel):
    """Value Enhancement Score: agreement with its two statements, 1-7 each."""

    achieve: Annotated[int, Field(ge=1, le=7)]
    confidence: Annotated[int, Field(ge=1, le=7)]


class Scores(WireModel):
    """The answers of one survey; at least one known score is required."""

    nps: Annotated[int, Field(ge=0, le=10)] | None = None
    csat: Annotated[int, Field(ge=1, le=5)] | None = None
    ces: Annotated[int, Field(ge=1, le=7)] | None = None
    stars: Annotated[int, Field(ge=1, le=5)] | None = None
    ves: Ves | None = None
    goal_completed: bool | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> Scores:
        if (  # spelled out: this runs for every survey, and most carry an NPS
            self.nps is None
            and self.csat is None
            and self.ces is None
            and self.stars is None
            and self.ves is None
            and self.goal_completed is None
        ):
            raise PydanticCustomError(
                "missing",
                "scores must contain at least one of nps, csat, ces, stars, ves, goal_completed",
            )
        return self


class SurveyResponse(WireModel):
    """One submitted survey. A repeated ``response_id`` is an edit of the earlier one."""

    response_id: Id
    customer_id: Id
    submitted_at: Timestamp
    scores: Scores
    comment: Annotated[str, Field(max_length=10_000)] | None = None
    ticket_id: Id | None = None
    team: Name | None = None
    agent_id: Name | None = None
    channel: Name | None = None
    touchpoint: Name | None = None
    locale: Annotated[str, Field(max_length=64)] | None = None


class TicketEvent(WireModel):
    """One step in the life of a support ticket. A repeated ``event_id`` is a duplicate."""

    event_id: Id
    ticket_id: Id
    customer_id: Id
    type: TicketEventType
    occurred_at: Timestamp
    team: Name | None = None
    agent_id: Name | None = None
    channel: Channel | None = None
    priority: Priority | None = None
    category: Name | None = None
    customer_tier: Name | None = None
    account_value: NonNegative | None = None
    reason: Annotated[str, Field(max_length=2_000)] | None = None
    talk_seconds: NonNegative | None = None
    hold_seconds: NonNegative | None = None
    wrap_seconds: NonNegative | None = None
    queue_seconds: NonNegative | None = None  # on assigned / first_response: the wait before an answer

    @model_validator(mode="after")
    def _team_on_created(self) -> TicketEvent:
        if self.type == "created" and self.team is None:
            raise PydanticCustomError(
                "missing", "team is required on a 'created' ticket event", {"field": "team"}
            )
        return self


ConcessionKind = Literal["credit", "refund", "discount", "gift", "none"]


class Concession(WireModel):
    """What an agent spent to recover the customer (on a ``resolved`` action)."""

    amount: NonNegative
    currency: Annotated[str, Field(pattern=r"^[A-Z]{3}$")]  # ISO 4217, e.g. USD, EUR
    kind: ConcessionKind


class FollowupAction(WireModel):
    """What a person did about an alert."""

    action_id: Id
    alert_id: Id
    type: ActionType
    actor: Name
    at: Timestamp
    root_cause: Annotated[str, Field(min_length=1, max_length=2_000)] | None = None
    note: Annotated[str, Field(max_length=10_000)] | None = None
    concession: Concession | None = None

    @model_validator(mode="after")
    def _root_cause_on_resolved(self) -> FollowupAction:
        if self.type == "resolved" and self.root_cause is None:
            raise PydanticCustomError(
                "missing", "root_cause is required on a 'resolved' action", {"field": "root_cause"}
            )
        if self.concession is not None and self.type != "resolved":
            raise PydanticCustomError(
                "invalid_field", "concession is only taken on a 'resolved' action", {"field": "concession"}
            )
        return self


def _https_url(value: str) -> str:
    if not value.startswith("https://") or len(value) <= len("https://"):
        raise PydanticCustomError("invalid_url", "crm_url must be an https:// URL")
    if any(c.isspace() or ord(c) < 32 for c in value):
        raise PydanticCustomError("invalid_url", "crm_url must not contain spaces or control characters")
    return value


HttpsUrl = Annotated[str, Field(max_length=2_048), AfterValidator(_https_url)]


class CustomerProfile(WireModel):
    """Who the customer is, from a CRM (topic ``customer-profiles``, compacted; personal data).

    The newest ``updated_at`` of a customer wins; ``deleted: true`` (or a tombstone, a
    record with no value) erases the profile everywhere the service holds it.
    """

    customer_id: Id
    updated_at: Timestamp
    name: Annotated[str, Field(max_length=256)] | None = None
    company: Annotated[str, Field(max_length=256)] | None = None
    email: Annotated[str, Field(max_length=320)] | None = None
    phone: Annotated[str, Field(max_length=64)] | None = None
    preferred_channel: Channel | None = None
    crm_url: HttpsUrl | None = None
    tier: Name | None = None
    account_value: NonNegative | None = None
    deleted: bool = False
