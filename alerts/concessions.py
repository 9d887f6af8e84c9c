"""What recovery costs: concessions of resolved follow-ups, and the caps the data supports.

The guide the service follows: "if you find that reps can fix 80% of problems with $74, empower
them to spend up to $75". A follow-up resolved with no concession (none recorded, kind ``none``
or an amount of 0) cost nothing and counts as 0, so "80% of recoveries cost at most $X" is a
statement about every resolution. Amounts are compared in the playbook's currency
(``SURVEY_ALERTS_CONCESSION_CURRENCY``); a concession in another currency is counted apart,
never converted. Pure: no I/O.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

OVERALL = "all"
SHARE = 0.8  # the guide's 80%


def playbook_cap(playbook: dict[str, Any] | None) -> float | None:
    """The most an agent may spend without approval under an alert's playbook: the highest cap of its
    tiers (the second tier is the offer on push-back), or None when it sets none."""
    if not isinstance(playbook, dict):
        return None
    caps = [
        float(tier["cap"])
        for tier in (playbook.get("first_tier"), playbook.get("second_tier"))
        if isinstance(tier, dict) and isinstance(tier.get("cap"), int | float)
    ]
    return max(caps) if caps else None


def over_cap(concession: dict[str, Any] | None, cap: float | None, currency: str) -> bool | None:
    """Whether a concession is above the cap (None: nothing to compare: no cap, or another currency)."""
    if not concession or cap is None or concession.get("currency") != currency:
        return None
    return float(concession.get("amount") or 0) > cap


def nearest_rank(values: Sequence[float], q: float) -> float:
    """The smallest value with at least ``q`` of ``values`` at or below it (nearest-rank percentile)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def nice_cap(amount: float) -> float:
    """A cap a person would set just above ``amount``: up to the next 5 below 100, 25 below 1,000,
    100 above (74 -> 75, 310 -> 325, 1,240 -> 1,300)."""
    step = 5 if amount < 100 else 25 if amount < 1000 else 100
    return float(math.ceil(amount / step) * step) if amount > 0 else 0.0


@dataclass(frozen=True)
class Costs:
    """The concessions of one group's resolved follow-ups."""

    group: str  # a contact driver, or OVERALL
    resolved: int  # resolved follow-ups with an amount in the currency (none counts as 0)
    median: float | None
    p80: float | None
    share_none: float | None
    over_cap: int  # above their playbook's cap
    other_currency: int  # not compared: another currency
    current_cap: float | None  # the cap most of them had (their playbook's)
    suggested_cap: float | None  # None: too few to tell

    def rule(self, money: Callable[[float], str]) -> str | None:
        """The guide's sentence, when the group has enough resolutions."""
        if self.suggested_cap is None or self.p80 is None:
            return None
        now = f"the cap now: {money(self.current_cap)}" if self.current_cap is not None else "no cap set now"
        if self.p80 == 0:
            return f"80% of recoveries cost nothing: agents resolve them without a concession ({now})."
        return (
            f"80% of recoveries cost at most {money(self.p80)}: a cap of {money(self.suggested_cap)} "
            f"lets agents resolve them without approval ({now})."
        )


