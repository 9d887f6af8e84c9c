"""Turn a survey response and the customer's state into recovery alerts."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from alerts.customer import Answer, CustomerState, Ticket, from_epoch
from alerts.ids import stable_id
from alerts.policy import AlertPolicy, Finding
from alerts.routing import DEFAULT_RULES, Router
from schemas.common import SCHEMA_VERSION, format_timestamp
from schemas.fast import FastSurvey


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
    doc: dict[str, Any] = {
        "tier": state.tier,
        "account_value": state.account_value,
        "open_tickets": [_ticket_doc(t) for t in open_tickets[:10]],
        "open_ticket_count": len(open_tickets),
        "recent_scores": [_answer_doc(a) for a in state.recent_answers()],
    }
    profile = state.profile_doc()
    if profile is not None:
        doc["profile"] = profile
    return doc


@dataclass
class Detection:
    """What one response did: its stored answer, new alerts, suppressed kinds, changed alerts."""

    answer: Answer
    alerts: list[dict[str, Any]] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)
    updated: list[tuple[str, int | None]] = field(default_factory=list)  # (alert id, new score or None)


def detect(
    state: CustomerState,
    resp: FastSurvey,
    policy: AlertPolicy,
    now: datetime,
    router: Router | None = None,
) -> Detection:
    """Record ``resp`` in ``state`` and decide its alerts.

    * A kind already alerted for the same ``response_id`` (an edit) is never raised
      again; if the edit changed that score, the alert is reported as updated
      (score ``None``: it no longer qualifies) so its follow-up can follow.
    * At most one alert per customer and kind per ``policy.cooldown_s`` of event
      time; the others are suppressed (and counted).
    """
    previous = state.answers.get(resp.response_id)
    answer = state.record_answer(resp)
    out = Detection(answer)
    findings = policy.classify(resp.scores, state.tier, state.account_value)
    by_kind = {f.kind: f for f in findings}
    if previous is not None:
        for kind in previous.alerted:
            f = by_kind.get(kind)
            metric = _METRIC[kind]
            if getattr(previous, metric) != getattr(answer, metric):
                out.updated.append((stable_id("alert", resp.response_id, kind), f.score if f else None))
    at = answer.submitted_at
    ticket = state.tickets.get(resp.ticket_id) if resp.ticket_id else None
    context: dict[str, Any] | None = None
    for f in findings:
        if f.kind in answer.alerted:
            continue
        answer.alerted.append(f.kind)
        last = state.last_alert.get(f.kind)
        if last is not None and abs(at - last) < policy.cooldown_s:
            out.suppressed.append(f.kind)
            continue
        state.last_alert[f.kind] = at
        if context is None:
            context = customer_context(state)
        out.alerts.append(
            _alert(f, resp, ticket, context, policy, now, router or Router(DEFAULT_RULES), state)
        )
    return out


_METRIC = {"detractor": "nps", "low_effort": "ces", "low_csat": "csat", "low_stars": "stars"}


def route_facts(
    kind: str, team: str | None, channel: str | None, ticket: Ticket | None, state: CustomerState
) -> dict[str, Any]:
    """The facts routing rules match on."""
    return {
        "kind": kind,
        "team": team,
        "channel": channel,
        "category": ticket.category if ticket else None,
        "priority": ticket.priority if ticket else None,
        "customer_tier": state.tier,
        "account_value": state.account_value,
    }


def _alert(
    f: Finding,
    resp: FastSurvey,
    ticket: Ticket | None,
    context: dict[str, Any],
    policy: AlertPolicy,
    now: datetime,
    router: Router,
    state: CustomerState,
) -> dict[str, Any]:
    # The response's own attribution wins over what the ticket says.
    team = resp.team or (ticket.team if ticket else None)
    channel = resp.channel or (ticket.channel if ticket else None)
    rule, queue, priority, owner = router.route(route_facts(f.kind, team, channel, ticket, state))
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
        "channel": channel,
        "category": ticket.category if ticket else None,
        "queue": queue,
        "rule": rule,
        "priority": priority,
        "owner": owner,
        "metric": f.metric,
        "score": f.score,
        "threshold": f.threshold,
        "submitted_at": format_timestamp(resp.submitted_at),
        "created_at": format_timestamp(now),
        "cause_at": format_timestamp(resp.submitted_at),
        "follow_up_due_at": format_timestamp(now + policy.due(f.severity, state.tier)),
        "playbook": router.playbook(f.kind, ticket.category if ticket else None, state.account_value),
        # the customer's own words, for whoever calls them back (personal data: topics only)
        "comment": resp.comment,
        "touchpoint": resp.touchpoint,
        "customer": context,
    }
