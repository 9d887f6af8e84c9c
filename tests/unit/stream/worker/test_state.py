"""Stored customer state: the compressed format, old plain documents, and held-survey detection."""

from __future__ import annotations

import asyncio
import zlib
from typing import cast

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.customer import CustomerState
from alerts.scores import answer_stats
from alerts.windows import PartitionWindows
from schemas.inputs import TicketEvent
from stream.settings import Settings
from stream.worker.pacing import Pacer
from stream.worker.state import _ZDICT_V1, CustomerStore, StateCodec, WindowStore
from tests.support.fakes import Outbox, Sent, Table


def customer(held: bool = False) -> CustomerState:
    state = CustomerState()
    state.apply_ticket_event(
        TicketEvent.model_validate(
            {
                "event_id": "e-1",
                "ticket_id": "t-1",
                "customer_id": "c-1",
                "type": "created",
                "occurred_at": "2026-11-22T10:00:00Z",
                "team": "billing",
                "channel": "chat",
                "customer_tier": "gold",
                "account_value": 50_000.0,
            }
        )
    )
    if held:
        state.held.append(['{"response_id":"r-9"}', 1.0, 2.0])
    return state


@given(st.binary(max_size=5000), st.booleans())
def test_any_document_survives_the_round_trip(doc: bytes, held: bool) -> None:
    codec = StateCodec()
    stored = codec.encode(doc, held)
    assert stored[0] == (StateCodec.HELD if held else StateCodec.PLAIN)
    assert codec.decode(stored) == doc
    assert codec.holds_surveys(stored) is held


def test_a_typical_customer_is_stored_in_well_under_half_its_json() -> None:
    doc = orjson.dumps(customer().to_doc())
    assert len(StateCodec().encode(doc, False)) < 0.4 * len(doc)
    assert len(StateCodec().encode(doc, False)) < len(deflated(doc, False))


def test_the_store_reads_back_what_it_saved_and_flags_held_surveys() -> None:
    table, sent = Table(), list[Sent]()
    store = CustomerStore(table)
    out = Outbox(sent)
    store.save({"c-1": (3, customer()), "c-2": (1, customer(held=True))}, out)
    loaded = store.load("c-1")
    assert loaded is not None and loaded.to_doc() == customer().to_doc()
    assert [(r.topic, r.partition, r.key) for r in out.records] == [
        ("customers-changelog", 3, b"c-1"),
        ("customers-changelog", 1, b"c-2"),
    ]
    assert table.data[b"c-1"] == out.records[0].value  # the changelog carries the stored form
    assert store.with_held(lambda cid: 0) == {"c-2": 0}


def test_plain_json_documents_written_before_compression_are_still_read() -> None:
    table = Table()
    table.data[b"c-1"] = orjson.dumps(customer(held=True).to_doc())
    store = CustomerStore(table)
    loaded = store.load("c-1")
    assert loaded is not None and loaded.held == customer(held=True).held
    assert store.with_held(lambda cid: 5) == {"c-1": 5}


def deflated(doc: bytes, held: bool) -> bytes:
    """A value in the earlier format (1 or 2): raw deflate with the same dictionary."""
    c = zlib.compressobj(1, zlib.DEFLATED, -9, 1, zlib.Z_DEFAULT_STRATEGY, _ZDICT_V1)
    return (b"\x02" if held else b"\x01") + c.compress(doc) + c.flush()


@given(st.binary(max_size=2000), st.booleans())
def test_values_deflated_before_zstd_are_still_read(doc: bytes, held: bool) -> None:
    codec = StateCodec()
    assert codec.decode(deflated(doc, held)) == doc
    assert codec.holds_surveys(deflated(doc, held)) is held


