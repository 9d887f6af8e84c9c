"""The notifier on Apache Kafka: every alert reaches a real receiver at least once, never silently lost.

A worker raises alerts; the notifier (its own process and consumer group) delivers them to
a local HTTP receiver that verifies Standard Webhooks signatures with the independent
``standardwebhooks`` package and plays Slack and Teams, and to a real SMTP server
(aiosmtpd, STARTTLS and AUTH) whose mails are parsed with the ``email`` package.
"""

from __future__ import annotations

import base64
import re
import signal
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import trustme

from alerts.notify.render import delivery_id
from schemas.outputs import Escalation, RecoveryAlert
from stream.tools.brokers import LocalBroker, free_port
from tests.support.factories import survey, ticket, uid
from tests.support.receivers import Answer, HttpReceiver, SmtpReceiver
from tests.support.services import Process, Service

pytestmark = pytest.mark.integration

OLD, NEW = (
    "whsec_" + base64.b64encode(b"old-secret-32-bytes-long-enough!").decode(),
    "whsec_" + base64.b64encode(b"new-secret-32-bytes-long-enough!").decode(),
)
FAST_RETRIES = {"notify_backoff_base_s": "0.3", "notify_backoff_max_s": "1"}


@pytest.fixture
def receiver() -> Iterator[HttpReceiver]:
    r = HttpReceiver(secrets=[OLD, NEW])
    yield r
    r.close()


def notifier_for(svc: Service, env: dict[str, str]) -> Process:
    port = free_port()
    n = Process(
        svc,
        ["notifier"],
        "notifier",
        SURVEY_ALERTS_NOTIFIER_WEB_PORT=str(port),
        **{f"SURVEY_ALERTS_{k.upper()}": v for k, v in FAST_RETRIES.items()},
        **env,
    )
    n.port = port  # type: ignore[attr-defined]
    return n


def metrics(n: Process) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{n.port}/metrics", timeout=10) as resp:  # type: ignore[attr-defined]
        return str(resp.read().decode())


