"""Replay's SLA clock against a brute-force reference: the overdue notices the worker's timer raises."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.followup import FollowUpPolicy
from alerts.replay import Outcome, SlaClock

T0 = 1_795_000_000.0


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def opened(alert_id: str, at: float, due_s: float) -> dict[str, Any]:
    return {
        "op": "open",
        "alert": {
            "alert_id": alert_id,
            "kind": "detractor",
            "severity": "critical",
            "customer_id": f"c-{alert_id}",
            "response_id": f"r-{alert_id}",
            "queue": "billing",
            "team": "billing",
            "created_at": stamp(at),
            "cause_at": stamp(at - 30),
            "follow_up_due_at": stamp(at + due_s),
            "customer": {"tier": None, "account_value": None},
        },
    }


def contacted(alert_id: str, at: float) -> dict[str, Any]:
    return {
        "action_id": f"x-{alert_id}",
        "alert_id": alert_id,
        "type": "contacted",
        "actor": "sam",
        "at": stamp(at),
    }


# per alert: seconds after T0 it is raised, its SLA, and when (if ever) someone contacts the customer
alert_plans = st.lists(
    st.tuples(
        st.integers(0, 5000),
        st.integers(1, 3000),
        st.one_of(st.none(), st.integers(0, 20_000)),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=150, deadline=None)
@given(
    plans=alert_plans,
    renotify=st.integers(1, 4000),
    max_notices=st.integers(1, 4),
    until=st.integers(0, 25_000),
    steps=st.integers(1, 40),
)
def test_notices_are_those_a_timer_on_the_virtual_clock_raises(
    plans: list[tuple[int, int, int | None]], renotify: int, max_notices: int, until: int, steps: int
) -> None:
    policy = FollowUpPolicy(renotify_s=renotify, max_notices=max_notices, lead_queue="{queue}-lead")
    clock = SlaClock(policy)
    inputs: list[tuple[float, int, Any]] = []  # (time, order at ties: alerts first, what)
    for i, (raised, due, contact) in enumerate(plans):
        inputs.append((T0 + raised, 0, opened(f"a{i}", T0 + raised, due)))
        if contact is not None:
            inputs.append((T0 + raised + contact, 1, contacted(f"a{i}", T0 + raised + contact)))
    notices: list[dict[str, Any]] = []
    end = T0 + until
    for t, _, what in sorted(inputs, key=lambda x: (x[0], x[1])):
        if t > end:
            break
        notices += clock.advance(t)  # the timer first, then the record (as the worker's batch)
        if "op" in what:
            clock.follow(what)
        else:
            clock.act(what)
    # the clock in uneven steps to the end: the same notices as one jump
    for k in range(1, steps + 1):
        notices += clock.advance(T0 + (end - T0) * k / steps)

    expected: dict[str, list[float]] = {}
    for i, (raised, due, contact) in enumerate(plans):
        stop = min(end, T0 + raised + contact if contact is not None else end)
        times = [T0 + raised + due + k * renotify for k in range(max_notices)]
        expected[f"a{i}"] = [t for t in times if t <= stop]
    got: dict[str, list[float]] = {f"a{i}": [] for i in range(len(plans))}
    for doc in notices:
        if doc.get("kind") == "followup_overdue":
            got[doc["original_alert_id"]].append(datetime.fromisoformat(doc["created_at"]).timestamp())
    assert got == expected
    escalations = [d for d in notices if d.get("source") == "followup_overdue"]
    assert len(escalations) == sum(map(len, expected.values()))
    assert all(e["queue"] == "billing-lead" for e in escalations)


def test_overdue_notices_are_compared_like_every_other_alert() -> None:
    clock = SlaClock(FollowUpPolicy(renotify_s=60, max_notices=1))
    clock.follow(opened("a1", T0, 100))
    out = Outcome()
    for doc in clock.advance(T0 + 1000):
        out.add(doc)
    assert [a["kind"] for a in out.alerts.values()] == ["followup_overdue"] and len(out.escalations) == 1
