"""What recovery costs: percentiles against a brute force, the guide's rule, caps and flags."""

from __future__ import annotations

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.concessions import (
    OVERALL,
    nearest_rank,
    nice_cap,
    over_cap,
    playbook_cap,
    recovery_costs,
    resolutions,
    suggestion,
)
from alerts.digest import money


@settings(max_examples=200, deadline=None)
@given(st.lists(st.floats(0, 10_000, allow_nan=False), min_size=1, max_size=60), st.floats(0.01, 1.0))
def test_the_percentile_is_the_smallest_value_covering_that_share(values: list[float], q: float) -> None:
    got = nearest_rank(values, q)
    # brute force: the smallest of the values with at least q of them at or below it
    covering = [v for v in values if sum(x <= v for x in values) >= q * len(values) - 1e-9]
    assert got == min(covering)


@given(st.integers(0, 10_000_000).map(lambda cents: cents / 100))
def test_a_nice_cap_is_just_above_the_amount(amount: float) -> None:
    cap = nice_cap(amount)
    step = 5 if amount < 100 else 25 if amount < 1000 else 100
    assert amount <= cap < amount + step and cap % step == 0


def test_the_guides_example() -> None:
    assert nice_cap(74) == 75 and nice_cap(75) == 75 and nice_cap(310) == 325 and nice_cap(0) == 0


def test_the_cap_is_the_playbooks_highest_tier() -> None:
    book = {"first_tier": {"action": "a", "cap": 25.0}, "second_tier": {"action": "b", "cap": 60.0}}
    assert playbook_cap(book) == 60.0 and playbook_cap({"first_tier": {"cap": None}}) is None
    assert playbook_cap(None) is None
    usd = {"amount": 61, "currency": "USD", "kind": "credit"}
    assert over_cap(usd, 60.0, "USD") is True and over_cap({**usd, "amount": 60}, 60.0, "USD") is False
    assert over_cap({**usd, "currency": "EUR"}, 60.0, "USD") is None and over_cap(usd, None, "USD") is None


concessions = st.one_of(
    st.none(),
    st.fixed_dictionaries(
        {
            "amount": st.integers(0, 300),
            "currency": st.sampled_from(["USD", "USD", "USD", "EUR"]),
            "kind": st.sampled_from(["credit", "refund", "none"]),
        }
    ),
)


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["refund", "delivery", None]), concessions, st.sampled_from(["resolved", "open"])
        ),
        min_size=0,
        max_size=40,
    ),
    st.integers(1, 12),
)
def test_costs_per_driver_and_overall_equal_counting(
    rows: list[tuple[str | None, dict[str, Any] | None, str]], min_n: int
) -> None:
    alerts, events = [], []
    for i, (category, concession, status) in enumerate(rows):
        alerts.append(
            {"alert_id": f"a{i}", "status": status, "kind": "detractor", "doc": {"category": category}}
        )
        # an earlier resolution, reopened since: only the newest (by seq) counts
        events.append(
            {
                "alert_id": f"a{i}",
                "type": "resolved",
                "seq": 2,
                "at": 1.0,
                "doc": orjson.dumps(
                    {"concession": {"amount": 999, "currency": "USD", "kind": "credit"}}
                ).decode(),
            }
        )
        doc = {"concession": concession, "cap": 50} if concession else {"cap": 50}
        events.append(
            {"alert_id": f"a{i}", "type": "resolved", "seq": 4, "at": 0.5, "doc": orjson.dumps(doc).decode()}
        )
    costs = {c.group: c for c in recovery_costs(resolutions(alerts, events), "USD", min_n)}
    groups: dict[str, list[Any]] = {}
    for category, concession, status in rows:
        if status == "resolved":
            for g in (OVERALL, category or "-"):
                groups.setdefault(g, []).append(concession)
    assert set(costs) == set(groups)
    for g, items in groups.items():
        spent = [c for c in items if c and c["kind"] != "none" and c["amount"] > 0]
        amounts = sorted(
            [float(c["amount"]) for c in spent if c["currency"] == "USD"] + [0.0] * (len(items) - len(spent))
        )
        c = costs[g]
        assert c.resolved == len(amounts) and c.other_currency == sum(x["currency"] != "USD" for x in spent)
        assert c.share_none == ((len(items) - len(spent)) / len(amounts) if amounts else None)
        p80 = amounts[-(-len(amounts) * 4 // 5) - 1] if amounts else None  # ceil(0.8 n)-th smallest
        assert c.p80 == p80 and c.current_cap == 50
        assert (c.suggested_cap is not None) == (len(amounts) >= min_n)
        if c.suggested_cap is not None and p80:
            assert f"80% of recoveries cost at most {money(p80)}" in (c.rule(money) or "")


def test_suggest_writes_a_rules_file_snippet_that_loads() -> None:
    import tomllib

    from alerts.routing import RuleSet

    alerts = [
        {"alert_id": f"a{i}", "status": "resolved", "kind": "detractor", "doc": {"category": 'refund "x"'}}
        for i in range(10)
    ]
    events = [
        {
            "alert_id": f"a{i}",
            "type": "resolved",
            "seq": 3,
            "doc": {"concession": {"amount": 10 * i, "currency": "USD", "kind": "credit"}},
        }
        for i in range(10)
    ]
    text = suggestion(resolutions(alerts, events), "USD", 5, lambda k, c: None, "the last 30 days")
    rules = RuleSet.model_validate(tomllib.loads(text))
    caps = {(p.kind, p.category): p.first_tier.credit for p in rules.playbook}
    assert caps == {("detractor", None): 70.0, ("detractor", 'refund "x"'): 70.0}  # 80% at most 70
    assert "Too few" in suggestion([], "USD", 5, lambda k, c: None, "p")
