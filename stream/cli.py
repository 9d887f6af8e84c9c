"""``survey-alerts``: one subcommand per thing a person does."""

from __future__ import annotations

import json
import logging
import signal
import sys
import time
from pathlib import Path
from typing import Any

import click

from stream.settings import Settings


def _settings() -> Settings:
    """The settings, or a clear error (naming the variable, never quoting a value) and exit 1."""
    from stream.errors import ConfigurationError

    try:
        return Settings.load()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def main() -> None:
    """Real-time survey alerts: rolling CSAT/NPS/CES, recovery alerts and routing on Kafka."""


@main.command()
def worker() -> None:
    """Run the Faust worker against SURVEY_ALERTS_BROKER (every setting from SURVEY_ALERTS_*)."""
    import faust

    from stream.app import create_app, tune_runtime
    from stream.errors import ConfigurationError
    from stream.topics import ensure_topics

    try:
        settings = _settings()
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    logging.getLogger("kafka").setLevel(logging.WARNING)
    try:
        ensure_topics(settings)
        if settings.notify_in_worker:
            from stream.topics import ensure_notifier_topics

            ensure_notifier_topics(settings)
        app = create_app(settings)
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None

    class Worker(faust.Worker):
        def on_setup_root_logger(self, logger: logging.Logger, level: int) -> None:
            super().on_setup_root_logger(logger, level)
            # the Kafka clients' debug logging costs a tenth of a busy worker's time, and
            # Faust's recovery logs every changelog record at debug level
            for name in ("aiokafka", "kafka"):
                logging.getLogger(name).setLevel(max(level, logging.WARNING))
            for name in ("faust", "mode"):
                logging.getLogger(name).setLevel(max(level, logging.INFO))

    tune_runtime()
    Worker(app, loglevel=settings.log_level, quiet=True).execute_from_commandline()


@main.command()
@click.option("--count", default=1000, show_default=True, help="How many messages to send.")
@click.option(
    "--rate", default=200.0, show_default=True, help="Messages per second (0: as fast as possible)."
)
@click.option("--customers", default=1000, show_default=True, help="Distinct customers.")
@click.option("--seed", default=1, show_default=True, help="Random seed: the same seed, the same stream.")
@click.option("--malformed-rate", default=0.0, show_default=True, help="Fraction of broken messages.")
@click.option("--edit-rate", default=0.02, show_default=True, help="Fraction of edited responses.")
@click.option(
    "--duplicate-rate", default=0.02, show_default=True, help="Fraction of duplicate ticket events."
)
@click.option(
    "--live/--simulated",
    default=True,
    show_default=True,
    help="Event times from the wall clock, or a simulated clock starting an hour ago.",
)
@click.option("--stdout", is_flag=True, help="Print JSON lines (stream, key, value) instead of producing.")
def generate(
    count: int,
    rate: float,
    customers: int,
    seed: int,
    malformed_rate: float,
    edit_rate: float,
    duplicate_rate: float,
    live: bool,
    stdout: bool,
) -> None:
    """Send realistic synthetic surveys and ticket events to the input topics."""
    from stream.generate import Generator, Mix
    from stream.produce import produce

    mix = Mix(malformed_rate=malformed_rate, edit_rate=edit_rate, duplicate_rate=duplicate_rate)
    gen = Generator(seed=seed, customers=customers, mix=mix, live=live)
    if stdout:
        for m in gen.messages(count):
            click.echo(
                json.dumps(
                    {
                        "stream": m.stream,
                        "key": (m.key or b"").decode(),
                        "value": m.value.decode("utf-8", "replace"),
                        "note": m.note,
                    }
                )
            )
        return
    from kafka.errors import KafkaError

    from stream.errors import ConfigurationError
    from stream.security import explain

    try:
        settings = _settings()
        started = time.monotonic()
        sent = produce(settings, gen.messages(count), rate=rate or None)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from None
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:
        raise click.ClickException(explain(settings, exc)) from None
    click.echo(f"sent {sent} messages in {time.monotonic() - started:.1f}s to {settings.broker}")


