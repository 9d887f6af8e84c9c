"""The intake batch agent: what it sends, stores and counts for a batch of Faust messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from agents.intake import IntakeAgent
from alerts.pipeline import Pipeline, Topics
from alerts.policy import AlertPolicy
from stream.app import create_app
from stream.metrics import Metrics
from stream.settings import Settings
from stream.state import CustomerStore
from tests.factories import raw, survey, ticket

TOPICS = Topics("survey-responses", "ticket-events", "rekey", "recovery-alerts", "feedback-dlq")


class Table:
    """Stands in for a Faust table: ``data`` plus the changelog records sent."""

    def __init__(self) -> None:
        self.data: dict[bytes, bytes] = {}
        self.changelog: list[tuple[int | None, bytes, bytes]] = []

    def send_changelog(self, partition: int | None, key: bytes, value: bytes) -> asyncio.Future[None]:
        self.changelog.append((partition, key, value))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        fut.set_result(None)
        return fut


def message(
    topic: str, partition: int, offset: int, value: bytes, key: bytes | None = b"k"
) -> ConsumerMessage:
    return ConsumerMessage(
        topic,
        partition,
        offset,
        1_700_000_000.0 + offset,
        0,
        [],
        key,
        value,
        None,
        None,
        None,
        TP(topic, partition),
    )


def make(send_error: Exception | None = None) -> tuple[IntakeAgent, Table, list[tuple[Any, ...]], Metrics]:
    table, sent, metrics = Table(), [], Metrics()

    async def send(
        topic: str, key: bytes | None, value: bytes, partition: int | None, headers: list[tuple[str, bytes]]
    ) -> asyncio.Future[None]:
        sent.append((topic, key, value, partition, headers))
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if send_error is not None:
            fut.set_exception(send_error)
        else:
            fut.set_result(None)
        return fut

    pipeline = Pipeline(TOPICS, AlertPolicy(), lambda cid: 2)
    agent = IntakeAgent(
        pipeline, CustomerStore(table), send, metrics, clock=lambda: datetime(2026, 11, 22, 14, tzinfo=UTC)
    )
    return agent, table, sent, metrics


def test_a_batch_sends_alerts_with_the_version_header_and_saves_state_per_partition() -> None:
    agent, table, sent, metrics = make()
    batch = [
        message("ticket-events", 2, 1, raw(ticket("c1", "t1", "created", customer_tier="gold"))),
        message("survey-responses", 2, 7, raw(survey("c1", "r1", nps=0, ticket_id="t1"))),
        message("survey-responses", 2, 8, b"oops"),
    ]
    asyncio.run(agent(batch))
    topics = [s[0] for s in sent]
    # the gold customer's alert also escalates; its follow-up opens on the internal topic
    assert topics == ["recovery-alerts", "followups", "escalations.billing", "feedback-dlq"]
    assert all(s[4] == [("schema-version", b"1")] for s in sent if s[0] != "followups")
    assert orjson.loads(sent[0][2])["customer"]["tier"] == "gold"
    # one changelog record per changed customer per batch, on the customer's partition
    assert [(p, k) for p, k, _ in table.changelog] == [(2, b"c1")]
    assert table.data[b"c1"] == table.changelog[0][2]
    assert metrics.alerts.labels("detractor", "critical")._value.get() == 1
    assert metrics.invalid.labels("survey-responses", "invalid_json")._value.get() == 1
    assert metrics.customers._value.get() == 1


def test_state_written_by_one_batch_is_read_by_the_next() -> None:
    agent, _, sent, _ = make()
    asyncio.run(agent([message("survey-responses", 2, 1, raw(survey("c1", "r1", nps=0)))]))
    asyncio.run(agent([message("survey-responses", 2, 2, raw(survey("c1", "r1", nps=1)))]))
    # the edit raised no second alert; its follow-up learns the new score
    assert [s[0] for s in sent] == ["recovery-alerts", "followups", "followups"]
    assert orjson.loads(sent[2][2])["op"] == "update" and orjson.loads(sent[2][2])["score"] == 1


def test_a_refused_output_fails_the_batch_so_it_is_not_acked() -> None:
    agent, _, _, _ = make(send_error=RuntimeError("broker said no"))
    with pytest.raises(RuntimeError, match="broker said no"):
        asyncio.run(agent([message("survey-responses", 2, 1, raw(survey("c1", nps=0)))]))


def test_records_for_another_partition_are_forwarded_with_their_origin() -> None:
    agent, table, sent, _ = make()
    asyncio.run(agent([message("survey-responses", 0, 5, raw(survey("c1", nps=0)), key=None)]))
    ((topic, key, _, partition, headers),) = sent
    assert (topic, key, partition) == ("rekey", b"c1", 2)
    assert dict(headers)["survey-alerts-origin"] == b"survey-responses/0/5"
    assert table.changelog == []


def test_the_app_subscribes_batch_topics_once() -> None:
    settings = Settings(app_id="unit-app", partitions=3)
    app = create_app(settings)
    assert set(app.batch_handlers) == {
        "survey-responses",
        "ticket-events",
        "unit-app-rekey",
        "followup-actions",
        "unit-app-followups",
    }
    assert {t for topic in app.topics for t in topic.topics} >= set(app.batch_handlers)
    with pytest.raises(ValueError, match="already has a batch agent"):
        app.batch_agent(app.topic("survey-responses"))(app.batch_handlers["survey-responses"])
