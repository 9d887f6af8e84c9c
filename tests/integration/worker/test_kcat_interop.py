"""An independent client (kcat, librdkafka) produces contract messages and reads our outputs."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from typing import Any

import pytest

from schemas.outputs import DeadLetter, RecoveryAlert
from tests.support.factories import survey, ticket, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def kcat() -> str:
    path = shutil.which("kcat") or shutil.which("kafkacat")
    assert path, "kcat is missing: `bash .ci/run` installs it (apt-get install kcat)"
    return path


def produce(kcat: str, service: Service, topic: str, lines: list[tuple[str, str]], *opts: str) -> None:
    text = "".join(f"{key}\t{value}\n" for key, value in lines)
    subprocess.run(
        [kcat, "-b", service.broker.bootstrap, "-P", "-t", topic, "-K", "\t", *opts],
        input=text.encode(),
        check=True,
        timeout=60,
    )


def consume(kcat: str, service: Service, topic: str, want: int, key: str) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 60
    while True:
        out = subprocess.run(
            [kcat, "-b", service.broker.bootstrap, "-C", "-t", topic, "-o", "beginning", "-e", "-J", "-q"],
            capture_output=True,
            check=True,
            timeout=60,
        ).stdout.decode()
        rows = [json.loads(line) for line in out.splitlines() if line.strip()]
        mine = [r for r in rows if r.get("key") == key]
        if len(mine) >= want or time.monotonic() > deadline:
            return mine
        time.sleep(0.5)


@pytest.mark.parametrize("partitioner", ["consistent_random", "murmur2_random"])
def test_kcat_messages_in_alerts_and_dead_letters_out(kcat: str, service: Service, partitioner: str) -> None:
    cid = uid("cust")
    s = service.settings
    produce(
        kcat,
        service,
        s.ticket_events_topic,
        [
            (
                cid,
                json.dumps(
                    ticket(
                        cid,
                        "t-9",
                        "created",
                        team="billing",
                        customer_tier="silver",
                        category="refund",
                        channel="email",
                    )
                ),
            ),
        ],
        "-X",
        f"topic.partitioner={partitioner}",
    )
    produce(
        kcat,
        service,
        s.survey_responses_topic,
        [
            (cid, "this is not json"),
            (cid, json.dumps(survey(cid, "r-7", nps=7, ticket_id="t-9", at="2026-11-22T13:40:00Z"))),
            (
                cid,
                json.dumps(
                    survey(
                        cid,
                        "r-2",
                        ces=2,
                        ticket_id="t-9",
                        at="2026-11-22T08:41:00-05:00",
                        comment="Had to call three times",
                    )
                ),
            ),
        ],
        "-X",
        f"topic.partitioner={partitioner}",
    )

    (alert_row,) = consume(kcat, service, s.recovery_alerts_topic, 1, cid)
    alert = RecoveryAlert.model_validate_json(alert_row["payload"])
    assert (alert.kind, alert.response_id, alert.team, alert.category) == (
        "low_effort",
        "r-2",
        "billing",
        "refund",
    )
    assert alert.customer.tier == "silver"
    # the customer's words travel with the alert, for whoever calls back (never into logs or labels)
    assert alert.comment == "Had to call three times"
    assert alert_row["headers"] == ["schema-version", "1"]

    (dead_row,) = consume(kcat, service, s.dlq_topic, 1, cid)
    dead = DeadLetter.model_validate_json(dead_row["payload"])
    assert (dead.error.code, dead.payload, dead.source_topic) == (
        "invalid_json",
        "this is not json",
        s.survey_responses_topic,
    )
