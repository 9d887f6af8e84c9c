"""The inbox's JSON API fuzzed against its OpenAPI document with schemathesis, on a live inbox.

Generated requests (valid and invalid) must never get a 500, every answer must match the document
(status code, content type, body schema), and every operation must refuse a request without the
token. (Schema-valid requests may still be refused where a rule depends on the alert: a concession
above its cap needs a note; that one check is left out.) The inbox runs beside a worker on Apache
Kafka with a few real alerts in its read model.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from stream.inbox.auth import hash_password, hash_token
from stream.tools.brokers import LocalBroker, free_port
from tests.integration.inbox.test_inbox import TOKEN, _up, http
from tests.support.factories import survey, uid
from tests.support.services import Service, inbox_process, wait_for

pytestmark = pytest.mark.integration


def test_the_api_answers_every_generated_request_as_its_document_says(
    kafka: LocalBroker, tmp_path: Path
) -> None:
    users = tmp_path / "users.toml"
    users.write_text(
        f'[users.sam]\npassword_hash = "{hash_password("sam-password")}"\nqueues = ["billing"]\n'
        f'[tokens.crm]\ntoken_sha256 = "{hash_token(TOKEN)}"\nqueues = ["billing"]\n'
    )
    svc = Service(kafka, tmp_path)
    port = free_port()
    inbox = inbox_process(svc, tmp_path / "inbox.db", users, port)
    base = f"http://127.0.0.1:{port}"
    try:
        svc.start()
        inbox.start()
        wait_for(lambda: _up(base), 60, "the inbox to answer")
        customers = [uid("cust") for _ in range(3)]
        for i, cid in enumerate(customers):
            svc.send_survey(survey(cid, f"r-{i}", nps=1, team="billing", comment="Waited <b>40</b> minutes"))
        alerts = [svc.alerts_for(cid, 1)[0] for cid in customers]
        auth = {"Authorization": f"Bearer {TOKEN}"}
        wait_for(
            lambda: all(
                http(f"{base}/api/v1/alerts/{a['alert_id']}", headers=auth)[0] == 200 for a in alerts
            ),
            60,
            "the alerts in the read model",
        )
        done = subprocess.run(
            [
                str(Path(sys.executable).parent / "st"),
                "run",
                f"{base}/api/v1/openapi.json",
                "--header",
                f"Authorization: Bearer {TOKEN}",
                "--checks",
                "all",
                # valid by the document yet refused by a rule on the data: a concession above the
                # alert's cap, or in another currency than the caps', needs a note (400 needs_note)
                "--exclude-checks",
                "positive_data_acceptance",
                "--max-examples",
                "25",
                "--seed",
                "7",
                "--no-color",
            ],
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        report = done.stdout[-6000:] + done.stderr[-2000:]
        assert done.returncode == 0, report
        assert "500" not in " ".join(line for line in done.stdout.splitlines() if "Server error" in line)
        assert inbox.alive(), inbox.logs()[-3000:]
    finally:
        inbox.stop()
        svc.close()
