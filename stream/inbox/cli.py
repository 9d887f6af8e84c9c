"""The inbox's commands: ``survey-alerts inbox`` and its ``hash-password`` / ``hash-token``."""

from __future__ import annotations

import click

from stream.console import configure_logging, settings_or_exit


@click.group(invoke_without_command=True)
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
    from stream.kafka.topics import ensure_topics

    settings = settings_or_exit()
    configure_logging(settings, quiet=("aiokafka", "kafka", "aiohttp.access"))
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
