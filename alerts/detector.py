"""Turn a survey response and the customer's state into recovery alerts."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

from alerts.customer import Answer, CustomerState, Ticket, from_epoch
from alerts.ids import stable_id
from alerts.policy import AlertPolicy, Finding
from schemas.common import SCHEMA_VERSION, format_timestamp
from schemas.inputs import SurveyResponse

_QUEUE_UNSAFE = re.compile(r"[^a-z0-9._-]+")


def queue_for(team: str | None) -> str:
    """The default queue of a team (a Kafka-safe token); unknown teams go to triage."""
    if not team:
        return "triage"
    token = _QUEUE_UNSAFE.sub("-", team.strip().lower()).strip("-.")
    return token or "triage"


def _ts(seconds: float | None) -> str | None:
    return None if seconds is None else format_timestamp(from_epoch(seconds))


def _ticket_doc(t: Ticket) -> dict[str, Any]:
    return {
        "ticket_id": t.ticket_id,
        "status": t.status,
        "team": t.team,
        "category": t.category,
        "priority": t.priority,
        "channel": t.channel,
        "opened_at": _ts(t.opened_at),
        "reopened": t.reopened,
        "escalated": t.escalated,
    }


def _answer_doc(a: Answer) -> dict[str, Any]:
    doc: dict[str, Any] = {"response_id": a.response_id, "submitted_at": _ts(a.submitted_at)}
    for name in ("nps", "csat", "ces", "stars"):
        value = getattr(a, name)
        if value is not None:
            doc[name] = value
    return doc


def customer_context(state: CustomerState) -> dict[str, Any]:
    """What a person following up needs to know about the customer."""
    open_tickets = state.open_tickets()
    return {
        "tier": state.tier,
        "account_value": state.account_value,
        "open_tickets": [_ticket_doc(t) for t in open_tickets[:10]],
        "open_ticket_count": len(open_tickets),
        "recent_scores": [_answer_doc(a) for a in state.recent_answers()],
    }


def detect(
    state: CustomerState, resp: SurveyResponse, policy: AlertPolicy, now: datetime
) -> tuple[Answer, list[dict[str, Any]]]:
    """Record ``resp`` in ``state``; return the stored answer and the alerts it raises for the first time.

    An edit (same ``response_id``) replaces the stored answers; a kind already
    alerted for that response is never raised again.
    """
    answer = state.record_answer(resp)
    findings = policy.classify(resp.scores, state.tier, state.account_value)
    new = [f for f in findings if f.kind not in answer.alerted]
    if not new:
        return answer, []
    answer.alerted.extend(f.kind for f in new)
    ticket = state.tickets.get(resp.ticket_id) if resp.ticket_id else None
    context = customer_context(state)
    return answer, [_alert(f, resp, ticket, context, policy, now) for f in new]


def _alert(
    f: Finding,
    resp: SurveyResponse,
    ticket: Ticket | None,
    context: dict[str, Any],
    policy: AlertPolicy,
    now: datetime,
) -> dict[str, Any]:
    # The response's own attribution wins over what the ticket says.
    team = resp.team or (ticket.team if ticket else None)
    return {
        "schema_version": SCHEMA_VERSION,
        "alert_id": stable_id("alert", resp.response_id, f.kind),
        "kind": f.kind,
        "severity": f.severity,
        "status": "open",
        "customer_id": resp.customer_id,
        "response_id": resp.response_id,
        "ticket_id": resp.ticket_id,
        "team": team,
        "agent_id": resp.agent_id or (ticket.agent_id if ticket else None),
        "channel": resp.channel or (ticket.channel if ticket else None),
        "category": ticket.category if ticket else None,
        "queue": queue_for(team),
        "metric": f.metric,
        "score": f.score,
        "threshold": f.threshold,
        "submitted_at": format_timestamp(resp.submitted_at),
        "created_at": format_timestamp(now),
        "follow_up_due_at": format_timestamp(now + policy.due(f.severity)),
        "customer": context,
    }
