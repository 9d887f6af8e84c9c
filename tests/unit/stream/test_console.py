"""What every command shares: settings errors in one line, warnings for unknown variables, log formats."""

from __future__ import annotations

import logging
import subprocess
import sys

import orjson
import pytest

from stream.console import JsonFormatter, level
from stream.settings import Settings


def test_an_unknown_variable_is_a_warning_naming_the_closest_setting() -> None:
    warnings = Settings.unknown_variables(
        {"SURVEY_ALERTS_KEY_TIER": "gold", "SURVEY_ALERTS_BROKER": "kafka://x:1", "OTHER": "1"}
    )
    assert warnings == [
        "SURVEY_ALERTS_KEY_TIER is not a setting and is ignored (did you mean SURVEY_ALERTS_KEY_TIERS?)"
    ]
    # the helpers' own variables and the demo's secrets are no settings on purpose
    assert Settings.unknown_variables({"SURVEY_ALERTS_TEST_OUTAGE_S": "1", "SURVEY_ALERTS_DEMO_X": "y"}) == []


def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args], env=env, capture_output=True, text=True, timeout=60
    )


def test_a_list_setting_that_is_not_json_is_one_line_naming_it() -> None:
    done = run("settings", SURVEY_ALERTS_KEY_TIERS="gold", SURVEY_ALERTS_KEY_TIER="x", PATH="/usr/bin")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    lines = done.stderr.strip().splitlines()
    assert lines == [
        "warning: SURVEY_ALERTS_KEY_TIER is not a setting and is ignored"
        " (did you mean SURVEY_ALERTS_KEY_TIERS?)",
        'Error: SURVEY_ALERTS_KEY_TIERS: not valid JSON (a list is written ["gold","platinum"], an object'
        ' {"gold": 0.75})',
    ]


def test_json_logs_are_one_object_per_line() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord(
            "stream.x", logging.ERROR, __file__, 1, "failed %d times", (3,), sys.exc_info()
        )
    doc = orjson.loads(JsonFormatter().format(record))
    assert doc["level"] == "ERROR" and doc["logger"] == "stream.x" and doc["message"] == "failed 3 times"
    assert doc["time"].endswith("+00:00") and "ValueError: boom" in doc["exception"]
    assert "\n" not in JsonFormatter().format(record)


def test_every_log_level_name_maps() -> None:
    names = {"debug": logging.DEBUG, "info": logging.INFO, "warn": logging.WARNING, "error": logging.ERROR}
    for name, want in names.items():
        assert level(Settings(log_level=name)) == want  # type: ignore[arg-type]


def test_the_group_less_warning_of_kafka_python_is_silenced_and_nothing_else(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import stream.kafka.security  # noqa: F401  (installs the filter)

    logger = logging.getLogger("kafka.coordinator.consumer")
    with caplog.at_level(logging.WARNING, logger="kafka.coordinator.consumer"):
        logger.warning("group_id is None: disabling auto-commit.")
        logger.warning("Heartbeat failed")
    assert [r.getMessage() for r in caplog.records] == ["Heartbeat failed"]
