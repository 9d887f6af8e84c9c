"""Snapshots from partials, small-sample honesty and trend-drop detection."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from alerts.feedback import TrendPolicy
from alerts.scores import add_into, answer_stats, zero
from alerts.snapshots import snapshot_records, trend_alerts
from alerts.windows import PartitionWindows, parse_windows
from schemas.outputs import FeedbackWindow, TrendAlert

SPECS = parse_windows("24h,7d", buckets=24)
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
END = NOW.timestamp()
DIM = ("team", "billing")


def partial(answers: list[tuple[float, int]]) -> tuple[PartitionWindows, dict[str, object]]:
    pw = PartitionWindows(SPECS, grace=3600)
    pw.observe(END)
    for ts, nps in answers:
        pw.apply([DIM], ts, answer_stats(nps, None, None, None, None, None), pw.open_mask(ts))
    return pw, pw.doc(DIM)


def test_partials_from_several_partitions_add_up() -> None:
    _, a = partial([(END - 100, 10), (END - 200, 0)])
    _, b = partial([(END - 300, 9)] * 10)
    recs = snapshot_records("team", "billing", SPECS, [a, b], END, 10, NOW)
    nps = next(r for r in recs if r["window"] == "24h" and r["metric"] == "nps")
    assert (nps["responses"], nps["promoters"], nps["detractors"]) == (12, 11, 1)
    assert nps["value"] == 100 * (11 - 1) / 12 and not nps["insufficient"]
    for r in recs:
        FeedbackWindow.model_validate(r)


def test_small_samples_are_marked_insufficient_not_shown() -> None:
    _, a = partial([(END - 100, 0)] * 3)
    (rec,) = [
        r
        for r in snapshot_records("team", "billing", SPECS, [a], END, 10, NOW)
        if r["window"] == "24h" and r["metric"] == "nps"
    ]
    assert rec["value"] is None and rec["insufficient"] and rec["estimate"] == -100.0


def _week(rng: random.Random, recent_bad: bool, per_day: int = 40) -> dict[str, object]:
    answers = []
    for day in range(7):
        for _ in range(per_day):
            ts = END - day * 86400 - rng.uniform(1, 86000)
            bad = recent_bad and day == 0
            answers.append((ts, rng.choice([0, 3, 5, 6, 7, 9]) if bad else rng.choice([7, 9, 10, 10, 9, 6])))
    return partial(answers)[1]


def test_a_real_drop_raises_one_trend_alert() -> None:
    doc = _week(random.Random(1), recent_bad=True)
    (alert,) = trend_alerts("team", "billing", SPECS, [doc], END, TrendPolicy(), NOW)
    TrendAlert.model_validate(alert)
    assert alert["metric"] == "nps" and alert["value"] < alert["baseline"] - 10 and alert["z"] < -2.3
    assert 35 <= alert["responses"] <= 40  # the recent day, as far as the aligned window reaches
    assert 200 <= alert["baseline_responses"] < 240  # up to six more days, the recent one excluded


def test_noise_raises_nothing() -> None:
    rng = random.Random(7)
    raised = sum(
        bool(trend_alerts("team", "billing", SPECS, [_week(rng, recent_bad=False)], END, TrendPolicy(), NOW))
        for _ in range(40)
    )
    assert raised <= 1


def test_too_few_answers_raise_nothing() -> None:
    doc = _week(random.Random(1), recent_bad=True, per_day=5)
    assert trend_alerts("team", "billing", SPECS, [doc], END, TrendPolicy(), NOW) == []


def test_stats_vectors_subtract_exactly() -> None:
    a, b = zero(), answer_stats(3, 2, 1, 1, 2.5, True)
    add_into(a, b)
    add_into(a, b, -1.0)
    assert a == zero()
