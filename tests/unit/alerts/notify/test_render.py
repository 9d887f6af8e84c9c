"""What each destination kind receives: complete, escaped, and within the receivers' limits."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.notify.render import (
    delivery_id,
    email_message,
    envelope,
    group_view,
    mrkdwn,
    slack_message,
    teams_message,
    view_of,
)
from stream.destinations.direct import sample

INBOX = "https://inbox.example.com/"


def alert(**change: Any) -> dict[str, Any]:
    doc = sample("recovery_alert", "dest")
    doc["alert_id"] = "alert_0123"
    doc.update(change)
    return doc


def slack_texts(message: dict[str, Any]) -> list[str]:
    texts = []
    for block in message["blocks"]:
        if "text" in block:
            texts.append(block["text"]["text"])
        texts += [f["text"] for f in block.get("fields", [])]
        texts += [e["text"] for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return texts


def test_a_slack_alert_carries_what_the_person_following_up_needs() -> None:
    doc = alert()
    message = slack_message(view_of("recovery_alert", doc, INBOX))
    text = "\n".join(slack_texts(message))
    assert message["blocks"][0]["type"] == "header" and "Detractor" in message["blocks"][0]["text"]["text"]
    summary = message["blocks"][1]["text"]["text"]
    assert "NPS 2" in summary and "gold" in summary and "$41,250/yr" in summary  # kind, score, tier, value
    for needed in (
        "*Team*\nbilling",
        "*Queue*\nbilling",
        "*Due*",
        "Recent scores",
        "Open tickets",
        "tkt-test-1 · reopened",
        "Suggested:",
        "nothing to follow up",
    ):
        assert needed in text, needed
    (button,) = next(b for b in message["blocks"] if b["type"] == "actions")["elements"]
    assert button["url"] == "https://inbox.example.com/alerts/alert_0123"
    assert message["text"].startswith("🔴 Detractor")  # the notification's plain-text fallback


@settings(max_examples=200)
@given(
    comment=st.text(max_size=10_000),
    team=st.text(min_size=1, max_size=256),
    scores=st.lists(st.integers(0, 10), max_size=10),
)
def test_slack_stays_within_block_kit_limits_and_customer_text_cannot_make_links(
    comment: str, team: str, scores: list[int]
) -> None:
    doc = alert(comment=comment, team=team)
    doc["customer"]["recent_scores"] = [
        {"response_id": f"r{i}", "submitted_at": "2026-11-22T10:00:00Z", "nps": s}
        for i, s in enumerate(scores)
    ]
    message = slack_message(view_of("recovery_alert", doc, INBOX))
    assert len(message["blocks"]) <= 50 and len(message["text"]) <= 3000
    assert len(message["blocks"][0]["text"]["text"]) <= 150
    for block in message["blocks"]:
        if "text" in block:
            assert len(block["text"]["text"]) <= 3000
        assert len(block.get("fields", [])) <= 10
        assert all(len(f["text"]) <= 2000 for f in block.get("fields", []))
    for text in slack_texts(message):
        assert "<" not in text and ">" not in text.replace("\n> ", "\n").removeprefix("> ")
    assert len(orjson.dumps(message)) < 40_000


def test_mrkdwn_escapes_mentions_and_links() -> None:
    assert (
        mrkdwn("<!channel> <https://evil|click> & co")
        == "&lt;!channel&gt; &lt;https://evil|click&gt; &amp; co"
    )


@settings(max_examples=100)
@given(comment=st.text(max_size=10_000))
def test_a_teams_card_carries_the_same_and_stays_under_28_kb(comment: str) -> None:
    message = teams_message(view_of("recovery_alert", alert(comment=comment), INBOX))
    (attachment,) = message["attachments"]
    card = attachment["content"]
    assert attachment["contentType"] == "application/vnd.microsoft.card.adaptive"
    assert card["type"] == "AdaptiveCard" and card["version"] == "1.4"
    facts = {
        b["inlines"][0]["text"].rstrip(": "): b["inlines"][1]["text"]
        for b in card["body"]
        if b["type"] == "RichTextBlock" and len(b["inlines"]) == 2
    }
    assert facts["Team"] == "billing" and facts["Queue"] == "billing"
    assert card["actions"][0]["url"].endswith("/alerts/alert_0123")
    assert len(orjson.dumps(message)) <= 28_000


def test_email_parts_escape_customer_text_and_notices_thread_on_the_alert() -> None:
    doc = alert(comment="<script>alert(1)</script> & more")
    own = delivery_id("recovery_alert", doc, "leads")
    mail = email_message(view_of("recovery_alert", doc, INBOX), own, "leads", "example.com")
    assert mail.message_id == f"<{own}@example.com>" and mail.references is None
    assert "<script>" not in mail.html and "&lt;script&gt;" in mail.html
    assert "> <script>alert(1)</script> & more" in mail.text  # the text part quotes it as written
    assert mail.subject.startswith("[CRITICAL] Detractor")
    overdue = alert(
        kind="followup_overdue",
        alert_id="alert_9",
        original_alert_id="alert_0123",
        notice=2,
        metric="followup_overdue_seconds",
        score=900,
    )
    notice = email_message(
        view_of("recovery_alert", overdue, INBOX),
        delivery_id("recovery_alert", overdue, "leads"),
        "leads",
        "example.com",
    )
    assert notice.references == mail.message_id  # re-notifications thread under the first mail
    assert "notice 2" in notice.subject and "15 min past due" in notice.subject


def test_every_message_type_renders_and_ids_are_per_document_and_destination() -> None:
    for message_type in ("recovery_alert", "escalation", "ops_alert", "followup_event"):
        doc = sample(message_type, "d")
        view = view_of(message_type, doc, INBOX)
        assert view.summary and slack_message(view)["blocks"] and teams_message(view)["attachments"]
        assert delivery_id(message_type, doc, "a") != delivery_id(message_type, doc, "b")
        assert delivery_id(message_type, doc, "a") == delivery_id(message_type, dict(doc), "a")
    trend = {
        "alert_id": "trend_1",
        "kind": "trend_drop",
        "severity": "warning",
        "dimension": "team",
        "key": "billing",
        "metric": "nps",
        "value": 12.0,
        "baseline": 31.5,
        "responses": 80,
        "short_window": "24h",
        "z": -3.1,
        "window_start": "2026-11-21T14:00:00Z",
        "window_end": "2026-11-22T14:00:00Z",
    }
    assert "NPS 12.0 in 24h vs 31.5" in view_of("ops_alert", trend).summary
    body = envelope("recovery_alert", alert(), datetime(2026, 11, 22, 14, tzinfo=UTC))
    assert body["type"] == "recovery_alert" and body["timestamp"] == "2026-11-22T14:00:00Z"
    assert re.fullmatch(r"msg_[0-9a-f]{24}", delivery_id("recovery_alert", body["data"], "crm"))


@settings(max_examples=50, deadline=None)
@given(
    comments=st.lists(st.text(max_size=300), min_size=2, max_size=25),
    severities=st.lists(st.sampled_from(["critical", "warning", "info"]), min_size=25, max_size=25),
)
def test_a_grouped_message_lists_every_alert_worst_first_within_the_limits(
    comments: list[str], severities: list[str]
) -> None:
    docs = [
        alert(alert_id=f"alert_{i:04d}", queue="billing", severity=severities[i], comment=c)
        for i, c in enumerate(comments)
    ]
    view = group_view("recovery_alert", docs, INBOX)
    n = len(docs)
    assert (
        view.title == f"{n} alerts in billing"
        and view.link == "https://inbox.example.com/alerts?queue=billing"
    )
    assert view.body is not None and view.html is not None
    lines = view.body.splitlines()
    assert len(lines) == n  # one line per alert, each with its own link
    assert {re.search(r"/alerts/(alert_\d{4})\)\)$", line).group(1) for line in lines} == {  # type: ignore[union-attr]
        d["alert_id"] for d in docs
    }
    rank = {"🔴": 0, "🟠": 1, "🔵": 2}
    assert [rank[line[2]] for line in lines] == sorted(rank[line[2]] for line in lines)
    tally = {sev: severities[:n].count(sev) for sev in ("critical", "warning", "info")}
    assert view.summary == f"{n} alerts in billing: " + ", ".join(f"{c} {s}" for s, c in tally.items() if c)
    assert view.severity == min(severities[:n], key=["critical", "warning", "info"].index)
    # the customer's words are not in a one-line summary, and cannot inject markup anywhere
    assert "<script" not in view.html.replace("&lt;script", "")
    message = slack_message(view)
    assert len(message["blocks"]) <= 50 and all(len(t) <= 3000 for t in slack_texts(message))
    assert "billing" in message["text"]
    card = teams_message(view)
    assert len(orjson.dumps(card)) < 28_000
    mail = email_message(view, "grp_1", "leads", "alerts.example.com")
    assert mail.subject and f"{n} alerts in billing" in mail.subject
    assert all(d["alert_id"] in mail.html for d in docs)


PROFILE = {
    "updated_at": "2026-11-22T12:00:00Z",
    "name": "Dana Ortiz",
    "company": "Ortiz Sons",
    "email": "dana.ortiz@example.com",
    "phone": "+1 202 555 0142",
    "preferred_channel": "phone",
    "crm_url": "https://crm.example.com/customers/42",
}


def test_no_message_carries_the_customers_profile() -> None:
    """Whom to call is personal data: the inbox shows it to the alert's queue; Slack, Teams and e-mail
    messages (read by whole channels and kept by other systems) never carry it."""
    profile = PROFILE
    doc = alert()
    doc["customer"] = {**doc["customer"], "profile": profile}
    escalation = sample("escalation", "dest")
    escalation["customer"] = {**(escalation.get("customer") or {}), "profile": profile}
    for kind, d in (("recovery_alert", doc), ("escalation", escalation)):
        view = view_of(kind, d, INBOX)
        mail = email_message(view, delivery_id(kind, d, "x"), "x", "example.com")
        rendered = [
            orjson.dumps(slack_message(view)).decode(),
            orjson.dumps(teams_message(view)).decode(),
            mail.subject + mail.text + mail.html,
        ]
        for text in rendered:
            for value in ("Dana", "Ortiz", "dana.ortiz", "555 0142", "crm.example.com"):
                assert value not in text, (kind, value)


def test_a_destination_with_include_contact_names_whom_to_call() -> None:
    doc = alert()
    doc["customer"] = {**doc["customer"], "profile": PROFILE}
    view = view_of("recovery_alert", doc, INBOX, contact=True)
    facts = dict(view.facts)
    assert facts["Customer"] == f"Dana Ortiz · Ortiz Sons ({doc['customer_id']})"
    assert facts["Contact"] == "+1 202 555 0142 · dana.ortiz@example.com (prefers phone)"
    for text in (
        orjson.dumps(slack_message(view)).decode(),
        orjson.dumps(teams_message(view)).decode(),
        email_message(view, "d", "x", "example.com").text,
    ):
        assert "Dana Ortiz" in text and "555 0142" in text
    bare = {**doc, "customer": {k: v for k, v in doc["customer"].items() if k != "profile"}}
    assert dict(view_of("recovery_alert", bare, INBOX, contact=True).facts)["Customer"] == doc["customer_id"]
