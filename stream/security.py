"""How every Kafka client the project opens authenticates, from one place."""

from __future__ import annotations

from typing import Any

from stream.settings import Settings


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python clients (admin, consumers, producers)."""
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers}
    if settings.sasl_username is not None and settings.sasl_password is not None:
        options.update(
            security_protocol="SASL_PLAINTEXT",
            sasl_mechanism="PLAIN",
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password.get_secret_value(),
        )
    return options


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (the notifier's, and the benchmarks')."""
    return kafka_python_options(settings)
