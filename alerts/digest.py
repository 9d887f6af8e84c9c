"""The executive update, computed: performance against goals, top risks, escalation review, asks.

Pure: it takes rows (alerts, follow-up events, escalations, window snapshots) of a period
and the period before, and returns numbers and sentences; ``stream.digest`` reads the rows
from the inbox's read model and renders Markdown or HTML. The same rows always give the
same digest, so a past period reported again gives the same numbers.

A change counts as a change only when it is significant: the two periods' standard errors give
z = (now - before) / sqrt(se_now^2 + se_before^2), significant when |z| >= ``Thresholds.z``. Scores
bring their standard error from the window; a proportion (CSAT, the share of follow-ups resolved)
gets sqrt(p(1 - p) / n) from its counts. Medians are reported with their n, never called a change.
Escalations are the customers' (a ticket escalated, a high-value customer's alert); overdue
notices, the follow-up SLA's own escalations, are counted apart under follow-up health.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import orjson

from alerts.concessions import OVERALL, Costs, recovery_costs, resolutions

# Direction of each goal: higher is better, except waiting time.
HIGHER_IS_BETTER = {
    "nps": True,
    "csat": True,
    "ces": True,
    "close_ratio": True,
    "time_to_contact_seconds": False,
    "speed_of_answer_seconds": False,
    "reply_seconds": False,
}
LABELS = {
    "nps": "NPS",
    "csat": "CSAT (% satisfied)",
    "ces": "CES (1-7, 7 = easy)",
    "time_to_contact_seconds": "Median time to contact",
    "close_ratio": "Follow-ups resolved",
    "speed_of_answer_seconds": "Average speed of answer",
    "reply_seconds": "Average reply time",
}


@dataclass(frozen=True)
class Thresholds:
    """When the digest raises an ask (all configurable: ``SURVEY_ALERTS_DIGEST_THRESHOLDS``)."""

    z: float = 1.96  # |z| from which a score change is significant (95%, two-sided)
    driver_detractor_share: float = 0.25  # a driver with this share of detractors ...
    driver_over_index: float = 1.3  # ... and this many times its share of contacts: ask for a fix
    overdue_share: float = 0.10  # a queue with more overdue follow-ups than this: ask for staffing or SLA
    root_cause_count: int = 3  # a root cause resolved this often: ask to fix it at the source
    repeat_escalations: int = 2  # a customer escalated this often: an account review
    concession_min_resolved: int = 10  # resolved follow-ups a group needs before a cap is suggested

    @classmethod
    def of(cls, values: dict[str, float]) -> Thresholds:
        """From configuration: unknown names are an error naming them."""
        known = {f.name: f.type for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"unknown digest thresholds {unknown}; known: {sorted(known)}")
        return cls(**{k: int(v) if known[k] == "int" else float(v) for k, v in values.items()})  # type: ignore[arg-type]


@dataclass(frozen=True)
class Score:
    """One metric over a window: value, n and standard error."""

    value: float | None
    n: int
    stderr: float | None


@dataclass
class Goal:
    metric: str
    label: str
    goal: float
    value: float | None
    n: int
    previous: float | None
    change: float | None
    significant: bool | None  # None: no test possible (no standard errors, or no previous value)
    met: bool | None

    @property
    def direction(self) -> str:
        return "higher is better" if HIGHER_IS_BETTER.get(self.metric, True) else "lower is better"


@dataclass
class Risk:
    driver: str
    contacts: int
    contact_share: float
    detractors: int
    detractor_share: float
    key_accounts: int
    value_at_risk: float
    previous_detractor_share: float | None


@dataclass
class Digest:
    """Everything the update says, in the order an executive reads it."""

    start: float
    end: float
    on_track: bool
    headline: str
    biggest_change: str
    goals: list[Goal]
    risks: list[Risk]
    escalations_by_team: list[tuple[str, int, int, float]]  # team, escalations, alerts, rate
    escalations_by_category: list[tuple[str, int]]
    repeat_customers: int
    repeat_escalations: list[tuple[str, int]]  # pseudonymous customer label, count
    root_causes: list[tuple[str, int]]
    close_rate: float | None
    median_contact_s: float | None
    contacted: int
    alerts: int
    overdue_by_queue: list[tuple[str, int, int]]  # queue, overdue now, waiting
    asks: list[str] = field(default_factory=list)
    overdue_notices: int = 0  # the SLA's escalations of follow-ups not contacted in time, this period
    vanished: list[tuple[str, float]] = field(default_factory=list)  # no contacts now: previous share
    costs: list[Costs] = field(default_factory=list)  # what recovery costs: overall, then by driver
    currency: str = "USD"  # of the concession figures and caps
    costs_min: int = 10  # resolved follow-ups a group needs for a suggested cap


def significance(now: Score, before: Score, z: float) -> tuple[float | None, bool | None]:
    """The change from ``before`` to ``now``, and whether it is significant (None: cannot tell)."""
    if now.value is None or before.value is None:
        return None, None
    change = now.value - before.value
    if now.stderr is None or before.stderr is None:
        return change, None
    spread = math.sqrt(now.stderr**2 + before.stderr**2)
    if spread == 0:
        return change, change != 0
    return change, abs(change / spread) >= z


def contact_times(alerts: Iterable[dict[str, Any]], events: Iterable[dict[str, Any]]) -> list[float]:
    """Seconds from each alert's cause to its first ``contacted`` event: both event times (the
    survey's ``submitted_at``, the action's ``at``), so a backfilled week measures what happened to
    its customers, not when the worker saw it. Older rows without a cause time use the creation;
    an action dated before its cause (clocks that disagree) counts as 0."""
    first: dict[str, float] = {}
    for e in events:
        if e["type"] == "contacted":
            at = float(e["at"])
            first[e["alert_id"]] = min(first.get(e["alert_id"], at), at)
    times = []
    for a in alerts:
        began = a.get("cause_at") if a.get("cause_at") is not None else a.get("created_at")
        if a["alert_id"] in first and began is not None:
            times.append(max(0.0, first[a["alert_id"]] - float(began)))
    return times


def _is_followed(alert: dict[str, Any]) -> bool:
    """A customer alert that someone should follow up (not an overdue notice about another alert)."""
    return alert.get("kind") != "followup_overdue"


def close_rate(alerts: Sequence[dict[str, Any]]) -> float | None:
    """Resolved among the period's follow-ups (withdrawn ones left out: nobody had to call)."""
    counted = [a for a in alerts if _is_followed(a) and a.get("status") != "withdrawn"]
    if not counted:
        return None
    return float(sum(a.get("status") == "resolved" for a in counted)) / len(counted)