@main.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@click.option("--rate", default=50.0, show_default=True, help="Generated messages per second.")
@click.option("--malformed-rate", default=0.01, show_default=True, help="Fraction of broken messages.")
@click.option("--seed", default=1, show_default=True, help="Random seed of the generator.")
def demo(duration: float | None, rate: float, malformed_rate: float, seed: int) -> None:
    """Start the embedded broker, a worker and the generator; print alerts as they happen."""
    from stream.demo import run_demo

    run_demo(duration, rate, malformed_rate, seed)


@main.command()
@click.option(
    "--broker",
    default="kafka",
    show_default=True,
    help="kafka (start Apache Kafka here), tansu (embedded), or a kafka://host:port URL.",
)
@click.option(
    "--events", default=1_000_000, show_default=True, help="Generated events for the throughput run."
)
@click.option("--customers", default=50_000, show_default=True, help="Distinct customers in that stream.")
@click.option("--partitions", default=4, show_default=True, help="Partitions of every topic.")
@click.option(
    "--baseline-events",
    default=200_000,
    show_default=True,
    help="Events the bare Faust loop reads (a rate; fewer keeps the run short).",
)
@click.option(
    "--naive-events",
    default=50_000,
    show_default=True,
    help="Events the idiomatic per-event Faust pipeline reads.",
)
@click.option(
    "--inprocess-events",
    default=200_000,
    show_default=True,
    help="Events for the in-process measurements (the intake and the floor, no broker).",
)
@click.option(
    "--state-customers",
    default=1_000_000,
    show_default=True,
    help="Distinct customers for the memory and restart measurements.",
)
@click.option("--latency-rate", default=5000.0, show_default=True, help="Events/s of the latency run.")
@click.option("--latency-seconds", default=20.0, show_default=True, help="Length of the latency run.")
@click.option(
    "--pin-worker",
    is_flag=True,
    help="During the latency run, give the worker a core of its own (the broker and the load share the"
    " others), as in a deployment where Kafka and the producers run elsewhere.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Workers (one process each, in one group) for the full pipeline's run; the rest run one.",
)
def bench(
    broker: str,
    events: int,
    customers: int,
    partitions: int,
    baseline_events: int,
    naive_events: int,
    inprocess_events: int,
    state_customers: int,
    latency_rate: float,
    latency_seconds: float,
    pin_worker: bool,
    workers: int,
) -> None:
    """Measure throughput against baselines, alert latency, memory and restart time (last line: JSON)."""
    import orjson

    from stream.bench import run_bench

    result = run_bench(
        broker,
        events,
        customers,
        partitions,
        baseline_events,
        naive_events,
        state_customers,
        latency_rate,
        latency_seconds,
        pin_worker=pin_worker,
        workers=workers,
        inprocess_events=inprocess_events,
    )
    click.echo(orjson.dumps(result).decode())


@main.command("settings")
def show_settings() -> None:
    """Print every setting: environment variable, current value, meaning (secrets masked)."""
    for env, value, doc in _settings().describe():
        click.echo(f"{env:40} {value:30} {doc}")


