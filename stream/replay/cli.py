"""The replay command: ``survey-alerts replay``."""

from __future__ import annotations

from pathlib import Path

import click

from stream.console import configure_logging, settings_or_exit


@click.command()
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

    from aiokafka.errors import KafkaError as AIOKafkaError

    from alerts.replay import text
    from alerts.windows import parse_duration
    from schemas.common import parse_timestamp
    from stream.errors import ConfigurationError
    from stream.kafka.security import explain
    from stream.replay.run import replay as run_replay
    from stream.replay.run import settings_with

    try:
        live = settings_or_exit()
        configure_logging(live)
        candidate = settings_with(os.environ, rules, list(overrides))
        start = parse_timestamp(from_text).timestamp()
        end = parse_timestamp(to_text).timestamp() if to_text else None
        if end is not None and end <= start:
            raise ValueError(f"--to ({to_text}) must be after --from ({from_text})")
        rep = run_replay(start, end, parse_duration(warmup), candidate, live, emit_topic)
    except (ConfigurationError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    except (AIOKafkaError, TimeoutError) as exc:
        raise click.ClickException(explain(live, exc)) from None
    click.echo(text(rep))
    if out:
        import orjson

        Path(out).write_text(orjson.dumps(rep, option=orjson.OPT_INDENT_2).decode())
        click.echo(f"wrote {out}")
