"""No value from an event becomes a link, a mention, markup or a lie in any destination.

Hostile strings (Markdown links, autolinks, bare URLs, Slack mentions, HTML, bidi and zero-width
characters, 100 KB) are put in every field an event can carry, of every message type, and each
output format is checked the way its receiver reads it: Slack's and Teams' JSON object by object,
HTML with an HTML parser, text line by line.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alerts.notify import escape
from alerts.notify.render import (
    email_message,
    envelope,
    group_view,
    slack_message,
    teams_message,
    view_of,
)
from stream.destinations.direct import sample

INBOX = "https://inbox.example.com"
TYPES = ("recovery_alert", "escalation", "followup_event", "ops_alert")
# what the service itself writes: ids, enumerations, times, numbers (not free text from an event)
OURS = {
    "schema_version", "alert_id", "escalation_id", "event_id", "original_alert_id", "overdue_alert_id",
    "kind", "severity", "status", "type", "source", "metric", "priority",
    "submitted_at", "created_at", "follow_up_due_at", "routed_at", "at", "opened_at", "window_start",
    "window_end",
}  # fmt: skip
NAMED = [
    "[Reset password](http://evil.example/login)",
    "<!channel> gold",
    "<@U123> <!here> <#C123|general>",
    "@here @channel @everyone",
    "http://evil.example/pwn www.evil.example",
    "<https://evil.example|click here>",
    "<script>alert(1)</script><img src=x onerror=alert(1)>",
    "<a href='https://evil.example'>x</a>",
    "**bold** _it_ ~strike~ `code` # heading\n- item\n1. one\n> quote",
    "![img](https://evil.example/x.png) [ref]: https://evil.example",
    "\u202eevil.example\u202c \u2066x\u2069 zero\u200bwidth\u200d\ufeff",
    "javascript:alert(1) data:text/html,<b>x</b>",
    "line\r\nInjected-Header: yes",
]
INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b-\u200d\u2060\ufeff\u00ad]")
HOSTILE_BITS = [*"<>[]()*_~`#!@&|:/\\.-\n \u202e\u200b", "http://", "<!", "ab"]
hostile = st.one_of(
    st.sampled_from(NAMED),
    st.lists(st.sampled_from(HOSTILE_BITS), max_size=40).map("".join),
    st.sampled_from(NAMED).map(lambda s: (s + " ") * 1200),  # ~100 KB
)


def poisoned(doc: Any, value: str) -> Any:
    """``doc`` with every string that can come from an event replaced by ``value``."""
    if isinstance(doc, dict):
        return {k: v if k in OURS else poisoned(v, value) for k, v in doc.items()}
    if isinstance(doc, list):
        return [poisoned(v, value) for v in doc]
    return value if isinstance(doc, str) else doc


def strings(obj: Any) -> list[str]:
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in strings(v)]
    return [obj] if isinstance(obj, str) else []


def objects(obj: Any) -> list[dict[str, Any]]:
    if isinstance(obj, dict):
        return [obj, *(o for v in obj.values() for o in objects(v))]
    if isinstance(obj, list):
        return [o for v in obj for o in objects(v)]
    return []


def check_slack(message: dict[str, Any]) -> None:
    assert message["parse"] == "none" and message["unfurl_links"] is False
    for o in objects(message):
        if o.get("type") == "mrkdwn":
            assert o.get("verbatim") is True, o  # no auto-linked URL, no parsed @here
            assert len(o["text"]) <= 3000
    # what Slack parses: mrkdwn objects and the top-level text (plain_text is never parsed)
    parsed = [message["text"], *(o["text"] for o in objects(message) if o.get("type") == "mrkdwn")]
    for s in parsed:
        own = re.sub(r"<https://inbox\.example\.com/[^|>]*\|open>", "", s)  # the service's own links
        assert "<" not in own, s[:200]  # so no <url|text>, <!channel>, <@U123> from data
    for s in strings(message):
        assert not INVISIBLE.search(s)
    for o in objects(message):
        if "url" in o:
            assert o["url"].startswith(INBOX)
    assert len(message["blocks"]) <= 50


def check_teams(message: dict[str, Any]) -> None:
    card = message["attachments"][0]["content"]
    for o in objects(card):
        assert o.get("type") not in ("TextBlock", "FactSet"), o  # Markdown holds no data: only TextRuns
    for s in strings(card):
        assert not INVISIBLE.search(s)
    for action in card.get("actions", []):
        assert action["url"].startswith(INBOX)
    assert len(orjson.dumps(message)) <= 28_000


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def check_email(mail: Any) -> None:
    parser = Tags()
    parser.feed(mail.html)
    allowed = {
        "html",
        "body",
        "h2",
        "h3",
        "p",
        "strong",
        "table",
        "tr",
        "th",
        "td",
        "blockquote",
        "ul",
        "li",
        "a",
    }
    for tag, attrs in parser.tags:
        assert tag in allowed, tag  # no <script>, <img> or anything else from data
        if tag == "a":
            assert (attrs.get("href") or "").startswith(INBOX), attrs
        assert not any(k.startswith("on") for k in attrs)
    assert "\n" not in mail.subject and "\r" not in mail.subject  # no header injection
    assert not INVISIBLE.search(mail.html + mail.text + mail.subject)


@settings(max_examples=60, deadline=None)
@given(value=hostile, message_type=st.sampled_from(TYPES))
@example(value="[Reset password](http://evil.example/login)", message_type="recovery_alert")
@example(value="<!channel> gold", message_type="escalation")
@example(value="http://evil.example/pwn @here", message_type="recovery_alert")
def test_no_field_of_any_event_becomes_markup_in_any_destination(value: str, message_type: str) -> None:
    doc = sample(message_type, "dest")
    if message_type in ("recovery_alert", "escalation"):  # whom to call too (include_contact)
        profile = dict.fromkeys(("name", "company", "email", "phone", "preferred_channel", "crm_url"), "x")
        doc["customer"] = {**(doc.get("customer") or {}), "profile": profile}
    doc = poisoned(doc, value)
    view = view_of(message_type, doc, INBOX, contact=True)
    check_slack(slack_message(view))
    check_teams(teams_message(view))
    check_email(email_message(view, "d-1", "dest", "example.com"))
    orjson.loads(
        orjson.dumps(
            envelope(message_type, doc, __import__("datetime").datetime.now(__import__("datetime").UTC))
        )
    )


@settings(max_examples=30, deadline=None)
@given(value=hostile)
def test_a_grouped_message_escapes_every_line(value: str) -> None:
    docs = [poisoned(sample("recovery_alert", f"d{i}"), value) for i in range(3)]
    view = group_view("recovery_alert", docs, INBOX)
    check_slack(slack_message(view))
    check_teams(teams_message(view))
    check_email(email_message(view, "d-1", "dest", "example.com"))


def test_the_named_cases_come_out_as_text() -> None:
    doc = sample("recovery_alert", "dest")
    doc["comment"] = "[Reset password](http://evil.example/login)"
    doc["customer"]["tier"] = "<!channel> gold"
    view = view_of("recovery_alert", doc, INBOX)
    slack = slack_message(view)
    assert "<!channel>" not in slack["text"] and "&lt;!channel&gt; gold" in orjson.dumps(slack).decode()
    card = orjson.dumps(teams_message(view)).decode()
    assert '"type":"TextRun","text":"[Reset password](http://evil.example/login)"' in card


@given(st.text(max_size=200))
def test_markdown_escape_leaves_no_meaningful_character_bare(text: str) -> None:
    out = escape.markdown(text)
    bare = re.sub(r"\\.", "", out)  # what is not backslash-escaped
    assert not re.search(r"[\\`*_{}\[\]()#+\-.!|<>~\n\r]", bare)
    assert re.sub(r"\\(.)", r"\1", out) == escape.clean(text).replace("\r", " ").replace("\n", " ")
