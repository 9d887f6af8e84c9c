"""Score formulas over summed counts, each value with its n and its uncertainty.

A window's state is a fixed-length vector of sums (``Stats``) so buckets add and
subtract exactly and merge across partitions by addition. The formulas turn a
summed vector into values:

* NPS = 100 (P - D) / n, standard error 100 sqrt((p+ + p- - (p+ - p-)^2) / n)
* CSAT % = 100 satisfied (4-5) / n with a Wilson score interval
* CES, stars, VES: means with the standard error sqrt(var / n); CES % easy (5-7) with Wilson
* goal completion %, first contact resolution %: Wilson
* handle time = (talk + hold + follow-up work) / handled tickets
* ASA (average speed of answer) = mean ``queue_seconds`` of answered contacts, ART (average reply
  time) = mean gap from a customer's reply to the agent's next; both with sqrt(var / n)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import IntEnum

Z95 = 1.959963984540054


class F(IntEnum):
    """Positions in a stats vector."""

    NPS_N = 0
    PROMOTERS = 1
    PASSIVES = 2
    DETRACTORS = 3
    CSAT_N = 4
    CSAT_SAT = 5
    CES_N = 6
    CES_SUM = 7
    CES_SQ = 8
    CES_EASY = 9
    STARS_N = 10
    STARS_SUM = 11
    STARS_SQ = 12
    VES_N = 13
    VES_SUM = 14
    VES_SQ = 15
    GOAL_N = 16
    GOAL_YES = 17
    CREATED = 18
    FRT_N = 19
    FRT_SUM = 20
    RESOLVED = 21
    FCR = 22
    AHT_N = 23
    AHT_SUM = 24
    REOPENED = 25
    ESCALATED = 26
    ASA_N = 27  # answered contacts with a queue time
    ASA_SUM = 28
    ASA_SQ = 29
    ART_N = 30  # customer replies answered by an agent
    ART_SUM = 31
    ART_SQ = 32


WIDTH = len(F)
Stats = list[float]


def zero() -> Stats:
    """An empty stats vector."""
    return [0.0] * WIDTH


def add_into(acc: Stats, other: Stats, sign: float = 1.0) -> None:
    """``acc += sign * other``, element-wise."""
    for i, v in enumerate(other):
        if v:
            acc[i] += sign * v


Pairs = list[tuple[int, float]]  # a sparse stats vector: (position, value), nonzero values only
_NPS_N, _PROMOTERS, _PASSIVES, _DETRACTORS = (
    int(F.NPS_N),
    int(F.PROMOTERS),
    int(F.PASSIVES),
    int(F.DETRACTORS),
)
_CSAT_N, _CSAT_SAT = int(F.CSAT_N), int(F.CSAT_SAT)
_CES_N, _CES_SUM, _CES_SQ, _CES_EASY = int(F.CES_N), int(F.CES_SUM), int(F.CES_SQ), int(F.CES_EASY)
_STARS_N, _STARS_SUM, _STARS_SQ = int(F.STARS_N), int(F.STARS_SUM), int(F.STARS_SQ)
_VES_N, _VES_SUM, _VES_SQ = int(F.VES_N), int(F.VES_SUM), int(F.VES_SQ)
_GOAL_N, _GOAL_YES = int(F.GOAL_N), int(F.GOAL_YES)


def dense(pairs: Pairs) -> Stats:
    """The full vector of a sparse one."""
    s = zero()
    for i, v in pairs:
        s[i] += v
    return s


def answer_stats(
    nps: int | None,
    csat: int | None,
    ces: int | None,
    stars: int | None,
    ves: float | None,
    goal: bool | None,
) -> Stats:
    """The contribution of one survey answer."""
    return dense(answer_pairs(nps, csat, ces, stars, ves, goal))


def answer_pairs(
    nps: int | None,
    csat: int | None,
    ces: int | None,
    stars: int | None,
    ves: float | None,
    goal: bool | None,
) -> Pairs:
    """``answer_stats``, sparse: what the windows add per answer (the hot path)."""
    out: Pairs = []
    if nps is not None:
        out += ((_NPS_N, 1), (_PROMOTERS if nps >= 9 else _PASSIVES if nps >= 7 else _DETRACTORS, 1))
    if csat is not None:
        out.append((_CSAT_N, 1))
        if csat >= 4:
            out.append((_CSAT_SAT, 1))
    if ces is not None:
        out += ((_CES_N, 1), (_CES_SUM, ces), (_CES_SQ, ces * ces))
        if ces >= 5:
            out.append((_CES_EASY, 1))
    if stars is not None:
        out += ((_STARS_N, 1), (_STARS_SUM, stars), (_STARS_SQ, stars * stars))
    if ves is not None:
        out.append((_VES_N, 1))
        if ves:
            out += ((_VES_SUM, ves), (_VES_SQ, ves * ves))
    if goal is not None:
        out.append((_GOAL_N, 1))
        if goal:
            out.append((_GOAL_YES, 1))
    return out


@dataclass(frozen=True, slots=True)
class Value:
    """One metric of a window: the estimate, its sample size and uncertainty."""

    metric: str
    n: int
    value: float | None
    stderr: float | None = None
    ci_low: float | None = None
    ci_high: float | None = None
    counts: dict[str, int] | None = None


def nps(promoters: float, passives: float, detractors: float) -> tuple[float | None, float | None]:
    """NPS (-100..100) and its standard error."""
    n = promoters + passives + detractors
    if n <= 0:
        return None, None
    pp, pd = promoters / n, detractors / n
    var = max(0.0, pp + pd - (pp - pd) ** 2)
    return 100.0 * (pp - pd), 100.0 * math.sqrt(var / n)


def wilson(successes: float, n: float, z: float = Z95) -> tuple[float | None, float | None, float | None]:
    """Percentage and its Wilson score interval (both in percent)."""
    if n <= 0:
        return None, None, None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return 100.0 * p, 100.0 * max(0.0, centre - half), 100.0 * min(1.0, centre + half)


def mean(total: float, squares: float, n: float) -> tuple[float | None, float | None]:
    """Mean and its standard error (sample variance; 0 for a single value)."""
    if n <= 0:
        return None, None
    m = total / n
    if n < 2:
        return m, 0.0
    var = max(0.0, (squares - n * m * m) / (n - 1))
    return m, math.sqrt(var / n)


def _rate(metric: str, hits: float, n: float) -> Value:
    pct, lo, hi = wilson(hits, n)
    return Value(metric, int(n), pct, None, lo, hi)


def values(s: Stats) -> list[Value]:
    """Every metric of a summed stats vector."""
    out = []
    score, se = nps(s[F.PROMOTERS], s[F.PASSIVES], s[F.DETRACTORS])
    out.append(
        Value(
            "nps",
            int(s[F.NPS_N]),
            score,
            se,
            counts={
                "promoters": int(s[F.PROMOTERS]),
                "passives": int(s[F.PASSIVES]),
                "detractors": int(s[F.DETRACTORS]),
            },
        )
    )
    out.append(_rate("csat", s[F.CSAT_SAT], s[F.CSAT_N]))
    m, se = mean(s[F.CES_SUM], s[F.CES_SQ], s[F.CES_N])
    out.append(Value("ces", int(s[F.CES_N]), m, se))
    out.append(_rate("ces_easy", s[F.CES_EASY], s[F.CES_N]))
    m, se = mean(s[F.STARS_SUM], s[F.STARS_SQ], s[F.STARS_N])
    out.append(Value("stars", int(s[F.STARS_N]), m, se))
    m, se = mean(s[F.VES_SUM], s[F.VES_SQ], s[F.VES_N])
    out.append(Value("ves", int(s[F.VES_N]), m, se))
    out.append(_rate("goal_completion", s[F.GOAL_YES], s[F.GOAL_N]))
    frt = s[F.FRT_SUM] / s[F.FRT_N] if s[F.FRT_N] else None
    out.append(Value("first_response_seconds", int(s[F.FRT_N]), frt))
    out.append(_rate("first_contact_resolution", s[F.FCR], s[F.RESOLVED]))
    aht = s[F.AHT_SUM] / s[F.AHT_N] if s[F.AHT_N] else None
    out.append(Value("handle_seconds", int(s[F.AHT_N]), aht))
    reopen = 100.0 * s[F.REOPENED] / s[F.RESOLVED] if s[F.RESOLVED] else None
    out.append(Value("reopen_rate", int(s[F.RESOLVED]), reopen))
    escalation = 100.0 * s[F.ESCALATED] / s[F.CREATED] if s[F.CREATED] else None
    out.append(Value("escalation_rate", int(s[F.CREATED]), escalation))
    m, se = mean(s[F.ASA_SUM], s[F.ASA_SQ], s[F.ASA_N])
    out.append(Value("speed_of_answer_seconds", int(s[F.ASA_N]), m, se))
    m, se = mean(s[F.ART_SUM], s[F.ART_SQ], s[F.ART_N])
    out.append(Value("reply_seconds", int(s[F.ART_N]), m, se))
    return out
