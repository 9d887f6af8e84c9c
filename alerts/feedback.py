"""What each event contributes to the rolling windows, and trend detection.

Survey answers count under overall, team, channel, agent and category; ticket
KPIs under overall, team and channel. A response's team, agent and channel come
from the response when given, else from its ticket; its category from the ticket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist

from alerts.customer import Answer, Ticket
from alerts.scores import F, Pairs, Stats, Value, answer_pairs, dense
from alerts.windows import Dim, PartitionWindows
from schemas.fast import FastTicket

OVERALL: Dim = ("overall", "all")
_ASA_N, _ASA_SUM, _ASA_SQ = int(F.ASA_N), int(F.ASA_SUM), int(F.ASA_SQ)
_FRT_N, _FRT_SUM, _ART_N, _ART_SUM, _ART_SQ = (
    int(F.FRT_N),
    int(F.FRT_SUM),
    int(F.ART_N),
    int(F.ART_SUM),
    int(F.ART_SQ),
)
_CREATED, _RESOLVED, _FCR, _REOPENED, _ESCALATED = (
    int(F.CREATED),
    int(F.RESOLVED),
    int(F.FCR),
    int(F.REOPENED),
    int(F.ESCALATED),
)
_AHT_N, _AHT_SUM = int(F.AHT_N), int(F.AHT_SUM)


def answer_dims(answer: Answer, ticket: Ticket | None) -> list[Dim]:
    """Every (dimension, key) an answer counts under: its own attribution, else its ticket's."""
    team, channel, agent = [*answer.own, None, None, None][:3]
    dims = [OVERALL]
    for dim, value in (
        ("team", team or (ticket.team if ticket else None)),
        ("channel", channel or (ticket.channel if ticket else None)),
        ("agent", agent or (ticket.agent_id if ticket else None)),
        ("category", ticket.category if ticket else None),
    ):
        if value:
            dims.append((dim, value))
    return dims


def reattribute(pw: PartitionWindows, answers: Iterable[Answer], ticket: Ticket) -> int:
    """Move answers about ``ticket`` to the dimensions its newest facts give; returns how many moved.

    A survey can be processed before the ticket events it refers to (they travel on
    another topic); when those arrive, its earlier counting is corrected, so the
    windows end up as if every event had arrived in order.
    """
    moved = 0
    for a in answers:
        if a.ticket_id != ticket.ticket_id or not a.windows:
            continue
        dims = answer_dims(a, ticket)
        old = [(d, k) for d, k in a.dims]
        if dims == old:
            continue
        pairs = pairs_of(a)
        # only the dimensions that changed move (overall never does); a bucket that has
        # expired meanwhile is recreated and expired again by the next ``expire``
        pw.apply_pairs([d for d in old if d not in dims], a.submitted_at, pairs, a.windows, removal=True)
        pw.apply_pairs([d for d in dims if d not in old], a.submitted_at, pairs, a.windows)
        a.dims = [[d, k] for d, k in dims]
        moved += 1
    return moved


def stats_of(a: Answer) -> Stats:
    """The window contribution of a stored answer."""
    return dense(pairs_of(a))


def pairs_of(a: Answer) -> Pairs:
    """``stats_of``, sparse."""
    return answer_pairs(a.nps, a.csat, a.ces, a.stars, a.ves, a.goal)


def count_answer(pw: PartitionWindows, previous: Answer | None, answer: Answer, dims: list[Dim]) -> list[int]:
    """Replace ``previous`` (an edit) by ``answer`` in the windows; returns the late windows' indexes."""
    if pw.muted:
        # a replay of a record the buckets already hold: keep where it was counted
        pw.observe(answer.submitted_at)
        answer.dims = [[d, k] for d, k in dims]
        answer.windows = previous.windows if previous is not None else pw.open_mask(answer.submitted_at)
        return []
    if previous is not None and previous.windows:
        pw.apply_pairs(
            [(d, k) for d, k in previous.dims],
            previous.submitted_at,
            pairs_of(previous),
            previous.windows,
            removal=True,
        )
    pw.observe(answer.submitted_at)
    mask = pw.open_mask(answer.submitted_at)
    pw.apply_pairs(dims, answer.submitted_at, pairs_of(answer), mask)
    answer.dims = [[d, k] for d, k in dims]
    answer.windows = mask
    return pw.late(mask)


@dataclass(frozen=True, slots=True)
class Before:
    """What a ticket's KPIs need of its state before the event (the state is updated first)."""

    first_response: bool = True  # no first response seen yet
    answered: bool = False  # its speed of answer was counted
    awaiting_since: float | None = None  # an unanswered customer reply

    @classmethod
    def of(cls, ticket: Ticket | None) -> Before:
        if ticket is None:
            return cls()
        return cls(ticket.first_response_at is None, ticket.answered, ticket.awaiting_since)


