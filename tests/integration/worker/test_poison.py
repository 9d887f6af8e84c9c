"""Records that once stopped the worker for good: now dead letters, and the stream goes on.

Before: a payload near the broker's limit got a dead letter too large to produce, and a
contract-valid 250-character team became an escalation topic name Kafka refuses. Either
raised in the worker; the record's offset was never committed, so it crashed again at the
same place after every restart.
"""

from __future__ import annotations

import hashlib
import random
from pathlib import Path

import pytest

from alerts.deadletters import dead_letter_key, record_size
from alerts.routing import queue_token
from schemas.outputs import DeadLetter, Escalation
from stream.tools.brokers import LocalBroker
from tests.support.factories import survey, ticket, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration


def test_poison_records_become_dead_letters_and_a_restart_goes_on(kafka: LocalBroker, tmp_path: Path) -> None:
    svc = Service(kafka, tmp_path)
    s = svc.settings
    try:
        svc.start()
        binary = random.Random(14).randbytes(950_000)  # not UTF-8: quoted as base64, a third larger
        escapes = b'"\x01' * 475_000  # text whose JSON escapes take six bytes for one
        svc.send(s.survey_responses_topic, binary, b"poison-binary")
        svc.send(s.survey_responses_topic, escapes, b"poison-escapes")
        key_account = uid("key")
        team = ("Customer Success & Retention / EMEA North " * 7)[:250]  # the contract allows 256
        svc.send_ticket(
            ticket(key_account, "t-1", "created", team=team, customer_tier="platinum", account_value=3e5)
        )
        svc.send_survey(survey(key_account, "r-1", nps=1, ticket_id="t-1"))
        after = [uid("after") for _ in range(5)]
        for cid in after:
            svc.send_survey(survey(cid, nps=2))

        for cid in after:
            assert len(svc.alerts_for(cid, 1)) == 1
        (alert,) = svc.alerts_for(key_account, 1)
        assert alert["queue"] == queue_token(team) and len(alert["queue"]) == 200
        assert alert["team"] == team  # the document keeps the team as given
        topic = s.escalations_prefix + alert["queue"]
        escalations = svc.read(topic, lambda rs: len(rs) >= 1)
        (escalation,) = [Escalation.model_validate_json(r.value) for r in escalations]
        assert escalation.customer_id == key_account and escalation.alert_id == alert["alert_id"]

        def poison(records: list[object]) -> dict[bytes, DeadLetter]:
            return {
                r.key: DeadLetter.model_validate_json(r.value)  # type: ignore[attr-defined]
                for r in records
                if r.key in (b"poison-binary", b"poison-escapes")  # type: ignore[attr-defined]
            }

        records = svc.read(s.dlq_topic, lambda rs: len(poison(rs)) == 2)
        for r in records:
            assert record_size(r.key, r.value, r.headers) <= s.max_message_bytes
        letters = poison(records)
        for key, original, encoding, code in (
            (b"poison-binary", binary, "base64", "invalid_utf8"),
            (b"poison-escapes", escapes, "utf-8", "invalid_json"),
        ):
            dead = letters[key]
            assert dead.error.code == code
            assert dead.payload_encoding == encoding and dead.payload_truncated
            assert dead.payload_size == len(original)
            assert dead.payload_sha256 == hashlib.sha256(original).hexdigest()
            assert dead_letter_key(key) == key

        svc.stop()  # committed past the poison: the restart neither crashes nor re-raises anything
        svc.start()
        late = uid("late")
        svc.send_survey(survey(late, nps=0))
        assert len(svc.alerts_for(late, 1)) == 1
        assert len(svc.alerts_for(key_account, 1)) == 1
        assert "Traceback" not in svc.log.read_text(errors="replace")
    finally:
        svc.close()
