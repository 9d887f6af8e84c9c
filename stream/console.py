"""What every command shares: the settings (or a clear one-line error and exit 1), and logging."""

from __future__ import annotations

import logging
import os
import sys
from datetime import UTC, datetime

import click
import orjson

from stream.errors import ConfigurationError
from stream.settings import Settings


def settings_or_exit() -> Settings:
    """The settings, or a clear error (naming the variable, never quoting a value) and exit 1.

    A ``SURVEY_ALERTS_*`` variable that is no setting is a warning on standard error.
    """
    for warning in Settings.unknown_variables(os.environ):
        click.echo(f"warning: {warning}", err=True)
    try:
        return Settings.load()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None


TEXT_FORMAT = "[%(asctime)s] [%(levelname)s] %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time`` (RFC 3339, UTC), ``level``, ``logger``, ``message``, and
    ``exception`` when there is one. No colour, nothing a log shipper has to parse out."""

    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(doc).decode()


def formatter(settings: Settings) -> logging.Formatter:
    """The formatter ``SURVEY_ALERTS_LOG_FORMAT`` chooses."""
    return JsonFormatter() if settings.log_format == "json" else logging.Formatter(TEXT_FORMAT)


def level(settings: Settings) -> int:
    """``SURVEY_ALERTS_LOG_LEVEL`` as a logging level."""
    return {"debug": logging.DEBUG, "info": logging.INFO, "error": logging.ERROR}.get(
        settings.log_level, logging.WARNING
    )


def configure_logging(settings: Settings, quiet: tuple[str, ...] = ("aiokafka", "kafka")) -> None:
    """Log to standard error at ``SURVEY_ALERTS_LOG_LEVEL`` in ``SURVEY_ALERTS_LOG_FORMAT``; the Kafka
    clients' own chatter only from WARNING up."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(settings))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level(settings))
    for name in quiet:
        logging.getLogger(name).setLevel(max(level(settings), logging.WARNING))
