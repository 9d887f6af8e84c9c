"""Concessions from the inbox's resolve form and its API, through the worker, to the digest.

An agent resolves an alert in headless Chromium spending more than the playbook's cap: refused
without a note, accepted with one, flagged in the history. A CRM resolves the rest through the
API with known amounts (one in another currency, which needs a note). The digest's "What recovery
costs" and `survey-alerts playbook suggest` are compared with a reference computed from those
amounts.
"""

from __future__ import annotations

import json
import math
import statistics
import subprocess
import sys
import tomllib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from stream.inbox.auth import hash_password, hash_token
from stream.tools.brokers import LocalBroker, free_port
from tests.integration.digest.test_digest import digest
from tests.integration.inbox.test_inbox import TOKEN, _up, http
from tests.support.browser import chromium, log_in, screenshot
from tests.support.factories import survey, uid
from tests.support.services import Service, inbox_process, wait_for

pytestmark = pytest.mark.integration
RULES = """
default_queue = "triage"
[[rules]]
name = "team-queue"
queue = "{team}"

[[playbook]]
kind = "detractor"
first_tier = { action = "Apologise and credit the fee", credit = 25 }
second_tier = { action = "Refund the order", credit = 60 }
"""
# what the CRM spent on the other alerts (None: resolved with nothing recorded)
SPENT = [None, 0, 10, 20, 20, 25, 30, 40, 45, 50, 55]


