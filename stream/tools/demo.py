"""``survey-alerts demo``: embedded broker, worker (with the notifier), inbox and generator, live.

Every user's view at once: alerts printed as the worker raises them, what the notifier
sends (to a local receiver the demo starts), the inbox's URL and login, and the metrics URL.
"""

from __future__ import annotations

import base64
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import click
import orjson
from kafka import KafkaConsumer

from stream.inbox.auth import hash_password
from stream.kafka.security import kafka_python_options
from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from stream.tools.brokers import LocalBroker, Tansu, free_port
from stream.tools.generate import Generator, Mix
from stream.tools.produce import produce
from stream.tools.receiver import LocalReceiver

_COLOURS = {"critical": "red", "warning": "yellow", "info": "cyan"}


def alert_line(alert: dict[str, Any]) -> str:
    """One readable line per alert (no customer id or comment: those stay on the topic)."""
    c = alert.get("customer") or {}
    due = str(alert.get("follow_up_due_at", ""))[5:16].replace("T", " ")
    return (
        f"{str(alert.get('created_at', ''))[11:19]}  {alert['severity'].upper():8} "
        f"{alert['kind']:11} {alert['metric']}={alert['score']:<3} "
        f"team={alert.get('team') or '-':10} queue={alert['queue']:10} "
        f"tier={c.get('tier') or '-':9} open_tickets={c.get('open_ticket_count', 0)}  "
        f"due {due}Z  {alert['alert_id']}"
    )


def _watch(settings: Settings, stop: threading.Event, counts: dict[str, int]) -> None:
    consumer = KafkaConsumer(
        settings.recovery_alerts_topic,
        settings.dlq_topic,
        **kafka_python_options(settings),
        auto_offset_reset="earliest",
        group_id=None,
        consumer_timeout_ms=500,
    )
    try:
        while not stop.is_set():
            for record in consumer:
                doc = orjson.loads(record.value)
                if record.topic == settings.dlq_topic:
                    counts["dead_letters"] += 1
                    err = doc["error"]
                    click.secho(f"{'':10}DEAD-LETTER {err['code']}: {err['message'][:90]}", dim=True)
                else:
                    counts["alerts"] += 1
                    click.secho(alert_line(doc), fg=_COLOURS.get(doc["severity"]))
                if stop.is_set():
                    break
    finally:
        consumer.close()


DEMO_RULES = """
# The demo's notifications: every alert and escalation to a signed webhook, critical alerts
# also as Slack messages; both go to the demo's local receiver.
notify_default = ["demo-webhook"]

[[rules]]
name = "team-queue"
queue = "{{team}}"

[destinations.demo-webhook]
kind = "webhook"
url = "{webhook}"
secrets_env = "SURVEY_ALERTS_DEMO_WEBHOOK_SECRET"

[destinations.demo-slack]
kind = "slack"
url_env = "SURVEY_ALERTS_DEMO_SLACK_URL"
rate_per_s = 20

[[notify]]
name = "everything-signed"
destinations = ["demo-webhook"]

[[notify]]
name = "critical-to-chat"
destinations = ["demo-slack"]
match = {{ type = "recovery_alert", severity = "critical" }}
"""


def _show_chat(kind: str, text: str) -> None:
    click.secho(f"{'':10}-> {kind}: {text}", fg="magenta")


