"""The digest from stored data equals a reference computed from the generated input and the topics.

A generated stream goes through a worker; the inbox's read model stores alerts, follow-up
events, escalations and window snapshots; ``survey-alerts digest`` reports the period. Its
figures are compared with a reference computed from the raw input (scores, by the windows'
brute force) and from the output topics (alerts, follow-ups, escalations). The HTML is opened
in headless Chromium; a PNG and a PDF are kept in test-artifacts/.
"""

from __future__ import annotations

import base64
import json
import statistics
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from selenium.webdriver.common.by import By

from schemas.inputs import SurveyResponse, TicketEvent
from schemas.validate import Rejection, parse
from stream.inbox.auth import hash_password
from stream.tools.brokers import LocalBroker, free_port
from stream.tools.generate import Generator
from tests.support.browser import ARTIFACTS, chromium, screenshot
from tests.support.factories import uid
from tests.support.reference import reference
from tests.support.services import Process, Service, inbox_process, wait_for

pytestmark = pytest.mark.integration
ROOT_CAUSES = ["late courier", "billing error", "late courier", "Late courier ", "app crash"]


def valid(raw: bytes, model: Any) -> dict[str, Any] | None:
    return None if isinstance(parse(model, raw), Rejection) else orjson.loads(raw)


def digest(svc: Service, db: Path, until: str, form: str, out: Path | None = None) -> str:
    env = {**svc.env, "SURVEY_ALERTS_INBOX_DB": str(db)}
    # while the read model fills, a period may have no data yet (an error without --allow-empty)
    args = [sys.executable, "-m", "stream.cli", "digest", "--until", until, "--format", form, "--allow-empty"]
    if out is not None:
        args += ["--out", str(out)]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def digest_fails(svc: Service, db: Path) -> str:
    env = {**svc.env, "SURVEY_ALERTS_INBOX_DB": str(db)}
    args = [sys.executable, "-m", "stream.cli", "digest", "--format", "json"]
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stdout + done.stderr
    return done.stderr


