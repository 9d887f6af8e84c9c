"""The follow-up loop of one alert: acknowledged, contacted, resolved; overdue when nobody calls.

State is kept per alert id. The alert itself (``open``) and what people do about
it (``followup-actions``) may arrive in any order; actions that come first wait
in the state. Repeated ``action_id``s change nothing.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any

from alerts.concessions import over_cap, playbook_cap
from alerts.customer import from_epoch, to_epoch
from alerts.ids import stable_id
from alerts.routing import queue_token
from schemas.common import SCHEMA_VERSION, format_timestamp, parse_timestamp

WAITING = ("open", "acknowledged", "reopened")  # nobody has contacted the customer yet


@dataclass
class FollowUpPolicy:
    """SLA and re-notification rules for overdue follow-ups."""

    renotify_s: float = 3600.0
    max_notices: int = 3
    lead_queue: str = "{queue}-lead"
    sla_s: dict[str, float] = field(
        default_factory=lambda: {"critical": 4 * 3600, "warning": 86400, "info": 3 * 86400}
    )
    tier_factors: dict[str, float] = field(default_factory=dict)
    currency: str = "USD"  # of the playbook's concession caps

    def due_after(self, severity: str, tier: str | None) -> float:
        """Seconds from (re)opening to the follow-up deadline."""
        return self.sla_s.get(severity, 86400) * (self.tier_factors.get(tier, 1.0) if tier else 1.0)


@dataclass
class FollowUp:
    """One alert's follow-up state."""

    alert_id: str
    alert: dict[str, Any] | None = None  # the alert as raised (None until it arrives)
    status: str = "open"
    due_at: float | None = None
    opened_at: float | None = None
    acknowledged_at: float | None = None
    contacted_at: float | None = None
    resolved_at: float | None = None
    root_cause: str | None = None
    notices: int = 0
    last_notice_at: float | None = None
    actions: list[str] = field(default_factory=list)  # applied action ids
    pending: list[dict[str, Any]] = field(default_factory=list)  # actions that came before the alert
    seq: int = 0  # followup-events written so far: the next one's ``seq`` is this plus one
    cause_at: float | None = None  # the event time of the alert's cause: durations run from it

    def to_doc(self) -> dict[str, Any]:
        """JSON-able document."""
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> FollowUp:
        """Read back ``to_doc``."""
        return cls(**doc)

    @property
    def began_at(self) -> float | None:
        """Where its durations start: the cause's event time (the survey's ``submitted_at``), so a
        backfilled alert's time to contact runs between two event times, not from when the worker
        saw it; follow-ups stored before the cause was kept use the alert's creation."""
        return self.cause_at if self.cause_at is not None else self.opened_at

    @property
    def waiting(self) -> bool:
        """Open and nobody has contacted the customer yet."""
        return self.alert is not None and self.status in WAITING


@dataclass
class Changes:
    """What applying messages or checking the clock produced."""

    outputs: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (role, key, doc)
    contact_seconds: list[float] = field(default_factory=list)
    resolve_seconds: list[float] = field(default_factory=list)
    duplicates: int = 0


def followup_event(
    fu: FollowUp,
    kind: str,
    at: float,
    actor: str | None = None,
    change: str | None = None,
    **extra: Any,
) -> tuple[str, str, dict[str, Any]]:
    """A ``followup-events`` record of a change to ``fu`` (contract: ``followup-events``).

    ``change`` tells apart changes of one kind at one time (an action's id, a notice
    number, a score); the id is derived from it, the alert and the time, so a replay
    yields the same ids.
    """
    a = fu.alert or {}
    stamp = format_timestamp(from_epoch(at))
    fu.seq += 1
    doc = {
        "schema_version": SCHEMA_VERSION,
        "event_id": stable_id("fue", fu.alert_id, kind, stamp, change or ""),
        "alert_id": fu.alert_id,
        "type": kind,
        "status": fu.status,
        "at": stamp,
        "actor": actor,
        "queue": a.get("queue"),
        "team": a.get("team"),
        "customer_id": a.get("customer_id"),
        "kind": a.get("kind"),
        "severity": a.get("severity"),
        "follow_up_due_at": format_timestamp(from_epoch(fu.due_at)) if fu.due_at is not None else None,
        "seq": fu.seq,
        **extra,
    }
    return ("event", fu.alert_id, doc)


