"""Every bad input yields a stable code and names the field at fault."""

from __future__ import annotations

import pytest

from schemas.inputs import FollowupAction, SurveyResponse, TicketEvent
from schemas.validate import Rejection, parse
from tests.support.factories import raw, survey, ticket


def _reject(model: type, payload: bytes) -> Rejection:
    result = parse(model, payload)
    assert isinstance(result, Rejection), result
    return result


def test_valid_survey_response_parses_every_field() -> None:
    doc = survey(
        "c1",
        "r1",
        nps=6,
        csat=4,
        ces=2,
        stars=5,
        ves={"achieve": 3, "confidence": 7},
        goal_completed=False,
        ticket_id="t1",
        team="billing",
        comment="slow",
    )
    resp = parse(SurveyResponse, raw(doc))
    assert isinstance(resp, SurveyResponse)
    assert resp.scores.nps == 6 and resp.scores.ves is not None and resp.scores.ves.confidence == 7
    assert resp.submitted_at.utcoffset() is not None


@pytest.mark.parametrize(
    ("payload", "code", "field"),
    [
        (b"", "empty_payload", None),
        (b'{"a": "\xff"}', "invalid_utf8", None),
        (b'{"response_id": ', "invalid_json", None),
        (b"[1, 2]", "not_an_object", None),
        (b'"text"', "not_an_object", None),
    ],
)
def test_undecodable_payloads(payload: bytes, code: str, field: str | None) -> None:
    rej = _reject(SurveyResponse, payload)
    assert (rej.code, rej.field) == (code, field)


@pytest.mark.parametrize(
    ("change", "code", "field"),
    [
        ({"scores": {"nps": 11}}, "out_of_range", "scores.nps"),
        ({"scores": {"nps": -1}}, "out_of_range", "scores.nps"),
        ({"scores": {"csat": 0}}, "out_of_range", "scores.csat"),
        ({"scores": {"ces": 8}}, "out_of_range", "scores.ces"),
        ({"scores": {"ves": {"achieve": 0, "confidence": 3}}}, "out_of_range", "scores.ves.achieve"),
        ({"scores": {"nps": "9"}}, "invalid_type", "scores.nps"),
        ({"scores": {"nps": 9.0}}, "invalid_type", "scores.nps"),
        ({"scores": {"nps": True}}, "invalid_type", "scores.nps"),
        ({"scores": {"goal_completed": 1}}, "invalid_type", "scores.goal_completed"),
        ({"scores": {}}, "missing_field", "scores"),
        ({"scores": "nps=9"}, "invalid_type", "scores"),
        ({"customer_id": None}, "invalid_type", "customer_id"),
        ({"customer_id": ""}, "out_of_range", "customer_id"),
        ({"response_id": "x" * 129}, "out_of_range", "response_id"),
        ({"submitted_at": "2026-11-22 13:20:53"}, "invalid_timestamp", "submitted_at"),
        ({"submitted_at": "2026-11-22T13:20:53"}, "invalid_timestamp", "submitted_at"),
        ({"submitted_at": 1763817653}, "invalid_timestamp", "submitted_at"),
        ({"submitted_at": "2026-13-40T13:20:53Z"}, "invalid_timestamp", "submitted_at"),
        ({"comment": "x" * 10_001}, "out_of_range", "comment"),
    ],
)
def test_field_errors_name_the_field(change: dict[str, object], code: str, field: str) -> None:
    doc = {**survey("c1", "r1"), **change}
    rej = _reject(SurveyResponse, raw(doc))
    assert (rej.code, rej.field) == (code, field)
    assert field in rej.message


def test_missing_required_field() -> None:
    doc = survey("c1", "r1")
    del doc["customer_id"]
    rej = _reject(SurveyResponse, raw(doc))
    assert (rej.code, rej.field) == ("missing_field", "customer_id")


def test_rejection_message_does_not_echo_comments() -> None:
    doc = {**survey("c1", "r1"), "comment": "my phone is 555-0100 " * 600}
    rej = _reject(SurveyResponse, raw(doc))
    assert "555-0100" not in rej.message


@pytest.mark.parametrize(
    "stamp",
    [
        "2026-11-22T13:20:53Z",
        "2026-11-22T08:20:53-05:00",
        "2026-11-22T13:20:53.123456789+01:00",
        "2026-11-22t13:20:53z",
    ],
)
def test_rfc3339_timestamps_with_offsets_are_accepted(stamp: str) -> None:
    assert isinstance(parse(SurveyResponse, raw(survey("c", "r", at=stamp))), SurveyResponse)


def test_ticket_event_rules() -> None:
    ok = parse(TicketEvent, raw(ticket("c", "t", "resolved", talk_seconds=10.5)))
    assert isinstance(ok, TicketEvent)
    created = ticket("c", "t", "created")
    del created["team"]
    assert _reject(TicketEvent, raw(created)).field == "team"
    assert _reject(TicketEvent, raw(ticket("c", "t", "flew"))).code == "invalid_value"
    assert _reject(TicketEvent, raw(ticket("c", "t", "closed", channel="pigeon"))).field == "channel"
    rej = _reject(TicketEvent, raw(ticket("c", "t", "closed", account_value=-1)))
    assert (rej.code, rej.field) == ("out_of_range", "account_value")


def test_followup_action_needs_root_cause_to_resolve() -> None:
    doc = {
        "action_id": "a",
        "alert_id": "x",
        "type": "resolved",
        "actor": "sam",
        "at": "2026-11-22T13:20:53Z",
    }
    assert _reject(FollowupAction, raw(doc)).field == "root_cause"
    assert isinstance(parse(FollowupAction, raw({**doc, "root_cause": "late courier"})), FollowupAction)
