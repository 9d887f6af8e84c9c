"""A fortnight that reached the service late reads like it happened: the digest after a backfill.

Two weeks of traffic with event times 14 to 0 days ago reach a running worker after the fact:
the first week in one burst, the second while the worker is stopped (it catches up on restart).
Agents record their calls afterwards, dated when they called (hours after each survey, so before
the alert was raised). The digest of each week is compared with a reference computed from the
generated input (which week a survey belongs to, by its ``submitted_at``; when each call was)
and the output topics (which alerts and escalations were raised). The page of the backfilled
week is opened in headless Chromium, and every number on it must be the JSON's.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.webdriver.common.by import By

from alerts.digest import money
from schemas.inputs import SurveyResponse, TicketEvent
from stream.tools.brokers import LocalBroker
from stream.tools.generate import Generator
from tests.integration.digest.test_digest import digest, digest_stack, listening_on, valid
from tests.support.browser import chromium, screenshot
from tests.support.factories import uid
from tests.support.reference import reference
from tests.support.services import Service, wait_for

pytestmark = pytest.mark.integration
DAY = 86400.0
CALLED_AFTER_S = 10_200  # every call: 2 h 50 min after the survey
CAUSES = ["late courier", "billing error", "app crash"]


def epoch(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def stamp(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def test_a_backfilled_fortnight_reads_like_it_happened(kafka: LocalBroker, tmp_path: Path) -> None:
    svc, inbox, db, port = digest_stack(kafka, tmp_path)
    try:
        svc.start()
        inbox.start()
        wait_for(lambda: listening_on(port), 60, "the inbox to answer")
        until = float(int(time.time()) // 3600 * 3600)  # the end of the second week, on the hour
        weeks = [(until - 14 * DAY, until - 7 * DAY), (until - 7 * DAY, until)]
        gen = Generator(
            seed=71, customers=160, start=datetime.fromtimestamp(weeks[0][0] + 600, UTC), step_s=420
        )
        messages = []
        for m in gen.messages(100_000):
            if gen.clock.timestamp() >= until - 1800:
                break
            messages.append(m)
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        surveys = {
            d["response_id"]: d
            for m in messages
            if m.stream == "survey" and (d := valid(m.value, SurveyResponse))
        }
        tickets = [d for m in messages if m.stream == "ticket" and (d := valid(m.value, TicketEvent))]
        half = next(i for i, m in enumerate(messages) if gen_time(m) >= weeks[1][0])

        # week one in one burst, to a running worker
        for m in messages[:half]:
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
        svc.producer.flush()
        first = wait_for(lambda: settle(svc), 120, "the first week's alerts")
        # week two while the worker is stopped: it catches up when it starts again
        svc.stop()
        for m in messages[half:]:
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
        svc.producer.flush()
        svc.start(ready=False)
        raised = wait_for(lambda: (got := settle(svc)) and len(got) > len(first) and got, 180, "the catch-up")

        def cause(alert: dict[str, Any]) -> float:  # from the input: when the customer answered
            return epoch(surveys[alert["response_id"]]["submitted_at"])

        customer_alerts = [
            a for a in raised if a["kind"] != "followup_overdue" and a.get("response_id") in surveys
        ]
        # calls recorded afterwards, dated when they happened: some alerts of each week contacted,
        # some of those resolved with a root cause
        contacted: dict[str, float] = {}
        resolved: dict[str, str] = {}
        for week in weeks:
            mine = [a for a in customer_alerts if week[0] <= cause(a) < week[1]][:9]
            for i, a in enumerate(mine):
                called = cause(a) + CALLED_AFTER_S
                contacted[a["alert_id"]] = called
                actions = [{"type": "contacted", "at": stamp(called)}]
                if i < 6:
                    resolved[a["alert_id"]] = CAUSES[i % len(CAUSES)]
                    actions.append(
                        {"type": "resolved", "at": stamp(called + 600), "root_cause": CAUSES[i % 3]}
                    )
                for action in actions:
                    doc = {"action_id": uid("act"), "alert_id": a["alert_id"], "actor": "sam", **action}
                    svc.send(svc.settings.followup_actions_topic, orjson.dumps(doc), a["alert_id"].encode())
        surveys.update({p["response_id"]: p for p in svc.probes})  # the readiness probes are surveys too
        # what the worker raised in the end (a survey held for its ticket is released a little later)
        time.sleep(svc.settings.ticket_wait_s + 2)
        raised = wait_for(lambda: settle(svc), 60, "the last alerts")
        customer_alerts = [
            a for a in raised if a["kind"] != "followup_overdue" and a.get("response_id") in surveys
        ]
        escalations = [orjson.loads(r.value) for r in svc.read_all(svc.escalation_topics())]
        by_alert = {a["alert_id"]: a for a in customer_alerts}
        escalated_at = {e["ticket_id"]: epoch(e["occurred_at"]) for e in tickets if e["type"] == "escalated"}

        def escalation_cause(e: dict[str, Any]) -> float | None:
            if e["source"] == "followup_overdue":
                return None
            if e["source"] == "ticket_escalated":
                return escalated_at.get(e["ticket_id"])
            alert = by_alert.get(e.get("alert_id") or "")
            return cause(alert) if alert else None

        reports = []
        for start, end in weeks:
            alerts = [a for a in customer_alerts if start <= cause(a) < end]
            escalated = [
                e for e in escalations if (t := escalation_cause(e)) is not None and start <= t < end
            ]
            resolved_here = [a for a in alerts if a["alert_id"] in resolved]
            want_causes = Counter(resolved[a["alert_id"]] for a in resolved_here)

            want = (
                len(alerts),
                len(resolved_here),
                sum(a["alert_id"] in contacted for a in alerts),
                len(escalated),
            )

            seen: tuple[int, int, int, int] | None = None
            deadline = time.monotonic() + 180  # the read model catches up with the topics
            while True:
                got = json.loads(digest(svc, db, stamp(end), "json"))
                resolved_n = sum(n for _, n in got["root_causes"])
                escalated_n = sum(n for _, n, _, _ in got["escalations_by_team"])
                seen = (got["alerts"], resolved_n, got["contacted"], escalated_n)
                if seen == want:
                    break
                assert time.monotonic() < deadline, f"week to {stamp(end)}: digest {seen} != reference {want}"
                time.sleep(2)
            assert got["alerts"] == len(alerts) > 20
            # the worker's order of each alert's follow-up events (seq) says its status
            followed = [orjson.loads(r.value) for r in svc.read_all([svc.settings.followup_events_topic])]
            status = {e["alert_id"]: e["status"] for e in sorted(followed, key=lambda e: e["seq"])}
            assert dict(got["root_causes"]) == dict(want_causes)
            # time to contact between event times: the survey's submitted_at to the call's at
            assert got["median_contact_s"] == pytest.approx(CALLED_AFTER_S)
            counted = [a for a in alerts if status.get(a["alert_id"]) != "withdrawn"]  # nobody had to call
            assert got["close_rate"] == pytest.approx(len(resolved_here) / len(counted))
            assert {t: n for t, n, _, _ in got["escalations_by_team"] if n} == dict(
                Counter(e.get("team") or "-" for e in escalated)
            )
            per_customer = Counter(e["customer_id"] for e in escalated)
            assert got["repeat_customers"] == sum(n >= 2 for n in per_customer.values())
            assert got["overdue_notices"] == 0  # the SLA runs on the worker's clock: hours from now
            reports.append((got, alerts))

        # the second week's scores: the rolling window as of its end, equal to the brute force
        ref = reference(list(surveys.values()), tickets, svc.settings.window_specs())
        last = {g["metric"]: g for g in reports[1][0]["goals"]}
        assert last["nps"]["value"] == pytest.approx(ref[("overall:all", "7d", "nps")])
        assert last["nps"]["n"] == ref[("overall:all", "7d", "nps#n")]
        detractors = [a for a in reports[1][1] if a["kind"] == "detractor"]
        key = {
            a["customer_id"]: a["customer"]
            for a in detractors
            if a["customer"].get("tier") in svc.settings.key_tiers
            or (a["customer"].get("account_value") or 0) >= svc.settings.key_account_value
        }
        assert sum(r["key_accounts"] for r in reports[1][0]["risks"]) == len(
            {(a["category"], cid) for a in detractors if (cid := a["customer_id"]) in key}
        )

        # the backfilled week as an executive sees it: every figure on the page is the JSON's
        week_one, _ = reports[0]
        page = tmp_path / "week-one.html"
        digest(svc, db, stamp(weeks[0][1]), "html", page)
        driver = chromium()
        try:
            driver.get(page.as_uri())
            body = driver.find_element(By.TAG_NAME, "body").text
            screenshot(driver, "digest-backfilled-week")
        finally:
            driver.quit()
        assert f"{week_one['close_rate']:.0%} of {week_one['alerts']} follow-ups resolved" in body
        assert f"median time to contact {CALLED_AFTER_S / 3600:.1f} h" in body, body
        for cause_name, n in week_one["root_causes"]:
            assert f"{cause_name} ({n})" in body
        for team, n, alerts_n, _ in week_one["escalations_by_team"]:
            assert any(
                line.split() == [team, str(n), str(alerts_n), f"{n / alerts_n:.2f}"]
                for line in body.splitlines()
                if alerts_n
            )
        for r in week_one["risks"][:5]:  # the page lists the top five
            assert (
                f"{r['key_accounts']} key accounts, {money(r['value_at_risk'])} of account value at risk"
                in body
            )
    finally:
        inbox.stop()
        svc.close()


def gen_time(m: Any) -> float:
    doc = orjson.loads(m.value)
    return epoch(doc.get("submitted_at") or doc.get("occurred_at"))


def settle(svc: Service) -> list[dict[str, Any]] | None:
    """Every alert raised so far, once two reads a few seconds apart agree."""
    once = svc.read_all([svc.settings.recovery_alerts_topic], settle_s=2)
    again = svc.read_all([svc.settings.recovery_alerts_topic], settle_s=2)
    return [orjson.loads(r.value) for r in again] if once and len(once) == len(again) else None
