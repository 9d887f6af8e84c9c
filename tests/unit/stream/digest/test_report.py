"""The digest's Markdown and HTML: a contact driver, team, queue or root cause is text, never markup."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from typing import Any

import orjson
from hypothesis import example, given, settings
from hypothesis import strategies as st

from alerts.digest import build
from stream.digest.report import html, markdown

NOW = 1_795_000_000.0
WEEK = 7 * 86400.0
HOSTILE = st.sampled_from(
    [
        "[Reset password](http://evil.example/login)",
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "**bold** | cell | # heading",
        "![x](https://evil.example/x.png)",
        "\u202eevil\u202c",
    ]
)


def digest_with(name: str) -> Any:
    alerts = [
        {
            "alert_id": f"a{i}",
            "kind": "detractor",
            "status": "resolved" if i < 3 else "open",
            "queue": name,
            "team": name,
            "customer_id": f"c{i % 2}",
            "tier": "gold",
            "account_value": 90_000.0,
            "created_at": NOW - 3600,
            "due_at": NOW - 60,
            "doc": {"category": name},
        }
        for i in range(12)
    ]
    events = [
        {"alert_id": f"a{i}", "type": "resolved", "at": NOW - 2000, "root_cause": name} for i in range(3)
    ]
    escalations = [
        {"team": name, "customer_id": "c1", "doc": orjson.dumps({"ticket": {"category": name}}).decode()}
    ] * 2
    snaps = [
        {
            "dimension": "overall",
            "key": "all",
            "metric": "nps",
            "value": -10.0,
            "responses": 400,
            "stderr": 4.0,
        },
        {"dimension": "category", "key": name, "metric": "nps", "responses": 60, "detractors": 40},
    ]
    return build(
        NOW - WEEK,
        NOW,
        {"alerts": alerts, "events": events, "escalations": escalations},
        {"alerts": [], "events": [], "escalations": []},
        snaps,
        [],
        {"nps": 30, "close_ratio": 0.8},
        frozenset({"gold"}),
        50_000,
        NOW,
    )


class Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        assert not any(k.startswith("on") for k, _ in attrs)


@settings(max_examples=12, deadline=None)
@given(HOSTILE)
@example("[Reset password](http://evil.example/login)")
def test_names_from_events_are_text_in_the_markdown_and_the_page(name: str) -> None:
    d = digest_with(name)
    md = markdown(d)
    bare = re.sub(r"\\.", "", md)  # what is not backslash-escaped
    assert "[" not in bare and "<" not in bare and "](" not in bare, md
    assert "\u202e" not in md
    parser = Tags()
    parser.feed(html(d))
    assert set(parser.tags) <= {
        "html", "head", "meta", "title", "style", "body", "header", "main", "section", "h1", "h2", "h3",
        "p", "strong", "em", "table", "thead", "tbody", "tr", "th", "td", "ul", "ol", "li", "svg", "g",
        "rect", "text", "line", "small", "span", "div", "footer", "figure", "figcaption", "caption", "br",
    }, parser.tags  # fmt: skip
    assert "script" not in parser.tags and "img" not in parser.tags and "a" not in parser.tags


def test_each_goal_bar_has_its_scale_written_under_it() -> None:
    from alerts.digest import Goal
    from stream.digest.charts import goals

    nps = Goal("nps", "NPS", 30, -10.0, 400, None, None, None, False)
    csat = Goal("csat", "CSAT", 80, 85.0, 300, None, None, None, True)
    svg = goals([nps, csat])
    scales = re.findall(r'<text class="scale"[^>]*>([^<]*)</text>', svg)
    assert scales == ["-100", "100", "0", "0%", "100%"]  # NPS: both ends and its zero line
    page = html(digest_with("billing"))
    assert re.findall(r'<text class="scale"[^>]*>([^<]*)</text>', page)[:3] == ["-100", "100", "0"]
