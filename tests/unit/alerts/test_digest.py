"""The digest's numbers: significance, contact times, close rate, risk shares and asks."""

from __future__ import annotations

import math
import statistics
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.digest import Score, Thresholds, build, close_rate, contact_times, risks, significance

NOW = 1_795_000_000.0
WEEK = 7 * 86400.0


@given(
    a=st.floats(-100, 100),
    b=st.floats(-100, 100),
    sa=st.floats(0.01, 30),
    sb=st.floats(0.01, 30),
    z=st.floats(0.5, 4),
)
def test_significance_is_a_two_sided_z_test_on_the_difference(
    a: float, b: float, sa: float, sb: float, z: float
) -> None:
    change, significant = significance(Score(a, 100, sa), Score(b, 100, sb), z)
    assert change == pytest.approx(a - b)
    reference = abs(a - b) / math.sqrt(sa * sa + sb * sb)  # brute force: the textbook formula
    assert significant == (reference >= z)


def test_no_test_without_a_previous_value_or_standard_errors() -> None:
    assert significance(Score(10, 5, 1.0), Score(None, 0, None), 1.96) == (None, None)
    assert significance(Score(10, 5, None), Score(5, 5, 1.0), 1.96) == (5, None)


@given(st.lists(st.tuples(st.floats(0, 1e6), st.lists(st.floats(0, 1e6), max_size=3)), max_size=30))
def test_contact_time_is_the_first_contact_after_the_alert(rows: list[tuple[float, list[float]]]) -> None:
    alerts = [{"alert_id": f"a{i}", "created_at": created} for i, (created, _) in enumerate(rows)]
    events = [
        {"alert_id": f"a{i}", "type": "contacted", "at": created + d}
        for i, (created, ds) in enumerate(rows)
        for d in ds
    ]
    events += [{"alert_id": "a0", "type": "acknowledged", "at": 0.0}]  # other types never count
    expected = sorted(min(ds) for _, ds in rows if ds)
    assert sorted(contact_times(alerts, events)) == pytest.approx(expected, abs=1e-6)  # float sums


def test_close_rate_leaves_out_withdrawn_follow_ups_and_overdue_notices() -> None:
    rows = [
        {"kind": "detractor", "status": s} for s in ("resolved", "resolved", "contacted", "withdrawn", "open")
    ]
    rows.append({"kind": "followup_overdue", "status": "open"})
    assert close_rate(rows) == pytest.approx(2 / 4)
    assert close_rate([]) is None


def snap(dimension: str, key: str, metric: str, **values: Any) -> dict[str, Any]:
    return {"dimension": dimension, "key": key, "metric": metric, **values}


@given(
    st.dictionaries(
        st.sampled_from(["refund", "delivery", "login", "billing"]),
        st.tuples(st.integers(1, 500), st.integers(0, 500)),
        min_size=1,
    )
)
def test_risk_shares_add_up_and_equal_counting(drivers: dict[str, tuple[int, int]]) -> None:
    rows = [snap("category", k, "nps", responses=n, detractors=min(d, n)) for k, (n, d) in drivers.items()]
    found = risks(rows, [], [], frozenset(), 50_000)
    contacts = sum(n for n, _ in drivers.values())
    detractors = sum(min(d, n) for n, d in drivers.values())
    assert math.isclose(sum(r.contact_share for r in found), 1.0)
    for r in found:
        n, d = drivers[r.driver]
        assert r.contact_share == pytest.approx(n / contacts)
        assert r.detractor_share == pytest.approx(min(d, n) / detractors if detractors else 0.0)
    assert [r.detractor_share for r in found] == sorted((r.detractor_share for r in found), reverse=True)


def alert(i: int, **extra: Any) -> dict[str, Any]:
    doc = {"category": extra.pop("category", "refund")}
    return {
        "alert_id": f"a{i}",
        "kind": "detractor",
        "status": "open",
        "queue": "billing",
        "team": "billing",
        "customer_id": f"c{i % 7}",
        "tier": "gold" if i % 7 % 3 == 0 else "standard",  # per customer: c0, c3, c6 are gold
        "account_value": 10_000.0 * (i % 7 % 4),
        "created_at": NOW - 3600,
        "due_at": NOW - 60,
        "doc": doc,
        **extra,
    }


