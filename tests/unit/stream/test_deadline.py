"""Bounded waits: past the deadline, the operation is named, counted, and the process ends."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import NoReturn

import pytest
from prometheus_client import CollectorRegistry

from stream.deadline import EXIT_STALLED, Deadlines


class ExpiredError(Exception):
    pass


def test_a_wait_within_its_deadline_returns_its_value() -> None:
    d = Deadlines(1.0, registry=CollectorRegistry())

    async def quick() -> int:
        return 7

    assert asyncio.run(d.within("produce", quick())) == 7


def test_a_wait_past_its_deadline_names_the_operation_and_counts_it() -> None:
    registry = CollectorRegistry()
    reasons: list[str] = []

    def expired(reason: str) -> NoReturn:
        reasons.append(reason)
        raise ExpiredError

    d = Deadlines(0.05, registry=registry, on_expired=expired)

    async def never() -> None:
        await asyncio.Event().wait()

    with pytest.raises(ExpiredError):
        asyncio.run(d.within("producer flush before an offset commit", never()))
    assert reasons == [
        "producer flush before an offset commit did not finish within 0.05 s: the broker is not answering"
    ]
    labels = {"operation": "producer flush before an offset commit"}
    assert registry.get_sample_value("survey_alerts_deadline_exceeded_total", labels) == 1


def test_the_default_ends_the_process_with_an_error_line_and_its_status() -> None:
    code = (
        "import asyncio, logging; from stream.deadline import Deadlines\n"
        "logging.basicConfig()\n"
        "asyncio.run(Deadlines(0.05).within('offset commit', asyncio.Event().wait()))\n"
        "print('not reached')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == EXIT_STALLED
    assert "ERROR" in done.stderr and "offset commit did not finish within 0.05 s" in done.stderr
    assert "not reached" not in done.stdout