def test_a_store_of_deflated_customers_loads_them_and_rewrites_them_in_the_new_format() -> None:
    table, sent = Table(), list[Sent]()
    table.data[b"c-1"] = deflated(orjson.dumps(customer(held=True).to_doc()), True)
    store = CustomerStore(table)
    assert store.with_held(lambda cid: 2) == {"c-1": 2}
    loaded = store.load("c-1")
    assert loaded is not None and loaded.to_doc() == customer(held=True).to_doc()
    store.save({"c-1": (2, loaded)}, Outbox(sent))
    assert table.data[b"c-1"][0] == StateCodec.HELD


def test_an_unknown_or_damaged_value_is_an_error_not_a_silent_reset() -> None:
    codec = StateCodec()
    with pytest.raises(ValueError, match="unknown format"):
        codec.decode(b"\x07garbage")
    with pytest.raises(ValueError, match="does not decode"):
        codec.decode(b"\x01" + b"\x00" * 3)  # a deflate stream cut short
    stored = codec.encode(orjson.dumps(customer().to_doc()), False)
    with pytest.raises(ValueError, match="does not decode"):
        codec.decode(stored[: len(stored) // 2])  # a zstd frame cut short


def windows_table() -> Table:
    """A window table as intake leaves it: three partitions with buckets of two teams, one late bucket."""
    settings = Settings(app_id="unit", partitions=4, windows="24h,7d", window_buckets=24)
    store = WindowStore(Table("windows-changelog"), settings.window_specs(), settings.late_grace_s)
    end = 1_763_800_000.0
    for partition in (0, 1, 3):
        pw = store.get(partition)
        for i, (team, ago, score) in enumerate([("a", 60, 0), ("b", 7200, 9), ("a", 3 * 86400, 10)]):
            ts = end - ago - partition
            stats = answer_stats(score, None, None, None, None, None)
            pw.begin(f"surveys/{partition}", i)
            pw.observe(ts)
            pw.apply([("team", team)], ts, stats, pw.open_mask(ts))
            pw.done(f"surveys/{partition}", i)
        store.save({partition}, Outbox([]))
    return cast(Table, store.table)


def fresh(table: Table) -> WindowStore:
    settings = Settings(app_id="unit", partitions=4, windows="24h,7d", window_buckets=24)
    return WindowStore(table, settings.window_specs(), settings.late_grace_s)


def same(a: PartitionWindows, b: PartitionWindows) -> bool:
    return (a.watermark, a.applied, a.partials) == (b.watermark, b.applied, b.partials)


def test_warming_loads_each_partition_as_its_first_batch_would() -> None:
    table = windows_table()
    warmed, lazy = fresh(table), fresh(table)
    assert asyncio.run(warmed.warm({0, 1, 2}, lambda: True, Pacer(slice_s=1e-9))) == [0, 1, 2]
    for p in (0, 1, 2):
        assert same(warmed.cache[p], lazy.get(p))
        assert warmed.unpublished[p] == lazy.unpublished[p]  # republished once, like a lazy load
    assert 3 not in warmed.cache  # not asked for


def test_a_partition_a_batch_loaded_meanwhile_keeps_that_load() -> None:
    table = windows_table()
    store = fresh(table)

    async def go() -> list[int]:
        async def batch() -> None:
            store.get(1).watermark += 1  # a batch loaded partition 1 and moved on from there

        task = asyncio.ensure_future(batch())  # runs at the warm-up's first pause
        loaded = await store.warm({0, 1}, lambda: True, Pacer(slice_s=1e-9))
        await task
        return loaded

    first = fresh(table).get(1).watermark
    assert asyncio.run(go()) == [0]
    assert store.cache[1].watermark == first + 1


def test_warming_stops_when_the_assignment_changes() -> None:
    store = fresh(windows_table())
    generation = [1]

    async def go() -> list[int]:
        async def rebalance() -> None:
            generation[0] = 2

        task = asyncio.ensure_future(rebalance())
        loaded = await store.warm({0, 1}, lambda: generation[0] == 1, Pacer(slice_s=1e-9))
        await task
        return loaded

    assert asyncio.run(go()) == []
    assert store.cache == {}
