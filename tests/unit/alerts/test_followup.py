"""The follow-up state machine on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, cast

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.followup import (
    Changes,
    FollowUp,
    FollowUpPolicy,
    SlaIndex,
    Summary,
    apply_action,
    check_overdue,
    for_follow_up,
    next_check_at,
    open_alert,
    update_alert,
)
from alerts.pipeline import Pipeline, Record, Topics
from alerts.policy import AlertPolicy
from schemas.outputs import FollowupEvent
from tests.support.factories import raw, survey, ticket

T0 = datetime(2026, 11, 22, 10, tzinfo=UTC)
POLICY = FollowUpPolicy(renotify_s=600, max_notices=2, lead_queue="{queue}-lead")


def alert(due_min: int = 60) -> dict[str, Any]:
    return {
        "alert_id": "a1",
        "kind": "detractor",
        "severity": "critical",
        "customer_id": "c1",
        "queue": "billing",
        "team": "billing",
        "created_at": "2026-11-22T10:00:00Z",
        "score": 2,
        "follow_up_due_at": (T0 + timedelta(minutes=due_min)).isoformat().replace("+00:00", "Z"),
        "customer": {"tier": "gold", "account_value": 100.0},
    }


def action(aid: str, kind: str, minute: float, **extra: Any) -> dict[str, Any]:
    return {
        "action_id": aid,
        "alert_id": "a1",
        "type": kind,
        "actor": "sam",
        "at": (T0 + timedelta(minutes=minute)).isoformat().replace("+00:00", "Z"),
        **extra,
    }


def at(minute: float) -> datetime:
    return T0 + timedelta(minutes=minute)


def test_overdue_raises_an_alert_and_a_lead_escalation_at_a_capped_cadence() -> None:
    fu, out = FollowUp("a1"), Changes()
    open_alert(fu, alert(), POLICY, out)
    assert not check_overdue(fu, at(59), POLICY, out)
    assert check_overdue(fu, at(61), POLICY, out)
    assert not check_overdue(fu, at(65), POLICY, out)  # re-notified at most every 10 minutes
    assert check_overdue(fu, at(72), POLICY, out)
    assert not check_overdue(fu, at(200), POLICY, out)  # capped at two notices
    raised = [(role, doc) for role, _, doc in out.outputs if role != "event"]
    kinds = [(role, doc.get("kind") or doc.get("source"), doc["queue"]) for role, doc in raised]
    assert (
        kinds
        == [("alert", "followup_overdue", "billing-lead"), ("escalation", "followup_overdue", "billing-lead")]
        * 2
    )
    assert raised[0][1]["alert_id"] != raised[2][1]["alert_id"]  # each notice its own id
    notices = [doc for role, _, doc in out.outputs if role == "event" and doc["type"] == "overdue"]
    assert [(n["notice"], n["overdue_alert_id"]) for n in notices] == [
        (1, raised[0][1]["alert_id"]),
        (2, raised[2][1]["alert_id"]),
    ]


def test_contact_stops_the_timer_and_is_measured() -> None:
    fu, out = FollowUp("a1"), Changes()
    open_alert(fu, alert(), POLICY, out)
    apply_action(fu, action("x1", "acknowledged", 5), POLICY, out)
    assert fu.status == "acknowledged"
    apply_action(fu, action("x2", "contacted", 30), POLICY, out)
    assert not check_overdue(fu, at(120), POLICY, out)
    apply_action(fu, action("x3", "resolved", 90, root_cause="late courier"), POLICY, out)
    assert (fu.status, fu.root_cause) == ("resolved", "late courier")
    assert out.contact_seconds == [1800.0] and out.resolve_seconds == [5400.0]


def test_reopening_restarts_the_clock() -> None:
    fu, out = FollowUp("a1"), Changes()
    open_alert(fu, alert(), POLICY, out)
    apply_action(fu, action("x1", "resolved", 10, root_cause="r"), POLICY, out)
    apply_action(fu, action("x2", "reopened", 100), POLICY, out)
    assert fu.status == "reopened" and fu.due_at == at(100 + 240).timestamp()
    assert not check_overdue(fu, at(101), POLICY, out)
    assert check_overdue(fu, at(100 + 240 + 1), POLICY, out)  # critical: 4 h from the reopening


def test_actions_before_the_alert_wait_and_repeats_change_nothing() -> None:
    fu, out = FollowUp("a1"), Changes()
    apply_action(fu, action("x1", "contacted", 5), POLICY, out)
    apply_action(fu, action("x1", "contacted", 5), POLICY, out)
    assert fu.alert is None and len(fu.pending) == 1 and out.duplicates == 1
    open_alert(fu, alert(), POLICY, out)
    assert fu.status == "contacted" and fu.pending == []
    apply_action(fu, action("x1", "contacted", 5), POLICY, out)
    assert out.duplicates == 2
    assert FollowUp.from_doc(fu.to_doc()) == fu


def test_an_edit_that_no_longer_qualifies_withdraws_the_follow_up() -> None:
    fu, out = FollowUp("a1"), Changes()
    open_alert(fu, alert(), POLICY, out)
    update_alert(fu, {"score": 1, "at": at(3).timestamp(), "ts": 1.0}, out)
    assert fu.alert is not None and fu.alert["score"] == 1 and fu.status == "open"
    update_alert(fu, {"score": None, "at": at(4).timestamp(), "ts": 2.0}, out)
    assert fu.status == "withdrawn" and not check_overdue(fu, at(500), POLICY, out)


@given(
    st.sampled_from(["open", "acknowledged", "reopened", "contacted", "resolved", "withdrawn"]),
    st.booleans(),
    st.one_of(st.none(), st.floats(0, 10_000)),
    st.integers(0, 3),
    st.one_of(st.none(), st.floats(0, 10_000)),
    st.lists(st.floats(0, 20_000), min_size=1, max_size=12),
)
def test_next_check_at_is_exactly_when_the_check_would_act(
    status: str,
    known: bool,
    due: float | None,
    notices: int,
    last_notice: float | None,
    checks: list[float],
) -> None:
    """The SLA timer decodes only follow-ups past ``next_check_at``: it must never miss one."""
    fu = FollowUp(
        "a1",
        alert=alert() if known else None,
        status=status,
        due_at=None if due is None else T0.timestamp() + due,
        notices=notices,
        last_notice_at=None if last_notice is None else T0.timestamp() + last_notice,
    )
    for seconds in sorted(checks):  # a timer's checks, in clock order
        expected = next_check_at(fu, POLICY)
        now = T0 + timedelta(seconds=seconds)
        acted = check_overdue(fu, now, POLICY, Changes())
        assert acted == (expected is not None and now.timestamp() >= expected)


def test_the_follow_up_record_of_an_alert_opens_the_same_follow_up_as_the_whole_alert() -> None:
    """The intake sends the follow-up stage ``for_follow_up(alert)``, not the alert with its context."""
    pipeline = Pipeline(
        Topics("s", "t", "rekey", "alerts", "dlq", followups="fu"), AlertPolicy(), lambda c: 0
    )
    records = [
        Record("t", 0, 1, None, raw(ticket("c1", "t1", "created", team="billing", customer_tier="gold"))),
        Record("s", 0, 2, None, raw(survey("c1", "r1", nps=1, ces=1, ticket_id="t1"))),
    ]
    result = pipeline.process(records, lambda cid: None, T0)
    alerts = [e.value for e in result.emits if e.topic == "alerts"]
    opens = [e.value["alert"] for e in result.emits if e.topic == "fu" and isinstance(e.value, dict)]
    assert len(alerts) == len(opens) == 2
    for whole, sent in zip(alerts, opens, strict=True):
        assert isinstance(whole, dict) and "recent_scores" in whole["customer"]
        assert sent == for_follow_up(whole) and "recent_scores" not in sent["customer"]
        a, b = FollowUp(whole["alert_id"]), FollowUp(whole["alert_id"])
        open_alert(a, whole, POLICY, Changes())
        open_alert(b, sent, POLICY, Changes())
        assert a.to_doc() == b.to_doc() and a.alert is not None and a.alert["customer_tier"] == "gold"


_times = st.one_of(st.none(), st.integers(0, 40).map(lambda x: x / 2))  # also within a second
_summaries = st.builds(Summary, _times, st.booleans(), st.booleans(), _times, st.booleans())
_ids = st.sampled_from(["a", "b", "c", "d"])
_ops = st.lists(
    st.one_of(
        st.tuples(st.just("put"), _ids, _summaries),
        st.tuples(st.just("recheck"), _ids, st.none()),
        st.tuples(st.just("due"), st.integers(0, 44).map(lambda x: x / 2), st.none()),
        st.tuples(st.just("overdue"), st.integers(0, 44).map(lambda x: x / 2), st.none()),
    ),
    max_size=60,
)


@settings(max_examples=400)
@given(_ops)
def test_the_sla_index_agrees_with_a_scan_of_every_summary(ops: list[tuple[str, Any, Any]]) -> None:
    """Totals, overdue counts (also when the clock goes back) and due follow-ups, against a brute force.

    Due follow-ups are handed out once per next-check time (or ``recheck``): the scan
    model keeps the ids handed out since their next check last changed.
    """
    index = SlaIndex()
    summaries: dict[str, Summary] = {}
    offered: set[str] = set()  # ids with a next check not handed out yet
    for op, arg, summary in ops:
        if op == "put":
            old = summaries.get(arg)
            summaries[arg] = summary
            index.put(arg, summary)
            if summary.next_check_at is None:
                offered.discard(arg)
            elif old is None or old.next_check_at != summary.next_check_at:
                offered.add(arg)
        elif op == "recheck":
            index.recheck(arg)
            if arg in summaries and summaries[arg].next_check_at is not None:
                offered.add(arg)
        elif op == "due":
            expected = sorted(
                (a for a in offered if cast(float, summaries[a].next_check_at) <= arg),
                key=lambda a: (summaries[a].next_check_at, a),
            )
            assert index.take_due(arg) == expected
            offered -= set(expected)
        else:
            overdue = sum(
                1
                for s in summaries.values()
                if s.known and s.waiting and s.due_at is not None and arg >= s.due_at
            )
            assert index.overdue(arg) == overdue
        known = [s for s in summaries.values() if s.known]
        assert (index.total, index.resolved, index.waiting) == (
            len(known),
            sum(s.resolved for s in known),
            sum(s.waiting for s in known),
        )
        assert len(index) == len(summaries)


def events(out: Changes) -> list[FollowupEvent]:
    return [FollowupEvent.model_validate(doc) for role, _, doc in out.outputs if role == "event"]


def test_every_change_is_a_followup_event_in_order_with_what_the_contract_names() -> None:
    fu, out = FollowUp("a1"), Changes()
    apply_action(fu, action("x0", "acknowledged", 1), POLICY, out)  # before its alert: waits
    open_alert(fu, alert(), POLICY, out)
    update_alert(fu, {"score": 1, "at": at(2).timestamp(), "ts": 7.0}, out)
    check_overdue(fu, at(61), POLICY, out)
    apply_action(fu, action("x1", "contacted", 62, note="called, left a message"), POLICY, out)
    apply_action(fu, action("x2", "resolved", 90, root_cause="late courier"), POLICY, out)
    apply_action(fu, action("x3", "reopened", 95), POLICY, out)
    got = events(out)
    assert [(e.type, e.status, e.actor) for e in got] == [
        ("opened", "open", None),
        ("acknowledged", "acknowledged", "sam"),
        ("updated", "acknowledged", None),
        ("overdue", "acknowledged", None),
        ("contacted", "contacted", "sam"),
        ("resolved", "resolved", "sam"),
        ("reopened", "reopened", "sam"),
    ]
    assert all(
        (e.alert_id, e.queue, e.team, e.customer_id) == ("a1", "billing", "billing", "c1") for e in got
    )
    assert got[2].score == 1 and got[3].notice == 1 and got[5].root_cause == "late courier"
    assert got[4].note == "called, left a message" and got[4].action_id == "x1"
    assert got[6].follow_up_due_at == at(95 + 240)  # the new due time after reopening
    assert len({e.event_id for e in got}) == len(got)
    assert [e.seq for e in got] == list(range(1, len(got) + 1))  # the worker's order, whatever `at` says

    again, out2 = FollowUp("a1"), Changes()  # the same inputs again: the same ids (a replay)
    apply_action(again, action("x0", "acknowledged", 1), POLICY, out2)
    open_alert(again, alert(), POLICY, out2)
    update_alert(again, {"score": 1, "at": at(2).timestamp(), "ts": 7.0}, out2)
    assert [e.event_id for e in events(out2)] == [e.event_id for e in got[:3]]


def test_a_repeated_or_unchanged_edit_adds_no_event_and_a_withdrawal_is_one() -> None:
    fu, out = FollowUp("a1"), Changes()
    open_alert(fu, alert(), POLICY, out)
    update_alert(fu, {"score": 2, "at": at(2).timestamp(), "ts": 7.0}, out)  # the same score
    update_alert(fu, {"score": None, "at": at(3).timestamp(), "ts": 8.0}, out)
    update_alert(fu, {"score": None, "at": at(4).timestamp(), "ts": 9.0}, out)  # withdrawn already
    assert [(e.type, e.status) for e in events(out)] == [("opened", "open"), ("withdrawn", "withdrawn")]


def test_durations_run_between_event_times_from_the_cause_even_when_raised_late() -> None:
    """A backfill: the survey was answered a week ago, the worker raised its alert now, and the
    agent's actions are dated when they happened (before the alert was raised). Time to contact
    and to resolve run from the survey's submitted_at to each action's at; the status follows
    the order the actions came in, and the events say that order in ``seq``."""
    week_ago = T0 - timedelta(days=7)
    late = {**alert(), "submitted_at": week_ago.isoformat().replace("+00:00", "Z")}
    late["cause_at"] = late["submitted_at"]
    for opened in (late, for_follow_up(late)):
        fu, out = FollowUp("a1"), Changes()
        open_alert(fu, opened, POLICY, out)
        dated = T0 - timedelta(days=7) + timedelta(seconds=10_200)
        minutes = (dated - T0).total_seconds() / 60
        apply_action(fu, action("x1", "contacted", minutes), POLICY, out)
        apply_action(fu, action("x2", "resolved", minutes + 60, root_cause="r"), POLICY, out)
        assert fu.status == "resolved"
        assert out.contact_seconds == [10_200.0] and out.resolve_seconds == [10_200.0 + 3600]
        got = events(out)
        assert [(e.type, e.seq) for e in got] == [("opened", 1), ("contacted", 2), ("resolved", 3)]
        assert got[1].at < got[0].at  # dated before the alert was raised, and still after it in order
    old = FollowUp.from_doc({k: v for k, v in fu.to_doc().items() if k not in ("seq", "cause_at")})
    assert old.began_at == old.opened_at and old.seq == 0  # stored before these fields: as before


def test_a_resolution_carries_its_concession_and_is_flagged_above_the_cap() -> None:
    book = {"first_tier": {"action": "credit", "cap": 25.0}, "second_tier": {"action": "more", "cap": 60.0}}
    for whole in (True, False):
        raised = {**alert(), "playbook": book}
        fu, out = FollowUp("a1"), Changes()
        open_alert(fu, raised if whole else for_follow_up(raised), POLICY, out)
        spent = {"amount": 75, "currency": "USD", "kind": "refund"}
        apply_action(fu, action("x1", "resolved", 30, root_cause="r", concession=spent), POLICY, out)
        resolved = events(out)[-1]
        assert resolved.concession is not None and resolved.concession.amount == 75
        assert (resolved.cap, resolved.over_cap) == (60.0, True)
    euro = FollowUp("a1"), Changes()
    open_alert(euro[0], {**alert(), "playbook": book}, POLICY, euro[1])
    other = {"amount": 75, "currency": "EUR", "kind": "credit"}
    apply_action(euro[0], action("x2", "resolved", 30, root_cause="r", concession=other), POLICY, euro[1])
    assert events(euro[1])[-1].over_cap is None  # another currency: not compared, the inbox asked for a note
