"""TLS and SCRAM: the whole pipeline over a SASL_SSL listener; wrong credentials and an untrusted
certificate are clear errors naming the setting, with a non-zero exit and no secret printed."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest
import trustme
from kafka import KafkaConsumer, KafkaProducer

from stream.kafka.security import kafka_python_options
from stream.settings import Settings
from stream.tools.brokers import free_port
from tests.support.factories import raw, survey, uid
from tests.support.secure_kafka import SecureKafka

pytestmark = pytest.mark.integration
USER, PASSWORD = "survey", "scram-password-for-tests-1"


@pytest.fixture(scope="module")
def secure() -> Iterator[SecureKafka]:
    broker = SecureKafka({USER: PASSWORD})
    broker.start(timeout_s=180)
    yield broker
    broker.stop()


def worker_env(broker: SecureKafka, tmp_path: Path, **extra: str) -> dict[str, str]:
    prefix = uid("sec")
    env = {
        **os.environ,
        **broker.client_env(USER, PASSWORD),
        "SURVEY_ALERTS_APP_ID": f"{prefix}-app",
        "SURVEY_ALERTS_WEB_PORT": str(free_port()),
        "SURVEY_ALERTS_DATA_DIR": str(tmp_path / "data"),
        "SURVEY_ALERTS_SESSION_TIMEOUT_S": "10",
        "SURVEY_ALERTS_REBALANCE_TIMEOUT_S": "10",
        **Settings.topic_environ(prefix),
    }
    env.update(extra)
    return env


def run_cli(env: dict[str, str], *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "stream.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_pipeline_runs_over_sasl_ssl_with_scram(secure: SecureKafka, tmp_path: Path) -> None:
    env = worker_env(secure, tmp_path)
    settings = Settings.from_environ(env)
    log = open(tmp_path / "worker.log", "wb")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "stream.cli", "worker"], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    try:
        producer = KafkaProducer(**kafka_python_options(settings))
        cid = uid("cust")
        deadline = time.monotonic() + 120
        found: list[dict[str, object]] = []
        consumer = KafkaConsumer(
            settings.recovery_alerts_topic,
            auto_offset_reset="earliest",
            consumer_timeout_ms=1000,
            **kafka_python_options(settings),
        )
        while time.monotonic() < deadline and not found:
            producer.send(settings.survey_responses_topic, key=cid.encode(), value=raw(survey(cid, nps=1)))
            producer.flush()
            found = [orjson.loads(r.value) for r in consumer if r.key == cid.encode()]
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()[-3000:]
        assert found and found[0]["kind"] == "detractor"
        generated = run_cli(env, "generate", "--count", "50", "--rate", "0")  # the generator connects too
        assert generated.returncode == 0, generated.stderr
        producer.close()
        consumer.close()
    finally:
        worker.terminate()
        worker.wait(60)
        log.close()
    text = (tmp_path / "worker.log").read_text()
    assert PASSWORD not in text


def test_a_wrong_password_is_a_clear_error_without_the_secret(secure: SecureKafka, tmp_path: Path) -> None:
    env = worker_env(secure, tmp_path, SURVEY_ALERTS_SASL_PASSWORD="not-the-password-42")
    done = run_cli(env, "worker")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "SURVEY_ALERTS_SASL_PASSWORD" in out and "refused" in out and "credentials" in out, out[-2000:]
    assert "not-the-password-42" not in out and "Traceback" not in out


def test_an_untrusted_certificate_is_a_clear_error(secure: SecureKafka, tmp_path: Path) -> None:
    other = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other))
    env = worker_env(secure, tmp_path, SURVEY_ALERTS_SSL_CAFILE=str(other))
    done = run_cli(env, "worker")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "SURVEY_ALERTS_SSL_CAFILE" in out, out[-2000:]
    assert PASSWORD not in out and "Traceback" not in out


def test_sasl_plain_over_plaintext_is_refused_unless_allowed(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "SURVEY_ALERTS_SECURITY_PROTOCOL": "SASL_PLAINTEXT",
        "SURVEY_ALERTS_SASL_MECHANISM": "PLAIN",
        "SURVEY_ALERTS_SASL_USERNAME": "u",
        "SURVEY_ALERTS_SASL_PASSWORD": "plain-secret-7",
    }
    done = run_cli(env, "worker", timeout=60)
    assert done.returncode != 0 and "sends the password in clear" in done.stderr
    assert "SURVEY_ALERTS_ALLOW_PLAINTEXT_SASL" in done.stderr and "plain-secret-7" not in done.stderr
    shown = run_cli({**env, "SURVEY_ALERTS_ALLOW_PLAINTEXT_SASL": "true"}, "settings", timeout=60)
    assert shown.returncode == 0 and "plain-secret-7" not in shown.stdout and "**********" in shown.stdout


def test_the_bench_runs_over_sasl_ssl(secure: SecureKafka, tmp_path: Path) -> None:
    """Every client of ``survey-alerts bench`` (its producers and consumers, the Faust baselines,
    the workers) connects with the security settings when the broker is given by URL."""
    env = worker_env(secure, tmp_path)
    done = run_cli(
        env,
        "bench",
        "--broker",
        env["SURVEY_ALERTS_BROKER"],
        "--events",
        "1500",
        "--baseline-events",
        "500",
        "--naive-events",
        "200",
        "--inprocess-events",
        "500",
        "--state-customers",
        "500",
        "--latency-rate",
        "100",
        "--latency-seconds",
        "2",
        "--stress-events",
        "500",
        "--alert-heavy-events",
        "500",
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = orjson.loads(done.stdout.strip().splitlines()[-1])
    assert result["service_events_per_s"] > 0 and result["latency_alerts"] > 0 and result["restart_s"] > 0
    assert result["stress"]["service_events_per_s"] > 0 and result["alert_heavy"]["alerts_exact"] is True
    # the Quix Streams peer connects in plaintext only: skipped, and said so
    assert "peer_events_per_s" not in result and "the peer connects in plaintext only" in done.stderr
    assert PASSWORD not in done.stdout + done.stderr
