"""Escalations: work routed to a team's queue, with what its owner needs to act."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.customer import CustomerState, Ticket, from_epoch
from alerts.detector import customer_context, route_facts
from alerts.ids import stable_id
from alerts.routing import Router
from schemas.common import SCHEMA_VERSION, format_timestamp
from schemas.fast import FastTicket


def ticket_summary(t: Ticket) -> dict[str, Any]:
    """A short history of a ticket for the person picking up the escalation."""
    return {
        "ticket_id": t.ticket_id,
        "status": t.status,
        "opened_at": format_timestamp(from_epoch(t.opened_at)) if t.opened_at else None,
        "first_response_seconds": (t.first_response_at - t.opened_at)
        if t.first_response_at is not None and t.opened_at is not None
        else None,
        "agent_replies": t.agent_replies,
        "reopened": t.reopened,
        "escalated": t.escalated,
        "category": t.category,
        "priority": t.priority,
    }


def escalation(
    *,
    source: str,
    state: CustomerState,
    customer_id: str,
    ticket: Ticket | None,
    team: str | None,
    channel: str | None,
    kind: str,
    reason: str | None,
    router: Router,
    now: datetime,
    cause: str,
    cause_at: str | None,
    alert_id: str | None = None,
) -> dict[str, Any]:
    """An escalation document (contract: ``escalations.<queue>``); ``cause`` makes its id deterministic."""
    facts = route_facts(kind, team, channel, ticket, state)
    rule, queue, priority, owner = router.route(facts)
    return {
        "schema_version": SCHEMA_VERSION,
        "escalation_id": stable_id("esc", source, cause),
        "source": source,
        "queue": queue,
        "team": team,
        "priority": priority,
        "owner": owner,
        "customer_id": customer_id,
        "ticket_id": ticket.ticket_id if ticket else None,
        "customer_tier": state.tier,
        "account_value": state.account_value,
        "reason": reason,
        "rule": rule,
        "routed_at": format_timestamp(now),
        "cause_at": cause_at,
        "alert_id": alert_id,
        "ticket": ticket_summary(ticket) if ticket else None,
        "customer": customer_context(state),
    }


def ticket_escalation(ev: FastTicket, state: CustomerState, router: Router, now: datetime) -> dict[str, Any]:
    """The escalation a ticket's ``escalated`` event raises."""
    ticket = state.tickets.get(ev.ticket_id)
    return escalation(
        source="ticket_escalated",
        state=state,
        customer_id=ev.customer_id,
        ticket=ticket,
        team=ticket.team if ticket else ev.team,
        channel=ticket.channel if ticket else ev.channel,
        kind="ticket_escalated",
        reason=ev.reason,
        router=router,
        now=now,
        cause=ev.event_id,
        cause_at=format_timestamp(ev.occurred_at),
    )


def alert_escalation(
    alert: dict[str, Any], state: CustomerState, router: Router, now: datetime
) -> dict[str, Any]:
    """The escalation of a recovery alert for a high-value customer."""
    ticket = state.tickets.get(alert["ticket_id"]) if alert.get("ticket_id") else None
    reason = (
        f"{alert['kind']} ({alert['metric']}={alert['score']}) from a {state.tier or 'high-value'} customer"
    )
    doc = escalation(
        source="high_value_alert",
        state=state,
        customer_id=alert["customer_id"],
        ticket=ticket,
        team=alert.get("team"),
        channel=alert.get("channel"),
        kind=alert["kind"],
        reason=reason,
        router=router,
        now=now,
        cause=alert["alert_id"],
        cause_at=alert.get("cause_at") or alert.get("submitted_at"),
        alert_id=alert["alert_id"],
    )
    return doc
