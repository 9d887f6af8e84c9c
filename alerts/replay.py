"""What a replay reports: the alerts and escalations a configuration would raise, and how they differ.

Pure: ``Outcome`` collects a run's documents; ``report`` counts them by kind, queue, rule and
severity (escalations by source, queue and rule) and compares them with what was actually
raised: *new* (the change would raise it, it was not raised), *gone* (raised, the change would
not), *re-routed* (both, to another queue). Ids are deterministic, so the same id on both
sides is the same alert. Everything is sorted: the same history and rules give the same report.
"""

from __future__ import annotations

import heapq
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from alerts.followup import (
    Changes,
    FollowUp,
    FollowUpPolicy,
    apply_action,
    check_overdue,
    next_check_at,
    open_alert,
    update_alert,
)

EXAMPLES = 5


@dataclass
class Outcome:
    """The alerts and escalations of one side, by id."""

    alerts: dict[str, dict[str, Any]] = field(default_factory=dict)
    escalations: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add(self, doc: dict[str, Any]) -> None:
        if "escalation_id" in doc:
            self.escalations[doc["escalation_id"]] = doc
        else:
            self.alerts.setdefault(doc["alert_id"], doc)


class SlaClock:
    """The worker's follow-up stage on a virtual clock: alerts open follow-ups, edits update them,
    people's actions apply when they were recorded, and ``advance`` raises the overdue notices and
    their lead escalations that the worker's SLA timer raises once its clock passes a due time.

    Checks run at the exact time a follow-up falls due (``next_check_at``); the worker's timer
    runs every few seconds, so a notice due within one check interval of the replay's end can be
    on one side only.
    """

    def __init__(self, policy: FollowUpPolicy) -> None:
        self.policy = policy
        self.followups: dict[str, FollowUp] = {}
        self._due: list[tuple[float, str]] = []  # (check time, alert id), a heap; stale entries skipped
        self._next: dict[str, float] = {}
        self.now = float("-inf")

    def _get(self, alert_id: str) -> FollowUp:
        fu = self.followups.get(alert_id)
        if fu is None:
            fu = self.followups[alert_id] = FollowUp(alert_id)
        return fu

    def _schedule(self, fu: FollowUp) -> None:
        t = next_check_at(fu, self.policy)
        if t is None:
            self._next.pop(fu.alert_id, None)
        elif self._next.get(fu.alert_id) != t:
            self._next[fu.alert_id] = t
            heapq.heappush(self._due, (t, fu.alert_id))

    def follow(self, op: dict[str, Any]) -> None:
        """A record of the follow-ups topic as the intake writes it (``open`` or ``update``)."""
        if op.get("op") == "open":
            alert = op["alert"]
            fu = self._get(alert["alert_id"])
            open_alert(fu, alert, self.policy, Changes())
        elif op.get("op") == "update":
            fu = self._get(op["alert_id"])
            update_alert(fu, op, Changes())
        else:
            return
        self._schedule(fu)

    def act(self, action: dict[str, Any]) -> None:
        """A valid ``followup-actions`` record (the contract's fields)."""
        fu = self._get(action["alert_id"])
        apply_action(fu, action, self.policy, Changes())
        self._schedule(fu)

    def advance(self, until: float) -> list[dict[str, Any]]:
        """Run the SLA clock up to ``until``: the overdue alerts and escalations raised, in time order."""
        raised: list[dict[str, Any]] = []
        while self._due and self._due[0][0] <= until:
            t, alert_id = heapq.heappop(self._due)
            if self._next.get(alert_id) != t:
                continue  # rescheduled or done since
            del self._next[alert_id]
            fu = self.followups[alert_id]
            out = Changes()
            if check_overdue(fu, datetime.fromtimestamp(t, UTC), self.policy, out):
                raised.extend(doc for role, _, doc in out.outputs if role != "event")
            nxt = next_check_at(fu, self.policy)
            if nxt is not None and nxt > t:
                self._next[alert_id] = nxt
                heapq.heappush(self._due, (nxt, alert_id))
        self.now = max(self.now, until)
        return raised


def _counts(docs: dict[str, dict[str, Any]], fields: tuple[str, ...]) -> dict[str, dict[str, int]]:
    return {f: dict(sorted(Counter(str(d.get(f)) for d in docs.values()).items())) for f in fields}


