"""The hot path's structs against the contract's pydantic models: a differential test.

The structs may refuse a document pydantic accepts (the pipeline then asks pydantic and
converts its model), never the other way round, and what both accept comes out equal.
The documents are valid ones, the same with one field mutated (types, ranges, lengths,
timestamps, nulls, unknown fields) and hostile JSON text.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alerts.pipeline import Pipeline, Record, Topics
from alerts.policy import AlertPolicy
from schemas.fast import FastSurvey, FastTicket, decode_survey, decode_ticket, from_model, held_text
from schemas.inputs import SurveyResponse, TicketEvent
from schemas.validate import Rejection, parse

TEXT = st.text(st.characters(codec="utf-8"), max_size=12)
ODD_TEXT = st.one_of(
    TEXT,
    st.just(""),
    st.text(min_size=125, max_size=131),
    st.text(min_size=255, max_size=258),
    st.just("\u0000\u202e<script>"),
    st.just("e\u0301" * 64),  # 128 code points, 64 graphemes
)
STAMP_TEXT = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001 - naive bounds are what hypothesis takes
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=5, minutes=30)), timezone(-timedelta(hours=8))]
        ),
    ).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "2026-11-22T13:20:53Z",
            "2026-11-22t13:20:53z",
            "2026-11-22 13:20:53Z",
            "2026-11-22T13:20:53.1234567Z",
            "2026-11-22T13:20:53.999999999Z",
            "2026-11-22T13:20:53.1234567891Z",
            "2026-11-22T13:20:53",
            "2026-11-22T13:20:53+0100",
            "2026-11-22T13:20:53+01",
            "2026-11-22T23:59:60Z",
            "2026-02-30T00:00:00Z",
            "0000-01-01T00:00:00Z",
            "2026-11-22T13:20:53+24:00",
            "2026-11-22T13:20:53-00:00",
            "2026-11-22T13:20:53.Z",
            "1700000000",
        ]
    ),
)
ANY_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
    max_leaves=5,
)
NUMBER = st.one_of(
    st.integers(-3, 12),
    st.sampled_from([0.0, 3.0, 6.5, -0.0, 1e308, 2**63, 2**64 + 1, -(2**63) - 1, 10**30, True, False]),
    st.floats(allow_nan=False, allow_infinity=False),
)
WRONG = st.one_of(st.none(), NUMBER, ODD_TEXT, st.lists(st.integers(), max_size=2), st.just({}))


def _scores() -> st.SearchStrategy[dict[str, Any]]:
    ves = st.fixed_dictionaries({"achieve": st.integers(0, 8), "confidence": st.integers(0, 8)})
    return st.fixed_dictionaries(
        {},
        optional={
            "nps": st.integers(-1, 11),
            "csat": st.integers(0, 6),
            "ces": st.integers(0, 8),
            "stars": st.integers(0, 6),
            "ves": ves,
            "goal_completed": st.booleans(),
        },
    )


SURVEY = st.fixed_dictionaries(
    {
        "response_id": TEXT.filter(bool),
        "customer_id": TEXT.filter(bool),
        "submitted_at": STAMP_TEXT,
        "scores": _scores(),
    },
    optional={
        "comment": st.one_of(TEXT, st.text(min_size=9_999, max_size=10_001)),
        "ticket_id": TEXT,
        "team": ODD_TEXT,
        "agent_id": ODD_TEXT,
        "channel": ODD_TEXT,
        "touchpoint": ODD_TEXT,
        "locale": st.one_of(TEXT, st.text(min_size=63, max_size=65)),
        "extra": ANY_JSON,
    },
)
TICKET = st.fixed_dictionaries(
    {
        "event_id": TEXT.filter(bool),
        "ticket_id": TEXT.filter(bool),
        "customer_id": TEXT.filter(bool),
        "type": st.sampled_from(
            ["created", "assigned", "agent_reply", "escalated", "closed", "Created", "x"]
        ),
        "occurred_at": STAMP_TEXT,
    },
    optional={
        "team": ODD_TEXT,
        "agent_id": ODD_TEXT,
        "channel": st.sampled_from(["email", "chat", "phone", "in_person", "fax", ""]),
        "priority": st.sampled_from(["low", "normal", "urgent", "URGENT"]),
        "category": ODD_TEXT,
        "customer_tier": ODD_TEXT,
        "account_value": NUMBER,
        "reason": st.one_of(TEXT, st.text(min_size=1_999, max_size=2_001)),
        "talk_seconds": NUMBER,
        "hold_seconds": NUMBER,
        "wrap_seconds": NUMBER,
        "queue_seconds": NUMBER,
        "extra": ANY_JSON,
    },
)


VALID_STAMP = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2),  # noqa: DTZ001
        max_value=datetime(9999, 12, 30),  # noqa: DTZ001
        timezones=st.sampled_from([UTC, timezone(timedelta(hours=-3, minutes=-30))]),
    ).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.sampled_from(
        [
            "2026-11-22t13:20:53z",
            "2026-11-22 13:20:53Z",
            "2026-11-22T13:20:53.123456789Z",
            "2026-11-22T13:20:53-00:00",
        ]
    ),
)


def _valid_text(most: int) -> st.SearchStrategy[str]:
    return st.text(st.characters(codec="utf-8"), min_size=1, max_size=min(most, 20)) | st.builds(
        lambda: "x" * most
    )


VALID_SCORES = st.fixed_dictionaries(
    {},
    optional={
        "nps": st.integers(0, 10),
        "csat": st.integers(1, 5),
        "ces": st.integers(1, 7),
        "stars": st.integers(1, 5),
        "ves": st.fixed_dictionaries({"achieve": st.integers(1, 7), "confidence": st.integers(1, 7)}),
        "goal_completed": st.booleans(),
    },
).filter(bool)
VALID_SURVEY = st.fixed_dictionaries(
    {
        "response_id": _valid_text(128),
        "customer_id": _valid_text(128),
        "submitted_at": VALID_STAMP,
        "scores": VALID_SCORES,
    },
    optional={
        "comment": st.text(max_size=20) | st.builds(lambda: "y" * 10_000),
        "ticket_id": _valid_text(128) | st.none(),
        "team": _valid_text(256),
        "agent_id": _valid_text(256),
        "channel": _valid_text(256),
        "touchpoint": _valid_text(256),
        "locale": st.text(max_size=64),
        "extra": ANY_JSON,
    },
)
VALID_TICKET = st.fixed_dictionaries(
    {
        "event_id": _valid_text(128),
        "ticket_id": _valid_text(128),
        "customer_id": _valid_text(128),
        "type": st.sampled_from(
            ["assigned", "first_response", "agent_reply", "escalated", "resolved", "closed"]
        ),
        "occurred_at": VALID_STAMP,
        "team": _valid_text(256),
    },
    optional={
        "agent_id": _valid_text(256),
        "channel": st.sampled_from(["email", "chat", "phone", "sms", "social", "web", "in_person"]),
        "priority": st.sampled_from(["low", "normal", "high", "urgent"]),
        "category": _valid_text(256),
        "customer_tier": _valid_text(256),
        "account_value": st.integers(0, 10**12) | st.floats(0, 1e12),
        "reason": st.text(max_size=2_000),
        "talk_seconds": st.floats(0, 1e6),
        "queue_seconds": st.integers(0, 10**6),
        "extra": ANY_JSON,
    },
)


@st.composite
def mutated(draw: st.DrawFn, docs: st.SearchStrategy[dict[str, Any]]) -> dict[str, Any]:
    """A document with up to two fields dropped, nulled or replaced by a wrong value."""
    doc = draw(docs)
    for _ in range(draw(st.integers(0, 2))):
        if not doc:
            break
        path = draw(st.sampled_from(sorted(doc)))
        target = doc
        if path == "scores" and isinstance(doc["scores"], dict) and doc["scores"] and draw(st.booleans()):
            target, path = doc["scores"], draw(st.sampled_from(sorted(doc["scores"])))
        how = draw(st.sampled_from(["drop", "null", "wrong"]))
        if how == "drop":
            del target[path]
        else:
            target[path] = None if how == "null" else draw(WRONG)
    return doc


@st.composite
def payloads(draw: st.DrawFn, docs: st.SearchStrategy[dict[str, Any]]) -> bytes:
    """The document as JSON, sometimes as text that only some parsers take."""
    # the standard library's encoder: it writes integers of any size (orjson refuses past 64 bits)
    raw = json.dumps(draw(mutated(docs)), ensure_ascii=draw(st.booleans())).encode()
    how = draw(st.sampled_from(["as is"] * 6 + ["duplicate key", "lone surrogate", "trailing", "bom", "cut"]))
    if how == "duplicate key":
        return raw[:-1] + b',"customer_id":"dup"}'
    if how == "lone surrogate":
        return raw[:-1] + b',"comment":"\\ud800"}'
    if how == "trailing":
        return raw + draw(st.sampled_from([b" ", b"\n", b",", b"}", b" x", b"\x00"]))
    if how == "bom":
        return b"\xef\xbb\xbf" + raw
    return raw[: draw(st.integers(0, len(raw)))]


def _agree(
    raw: bytes, model: type[SurveyResponse] | type[TicketEvent], fast: FastSurvey | FastTicket | None
) -> None:
    reference = parse(model, raw)
    if fast is None:
        return  # refused: the pipeline asks pydantic, whose verdict stands
    assert not isinstance(reference, Rejection), (raw, reference)
    assert from_model(reference) == fast


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(payloads(SURVEY | VALID_SURVEY))
def test_surveys_accepted_by_the_struct_are_pydantics_with_equal_values(raw: bytes) -> None:
    _agree(raw, SurveyResponse, decode_survey(raw))


@settings(max_examples=600, suppress_health_check=[HealthCheck.too_slow])
@given(payloads(TICKET | VALID_TICKET))
def test_tickets_accepted_by_the_struct_are_pydantics_with_equal_values(raw: bytes) -> None:
    _agree(raw, TicketEvent, decode_ticket(raw))


@settings(max_examples=300)
@given(st.one_of(VALID_SURVEY, VALID_TICKET))
def test_the_struct_refuses_nothing_valid(doc: dict[str, Any]) -> None:
    """The fast path is the path: what pydantic accepts, the struct accepts too (the fallback is rare)."""
    model = SurveyResponse if "response_id" in doc else TicketEvent
    raw = json.dumps(doc).encode()
    assert not isinstance(parse(model, raw), Rejection), raw  # the strategy's documents are valid
    fast = decode_survey(raw) if model is SurveyResponse else decode_ticket(raw)
    assert fast is not None, raw


@settings(max_examples=300)
@given(payloads(SURVEY | VALID_SURVEY), payloads(TICKET | VALID_TICKET))
def test_the_pipeline_rejects_with_pydantics_code_and_message(survey: bytes, ticket: bytes) -> None:
    """A refused record's dead letter says what pydantic says: the same code, message and field."""
    topics = Topics("survey-responses", "ticket-events", "rekey", "recovery-alerts", "feedback-dlq")
    pipeline = Pipeline(topics, AlertPolicy(), owner=lambda cid: 0)
    for topic, raw, model in (
        ("survey-responses", survey, SurveyResponse),
        ("ticket-events", ticket, TicketEvent),
    ):
        parsed = pipeline._parse(
            "survey_response" if model is SurveyResponse else "ticket_event", Record(topic, 0, 0, None, raw)
        )
        reference = parse(model, raw)
        if isinstance(reference, Rejection):
            assert parsed == reference
        else:
            assert not isinstance(parsed, Rejection) and parsed == from_model(reference)


