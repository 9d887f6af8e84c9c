"""How every Kafka client the project opens connects and authenticates, from one place.

The worker (Faust and aiokafka), the admin and topic checks (kafka-python), the generator, the
notifier, the inbox, the replay and the bench all take their options from here: TLS with a CA
file, optional client certificate and key (mutual TLS), SASL PLAIN or SCRAM-SHA-256/512.
A failure to connect is explained naming the setting to check, never printing a secret.
"""

from __future__ import annotations

import logging
import ssl
from typing import Any

from stream.errors import ConfigurationError
from stream.settings import Settings


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The TLS context of SSL and SASL_SSL connections (None for plaintext ones)."""
    if "SSL" not in settings.kafka_protocol:
        return None
    try:
        context = ssl.create_default_context(cafile=str(settings.ssl_cafile) if settings.ssl_cafile else None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(
            f"SURVEY_ALERTS_SSL_CAFILE cannot be read as PEM certificates: {exc}"
        ) from None
    context.check_hostname = settings.ssl_check_hostname
    if settings.ssl_certfile is not None and settings.ssl_keyfile is not None:
        password = settings.ssl_key_password.get_secret_value() if settings.ssl_key_password else None
        try:
            context.load_cert_chain(str(settings.ssl_certfile), str(settings.ssl_keyfile), password)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigurationError(
                f"SURVEY_ALERTS_SSL_CERTFILE / _SSL_KEYFILE cannot be loaded: {type(exc).__name__}"
            ) from None
    return context


class _GrouplessOnPurpose(logging.Filter):
    """kafka-python warns "group_id is None: disabling auto-commit" for every consumer without a group.

    The project opens such consumers on purpose (topic checks, replay, the demo's watcher):
    the warning says nothing to an operator there, and repeated it buried the real ones.
    """

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("group_id is None")


logging.getLogger("kafka.coordinator.consumer").addFilter(_GrouplessOnPurpose())


def kafka_python_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for kafka-python clients (admin, consumers, producers)."""
    options: dict[str, Any] = {"bootstrap_servers": settings.bootstrap_servers}
    protocol = settings.kafka_protocol
    if protocol == "PLAINTEXT":
        return options
    options["security_protocol"] = protocol
    context = ssl_context(settings)
    if context is not None:
        options["ssl_context"] = context
    if protocol.startswith("SASL"):
        assert settings.sasl_username is not None and settings.sasl_password is not None  # (Settings checks)
        options.update(
            sasl_mechanism=settings.sasl_mechanism,
            sasl_plain_username=settings.sasl_username,
            sasl_plain_password=settings.sasl_password.get_secret_value(),
        )
    return options


def aiokafka_options(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for aiokafka clients (the notifier's, the inbox's, the replay's, the bench's)."""
    return kafka_python_options(settings)


def faust_credentials(settings: Settings) -> Any:
    """Faust's ``broker_credentials`` for these settings (None for plaintext)."""
    import faust

    protocol = settings.kafka_protocol
    if protocol == "PLAINTEXT":
        return None
    context = ssl_context(settings)
    if protocol == "SSL":
        return faust.SSLCredentials(context)
    assert settings.sasl_password is not None
    credentials = faust.SASLCredentials(
        username=settings.sasl_username,
        password=settings.sasl_password.get_secret_value(),
        ssl_context=context,
        mechanism=settings.sasl_mechanism,
    )
    return credentials


class Causes(logging.Handler):
    """Collects what the Kafka clients log while connecting: kafka-python reports a refused login or
    a failed TLS handshake only in its log, then raises a bare timeout."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.seen.append(record.getMessage()[:500])

    def __enter__(self) -> Causes:
        logging.getLogger("kafka").addHandler(self)
        return self

    def __exit__(self, *exc: object) -> None:
        logging.getLogger("kafka").removeHandler(self)


def explain(settings: Settings, exc: BaseException, causes: Causes | None = None) -> str:
    """What a failure to reach the broker means, naming the settings to check (never their values)."""
    name = type(exc).__name__
    text = f"{name}: {exc} " + " ".join(causes.seen if causes is not None else [])
    protocol = settings.kafka_protocol
    if "Authentication" in name or "SaslAuthentication" in text or "invalid credentials" in text:  # told
        return (
            f"Kafka at {settings.broker} refused the credentials: check SURVEY_ALERTS_SASL_USERNAME, "
            f"SURVEY_ALERTS_SASL_PASSWORD and SURVEY_ALERTS_SASL_MECHANISM ({settings.sasl_mechanism})"
        )
    if isinstance(exc, ssl.SSLError) or "SSLError" in text or "CERTIFICATE_VERIFY_FAILED" in text:
        return (
            f"the TLS handshake with Kafka at {settings.broker} failed: is its certificate signed by a CA in "
            "SURVEY_ALERTS_SSL_CAFILE, and does it name the host (SURVEY_ALERTS_SSL_CHECK_HOSTNAME)?"
        )
    if protocol.startswith("SASL") and "socket disconnected" in text and "ECONNREFUSED" not in text:
        # a broker that rejects a SCRAM login closes the connection, often before kafka-python has
        # read its answer: all it logs is the disconnect (seen within a short connect timeout)
        return (
            f"Kafka at {settings.broker} closed every connection during the SASL login: it probably refused"
            " the credentials: check SURVEY_ALERTS_SASL_USERNAME, SURVEY_ALERTS_SASL_PASSWORD and"
            f" SURVEY_ALERTS_SASL_MECHANISM ({settings.sasl_mechanism}), and that the listener is {protocol}"
        )
    hint = ""
    if "SSL" in protocol:
        hint = (
            " (over TLS: check SURVEY_ALERTS_SSL_CAFILE trusts the broker's certificate, and "
            "SURVEY_ALERTS_SECURITY_PROTOCOL matches the listener)"
        )
    elif protocol.startswith("SASL"):
        hint = " (check SURVEY_ALERTS_SASL_USERNAME, _SASL_PASSWORD, _SASL_MECHANISM and the listener)"
    return f"cannot reach Kafka at {settings.broker} with {protocol}{hint}: {name}"
