"""Alert classification at its boundaries and against a brute-force reference."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from alerts.policy import AlertPolicy
from schemas.inputs import Scores

POLICY = AlertPolicy()


def kinds(**scores: int) -> list[str]:
    return [f.kind for f in POLICY.classify(Scores(**scores))]


def test_nps_six_is_a_detractor_and_seven_is_not() -> None:
    assert kinds(nps=6) == ["detractor"]
    assert kinds(nps=7) == []
    assert kinds(nps=0) == ["detractor"]


def test_ces_two_is_high_effort_and_three_is_not() -> None:
    assert kinds(ces=2) == ["low_effort"]
    assert kinds(ces=1) == ["low_effort"]
    assert kinds(ces=3) == []


def test_every_reason_is_reported_once_in_a_stable_order() -> None:
    assert kinds(nps=2, ces=1, csat=1, stars=2) == ["detractor", "low_effort", "low_csat", "low_stars"]


def test_key_accounts_are_always_critical() -> None:
    assert POLICY.classify(Scores(nps=6))[0].severity == "warning"
    assert POLICY.classify(Scores(nps=6), tier="gold")[0].severity == "critical"
    assert POLICY.classify(Scores(nps=6), account_value=50_000)[0].severity == "critical"
    assert POLICY.classify(Scores(nps=6), account_value=49_999.99)[0].severity == "warning"


def test_optional_kinds_can_be_switched_off() -> None:
    policy = AlertPolicy(csat_max=None, stars_max=None)
    assert policy.classify(Scores(csat=1, stars=1)) == []


def _reference(scores: dict[str, int], key: bool) -> list[tuple[str, str]]:
    """Brute force: spell out every alerting score and its severity."""
    table = {
        "nps": ("detractor", {0: "c", 1: "c", 2: "c", 3: "c", 4: "w", 5: "w", 6: "w"}),
        "ces": ("low_effort", {1: "c", 2: "w"}),
        "csat": ("low_csat", {1: "c", 2: "w"}),
        "stars": ("low_stars", {1: "c", 2: "w"}),
    }
    out = []
    for metric in ("nps", "ces", "csat", "stars"):
        kind, levels = table[metric]
        if metric in scores and scores[metric] in levels:
            sev = "critical" if key or levels[scores[metric]] == "c" else "warning"
            out.append((kind, sev))
    return out


@given(
    st.fixed_dictionaries(
        {},
        optional={
            "nps": st.integers(0, 10),
            "ces": st.integers(1, 7),
            "csat": st.integers(1, 5),
            "stars": st.integers(1, 5),
        },
    ).filter(bool),
    st.sampled_from([None, "standard", "gold", "platinum"]),
    st.one_of(st.none(), st.floats(0, 200_000)),
)
def test_classification_matches_reference(
    scores: dict[str, int], tier: str | None, value: float | None
) -> None:
    found = POLICY.classify(Scores(**scores), tier, value)
    key = tier in {"gold", "platinum"} or (value is not None and value >= 50_000)
    assert [(f.kind, f.severity) for f in found] == _reference(scores, key)
    for f in found:
        assert f.score <= f.threshold