def counter(text: str, name: str, **labels: str) -> float:
    want = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        m = re.match(rf"{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == want:
            return float(m.group(2))
    return 0.0


def test_alerts_reach_webhook_slack_teams_and_email(
    kafka: LocalBroker, tmp_path: Path, receiver: HttpReceiver
) -> None:
    ca = trustme.CA()
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    smtp = SmtpReceiver("alerts", "s3cret-pass", ca)
    teams_url = tmp_path / "teams-url"
    teams_url.write_text(receiver.url("/teams") + "\n")
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f"""
default_queue = "triage"
notify_default = ["crm"]

[destinations.crm]
kind = "webhook"
url = "{receiver.url("/crm")}"
secrets_env = "CRM_SECRETS"
types = ["recovery_alert", "escalation"]

[destinations.billing-slack]
kind = "slack"
url_env = "SLACK_URL"

[destinations.ops-teams]
kind = "teams"
url_file = "{teams_url}"

[destinations.leads]
kind = "email"
smtp_host = "127.0.0.1"
smtp_port = {smtp.port}
security = "starttls"
username = "alerts"
password_env = "SMTP_PASSWORD"
sender = "survey-alerts@example.com"
to = ["leads@example.com"]
ca_file = "{ca_file}"

[[notify]]
name = "everything-to-the-crm"
destinations = ["crm"]

[[notify]]
name = "alerts-to-people"
destinations = ["billing-slack", "ops-teams", "leads"]
match = {{ type = "recovery_alert" }}
"""
    )
    svc = Service(kafka, tmp_path, routing_rules=str(rules), inbox_url="https://inbox.example.com")
    n = notifier_for(
        svc,
        {
            "CRM_SECRETS": f"{OLD} {NEW}",  # two secrets while rotating: both sign
            "SLACK_URL": receiver.url("/slack"),
            "SMTP_PASSWORD": "s3cret-pass",
            "SURVEY_ALERTS_EMAIL_DOMAIN": "alerts.example.com",
        },
    )
    try:
        n.start()
        svc.start()
        key, plain = uid("key"), uid("cust")
        svc.send_ticket(
            ticket(key, "t-1", "created", team="billing", customer_tier="gold", account_value=90_000.0)
        )
        svc.send_survey(
            survey(key, "r-1", nps=2, ticket_id="t-1", comment="Refund <b>still</b> missing & no call")
        )
        svc.send_survey(survey(plain, "r-2", ces=1, team="returns"))
        (key_alert,) = svc.alerts_for(key, 1)
        (plain_alert,) = svc.alerts_for(plain, 1)
        mine = {key_alert["alert_id"], plain_alert["alert_id"]}

        def ours(path: str) -> list[Any]:
            return [
                r
                for r in receiver.received(path)
                if (r.json.get("data") or {}).get("alert_id") in mine
                or key_alert["alert_id"] in r.body.decode()
                or plain_alert["alert_id"] in r.body.decode()
            ]

        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and (
            len(ours("/crm")) < 3 or len(ours("/slack")) < 2 or len(ours("/teams")) < 2
        ):
            time.sleep(0.2)
        crm = ours("/crm")
        assert len(crm) == 3, n.logs()[-3000:]  # two alerts and the key account's escalation
        for r in crm:
            assert r.verified == [True, True], "each active secret's signature verifies"
            body = r.json
            assert set(body) == {"type", "timestamp", "data"} and body["type"] in (
                "recovery_alert",
                "escalation",
            )
            model = RecoveryAlert if body["type"] == "recovery_alert" else Escalation
            model.model_validate(body["data"])
            assert r.headers["webhook-id"] == delivery_id(body["type"], body["data"], "crm")
            assert abs(int(r.headers["webhook-timestamp"]) - time.time()) < 120

        (slack,) = [r for r in ours("/slack") if key_alert["alert_id"] in r.body.decode()]
        blocks = slack.json["blocks"]
        assert blocks[0]["type"] == "header" and "Detractor" in blocks[0]["text"]["text"]
        text = orjson.dumps(blocks).decode()
        assert "NPS 2" in text and "gold" in text and "$90,000/yr" in text
        assert "Refund &lt;b&gt;still&lt;/b&gt; missing &amp; no call" in text  # escaped customer text
        assert f"https://inbox.example.com/alerts/{key_alert['alert_id']}" in text
        assert "webhook-signature" not in slack.headers  # Slack and Teams are not signed

        teams = [r for r in ours("/teams") if plain_alert["alert_id"] in r.body.decode()]
        card = teams[0].json["attachments"][0]["content"]
        assert card["type"] == "AdaptiveCard" and "High effort" in orjson.dumps(card).decode()

        mails = smtp.wait(2)
        by_alert = {m["X-Survey-Alerts-Delivery"]: m for m in mails}
        mail = by_alert[delivery_id("recovery_alert", key_alert, "leads")]
        assert (
            mail["Message-ID"] == f"<{delivery_id('recovery_alert', key_alert, 'leads')}@alerts.example.com>"
        )
        assert mail["Subject"].startswith("[CRITICAL] Detractor") and mail["To"] == "leads@example.com"
        assert mail.is_multipart() and {p.get_content_type() for p in mail.iter_parts()} == {
            "text/plain",
            "text/html",
        }
        html = mail.get_body(("html",)).get_content()  # type: ignore[union-attr]
        assert "Refund &lt;b&gt;still&lt;/b&gt; missing &amp; no call" in html

        text = metrics(n)
        probes = len(svc.probes)  # the worker's readiness probes are detractors too
        assert (
            counter(text, "survey_alerts_notifications_total", destination="crm", outcome="delivered")
            == 3 + probes
        )
        assert (
            counter(text, "survey_alerts_notification_latency_seconds_count", destination="leads")
            == 2 + probes
        )
        log = svc.read(svc.settings.notification_deliveries_topic, lambda rs: len(rs) >= 9)
        statuses = {(orjson.loads(r.value)["destination"], orjson.loads(r.value)["status"]) for r in log}
        assert {
            ("crm", "delivered"),
            ("billing-slack", "delivered"),
            ("ops-teams", "delivered"),
            ("leads", "delivered"),
        } <= statuses
        everything = n.logs() + svc.tail(10_000)
        for secret in ("s3cret-pass", OLD, NEW, receiver.url("/slack")):
            assert secret not in everything, "a secret was logged"
    finally:
        n.stop()
        svc.close()
        smtp.close()