def test_concessions_are_checked_against_the_cap_and_reach_the_digest(
    kafka: LocalBroker, tmp_path: Path
) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(RULES)
    users = tmp_path / "users.toml"
    users.write_text(
        f'[users.sam]\nname = "Sam Lee"\npassword_hash = "{hash_password("sam-password")}"\n'
        'queues = ["billing"]\n'
        f'[tokens.crm]\ntoken_sha256 = "{hash_token(TOKEN)}"\nqueues = ["billing"]\n'
    )
    svc = Service(kafka, tmp_path, routing_rules=str(rules))
    port = free_port()
    db = tmp_path / "inbox.db"
    inbox = inbox_process(svc, db, users, port)
    base = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {TOKEN}"}
    try:
        svc.start()
        inbox.start()
        wait_for(lambda: _up(base), 60, "the inbox to answer")
        customers = [uid("cust") for _ in range(len(SPENT) + 2)]
        for i, cid in enumerate(customers):
            svc.send_survey(survey(cid, f"r-{i}", nps=2, team="billing"))
        alerts = [svc.alerts_for(cid, 1)[0] for cid in customers]
        assert all(a["playbook"]["second_tier"]["cap"] == 60 for a in alerts)

        def known(alert_id: str) -> bool:
            return http(f"{base}/api/v1/alerts/{alert_id}", headers=auth)[0] == 200

        wait_for(lambda: all(known(a["alert_id"]) for a in alerts), 60, "every alert in the read model")

        # the agent, in the browser: 80 USD is above the cap of 60
        first = alerts[0]["alert_id"]
        driver = chromium()
        try:
            log_in(driver, base, "sam", "sam-password")

            def resolve(note: str) -> None:
                driver.get(f"{base}/alerts/{first}")
                form = driver.find_element(By.CSS_SELECTOR, "form.resolve")
                assert "Up to $60 (USD) without approval" in form.text
                Select(form.find_element(By.NAME, "root_cause")).select_by_visible_text("late delivery")
                form.find_element(By.NAME, "concession_amount").send_keys("80")
                Select(form.find_element(By.NAME, "concession_kind")).select_by_visible_text("refund")
                if note:
                    form.find_element(By.NAME, "note").send_keys(note)
                form.find_element(By.CSS_SELECTOR, "button[value=resolved]").click()

            resolve("")
            error = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "p.error"), 10, "the refusal")
            assert "80 USD is above this alert's cap of 60 USD: add a note saying why" in error[0].text
            screenshot(driver, "inbox-concession-refused")
            resolve("Second delay this month; lead approved.")

            def history() -> str:
                driver.get(f"{base}/alerts/{first}")
                return str(driver.find_element(By.CSS_SELECTOR, "ol.history").text)

            shown = wait_for(
                lambda: "concession" in (h := history()) and h, 60, "the resolution with its concession"
            )
            assert "concession: 80 USD (refund) above the cap" in shown
            screenshot(driver, "inbox-concession")
        finally:
            driver.quit()

        # the CRM, through the API
        def act(alert_id: str, body: dict[str, object]) -> tuple[int, str]:
            return http(
                f"{base}/api/v1/alerts/{alert_id}/actions",
                json.dumps({"type": "resolved", "root_cause": "late delivery", **body}).encode(),
                {**auth, "Content-Type": "application/json"},
            )

        for alert, amount in zip(alerts[1:], SPENT, strict=False):
            body: dict[str, object] = {}
            if amount is not None:
                body["concession"] = {
                    "amount": amount,
                    "currency": "USD",
                    "kind": "credit" if amount else "none",
                }
            code, text = act(alert["alert_id"], body)
            assert code == 202, text
        euro = alerts[-1]["alert_id"]
        code, text = act(euro, {"concession": {"amount": 30, "currency": "EUR", "kind": "gift"}})
        assert code == 400 and "caps are in USD" in text and "add a note" in text
        code, text = act(euro, {"concession": {"amount": -1, "currency": "USD", "kind": "gift"}, "note": "x"})
        assert code == 400 and "concession.amount" in text
        code, text = act(
            euro, {"concession": {"amount": 30, "currency": "EUR", "kind": "gift"}, "note": "EU shop"}
        )
        assert code == 202, text

        def all_resolved() -> bool:
            for a in alerts:
                code, body_text = http(f"{base}/api/v1/alerts/{a['alert_id']}", headers=auth)
                if code != 200 or json.loads(body_text)["status"] != "resolved":
                    return False
            return True

        wait_for(all_resolved, 90, "every resolution to come back from the worker")

        # the reference: the amounts spent in USD (none counts as 0), the euro one apart
        # the period holding the surveys' time (the factory dates them)
        caused = max(datetime.fromisoformat(a["cause_at"]).timestamp() for a in alerts)
        soon = datetime.fromtimestamp(caused + 3600, UTC).isoformat().replace("+00:00", "Z")
        usd = sorted([80.0] + [float(a or 0) for a in SPENT])
        p80 = usd[math.ceil(0.8 * len(usd)) - 1]
        got = json.loads(digest(svc, db, soon, "json"))
        assert got["costs"], {k: got[k] for k in ("alerts", "close_rate", "root_causes", "costs")}
        overall = got["costs"][0]
        assert (
            overall["group"] == "all" and overall["resolved"] == len(usd) and overall["other_currency"] == 1
        )
        assert overall["median"] == statistics.median(usd) and overall["p80"] == p80
        assert overall["share_none"] == pytest.approx(sum(a == 0 for a in usd) / len(usd))
        assert overall["over_cap"] == 1 and overall["current_cap"] == 60
        cap = math.ceil(p80 / 5) * 5
        assert overall["suggested_cap"] == cap
        text = digest(svc, db, soon, "markdown")
        assert "## What recovery costs" in text
        assert f"80% of recoveries cost at most ${p80:g}: a cap of ${cap:g} lets agents resolve them" in text

        suggested = subprocess.run(
            [
                sys.executable,
                "-m",
                "stream.cli",
                "playbook",
                "suggest",
                "--until",
                soon,
                "--period",
                "1000w",
            ],
            env={**svc.env, "SURVEY_ALERTS_INBOX_DB": str(db)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        assert suggested.returncode == 0, suggested.stderr
        plays = tomllib.loads(suggested.stdout)["playbook"]
        assert [(p["kind"], p["first_tier"]["credit"]) for p in plays] == [("detractor", cap)]
        assert plays[0]["first_tier"]["action"] == "Apologise and credit the fee"  # the current play's
    finally:
        inbox.stop()
        svc.close()
