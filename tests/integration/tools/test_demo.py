"""The README's first command: the demo on the embedded broker shows every user's view and stops cleanly.

Alerts printed as they happen, what the notifier sends (to the demo's local receiver), the
metrics URL, and the inbox's URL and login, which this test uses while the demo runs.
"""

from __future__ import annotations

import http.cookiejar
import re
import signal
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ALERT_LINE = re.compile(
    r"^\d\d:\d\d:\d\d  (CRITICAL|WARNING|INFO) +(detractor|low_effort|low_csat|low_stars) "
)
INBOX_LINE = re.compile(r"inbox at (http://127\.0\.0\.1:\d+/) - log in as demo / (\S+) ")


def log_in_and_list(base: str, password: str) -> str:
    """The queue page as the demo user sees it, logged in through the form (with its CSRF token)."""
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(http.cookiejar.CookieJar()))
    form = opener.open(base + "login", timeout=10).read().decode()
    csrf = re.search(r'name="csrf" value="([^"]+)"', form)
    assert csrf, form
    data = urllib.parse.urlencode(
        {"username": "demo", "password": password, "csrf": csrf.group(1), "next": "/alerts?status="}
    ).encode()
    return str(opener.open(base + "login", data=data, timeout=10).read().decode())


def _inbox_page(base: str, password: str) -> str:
    """Log in while the demo runs, until the queue lists an alert (or 25 s pass)."""
    page = ""
    deadline = time.monotonic() + 25
    while time.monotonic() < deadline:
        time.sleep(2)
        try:
            page = log_in_and_list(base, password)
        except OSError:
            continue
        if "/alerts/alert_" in page:
            break
    return page


def test_demo_shows_every_view_then_stops() -> None:
    lines: list[str] = []
    page = ""
    with subprocess.Popen(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "demo",
            "--duration",
            "30",
            "--rate",
            "60",
            "--malformed-rate",
            "0.03",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        try:
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                found = INBOX_LINE.search(line)
                if found and not page:
                    page = _inbox_page(*found.groups())
            proc.wait(180)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = "\n".join(lines)
    assert proc.returncode == 0, out
    alerts = [line for line in lines if ALERT_LINE.match(line)]
    assert len(alerts) >= 5, out
    assert "DEAD-LETTER" in out
    assert re.search(r"metrics at http://127\.0\.0\.1:\d+/metrics", out)
    summary = re.search(r"sent (\d+) events, saw (\d+) alerts and (\d+) dead letters", out)
    assert summary and int(summary.group(1)) > 500 and int(summary.group(2)) == len(alerts), out
    assert "cust-" not in "\n".join(alerts)  # customer ids stay on the topic
    # what agents receive: the notifier (inside the worker) posts to the demo's local receiver
    chat = [line for line in lines if line.strip().startswith("-> slack: ")]
    assert chat and all("·" in line for line in chat), out
    received = re.search(r"notifications received: (\d+) webhooks \(signatures verified, (\d+) bad\)", out)
    assert received and int(received.group(1)) >= len(alerts) // 2 and received.group(2) == "0", out
    # the inbox: logged in as the demo user, the queue lists the alerts the worker raised
    assert "Follow-ups" in page and "/alerts/alert_" in page, page[:2000]


def children(pid: int) -> set[int]:
    """Every descendant of ``pid`` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])
def test_the_demo_stops_everything_it_started_on_sigterm_and_sighup(sig: signal.Signals) -> None:
    with subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "demo", "--rate", "20"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        workdir = None
        try:
            for line in proc.stdout:
                lines.append(line)
                found = re.search(r"log (\S+)/worker\.log", line)
                if found:
                    workdir = Path(found.group(1))
                if INBOX_LINE.search(line):
                    break
            assert workdir is not None and workdir.is_dir(), "".join(lines)
            started = children(proc.pid)
            assert len(started) >= 3, started  # the worker, the inbox, the broker
            time.sleep(3)
            proc.send_signal(sig)
            rest, _ = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    out = "".join(lines) + rest
    assert proc.returncode == 0, out
    assert "sent " in rest and " events, saw " in rest, out  # it stopped the way Ctrl-C stops it
    alive = {p for p in started if Path(f"/proc/{p}").exists()}
    assert not alive, f"left running: {alive}"
    assert not workdir.exists(), f"{workdir} left behind"
