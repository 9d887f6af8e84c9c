"""What each destination kind receives: one ``View`` of a message, rendered per kind.

Everything a person needs to act without looking anything up: what happened (kind,
score, tier, account value), where it belongs (team, queue), the customer's words,
recent scores, open tickets, the due time, the playbook's suggestion, and a link to
the alert in the inbox. Every value from an event passes the escaping function of the
output language (``alerts.notify.escape``: Slack mrkdwn, Teams, HTML, plain text), so it
can never become a link, a mention or markup, and every part is cut to the receiver's
documented limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import orjson

from alerts.ids import stable_id
from alerts.notify import escape
from schemas.common import format_timestamp

# Slack Block Kit: header text 150, section text 3,000, a field 2,000, 10 fields, 50 blocks.
SLACK_HEADER = 150
SLACK_TEXT = 3000
SLACK_FIELD = 2000
COMMENT_CHARS = 500  # of the customer's comment, in chat messages
TEAMS_MAX_BYTES = 28_000  # an Adaptive Card in a Teams message

_BADGE = {"critical": "🔴", "warning": "🟠", "info": "🔵"}
_TITLES = {
    "detractor": "Detractor",
    "low_effort": "High effort",
    "low_csat": "Low CSAT",
    "low_stars": "Low rating",
    "followup_overdue": "Follow-up overdue",
    "trend_drop": "Score trend drop",
    "destination_disabled": "Notification destination disabled",
}


def cut(text: str, limit: int) -> str:
    """``text`` within ``limit`` characters, marked with an ellipsis when cut."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def money(value: float | None) -> str | None:
    """An account value as a reader scans it: $41,250 or $1.2M."""
    if value is None:
        return None
    if value >= 1_000_000:
        return f"${value / 1_000_000:.1f}M"
    return f"${value:,.0f}"


_LABELS = {"nps": "NPS", "csat": "CSAT", "ces": "CES", "stars": "Stars"}


def _scores(row: dict[str, Any]) -> str:
    return ", ".join(f"{label} {row[name]}" for name, label in _LABELS.items() if row.get(name) is not None)


@dataclass
class View:
    """A message as a person reads it, independent of the format."""

    title: str
    severity: str | None
    summary: str  # one line: what, score, tier, value
    facts: list[tuple[str, str]] = field(default_factory=list)
    comment: str | None = None
    recent: list[str] = field(default_factory=list)
    tickets: list[str] = field(default_factory=list)
    suggestion: str | None = None
    link: str | None = None
    footer: str = ""
    thread: str | None = None  # the alert a message belongs to (e-mail threading)
    body: str | None = None  # a report's Markdown (the digest)
    html: str | None = None  # a report's own HTML page, for e-mail
    items: list[tuple[str, str | None]] = field(default_factory=list)  # a grouped message: line, link

    @property
    def badge(self) -> str:
        return _BADGE.get(self.severity or "", "⚪")


def inbox_link(inbox_url: str | None, alert_id: str | None) -> str | None:
    """The alert's page in the inbox, when the inbox's URL is configured."""
    if not inbox_url or not alert_id:
        return None
    return f"{inbox_url.rstrip('/')}/alerts/{alert_id}"


def view_of(
    message_type: str, doc: dict[str, Any], inbox_url: str | None = None, contact: bool = False
) -> View:
    """The ``View`` of an output document of ``message_type``; with ``contact`` (a destination's
    ``include_contact``) an alert or escalation names whom to call, from its CRM profile."""
    if message_type in ("recovery_alert", "escalation"):
        view = (
            _alert_view(doc, inbox_url)
            if message_type == "recovery_alert"
            else _escalation_view(doc, inbox_url)
        )
        if contact:
            view.facts[1:1] = _contact_facts(doc)
        return view
    if message_type == "followup_event":
        return _event_view(doc, inbox_url)
    if message_type == "digest":
        return View(
            title=str(doc.get("subject", "Customer service update")),
            severity="info" if doc.get("on_track") else "warning",
            summary=str(doc.get("headline", "")),
            body=str(doc.get("markdown", "")),
            html=doc.get("html"),
            footer=str(doc.get("period", "")),
        )
    return _ops_view(doc)


