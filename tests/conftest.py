"""Session fixtures shared by every test folder: a real Apache Kafka and a real PostgreSQL, on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stream.tools.brokers import ApacheKafka, LocalBroker


@pytest.fixture(scope="session")
def kafka() -> Iterator[LocalBroker]:
    """Single-node Apache Kafka 4.x (KRaft) on loopback, started and stopped by the tests."""
    broker = ApacheKafka()
    broker.start(timeout_s=180)
    yield broker
    broker.stop()


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A PostgreSQL server on loopback for the session; yields its URL."""
    from tests.support.postgres import Postgres

    pg = Postgres()
    pg.start()
    yield pg.url
    pg.stop()