def money(value: float) -> str:
    return (
        f"${value / 1_000_000:.1f}M"
        if value >= 1_000_000
        else f"${value / 1000:.0f}k"
        if value >= 1000
        else f"${value:.0f}"
    )


def spend(value: float, currency: str) -> str:
    """An amount of the concession currency as a reader expects it ($74, $1.2k; 74 EUR)."""
    if currency == "USD":
        return money(value) if value >= 1000 else f"${value:,.2f}".replace(".00", "")
    return f"{value:,.2f}".replace(".00", "") + f" {currency}"


def fresh(rows: Sequence[dict[str, Any]], since: float | None) -> list[dict[str, Any]]:
    """The snapshots updated in the period: a key with no events since ``since`` was not published
    again, and its newest snapshot tells of an earlier period (left out)."""
    if since is None:
        return list(rows)
    return [r for r in rows if r.get("as_of") is None or float(r["as_of"]) >= since]


def risks(
    snapshots: Sequence[dict[str, Any]],
    previous: Sequence[dict[str, Any]],
    alerts: Sequence[dict[str, Any]],
    key_tiers: frozenset[str],
    key_value: float,
) -> list[Risk]:
    """Contact drivers (ticket categories) by share of contacts and of detractors, with what is at stake.

    Contacts are the survey answers whose ticket has the category (NPS snapshots' n);
    detractors come from the same snapshots; key accounts and account value at risk from
    the period's detractor alerts of that category (each customer counted once).
    """

    def shares(rows: Sequence[dict[str, Any]]) -> dict[str, tuple[int, int]]:
        return {
            r["key"]: (int(r.get("responses") or 0), int(r.get("detractors") or 0))
            for r in rows
            if r["dimension"] == "category" and r["metric"] == "nps"
        }

    now, before = shares(snapshots), shares(previous)
    contacts = sum(c for c, _ in now.values())
    detractors = sum(d for _, d in now.values())
    before_detractors = sum(d for _, d in before.values())
    customers: dict[str, dict[str, tuple[str | None, float | None]]] = defaultdict(dict)
    for a in alerts:
        category = (a.get("doc") or {}).get("category")
        if a.get("kind") == "detractor" and category:
            customers[category][a["customer_id"]] = (a.get("tier"), a.get("account_value"))
    out = []
    for driver, (n, d) in now.items():
        affected = customers.get(driver, {})
        key = sum(1 for tier, value in affected.values() if tier in key_tiers or (value or 0) >= key_value)
        at_risk = sum(value or 0 for _, value in affected.values())
        prev = before.get(driver)
        out.append(
            Risk(
                driver,
                n,
                n / contacts if contacts else 0.0,
                d,
                d / detractors if detractors else 0.0,
                key,
                at_risk,
                prev[1] / before_detractors if prev and before_detractors else None,
            )
        )
    return sorted(out, key=lambda r: (-r.detractor_share, -r.value_at_risk, r.driver))