def group_view(message_type: str, docs: list[dict[str, Any]], inbox_url: str | None = None) -> View:
    """One message for several documents of one queue (a destination's ``group_s``): a line each,
    worst first, with a link to each alert and to the queue's page in the inbox."""
    views = [view_of(message_type, doc, inbox_url) for doc in docs]
    order = {"critical": 0, "warning": 1, "info": 2}
    rows = sorted(zip(views, docs, strict=True), key=lambda vd: order.get(vd[0].severity or "", 3))
    queue = next((str(d["queue"]) for d in docs if d.get("queue")), None)
    what = "alerts" if message_type == "recovery_alert" else "escalations"
    counts = {sev: sum(v.severity == sev for v in views) for sev in ("critical", "warning", "info")}
    tally = ", ".join(f"{n} {sev}" for sev, n in counts.items() if n)
    where = f" in {queue}" if queue else ""
    lines, items, pairs = [], [], []
    for v, _doc in rows:
        text = f"{v.badge} {v.summary}"
        pairs.append((text, v.link))
        lines.append(f"- {escape.markdown(text)}" + (f" ([open]({v.link}))" if v.link else ""))
        anchor = f' <a href="{escape.html_attribute(v.link)}">open</a>' if v.link else ""
        items.append(f"<li>{escape.html_text(text)}{anchor}</li>")
    # a queue is at most 200 characters (the worker's names): a longer one is no queue to link to
    link = None
    if inbox_url and queue:
        link = f"{inbox_url.rstrip('/')}/alerts?{urlencode({'queue': queue[:200]})}"
    page = (
        "<!doctype html><html><body style='font-family:sans-serif'>"
        f"<h2>{escape.html_text(f'{len(docs)} {what}{where}')}</h2><p>{escape.html_text(tally)}</p>"
        f"<ul>{''.join(items)}</ul>"
        + (f'<p><a href="{escape.html_attribute(link)}">Open the queue in the inbox</a></p>' if link else "")
        + "</body></html>"
    )
    return View(
        title=f"{len(docs)} {what}{where}",
        severity=rows[0][0].severity if rows else None,
        summary=f"{len(docs)} {what}{where}: {tally}",
        body="\n".join(lines),
        html=page,
        items=pairs,
        link=link,
        footer=f"survey-alerts · {what} of {queue or 'one queue'} gathered into one message",
    )


