"""Settings come from SURVEY_ALERTS_* variables, are frozen, and never print secrets."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from pydantic import ValidationError

from stream.settings import Settings


def test_environment_variables_configure_everything(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURVEY_ALERTS_BROKER", "kafka://k1:9092;kafka://k2:9093")
    monkeypatch.setenv("SURVEY_ALERTS_SURVEY_RESPONSES_TOPIC", "in.surveys")
    monkeypatch.setenv("SURVEY_ALERTS_WEB_PORT", "7000")
    monkeypatch.setenv("SURVEY_ALERTS_KEY_TIERS", '["vip"]')
    monkeypatch.setenv("SURVEY_ALERTS_SLA_WARNING_MINUTES", "90")
    monkeypatch.setenv("SURVEY_ALERTS_CSAT_ALERT_MAX", "none")
    s = Settings()
    assert s.bootstrap_servers == ["k1:9092", "k2:9093"]
    assert (s.survey_responses_topic, s.web_port) == ("in.surveys", 7000)
    assert s.policy().key_tiers == frozenset({"vip"})
    assert s.policy().due("warning") == timedelta(minutes=90)
    assert s.policy().csat_max is None


def test_from_environ_reads_the_process_environment_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURVEY_ALERTS_SECURITY_PROTOCOL", "SSL")
    monkeypatch.setenv("SURVEY_ALERTS_APP_ID", "from-env")
    s = Settings.from_environ(os.environ)
    assert (s.kafka_protocol, s.app_id) == ("SSL", "from-env")
    assert os.environ["SURVEY_ALERTS_APP_ID"] == "from-env"  # and leaves it as it was


def test_settings_are_frozen() -> None:
    s = Settings()
    with pytest.raises(ValidationError):
        s.broker = "kafka://elsewhere:9092"  # type: ignore[misc]


def test_secrets_are_masked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURVEY_ALERTS_SASL_PASSWORD", "hunter2")
    s = Settings()
    assert "hunter2" not in repr(s) and "hunter2" not in str(s.describe())
    assert s.sasl_password is not None and s.sasl_password.get_secret_value() == "hunter2"


def test_every_setting_is_documented() -> None:
    rows = Settings().describe()
    assert all(doc for _, _, doc in rows)
    assert rows[0][:2] == ("SURVEY_ALERTS_BROKER", "'kafka://127.0.0.1:9092'")


@pytest.mark.parametrize(
    ("name", "value"),
    [("BROKER", "localhost:9092"), ("PARTITIONS", "0"), ("WEB_PORT", "70000"), ("NPS_ALERT_MAX", "11")],
)
def test_bad_values_are_refused_naming_the_setting(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(f"SURVEY_ALERTS_{name}", value)
    with pytest.raises(ValidationError, match=name.lower()):
        Settings()


def test_from_environ_reads_only_the_given_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SURVEY_ALERTS_APP_ID", "from-process")
    s = Settings.from_environ({"SURVEY_ALERTS_PARTITIONS": "7"})
    assert (s.partitions, s.app_id) == (7, "survey-alerts")
    assert Settings().app_id == "from-process"  # the process environment is left as it was


def test_topic_environ_renames_every_topic() -> None:
    s = Settings.from_environ(Settings.topic_environ("t1"))
    topics = [getattr(s, name) for name in Settings.model_fields if name.endswith("_topic")]
    assert topics and all(t.startswith("t1.") for t in topics)
    assert s.escalations_prefix == "t1.esc."