def run_demo(
    duration: float | None, rate: float, malformed_rate: float, seed: int, broker: LocalBroker | None = None
) -> dict[str, int]:
    """Run the whole demo; returns what it counted."""
    broker = broker or Tansu()
    stop = threading.Event()
    counts = {"sent": 0, "alerts": 0, "dead_letters": 0}
    # Ctrl-C, a closed terminal (SIGHUP) and SIGTERM all stop everything it started, the same way
    stopping = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: stop.set()) for sig in stopping}
    workdir = Path(tempfile.mkdtemp(prefix="survey-alerts-demo-"))
    logs: list[Any] = []
    worker: subprocess.Popen[bytes] | None = None
    inbox: subprocess.Popen[bytes] | None = None
    secret = "whsec_" + base64.b64encode(os.urandom(24)).decode()
    password = secrets.token_urlsafe(9)
    inbox_port = free_port()
    receiver = LocalReceiver(free_port(), secret, _show_chat)
    try:
        click.echo(f"starting the embedded broker ({broker.name}) ...")
        broker.start()
        receiver.start()
        rules = workdir / "rules.toml"
        rules.write_text(DEMO_RULES.format(webhook=receiver.url("/webhook")))
        port = free_port()
        env = {
            **os.environ,
            "SURVEY_ALERTS_BROKER": broker.url,
            "SURVEY_ALERTS_WEB_PORT": str(port),
            "SURVEY_ALERTS_DATA_DIR": str(workdir / "data"),
            "SURVEY_ALERTS_LOG_LEVEL": "warn",
            # tansu holds a new group's join for half the rebalance timeout
            "SURVEY_ALERTS_SESSION_TIMEOUT_S": "6",
            "SURVEY_ALERTS_REBALANCE_TIMEOUT_S": "6",
            "SURVEY_ALERTS_ROUTING_RULES": str(rules),
            "SURVEY_ALERTS_NOTIFY_IN_WORKER": "true",
            "SURVEY_ALERTS_NOTIFIER_WEB_PORT": str(free_port()),
            "SURVEY_ALERTS_DEMO_WEBHOOK_SECRET": secret,
            "SURVEY_ALERTS_DEMO_SLACK_URL": receiver.url("/slack"),
            "SURVEY_ALERTS_INBOX_URL": f"http://127.0.0.1:{inbox_port}",
            "SURVEY_ALERTS_INBOX_PORT": str(inbox_port),
            "SURVEY_ALERTS_INBOX_DB": str(workdir / "inbox.db"),
            "SURVEY_ALERTS_INBOX_USERS": str(workdir / "users.toml"),
        }
        (workdir / "users.toml").write_text(
            "[users.demo]\n"
            'name = "Demo agent"\n'
            f'password_hash = "{hash_password(password)}"\n'
            'queues = ["*"]\n'
        )
        settings = Settings(broker=broker.url, web_port=port)
        ensure_topics(settings)

        def spawn(command: str) -> subprocess.Popen[bytes]:
            """``survey-alerts COMMAND`` with the demo's settings, its output to COMMAND.log."""
            logs.append(open(workdir / f"{command}.log", "wb"))  # noqa: SIM115
            return subprocess.Popen(
                [sys.executable, "-m", "stream.cli", command],
                env=env,
                stdout=logs[-1],
                stderr=subprocess.STDOUT,
            )

        worker = spawn("worker")
        click.echo(
            f"worker started; metrics at http://127.0.0.1:{port}/metrics ; log {workdir}/worker.log"
            " (the demo's directory is removed when it stops)"
        )
        click.echo(
            f"notifier (inside the worker) posts to the local receiver {receiver.url('/')}: signed webhooks, "
            f"and Slack messages for critical alerts (rules: {rules})"
        )
        inbox = spawn("inbox")
        click.secho(
            f"inbox at http://127.0.0.1:{inbox_port}/ - log in as demo / {password} "
            f"(log {workdir}/inbox.log)",
            bold=True,
        )
        click.echo("generating surveys and tickets; alerts appear below (Ctrl-C stops)\n")
        watcher = threading.Thread(target=_watch, args=(settings, stop, counts), daemon=True)
        watcher.start()
        deadline = time.monotonic() + duration if duration else None

        def should_stop() -> bool:
            if worker is not None and worker.poll() is not None:
                click.secho(f"the worker exited with {worker.returncode}", fg="red")
                return True
            return stop.is_set() or (deadline is not None and time.monotonic() > deadline)

        gen = Generator(
            seed=seed, customers=500, mix=Mix(malformed_rate=malformed_rate), live=True, profiles=True
        )
        counts["sent"] = produce(settings, gen.messages(10**12), rate=rate, should_stop=should_stop)
        time.sleep(1.0)  # let the last alerts arrive
        return counts
    finally:
        stop.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for proc in (inbox, worker):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(30)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
        broker.stop()
        receiver.stop()
        for file in logs:
            file.close()
        if worker is not None and worker.returncode not in (0, None, -signal.SIGTERM):
            tail = (workdir / "worker.log").read_text(errors="replace").splitlines()[-20:]
            click.echo("the worker's last log lines:\n" + "\n".join(tail), err=True)
        shutil.rmtree(workdir, ignore_errors=True)
        counts["webhooks"] = receiver.counts["webhook_verified"]
        counts["chat"] = receiver.counts["slack"]
        click.echo(
            f"\nsent {counts['sent']} events, saw {counts['alerts']} alerts and "
            f"{counts['dead_letters']} dead letters"
        )
        click.echo(
            f"notifications received: {counts['webhooks']} webhooks (signatures verified, "
            f"{receiver.counts['webhook_bad_signature']} bad), {counts['chat']} Slack messages"
        )