def webhook_rules(tmp_path: Path, receiver: HttpReceiver, paths: dict[str, str]) -> Path:
    """A rules file with one signed webhook destination per path, every alert to each."""
    lines = ['default_queue = "triage"', f"notify_default = {orjson.dumps(list(paths)).decode()}"]
    for name, path in paths.items():
        lines += [
            f"[destinations.{name}]",
            'kind = "webhook"',
            f'url = "{receiver.url(path)}"',
            'secrets_env = "HOOK_SECRET"',
            "timeout_s = 1.5",
            'types = ["recovery_alert"]',  # (ops alerts, a destination disabled say, would share the plans)
        ]
    rules = tmp_path / "rules.toml"
    rules.write_text("\n".join(lines) + "\n")
    return rules


def test_failures_are_retried_disabled_or_dead_lettered(
    kafka: LocalBroker, tmp_path: Path, receiver: HttpReceiver
) -> None:
    paths = {"flaky": "/flaky", "busy": "/busy", "gone": "/gone", "bad": "/bad", "slow": "/slow"}
    svc = Service(kafka, tmp_path, routing_rules=str(webhook_rules(tmp_path, receiver, paths)))
    n = notifier_for(svc, {"HOOK_SECRET": OLD})
    try:
        svc.start()
        n.start()
        for path in paths.values():  # the readiness probes' alerts first, answered 200
            receiver.wait(path, len(svc.probes))
        receiver.plan("/flaky", Answer(500), Answer(503))
        receiver.plan("/busy", Answer(429, {"Retry-After": "2"}, body="slow down"))
        receiver.plan("/gone", then=Answer(410, body="webhook removed"))
        receiver.plan("/bad", then=Answer(400, body="invalid_payload"))
        receiver.plan("/slow", Answer(200, delay_s=3))  # past the 1.5 s timeout: tried again
        cid = uid("cust")
        svc.send_survey(survey(cid, nps=1))
        (alert,) = svc.alerts_for(cid, 1)
        wid = delivery_id("recovery_alert", alert, "flaky")

        def attempts(path: str) -> list[Any]:
            return [r for r in receiver.received(path) if r.json["data"]["alert_id"] == alert["alert_id"]]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            [r.status for r in attempts("/flaky")] == [500, 503, 200]
            and [r.status for r in attempts("/busy")] == [429, 200]
            and len(attempts("/slow")) >= 2
        ):
            time.sleep(0.2)
        flaky = attempts("/flaky")
        seen = [
            (r.json["type"], r.json["data"].get("alert_id"), r.status) for r in receiver.received("/flaky")
        ]
        assert [r.status for r in flaky] == [500, 503, 200], seen
        assert {r.headers["webhook-id"] for r in flaky} == {wid}  # the same id on every retry
        busy = attempts("/busy")
        assert [r.status for r in busy] == [429, 200] and busy[1].at - busy[
            0
        ].at >= 1.9  # Retry-After honoured
        assert len(attempts("/slow")) >= 2

        dead = svc.read(
            svc.settings.notification_dlq_topic,
            lambda rs: {"rejected", "destination_disabled"} <= {orjson.loads(r.value)["code"] for r in rs},
        )
        letters = {orjson.loads(r.value)["destination"]: orjson.loads(r.value) for r in dead}
        assert (
            letters["bad"]["code"] == "rejected" and "invalid_payload" in letters["bad"]["response"]["detail"]
        )
        assert letters["bad"]["response"]["status"] == 400 and letters["bad"]["document"]["alert_id"]
        assert (
            letters["gone"]["code"] == "destination_disabled" and letters["gone"]["response"]["status"] == 410
        )
        ops = svc.read(
            svc.settings.ops_alerts_topic, lambda rs: any(b"destination_disabled" in r.value for r in rs)
        )
        (disabled,) = [orjson.loads(r.value) for r in ops if b"destination_disabled" in r.value]
        assert disabled["destination"] == "gone" and disabled["severity"] == "critical"

        gone_before = len(receiver.received("/gone"))
        other = uid("cust")
        svc.send_survey(survey(other, nps=0))
        svc.alerts_for(other, 1)
        receiver.wait("/bad", gone_before + 1)  # the next alert went out everywhere else ...
        time.sleep(1)
        assert len(receiver.received("/gone")) == gone_before  # ... and not to the disabled destination
        text = metrics(n)
        assert counter(text, "survey_alerts_notification_destination_disabled", destination="gone") == 1
        assert counter(text, "survey_alerts_notification_retries_total", destination="flaky") >= 2
        assert (
            counter(
                text,
                "survey_alerts_notification_dead_letters_total",
                destination="gone",
                code="destination_disabled",
            )
            >= 2
        )
        assert all(
            r.verified == [True, False] for r in receiver.requests
        )  # signed with the one active secret
    finally:
        n.stop()
        svc.close()


