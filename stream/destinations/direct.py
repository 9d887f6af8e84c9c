"""What the notifier's commands do: check destinations, and send a sample to one."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from alerts.ids import stable_id
from alerts.notify.render import delivery_id
from alerts.notify.retry import Outcome
from alerts.notify.rules import MESSAGE_TYPES, Notifications
from schemas.common import SCHEMA_VERSION, format_timestamp
from stream.destinations.senders import Delivery, EmailSender, Sender, build_senders
from stream.errors import ConfigurationError

REACH_TIMEOUT_S = 3.0


def endpoint(sender: Sender) -> tuple[str, int] | None:
    """The host and port a sender connects to (None for the console)."""
    if isinstance(sender, EmailSender):
        return str(sender.dest.smtp_host), sender.port
    secret = getattr(sender, "_url", None)
    if secret is None:
        return None
    parts = urlsplit(secret.get_secret_value())
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def check_destinations(
    rules: Notifications, reach: bool = True, environ: Mapping[str, str] | None = None
) -> list[str]:
    """One line per destination; raises ``ConfigurationError`` naming every one that cannot work.

    Secrets must be present (never printed); with ``reach``, a TCP connection to each
    destination's host and port must open within a few seconds.
    """
    senders = build_senders(rules.destinations, environ=environ)
    lines, problems = [], []
    try:
        for name, sender in senders.items():
            where = endpoint(sender)
            status = "ok"
            if reach and where is not None:
                try:
                    with socket.create_connection(where, timeout=REACH_TIMEOUT_S):
                        pass
                except OSError as exc:
                    status = f"unreachable ({exc.strerror or type(exc).__name__})"
                    problems.append(
                        f"destination {name!r} ({sender.kind}): cannot connect to {where[0]}:{where[1]}"
                    )
            lines.append(f"  destination {name}: {sender.kind} {getattr(sender, 'address', '')} - {status}")
            if rules.destinations[name].unsigned:
                lines.append(
                    f"  warning: destination {name!r} sends unsigned requests (unsigned = true): its"
                    " receiver cannot tell them from forged ones"
                )
    finally:
        asyncio.run(_close(senders))
    if problems:
        raise ConfigurationError("\n".join(problems))
    return lines


async def _close(senders: Mapping[str, Sender]) -> None:
    for sender in senders.values():
        await sender.close()


def sample(message_type: str, destination: str) -> dict[str, Any]:
    """A realistic sample document of ``message_type``, marked as a test."""
    now = datetime.now(UTC)
    stamp = format_timestamp(now)
    alert_id = stable_id("alert", "notify-test", destination, stamp)
    customer = {
        "tier": "gold",
        "account_value": 41250.0,
        "open_ticket_count": 1,
        "open_tickets": [
            {
                "ticket_id": "tkt-test-1",
                "status": "reopened",
                "team": "billing",
                "category": "refund",
                "priority": "high",
                "channel": "chat",
                "opened_at": stamp,
                "reopened": 1,
                "escalated": False,
            }
        ],
        "recent_scores": [{"response_id": "resp-test-1", "submitted_at": stamp, "nps": 2, "csat": 2}],
    }
    if message_type == "escalation":
        return {
            "schema_version": SCHEMA_VERSION,
            "escalation_id": stable_id("esc", "notify-test", destination, stamp),
            "source": "high_value_alert",
            "queue": "billing",
            "team": "billing",
            "priority": "urgent",
            "customer_id": "test-customer",
            "ticket_id": "tkt-test-1",
            "customer_tier": "gold",
            "account_value": 41250.0,
            "reason": "detractor (nps=2) from a gold customer [test message from survey-alerts notify test]",
            "rule": "team-queue",
            "routed_at": stamp,
            "alert_id": alert_id,
            "customer": customer,
        }
    if message_type == "ops_alert":
        return {
            "schema_version": SCHEMA_VERSION,
            "alert_id": alert_id,
            "kind": "notify_test",
            "severity": "info",
            "summary": "a test message from survey-alerts notify test",
            "created_at": stamp,
        }
    if message_type == "followup_event":
        return {
            "schema_version": SCHEMA_VERSION,
            "event_id": stable_id("fue", alert_id, "contacted", stamp),
            "alert_id": alert_id,
            "type": "contacted",
            "status": "contacted",
            "at": stamp,
            "actor": "notify-test",
            "queue": "billing",
            "team": "billing",
            "customer_id": "test-customer",
            "kind": "detractor",
            "severity": "critical",
            "follow_up_due_at": stamp,
        }
    return {
        "schema_version": SCHEMA_VERSION,
        "alert_id": alert_id,
        "kind": "detractor",
        "severity": "critical",
        "status": "open",
        "customer_id": "test-customer",
        "response_id": "resp-test-1",
        "ticket_id": "tkt-test-1",
        "team": "billing",
        "agent_id": "agent-test",
        "channel": "chat",
        "category": "refund",
        "queue": "billing",
        "rule": "team-queue",
        "priority": "urgent",
        "owner": None,
        "metric": "nps",
        "score": 2,
        "threshold": 6,
        "submitted_at": stamp,
        "created_at": stamp,
        "follow_up_due_at": stamp,
        "playbook": {
            "first_tier": {
                "action": "Call within the SLA, listen, fix the root cause",
                "credit": None,
                "percent": None,
                "cap": None,
            },
            "second_tier": None,
        },
        "comment": "This is a test message from survey-alerts notify test: nothing to follow up.",
        "customer": customer,
    }


def send_test(
    rules: Notifications, name: str, message_type: str, inbox_url: str | None, email_domain: str
) -> tuple[Delivery, Outcome, float]:
    """Send one sample to destination ``name``; returns the delivery, its outcome and seconds taken."""
    if name not in rules.destinations:
        known = ", ".join(sorted(rules.destinations)) or "none"
        raise ConfigurationError(f"no destination {name!r} in the rules file (destinations: {known})")
    if message_type not in MESSAGE_TYPES:
        raise ConfigurationError(f"type must be one of {', '.join(MESSAGE_TYPES)}")
    senders = build_senders({name: rules.destinations[name]}, inbox_url, email_domain)
    doc = sample(message_type, name)
    d = Delivery(delivery_id(message_type, doc, name), message_type, doc, name, 0, time.time(), time.time())

    async def go() -> tuple[Outcome, float]:
        started = time.monotonic()
        try:
            return await senders[name].send(d), time.monotonic() - started
        finally:
            await senders[name].close()

    outcome, seconds = asyncio.run(go())
    return d, outcome, seconds


def send_document(settings: Any, name: str, message_type: str, doc: dict[str, Any]) -> Outcome:
    """Deliver one document (a digest) to destination ``name`` of the rules file, once, now."""
    rules: Notifications = settings.rules()
    if name not in rules.destinations:
        known = ", ".join(sorted(rules.destinations)) or "none"
        raise ConfigurationError(f"no destination {name!r} in the rules file (destinations: {known})")
    senders = build_senders({name: rules.destinations[name]}, settings.inbox_url, settings.email_domain)
    d = Delivery(stable_id("msg", message_type, doc.get("subject", ""), name), message_type, doc, name)

    async def go() -> Outcome:
        try:
            return await senders[name].send(d)
        finally:
            await senders[name].close()

    return asyncio.run(go())