@main.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for tests and benchmarks."""


def _state_file() -> Path:
    from stream.brokers import CACHE

    return CACHE / "kafka-run" / "state.json"


@kafka.command("start")
@click.option("--port", default=9092, show_default=True)
def kafka_start(port: int) -> None:
    """Fetch Kafka once (Maven Central), start it in the background, print its URL."""
    from stream.brokers import ApacheKafka

    state = _state_file()
    if state.exists():
        raise click.ClickException(f"a Kafka started here is already running ({state}); stop it first")
    broker = ApacheKafka(port=port, workdir=state.parent)
    broker.start()
    assert broker.proc is not None
    state.write_text(json.dumps({"pid": broker.proc.pid, "port": port}))
    click.echo(broker.url)


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the Kafka that ``kafka start`` started and delete its data."""
    import os
    import shutil

    state = _state_file()
    if not state.exists():
        click.echo("no Kafka started by survey-alerts is running")
        return
    pid = json.loads(state.read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(300):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(state.parent, ignore_errors=True)
    click.echo("stopped")


@main.group()
def rules() -> None:
    """Routing rules: check a file, or explain which rule an event matches."""


@rules.command("check")
@click.argument("path", type=click.Path(dir_okay=False))
@click.option("--offline", is_flag=True, help="Do not try to connect to the destinations.")
def rules_check(path: str, offline: bool) -> None:
    """Validate a TOML or YAML rules file (errors name the file, the rule and the field).

    Destinations are checked too: their secrets must be set (they are never printed)
    and, unless --offline, each must accept a connection.
    """
    from alerts.routing import RulesError, load_rules
    from stream.errors import ConfigurationError
    from stream.notify.cli import check_destinations

    try:
        rs = load_rules(path)
        lines = check_destinations(rs, reach=not offline)
    except (RulesError, ConfigurationError) as exc:
        raise click.ClickException(str(exc)) from None
    queues = sorted({r.queue for r in rs.rules} | {rs.default_queue})
    click.echo(
        f"{path}: ok - {len(rs.rules)} rules, {len(rs.playbook)} playbook entries, "
        f"queues {', '.join(queues)}; default {rs.default_queue!r}; "
        f"{len(rs.destinations)} destinations, {len(rs.notify)} notify rules"
    )
    for line in lines:
        click.echo(line)


@main.command()
def notifier() -> None:
    """Deliver alerts, escalations and ops alerts to the destinations of SURVEY_ALERTS_ROUTING_RULES.

    Its own consumer group (SURVEY_ALERTS_NOTIFIER_GROUP); run several to share the work.
    Serves /metrics, /health and /ready on SURVEY_ALERTS_NOTIFIER_WEB_HOST:_PORT.
    """
    import asyncio

    from stream.errors import ConfigurationError
    from stream.notify.main import serve
    from stream.topics import ensure_notifier_topics, ensure_topics

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    for name in ("aiokafka", "kafka"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        ensure_topics(settings)
        ensure_notifier_topics(settings)
        asyncio.run(serve(settings))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@main.group(invoke_without_command=True)
@click.pass_context
def inbox(ctx: click.Context) -> None:
    """The follow-up inbox: web page and JSON API over a read model (SURVEY_ALERTS_INBOX_DB).

    Without a subcommand it runs: consumes the output topics in its own group and serves
    http://SURVEY_ALERTS_INBOX_HOST:SURVEY_ALERTS_INBOX_PORT/ (login from SURVEY_ALERTS_INBOX_USERS).
    """
    if ctx.invoked_subcommand is not None:
        return
    import asyncio

    from stream.errors import ConfigurationError
    from stream.inbox.main import serve
    from stream.topics import ensure_topics

    settings = _settings()
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s] [%(levelname)s] %(name)s: %(message)s")
    for name in ("aiokafka", "kafka", "aiohttp.access"):
        logging.getLogger(name).setLevel(logging.WARNING)
    try:
        ensure_topics(settings)
        asyncio.run(serve(settings))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@inbox.command("hash-password")
@click.password_option("--password", prompt="Password", help="The password (asked for when not given).")
def inbox_hash_password(password: str) -> None:
    """Print an argon2 hash for a user's password_hash in the inbox users file."""
    from stream.inbox.auth import hash_password

    click.echo(hash_password(password))


@inbox.command("hash-token")
@click.argument("token", required=False)
def inbox_hash_token(token: str | None) -> None:
    """Print the token_sha256 of an API token (a new random token is made and printed when none is given)."""
    import secrets

    from stream.inbox.auth import hash_token

    if token is None:
        token = secrets.token_urlsafe(32)
        click.echo(f"token (give it to the API client; it is not stored): {token}")
    click.echo(f'token_sha256 = "{hash_token(token)}"')


@main.command()
@click.option("--period", default="7d", show_default=True, help="Length of the period (s, m, h, d, w).")
@click.option("--until", "until_text", default=None, help="End of the period, RFC 3339 (default: now).")
@click.option(
    "--format",
    "form",
    type=click.Choice(["markdown", "html", "json"]),
    default="markdown",
    show_default=True,
    help="markdown (chat, e-mail), html (a self-contained page), json (every figure, for other systems).",
)
@click.option("--out", type=click.Path(dir_okay=False, writable=True), default=None, help="Write to FILE.")
@click.option("--send", "destination", default=None, help="Hand it to this destination of the rules file.")
def digest(period: str, until_text: str | None, form: str, out: str | None, destination: str | None) -> None:
    """The executive update and escalation review of a period, from the inbox's read model.

    Goals (SURVEY_ALERTS_TARGETS) with n and significant changes, top risks by contact driver,
    escalation review, and asks. The same period always gives the same numbers. Run it from cron
    for a weekly mail: `survey-alerts digest --format html --send leads-mail`.
    """
    import asyncio
    from datetime import UTC, datetime

    from alerts.windows import parse_duration
    from schemas.common import parse_timestamp
    from stream.digest.report import compute, html, markdown, subject
    from stream.errors import ConfigurationError

    settings = _settings()
    try:
        period_s = parse_duration(period)
        until = parse_timestamp(until_text).timestamp() if until_text else datetime.now(UTC).timestamp()
        d = asyncio.run(compute(settings, until, period_s, now=datetime.now(UTC).timestamp()))
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if form == "json":
        import dataclasses

        import orjson

        text = orjson.dumps(dataclasses.asdict(d), option=orjson.OPT_INDENT_2).decode()
    else:
        text = markdown(d) if form == "markdown" else html(d)
    if out:
        Path(out).write_text(text, encoding="utf-8")
        click.echo(f"wrote {out}")
    elif not destination:
        click.echo(text)
    if destination:
        from stream.notify.cli import send_document

        doc = {
            "subject": subject(d),
            "headline": d.headline,
            "on_track": d.on_track,
            "period": f"{period} until {until_text or 'now'}",
            "markdown": markdown(d),
            "html": html(d),
        }
        try:
            outcome = send_document(settings, destination, "digest", doc)
        except ConfigurationError as exc:
            raise click.ClickException(str(exc)) from None
        click.echo(f"{destination}: {outcome.status} - {outcome.detail}")
        if outcome.status != "delivered":
            sys.exit(1)


@main.command()
@click.option("--from", "from_text", required=True, help="Start of the period, RFC 3339.")
@click.option("--to", "to_text", default=None, help="End of the period, RFC 3339 (default: now).")
@click.option(
    "--warmup", default="7d", show_default=True, help="History before --from that rebuilds customer state."
)
@click.option(
    "--rules", type=click.Path(dir_okay=False, exists=True), default=None, help="Routing rules to try."
)
@click.option(
    "--set", "overrides", multiple=True, help="A setting to try, NAME=VALUE (e.g. ces_alert_max=3)."
)
@click.option(
    "--out", type=click.Path(dir_okay=False, writable=True), default=None, help="Write the JSON report."
)
@click.option(
    "--emit", "emit_topic", default=None, help="Write the would-be alerts to this topic (never a live one)."
)
def replay(
    from_text: str,
    to_text: str | None,
    warmup: str,
    rules: str | None,
    overrides: tuple[str, ...],
    out: str | None,
    emit_topic: str | None,
) -> None:
    """What a rule or threshold change would have done on past traffic (nothing goes to live topics).

    Re-runs the real pipeline over the input topics' history in memory and reports the alerts
    and escalations it would raise by kind, queue, rule and severity, and the difference from
    what was actually raised: new, gone, re-routed. With unchanged settings the difference is empty.
    """
    import os

    from alerts.replay import text
    from alerts.windows import parse_duration
    from schemas.common import parse_timestamp
    from stream.errors import ConfigurationError
    from stream.replay import replay as run_replay
    from stream.replay import settings_with

    try:
        live = _settings()
        candidate = settings_with(os.environ, rules, list(overrides))
        start = parse_timestamp(from_text).timestamp()
        end = parse_timestamp(to_text).timestamp() if to_text else None
        rep = run_replay(start, end, parse_duration(warmup), candidate, live, emit_topic)
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(text(rep))
    if out:
        import orjson

        Path(out).write_text(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode())
        click.echo(f"wrote {out}")


@main.group()
def notify() -> None:
    """Notification destinations."""


@notify.command("test")
@click.argument("destination")
@click.option(
    "--type",
    "message_type",
    default="recovery_alert",
    show_default=True,
    type=click.Choice(["recovery_alert", "escalation", "ops_alert", "followup_event"]),
)
def notify_test(destination: str, message_type: str) -> None:
    """Send a sample message to DESTINATION (from SURVEY_ALERTS_ROUTING_RULES) and print the outcome."""
    from stream.errors import ConfigurationError
    from stream.notify.cli import send_test

    settings = _settings()
    try:
        d, outcome, seconds = send_test(
            settings.rules(), destination, message_type, settings.inbox_url, settings.email_domain
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{destination}: {outcome.status} in {seconds * 1000:.0f} ms - {outcome.detail} (id {d.id})")
    if outcome.status != "delivered":
        sys.exit(1)


@rules.command("explain")
@click.argument("path", type=click.Path(dir_okay=False))
@click.argument("event", type=click.File("rb"))
def rules_explain(path: str, event: object) -> None:
    """Show which rule routes EVENT.json (an alert, a ticket event or plain facts) and why."""
    import orjson

    from alerts.routing import Router, RulesError, load_rules

    try:
        router = Router(load_rules(path))
        doc = orjson.loads(event.read())  # type: ignore[attr-defined]
    except (RulesError, orjson.JSONDecodeError) as exc:
        raise click.ClickException(str(exc)) from None
    if not isinstance(doc, dict):
        raise click.ClickException("EVENT must be a JSON object")
    facts = facts_of(doc)
    click.echo("facts: " + ", ".join(f"{k}={v!r}" for k, v in facts.items() if v is not None))
    for line in router.explain(facts):
        click.echo(line)


def facts_of(doc: dict[str, Any]) -> dict[str, Any]:
    """Routing facts of an alert, an escalation, a ticket event or a plain facts object."""
    customer: dict[str, Any] = doc["customer"] if isinstance(doc.get("customer"), dict) else {}
    kind = doc.get("kind") or doc.get("source")
    if doc.get("type") == "escalated":
        kind = "ticket_escalated"
    return {
        "kind": kind,
        "team": doc.get("team"),
        "channel": doc.get("channel"),
        "category": doc.get("category"),
        "priority": doc.get("priority"),
        "customer_tier": doc.get("customer_tier") or customer.get("tier"),
        "account_value": doc.get("account_value") or customer.get("account_value"),
    }


@main.group()
def schemas() -> None:
    """The published JSON Schemas of every input and output."""


@schemas.command("export")
@click.option("--check", is_flag=True, help="Fail if the committed files differ from the code.")
def schemas_export(check: bool) -> None:
    """Write schemas/json/*.schema.json from the pydantic models."""
    from schemas.export import export

    changed = export(check=check)
    if check and changed:
        click.echo("out of date: " + ", ".join(changed), err=True)
        sys.exit(1)
    click.echo("up to date" if not changed else "wrote " + ", ".join(changed))


if __name__ == "__main__":
    main()