# What the follow-up stage keeps of an alert (the rest, such as the customer's recent
# scores, is for the person following up and travels only on ``recovery-alerts``).
KEPT_FIELDS = (
    "kind",
    "severity",
    "customer_id",
    "response_id",
    "ticket_id",
    "team",
    "queue",
    "agent_id",
    "channel",
    "category",
    "metric",
    "score",
    "created_at",
)


def for_follow_up(alert: dict[str, Any]) -> dict[str, Any]:
    """The part of an alert document ``open_alert`` reads: the follow-up stage's ``open`` record."""
    doc = {k: alert.get(k) for k in KEPT_FIELDS}
    doc["alert_id"] = alert.get("alert_id")
    doc["follow_up_due_at"] = alert.get("follow_up_due_at")
    doc["cause_at"] = alert.get("cause_at") or alert.get("submitted_at")
    doc["concession_cap"] = playbook_cap(alert.get("playbook"))
    customer = alert.get("customer") or {}
    doc["customer"] = {"tier": customer.get("tier"), "account_value": customer.get("account_value")}
    return doc


def open_alert(fu: FollowUp, alert: dict[str, Any], policy: FollowUpPolicy, out: Changes) -> None:
    """The alert arrived (a whole alert document, or ``for_follow_up`` of one): start its SLA
    timer, then apply actions that came first."""
    if fu.alert is not None:
        return  # a replay of the same alert
    fu.alert = {k: alert.get(k) for k in KEPT_FIELDS}
    customer = alert.get("customer") or {}
    fu.alert["customer_tier"] = customer.get("tier")
    fu.alert["account_value"] = customer.get("account_value")
    fu.alert["concession_cap"] = (
        alert["concession_cap"] if "concession_cap" in alert else playbook_cap(alert.get("playbook"))
    )
    fu.opened_at = to_epoch(parse_timestamp(alert["created_at"]))
    cause = alert.get("cause_at") or alert.get("submitted_at")
    fu.cause_at = to_epoch(parse_timestamp(cause)) if isinstance(cause, str) else fu.opened_at
    fu.due_at = to_epoch(parse_timestamp(alert["follow_up_due_at"]))
    out.outputs.append(followup_event(fu, "opened", fu.opened_at, score=fu.alert.get("score")))
    pending, fu.pending = fu.pending, []
    for action in sorted(pending, key=lambda a: a["at"]):
        apply_action(fu, action, policy, out)


def update_alert(fu: FollowUp, edit: dict[str, Any], out: Changes) -> None:
    """The response behind the alert was edited: follow the new score, or withdraw.

    ``edit`` is the intake's ``update`` record: ``score`` (None when the edit no longer
    alerts), the edit's event time ``at`` and its broker timestamp ``ts`` (epoch seconds).
    """
    if fu.alert is None:
        return
    score = edit.get("score")
    at = edit.get("at") or fu.opened_at or 0.0
    change = f"{score}@{edit.get('ts')}"
    if score is None:
        if fu.status in WAITING:
            fu.status = "withdrawn"  # the customer changed their answer: nobody needs to call
            out.outputs.append(followup_event(fu, "withdrawn", at, change=change))
    elif score != fu.alert.get("score"):
        fu.alert["score"] = score
        out.outputs.append(followup_event(fu, "updated", at, change=change, score=score))


