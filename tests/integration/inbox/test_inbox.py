"""The follow-up inbox end to end, in headless Chromium, against a worker on Apache Kafka.

Log in, see the alerts generated detractors raised, open one, mark it contacted and resolve it
with a root cause, watch its state change when the worker's followup-events come back, see an
overdue one highlighted, and be refused another queue. Screenshots go to test-artifacts/.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from stream.inbox.auth import hash_password, hash_token
from stream.tools.brokers import LocalBroker, free_port
from tests.support.browser import chromium, fill_login, log_in, screenshot
from tests.support.factories import survey, ticket, uid
from tests.support.services import Process, Service, inbox_process, wait_for

pytestmark = pytest.mark.integration
TOKEN = "crm-token-for-the-tests-0123456789"


def http(url: str, data: bytes | None = None, headers: dict[str, str] | None = None) -> tuple[int, str]:
    request = urllib.request.Request(
        url, data=data, headers=headers or {}, method="POST" if data is not None else "GET"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


@pytest.fixture
def stack(kafka: LocalBroker, tmp_path: Path) -> Iterator[tuple[Service, Process, str]]:
    users = tmp_path / "users.toml"
    users.write_text(
        f"""
[users.sam]
name = "Sam Lee"
password_hash = "{hash_password("sam-password")}"
queues = ["billing", "billing-lead"]

[users.rita]
password_hash = "{hash_password("rita-password")}"
queues = ["returns"]

[users.ny]
name = "Noor Yates"
password_hash = "{hash_password("ny-password")}"
queues = ["billing"]
timezone = "America/New_York"

