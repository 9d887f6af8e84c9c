"""End to end through Apache Kafka: a worker subprocess, real producers and consumers."""

from __future__ import annotations

import time

import orjson
import pytest

from schemas.outputs import DeadLetter, RecoveryAlert
from tests.support.factories import survey, ticket, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration


def test_nps_six_alerts_and_seven_does_not(service: Service) -> None:
    cid = uid("cust")
    service.send_survey(survey(cid, "r-nps7", nps=7))
    service.send_survey(survey(cid, "r-nps6", nps=6))
    alerts = service.alerts_for(cid, 1)
    assert [(a["response_id"], a["kind"], a["score"]) for a in alerts] == [("r-nps6", "detractor", 6)]
    RecoveryAlert.model_validate(alerts[0])


def test_ces_two_alerts_and_three_does_not(service: Service) -> None:
    cid = uid("cust")
    service.send_survey(survey(cid, "r-ces3", ces=3))
    service.send_survey(survey(cid, "r-ces2", ces=2))
    service.send_survey(survey(cid, "r-end", nps=0))  # sentinel: processed after the others
    alerts = service.alerts_for(cid, 2)
    assert [(a["response_id"], a["kind"]) for a in alerts] == [
        ("r-ces2", "low_effort"),
        ("r-end", "detractor"),
    ]


def test_an_edit_does_not_alert_twice(service: Service) -> None:
    cid = uid("cust")
    service.send_survey(survey(cid, "r-1", nps=3))
    service.send_survey(survey(cid, "r-1", nps=1))  # edit: still a detractor
    service.send_survey(survey(cid, "r-1", nps=1))  # and a redelivery of the edit
    # sentinel of another kind (a second detractor would be held back by the cooldown)
    service.send_survey(survey(cid, "r-end", ces=1, at="2026-11-22T13:30:00Z"))
    alerts = service.alerts_for(cid, 2)
    assert [(a["response_id"], a["kind"]) for a in alerts] == [("r-1", "detractor"), ("r-end", "low_effort")]
    assert alerts[1]["customer"]["recent_scores"] == [
        {"response_id": "r-end", "submitted_at": "2026-11-22T13:30:00Z", "ces": 1},
        {"response_id": "r-1", "submitted_at": "2026-11-22T13:20:53Z", "nps": 1},
    ]


def test_a_duplicate_ticket_event_changes_nothing(service: Service) -> None:
    cid = uid("cust")
    service.send_ticket(
        ticket(
            cid,
            "t-1",
            "created",
            team="returns",
            customer_tier="gold",
            account_value=5000.0,
            category="damaged_item",
        )
    )
    reopened = ticket(cid, "t-1", "reopened", event_id=uid("evt"), at="2026-11-22T13:05:00Z")
    service.send_ticket(reopened)
    service.send_ticket(reopened)
    service.send_survey(survey(cid, nps=2, ticket_id="t-1"))
    (alert,) = service.alerts_for(cid, 1)
    (open_ticket,) = alert["customer"]["open_tickets"]
    assert open_ticket["reopened"] == 1 and open_ticket["status"] == "reopened"
    assert (alert["team"], alert["category"], alert["severity"]) == ("returns", "damaged_item", "critical")
    assert alert["customer"]["tier"] == "gold"


def test_malformed_input_goes_to_the_dlq_and_the_next_message_is_processed(service: Service) -> None:
    cid = uid("cust")
    topic = service.settings.survey_responses_topic
    service.send(topic, b'{"response_id": "broken", ', cid.encode())
    service.send(topic, orjson.dumps(survey(cid, nps=12)), cid.encode())
    service.send_survey(survey(cid, "r-ok", nps=5))
    assert [a["response_id"] for a in service.alerts_for(cid, 1)] == ["r-ok"]

    def mine(records: list[object]) -> list[DeadLetter]:
        return [
            DeadLetter.model_validate_json(r.value)
            for r in records  # type: ignore[attr-defined]
            if r.key == cid.encode()
        ]  # type: ignore[attr-defined]

    records = service.read(service.settings.dlq_topic, lambda rs: len(mine(rs)) >= 2)
    dead = mine(records)
    assert [(d.error.code, d.error.field) for d in dead] == [
        ("invalid_json", None),
        ("out_of_range", "scores.nps"),
    ]
    assert all(d.source_topic == topic for d in dead)
    assert dead[0].payload == '{"response_id": "broken", ' and dead[0].offset < dead[1].offset
    headers = {r.key: dict(r.headers) for r in records}  # type: ignore[attr-defined]
    assert headers[cid.encode()]["schema-version"] == b"1"


def test_unkeyed_and_mis_keyed_messages_are_processed(service: Service) -> None:
    a, b = uid("cust"), uid("cust")
    service.send_survey(survey(a, nps=1), key=None)
    service.send_survey(survey(b, nps=1), key=b"someone-else")
    assert service.alerts_for(a, 1)[0]["customer_id"] == a
    assert service.alerts_for(b, 1)[0]["customer_id"] == b


def test_metrics_are_served_by_the_worker(service: Service) -> None:
    cid = uid("cust")
    service.send_survey(survey(cid, nps=0))
    service.alerts_for(cid, 1)
    gauge = 'survey_alerts_window_samples{dimension="overall",key="all",metric="nps",window="24h"}'
    deadline = time.monotonic() + 30
    while gauge not in (text := service.metrics()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert gauge in text
    assert 'survey_alerts_alerts_raised_total{kind="detractor",severity="critical"}' in text
    assert (
        f'survey_alerts_records_consumed_total{{topic="{service.settings.survey_responses_topic}"}}' in text
    )
    assert cid not in text


def test_a_survey_whose_ticket_never_comes_is_released_after_the_wait(service: Service) -> None:
    cid = uid("cust")
    started = time.monotonic()
    service.send_survey(survey(cid, "r-waited", nps=1, ticket_id=uid("t")))
    (alert,) = service.alerts_for(cid, 1)
    assert time.monotonic() - started >= service.settings.ticket_wait_s - 0.5  # it waited for the ticket
    assert (alert["response_id"], alert["kind"], alert["team"]) == ("r-waited", "detractor", None)
    # the wait was ended by a release request read back from the re-key topic
    rekey = f'survey_alerts_records_consumed_total{{topic="{service.settings.rekey_topic}"}}'
    assert any(
        line.startswith(rekey) and float(line.split()[-1]) >= 1 for line in service.metrics().splitlines()
    )
