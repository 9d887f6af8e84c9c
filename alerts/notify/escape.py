"""One escaping function per output language: data from an event is text, never markup.

Every renderer passes every value taken from an event (comment, team, category, channel, tier,
agent, queue, root cause, note, ...) through the function of its output language. The rules:

* **All languages** (``clean``): bidirectional controls (U+202A-U+202E, U+2066-U+2069, U+200E,
  U+200F, U+061C) and invisible characters (zero-width space, joiners, word joiner, BOM, soft
  hyphen) are removed: they could make text read differently from what it is ("a lie"), or
  hide a link from the eye. Other control characters but newline and tab become spaces.
* **Slack mrkdwn** (``slack``): ``&``, ``<`` and ``>`` become ``&amp;``, ``&lt;`` and ``&gt;``
  (Slack's documented rule), so no ``<url|text>``, ``<!channel>`` or ``<@U123>`` can be
  written. Slack would still auto-link a bare URL and parse ``@here`` in escaped text: every
  ``mrkdwn`` object holding data also carries ``verbatim: true``, and the message's top-level
  ``text`` is sent with ``parse: none`` (see ``render.slack_message``).
* **Microsoft Teams** (``teams``): data goes into ``TextRun``s of a ``RichTextBlock``, which
  Adaptive Cards never read as Markdown; ``teams`` only cleans. Markdown (``TextBlock``) holds
  the service's own words alone.
* **HTML** (``html_text``, ``html_attribute``): ``& < > " '`` escaped; used by the e-mail's HTML
  part (the inbox and the digest page escape through Jinja2's autoescape, the same rule).
* **Markdown** (``markdown``): a backslash before every character Markdown gives a meaning to
  (``\\ ` * _ { } [ ] ( ) # + - . ! | < > ~``), so no link, emphasis, heading, list, table cell
  or HTML comes out of a value; line breaks become spaces (a value is never a block).
* **Plain text** (``plain``: e-mail text part, console): cleaned only; nothing in plain text is
  markup, and a URL in it is just characters a mail client may underline, never ours.
"""

from __future__ import annotations

import html
import re

_INVISIBLE = re.compile("[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c\u200b-\u200d\u2060\ufeff\u00ad\u180e]")
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~])")


def clean(text: str) -> str:
    """``text`` without bidirectional controls and invisible characters; other controls as spaces."""
    return _CONTROL.sub(" ", _INVISIBLE.sub("", text))


def slack(text: str) -> str:
    """Data in Slack mrkdwn (put it in a text object with ``verbatim: true``)."""
    return clean(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def teams(text: str) -> str:
    """Data in a Teams Adaptive Card ``TextRun`` (never in a Markdown ``TextBlock``)."""
    return clean(text)


def html_text(text: str) -> str:
    """Data as HTML text."""
    return html.escape(clean(text), quote=True)


def html_attribute(text: str) -> str:
    """Data in a quoted HTML attribute value."""
    return html.escape(clean(text), quote=True)


def markdown(text: str) -> str:
    """Data inline in Markdown: every meaningful character backslash-escaped, on one line."""
    return _MARKDOWN.sub(r"\\\1", clean(text).replace("\r", " ").replace("\n", " "))


def plain(text: str) -> str:
    """Data in plain text."""
    return clean(text)
