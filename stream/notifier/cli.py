"""The notifier's commands: ``survey-alerts notifier`` and ``notify test``."""

from __future__ import annotations

import sys

import click

from stream.console import configure_logging, settings_or_exit


@click.command()
def notifier() -> None:
    """Deliver alerts, escalations and ops alerts to the destinations of SURVEY_ALERTS_ROUTING_RULES.

    Its own consumer group (SURVEY_ALERTS_NOTIFIER_GROUP); run several to share the work.
    Serves /metrics, /health and /ready on SURVEY_ALERTS_NOTIFIER_WEB_HOST:_PORT.
    """
    import asyncio

    from stream.errors import ConfigurationError
    from stream.kafka.topics import ensure_notifier_topics, ensure_topics
    from stream.notifier.main import serve

    settings = settings_or_exit()
    configure_logging(settings)
    try:
        ensure_topics(settings)
        ensure_notifier_topics(settings)
        asyncio.run(serve(settings))
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
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
    from stream.destinations.direct import send_test
    from stream.errors import ConfigurationError

    settings = settings_or_exit()
    try:
        d, outcome, seconds = send_test(
            settings.rules(), destination, message_type, settings.inbox_url, settings.email_domain
        )
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"{destination}: {outcome.status} in {seconds * 1000:.0f} ms - {outcome.detail} (id {d.id})")
    if outcome.status != "delivered":
        sys.exit(1)
