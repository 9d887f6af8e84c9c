"""What every command shares: the settings, or a clear one-line error and exit 1."""

from __future__ import annotations

import click

from stream.errors import ConfigurationError
from stream.settings import Settings


def settings_or_exit() -> Settings:
    """The settings, or a clear error (naming the variable, never quoting a value) and exit 1."""
    try:
        return Settings.load()
    except ConfigurationError as exc:
        raise click.ClickException(str(exc)) from None