[tokens.crm]
token_sha256 = "{hash_token(TOKEN)}"
queues = ["billing"]
"""
    )
    # critical alerts are due in 3 s, so one goes overdue while the test watches; warnings in a day
    svc = Service(
        kafka, tmp_path, sla_critical_minutes="0.05", sla_tier_factors="{}", followup_check_interval_s="1"
    )
    port = free_port()
    inbox = inbox_process(svc, tmp_path / "inbox.db", users, port)
    try:
        svc.start()
        inbox.start()
        base = f"http://127.0.0.1:{port}"
        wait_for(lambda: _up(base), 60, "the inbox to answer")
        yield svc, inbox, base
    finally:
        inbox.stop()
        svc.close()


def _up(base: str) -> bool:
    try:
        return http(base + "/health")[0] == 200
    except OSError:
        return False


def test_an_agent_closes_the_loop_in_the_browser(stack: tuple[Service, Process, str]) -> None:
    svc, inbox, base = stack
    calm, urgent, elsewhere = uid("cust"), uid("cust"), uid("cust")
    svc.send_ticket(
        ticket(calm, "t-1", "created", team="billing", customer_tier="gold", account_value=82_000.0)
    )
    svc.send_survey(
        survey(calm, "r-1", nps=6, ticket_id="t-1", comment="Waited <b>40 minutes</b> on the phone.")
    )
    svc.send_survey(survey(urgent, "r-2", nps=1, team="billing"))
    svc.send_survey(survey(elsewhere, "r-3", nps=2, team="returns"))
    # NPS 1 is critical: due in 3 s, so overdue while the test watches; the gold customer's NPS 6 is
    # critical too (a key account), but it is contacted in time
    calm_alert = svc.alerts_for(calm, 1)[0]
    urgent_alert = svc.alerts_for(urgent, 1)[0]
    other_alert = svc.alerts_for(elsewhere, 1)[0]
    driver = chromium()
    try:
        driver.get(base + "/alerts")
        assert "/login" in driver.current_url
        fill_login(driver, "sam", "wrong")
        wait_for(lambda: "Wrong user name or password" in driver.page_source, 10, "the login error")
        fill_login(driver, "sam", "sam-password")
        wait_for(lambda: driver.current_url.endswith("/alerts"), 10, "the queue after logging in")

        def rows() -> dict[str, Any]:
            driver.get(base + "/alerts?status=")
            return {
                link.get_attribute("href").rsplit("/", 1)[1]: link.find_element(By.XPATH, "ancestor::tr")
                for link in driver.find_elements(By.CSS_SELECTOR, "table.queue td a")
            }

        found = wait_for(
            lambda: (r := rows()) and {calm_alert["alert_id"], urgent_alert["alert_id"]} <= set(r) and r,
            what="both billing alerts in the queue",
        )
        assert other_alert["alert_id"] not in found  # another queue's alert is not listed
        overdue = wait_for(
            lambda: "overdue" in rows()[urgent_alert["alert_id"]].get_attribute("class"),
            60,
            "the overdue highlight",
        )
        assert overdue
        row = rows()[urgent_alert["alert_id"]]
        assert "OVERDUE" in row.text
        assert "KEY" in rows()[calm_alert["alert_id"]].text  # gold, $82,000: a key account stands out
        screenshot(driver, "inbox-queue")

        driver.get(f"{base}/alerts/{calm_alert['alert_id']}")
        page = driver.find_element(By.TAG_NAME, "main").text
        for needed in (
            "gold",
            "$82,000",
            "Waited <b>40 minutes</b> on the phone.",
            "t-1",
            "OPEN TICKETS",
            "RECENT SCORES",
        ):
            assert needed in page, needed
        driver.find_element(By.CSS_SELECTOR, "button[value=contacted]").click()
        notice = wait_for(
            lambda: driver.find_elements(By.CSS_SELECTOR, "p.notice"), 10, "the page after sending"
        )
        assert "Sent: contacted" in notice[0].text
        assert "sent=" not in driver.current_url  # the banner comes from the session, not the URL
        driver.refresh()  # and once
        assert not driver.find_elements(By.CSS_SELECTOR, "p.notice")

        def status() -> str:
            driver.get(f"{base}/alerts/{calm_alert['alert_id']}")
            return str(driver.find_element(By.CSS_SELECTOR, ".head .status").text)

        wait_for(lambda: status() == "contacted", 60, "the worker to confirm 'contacted'")
        assert "contacted by Sam Lee" in driver.find_element(By.CSS_SELECTOR, "ol.history").text
        Select(driver.find_element(By.NAME, "root_cause")).select_by_visible_text("late delivery")
        driver.find_element(By.CSS_SELECTOR, "form.resolve input[name=note]").send_keys(
            "Credited the delivery fee."
        )
        driver.find_element(By.CSS_SELECTOR, "button[value=resolved]").click()
        wait_for(lambda: status() == "resolved", 60, "the worker to confirm 'resolved'")
        history = driver.find_element(By.CSS_SELECTOR, "ol.history").text
        assert "resolved by Sam Lee" in history and "root cause: late delivery" in history
        assert "Credited the delivery fee." in history
        screenshot(driver, "inbox-alert-resolved")

        driver.get(f"{base}/alerts/{other_alert['alert_id']}")
        assert "You are not in queue returns" in driver.page_source
        driver.get(f"{base}/alerts?queue=returns")
        assert "You are not in queue returns" in driver.page_source
        screenshot(driver, "inbox-refused")

        def escalations() -> bool:
            driver.get(base + "/escalations")
            return calm_alert["alert_id"] in driver.page_source

        # the key account's escalation, linked to its alert (its queue's topic is found within seconds)
        wait_for(escalations, 60, "the key account's escalation")
        screenshot(driver, "inbox-escalations")

        # a POST without this session's CSRF token is refused, with or without the session cookie
        cookie = driver.get_cookie("survey_alerts_session")
        assert cookie is not None and cookie["httpOnly"]
        forged = http(
            f"{base}/alerts/{urgent_alert['alert_id']}/actions",
            b"type=contacted&csrf=guess",
            {
                "Cookie": f"survey_alerts_session={cookie['value']}",
                "Content-Type": "application/x-www-form-urlencoded",
            },
        )
        assert forged[0] == 403
    finally:
        driver.quit()

    # the JSON API: token auth, the same list, detail and actions
    auth = {"Authorization": f"Bearer {TOKEN}"}
    assert http(base + "/api/v1/alerts")[0] == 401
    status_code, body = http(base + "/api/v1/alerts?status=", headers=auth)
    listed = json.loads(body)
    assert status_code == 200 and {a["alert_id"] for a in listed["alerts"]} >= {urgent_alert["alert_id"]}
    assert all(a["queue"] == "billing" for a in listed["alerts"])
    code, body = http(
        f"{base}/api/v1/alerts/{urgent_alert['alert_id']}/actions",
        json.dumps({"type": "resolved"}).encode(),
        {**auth, "Content-Type": "application/json"},
    )
    assert code == 400 and "root cause" in body
    code, body = http(
        f"{base}/api/v1/alerts/{urgent_alert['alert_id']}/actions",
        json.dumps({"type": "contacted", "note": "called from the CRM"}).encode(),
        {**auth, "Content-Type": "application/json"},
    )
    assert code == 202 and json.loads(body)["action"]["actor"] == "token:crm"

    def api_status() -> str:
        code, body = http(f"{base}/api/v1/alerts/{urgent_alert['alert_id']}", headers=auth)
        assert code == 200, (code, body)
        return str(json.loads(body)["status"])

    wait_for(lambda: api_status() == "contacted", 60, "the API's action to come back")
    assert http(f"{base}/api/v1/alerts/{other_alert['alert_id']}", headers=auth)[0] == 403
    logs = inbox.logs()
    for secret in ("sam-password", TOKEN, calm, "Waited"):
        assert secret not in logs


def test_a_restart_of_the_inbox_keeps_people_logged_in(stack: tuple[Service, Process, str]) -> None:
    """Sessions live in the inbox's database: after a restart the same cookie still opens the queue,
    and the log-out button ends it."""
    import http.cookiejar
    import re
    import urllib.parse

    _svc, inbox, base = stack
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))

    def get(path: str) -> tuple[str, str]:
        with browser.open(base + path, timeout=10) as resp:
            return resp.geturl(), resp.read().decode()

    _, form = get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token
    data = urllib.parse.urlencode(
        {"username": "sam", "password": "sam-password", "csrf": token.group(1), "next": "/alerts"}
    ).encode()
    with browser.open(base + "/login", data=data, timeout=10) as resp:
        assert resp.geturl().endswith("/alerts") and "Follow-ups" in resp.read().decode()

    inbox.stop()
    inbox.start()
    wait_for(lambda: _up(base), 60, "the inbox to answer again")
    url, page = get("/alerts")
    assert url.endswith("/alerts") and "Follow-ups" in page, url  # not sent to the login page

    csrf = re.search(r'name="csrf" value="([^"]+)"', page)
    assert csrf
    with browser.open(
        base + "/logout", data=urllib.parse.urlencode({"csrf": csrf.group(1)}).encode()
    ) as resp:
        assert "/login" in resp.geturl()
    url, _ = get("/alerts")
    assert "/login" in url


def _log_in(browser: Any, base: str, user: str, password: str, target: str = "/alerts") -> Any:
    import http.cookiejar  # noqa: F401  (the opener carries its cookie jar)
    import re
    import urllib.parse

    with browser.open(base + "/login", timeout=10) as resp:
        form = resp.read().decode()
    token = re.search(r'name="csrf" value="([^"]+)"', form)
    assert token
    data = urllib.parse.urlencode(
        {"username": user, "password": password, "csrf": token.group(1), "next": target}
    ).encode()
    return browser.open(base + "/login", data=data, timeout=10)


def _browser() -> Any:
    import http.cookiejar

    return urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


def _answer(opener: Any, url: str, data: bytes | None = None) -> tuple[int, Any]:
    """The status and headers of a request, errors and redirects included."""
    try:
        with opener.open(url, data=data, timeout=30) as resp:
            return int(resp.status), resp.headers
    except urllib.error.HTTPError as exc:
        return int(exc.code), exc.headers


def test_the_inbox_is_not_a_redirector_nor_a_billboard(stack: tuple[Service, Process, str]) -> None:
    """Open redirects after login, banners written in the URL, and missing headers on redirects and
    errors: tried as an attacker would, in a real browser where a browser is the one fooled."""
    import re
    import urllib.parse

    svc, _inbox, base = stack
    cid = uid("cust")
    svc.send_ticket(ticket(cid, "t-9", "created", team="billing"))
    svc.send_survey(survey(cid, nps=1, ticket_id="t-9"))
    alert_id = svc.alerts_for(cid, 1)[0]["alert_id"]

    # the redirect after login, as the real server answers it: every trick lands on this site
    tricks = ["/\t/evil.example/", "/\r\n/evil.example/", "//evil.example/", "/\\evil.example"]
    tricks += ["https://evil.example/", "/%09/evil.example/", " /evil", "/\x00/evil.example"]
    for target in tricks:
        opener = urllib.request.build_opener(_NoRedirect(), urllib.request.HTTPCookieProcessor())
        with opener.open(base + "/login", timeout=10) as resp:
            token = re.search(r'name="csrf" value="([^"]+)"', resp.read().decode())
        assert token
        fields = {"username": "sam", "password": "sam-password", "csrf": token.group(1), "next": target}
        status, headers = _answer(opener, base + "/login", urllib.parse.urlencode(fields).encode())
        location = headers["Location"]
        assert status == 303 and urllib.parse.urlsplit(location).netloc == "", (target, location)
        assert not location.startswith("//") and "\\" not in location, (target, location)
        assert headers["X-Content-Type-Options"] == "nosniff" and headers["Content-Security-Policy"]

    driver = chromium()
    try:
        # a link as an attacker would send it: the browser ends on the inbox, never elsewhere
        driver.get(base + "/login?next=/%09/evil.example/")
        fill_login(driver, "sam", "sam-password")
        wait_for(lambda: "/alerts" in driver.current_url, 10, "the queue after logging in")
        assert urllib.parse.urlsplit(driver.current_url).netloc == urllib.parse.urlsplit(base).netloc

        # banners written into a URL say nothing
        spoof = "?error=Your%20session%20expired.%20Call%20555-0100&sent=resolved"
        driver.get(f"{base}/alerts/{alert_id}{spoof}")
        page = driver.page_source
        assert "555-0100" not in page and "Sent: resolved" not in page
        assert not driver.find_elements(By.CSS_SELECTOR, "p.notice, p.error")
        screenshot(driver, "inbox-no-spoofed-banner")
    finally:
        driver.quit()

    # security headers and no-store on pages, API answers, redirects and errors alike
    browser = _browser()
    with _log_in(browser, base, "sam", "sam-password") as resp:
        assert resp.headers["Cache-Control"] == "no-store"  # the queue: customer data
    expected = {"/alerts": 200, f"/alerts/{alert_id}": 200, "/api/v1/alerts": 401, "/nowhere": 404}
    for path, code in expected.items():
        status, headers = _answer(browser, base + path)
        assert status == code, (path, status)
        assert headers["Cache-Control"] == "no-store", path
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"], path
    status, headers = _answer(urllib.request.build_opener(), base + "/login", b"x" * (3 << 20))
    assert status == 413 and headers["X-Content-Type-Options"] == "nosniff"


def test_removing_a_user_or_a_token_takes_effect_at_once(
    stack: tuple[Service, Process, str], tmp_path: Path
) -> None:
    _svc, _inbox, base = stack
    users = tmp_path / "users.toml"
    rita = _browser()
    with _log_in(rita, base, "rita", "rita-password") as resp:
        assert resp.geturl().endswith("/alerts")
    assert http(base + "/api/v1/alerts", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 200

    text = users.read_text()
    head, _, rest = text.partition("[users.rita]")
    users.write_text(head + "[users.x]" + rest.split("[tokens.crm]")[0])  # rita and the token removed
    with rita.open(base + "/alerts", timeout=10) as resp:
        assert "/login" in resp.geturl()  # logged out at the next click
    assert http(base + "/api/v1/alerts", headers={"Authorization": f"Bearer {TOKEN}"})[0] == 401

    users.write_text("this is [not toml")  # a broken file keeps the users read before
    sam = _browser()
    with _log_in(sam, base, "sam", "sam-password") as resp:
        assert resp.geturl().endswith("/alerts")


def test_the_agent_sees_whom_to_call_and_an_erasure_takes_it_away(
    stack: tuple[Service, Process, str],
) -> None:
    """A CRM profile on the alert page (name, company, tel: and mailto: links, the CRM, the id), the
    newest one when it changes after the alert, and gone everywhere after a tombstone; the times in
    the user's zone with UTC on hover; the queue row with the name and the customer's words."""
    import sqlite3

    import orjson

    svc, inbox, base = stack
    cid = uid("cust")
    topic = svc.settings.customer_profiles_topic
    first = {
        "customer_id": cid,
        "updated_at": "2026-11-01T09:00:00Z",
        "name": "Dana <i>Ortiz</i>",
        "company": "Ortiz & Sons",
        "email": "dana.ortiz@example.com",
        "phone": "+1 (202) 555-0142",
        "preferred_channel": "phone",
        "crm_url": "https://crm.example.com/customers/42",
    }
    svc.send(topic, orjson.dumps(first), cid.encode())
    svc.send_ticket(ticket(cid, "t-p1", "created", team="billing", agent_id="agent-bil-07"))
    svc.send_survey(survey(cid, nps=2, ticket_id="t-p1", comment="Nobody called me back about the refund."))
    alert = svc.alerts_for(cid, 1)[0]
    assert alert["customer"]["profile"]["email"] == "dana.ortiz@example.com"
    driver = chromium()
    try:
        log_in(driver, base, "ny", "ny-password")
        page = f"{base}/alerts/{alert['alert_id']}"

        def shown() -> str:
            driver.get(page)
            return str(driver.find_element(By.TAG_NAME, "main").text)

        text = wait_for(lambda: "Dana <i>Ortiz</i>" in (t := shown()) and t, 60, "the profile on the page")
        for needed in ("Ortiz & Sons", "phone", cid, "agent-bil-07", "open in the CRM"):
            assert needed in text, needed
        links = {a.text: a.get_attribute("href") for a in driver.find_elements(By.CSS_SELECTOR, "main a")}
        assert links["+1 (202) 555-0142"] == "tel:+12025550142"
        assert links["dana.ortiz@example.com"] == "mailto:dana.ortiz@example.com"
        assert links["open in the CRM"] == "https://crm.example.com/customers/42"
        # the user's zone (America/New_York, from the users file), UTC on hover
        created = driver.find_element(By.CSS_SELECTOR, ".head time")
        assert created.text.endswith(("EST", "EDT")) and created.get_attribute("title").endswith("UTC")
        screenshot(driver, "inbox-alert-profile")

        driver.get(base + "/alerts?status=")
        row = driver.find_element(By.CSS_SELECTOR, f"a[href='/alerts/{alert['alert_id']}']").find_element(
            By.XPATH, "ancestor::tr"
        )
        assert "Dana <i>Ortiz</i>" in row.text and "Nobody called me back" in row.text

        # a newer profile after the alert: the page shows the newest; an older one changes nothing
        svc.send(
            topic,
            orjson.dumps({**first, "updated_at": "2026-11-20T09:00:00Z", "name": "Dana Ortiz-Lee"}),
            cid.encode(),
        )
        svc.send(
            topic,
            orjson.dumps({**first, "updated_at": "2026-10-01T09:00:00Z", "name": "Old Name"}),
            cid.encode(),
        )
        wait_for(lambda: "Dana Ortiz-Lee" in shown(), 60, "the newer profile")
        assert "Old Name" not in shown()

        # erased (a tombstone): gone from the page, the API, the read model, and later alerts
        svc.send(topic, None, cid.encode())
        wait_for(lambda: "No profile of this customer" in shown(), 60, "the erasure in the inbox")
        assert "dana.ortiz@example.com" not in driver.page_source and "555-0142" not in driver.page_source
        auth = {"Authorization": f"Bearer {TOKEN}"}
        status, body = http(f"{base}/api/v1/alerts/{alert['alert_id']}", headers=auth)
        assert status == 200 and json.loads(body)["profile"] is None
        db = sqlite3.connect(svc.workdir / "inbox.db")
        try:
            dump = "\n".join(db.iterdump())
        finally:
            db.close()
        assert "dana.ortiz@example.com" not in dump and "555-0142" not in dump
        svc.send_survey(survey(cid, ces=1, ticket_id="t-p1"))
        # (the first alert's overdue notice may come before it: critical alerts are due in 3 s here)
        later = wait_for(
            lambda: next((a for a in svc.alerts_for(cid, 2) if a["kind"] == "low_effort"), None),
            60,
            "the low-effort alert",
        )
        assert "profile" not in later["customer"]
    finally:
        driver.quit()
    for secret in ("dana.ortiz", "555-0142", "Ortiz"):
        assert secret not in inbox.logs() and secret not in svc.log.read_text()