def apply_action(fu: FollowUp, action: dict[str, Any], policy: FollowUpPolicy, out: Changes) -> None:
    """Apply one ``followup-actions`` message (already validated)."""
    if action["action_id"] in fu.actions or any(p["action_id"] == action["action_id"] for p in fu.pending):
        out.duplicates += 1
        return
    if fu.alert is None:
        fu.pending.append(action)
        return
    fu.actions.append(action["action_id"])
    at = to_epoch(parse_timestamp(action["at"]))
    kind = action["type"]
    if kind == "acknowledged":
        fu.acknowledged_at = fu.acknowledged_at or at
        if fu.status in ("open", "reopened"):
            fu.status = "acknowledged"
    elif kind == "contacted":
        began = fu.began_at
        if fu.contacted_at is None and began is not None:
            out.contact_seconds.append(max(0.0, at - began))
        fu.contacted_at = fu.contacted_at or at
        if fu.status in WAITING:
            fu.status = "contacted"
    elif kind == "resolved":
        fu.status = "resolved"
        fu.resolved_at = at
        fu.root_cause = action.get("root_cause")
        began = fu.began_at
        if began is not None:
            out.resolve_seconds.append(max(0.0, at - began))
    elif kind == "reopened":
        fu.status = "reopened"
        fu.contacted_at = None
        fu.resolved_at = None
        fu.notices = 0
        fu.last_notice_at = None
        fu.due_at = at + policy.due_after(fu.alert["severity"], fu.alert.get("customer_tier"))
    extra: dict[str, Any] = {"action_id": action["action_id"]}
    if kind == "resolved":
        extra["root_cause"] = fu.root_cause
        cap = fu.alert.get("concession_cap")
        if cap is not None:
            extra["cap"] = cap
        if action.get("concession"):
            extra["concession"] = action["concession"]
            flagged = over_cap(action["concession"], cap, policy.currency)
            if flagged is not None:
                extra["over_cap"] = flagged  # above the playbook's cap: the inbox asked for a note
    if action.get("note"):
        extra["note"] = action["note"]
    out.outputs.append(followup_event(fu, kind, at, action["actor"], action["action_id"], **extra))


def next_check_at(fu: FollowUp, policy: FollowUpPolicy) -> float | None:
    """The first time ``check_overdue`` would act on ``fu`` (epoch seconds), or None if never.

    Lets the SLA timer look only at follow-ups that are due instead of decoding them all.
    """
    if not fu.waiting or fu.due_at is None or fu.notices >= policy.max_notices:
        return None
    if fu.last_notice_at is None:
        return fu.due_at
    return max(fu.due_at, fu.last_notice_at + policy.renotify_s)


@dataclass(frozen=True, slots=True)
class Summary:
    """What the SLA timer needs to know of a follow-up without decoding it."""

    next_check_at: float | None
    known: bool  # its alert has arrived
    waiting: bool
    due_at: float | None
    resolved: bool

    @classmethod
    def of(cls, fu: FollowUp, policy: FollowUpPolicy) -> Summary:
        """The summary of ``fu``."""
        return cls(
            next_check_at(fu, policy), fu.alert is not None, fu.waiting, fu.due_at, fu.status == "resolved"
        )


