"""Stored customer state: the compressed format, old plain documents, and held-survey detection."""

from __future__ import annotations

import zlib

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.customer import CustomerState
from schemas.inputs import TicketEvent
from stream.state import _ZDICT_V1, CustomerStore, StateCodec
from tests.fakes import Outbox, Sent, Table


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
