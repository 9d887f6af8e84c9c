"""Small inline SVG charts for the HTML digest: no script, no external asset, readable in print."""

from __future__ import annotations

import re
from html import escape

from alerts.digest import Goal, Risk, fmt

INK, MUTED, GOOD, BAD, BLUE, ORANGE = "#1d2330", "#687083", "#2e7d32", "#c62828", "#1565c0", "#e08a00"


def drivers(risks: list[Risk], width: int = 640) -> str:
    """Per contact driver: its share of contacts (blue) beside its share of detractors (orange)."""
    rows = risks[:8]
    if not rows:
        return ""
    bar_h, gap, label_w = 12, 14, 150
    height = 30 + len(rows) * (2 * bar_h + gap)
    top = max([r.contact_share for r in rows] + [r.detractor_share for r in rows] + [0.01])
    scale = (width - label_w - 60) / top
    parts = [
        '<svg xmlns="http://www.w3.org/2000/svg" role="img" '
        'aria-label="Contact drivers: share of contacts and of detractors" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart">',
        f'<text x="{label_w}" y="14" font-size="12" fill="{BLUE}">■ share of contacts</text>',
        f'<text x="{label_w + 150}" y="14" font-size="12" fill="{ORANGE}">■ share of detractors</text>',
    ]
    y = 30
    for r in rows:
        name = escape(r.driver.replace("_", " ")[:24])
        parts.append(f'<text x="0" y="{y + bar_h + 4}" font-size="12" fill="{INK}">{name}</text>')
        for i, (share, colour) in enumerate(((r.contact_share, BLUE), (r.detractor_share, ORANGE))):
            w = max(1.0, share * scale)
            yy = y + i * bar_h
            parts.append(
                f'<rect x="{label_w}" y="{yy}" width="{w:.1f}" height="{bar_h - 2}" fill="{colour}"/>'
            )
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{yy + bar_h - 3}" font-size="11" fill="{MUTED}">'
                f"{share:.0%}</text>"
            )
        y += 2 * bar_h + gap
    parts.append("</svg>")
    return "".join(parts)


def _tick(metric: str, value: float) -> str:
    """A scale's end as the goal's unit writes it, without a trailing ".0" ("-100", "100%")."""
    return re.sub(r"\.0(?!\d)", "", fmt(metric, value))


def goals(items: list[Goal], width: int = 640) -> str:
    """Each goal as a bullet: the value's bar against the goal's tick, green when met, red when missed,
    with its scale's ends written under it (NPS runs from -100 to 100, a zero line marks the middle)."""
    rows = [g for g in items if g.value is not None]
    if not rows:
        return ""
    bar_h, gap, label_w = 16, 22, 190
    height = 10 + len(rows) * (bar_h + gap)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="Performance against goals" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" class="chart">'
    ]
    y = 6
    span = width - label_w - 120
    for g in rows:
        value = float(g.value or 0)
        low = {"nps": -100.0, "ces": 1.0}.get(g.metric, 0.0)
        high = {"nps": 100.0, "csat": 100.0, "ces": 7.0, "close_ratio": 1.0}.get(
            g.metric, max(value, g.goal) * 1.5 or 1.0
        )

        def x(v: float, low: float = low, high: float = high) -> float:
            return label_w + (min(max(v, low), high) - low) / (high - low) * span

        colour = GOOD if g.met else BAD
        parts.append(f'<text x="0" y="{y + bar_h - 3}" font-size="12" fill="{INK}">{escape(g.label)}</text>')
        parts.append(f'<rect x="{label_w}" y="{y}" width="{span}" height="{bar_h}" fill="#eef1f6"/>')
        for at, anchor in ((low, "start"), (high, "end")):
            parts.append(
                f'<text class="scale" x="{x(at):.1f}" y="{y + bar_h + 11}" font-size="9" '
                f'text-anchor="{anchor}" fill="{MUTED}">{escape(_tick(g.metric, at))}</text>'
            )
        if low < 0 < high:
            parts.append(
                f'<line x1="{x(0):.1f}" x2="{x(0):.1f}" y1="{y}" y2="{y + bar_h}" stroke="{MUTED}" '
                'stroke-width="1"/>'
            )
            parts.append(
                f'<text class="scale" x="{x(0):.1f}" y="{y + bar_h + 11}" font-size="9" '
                f'text-anchor="middle" fill="{MUTED}">{escape(_tick(g.metric, 0.0))}</text>'
            )
        base = x(0.0) if low < 0 < high else float(label_w)  # NPS: from its zero line, either way
        left, right = sorted((base, x(value)))
        parts.append(
            f'<rect x="{left:.1f}" y="{y + 3}" width="{right - left:.1f}" '
            f'height="{bar_h - 6}" fill="{colour}"/>'
        )
        parts.append(
            f'<line x1="{x(g.goal):.1f}" x2="{x(g.goal):.1f}" y1="{y - 2}" y2="{y + bar_h + 2}" '
            f'stroke="{INK}" stroke-width="2"/>'
        )
        parts.append(
            f'<text x="{label_w + span + 6}" y="{y + bar_h - 3}" font-size="12" fill="{INK}">'
            f"{escape(fmt(g.metric, g.value))} / {escape(fmt(g.metric, g.goal))}</text>"
        )
        y += bar_h + gap
    parts.append("</svg>")
    return "".join(parts)
