"""Customer state: ticket folding, duplicates, ordering, bounds and serialisation."""

from __future__ import annotations

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.customer import MAX_SEEN_EVENTS, MAX_TICKETS, CustomerState
from schemas.inputs import SurveyResponse, TicketEvent
from tests.support.factories import survey, ticket


def ev(**kw: object) -> TicketEvent:
    return TicketEvent.model_validate(ticket(**kw))  # type: ignore[arg-type]


def test_ticket_lifecycle_and_profile() -> None:
    s = CustomerState()
    assert s.apply_ticket_event(
        ev(
            customer_id="c",
            ticket_id="t",
            type_="created",
            team="billing",
            customer_tier="gold",
            account_value=900.0,
            category="refund",
        )
    )
    assert s.open_tickets()[0].team == "billing"
    assert (s.tier, s.account_value) == ("gold", 900.0)
    s.apply_ticket_event(ev(customer_id="c", ticket_id="t", type_="resolved", at="2026-11-22T14:00:00Z"))
    assert s.open_tickets() == []
    s.apply_ticket_event(ev(customer_id="c", ticket_id="t", type_="reopened", at="2026-11-22T15:00:00Z"))
    assert [t.reopened for t in s.open_tickets()] == [1]


def test_a_duplicate_event_changes_nothing() -> None:
    s = CustomerState()
    e = ev(customer_id="c", ticket_id="t", type_="reopened", event_id="e1")
    assert s.apply_ticket_event(e)
    before = s.to_doc()
    assert not s.apply_ticket_event(e)
    assert s.to_doc() == before
    assert s.tickets["t"].reopened == 1


def test_an_older_event_does_not_override_newer_facts() -> None:
    s = CustomerState()
    s.apply_ticket_event(
        ev(customer_id="c", ticket_id="t", type_="assigned", team="returns", at="2026-11-22T14:00:00Z")
    )
    s.apply_ticket_event(
        ev(
            customer_id="c",
            ticket_id="t",
            type_="created",
            team="billing",
            priority="high",
            at="2026-11-22T13:00:00Z",
        )
    )
    t = s.tickets["t"]
    assert (t.team, t.status, t.priority) == ("returns", "open", "high")
    assert t.opened_at is not None and t.opened_at < t.last_at


def test_state_is_bounded() -> None:
    s = CustomerState()
    for i in range(MAX_TICKETS + 20):
        s.apply_ticket_event(
            ev(
                customer_id="c",
                ticket_id=f"t{i}",
                type_="created",
                at=f"2026-11-{1 + i // 24:02d}T{i % 24:02d}:00:00Z",
            )
        )
    assert len(s.tickets) == MAX_TICKETS
    assert "t0" not in s.tickets
    assert len(s.seen_events) == min(MAX_SEEN_EVENTS, MAX_TICKETS + 20)


def test_an_edit_replaces_the_answer_and_keeps_alerted_kinds() -> None:
    s = CustomerState()
    a = s.record_answer(SurveyResponse.model_validate(survey("c", "r", nps=3)))
    a.alerted.append("detractor")
    b = s.record_answer(SurveyResponse.model_validate(survey("c", "r", nps=5)))
    assert (b.nps, b.alerted) == (5, ["detractor"])
    assert len(s.answers) == 1


_ids = st.text("abc", min_size=1, max_size=3)


@settings(max_examples=60)
@given(
    st.lists(
        st.tuples(
            _ids,
            _ids,
            st.sampled_from(["created", "resolved", "reopened", "escalated", "closed", "assigned"]),
            st.integers(0, 23),
            st.sampled_from([None, "gold", "silver"]),
        ),
        max_size=30,
    )
)
def test_serialisation_round_trips(events: list[tuple[str, str, str, int, str | None]]) -> None:
    s = CustomerState()
    for event_id, ticket_id, kind, hour, tier in events:
        s.apply_ticket_event(
            ev(
                customer_id="c",
                ticket_id=ticket_id,
                type_=kind,
                event_id=event_id,
                at=f"2026-11-22T{hour:02d}:00:00Z",
                customer_tier=tier,
            )
        )
    for i, (event_id, ticket_id, _, hour, _) in enumerate(events):
        ans = s.record_answer(
            SurveyResponse.model_validate(
                survey(
                    "c",
                    f"r{i % 4}",
                    ticket_id=ticket_id,
                    team=event_id,
                    nps=hour % 11,
                    csat=1 + hour % 5,
                    ves={"achieve": 3, "confidence": 4},
                    goal_completed=bool(hour % 2),
                )
            )
        )
        ans.dims, ans.windows, ans.alerted = [["team", event_id]], hour, ["detractor"]
    doc = orjson.loads(orjson.dumps(s.to_doc()))
    back = CustomerState.from_doc(doc)
    assert back == s
    assert all(a.ticket_id and a.own for a in back.answers.values())


@settings(max_examples=60)
@given(st.permutations(list(range(6))))
def test_team_is_the_newest_events_team_in_any_arrival_order(order: list[int]) -> None:
    teams = ["a", "b", "c", "d", "e", "f"]
    s = CustomerState()
    for i in order:
        s.apply_ticket_event(
            ev(
                customer_id="c",
                ticket_id="t",
                type_="assigned",
                team=teams[i],
                at=f"2026-11-22T1{i}:00:00Z",
                event_id=f"e{i}",
            )
        )
    assert s.tickets["t"].team == "f"