class _Agenda:
    """Alert ids by the time something is due for them, a whole second at a time.

    Ids are kept in one list per second (and the seconds in a heap), not as a
    ``(time, id)`` tuple each: every object that lives on counts towards the garbage
    collector's next young collection, and at 1k alerts/s two tuples per alert made
    those (~50 ms each in the worker) three times as frequent.
    """

    def __init__(self) -> None:
        self._ids: dict[int, list[str]] = {}
        self._seconds: list[int] = []  # a heap of the keys of ``_ids``

    def add(self, at: float, alert_id: str) -> None:
        second = math.floor(at)
        ids = self._ids.get(second)
        if ids is None:
            ids = self._ids[second] = []
            heapq.heappush(self._seconds, second)
        ids.append(alert_id)

    def take(self, t: float, when: Callable[[str], float | None]) -> list[str]:
        """The ids due at ``t`` by ``when(id)`` (their time now), in time order, each once.

        An entry whose id's time has moved to another second (or to None) since it was
        added is dropped: the change added it again where it belongs.
        """
        out: list[str] = []
        seen: set[str] = set()
        last = math.floor(t)
        seconds, by_second = self._seconds, self._ids
        while seconds and seconds[0] <= last:
            second = seconds[0]
            due: list[tuple[float, str]] = []
            later: list[str] = []
            for alert_id in by_second[second]:
                at = when(alert_id)
                if at is None or math.floor(at) != second:
                    continue
                if at > t:
                    later.append(alert_id)  # later in the current second
                elif alert_id not in seen:
                    seen.add(alert_id)
                    due.append((at, alert_id))
            out.extend(alert_id for _, alert_id in sorted(due))
            if later:
                by_second[second] = later
                break
            heapq.heappop(seconds)
            del by_second[second]
        return out


class SlaIndex:
    """Every follow-up's ``Summary``, with the SLA check's totals and due times kept as they change.

    The check used to scan every summary each time for its gauges and for what was
    due: ~1 µs per follow-up, 60-190 ms of CPU every 5 s with 70k of them, growing
    with the state. Here the totals are counted as summaries change, and two agendas
    (next check time; deadline of each waiting follow-up) give what is due and what
    is overdue in time order, so a check costs what changed since the last one.
    Agenda entries are checked against the current summary when they come up (an
    entry whose summary changed meanwhile is dropped then), so the agendas hold at
    most one entry per change made within the longest SLA.
    """

    def __init__(self) -> None:
        self.summaries: dict[str, Summary] = {}
        self.total = 0  # follow-ups whose alert has arrived
        self.resolved = 0  # of those, resolved
        self.waiting = 0  # of those, waiting for a first contact
        self._checks = _Agenda()  # by next check time
        self._deadlines = _Agenda()  # waiting ones, by deadline
        self._overdue: set[str] = set()  # waiting ones whose deadline had passed at ``_now``
        self._now = -math.inf

    def __len__(self) -> int:
        return len(self.summaries)

    def __contains__(self, alert_id: object) -> bool:
        return alert_id in self.summaries

    def put(self, alert_id: str, summary: Summary) -> None:
        """Set (or replace) the summary of ``alert_id``."""
        old = self.summaries.get(alert_id)
        self.summaries[alert_id] = summary
        if old is not None and old.known:
            self.total -= 1
            self.resolved -= old.resolved
            self.waiting -= old.waiting
        if summary.known:
            self.total += 1
            self.resolved += summary.resolved
            self.waiting += summary.waiting
        at = summary.next_check_at
        if at is not None and (old is None or old.next_check_at != at):
            self._checks.add(at, alert_id)
        deadline = _deadline(summary)
        if old is None or _deadline(old) != deadline:
            self._overdue.discard(alert_id)
            if deadline is not None:
                self._deadlines.add(deadline, alert_id)

    def recheck(self, alert_id: str) -> None:
        """Offer ``alert_id`` to the next ``take_due`` again (taken, but its check did not act)."""
        summary = self.summaries.get(alert_id)
        if summary is not None and summary.next_check_at is not None:
            self._checks.add(summary.next_check_at, alert_id)

    def take_due(self, t: float) -> list[str]:
        """The follow-ups whose next check is due at ``t``, earliest first; each is handed out once."""
        return self._checks.take(t, self._next_check_at)

    def overdue(self, t: float) -> int:
        """How many follow-ups wait for a first contact past their deadline at ``t``."""
        if t < self._now:  # the clock went back: deadlines not passed at ``t`` go back to the agenda
            for alert_id in list(self._overdue):
                deadline = _deadline(self.summaries[alert_id])
                if deadline is None or deadline > t:
                    self._overdue.discard(alert_id)
                    if deadline is not None:
                        self._deadlines.add(deadline, alert_id)
        self._now = t
        self._overdue.update(self._deadlines.take(t, self._deadline_of))
        return len(self._overdue)

    def _next_check_at(self, alert_id: str) -> float | None:
        summary = self.summaries.get(alert_id)
        return None if summary is None else summary.next_check_at

    def _deadline_of(self, alert_id: str) -> float | None:
        summary = self.summaries.get(alert_id)
        return None if summary is None else _deadline(summary)


