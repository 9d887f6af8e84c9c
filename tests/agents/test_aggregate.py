"""Window partials: published from the partitions, merged in order, emitted as snapshots."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from agents.aggregate import MergeAgent, Snapshots, emit_snapshots, publish_partials
from alerts.scores import answer_stats
from alerts.snapshots import snapshot_records
from stream.metrics import Metrics
from stream.settings import Settings
from stream.worker.state import WindowStore
from tests.support.fakes import Outbox, Sent, Table

SETTINGS = Settings(app_id="unit", partitions=2, windows="24h,7d", window_buckets=24)
NOW = datetime(2026, 11, 22, 12, tzinfo=UTC)
END = NOW.timestamp()
TEAM_A, TEAM_B = ("team", "a"), ("team", "b")


def windows_with(answers: dict[int, list[tuple[tuple[str, str], float, int]]]) -> WindowStore:
    """A window store whose partitions hold these (dimension, time, nps) answers, saved as intake does."""
    store = WindowStore(Table("windows-changelog"), SETTINGS.window_specs(), SETTINGS.late_grace_s)
    for partition, items in answers.items():
        pw = store.get(partition)
        for dim, ts, score in items:
            pw.observe(ts)
            pw.apply([dim], ts, answer_stats(score, None, None, None, None, None), pw.open_mask(ts))
        store.save({partition}, Outbox([]))
    return store


def as_messages(sent: list[Sent], first_offset: int = 0) -> list[ConsumerMessage]:
    return [
        ConsumerMessage(
            s.topic, 0, first_offset + i, 1.7e9, 0, [], s.key, s.value, None, None, None, TP(s.topic, 0)
        )
        for i, s in enumerate(sent)
    ]


def snapshots() -> Snapshots:
    return Snapshots(Table("merged-changelog"), SETTINGS, Metrics(), clock=lambda: NOW)


def test_snapshots_equal_the_partitions_partials_merged_directly() -> None:
    store = windows_with(
        {
            0: [(TEAM_A, END - 60, 0), (TEAM_A, END - 7200, 9), (TEAM_B, END - 30, 10)],
            1: [(TEAM_A, END - 10, 10), (TEAM_A, END - 3 * 86400, 3)],
        }
    )
    published: list[Sent] = []
    snaps = snapshots()
    emitted: list[Sent] = []

    async def go() -> None:
        # (partition 0: a and b; partition 1: a)
        assert await publish_partials(store, Outbox(published), "partials") == 3
        merge = MergeAgent(snaps.table, snaps, lambda: Outbox([]))
        await (await merge(as_messages(published)))
        await emit_snapshots(snaps, Outbox(emitted), SETTINGS)

    asyncio.run(go())
    got = [(s.key, orjson.loads(s.value or b"")) for s in emitted]
    for dim in (TEAM_A, TEAM_B):
        parts = [store.get(p) for p in (0, 1)]
        docs = [pw.doc(dim) for pw in parts if dim in pw.partials]
        watermark = max(pw.watermark for pw in parts if dim in pw.partials)
        expected = snapshot_records(dim[0], dim[1], SETTINGS.window_specs(), docs, watermark, 10, NOW)
        mine = [doc for key, doc in got if key == f"{dim[0]}:{dim[1]}".encode()]
        assert mine
        assert sorted(mine, key=orjson.dumps) == sorted(expected, key=orjson.dumps)


def test_publishing_twice_sends_only_what_changed_in_between() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0), (TEAM_B, END - 60, 10)]})
    first: list[Sent] = []
    second: list[Sent] = []

    async def go() -> None:
        await publish_partials(store, Outbox(first), "partials")
        pw = store.get(0)
        pw.apply([TEAM_B], END - 5, answer_stats(9, None, None, None, None, None), pw.open_mask(END - 5))
        store.save({0}, Outbox([]))
        await publish_partials(store, Outbox(second), "partials")

    asyncio.run(go())
    assert sorted(s.key for s in first) == [b"team\x1fa", b"team\x1fb"]
    assert [s.key for s in second] == [b"team\x1fb"]


def test_a_change_made_while_publishing_is_published_the_next_time() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0), (TEAM_B, END - 60, 10)]})
    partials = store.take_unpublished()
    first = next(partials)
    pw = store.get(0)
    changed = first[2]  # a batch lands between two partials and changes the one already taken
    pw.apply([changed], END - 1, answer_stats(10, None, None, None, None, None), pw.open_mask(END - 1))
    store.save({0}, Outbox([]))
    rest = list(partials)
    again = list(store.take_unpublished())
    assert {first[2], *(r[2] for r in rest)} == {TEAM_A, TEAM_B}
    assert [a[2] for a in again] == [changed]
    # both answers of that key, in each window
    assert sum(s[0] for _, _, s in again[0][3] if s is not None) == 2 * len(SETTINGS.window_specs())


def test_a_partition_revoked_while_publishing_is_not_published() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0), (TEAM_B, END - 60, 10)], 1: [(TEAM_A, END, 9)]})
    partials = store.take_unpublished()
    p, *_ = next(partials)
    store.forget({p})
    assert {r[0] for r in partials} <= {0, 1} - {p}


def test_a_partition_revoked_while_another_is_published_is_skipped_without_error() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0), (TEAM_B, END - 60, 10)], 1: [(TEAM_A, END, 9)]})
    partials = store.take_unpublished()
    assert next(partials)[0] == 0  # partition 0 (two keys) first
    store.forget({1})  # a rebalance while the timer pauses between partials
    assert [r[0] for r in partials] == [0]  # partition 0's other key, and nothing of partition 1


class GatedOutbox(Outbox):
    """Delivers only once ``gate`` is set."""

    def __init__(self, sent: list[Sent], gate: asyncio.Event, error: Exception | None = None) -> None:
        super().__init__(sent, error)
        self.gate = gate

    async def deliver(self) -> int:
        await self.gate.wait()
        return await super().deliver()


def test_merges_run_in_order_and_a_batch_waits_for_the_one_before() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0)]})
    published: list[Sent] = []
    later: list[Sent] = []
    sent: list[Sent] = []
    snaps = snapshots()

    async def go() -> tuple[int, int]:
        await publish_partials(store, Outbox(published), "partials")
        pw = store.get(0)
        pw.apply([TEAM_A], END - 1, answer_stats(9, None, None, None, None, None), pw.open_mask(END - 1))
        store.save({0}, Outbox([]))
        await publish_partials(store, Outbox(later), "partials")
        gates = [asyncio.Event(), asyncio.Event()]
        outboxes = iter([GatedOutbox(sent, gates[0]), GatedOutbox(sent, gates[1])])
        merge = MergeAgent(snaps.table, snaps, lambda: next(outboxes))
        first = await merge(as_messages(published))
        second = await merge(as_messages(later, first_offset=len(published)))
        gates[1].set()  # the second batch's delivery could go, but its merge waits for the first
        await asyncio.sleep(0.01)
        early = len(sent)
        gates[0].set()
        await second
        assert first.done()
        return early, len(sent)

    early, total = asyncio.run(go())
    assert early == 0 and total > 0
    table: Any = snaps.table
    # the table holds the newer partial: both answers in the bucket
    buckets = [orjson.loads(v) for k, v in table.data.items() if k.count(b"\x1f") == 4]
    assert sum(b[0] for b in buckets) == 2 * len(SETTINGS.window_specs())


def test_a_failed_merge_fails_the_batches_after_it_and_sends_none_of_theirs() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0)]})
    published: list[Sent] = []
    sent: list[Sent] = []
    snaps = snapshots()

    async def go() -> None:
        await publish_partials(store, Outbox(published), "partials")
        outboxes = iter([Outbox(sent, RuntimeError("broker refused")), Outbox(sent)])
        merge = MergeAgent(snaps.table, snaps, lambda: next(outboxes))
        first = await merge(as_messages(published))
        second = await merge(as_messages(published, first_offset=len(published)))
        with pytest.raises(RuntimeError):
            await first
        with pytest.raises(RuntimeError):
            await second

    asyncio.run(go())
    assert sent == []


class MovingOutbox(Outbox):
    """Loses the snapshots' view (partitions moved) when the first record is added."""

    def __init__(self, sent: list[Sent], snaps: Snapshots) -> None:
        super().__init__(sent)
        self.snaps = snaps

    def add(self, *args: Any, **kwargs: Any) -> None:
        super().add(*args, **kwargs)
        self.snaps.view = None


