"""A rules file with several queues routes a generated stream: nothing unrouted, nothing misrouted."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.tools.brokers import LocalBroker
from stream.tools.generate import Generator
from tests.support.services import Service

pytestmark = pytest.mark.integration

RULES = """
default_queue = "triage"

[[rules]]
name = "key-billing"
queue = "billing-priority"
priority = "urgent"
[rules.match]
category = ["billing", "refund"]
customer_tier = ["gold", "platinum"]
account_value = { min = 10000 }

[[rules]]
name = "escalated-returns"
queue = "returns-escalations"
priority = "high"
match = { kind = "ticket_escalated", team = "returns" }

[[rules]]
name = "urgent-tickets"
queue = "urgent"
match = { priority = "urgent" }

[[rules]]
name = "by-team"
queue = "{team}"
"""


def expected_queue(f: dict[str, Any]) -> str:
    """The rules above, written out by hand."""
    if (
        f["category"] in ("billing", "refund")
        and f["tier"] in ("gold", "platinum")
        and (f["value"] or 0) >= 10000
    ):
        return "billing-priority"
    if f["kind"] == "ticket_escalated" and f["team"] == "returns":
        return "returns-escalations"
    if f["priority"] == "urgent":
        return "urgent"
    return f["team"] if f["team"] else "triage"


def test_generated_stream_is_routed_exactly(kafka: LocalBroker, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    svc = Service(kafka, tmp_path, routing_rules=str(rules), alert_cooldown_s="0")
    try:
        svc.start()
        gen = Generator(seed=5, customers=150, start=datetime(2026, 11, 22, 6, tzinfo=UTC), step_s=5)
        messages = list(gen.messages(3000))
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        for m in messages:
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
        svc.producer.flush()

        tickets: dict[str, dict[str, Any]] = {}
        profile: dict[str, tuple[str, float]] = {}
        escalated: dict[str, dict[str, Any]] = {}
        for m in messages:
            if m.stream != "ticket":
                continue
            ev = orjson.loads(m.value)
            t = tickets.setdefault(ev["ticket_id"], {})
            t.update({k: ev[k] for k in ("team", "channel", "category", "priority") if k in ev})
            if "customer_tier" in ev:
                profile[ev["customer_id"]] = (ev["customer_tier"], ev["account_value"])
            if ev["type"] == "escalated":
                escalated[ev["event_id"]] = ev
        want: dict[tuple[str, str], str] = {}  # (source, cause) -> queue
        for ev in escalated.values():
            t = tickets[ev["ticket_id"]]
            tier, value = profile[ev["customer_id"]]
            want[("ticket_escalated", ev["event_id"])] = expected_queue(
                {
                    "kind": "ticket_escalated",
                    "team": t.get("team"),
                    "category": t.get("category"),
                    "priority": t.get("priority"),
                    "tier": tier,
                    "value": value,
                }
            )

        # every alert (once the stream is through) is routed by the same rules
        last = orjson.loads(messages[-1].value)
        svc.read(svc.settings.recovery_alerts_topic, lambda rs: len(rs) > 50)
        alerts = [
            orjson.loads(r.value) for r in svc.read_all([svc.settings.recovery_alerts_topic], settle_s=5)
        ]
        alerts = [a for a in alerts if not a["customer_id"].startswith("probe")]
        assert len(alerts) > 100 and last
        for a in alerts:
            t = tickets.get(a["ticket_id"] or "", {})
            facts = {
                "kind": a["kind"],
                "team": a["team"],
                "category": a["category"],
                "priority": t.get("priority"),
                "tier": a["customer"]["tier"],
                "value": a["customer"]["account_value"],
            }
            assert a["queue"] == expected_queue(facts), a
            if (
                a["customer"]["tier"] in ("gold", "platinum")
                or (a["customer"]["account_value"] or 0) >= 50_000
            ):
                want[("high_value_alert", a["alert_id"])] = expected_queue(facts)

        got: dict[tuple[str, str], str] = {}
        topics_seen = svc.escalation_topics()
        for rec in svc.read_all(topics_seen):
            doc = orjson.loads(rec.value)
            assert rec.topic == svc.settings.escalations_prefix + doc["queue"]
            cause = doc["alert_id"] if doc["source"] == "high_value_alert" else None
            if cause is None:
                cause = next(
                    e
                    for e, ev in escalated.items()
                    if ev["ticket_id"] == doc["ticket_id"] and doc["reason"] == ev.get("reason")
                )
            key = (doc["source"], cause)
            assert key not in got, f"duplicate escalation {key}"
            got[key] = doc["queue"]
        unrouted = set(want) - set(got)
        misrouted = {k: (got[k], want[k]) for k in set(want) & set(got) if got[k] != want[k]}
        extra = set(got) - set(want)
        assert (unrouted, misrouted, extra) == (set(), {}, set())
        assert len(set(want.values())) >= 4 and len(want) > 20
    finally:
        svc.close()
