"""When a changelog table holds exactly this worker's partitions (what a view of it may be built from)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import pytest

from stream.settings import Settings
from stream.worker.app import SurveyApp
from stream.worker.main import create_app
from stream.worker.state import by_key


@pytest.fixture
def app(tmp_path: Path) -> SurveyApp:
    # never started: nothing here talks to a broker
    return create_app(Settings(app_id="unit", partitions=4, data_dir=tmp_path))


def test_a_table_is_settled_only_after_its_recovery_for_the_current_assignment_and_its_sweep(
    app: SurveyApp,
) -> None:
    table = app.state_table("things", "Things.", by_key(4))
    table.data.data.update({b"%d" % i: b"v" for i in range(2_000)})
    owned = {0, 1}
    recovered_for: list[int | None] = [None]

    def recovered(t: object) -> tuple[set[int], Callable[[], bool]] | None:
        generation = recovered_for[0]
        if generation != app.consumer_generation_id:
            return None  # a newer assignment came before this recovery began
        return owned, lambda: app.consumer_generation_id == generation

    app.recovered = recovered  # type: ignore[method-assign]

    async def go() -> None:
        app.consumer_generation_id = 1  # assigned: recovery has not begun
        assert not app.settled(table)
        app._start_sweep(table, by_key(4))  # a recovery of an older assignment calls back
        assert not app.settled(table)
        recovered_for[0] = 1
        app._start_sweep(table, by_key(4))  # this assignment's: the sweep runs
        assert not app.settled(table)
        await app.sweeps["things"]
        assert app.settled(table)
        assert {k for k in table.data.data if by_key(4)(k) not in owned} == set()
        app.consumer_generation_id = 2  # the next rebalance
        assert not app.settled(table)

    asyncio.run(go())


def test_a_worker_with_every_partition_is_settled_once_recovered(app: SurveyApp) -> None:
    table = app.state_table("things", "Things.", by_key(4))
    app.consumer_generation_id = 3
    app.recovered = lambda t: ({0, 1, 2, 3}, lambda: True)  # type: ignore[method-assign]
    assert not app.settled(table)
    app._start_sweep(table, by_key(4))
    assert app.settled(table) and "things" not in app.sweeps
