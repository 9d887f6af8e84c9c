"""Ticket KPIs and attribution of answers to dimensions."""

from __future__ import annotations

from alerts.customer import CustomerState, to_epoch
from alerts.feedback import Before, answer_dims, ticket_stats
from alerts.scores import F
from schemas.inputs import SurveyResponse, TicketEvent
from tests.support.factories import survey, ticket


def fold(*docs: dict[str, object]) -> tuple[CustomerState, list[list[float] | None]]:
    state, out = CustomerState(), []
    for d in docs:
        ev = TicketEvent.model_validate(d)
        before = Before.of(state.tickets.get(ev.ticket_id))
        state.apply_ticket_event(ev)
        out.append(ticket_stats(ev, state.tickets[ev.ticket_id], to_epoch(ev.occurred_at), before))
    return state, out


def test_first_response_time_counts_once_from_creation() -> None:
    _, stats = fold(
        ticket("c", "t", "created", at="2026-11-22T10:00:00Z"),
        ticket("c", "t", "first_response", at="2026-11-22T10:05:00Z"),
        ticket("c", "t", "first_response", at="2026-11-22T10:09:00Z"),
    )
    assert stats[1] is not None and (stats[1][F.FRT_N], stats[1][F.FRT_SUM]) == (1, 300)
    assert stats[2] is None


def test_first_contact_resolution_and_handle_time() -> None:
    _, clean = fold(
        ticket("c", "t", "created", at="2026-11-22T10:00:00Z"),
        ticket(
            "c",
            "t",
            "resolved",
            at="2026-11-22T10:30:00Z",
            talk_seconds=600,
            hold_seconds=60,
            wrap_seconds=120,
        ),
    )
    assert clean[1] is not None and clean[1][F.FCR] == 1 and clean[1][F.AHT_SUM] == 780
    _, twice = fold(
        ticket("c", "t", "created", at="2026-11-22T10:00:00Z"),
        ticket("c", "t", "agent_reply", at="2026-11-22T10:10:00Z"),
        ticket("c", "t", "resolved", at="2026-11-22T10:30:00Z"),
    )
    assert twice[2] is not None and twice[2][F.FCR] == 0 and twice[2][F.AHT_N] == 0
    _, reopened = fold(
        ticket("c", "t", "created", at="2026-11-22T10:00:00Z"),
        ticket("c", "t", "resolved", at="2026-11-22T10:30:00Z"),
        ticket("c", "t", "reopened", at="2026-11-22T11:00:00Z"),
        ticket("c", "t", "resolved", at="2026-11-22T12:00:00Z"),
    )
    assert reopened[2] is not None and reopened[2][F.REOPENED] == 1
    assert reopened[3] is not None and reopened[3][F.FCR] == 0


def test_answers_count_under_their_own_attribution_before_the_tickets() -> None:
    state, _ = fold(
        ticket("c", "t", "created", team="billing", channel="chat", category="refund", agent_id="a1")
    )
    own = state.record_answer(
        SurveyResponse.model_validate(survey("c", "r1", nps=5, ticket_id="t", team="vip", channel="phone"))
    )
    assert answer_dims(own, state.tickets["t"]) == [
        ("overall", "all"),
        ("team", "vip"),
        ("channel", "phone"),
        ("agent", "a1"),
        ("category", "refund"),
    ]
    plain = state.record_answer(SurveyResponse.model_validate(survey("c", "r2", nps=5)))
    assert answer_dims(plain, None) == [("overall", "all")]


def test_speed_of_answer_counts_a_tickets_first_queue_time_and_reply_time_each_answered_reply() -> None:
    _, stats = fold(
        ticket("c", "t", "created", at="2026-11-22T10:00:00Z"),
        ticket("c", "t", "assigned", at="2026-11-22T10:01:00Z", queue_seconds=45.5),
        ticket("c", "t", "first_response", at="2026-11-22T10:02:00Z", queue_seconds=50),  # once a ticket
        ticket("c", "t", "customer_reply", at="2026-11-22T11:00:00Z"),
        ticket("c", "t", "customer_reply", at="2026-11-22T11:10:00Z"),  # still waiting since 11:00
        ticket("c", "t", "agent_reply", at="2026-11-22T11:30:00Z"),
        ticket("c", "t", "agent_reply", at="2026-11-22T11:40:00Z"),  # nothing to answer
        ticket("c", "u", "assigned", at="2026-11-22T12:00:00Z"),  # abandoned: no queue time
    )
    assert stats[1] is not None and (stats[1][F.ASA_N], stats[1][F.ASA_SUM]) == (1, 45.5)
    assert stats[2] is not None and stats[2][F.ASA_N] == 0 and stats[2][F.FRT_N] == 1
    assert stats[3] is None and stats[4] is None and stats[6] is None and stats[7] is None
    assert stats[5] is not None and (stats[5][F.ART_N], stats[5][F.ART_SUM]) == (1, 1800)
