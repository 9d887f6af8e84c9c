"""The progress rule against a brute-force reference, and the watchdog's signals."""

from __future__ import annotations

import asyncio
import logging
from typing import NoReturn

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from stream.watchdog import Offsets, Progress, Watchdog

STALL, RESTART = 60.0, 180.0

# one look every 10 s: committed and end offsets of two partitions
looks = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(0, 3), st.integers(0, 3)),
    min_size=1,
    max_size=40,
)


def reference(history: list[tuple[int, int, int, int]], step: float) -> list[tuple[bool, bool]]:
    """Stalled at look i: input waiting at i and no committed offset differs from the look before,
    at every look of the last STALL seconds (restart: RESTART seconds)."""

    def quiet_for(i: int, seconds: float) -> bool:
        span = int(seconds // step)
        if i - span < 0:
            return False  # the clock starts at time 0, a step before the first look
        for j in range(i - span + 1, i + 1):
            c0, c1, e0, e1 = history[j]
            waiting = max(0, e0 - c0) + max(0, e1 - c1)
            prev = history[j - 1] if j > 0 else None
            moved = prev is None or (prev[0], prev[1]) != (c0, c1)
            if waiting == 0 or moved:
                return False
        return True

    return [(quiet_for(i, STALL), quiet_for(i, RESTART)) for i in range(len(history))]


@given(looks)
def test_progress_rule_equals_the_reference(history: list[tuple[int, int, int, int]]) -> None:
    now = [0.0]
    progress = Progress(STALL, RESTART, clock=lambda: now[0])
    got = []
    for i, (c0, c1, e0, e1) in enumerate(history):
        now[0] = (i + 1) * 10.0
        v = progress.observe({"p0": c0, "p1": c1}, {"p0": e0, "p1": e1})
        got.append((v.stalled, v.restart))
    assert got == reference(history, 10.0)


def test_nothing_waiting_is_never_a_stall() -> None:
    now = [0.0]
    progress = Progress(STALL, RESTART, clock=lambda: now[0])
    for i in range(100):
        now[0] = i * 10.0
        v = progress.observe({"p": 5}, {"p": 5})
        assert not v.stalled and not v.restart and v.waiting == 0


class ExitedError(Exception):
    pass


def test_the_watchdog_says_it_then_exits(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    offsets: list[tuple[Offsets, Offsets] | None] = [({"p": 10}, {"p": 50})]
    reasons: list[str] = []

    def restart(reason: str) -> NoReturn:
        reasons.append(reason)
        raise ExitedError

    async def read() -> tuple[Offsets, Offsets] | None:
        return offsets[0]

    registry = CollectorRegistry()
    dog = Watchdog(
        "The worker", read, STALL, RESTART, registry=registry, on_restart=restart, clock=lambda: now[0]
    )

    def stalled_gauge() -> float | None:
        return registry.get_sample_value("survey_alerts_stalled")

    async def run() -> None:
        caplog.set_level(logging.INFO)
        await dog.check()
        assert not dog.stalled and stalled_gauge() == 0
        now[0] = 61
        await dog.check()
        assert dog.stalled and stalled_gauge() == 1
        assert "The worker stalled: 40 records waiting" in caplog.text
        offsets[0] = ({"p": 20}, {"p": 50})  # a commit: progress again
        now[0] = 62
        await dog.check()
        assert not dog.stalled and stalled_gauge() == 0
        offsets[0] = None  # restoring from changelogs: progress by other means
        now[0] = 500
        await dog.check()
        assert not dog.stalled
        offsets[0] = ({"p": 20}, {"p": 50})
        now[0] = 501
        await dog.check()
        now[0] = 501 + RESTART
        with pytest.raises(ExitedError):
            await dog.check()

    asyncio.run(run())
    assert reasons == ["The worker made no progress for 181 s with 30 records waiting"]


def test_a_read_that_hangs_counts_as_no_progress() -> None:
    now = [0.0]

    async def read() -> tuple[Offsets, Offsets] | None:
        if now[0] == 0:
            return {"p": 1}, {"p": 9}
        await asyncio.sleep(3600)
        return None

    dog = Watchdog("The notifier", read, 10, 20, interval_s=0.01, clock=lambda: now[0])

    async def run() -> None:
        await dog.check()
        now[0] = 11
        await dog.check()

    asyncio.run(run())
    assert dog.stalled
