"""State survives a worker restart: restored from the changelog, not recomputed."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from stream.tools.brokers import LocalBroker
from tests.support.factories import survey, ticket, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["clean-stop", "crash"])
def test_ticket_state_and_alert_memory_survive_a_restart(
    kafka: LocalBroker, tmp_path: Path, sig: int
) -> None:
    svc = Service(kafka, tmp_path)
    try:
        svc.start()
        cid = uid("cust")
        svc.send_ticket(
            ticket(cid, "t-1", "created", team="accounts", customer_tier="platinum", account_value=250_000.0)
        )
        svc.send_survey(survey(cid, "r-1", nps=5, ticket_id="t-1"))
        (before,) = svc.alerts_for(cid, 1)
        svc.stop(sig)
        (tmp_path / "data").exists() and __import__("shutil").rmtree(tmp_path / "data")  # no local cache
        svc.start()
        svc.send_survey(survey(cid, "r-1", nps=4, ticket_id="t-1"))  # an edit after the restart
        svc.send_survey(survey(cid, "r-2", ces=1, ticket_id="t-1"))
        alerts = svc.alerts_for(cid, 2)
        assert [a["response_id"] for a in alerts] == ["r-1", "r-2"]
        after = alerts[1]
        assert after["customer"]["tier"] == "platinum" and after["team"] == "accounts"
        assert after["customer"]["open_ticket_count"] == 1
        assert {s["response_id"] for s in after["customer"]["recent_scores"]} == {"r-1", "r-2"}
        assert before["alert_id"] == alerts[0]["alert_id"]
        # the customer came back through the batch consumer's restore path, not Faust's per-event one
        restored = [
            line
            for line in svc.metrics().splitlines()
            if line.startswith("survey_alerts_state_records_restored_total") and "customers-changelog" in line
        ]
        assert restored and float(restored[0].rsplit(" ", 1)[1]) >= 1, restored
    finally:
        svc.close()
