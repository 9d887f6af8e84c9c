"""The follow-up loop on Apache Kafka: overdue escalation, contact, and timers across a restart."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest

from schemas.outputs import FollowupEvent
from stream.tools.brokers import LocalBroker
from tests.support.factories import survey, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration


def _action(alert_id: str, kind: str, **extra: str) -> bytes:
    return orjson.dumps(
        {
            "action_id": uid("act"),
            "alert_id": alert_id,
            "type": kind,
            "actor": "sam",
            "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            **extra,
        }
    )


def _overdue(svc: Service, cid: str, count: int, timeout_s: float = 60) -> list[dict[str, object]]:
    alerts = svc.alerts_for(cid, 1 + count, timeout_s=timeout_s)
    return [a for a in alerts if a["kind"] == "followup_overdue"]


def test_an_uncontacted_alert_escalates_to_the_lead_and_a_contacted_one_does_not(
    kafka: LocalBroker, tmp_path: Path
) -> None:
    svc = Service(
        kafka,
        tmp_path,
        sla_critical_minutes="0.1",
        followup_check_interval_s="0.5",
        renotify_interval_s="2",
        max_renotify="2",
        sla_tier_factors="{}",
    )
    try:
        svc.start()
        ignored, called = uid("cust"), uid("cust")
        svc.send_survey(survey(ignored, nps=0, team="billing"))
        svc.send_survey(survey(called, nps=1, team="billing"))
        (called_alert,) = svc.alerts_for(called, 1)
        svc.send(
            svc.settings.followup_actions_topic,
            _action(str(called_alert["alert_id"]), "contacted"),
            str(called_alert["alert_id"]).encode(),
        )
        overdue = _overdue(svc, ignored, 2)
        assert [(a["notice"], a["queue"], a["severity"]) for a in overdue] == [
            (1, "billing-lead", "critical"),
            (2, "billing-lead", "critical"),
        ]
        assert overdue[0]["alert_id"] != overdue[1]["alert_id"]
        lead = svc.read(
            svc.settings.escalations_prefix + "billing-lead",
            lambda rs: sum(r.key == ignored.encode() for r in rs) >= 2,
        )
        mine = [orjson.loads(r.value) for r in lead if r.key == ignored.encode()]
        assert {e["source"] for e in mine} == {"followup_overdue"}
        time.sleep(5)  # past the called customer's due time, and past a third notice's cadence
        assert [a["kind"] for a in svc.alerts_for(called, 1)] == ["detractor"]
        assert len(_overdue(svc, ignored, 2)) == 2  # capped
        svc.send(
            svc.settings.followup_actions_topic,
            _action(str(called_alert["alert_id"]), "resolved", root_cause="late courier"),
            str(called_alert["alert_id"]).encode(),
        )
        ids = {str(called_alert["alert_id"]), str(overdue[0]["original_alert_id"])}

        def changes(records: list[Any]) -> dict[str, list[FollowupEvent]]:
            found: dict[str, list[FollowupEvent]] = {}
            for r in records:
                if r.key.decode() in ids:
                    found.setdefault(r.key.decode(), []).append(FollowupEvent.model_validate_json(r.value))
            return found

        def complete(records: list[Any]) -> bool:
            found = changes(records)
            return len(found.get(str(called_alert["alert_id"]), [])) >= 3 and len(found) == 2

        got = changes(svc.read(svc.settings.followup_events_topic, complete))
        assert [(e.type, e.status, e.actor) for e in got[str(called_alert["alert_id"])]] == [
            ("opened", "open", None),
            ("contacted", "contacted", "sam"),
            ("resolved", "resolved", "sam"),
        ]
        assert got[str(called_alert["alert_id"])][-1].root_cause == "late courier"
        ignored_events = got[str(overdue[0]["original_alert_id"])]
        assert [(e.type, e.notice) for e in ignored_events] == [
            ("opened", None),
            ("overdue", 1),
            ("overdue", 2),
        ]
        assert {e.queue for e in ignored_events} == {"billing"}
        text = svc.metrics()
        counted = re.search(r'survey_alerts_followup_events_total\{type="overdue"\} (\S+)', text)
        assert counted and float(counted.group(1)) >= 2  # the readiness probes' alerts go overdue too
        assert "survey_alerts_time_to_contact_seconds_count 1.0" in text
        assert 'survey_alerts_escalations_total{queue="billing-lead"}' in text
    finally:
        svc.close()


def test_open_follow_ups_and_their_timers_survive_a_restart(kafka: LocalBroker, tmp_path: Path) -> None:
    svc = Service(
        kafka, tmp_path, sla_critical_minutes="0.4", followup_check_interval_s="0.5", sla_tier_factors="{}"
    )
    try:
        svc.start()
        cid = uid("cust")
        svc.send_survey(survey(cid, nps=0, team="returns"))
        (alert,) = svc.alerts_for(cid, 1)
        svc.stop()
        svc.start()
        (overdue,) = _overdue(svc, cid, 1, timeout_s=90)
        assert overdue["original_alert_id"] == alert["alert_id"] and overdue["queue"] == "returns-lead"
    finally:
        svc.close()