@given(VALID_SURVEY)
def test_a_held_copy_reads_back_equal(doc: dict[str, Any]) -> None:
    fast = decode_survey(json.dumps(doc).encode())
    assert fast is not None
    text = held_text(fast)
    assert decode_survey(text.encode()) == fast
    assert "extra" not in orjson.loads(text)  # the contract's fields only


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-22T13:20:53.1234567Z",
        "2026-11-22t13:20:53z",
        "2026-11-22T13:20:53+05:30",
        "2026-11-22 13:20:53Z",
    ],
)
def test_timestamps_parse_as_the_contract_parses_them(stamp: str) -> None:
    doc = {"response_id": "r", "customer_id": "c", "submitted_at": stamp, "scores": {"nps": 3}}
    fast, reference = decode_survey(orjson.dumps(doc)), parse(SurveyResponse, orjson.dumps(doc))
    assert fast is not None and isinstance(reference, SurveyResponse)
    assert (
        fast.submitted_at == reference.submitted_at
        and fast.submitted_at.utcoffset() == reference.submitted_at.utcoffset()
    )


@pytest.mark.parametrize(
    "stamp", ["2026-11-22T13:20:53+0100", "2026-11-22T13:20:53.1234567891Z", "2026-11-22T13:20:53"]
)
def test_timestamps_the_contract_refuses_are_refused(stamp: str) -> None:
    doc = {"response_id": "r", "customer_id": "c", "submitted_at": stamp, "scores": {"nps": 3}}
    assert decode_survey(orjson.dumps(doc)) is None
    assert isinstance(parse(SurveyResponse, orjson.dumps(doc)), Rejection)


@pytest.mark.parametrize("depth", [1_000, 100_000])
def test_deeply_nested_values_are_refused_not_raised(depth: int) -> None:
    """msgspec raises RecursionError on deep nesting: the record goes to pydantic, whose verdict stands."""
    raw = b'{"response_id":"r","customer_id":"c","submitted_at":"2026-11-22T13:20:53Z",'
    raw += b'"scores":{"nps":3},"x":'
    raw += b"[" * depth + b"]" * depth + b"}"
    assert decode_survey(raw) is None
    assert decode_ticket(raw) is None
    topics = Topics("survey-responses", "ticket-events", "rekey", "recovery-alerts", "feedback-dlq")
    parsed = Pipeline(topics, AlertPolicy(), owner=lambda cid: 0)._parse(
        "survey_response", Record("survey-responses", 0, 0, None, raw)
    )
    reference = parse(SurveyResponse, raw)
    assert parsed == (reference if isinstance(reference, Rejection) else from_model(reference))
