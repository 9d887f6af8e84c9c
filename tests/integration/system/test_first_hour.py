"""A new operator's first hour: a missing broker is a one-line error naming it, soon, from every process."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from stream.tools.brokers import free_port

pytestmark = pytest.mark.integration
ROOT = Path(__file__).parents[3]


@pytest.mark.parametrize(
    "command",
    [
        ["worker"],
        ["inbox"],
        ["notifier"],
        ["generate", "--count", "5"],
        ["replay", "--from", "2026-12-01T00:00:00Z"],
    ],
)
def test_a_missing_broker_is_one_line_naming_it(command: list[str], tmp_path: Path) -> None:
    users = tmp_path / "users.toml"
    users.write_text('[users.x]\npassword_hash = "x"\nqueues = ["*"]\n')
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    env = {
        **os.environ,
        "SURVEY_ALERTS_BROKER": f"kafka://{address}",
        "SURVEY_ALERTS_CONNECT_TIMEOUT_S": "3",
        "SURVEY_ALERTS_INBOX_USERS": str(users),
        "SURVEY_ALERTS_ROUTING_RULES": str(ROOT / "ops" / "compose" / "rules.toml"),
        "SURVEY_ALERTS_DATA_DIR": str(tmp_path / "data"),
        "SURVEY_ALERTS_LOG_FORMAT": "json",
    }
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", *command], env=env, capture_output=True, text=True, timeout=120
    )
    took = time.monotonic() - started
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr, done.stderr
    assert "\x1b[" not in done.stderr + done.stdout  # no terminal colour codes when not a terminal
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: cannot reach Kafka at ") and address in last, done.stderr
    # kafka-python's own bootstrap wait is 30 s: SURVEY_ALERTS_CONNECT_TIMEOUT_S bounds it instead
    assert took < 25, f"{command}: {took:.1f} s"
    # every log record a JSON object (SURVEY_ALERTS_LOG_FORMAT=json); other lines are the command's own
    lines = done.stderr.strip().splitlines()[:-1]
    assert not [line for line in lines if re.match(r"\[\d{4}-|(ERROR|WARNING|INFO)[: ]", line)], done.stderr
    for line in lines:
        if line.startswith("{"):
            orjson.loads(line)