def _contact_facts(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """Whom to call, from the document's ``customer.profile`` (none: the customer id alone)."""
    found = (doc.get("customer") or {}).get("profile") if isinstance(doc.get("customer"), dict) else None
    profile: dict[str, Any] = found if isinstance(found, dict) else {}
    who = " · ".join(str(profile[k]) for k in ("name", "company") if profile.get(k))
    facts = [("Customer", f"{who} ({doc.get('customer_id')})" if who else str(doc.get("customer_id") or "-"))]
    reach = " · ".join(str(profile[k]) for k in ("phone", "email") if profile.get(k))
    if reach:
        preferred = profile.get("preferred_channel")
        facts.append(("Contact", reach + (f" (prefers {preferred})" if preferred else "")))
    return facts


def _customer_bits(customer: dict[str, Any]) -> list[str]:
    bits = []
    if customer.get("tier"):
        bits.append(str(customer["tier"]))
    value = money(customer.get("account_value"))
    if value:
        bits.append(f"{value}/yr")
    return bits


def _alert_view(doc: dict[str, Any], inbox_url: str | None) -> View:
    customer = doc.get("customer") or {}
    kind = str(doc.get("kind"))
    title = _TITLES.get(kind, kind.replace("_", " ").capitalize())
    if kind == "followup_overdue":
        title += f" (notice {doc.get('notice')})"
        score = f"{float(doc.get('score') or 0) / 60:.0f} min past due"
    else:
        score = f"{_LABELS.get(str(doc.get('metric')), str(doc.get('metric')))} {doc.get('score')}"
    summary = " · ".join([title, score, *_customer_bits(customer)])
    facts = [
        ("Team", doc.get("team") or "-"),
        ("Queue", doc.get("queue") or "-"),
        ("Severity", str(doc.get("severity"))),
        ("Due", _when(doc.get("follow_up_due_at"))),
    ]
    if doc.get("ticket_id"):
        facts.append(("Ticket", str(doc["ticket_id"])))
    if doc.get("channel") or doc.get("category"):
        facts.append(("Channel / driver", f"{doc.get('channel') or '-'} / {doc.get('category') or '-'}"))
    recent = [
        f"{str(r.get('submitted_at', ''))[:10]}: {_scores(r)}" for r in customer.get("recent_scores") or []
    ]
    tickets = [
        " · ".join(
            str(x)
            for x in (
                t.get("ticket_id"),
                t.get("status"),
                t.get("team"),
                t.get("category"),
                t.get("priority"),
            )
            if x
        )
        + (" · escalated" if t.get("escalated") else "")
        for t in customer.get("open_tickets") or []
    ]
    alert_id = str(doc.get("original_alert_id") or doc.get("alert_id"))
    return View(
        title=title,
        severity=doc.get("severity"),
        summary=summary,
        facts=facts,
        comment=doc.get("comment"),
        recent=recent[:5],
        tickets=tickets[:5],
        suggestion=_suggestion(doc.get("playbook")),
        link=inbox_link(inbox_url, alert_id),
        footer=f"{doc.get('alert_id')} · rule {doc.get('rule')}",
        thread=alert_id,
    )


def _suggestion(playbook: dict[str, Any] | None) -> str | None:
    if not playbook:
        return None
    first = playbook.get("first_tier") or {}
    text = str(first.get("action", ""))
    if first.get("cap") is not None:
        text += f" (concession up to {money(first['cap'])})"
    second = playbook.get("second_tier")
    if second:
        text += f"; on push-back: {second.get('action')}"
        if second.get("cap") is not None:
            text += f" (up to {money(second['cap'])})"
    return text


def _escalation_view(doc: dict[str, Any], inbox_url: str | None) -> View:
    source = str(doc.get("source", "")).replace("_", " ")
    title = f"Escalation to {doc.get('queue')}"
    bits = [title, source, str(doc.get("priority"))]
    bits += _customer_bits({"tier": doc.get("customer_tier"), "account_value": doc.get("account_value")})
    customer = doc.get("customer") or {}
    ticket = doc.get("ticket") or {}
    facts = [
        ("Team", doc.get("team") or "-"),
        ("Queue", str(doc.get("queue"))),
        ("Priority", str(doc.get("priority"))),
        ("Routed by", str(doc.get("rule"))),
    ]
    if doc.get("ticket_id"):
        facts.append(("Ticket", f"{doc['ticket_id']} ({ticket.get('status', '?')})"))
    recent = [
        f"{str(r.get('submitted_at', ''))[:10]}: {_scores(r)}" for r in customer.get("recent_scores") or []
    ]
    return View(
        title=title,
        severity="critical" if doc.get("priority") == "urgent" else "warning",
        summary=" · ".join(b for b in bits if b),
        facts=facts,
        comment=doc.get("reason"),
        recent=recent[:5],
        link=inbox_link(inbox_url, doc.get("alert_id")),
        footer=f"{doc.get('escalation_id')}",
        thread=doc.get("alert_id") or doc.get("escalation_id"),
    )


def _event_view(doc: dict[str, Any], inbox_url: str | None) -> View:
    kind = str(doc.get("type"))
    who = f" by {doc['actor']}" if doc.get("actor") else ""
    title = f"Follow-up {kind}{who}"
    facts = [
        ("Status", str(doc.get("status"))),
        ("Queue", doc.get("queue") or "-"),
        ("At", _when(doc.get("at"))),
    ]
    if doc.get("root_cause"):
        facts.append(("Root cause", str(doc["root_cause"])))
    if doc.get("notice"):
        facts.append(("Notice", str(doc["notice"])))
    return View(
        title=title,
        severity=doc.get("severity") if kind == "overdue" else "info",
        summary=f"{title} · {doc.get('kind') or 'alert'} · team {doc.get('team') or '-'}",
        facts=facts,
        comment=doc.get("note"),
        link=inbox_link(inbox_url, doc.get("alert_id")),
        footer=f"{doc.get('alert_id')} · {doc.get('event_id')}",
        thread=doc.get("alert_id"),
    )


def _ops_view(doc: dict[str, Any]) -> View:
    kind = str(doc.get("kind"))
    title = _TITLES.get(kind, kind.replace("_", " ").capitalize())
    if kind == "trend_drop":
        metric = str(doc.get("metric", "")).upper()
        summary = (
            f"{title} · {doc.get('dimension')} {doc.get('key')}: {metric} {doc.get('value'):.1f} in "
            f"{doc.get('short_window')} vs {doc.get('baseline'):.1f} before (n={doc.get('responses')})"
        )
        facts = [
            ("z", f"{doc.get('z'):.2f}"),
            ("Window", f"{_when(doc.get('window_start'))} - {_when(doc.get('window_end'))}"),
        ]
    else:
        summary = f"{title} · {doc.get('summary') or ''}".rstrip(" ·")
        facts = [(str(k), str(v)) for k, v in doc.items() if k in ("destination", "status", "reason")]
    return View(
        title=title,
        severity=doc.get("severity"),
        summary=summary,
        facts=facts,
        footer=str(doc.get("alert_id")),
    )


def _when(stamp: Any) -> str:
    """An RFC 3339 time as ``2026-11-22 17:20 UTC``."""
    text = str(stamp or "")
    return f"{text[:10]} {text[11:16]} UTC" if len(text) >= 16 else (text or "-")


# -- Standard Webhooks ------------------------------------------------------------------


def envelope(message_type: str, doc: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The body of a webhook (contract: ``{type, timestamp, data}``)."""
    return {"type": message_type, "timestamp": format_timestamp(now), "data": doc}


ID_FIELDS = {
    "recovery_alert": "alert_id",
    "escalation": "escalation_id",
    "followup_event": "event_id",
    "ops_alert": "alert_id",
}


def document_id(message_type: str, doc: dict[str, Any]) -> str:
    """The id that makes a document recognisable: its alert, escalation or event id."""
    value = doc.get(ID_FIELDS.get(message_type, "alert_id"))
    if value:
        return str(value)
    return stable_id("doc", message_type, orjson.dumps(doc, option=orjson.OPT_SORT_KEYS).decode())


def delivery_id(message_type: str, doc: dict[str, Any], destination: str) -> str:
    """One document to one destination: the ``webhook-id``, the same on every retry."""
    return stable_id("msg", document_id(message_type, doc), destination)


# -- Slack ------------------------------------------------------------------------------


mrkdwn = escape.slack  # data in Slack mrkdwn (``escape`` has the rules)


def _mrkdwn_object(text: str) -> dict[str, Any]:
    """A Slack mrkdwn text object that holds data: ``verbatim`` so that Slack auto-links no bare URL
    and parses no ``@here`` or channel name in it (explicit ``<url|text>`` are ours alone)."""
    return {"type": "mrkdwn", "text": text, "verbatim": True}


def _slack_url(url: str) -> str:
    """A URL inside Slack's ``<url|text>``: the characters that would end it percent-encoded."""
    return url.replace(" ", "%20").replace("<", "%3C").replace(">", "%3E").replace("|", "%7C")


def _to_mrkdwn(markdown: str) -> str:
    """Markdown headings, bold and tables as Slack shows them."""
    out = []
    # the report's values are Markdown-escaped (``escape.markdown``); Slack shows backslashes as they
    # are, and with ``& < >`` escaped and ``verbatim`` nothing in them can link or mention
    for line in re.sub(r"\\(.)", r"\1", mrkdwn(markdown)).splitlines():
        if line.startswith("#"):
            line = "*" + line.lstrip("# ").strip() + "*"
        elif line.startswith("|---"):
            continue
        elif line.startswith("|"):
            line = " · ".join(cell.strip() for cell in line.strip("|").split("|"))
        out.append(line.replace("**", "*"))
    return "\n".join(out)


def _chunks(text: str, limit: int) -> list[str]:
    """``text`` in pieces of at most ``limit`` characters, cut at line ends where possible."""
    pieces, current = [], ""
    for line in text.splitlines():
        while len(line) > limit:
            pieces.append(line[:limit])
            line = line[limit:]
        if len(current) + len(line) + 1 > limit:
            pieces.append(current)
            current = ""
        current += line + "\n"
    if current.strip():
        pieces.append(current)
    return [p for p in pieces if p.strip()][:40]


def slack_message(view: View) -> dict[str, Any]:
    """A Slack incoming-webhook body in Block Kit, within its limits."""
    blocks: list[dict[str, Any]] = [
        {
            "type": "header",
            "text": {
                "type": "plain_text",
                "text": cut(f"{view.badge} {escape.plain(view.title)}", SLACK_HEADER),
                "emoji": True,
            },
        },
        {"type": "section", "text": _mrkdwn_object(cut(f"*{mrkdwn(view.summary)}*", SLACK_TEXT))},
    ]
    if view.facts:
        blocks.append(
            {
                "type": "section",
                "fields": [
                    _mrkdwn_object(cut(f"*{mrkdwn(k)}*\n{mrkdwn(v)}", SLACK_FIELD))
                    for k, v in view.facts[:10]
                ],
            }
        )
    if view.items:  # a grouped message: a line per document, each with its link
        lines = [
            # cut before escaping, so that no line is longer than a section and none is split in two
            f"• {mrkdwn(cut(text, 300))}" + (f" <{_slack_url(link)}|open>" if link else "")
            for text, link in view.items
        ]
        for chunk in _chunks("\n".join(lines), SLACK_TEXT):
            blocks.append({"type": "section", "text": _mrkdwn_object(chunk)})
    elif view.body:  # a report: its Markdown as mrkdwn sections
        for chunk in _chunks(_to_mrkdwn(view.body), SLACK_TEXT):
            blocks.append({"type": "section", "text": _mrkdwn_object(chunk)})
    if view.comment:
        quoted = "\n".join(
            "> " + line for line in mrkdwn(cut(view.comment, COMMENT_CHARS)).splitlines() or [""]
        )
        blocks.append({"type": "section", "text": _mrkdwn_object(cut(quoted, SLACK_TEXT))})
    for heading, lines in (("Recent scores", view.recent), ("Open tickets", view.tickets)):
        if lines:
            body = f"*{heading}*\n" + "\n".join(f"• {mrkdwn(line)}" for line in lines)
            blocks.append({"type": "section", "text": _mrkdwn_object(cut(body, SLACK_TEXT))})
    if view.suggestion:
        text = f"*Suggested:* {mrkdwn(view.suggestion)}"
        blocks.append({"type": "section", "text": _mrkdwn_object(cut(text, SLACK_TEXT))})
    if view.link:
        blocks.append(
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in inbox"},
                        "url": view.link,
                    }
                ],
            }
        )
    blocks.append({"type": "context", "elements": [_mrkdwn_object(cut(mrkdwn(view.footer), SLACK_TEXT))]})
    # the notification line and fallback: escaped too, and ``parse: none`` so that Slack links no
    # name or bare URL in it; nothing of the message unfurls
    return {
        "text": cut(f"{view.badge} {mrkdwn(view.summary)}", SLACK_TEXT),
        "parse": "none",
        "unfurl_links": False,
        "unfurl_media": False,
        "blocks": blocks[:50],
    }