def _deadline(summary: Summary) -> float | None:
    """When a follow-up counts as overdue, if it is one the gauges count (arrived, waiting)."""
    return summary.due_at if summary.known and summary.waiting else None


def check_overdue(fu: FollowUp, now: datetime, policy: FollowUpPolicy, out: Changes) -> bool:
    """Raise ``followup_overdue`` (and escalate to the lead's queue) when due; True if it did."""
    t = now.timestamp()
    if not fu.waiting or fu.due_at is None or t < fu.due_at or fu.notices >= policy.max_notices:
        return False
    if fu.last_notice_at is not None and t - fu.last_notice_at < policy.renotify_s:
        return False
    fu.notices += 1
    fu.last_notice_at = t
    a = fu.alert or {}
    overdue_s = t - fu.due_at
    alert_id = stable_id("alert", fu.alert_id, "followup_overdue", str(fu.notices))
    event = followup_event(fu, "overdue", t, notice=fu.notices, overdue_alert_id=alert_id)
    # the id follows the notice, not the clock: a check repeated after a crash repeats the id
    event[2]["event_id"] = stable_id("fue", fu.alert_id, "overdue", str(fu.notices))
    out.outputs.append(event)
    queue = queue_token(
        policy.lead_queue.format(queue=a.get("queue") or "triage", team=a.get("team") or "triage")
    )
    stamp = format_timestamp(now)
    out.outputs.append(
        (
            "alert",
            a["customer_id"],
            {
                "schema_version": SCHEMA_VERSION,
                "alert_id": alert_id,
                "kind": "followup_overdue",
                "severity": "critical",
                "status": "open",
                "customer_id": a["customer_id"],
                "response_id": a.get("response_id"),
                "ticket_id": a.get("ticket_id"),
                "team": a.get("team"),
                "agent_id": a.get("agent_id"),
                "channel": a.get("channel"),
                "category": a.get("category"),
                "queue": queue,
                "rule": "followup-sla",
                "priority": "urgent",
                "owner": None,
                "metric": "followup_overdue_seconds",
                "score": round(overdue_s, 3),
                "threshold": 0,
                "submitted_at": None,
                "created_at": stamp,
                "cause_at": stamp,  # the SLA clock found it overdue now
                "follow_up_due_at": format_timestamp(from_epoch(t + policy.renotify_s)),
                "original_alert_id": fu.alert_id,
                "notice": fu.notices,
                "customer": {
                    "tier": a.get("customer_tier"),
                    "account_value": a.get("account_value"),
                    "open_tickets": [],
                    "open_ticket_count": 0,
                    "recent_scores": [],
                },
            },
        )
    )
    out.outputs.append(
        (
            "escalation",
            a["customer_id"],
            {
                "schema_version": SCHEMA_VERSION,
                "escalation_id": stable_id("esc", "followup_overdue", alert_id),
                "source": "followup_overdue",
                "queue": queue,
                "team": a.get("team"),
                "priority": "urgent",
                "owner": None,
                "customer_id": a["customer_id"],
                "ticket_id": a.get("ticket_id"),
                "customer_tier": a.get("customer_tier"),
                "account_value": a.get("account_value"),
                "reason": f"{a.get('kind')} alert not contacted {overdue_s / 60:.0f} min after its due time "
                f"(notice {fu.notices} of {policy.max_notices})",
                "rule": "followup-sla",
                "routed_at": stamp,
                "cause_at": stamp,
                "alert_id": fu.alert_id,
            },
        )
    )
    return True
