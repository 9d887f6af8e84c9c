"""The digest's command: ``survey-alerts digest``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from stream.console import settings_or_exit


@click.command()
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
@click.option(
    "--allow-empty", is_flag=True, help="Print the digest of a period with no data at all (else: an error)."
)
def digest(
    period: str,
    until_text: str | None,
    form: str,
    out: str | None,
    destination: str | None,
    allow_empty: bool,
) -> None:
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

    settings = settings_or_exit()
    try:
        period_s = parse_duration(period)
        until = parse_timestamp(until_text).timestamp() if until_text else datetime.now(UTC).timestamp()
        d = asyncio.run(compute(settings, until, period_s, now=datetime.now(UTC).timestamp()))
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if not allow_empty and d.alerts == 0 and not d.escalations_by_team and all(g.n == 0 for g in d.goals):
        # "on track, every goal met (0 of 5 measured)" would be mailed by a cron job and believed
        raise click.ClickException(
            f"no data for the period ({period} until {until_text or 'now'}): no alert, escalation or score"
            " in the read model (is the inbox feeding it?); --allow-empty prints the empty digest"
        )
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
        from stream.destinations.direct import send_document

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


@click.group()
def playbook() -> None:
    """The recovery playbook: what the data says agents may spend."""


@playbook.command("suggest")
@click.option("--period", default="30d", show_default=True, help="Length of the period (s, m, h, d, w).")
@click.option("--until", "until_text", default=None, help="End of the period, RFC 3339 (default: now).")
@click.option(
    "--min-resolved",
    type=click.IntRange(min=1),
    default=None,
    help="Resolved follow-ups a kind or driver needs (default: the digest's concession_min_resolved).",
)
def playbook_suggest(period: str, until_text: str | None, min_resolved: int | None) -> None:
    """Print the concession caps the period's resolved follow-ups support, as a rules-file snippet.

    Per alert kind, and per kind and contact driver: the 80th percentile of what recoveries cost
    (none counts as 0), rounded up, as `first_tier.credit` of a `[[playbook]]` entry; the current
    play's action is kept. Amounts in SURVEY_ALERTS_CONCESSION_CURRENCY.
    """
    import asyncio
    from datetime import UTC, datetime

    from alerts.windows import parse_duration
    from schemas.common import parse_timestamp
    from stream.digest.report import suggest
    from stream.errors import ConfigurationError

    settings = settings_or_exit()
    try:
        period_s = parse_duration(period)
        until = parse_timestamp(until_text).timestamp() if until_text else datetime.now(UTC).timestamp()
        click.echo(asyncio.run(suggest(settings, until, period_s, min_resolved)), nl=False)
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
