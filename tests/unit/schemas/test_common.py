"""Timestamps print as RFC 3339 with their offset, whatever the formatter remembers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import given
from hypothesis import strategies as st

from schemas.common import format_timestamp, parse_timestamp

offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
# naive bounds are what hypothesis takes; every value drawn is given UTC
instants = st.datetimes(
    min_value=datetime(1970, 1, 2),  # noqa: DTZ001
    max_value=datetime(2200, 1, 1),  # noqa: DTZ001
).map(lambda d: d.replace(tzinfo=UTC))


@given(st.lists(st.tuples(instants, offsets), min_size=1, max_size=30))
def test_every_time_prints_as_isoformat_would_even_an_equal_instant_in_another_offset(
    times: list[tuple[datetime, timezone]],
) -> None:
    for instant, offset in times * 2:  # the second round from what is remembered
        for value in (instant, instant.astimezone(offset)):
            assert value == instant  # equal instants: a cache keyed by value alone would mix them up
            assert format_timestamp(value) == value.isoformat().replace("+00:00", "Z")
            assert parse_timestamp(format_timestamp(value)) == instant


def test_utc_ends_in_z() -> None:
    assert format_timestamp(datetime(2026, 11, 22, 13, 20, 53, tzinfo=UTC)) == "2026-11-22T13:20:53Z"