def test_a_notifier_killed_while_retrying_delivers_everything_after_a_restart(
    kafka: LocalBroker, tmp_path: Path, receiver: HttpReceiver
) -> None:
    svc = Service(kafka, tmp_path, routing_rules=str(webhook_rules(tmp_path, receiver, {"crm": "/crm"})))
    # retries every second at most, and no limit on attempts: none runs out while the test waits
    n = notifier_for(svc, {"HOOK_SECRET": NEW, "SURVEY_ALERTS_NOTIFY_MAX_ATTEMPTS": "10000"})
    try:
        svc.start()
        n.start()
        early = [uid("early") for _ in range(2)]
        for cid in early:
            svc.send_survey(survey(cid, nps=3))
        early_ids = {svc.alerts_for(cid, 1)[0]["alert_id"] for cid in early}

        def by_alert() -> dict[str, list[Any]]:
            found: dict[str, list[Any]] = {}
            for r in receiver.received("/crm"):
                found.setdefault(r.json["data"]["alert_id"], []).append(r)
            return found

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not early_ids <= set(by_alert()):
            time.sleep(0.1)
        receiver.plan("/crm", then=Answer(500, body="maintenance"))  # from now on: down
        late = [uid("late") for _ in range(6)]
        for cid in late:
            svc.send_survey(survey(cid, nps=1))
        late_ids = {svc.alerts_for(cid, 1)[0]["alert_id"] for cid in late}
        while time.monotonic() < deadline and not late_ids <= set(by_alert()):
            time.sleep(0.1)  # every late alert was tried (and failed) at least once
        assert late_ids <= set(by_alert()), n.logs()[-2000:]
        n.stop(signal.SIGKILL)
        receiver.plan("/crm", then=Answer(200))
        n.start()
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            got = by_alert()
            if all(any(r.status == 200 for r in got.get(a, [])) for a in late_ids | early_ids):
                break
            time.sleep(0.2)
        got = by_alert()
        for alert_id in late_ids | early_ids:
            requests = got[alert_id]
            assert any(r.status == 200 for r in requests), f"{alert_id} never delivered"
            assert len({r.headers["webhook-id"] for r in requests}) == 1  # duplicates are recognisable
        for alert_id in early_ids:  # delivered before the crash: not sent again
            assert [r.status for r in got[alert_id]] == [200]
        duplicates = sum(sum(r.status == 200 for r in got[a]) - 1 for a in late_ids)
        print(f"after the crash: {duplicates} duplicate deliveries of {len(late_ids)} (same webhook-id)")
        assert "Notifier state:" in n.logs() and "deliveries pending" in n.logs()
    finally:
        n.stop()
        svc.close()


