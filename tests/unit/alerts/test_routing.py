"""Routing rules: loading, errors naming file/rule/field, first match wins, playbook caps."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.routing import (
    DEFAULT_RULES,
    FACTS,
    Match,
    Range,
    Router,
    Rule,
    RulesError,
    check,
    load_rules,
    matches,
)

RULES = """
default_queue = "triage"

[[rules]]
name = "key-billing"
queue = "billing-priority"
priority = "urgent"
owner = "lead"
[rules.match]
category = ["billing", "refund"]
customer_tier = ["gold", "platinum"]
account_value = { min = 10000 }

[[rules]]
name = "escalated"
queue = "desk"
match = { kind = "ticket_escalated" }

[[rules]]
name = "by-team"
queue = "{team}"

[[playbook]]
kind = "detractor"
first_tier = { action = "Call and apologise", credit = 20 }

[[playbook]]
kind = "detractor"
category = "delivery"
first_tier = { action = "Credit the delivery", credit = 50, percent = 10 }
second_tier = { action = "On push-back", credit = 70, percent = 20 }
"""


@pytest.fixture
def router(tmp_path: Path) -> Router:
    path = tmp_path / "rules.toml"
    path.write_text(RULES)
    return Router(load_rules(path))


def test_first_match_wins_and_default_catches_the_rest(router: Router) -> None:
    key = {
        "kind": "detractor",
        "category": "refund",
        "customer_tier": "gold",
        "account_value": 20_000,
        "team": "billing",
    }
    assert router.route(key) == ("key-billing", "billing-priority", "urgent", "lead")
    assert router.route({**key, "account_value": 9_999})[:2] == ("by-team", "billing")
    assert router.route({"kind": "ticket_escalated", "team": "x"})[:2] == ("escalated", "desk")
    assert router.route({"kind": "detractor"})[:2] == ("default", "triage")  # no team: {team} cannot apply
    assert router.route({"team": "Returns & Refunds"})[1] == "returns-refunds"


def test_explain_says_why(router: Router) -> None:
    lines = router.explain(
        {"kind": "detractor", "category": "refund", "customer_tier": "silver", "team": "b"}
    )
    assert lines[0].startswith("1. key-billing: no - customer_tier='silver' not in ['gold', 'platinum']")
    assert lines[2] == "3. by-team: MATCH"
    assert lines[-1] == "=> rule 'by-team': queue 'b', priority 'normal', owner None"


def test_yaml_works_too(tmp_path: Path) -> None:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "default_queue: help\nrules:\n  - name: vip\n    queue: vip\n    match: {customer_tier: gold}\n"
    )
    r = Router(load_rules(path))
    assert r.route({"customer_tier": "gold"})[1] == "vip" and r.route({})[1] == "help"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            '[[rules]]\nname = "a"\nqueue = "q"\n[rules.match]\ncolour = "red"\n',
            "rule #1 ('a'), field match.colour: Extra inputs are not permitted",
        ),
        ('[[rules]]\nname = "a"\nqueue = "no spaces"\n', "rule #1 ('a'), field queue"),
        ('[[rules]]\nname = "a"\nqueue = "{owner}"\n', "unknown placeholders ['owner']"),
        (
            '[[rules]]\nname = "a"\nqueue = "q"\nmatch = { account_value = { min = 9, max = 1 } }\n',
            "field match.account_value",
        ),
        ('[[rules]]\nname = "a"\nqueue = "q"\n[[rules]]\nname = "a"\nqueue = "r"\n', "used twice"),
        ('[[rules]]\nqueue = "q"\n', "rule #1, field name: Field required"),
        ('[[rules]]\nname = "a"\nqueue = "q"\npriority = "asap"\n', "field priority"),
        ("default_queue = \n", "not valid TOML"),
    ],
)
def test_errors_name_the_file_the_rule_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(RulesError) as err:
        load_rules(path)
    assert str(path) in str(err.value) and message in str(err.value)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(RulesError, match="cannot read"):
        load_rules(tmp_path / "none.toml")
    (tmp_path / "r.json").write_text("{}")
    with pytest.raises(RulesError, match=r"\.toml, \.yaml or \.yml"):
        load_rules(tmp_path / "r.json")


def test_playbook_prefers_the_category_and_caps_the_concession(router: Router) -> None:
    play = router.playbook("detractor", "delivery", 300.0)
    assert play is not None
    assert play["first_tier"]["cap"] == 30.0  # 10% of 300 is less than $50
    assert play["second_tier"]["cap"] == 60.0  # 20% of 300 is less than $70
    general = router.playbook("detractor", "billing", None)
    assert general is not None and general["first_tier"]["cap"] == 20 and general["second_tier"] is None
    assert router.playbook("low_stars", None, 10.0) is None


@given(st.floats(0, 10_000), st.floats(0, 100), st.one_of(st.none(), st.floats(0.01, 1e6)))
def test_concession_cap_is_whichever_is_less(credit: float, percent: float, base: float | None) -> None:
    from alerts.routing import Tier, _tier

    cap = _tier(Tier(action="a", credit=credit, percent=percent), base)["cap"]
    expected = credit if base is None else min(credit, percent / 100 * base)
    assert cap == round(expected, 2)


def test_default_rules_route_by_team() -> None:
    r = Router(DEFAULT_RULES)
    assert r.route({"team": "Billing"})[1:3] == ("billing", "normal")
    assert r.route({})[1] == "triage"


def test_the_shipped_example_rules_file_is_valid() -> None:
    path = Path(__file__).parents[3] / "alerts" / "rules.example.toml"
    r = Router(load_rules(path))
    assert r.route({"kind": "ticket_escalated", "team": "Returns"})[1] == "returns-escalations"
    play = r.playbook("detractor", "delivery", 400.0)
    assert play is not None and play["first_tier"]["cap"] == 40.0


_WORDS = st.sampled_from(["a", "b", "7", "gold"])
_MATCHES = st.builds(
    Match,
    **{name: st.none() | st.lists(_WORDS, min_size=1, max_size=3) for name in FACTS},
    account_value=st.none() | st.builds(Range, min=st.none() | st.just(10.0), max=st.none() | st.just(100.0)),
)
_FACTS = st.fixed_dictionaries(
    {name: st.none() | _WORDS | st.integers(0, 9) for name in FACTS}
    | {"account_value": st.none() | st.floats(0, 200)}
)


@given(_MATCHES, _FACTS)
def test_the_routing_fast_path_agrees_with_the_explained_check(
    match: Match, facts: dict[str, object]
) -> None:
    rule = Rule(name="r", queue="q", match=match)
    assert matches(rule, facts) is (not check(rule, facts))


def test_a_rules_file_of_destinations_alone_keeps_a_queue_per_team(tmp_path: Path) -> None:
    only = tmp_path / "destinations.toml"
    only.write_text('notify_default = ["log"]\n\n[destinations.log]\nkind = "console"\n')
    router = Router(load_rules(only))
    assert router.route({"team": "Billing", "kind": "detractor"})[:2] == ("team-queue", "billing")
    # an explicit empty list of rules is a choice: everything to the default queue
    none = tmp_path / "none.toml"
    none.write_text('default_queue = "triage"\nrules = []\n')
    assert Router(load_rules(none)).route({"team": "Billing", "kind": "detractor"})[1] == "triage"
