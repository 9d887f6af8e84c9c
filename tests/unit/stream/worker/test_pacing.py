"""Long periodic work gives the event loop back between slices."""

from __future__ import annotations

import asyncio
import time

import pytest

from stream.worker.pacing import Pacer


def test_it_yields_only_once_a_slice_is_used_up() -> None:
    async def go() -> tuple[int, int]:
        patient, eager = Pacer(slice_s=60.0), Pacer(slice_s=1e-9)
        for _ in range(100):
            await patient.pause()
            await eager.pause()
        return patient.yields, eager.yields

    assert asyncio.run(go()) == (0, 100)


def test_other_tasks_run_between_the_slices_of_a_long_loop() -> None:
    """A batch that arrives while a timer works is processed before the timer is done."""

    async def go() -> tuple[float, float]:
        ran_at: list[float] = []

        async def batch() -> None:
            await asyncio.sleep(0)
            ran_at.append(time.perf_counter())

        async def long_work() -> float:
            pacer = Pacer(slice_s=0.001)
            until = time.perf_counter() + 0.05
            while time.perf_counter() < until:  # 50 ms of work in 1 ms slices
                sum(range(200))
                await pacer.pause()
            return time.perf_counter()

        other = asyncio.ensure_future(batch())
        finished = await long_work()
        await other
        return ran_at[0], finished

    ran, finished = asyncio.run(go())
    assert ran < finished


def test_a_slice_must_be_positive() -> None:
    with pytest.raises(ValueError, match="slice_s must be positive"):
        Pacer(slice_s=0)