def test_a_destination_with_group_s_gets_one_message_per_queue(
    kafka: LocalBroker, tmp_path: Path, receiver: HttpReceiver
) -> None:
    """Alerts of one queue within ``group_s`` arrive as one Slack message listing each of them; a
    failed attempt retries the group; every alert's own delivery is logged as delivered."""
    rules = tmp_path / "rules.toml"
    rules.write_text(
        """
notify_default = ["room"]

[[rules]]
name = "team-queue"
queue = "{team}"

[destinations.room]
kind = "slack"
url_env = "ROOM_URL"
group_s = 3
"""
    )
    svc = Service(kafka, tmp_path, routing_rules=str(rules), inbox_url="https://inbox.example.com")
    n = notifier_for(svc, {"ROOM_URL": receiver.url("/room")})
    try:
        svc.start()
        n.start()
        receiver.wait("/room", 1)  # the readiness probe's alert
        time.sleep(1)
        before = len(receiver.received("/room"))
        receiver.plan("/room", Answer(500))  # the first grouped message fails once
        ids: dict[str, set[str]] = {"billing": set(), "returns": set()}
        customers = [
            (uid("cust"), team) for team, count in (("billing", 6), ("returns", 2)) for _ in range(count)
        ]
        for cid, team in customers:  # within a second: well inside the 3 s
            svc.producer.send(
                svc.settings.survey_responses_topic, orjson.dumps(survey(cid, nps=1, team=team)), cid.encode()
            )
        svc.producer.flush()
        for cid, team in customers:
            (alert,) = svc.alerts_for(cid, 1)
            assert alert["queue"] == team
            ids[team].add(alert["alert_id"])
        everyone = ids["billing"] | ids["returns"]

        def delivered() -> list[Any]:
            return [r for r in receiver.received("/room")[before:] if r.status == 200]

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not all(
            any(i in r.body.decode() for r in delivered()) for i in everyone
        ):
            time.sleep(0.3)
        messages = delivered()
        bodies = [r.body.decode() for r in messages]
        for r in receiver.received("/room")[before:]:
            print("DEBUG", r.status, sorted(i[-6:] for i in everyone if i in r.body.decode()))
        print(
            "DEBUG billing",
            sorted(i[-6:] for i in ids["billing"]),
            "returns",
            sorted(i[-6:] for i in ids["returns"]),
        )
        for team, members in ids.items():  # each queue's alerts in one message, with their links
            (body,) = [b for b in bodies if members & {i for i in everyone if i in b}]
            assert all(f"<https://inbox.example.com/alerts/{i}|open>" in body for i in members), body[:2000]
            assert not (everyone - members) & {i for i in everyone if i in body}
            assert f"{len(members)} alerts in {team}" in body
        assert len(messages) == 2
        assert [r.status for r in receiver.received("/room")[before:]].count(500) == 1

        log = svc.read(
            svc.settings.notification_deliveries_topic,
            lambda rs: (
                {
                    orjson.loads(r.value)["alert_id"]
                    for r in rs
                    if orjson.loads(r.value)["status"] == "delivered"
                }
                >= everyone
            ),
        )
        outcomes = [orjson.loads(r.value) for r in log if orjson.loads(r.value)["alert_id"] in everyone]
        retried = {o["alert_id"] for o in outcomes if o["status"] == "retry"}
        # the failed message was (part of) one queue's; its members went out again with the rest
        assert retried and (retried <= ids["billing"] or retried <= ids["returns"])
        text = metrics(n)
        assert counter(text, "survey_alerts_notification_group_messages_total", destination="room") == 3
        assert counter(text, "survey_alerts_notification_grouped_deliveries_total", destination="room") == (
            len(everyone) + len(retried)
        )
    finally:
        n.stop()
        svc.close()