# -- Microsoft Teams --------------------------------------------------------------------


def _text_runs(*runs: tuple[str, bool], limit: int = 1000) -> dict[str, Any]:
    """A ``RichTextBlock`` of ``TextRun``s ``(text, bold)``: Adaptive Cards read no Markdown in a run."""
    inlines: list[dict[str, Any]] = []
    for text, bold in runs:
        run: dict[str, Any] = {"type": "TextRun", "text": cut(escape.teams(text), limit)}
        if bold:
            run["weight"] = "Bolder"
        inlines.append(run)
    return {"type": "RichTextBlock", "inlines": inlines}


def _report_runs(markdown: str) -> list[dict[str, Any]]:
    """A report's Markdown as plain runs: headings bold, the rest as text (its escapes undone)."""
    blocks = []
    for line in markdown.splitlines():
        if not line.strip() or line.startswith("|---"):
            continue
        heading = line.startswith("#")
        text = line.lstrip("# ").replace("**", "") if heading else line.replace("**", "")
        if text.startswith("|"):
            text = " · ".join(cell.strip() for cell in text.strip("|").split("|"))
        blocks.append(_text_runs((re.sub(r"\\(.)", r"\1", text), heading)))
    return blocks


def teams_message(view: View) -> dict[str, Any]:
    """A Teams workflow-webhook body: one Adaptive Card (1.4) carrying the same as Slack's.

    Every value from an event is in a ``TextRun`` (``_runs``): a comment such as
    ``[Reset password](http://evil.example)`` shows as those characters, never as a link. The
    card stays within Teams' 28 KB: longer values are cut shorter until it fits.
    """
    for limit in (1000, 300, 100, 40):
        message = _teams_card(view, limit)
        if len(orjson.dumps(message)) <= TEAMS_MAX_BYTES:
            break
    return message


