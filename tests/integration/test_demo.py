"""The README's first command: the demo on the embedded broker prints alerts and stops cleanly."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

pytestmark = pytest.mark.integration

ALERT_LINE = re.compile(
    r"^\d\d:\d\d:\d\d  (CRITICAL|WARNING|INFO) +(detractor|low_effort|low_csat|low_stars) "
)


def test_demo_shows_alerts_and_dead_letters_then_stops() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "stream.cli",
            "demo",
            "--duration",
            "20",
            "--rate",
            "60",
            "--malformed-rate",
            "0.03",
        ],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    alerts = [line for line in out.splitlines() if ALERT_LINE.match(line)]
    assert len(alerts) >= 5, out
    assert "DEAD-LETTER" in out
    summary = re.search(r"sent (\d+) events, saw (\d+) alerts and (\d+) dead letters", out)
    assert summary and int(summary.group(1)) > 500 and int(summary.group(2)) == len(alerts), out
    assert "cust-" not in "\n".join(alerts)  # customer ids stay on the topic
    # what agents receive: the notifier (inside the worker) posts to the demo's local receiver
    chat = [line for line in out.splitlines() if line.strip().startswith("-> slack: ")]
    assert chat and all("·" in line for line in chat), out
    received = re.search(r"notifications received: (\d+) webhooks \(signatures verified, (\d+) bad\)", out)
    assert received and int(received.group(1)) >= len(alerts) // 2 and received.group(2) == "0", out