def test_the_digest_says_what_is_off_what_it_costs_and_what_to_ask() -> None:
    alerts = [alert(i) for i in range(12)] + [
        alert(20 + i, category="login", status="resolved") for i in range(3)
    ]
    events = [{"alert_id": f"a{20 + i}", "type": "contacted", "at": NOW - 3000 + 60 * i} for i in range(3)]
    events += [
        {"alert_id": f"a{20 + i}", "type": "resolved", "at": NOW - 2000, "root_cause": "Late courier "}
        for i in range(3)
    ]
    escalations = [
        {
            "team": "billing",
            "customer_id": "c1",
            "doc": orjson.dumps({"ticket": {"category": "refund"}}).decode(),
        }
    ] * 2
    snaps = [
        snap("overall", "all", "nps", value=-10.0, responses=400, stderr=4.0),
        snap("overall", "all", "csat", value=81.0, responses=400, stderr=2.0),
        snap("category", "refund", "nps", responses=60, detractors=40),
        snap("category", "login", "nps", responses=340, detractors=20),
    ]
    before = [
        snap("overall", "all", "nps", value=20.0, responses=380, stderr=4.5),
        snap("overall", "all", "csat", value=80.0, responses=380, stderr=2.0),
    ]
    d = build(
        NOW - WEEK,
        NOW,
        {"alerts": alerts, "events": events, "escalations": escalations},
        {"alerts": [], "events": [], "escalations": []},
        snaps,
        before,
        {"nps": 30, "csat": 80, "close_ratio": 0.8, "time_to_contact_seconds": 3600},
        frozenset({"gold"}),
        50_000,
        NOW,
    )
    goals = {g.metric: g for g in d.goals}
    assert not d.on_track and d.headline.startswith("Not on track: NPS -10.0 vs goal 30.0")
    assert goals["nps"].significant and goals["nps"].change == pytest.approx(-30.0)
    assert goals["csat"].met and goals["csat"].significant is False  # +1 with these errors: no change
    assert goals["close_ratio"].value == pytest.approx(3 / 15) and goals["close_ratio"].met is False
    assert goals["time_to_contact_seconds"].value == pytest.approx(statistics.median([600, 660, 720]))
    assert "NPS down 30.0 points to -10.0 (significant)" in d.biggest_change
    refund = d.risks[0]
    assert (refund.driver, refund.contact_share, refund.detractor_share) == ("refund", 60 / 400, 40 / 60)
    assert refund.key_accounts == 3  # c0, c3, c6 are gold (customers counted once)
    assert d.root_causes == [("late courier", 3)] and d.repeat_customers == 1
    asks = "\n".join(d.asks)
    assert "Fix refund at the source: 15% of contacts but 67% of detractors" in asks
    assert "Review NPS" in asks and "queue billing: 12 of 12 open follow-ups are overdue" in asks
    assert "late courier" in asks and "Review 1 accounts escalated" in asks


def test_thresholds_from_configuration() -> None:
    assert Thresholds.of({"root_cause_count": 5.0}).root_cause_count == 5
    with pytest.raises(ValueError, match="unknown digest thresholds"):
        Thresholds.of({"nope": 1})


def digest_of(snaps: list[dict[str, Any]], before: list[dict[str, Any]], **current: Any) -> Any:
    period = {"alerts": [], "events": [], "escalations": [], **current}
    return build(
        NOW - WEEK,
        NOW,
        period,
        {"alerts": [], "events": [], "escalations": []},
        snaps,
        before,
        {"nps": 30, "csat": 80, "close_ratio": 0.8},
        frozenset({"gold"}),
        50_000,
        NOW,
    )


@given(st.floats(20, 95), st.floats(20, 95), st.integers(30, 2000), st.integers(30, 2000))
def test_a_csat_change_is_tested_from_its_counts(now: float, before: float, n: int, m: int) -> None:
    snaps = [snap("overall", "all", "csat", value=now, responses=n)]  # no stderr: CSAT is a share
    prior = [snap("overall", "all", "csat", value=before, responses=m)]
    goal = {g.metric: g for g in digest_of(snaps, prior).goals}["csat"]
    p, q = now / 100, before / 100  # the brute-force rule, written out
    z = (p - q) / math.sqrt(p * (1 - p) / n + q * (1 - q) / m)
    assert goal.change == pytest.approx(now - before)
    assert goal.significant == (abs(z) >= 1.96)


def test_the_issues_csat_drop_is_significant_and_asks_for_a_review() -> None:
    snaps = [snap("overall", "all", "csat", value=57.5, responses=120)]
    prior = [snap("overall", "all", "csat", value=80.0, responses=120)]
    d = digest_of(snaps, prior)
    csat = {g.metric: g for g in d.goals}["csat"]
    assert csat.significant is True and csat.change == pytest.approx(-22.5)
    assert any(a.startswith("Review CSAT") for a in d.asks)


def test_a_driver_without_contacts_this_period_is_no_risk_and_skews_no_share() -> None:
    fresh_at, stale_at = NOW - 3600, NOW - WEEK - 3600  # refund's newest snapshot is of the last period
    snaps = [
        snap("category", "refund", "nps", responses=60, detractors=40, as_of=stale_at),
        snap("category", "login", "nps", responses=30, detractors=10, as_of=fresh_at),
        snap("category", "delivery", "nps", responses=10, detractors=10, as_of=fresh_at),
    ]
    before = [snap("category", "refund", "nps", responses=60, detractors=40, as_of=stale_at)]
    d = digest_of(snaps, before)
    assert [r.driver for r in d.risks] == ["delivery", "login"]
    assert {r.driver: r.contact_share for r in d.risks} == {"delivery": 0.25, "login": 0.75}
    assert d.vanished == [("refund", 1.0)]


def test_overdue_notices_are_follow_up_health_not_escalations() -> None:
    customer = [{"team": "billing", "customer_id": "c1", "source": "ticket_escalated", "doc": None}]
    notices = [{"team": "billing", "customer_id": "c1", "source": "followup_overdue", "doc": None}] * 3
    d = digest_of([], [], escalations=customer + notices)
    assert {t: n for t, n, _, _ in d.escalations_by_team} == {"billing": 1}
    assert d.overdue_notices == 3
    assert d.repeat_customers == 0  # one customer escalation: no repeat, whatever the notices
