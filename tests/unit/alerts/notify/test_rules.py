"""Notify rules: which destinations a message goes to, and files that cannot work."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from alerts.notify.rules import Notifications, facts_of

DESTINATIONS: dict[str, Any] = {
    "crm": {
        "kind": "webhook",
        "url": "https://crm.example.com/hooks",
        "secrets_env": "CRM_SECRETS",
        "types": ["recovery_alert", "followup_event"],
    },
    "billing-slack": {"kind": "slack", "url_env": "SLACK_BILLING"},
    "leads": {
        "kind": "email",
        "smtp_host": "mail.example.com",
        "sender": "a@example.com",
        "to": "l@example.com",
    },
    "ops": {"kind": "teams", "url_file": "/run/secrets/teams", "types": ["ops_alert"]},
}


def rules(**extra: Any) -> Notifications:
    return Notifications.model_validate({"destinations": DESTINATIONS, **extra})


def route(n: Notifications, message_type: str, **doc: Any) -> list[str]:
    return n.route(facts_of(message_type, doc))


def test_every_matching_rule_adds_its_destinations_once_in_rule_order() -> None:
    n = rules(
        notify=[
            {
                "name": "billing",
                "destinations": ["billing-slack", "crm"],
                "match": {"queue": ["billing", "billing-lead"]},
            },
            {"name": "critical", "destinations": ["leads", "crm"], "match": {"severity": "critical"}},
            {"name": "ops", "destinations": "ops", "match": {"type": "ops_alert"}},
        ],
        notify_default=["crm"],
    )
    assert route(n, "recovery_alert", queue="billing", severity="critical") == [
        "billing-slack",
        "crm",
        "leads",
    ]
    assert route(n, "recovery_alert", queue="returns", severity="warning") == ["crm"]  # the default
    assert route(n, "escalation", queue="billing", priority="urgent") == [
        "billing-slack"
    ]  # crm takes no escalations
    assert route(n, "ops_alert", kind="trend_drop", severity="warning") == ["ops"]
    assert route(n, "followup_event", type="resolved", queue="returns") == ["crm"]


def test_stop_ends_the_search_and_a_rule_can_match_on_kind_team_and_source() -> None:
    n = rules(
        notify=[
            {
                "name": "overdue",
                "destinations": ["leads"],
                "match": {"kind": "followup_overdue"},
                "stop": True,
            },
            {"name": "all", "destinations": ["crm"]},
            {
                "name": "vip",
                "destinations": ["billing-slack"],
                "match": {"source": "high_value_alert", "team": "billing"},
            },
        ]
    )
    assert route(n, "recovery_alert", kind="followup_overdue") == ["leads"]
    assert route(n, "recovery_alert", kind="detractor") == ["crm"]
    assert route(n, "escalation", source="high_value_alert", team="billing") == ["billing-slack"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"notify": [{"name": "x", "destinations": ["nowhere"]}]}, "unknown destinations \\['nowhere'\\]"),
        ({"notify_default": ["nowhere"]}, "notify_default names unknown destinations"),
        (
            {"destinations": {"s": {"kind": "slack", "url": "https://hooks.slack.com/services/T/B/X"}}},
            "is a secret",
        ),
        ({"destinations": {"w": {"kind": "webhook"}}}, "exactly one of url, url_env, url_file"),
        ({"destinations": {"w": {"kind": "webhook", "url": "ftp://x"}}}, "http:// or https://"),
        ({"destinations": {"m": {"kind": "email", "smtp_host": "h"}}}, "needs sender, to"),
        (
            {
                "destinations": {
                    "m": {"kind": "email", "smtp_host": "h", "sender": "a", "to": "b", "password_env": "P"}
                }
            },
            "needs a username",
        ),
        (
            {"destinations": {"s": {"kind": "slack", "url_env": "S", "secrets_env": "X"}}},
            "for webhook destinations",
        ),
        ({"destinations": {"bad name!": {"kind": "console"}}}, "String should match pattern"),
        (
            {"destinations": {"w": {"kind": "webhook", "url": "https://x", "unsigned": True, "group_s": 60}}},
            "group_s is for people's channels",
        ),
        ({"destinations": {"s": {"kind": "slack", "url_env": "S", "group_s": -1}}}, "greater than or equal"),
        (
            {"destinations": {"w": {"kind": "webhook", "url": "https://x", "types": ["nope"]}}},
            "Input should be",
        ),
        # unsigned requests only when the file says so
        ({"destinations": {"w": {"kind": "webhook", "url": "https://x"}}}, "or say unsigned = true"),
        (
            {
                "destinations": {
                    "w": {"kind": "webhook", "url": "https://x", "secrets_env": "S", "unsigned": True}
                }
            },
            "without signing secrets",
        ),
        ({"destinations": {"s": {"kind": "slack", "url_env": "S", "unsigned": True}}}, "is for a webhook"),
    ],
)
def test_a_file_that_cannot_work_is_refused_with_the_reason(change: dict[str, Any], message: str) -> None:
    doc: dict[str, Any] = {"destinations": DESTINATIONS, **change}
    with pytest.raises(ValidationError, match=message):
        Notifications.model_validate(doc)


def test_the_routing_rules_file_carries_the_notify_sections(tmp_path: Any) -> None:
    from alerts.routing import RulesError, load_rules

    path = tmp_path / "rules.toml"
    path.write_text(
        """
default_queue = "triage"
notify_default = ["print"]
[destinations.print]
kind = "console"
[[notify]]
name = "oops"
destinations = ["missing"]
"""
    )
    with pytest.raises(RulesError, match="unknown destinations"):
        load_rules(path)
    path.write_text('notify_default = ["print"]\n[destinations.print]\nkind = "console"\n')
    assert load_rules(path).route({"type": "recovery_alert"}) == ["print"]


def test_include_contact_is_for_peoples_channels_only() -> None:
    ok = {**DESTINATIONS, "billing-slack": {**DESTINATIONS["billing-slack"], "include_contact": True}}
    assert Notifications.model_validate({"destinations": ok}).destinations["billing-slack"].include_contact
    assert not rules().destinations["leads"].include_contact  # off by default
    bad = {**DESTINATIONS, "crm": {**DESTINATIONS["crm"], "include_contact": True}}
    with pytest.raises(ValidationError, match="include_contact is for people's channels"):
        Notifications.model_validate({"destinations": bad})