PERCENT_SHARES = {"csat", "ces_easy", "goal_completion"}  # in %, of counted answers


MIN_PROPORTION_N = 30  # below this the normal approximation of a share's error says nothing


def proportion_stderr(p: float | None, n: int) -> float | None:
    """The standard error sqrt(p(1 - p) / n) of a share ``p`` of ``n``; None (not tested) for fewer
    than ``MIN_PROPORTION_N`` (one follow-up resolved of one is no evidence of anything)."""
    if p is None or n < MIN_PROPORTION_N or not 0.0 <= p <= 1.0:
        return None
    return math.sqrt(p * (1 - p) / n)


def _score(rows: Sequence[dict[str, Any]], metric: str) -> Score:
    for r in rows:
        if r["dimension"] == "overall" and r["metric"] == metric:
            value, n, stderr = r.get("value"), int(r.get("responses") or 0), r.get("stderr")
            if stderr is None and metric in PERCENT_SHARES and value is not None:
                share = proportion_stderr(float(value) / 100, n)
                stderr = None if share is None else 100 * share
            return Score(value, n, stderr)
    return Score(None, 0, None)


def build(
    start: float,
    end: float,
    current: dict[str, list[dict[str, Any]]],
    previous: dict[str, list[dict[str, Any]]],
    snapshots: Sequence[dict[str, Any]],
    previous_snapshots: Sequence[dict[str, Any]],
    targets: dict[str, float],
    key_tiers: frozenset[str],
    key_value: float,
    now: float,
    thresholds: Thresholds = Thresholds(),
    currency: str = "USD",
) -> Digest:
    """The digest of ``[start, end)``, compared with the period before it.

    ``current`` and ``previous`` hold each period's ``alerts``, ``escalations`` and
    ``events`` (``ReadModel.period``); the snapshots are the overall and category windows
    as of each period's end.
    """
    alerts = [a for a in current["alerts"] if _is_followed(a)]
    prev_alerts = [a for a in previous["alerts"] if _is_followed(a)]
    length = end - start
    snapshots, previous_snapshots = fresh(snapshots, start), fresh(previous_snapshots, start - length)
    times = contact_times(alerts, current["events"])
    prev_times = contact_times(prev_alerts, previous["events"])
    goals: list[Goal] = []
    for metric in ("nps", "csat", "ces", "speed_of_answer_seconds", "reply_seconds"):
        if metric not in targets:
            continue
        a, b = _score(snapshots, metric), _score(previous_snapshots, metric)
        change, significant = significance(a, b, thresholds.z)
        target, better = targets[metric], HIGHER_IS_BETTER[metric]
        goals.append(
            Goal(
                metric,
                LABELS[metric],
                targets[metric],
                a.value,
                a.n,
                b.value,
                change,
                significant,
                None if a.value is None else (a.value >= target if better else a.value <= target),
            )
        )
    measured = {
        "time_to_contact_seconds": (
            statistics.median(times) if times else None,
            len(times),
            statistics.median(prev_times) if prev_times else None,
        ),
        "close_ratio": (close_rate(alerts), len(alerts), close_rate(prev_alerts)),
    }
    for metric, (value, n, before) in measured.items():
        if metric not in targets:
            continue
        better = HIGHER_IS_BETTER[metric]
        met = None if value is None else (value >= targets[metric] if better else value <= targets[metric])
        change = value - before if value is not None and before is not None else None
        tested: bool | None = None
        if metric == "close_ratio":  # a proportion: tested like the scores
            counted = len([a for a in prev_alerts if a.get("status") != "withdrawn"])
            now_n = len([a for a in alerts if a.get("status") != "withdrawn"])
            change, tested = significance(
                Score(value, now_n, proportion_stderr(value, now_n)),
                Score(before, counted, proportion_stderr(before, counted)),
                thresholds.z,
            )
        goals.append(Goal(metric, LABELS[metric], targets[metric], value, n, before, change, tested, met))

    drivers = risks(snapshots, previous_snapshots, current["alerts"], key_tiers, key_value)
    listed = {r.driver for r in drivers}
    before_shares = {
        r.driver: r.detractor_share for r in risks(previous_snapshots, [], [], key_tiers, key_value)
    }
    vanished = sorted((d, share) for d, share in before_shares.items() if d not in listed)
    # the customers' escalations; the SLA's own (overdue notices) are follow-up health, counted apart
    escalations = [e for e in current["escalations"] if e.get("source") != "followup_overdue"]
    overdue_notices = len(current["escalations"]) - len(escalations)
    by_team_alerts = Counter(a.get("team") or "-" for a in alerts)
    by_team = Counter(e.get("team") or "-" for e in escalations)
    teams = sorted(set(by_team) | set(by_team_alerts))
    escalation_rate = sorted(
        (
            (t, by_team[t], by_team_alerts[t], by_team[t] / by_team_alerts[t] if by_team_alerts[t] else 0.0)
            for t in teams
        ),
        key=lambda row: (-row[1], row[0]),
    )
    categories = Counter(
        (stored(e.get("doc")).get("ticket") or {}).get("category") or "-" for e in escalations
    )
    per_customer = Counter(e["customer_id"] for e in escalations if e.get("customer_id"))
    repeats = sorted(
        (
            (f"customer #{i + 1}", n)
            for i, (_, n) in enumerate(per_customer.most_common())
            if n >= thresholds.repeat_escalations
        ),
        key=lambda r: -r[1],
    )
    causes = Counter(
        e["root_cause"].strip().lower()
        for e in current["events"]
        if e["type"] == "resolved" and e.get("root_cause")
    )
    waiting = [a for a in alerts if a.get("status") in ("open", "acknowledged", "reopened")]
    overdue = Counter(
        a.get("queue") or "-" for a in waiting if a.get("due_at") is not None and a["due_at"] < now
    )
    queues = Counter(a.get("queue") or "-" for a in waiting)
    overdue_by_queue = sorted(((q, overdue[q], queues[q]) for q in queues), key=lambda r: (-r[1], r[0]))

    missed = [g for g in goals if g.met is False]
    on_track = not missed
    # the biggest change is of a score (its points read alike); a share's change shows in its row
    changes = [
        g for g in goals if g.significant and g.change is not None and g.metric in ("nps", "csat", "ces")
    ]
    if changes:
        top = max(changes, key=lambda g: abs(g.change or 0) / max(abs(g.goal), 1e-9))
        word = "up" if (top.change or 0) > 0 else "down"
        biggest = f"{top.label} {word} {abs(top.change or 0):.1f} points to {top.value:.1f} (significant)"
    elif not any(g.previous is not None for g in goals):
        biggest = "nothing to compare with: the previous period has no data"
    else:
        biggest = "no significant change in NPS, CSAT or CES since the previous period"
    if on_track:
        headline = f"On track: every goal met ({len([g for g in goals if g.met])} of {len(goals)} measured)."
    else:
        headline = (
            "Not on track: "
            + ", ".join(f"{g.label} {fmt(g.metric, g.value)} vs goal {fmt(g.metric, g.goal)}" for g in missed)
            + "."
        )

    asks: list[str] = []
    for r in drivers:
        if (
            r.detractor_share >= thresholds.driver_detractor_share
            and r.detractor_share >= thresholds.driver_over_index * r.contact_share
        ):
            asks.append(
                f"Fix {r.driver} at the source: {r.contact_share:.0%} of contacts but "
                f"{r.detractor_share:.0%} of detractors, {r.key_accounts} key accounts and "
                f"{money(r.value_at_risk)} of account value affected."
            )
    for g in goals:
        if g.met is not False:
            continue
        gap = f"{fmt(g.metric, g.value)} against a goal of {fmt(g.metric, g.goal)}"
        if g.significant and (g.change or 0) * (1 if HIGHER_IS_BETTER[g.metric] else -1) < 0:
            drop = f"a significant drop of {abs(g.change or 0):.1f} since the previous period"
            asks.append(f"Review {g.label}: {gap}, {drop}.")
        elif g.metric == "close_ratio":
            asks.append(
                f"Have agents resolve follow-ups with a root cause: {g.label.lower()} {gap} (n={g.n})."
            )
        elif g.metric == "time_to_contact_seconds":
            asks.append(
                f"Shorten the time to contact: {gap} (n={g.n}), by staffing or routing the slowest queues."
            )
        elif g.metric in ("speed_of_answer_seconds", "reply_seconds"):
            asks.append(
                f"Shorten the {g.label.lower()}: {gap} (n={g.n}), by staffing the channels and hours "
                "where customers wait."
            )
        else:
            asks.append(f"Plan to close the {g.label} gap: {gap} (n={g.n}).")
    for q, late, total in overdue_by_queue:
        if total and late / total > thresholds.overdue_share:
            asks.append(
                f"Decide staffing or the SLA of queue {q}: {late} of {total} open follow-ups are overdue."
            )
    for cause, n in sorted(causes.items(), key=lambda kv: (-kv[1], kv[0])):
        if n >= thresholds.root_cause_count:
            asks.append(f"Remove the root cause \u201c{cause}\u201d: it closed {n} follow-ups this period.")
    costs = recovery_costs(
        resolutions(alerts, current["events"]), currency, thresholds.concession_min_resolved
    )
    for c in costs:
        if c.group == OVERALL and c.suggested_cap is not None and c.current_cap != c.suggested_cap:
            asks.append(
                f"Set the concession cap to {spend(c.suggested_cap, currency)}: 80% of this period's "
                f"{c.resolved} recoveries cost at most {spend(c.p80 or 0, currency)} (the cap now: "
                f"{spend(c.current_cap, currency) if c.current_cap is not None else 'none'}); "
                "`survey-alerts playbook suggest` writes it per kind and driver."
            )
    if repeats:
        asks.append(
            f"Review {len(repeats)} accounts escalated {thresholds.repeat_escalations} or more times "
            "this period."
        )
    return Digest(
        start=start,
        end=end,
        on_track=on_track,
        headline=headline,
        biggest_change=biggest,
        goals=goals,
        risks=drivers,
        escalations_by_team=escalation_rate,
        escalations_by_category=sorted(categories.items(), key=lambda r: (-r[1], r[0])),
        repeat_customers=len(repeats),
        repeat_escalations=repeats,
        root_causes=sorted(causes.items(), key=lambda kv: (-kv[1], kv[0]))[
            :10
        ],  # ties by name: deterministic
        close_rate=close_rate(alerts),
        median_contact_s=statistics.median(times) if times else None,
        contacted=len(times),
        alerts=len(alerts),
        overdue_by_queue=overdue_by_queue,
        asks=asks,
        overdue_notices=overdue_notices,
        vanished=vanished,
        costs=costs,
        currency=currency,
        costs_min=thresholds.concession_min_resolved,
    )


def fmt(metric: str, value: float | None) -> str:
    if value is None:
        return "n/a"
    if metric.endswith("_seconds"):
        if value < 90 and metric != "time_to_contact_seconds":
            return f"{value:.0f} s"
        return f"{value / 60:.0f} min" if value < 5400 else f"{value / 3600:.1f} h"
    if metric == "close_ratio":
        return f"{value:.0%}"
    if metric == "csat":
        return f"{value:.1f}%"
    return f"{value:.1f}"


def stored(text: Any) -> dict[str, Any]:
    """A stored JSON document (text), or an empty one."""
    if not text:
        return {}
    doc = orjson.loads(text)
    return doc if isinstance(doc, dict) else {}
