"""Outcomes of answers, Retry-After, and the backoff against a brute-force reference."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.notify.retry import RetryPolicy, classify_http, classify_smtp, parse_retry_after

NOW = datetime(2026, 11, 22, 14, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (204, "delivered"),
        (410, "disabled"),
        (429, "retry"),
        (408, "retry"),
        (500, "retry"),
        (503, "retry"),
        (400, "rejected"),
        (401, "rejected"),
        (404, "rejected"),
        (301, "rejected"),
    ],
)
def test_http_answers(status: int, expected: str) -> None:
    assert classify_http(status, None, "", NOW).status == expected


def test_retry_after_in_seconds_or_as_a_date_and_a_bounded_detail() -> None:
    assert classify_http(429, "7", "slow down", NOW).retry_after == 7.0
    date = format_datetime(datetime.fromtimestamp(NOW + 30, UTC), usegmt=True)
    assert parse_retry_after(date, NOW) == pytest.approx(30.0)
    assert parse_retry_after("soon", NOW) is None and parse_retry_after(None, NOW) is None
    assert len(classify_http(400, None, "x" * 10_000, NOW).detail) <= 500


@pytest.mark.parametrize(
    ("code", "expected"), [(250, "delivered"), (421, "retry"), (451, "retry"), (550, "rejected")]
)
def test_smtp_replies(code: int, expected: str) -> None:
    assert classify_smtp(code, "text").status == expected


@given(
    attempt=st.integers(1, 80),
    retry_after=st.one_of(st.none(), st.floats(0, 10_000)),
    base=st.floats(0.01, 10),
    cap=st.floats(0.1, 1000),
    seed=st.integers(0, 2**32),
)
def test_delay_is_full_jitter_below_the_ceiling_and_honours_retry_after(
    attempt: int, retry_after: float | None, base: float, cap: float, seed: int
) -> None:
    policy = RetryPolicy(base_s=base, cap_s=cap, max_retry_after_s=3600)
    delay = policy.delay(attempt, retry_after, random.Random(seed))
    ceiling = base
    for _ in range(attempt - 1):  # brute force: double, attempt after attempt, up to the cap
        ceiling = min(cap, ceiling * 2)
    ceiling = min(cap, ceiling)
    floor = min(retry_after, 3600) if retry_after is not None else 0.0
    assert floor <= delay <= max(ceiling, floor) + 1e-9
    assert delay == pytest.approx(max(random.Random(seed).uniform(0, ceiling), floor))


def test_gives_up_by_attempts_and_by_age() -> None:
    policy = RetryPolicy(max_attempts=3, max_age_s=100)
    assert not policy.gives_up(2, 0, 50) and policy.gives_up(3, 0, 50) and policy.gives_up(1, 0, 101)