def ticket_stats(ev: FastTicket, ticket: Ticket, at: float, before: Before) -> Stats | None:
    """The KPI contribution of a (non-duplicate) ticket event, or None if it has none."""
    pairs = ticket_pairs(ev, ticket, at, before)
    return None if pairs is None else dense(pairs)


def ticket_pairs(ev: FastTicket, ticket: Ticket, at: float, before: Before) -> Pairs | None:
    """``ticket_stats``, sparse (zeros left out).

    Speed of answer: the first ``queue_seconds`` of a ticket (on ``assigned`` or
    ``first_response``; abandoned contacts carry none). Reply time: from the customer's first
    unanswered ``customer_reply`` to the next ``agent_reply`` (an agent reply dated before it
    answers nothing)."""
    s: Pairs = []
    kind = ev.type
    if kind in ("assigned", "first_response") and ev.queue_seconds is not None and not before.answered:
        q = float(ev.queue_seconds)
        s += ((_ASA_N, 1), (_ASA_SUM, q), (_ASA_SQ, q * q))
    if kind == "created":
        s.append((_CREATED, 1))
    elif kind == "first_response":
        if not before.first_response or ticket.opened_at is None or at < ticket.opened_at:
            return s or None
        s += ((_FRT_N, 1), (_FRT_SUM, at - ticket.opened_at))
    elif kind == "agent_reply":
        if before.awaiting_since is None or at < before.awaiting_since:
            return None
        gap = at - before.awaiting_since
        s += ((_ART_N, 1), (_ART_SUM, gap), (_ART_SQ, gap * gap))
    elif kind == "assigned":
        return s or None
    elif kind == "resolved":
        s.append((_RESOLVED, 1))
        if ticket.reopened == 0 and not ticket.escalated and ticket.agent_replies == 0:
            s.append((_FCR, 1))
        parts = [v for v in (ev.talk_seconds, ev.hold_seconds, ev.wrap_seconds) if v is not None]
        if parts:
            s += ((_AHT_N, 1), (_AHT_SUM, sum(parts)))
    elif kind == "reopened":
        s.append((_REOPENED, 1))
    elif kind == "escalated":
        s.append((_ESCALATED, 1))
    else:
        return None
    return [(i, v) for i, v in s if v]


def ticket_dims(ticket: Ticket) -> list[Dim]:
    """Every (dimension, key) a ticket KPI counts under."""
    dims = [OVERALL]
    if ticket.team:
        dims.append(("team", ticket.team))
    if ticket.channel:
        dims.append(("channel", ticket.channel))
    return dims


def count_ticket(
    pw: PartitionWindows, ev: FastTicket, ticket: Ticket, at: float, before: Before
) -> list[int]:
    """Count a ticket event's KPIs; returns the late windows' indexes."""
    pairs = ticket_pairs(ev, ticket, at, before)
    pw.observe(at)
    if pairs is None:
        return []
    mask = pw.open_mask(at)
    pw.apply_pairs(ticket_dims(ticket), at, pairs, mask)
    return pw.late(mask)


@dataclass(frozen=True)
class TrendPolicy:
    """When a short window is significantly worse than its baseline."""

    short: str = "24h"
    long: str = "7d"
    min_n: int = 30
    alpha: float = 0.01
    min_drop: dict[str, float] | None = None  # metric -> smallest drop that matters

    def drop_needed(self, metric: str) -> float:
        """The smallest drop worth an alert, in the metric's own unit."""
        defaults = {"nps": 10.0, "csat": 5.0, "ces": 0.3}
        return (self.min_drop or defaults).get(metric, defaults.get(metric, 0.0))


TREND_METRICS = ("nps", "csat", "ces")


def _stderr(v: Value) -> float | None:
    if v.stderr is not None:
        return v.stderr
    if v.value is not None and v.n > 0 and v.metric == "csat":
        p = v.value / 100
        return 100 * math.sqrt(max(p * (1 - p), 0.25 / v.n) / v.n)  # never 0: avoids z = inf at p=0/1
    return None


def trend_drop(short: Value, baseline: Value, policy: TrendPolicy) -> float | None:
    """The z score when ``short`` is significantly below ``baseline`` (a drop), else None.

    ``baseline`` must exclude the short window's own answers (long minus short) so
    the two samples are independent.
    """
    if short.value is None or baseline.value is None:
        return None
    if short.n < policy.min_n or baseline.n < policy.min_n:
        return None
    if baseline.value - short.value < policy.drop_needed(short.metric):
        return None
    se_s, se_b = _stderr(short), _stderr(baseline)
    if se_s is None or se_b is None:
        return None
    spread = math.sqrt(se_s**2 + se_b**2)
    if spread == 0:
        return None
    z = (short.value - baseline.value) / spread
    return z if z <= -NormalDist().inv_cdf(1 - policy.alpha) else None