def listening_on(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
            return r.status == 200
    except OSError:
        return False


def digest_stack(kafka: LocalBroker, tmp_path: Path) -> tuple[Service, Process, Path, int]:
    """A worker (snapshots every second, scores from 5 answers) and an inbox feeding ``inbox.db``."""
    svc = Service(kafka, tmp_path, snapshot_interval_s="1", min_responses="5", sla_tier_factors="{}")
    users = tmp_path / "users.toml"
    users.write_text(f'[users.x]\npassword_hash = "{hash_password("x")}"\nqueues = ["*"]\n')
    db = tmp_path / "inbox.db"
    port = free_port()
    return svc, inbox_process(svc, db, users, port), db, port


def test_the_digest_equals_a_reference_and_reads_well(kafka: LocalBroker, tmp_path: Path) -> None:
    svc, inbox, db, port = digest_stack(kafka, tmp_path)
    try:
        svc.start()
        # the digest only reads the read model, which the inbox creates
        no_data = digest_fails(svc, db)
        assert "has no data yet: the inbox creates and feeds it" in no_data and not db.exists()
        inbox.start()
        wait_for(lambda: listening_on(port), 60, "the inbox to answer")
        gen = Generator(seed=33, customers=250, start=datetime.now(UTC) - timedelta(hours=5), step_s=4)
        messages = list(gen.messages(3000))
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        for m in messages:
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
        svc.producer.flush()
        raised = svc.read(svc.settings.recovery_alerts_topic, lambda rs: len(rs) >= 60)
        followed = [orjson.loads(r.value) for r in raised[:12]]
        stamp = datetime.now(UTC)
        for i, alert in enumerate(followed):  # contact 12, resolve 5 of them with root causes
            at = (stamp + timedelta(minutes=i)).isoformat().replace("+00:00", "Z")
            actions = [
                {
                    "action_id": uid("act"),
                    "alert_id": alert["alert_id"],
                    "type": "contacted",
                    "actor": "sam",
                    "at": at,
                }
            ]
            if i < len(ROOT_CAUSES):
                actions.append(
                    {
                        "action_id": uid("act"),
                        "alert_id": alert["alert_id"],
                        "type": "resolved",
                        "actor": "sam",
                        "at": at,
                        "root_cause": ROOT_CAUSES[i],
                    }
                )
            for action in actions:
                svc.send(
                    svc.settings.followup_actions_topic, orjson.dumps(action), alert["alert_id"].encode()
                )

        surveys = [
            d for m in messages if m.stream == "survey" and (d := valid(m.value, SurveyResponse))
        ] + svc.probes
        tickets = [d for m in messages if m.stream == "ticket" and (d := valid(m.value, TicketEvent))]
        ref = reference(surveys, tickets, svc.settings.window_specs())
        until = (datetime.now(UTC) + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
        # a period holds what happened in it: alerts and escalations by their cause's event time (the
        # generator dates some surveys days late, so a few of them belong to the period before)
        end = datetime.fromisoformat(until).timestamp()
        start = end - 7 * 86400

        def in_period(doc: dict[str, Any]) -> bool:
            return start <= datetime.fromisoformat(doc["cause_at"]).timestamp() < end

        followed_now = [a for a in followed if in_period(a)]
        causes_now = Counter(
            ROOT_CAUSES[i].strip().lower() for i, a in enumerate(followed[: len(ROOT_CAUSES)]) if in_period(a)
        )

        reference_drivers = {
            key.split(":", 1)[1]
            for key, window, metric in ref
            if key.startswith("category:") and window == "7d" and metric == "nps"
        }

        why: list[str] = []

        def settled() -> dict[str, Any] | None:
            got = json.loads(digest(svc, db, until, "json"))
            goals = {g["metric"]: g for g in got["goals"]}
            resolved = sum(n for _, n in got["root_causes"])
            nps = goals["nps"]["value"]
            same = nps is not None and abs(nps - ref[("overall:all", "7d", "nps")]) < 1e-6
            contacted = goals["time_to_contact_seconds"]["n"] == len(followed_now)
            # every category's snapshot in too (they come apart from the overall one)
            categories = {r["driver"] for r in got["risks"]} == reference_drivers
            done = resolved == sum(causes_now.values())
            why[:] = [f"nps {same}, resolved {done}, contacted {contacted}, categories {categories}"]
            if not (same and done and contacted and categories):
                return None
            # the escalations routed so far are in too (their topics are consumed apart from the rest)
            routed = sum(in_period(orjson.loads(r.value)) for r in svc.read_all(svc.escalation_topics()))
            escalated = sum(n for _, n, _, _ in got["escalations_by_team"])
            why[:] = [f"escalations: digest {escalated}, topics {routed}"]
            return dict(got) if escalated == routed > 0 else None

        deadline = time.monotonic() + 240  # the read model catches up with the last snapshots
        got = None
        while got is None and time.monotonic() < deadline:
            got = settled()
            if got is None:
                time.sleep(2)
        assert got is not None, f"the digest never matched the reference ({why}): " + digest(
            svc, db, until, "markdown"
        )

        # what the topics say: alerts, their follow-up events, escalations
        alerts = [orjson.loads(r.value) for r in svc.read_all([svc.settings.recovery_alerts_topic])]
        customer_alerts = [a for a in alerts if a["kind"] != "followup_overdue" and in_period(a)]
        events = [orjson.loads(r.value) for r in svc.read_all([svc.settings.followup_events_topic])]
        escalations = [
            e for r in svc.read_all(svc.escalation_topics()) if in_period(e := orjson.loads(r.value))
        ]
        status: dict[str, str] = {}
        first_contact: dict[str, float] = {}
        for e in sorted(events, key=lambda e: e["seq"]):  # the worker's order says the status
            status[e["alert_id"]] = e["status"]
        for e in sorted(events, key=lambda e: e["at"]):
            if e["type"] == "contacted":
                first_contact.setdefault(e["alert_id"], datetime.fromisoformat(e["at"]).timestamp())
        counted = [a for a in customer_alerts if status.get(a["alert_id"], "open") != "withdrawn"]
        # time to contact: from the cause (the survey's submitted_at) to the first contact's `at`
        caused = {a["alert_id"]: datetime.fromisoformat(a["cause_at"]).timestamp() for a in customer_alerts}
        waits = [max(0.0, first_contact[a] - caused[a]) for a in first_contact if a in caused]

        goals = {g["metric"]: g for g in got["goals"]}
        assert goals["nps"]["n"] == ref[("overall:all", "7d", "nps#n")]
        for metric in ("csat", "ces"):
            assert goals[metric]["value"] == pytest.approx(ref[("overall:all", "7d", metric)], abs=1e-6)
            assert goals[metric]["n"] == ref[("overall:all", "7d", f"{metric}#n")]
        assert goals["nps"]["change"] is None  # nothing before this period: no change claimed
        assert got["alerts"] == len(customer_alerts)
        assert got["close_rate"] == pytest.approx(
            sum(status.get(a["alert_id"]) == "resolved" for a in counted) / len(counted)
        )
        assert got["median_contact_s"] == pytest.approx(statistics.median(waits), abs=1e-3)
        assert dict(got["root_causes"]) == dict(causes_now) and causes_now
        assert {t: n for t, n, _, _ in got["escalations_by_team"] if n} == dict(
            Counter(e.get("team") or "-" for e in escalations)
        )
        drivers = {
            k.split(":", 1)[1] for (k, w, m) in ref if k.startswith("category:") and w == "7d" and m == "nps"
        }
        contacts = sum(ref[(f"category:{c}", "7d", "nps#n")] for c in drivers)
        detractors = sum(ref[(f"category:{c}", "7d", "nps#detractors")] for c in drivers)
        assert {r["driver"] for r in got["risks"]} == drivers
        for r in got["risks"]:
            assert r["contact_share"] == pytest.approx(
                ref[(f"category:{r['driver']}", "7d", "nps#n")] / contacts
            )
            assert r["detractor_share"] == pytest.approx(
                ref[(f"category:{r['driver']}", "7d", "nps#detractors")] / detractors
            )

        text = digest(svc, db, until, "markdown")
        for heading in (
            "## Summary",
            "## Performance against goals",
            "## Top risks",
            "## Escalation review",
            "## What recovery costs",
            "## Actions and asks",
        ):
            assert heading in text
        top, count = causes_now.most_common(1)[0]
        assert f"{goals['nps']['value']:.1f}" in text and f"{top} ({count})" in text

        page = tmp_path / "digest.html"
        digest(svc, db, until, "html", page)
        html = page.read_text()
        assert (
            "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "<script" not in html
        )
        driver = chromium()
        try:
            driver.get(page.as_uri())
            headings = [h.text for h in driver.find_elements(By.TAG_NAME, "h2")]
            assert headings == [
                "Summary",
                "Performance against goals",
                "Top risks",
                "Escalation review",
                "What recovery costs",
                "Actions and asks",
            ]
            assert len(driver.find_elements(By.CSS_SELECTOR, "svg.chart")) == 2
            body = driver.find_element(By.TAG_NAME, "body").text
            assert (
                f"{goals['nps']['value']:.1f}" in body and "share of detractors" in body.lower()
            ) or "detractors" in body
            screenshot(driver, "digest")
            pdf = driver.print_page()
            ARTIFACTS.mkdir(parents=True, exist_ok=True)
            (ARTIFACTS / "digest.pdf").write_bytes(base64.b64decode(pdf))
        finally:
            driver.quit()
        assert (ARTIFACTS / "digest.pdf").read_bytes().startswith(b"%PDF")
    finally:
        inbox.stop()
        svc.close()
