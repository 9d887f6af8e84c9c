"""``survey-alerts``: the command group; one subcommand per thing a person does.

Each process's commands live with it (``stream.worker.cli``, ``stream.notifier.cli``,
``stream.inbox.cli``, ``stream.digest.cli``, ``stream.replay.cli``, and the tools'
``stream.tools.cli``); this module gathers them and holds the few that belong to no process
(``settings``, ``rules``, ``schemas``). It is the composition root of the processes: the one
place that may hand one process's parts to another (the notifier run inside the worker).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

import click

from stream.console import settings_or_exit
from stream.digest.cli import digest, playbook
from stream.inbox.cli import inbox
from stream.notifier.cli import notifier, notify
from stream.replay.cli import replay
from stream.tools import cli as tools
from stream.worker.cli import worker_command

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from stream.notifier.service import Notifier
    from stream.settings import Settings


@click.group()
@click.version_option(package_name="survey-alerts", prog_name="survey-alerts")
def main() -> None:
    """Real-time survey alerts: rolling CSAT/NPS/CES, recovery alerts and routing on Kafka."""


@main.command("settings")
def show_settings() -> None:
    """Print every setting: environment variable, current value, meaning (secrets masked)."""
    for env, value, doc in settings_or_exit().describe():
        click.echo(f"{env:40} {value:30} {doc}")


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
    from stream.destinations.direct import check_destinations
    from stream.errors import ConfigurationError

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
    """Write schemas/json/*.schema.json and the inbox API's schemas/openapi.json from the pydantic models."""
    from pathlib import Path

    import schemas as package
    from schemas.export import export
    from stream.inbox.api import render

    changed = export(check=check)
    document = Path(package.__file__).parent / "openapi.json"  # the inbox API's, from its models
    if not document.exists() or document.read_text() != render():
        changed.append(document.name)
        if not check:
            document.write_text(render())
    if check and changed:
        click.echo("out of date: " + ", ".join(changed), err=True)
        sys.exit(1)
    click.echo("up to date" if not changed else "wrote " + ", ".join(changed))


def notifier_in_worker(settings: Settings, registry: CollectorRegistry) -> list[Notifier]:
    """The notifier the worker runs beside its agents with ``SURVEY_ALERTS_NOTIFY_IN_WORKER``."""
    from stream.notifier.main import in_worker

    return in_worker(settings, registry)


for command in (
    worker_command(companions=notifier_in_worker),
    notifier,
    notify,
    inbox,
    digest,
    playbook,
    replay,
    tools.generate,
    tools.demo,
    tools.bench,
    tools.kafka,
):
    main.add_command(command)


if __name__ == "__main__":
    main()
