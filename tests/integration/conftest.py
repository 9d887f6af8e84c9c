"""Fixtures of the integration tests: a worker with its own topics for a whole module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from stream.tools.brokers import LocalBroker
from tests.support.services import Service


@pytest.fixture(scope="module")
def service(kafka: LocalBroker, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One worker for a test module, on topics no other module uses."""
    svc = Service(kafka, tmp_path_factory.mktemp("worker"))
    svc.start()
    yield svc
    svc.close()