def resolutions(
    alerts: Iterable[dict[str, Any]], events: Iterable[dict[str, Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``(alert, its newest resolved event)`` for the alerts resolved now (status ``resolved``).

    Events are read-model rows (``doc`` the event's JSON, a dict or text); the newest is the one
    with the highest ``seq``, as the status is."""
    import orjson

    newest: dict[str, tuple[int, float, dict[str, Any]]] = {}
    for e in events:
        if e.get("type") != "resolved":
            continue
        doc = e.get("doc")
        found = orjson.loads(doc) if isinstance(doc, str | bytes) else doc if isinstance(doc, dict) else {}
        rank = (int(e.get("seq") or found.get("seq") or 0), float(e.get("at") or 0.0))
        held = newest.get(e["alert_id"])
        if held is None or rank > held[:2]:
            newest[e["alert_id"]] = (*rank, found)
    return [
        (a, newest[a["alert_id"]][2])
        for a in alerts
        if a.get("status") == "resolved" and a["alert_id"] in newest
    ]


def recovery_costs(
    resolved: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    currency: str,
    min_n: int,
    group: Callable[[dict[str, Any]], str] = lambda a: (a.get("doc") or {}).get("category") or "-",
) -> list[Costs]:
    """Overall first, then each group by resolutions (most first), from ``resolutions``."""
    groups: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for alert, event in resolved:
        groups[OVERALL].append((alert, event))
        groups[group(alert)].append((alert, event))
    out = []
    for name, rows in groups.items():
        amounts: list[float] = []
        none = over = other = 0
        caps: Counter[float] = Counter()
        for _, event in rows:
            c = event.get("concession") if isinstance(event.get("concession"), dict) else None
            if isinstance(event.get("cap"), int | float):
                caps[float(event["cap"])] += 1
            if c is not None and c.get("kind") != "none" and float(c.get("amount") or 0) > 0:
                if c.get("currency") != currency:
                    other += 1
                    continue
                amounts.append(float(c["amount"]))
                over += bool(event.get("over_cap"))
            else:
                none += 1
                amounts.append(0.0)
        p80 = nearest_rank(amounts, SHARE) if amounts else None
        out.append(
            Costs(
                group=name,
                resolved=len(amounts),
                median=statistics.median(amounts) if amounts else None,
                p80=p80,
                share_none=none / len(amounts) if amounts else None,
                over_cap=over,
                other_currency=other,
                current_cap=caps.most_common(1)[0][0] if caps else None,
                suggested_cap=nice_cap(p80) if p80 is not None and len(amounts) >= min_n else None,
            )
        )
    return sorted(out, key=lambda c: (c.group != OVERALL, -c.resolved, c.group))


def suggestion(
    resolved: Sequence[tuple[dict[str, Any], dict[str, Any]]],
    currency: str,
    min_n: int,
    actions: Callable[[str, str | None], str | None],
    period: str,
) -> str:
    """``[[playbook]]`` entries of a rules file, one per alert kind and contact driver with at least
    ``min_n`` resolutions: ``first_tier.credit`` is the cap the data supports. ``actions(kind,
    category)`` is the current play's action (kept), if any."""
    by_kind: dict[str, list[tuple[dict[str, Any], dict[str, Any]]]] = defaultdict(list)
    for alert, event in resolved:
        by_kind[str(alert.get("kind") or "-")].append((alert, event))
    lines = [
        f"# Concession caps the data supports ({period}, amounts in {currency}): the 80th percentile of",
        "# what resolved follow-ups cost (none counts as 0), rounded up. Paste into the rules file.",
    ]
    written = 0
    for kind in sorted(by_kind):
        for costs in recovery_costs(by_kind[kind], currency, min_n):
            if costs.suggested_cap is None or costs.p80 is None:
                continue
            category = None if costs.group == OVERALL else costs.group
            if category == "-":
                continue
            action = actions(kind, category) or "Apologise, fix the cause and offer a credit"
            written += 1
            lines += [
                "",
                f"# {kind}{' / ' + category if category else ''}: {costs.resolved} resolved, median "
                f"{costs.median:.2f}, 80% at most {costs.p80:.2f}"
                + (f", cap now {costs.current_cap:.2f}" if costs.current_cap is not None else ", no cap now"),
                "[[playbook]]",
                f"kind = {_toml(kind)}",
                *([f"category = {_toml(category)}"] if category else []),
                f"first_tier = {{ action = {_toml(action)}, credit = {costs.suggested_cap:g} }}",
            ]
    if not written:
        lines.append(
            f"# Too few resolved follow-ups in the period (fewer than {min_n} per kind): no suggestion."
        )
    return "\n".join(lines) + "\n"


def _toml(text: str) -> str:
    """A TOML basic string."""
    escaped = "".join(
        {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\t": "\\t", "\r": "\\r"}.get(ch, ch)
        if ch >= " " or ch in "\n\t\r"
        else f"\\u{ord(ch):04x}"
        for ch in text
    )
    return f'"{escaped}"'