def _teams_card(view: View, limit: int) -> dict[str, Any]:
    def _runs(*runs: tuple[str, bool]) -> dict[str, Any]:
        return _text_runs(*runs, limit=limit)

    body: list[dict[str, Any]] = [
        {**_runs((f"{view.badge} {view.title}", True)), "spacing": "None"},
        _runs((view.summary, False)),
    ]
    body.extend(_runs((f"{k}: ", True), (v, False)) for k, v in view.facts[:12])
    if view.items:  # a grouped message: a line per document (each alert's own button is in the inbox)
        body.extend(_runs((f"- {text}", False)) for text, _ in view.items[:25])
    elif view.body:
        body.extend(_report_runs(view.body)[:120])
    if view.comment:
        body.append(
            {
                "type": "Container",
                "style": "emphasis",
                "items": [_runs((cut(view.comment, COMMENT_CHARS), False))],
            }
        )
    for heading, lines in (("Recent scores", view.recent), ("Open tickets", view.tickets)):
        if lines:
            body.append(_runs((heading, True)))
            body.extend({**_runs((f"- {line}", False)), "spacing": "None"} for line in lines[:10])
    if view.suggestion:
        body.append(_runs(("Suggested: ", True), (view.suggestion, False)))
    body.append(_runs((view.footer, False)))
    card: dict[str, Any] = {
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "type": "AdaptiveCard",
        "version": "1.4",
        "body": body,
    }
    if view.link:
        card["actions"] = [{"type": "Action.OpenUrl", "title": "Open in inbox", "url": view.link}]
    return {
        "type": "message",
        "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}
        ],
    }