def test_keys_not_emitted_when_partitions_move_mid_emit_are_emitted_next_time() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0), (TEAM_B, END - 60, 10)]})
    published: list[Sent] = []
    first: list[Sent] = []
    second: list[Sent] = []
    snaps = snapshots()

    async def go() -> None:
        await publish_partials(store, Outbox(published), "partials")
        await (await MergeAgent(snaps.table, snaps, lambda: Outbox([]))(as_messages(published)))
        await emit_snapshots(snaps, MovingOutbox(first, snaps), SETTINGS)
        await emit_snapshots(snaps, Outbox(second), SETTINGS)  # the view is rebuilt from the table

    asyncio.run(go())
    assert {s.key for s in first} == {b"team:a"}  # the first key, then the view was gone
    assert {s.key for s in second} == {b"team:a", b"team:b"}  # every key again, from the new view


def test_keys_whose_partitions_moved_away_stop_being_exported_as_gauges() -> None:
    store = windows_with({0: [(TEAM_A, END - 60, 0), (TEAM_B, END - 60, 10)]})
    published: list[Sent] = []
    snaps = snapshots()
    registry = snaps.metrics.registry

    def samples(key: str) -> float | None:
        labels = {"dimension": "team", "key": key, "window": "24h", "metric": "nps"}
        return registry.get_sample_value("survey_alerts_window_samples", labels)

    async def go() -> None:
        await publish_partials(store, Outbox(published), "partials")
        await (await MergeAgent(snaps.table, snaps, lambda: Outbox([]))(as_messages(published)))
        await emit_snapshots(snaps, Outbox([]), SETTINGS)
        assert samples("a") == 1 and samples("b") == 1
        # team b's partition went to another worker: the sweep dropped its keys, the view is rebuilt
        for key in [k for k in snaps.table.data if k.startswith(b"team\x1fb\x1f")]:
            del snaps.table.data[key]
        snaps.view = None
        await emit_snapshots(snaps, Outbox([]), SETTINGS)

    asyncio.run(go())
    assert samples("a") == 1
    assert samples("b") is None  # exported by the worker that has it now, not by this one too