def _example(doc: dict[str, Any]) -> dict[str, Any]:
    keep = (
        "alert_id",
        "escalation_id",
        "kind",
        "source",
        "severity",
        "queue",
        "rule",
        "team",
        "metric",
        "score",
    )
    return {k: doc[k] for k in keep if k in doc}


def _diff(
    candidate: dict[str, dict[str, Any]], actual: dict[str, dict[str, Any]], group: str
) -> dict[str, Any]:
    new = sorted(set(candidate) - set(actual))
    gone = sorted(set(actual) - set(candidate))
    moved = sorted(
        i for i in set(candidate) & set(actual) if candidate[i].get("queue") != actual[i].get("queue")
    )
    per_rule: Counter[str] = Counter()
    for i in new:
        per_rule[f"new by {candidate[i].get('rule')}"] += 1
    for i in gone:
        per_rule[f"gone from {actual[i].get('rule')}"] += 1
    for i in moved:
        per_rule[
            f"re-routed {actual[i].get('queue')} -> {candidate[i].get('queue')} by {candidate[i].get('rule')}"
        ] += 1
    return {
        "new": len(new),
        "gone": len(gone),
        "rerouted": len(moved),
        f"{group}_per_rule": dict(sorted(per_rule.items())),
        "examples": {
            "new": [_example(candidate[i]) for i in new[:EXAMPLES]],
            "gone": [_example(actual[i]) for i in gone[:EXAMPLES]],
            "rerouted": [{**_example(candidate[i]), "was": actual[i].get("queue")} for i in moved[:EXAMPLES]],
        },
    }


def report(candidate: Outcome, actual: Outcome, period: dict[str, Any]) -> dict[str, Any]:
    """The replay's report (JSON-able), ``candidate`` against what was ``actual``ly raised."""
    return {
        "period": period,
        "would_raise": {
            "alerts": len(candidate.alerts),
            "escalations": len(candidate.escalations),
            "alerts_by": _counts(candidate.alerts, ("kind", "severity", "queue", "rule")),
            "escalations_by": _counts(candidate.escalations, ("source", "queue", "rule")),
        },
        "actually_raised": {"alerts": len(actual.alerts), "escalations": len(actual.escalations)},
        "difference": {
            "alerts": _diff(candidate.alerts, actual.alerts, "changes"),
            "escalations": _diff(candidate.escalations, actual.escalations, "changes"),
        },
    }


def empty(difference: dict[str, Any]) -> bool:
    """No alert or escalation new, gone or re-routed."""
    return all(difference[g][k] == 0 for g in ("alerts", "escalations") for k in ("new", "gone", "rerouted"))


def text(rep: dict[str, Any]) -> str:
    """The report as a person reads it."""
    w, d = rep["would_raise"], rep["difference"]
    p = rep["period"]
    lines = [
        f"Replay of {p['from']} to {p['to']} ({p['events']} events replayed at {p['events_per_s']} events/s, "
        f"{p['warmup_events']} of them warm-up from {p['warmup_from']})",
        f"Would raise {w['alerts']} alerts and {w['escalations']} escalations "
        f"(actually raised: {rep['actually_raised']['alerts']} and {rep['actually_raised']['escalations']}).",
    ]
    for name, by in (("alerts", w["alerts_by"]), ("escalations", w["escalations_by"])):
        for field_name, counts in by.items():
            shown = ", ".join(f"{k} {n}" for k, n in counts.items()) or "none"
            lines.append(f"  {name} by {field_name}: {shown}")
    if empty(d):
        lines.append("Difference from what was actually raised: none.")
    for group in ("alerts", "escalations"):
        g = d[group]
        if g["new"] or g["gone"] or g["rerouted"]:
            lines.append(
                f"Difference in {group}: {g['new']} new, {g['gone']} gone, {g['rerouted']} re-routed"
            )
            for what, n in g["changes_per_rule"].items():
                lines.append(f"  {what}: {n}")
            for kind in ("new", "gone", "rerouted"):
                for ex in g["examples"][kind]:
                    lines.append(f"    e.g. {kind}: " + ", ".join(f"{k}={v}" for k, v in ex.items()))
    return "\n".join(lines)
