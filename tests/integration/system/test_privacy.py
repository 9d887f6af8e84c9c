"""No customer data and no secret in what operators see: the logs and /metrics of a full run.

A worker, the notifier (webhook and Slack to a local receiver) and the inbox run on generated
traffic with comments, e-mail addresses and key accounts, plus malformed records, an API call
with a token and a failed login. Then every log line they wrote (INFO) and every /metrics page
is searched for every customer id, comment text, e-mail address and secret of the run; and
every socket the three listen on is on the loopback interface.
"""

from __future__ import annotations

import base64
import re
import urllib.error
import urllib.parse
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest

from stream.inbox.auth import hash_password, hash_token
from stream.tools.brokers import LocalBroker, free_port
from stream.tools.generate import Generator, Mix
from tests.support.factories import survey, ticket
from tests.support.receivers import HttpReceiver
from tests.support.services import Process, Service, inbox_process, listening

pytestmark = pytest.mark.integration
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"privacy-test-secret-32-bytes-ok!").decode()
TOKEN = "crm-token-privacy-0123456789abcdef"
PASSWORD = "sam-password-privacy-7"
EMAIL = "jane.doe.private@example.org"
SECRET_COMMENT = "my neighbour Ingrid Svensson at 12 Elm Road still has no refund"


def get(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> int:
    request = urllib.request.Request(url, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def page(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return str(resp.read().decode())


def test_logs_and_metrics_of_a_full_run_carry_no_customer_data_or_secret(
    kafka: LocalBroker, tmp_path: Path
) -> None:
    receiver = HttpReceiver(secrets=[WEBHOOK_SECRET])
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f"""
default_queue = "triage"

[destinations.crm]
kind = "webhook"
url = "{receiver.url("/crm")}"
secrets_env = "CRM_SECRETS"
types = ["recovery_alert", "escalation"]

[destinations.team-slack]
kind = "slack"
url_env = "SLACK_URL"

[[notify]]
name = "everything"
destinations = ["crm", "team-slack"]
"""
    )
    users = tmp_path / "users.toml"
    users.write_text(
        f"""
[users.sam]
password_hash = "{hash_password(PASSWORD)}"
queues = ["billing", "triage"]

[tokens.crm]
token_sha256 = "{hash_token(TOKEN)}"
queues = ["billing", "triage"]
"""
    )
    svc = Service(kafka, tmp_path, routing_rules=str(rules))
    notifier_port, inbox_port = free_port(), free_port()
    notifier = Process(
        svc,
        ["notifier"],
        "notifier",
        SURVEY_ALERTS_NOTIFIER_WEB_PORT=str(notifier_port),
        CRM_SECRETS=WEBHOOK_SECRET,
        SLACK_URL=receiver.url("/slack-hook-T000/B000/XXXXXXXX"),
    )
    inbox = inbox_process(svc, tmp_path / "inbox.db", users, inbox_port)
    try:
        svc.start()
        notifier.start()
        inbox.start()
        gen = Generator(
            seed=31,
            customers=300,
            start=datetime.now(UTC) - timedelta(hours=3),
            step_s=2,
            mix=Mix(malformed_rate=0.02, edit_rate=0.03),
        )
        messages = list(gen.messages(3000))
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        for m in messages:
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
        # a key account's detractor whose comment names people and an address, and an e-mail
        # address where a customer id goes; and a malformed record quoting both
        vip = "cust-privacy-vip-0001"
        svc.send_ticket(
            ticket(
                vip, "t-priv-1", "created", team="billing", customer_tier="platinum", account_value=250_000.0
            )
        )
        svc.send_survey(survey(vip, nps=1, ticket_id="t-priv-1", comment=SECRET_COMMENT))
        svc.send_survey(survey(EMAIL, nps=2, comment=f"write to {EMAIL}"))
        svc.send(svc.settings.survey_responses_topic, f'{{"customer_id": "{EMAIL}", "oops'.encode(), b"x")
        svc.producer.flush()

        svc.alerts_for(vip, 1)
        svc.alerts_for(EMAIL, 1)
        receiver.wait("/crm", 20, timeout_s=120)
        base = f"http://127.0.0.1:{inbox_port}"
        # a CRM reads the API with its token; someone fails to log in with a real password's
        # neighbour, and logs in
        assert get(base + "/api/v1/alerts?queue=billing", headers={"Authorization": f"Bearer {TOKEN}"}) == 200
        assert get(base + "/api/v1/alerts", headers={"Authorization": f"Bearer {TOKEN}x"}) == 401
        form = urllib.parse.urlencode({"username": "sam", "password": PASSWORD + "-wrong"}).encode()
        get(base + "/login", data=form)

        pages = {
            "worker /metrics": svc.metrics(),
            "notifier /metrics": page(f"http://127.0.0.1:{notifier_port}/metrics"),
            "inbox /metrics": page(base + "/metrics"),
        }
        logs = {
            "worker log": svc.tail(1_000_000),
            "notifier log": notifier.logs(),
            "inbox log": inbox.logs(),
        }
        assert "INFO" in logs["worker log"]  # the logs are at INFO, and say things

        customers = {vip, EMAIL}
        comments = {SECRET_COMMENT}
        for m in messages:
            try:
                doc = orjson.loads(m.value)
            except orjson.JSONDecodeError:
                continue
            if isinstance(doc, dict) and isinstance(doc.get("customer_id"), str):
                customers.add(doc["customer_id"])
            if isinstance(doc, dict) and isinstance(doc.get("comment"), str) and len(doc["comment"]) >= 12:
                comments.add(doc["comment"])
        secrets = {WEBHOOK_SECRET, TOKEN, PASSWORD, "slack-hook-T000/B000/XXXXXXXX"}
        assert len(customers) > 100 and len(comments) > 3

        found = []
        for where, text in {**pages, **logs}.items():
            for value in sorted(customers | comments | secrets | {EMAIL, "Ingrid", "Elm Road"}):
                if value in text:
                    line = next(line for line in text.splitlines() if value in line)
                    found.append(f"{where}: {value!r} in {line[:300]!r}")
            for address in re.findall(r"[\w.+-]+@[\w-]+\.[\w.]+", text):
                if not address.endswith(("@example.com",)):  # the service's own sender address
                    found.append(f"{where}: e-mail address {address!r}")
        assert not found, "\n".join(found[:40])

        # and every HTTP endpoint of the three listens on the loopback interface only
        for proc in (svc.proc, notifier.proc, inbox.proc):
            assert proc is not None
            addresses = listening(proc.pid)
            assert addresses, "no listening socket found"
            assert {host for host, _ in addresses} <= {"127.0.0.1", "::1"}, addresses
    finally:
        inbox.stop()
        notifier.stop()
        svc.close()
        receiver.close()