# -- E-mail -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mail:
    """An e-mail's parts; ``message_id`` and ``references`` thread one alert's messages."""

    subject: str
    text: str
    html: str
    message_id: str
    references: str | None


def message_id(key: str, domain: str) -> str:
    """A deterministic RFC 5322 Message-ID."""
    return f"<{key}@{domain}>"


def email_message(view: View, delivery: str, destination: str, domain: str) -> Mail:
    """Text and HTML parts of an e-mail; a re-notification of an alert references the alert's first mail."""
    p = escape.plain
    # a header line: no line break can start another header
    subject = cut(" ".join(p(f"[{(view.severity or 'info').upper()}] {view.summary}").split()), 200)
    lines = [p(view.summary), ""]
    lines += [f"{p(k)}: {p(v)}" for k, v in view.facts]
    if view.comment:
        lines += ["", "Customer's words:", *("> " + x for x in p(view.comment).splitlines())]
    for heading, items in (("Recent scores", view.recent), ("Open tickets", view.tickets)):
        if items:
            lines += ["", f"{heading}:", *(f"- {p(x)}" for x in items)]
    if view.items:
        lines += ["", *(f"- {p(text)}" + (f"  {link}" if link else "") for text, link in view.items)]
    if view.suggestion:
        lines += ["", f"Suggested: {p(view.suggestion)}"]
    if view.link:
        lines += ["", f"Open in the inbox: {view.link}"]
    lines += ["", "-- ", p(view.footer)]
    e = escape.html_text
    rows = "".join(f"<tr><th align='left'>{e(k)}</th><td>{e(v)}</td></tr>" for k, v in view.facts)
    parts = [
        f"<h2 style='margin:0 0 8px'>{e(view.badge)} {e(view.title)}</h2>",
        f"<p><strong>{e(view.summary)}</strong></p>",
        f"<table cellpadding='4' style='border-collapse:collapse'>{rows}</table>",
    ]
    if view.comment:
        parts.append(
            "<blockquote style='border-left:3px solid #999;margin:12px 0;padding-left:8px'>"
            f"{e(view.comment)}</blockquote>"
        )
    for heading, items in (("Recent scores", view.recent), ("Open tickets", view.tickets)):
        if items:
            parts.append(f"<h3>{e(heading)}</h3><ul>" + "".join(f"<li>{e(x)}</li>" for x in items) + "</ul>")
    if view.suggestion:
        parts.append(f"<p><strong>Suggested:</strong> {e(view.suggestion)}</p>")
    if view.link:
        parts.append(f"<p><a href='{escape.html_attribute(view.link)}'>Open in the inbox</a></p>")
    parts.append(f"<p style='color:#777;font-size:small'>{e(view.footer)}</p>")
    body = "<!doctype html><html><body style='font-family:sans-serif'>" + "".join(parts) + "</body></html>"
    if view.items:  # a grouped message: its lines (above) and its own page
        body = view.html or body
    elif view.body is not None:  # a report: its own text and page
        subject = cut(" ".join(p(view.title).split()), 200)
        lines = [view.body]
        body = view.html or body
    first = stable_id("msg", view.thread, destination) if view.thread else None
    own = message_id(delivery, domain)
    references = message_id(first, domain) if first and first != delivery else None
    return Mail(subject, "\n".join(lines) + "\n", body, own, references)


def console_text(view: View) -> str:
    """What the console destination prints: the message as a person would read it."""
    p = escape.plain
    lines = [f"{view.badge} {p(view.summary)}"]
    lines += [f"    {p(k)}: {p(v)}" for k, v in view.facts]
    if view.comment:
        lines.append(f"    “{' '.join(p(cut(view.comment, 160)).split())}”")  # one line, however written
    if view.suggestion:
        lines.append(f"    suggested: {p(view.suggestion)}")
    if view.link:
        lines.append(f"    {view.link}")
    return "\n".join(lines)
