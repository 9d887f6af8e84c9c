"""Score formulas against brute-force references."""

from __future__ import annotations

import math
import statistics

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.scores import F, add_into, answer_stats, mean, nps, values, wilson, zero


@given(st.lists(st.integers(0, 10), min_size=1, max_size=300))
def test_nps_and_its_standard_error(answers: list[int]) -> None:
    n = len(answers)
    promoters = sum(a >= 9 for a in answers)
    detractors = sum(a <= 6 for a in answers)
    value, se = nps(promoters, n - promoters - detractors, detractors)
    assert value == pytest.approx(100 * (promoters - detractors) / n)
    # brute force: the standard error of the mean of per-answer scores +100/0/-100
    scores = [100 if a >= 9 else -100 if a <= 6 else 0 for a in answers]
    pop_var = statistics.pvariance(scores)
    assert se == pytest.approx(math.sqrt(pop_var / n), abs=1e-9)
    assert -100 <= value <= 100


@given(st.integers(0, 500), st.integers(1, 500))
def test_wilson_interval_contains_the_estimate(hits: int, n: int) -> None:
    hits = min(hits, n)
    pct, lo, hi = wilson(hits, n)
    assert pct == pytest.approx(100 * hits / n)
    assert lo is not None and hi is not None and pct is not None
    assert 0 <= lo <= pct + 1e-9 and pct <= hi + 1e-9 and hi <= 100


def test_wilson_known_value() -> None:
    # 8 of 10: Wilson 95% interval is about 49.0% .. 94.3%
    _, lo, hi = wilson(8, 10)
    assert lo == pytest.approx(49.02, abs=0.01) and hi == pytest.approx(94.33, abs=0.01)


@given(st.lists(st.integers(1, 7), min_size=1, max_size=200))
def test_mean_and_standard_error(xs: list[int]) -> None:
    m, se = mean(sum(xs), sum(x * x for x in xs), len(xs))
    assert m == pytest.approx(statistics.fmean(xs))
    expected = statistics.stdev(xs) / math.sqrt(len(xs)) if len(xs) > 1 else 0.0
    assert se == pytest.approx(expected, abs=1e-9)


@given(
    st.lists(
        st.fixed_dictionaries(
            {},
            optional={
                "nps": st.integers(0, 10),
                "csat": st.integers(1, 5),
                "ces": st.integers(1, 7),
                "stars": st.integers(1, 5),
                "ves": st.tuples(st.integers(1, 7), st.integers(1, 7)),
                "goal": st.booleans(),
            },
        ),
        min_size=1,
        max_size=100,
    )
)
def test_every_survey_metric_against_brute_force(answers: list[dict[str, object]]) -> None:
    total = zero()
    for a in answers:
        ves = a.get("ves")
        add_into(
            total,
            answer_stats(
                a.get("nps"),
                a.get("csat"),
                a.get("ces"),
                a.get("stars"),  # type: ignore[arg-type]
                sum(ves) / 2 if ves else None,
                a.get("goal"),
            ),
        )  # type: ignore[arg-type]
    got = {v.metric: v for v in values(total)}

    def col(name: str) -> list[object]:
        return [a[name] for a in answers if name in a]

    csat, ces, stars, goal = col("csat"), col("ces"), col("stars"), col("goal")
    ves = [sum(v) / 2 for v in col("ves")]  # type: ignore[arg-type]
    check = {
        "csat": 100 * sum(c >= 4 for c in csat) / len(csat) if csat else None,  # type: ignore[operator]
        "ces": statistics.fmean(ces) if ces else None,  # type: ignore[arg-type]
        "ces_easy": 100 * sum(c >= 5 for c in ces) / len(ces) if ces else None,  # type: ignore[operator]
        "stars": statistics.fmean(stars) if stars else None,  # type: ignore[arg-type]
        "ves": statistics.fmean(ves) if ves else None,
        "goal_completion": 100 * sum(bool(g) for g in goal) / len(goal) if goal else None,
    }
    for metric, expected in check.items():
        assert got[metric].value == (pytest.approx(expected) if expected is not None else None), metric
    assert got["nps"].n == len(col("nps")) and got["csat"].n == len(csat)


def test_handle_time_example_from_the_issue() -> None:
    # 1000 min talk + 100 min hold + 500 min follow-up work over 50 calls = 32 min
    total = zero()
    total[F.AHT_N], total[F.AHT_SUM] = 50, (1000 + 100 + 500) * 60
    aht = next(v for v in values(total) if v.metric == "handle_seconds")
    assert aht.value == 32 * 60


def test_empty_windows_have_no_values() -> None:
    assert all(v.value is None and v.n == 0 for v in values(zero()))
