"""The intake batch agent: what it sends, stores and counts for a batch of Faust messages."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from agents.intake import IntakeAgent
from alerts.pipeline import Pipeline, Topics
from alerts.policy import AlertPolicy
from stream.metrics import Metrics
from stream.settings import Settings
from stream.worker.main import create_app
from stream.worker.state import CustomerStore
from tests.support.factories import raw, survey, ticket
from tests.support.fakes import Outbox, Sent, Table

TOPICS = Topics("survey-responses", "ticket-events", "rekey", "recovery-alerts", "feedback-dlq")


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


def make(send_error: Exception | None = None) -> tuple[IntakeAgent, Table, list[Sent], Metrics]:
    table, metrics = Table(), Metrics()
    sent: list[Sent] = []
    pipeline = Pipeline(TOPICS, AlertPolicy(), lambda cid: 2)
    agent = IntakeAgent(
        pipeline,
        CustomerStore(table),
        lambda: Outbox(sent, send_error),
        metrics,
        clock=lambda: datetime(2026, 11, 22, 14, tzinfo=UTC),
    )
    return agent, table, sent, metrics


def run(agent: IntakeAgent, *batches: list[ConsumerMessage]) -> None:
    """Hand the agent its batches as the consumer does, and wait for their delivery."""

    async def go() -> None:
        delivered = [await agent(batch) for batch in batches]
        for d in delivered:
            await d

    asyncio.run(go())


def test_a_batch_sends_alerts_with_the_version_header_and_saves_state_per_partition() -> None:
    agent, table, sent, metrics = make()
    batch = [
        message("ticket-events", 2, 1, raw(ticket("c1", "t1", "created", customer_tier="gold"))),
        message("survey-responses", 2, 7, raw(survey("c1", "r1", nps=0, ticket_id="t1"))),
        message("survey-responses", 2, 8, b"oops"),
    ]
    run(agent, batch)
    changelog = [s for s in sent if s[0] == "customers-changelog"]
    sent = [s for s in sent if s[0] != "customers-changelog"]
    topics = [s[0] for s in sent]
    # the gold customer's alert also escalates; its follow-up opens on the internal topic
    assert topics == ["recovery-alerts", "followups", "escalations.billing", "feedback-dlq"]
    assert all(s[4] == [("schema-version", b"1")] for s in sent if s[0] != "followups")
    assert orjson.loads(sent[0].value or b"")["customer"]["tier"] == "gold"
    # one changelog record per changed customer per batch, on the customer's partition
    assert [(p, k) for _, k, _, p, _ in changelog] == [(2, b"c1")]
    assert table.data[b"c1"] == changelog[0][2]
    assert metrics.alerts.labels("detractor", "critical")._value.get() == 1
    assert metrics.invalid.labels("survey-responses", "invalid_json")._value.get() == 1
    assert metrics.registry.get_sample_value("survey_alerts_customers_in_state") == 1


def test_state_written_by_one_batch_is_read_by_the_next() -> None:
    agent, _, sent, _ = make()
    run(
        agent,
        [message("survey-responses", 2, 1, raw(survey("c1", "r1", nps=0)))],
        [message("survey-responses", 2, 2, raw(survey("c1", "r1", nps=1)))],
    )
    # the edit raised no second alert; its follow-up learns the new score
    outputs = [s for s in sent if s[0] != "customers-changelog"]
    assert [s[0] for s in outputs] == ["recovery-alerts", "followups", "followups"]
    update = orjson.loads(outputs[2].value or b"")
    assert update["op"] == "update" and update["score"] == 1


def test_customers_go_out_only_after_the_outputs_of_their_batch_and_of_every_earlier_one() -> None:
    agent, _, sent, _ = make()

    async def go() -> None:
        first = await agent([message("survey-responses", 2, 1, raw(survey("c1", "r1", nps=0)))])
        # the next batch is processed (and its alert sent) while the first is still on its way
        second = await agent([message("survey-responses", 2, 2, raw(survey("c2", "r2", nps=0)))])
        assert not second.done()
        await second
        assert first.done()

    asyncio.run(go())
    order = [(topic, key) for topic, key, *_ in sent if topic != "followups"]
    assert sorted(order) == sorted(
        [
            ("recovery-alerts", b"c1"),
            ("recovery-alerts", b"c2"),
            ("customers-changelog", b"c1"),
            ("customers-changelog", b"c2"),
        ]
    )
    # customer state is cumulative: each batch's lands after every alert it knows of
    assert order.index(("customers-changelog", b"c1")) > order.index(("recovery-alerts", b"c1"))
    assert order.index(("customers-changelog", b"c2")) > max(
        order.index(("recovery-alerts", b"c1")),
        order.index(("recovery-alerts", b"c2")),
        order.index(("customers-changelog", b"c1")),
    )


def test_a_failed_delivery_fails_every_batch_handed_over_after_it() -> None:
    failing = [RuntimeError("broker said no")]
    agent, _, sent, _ = make()
    agent.outbox = lambda: Outbox(sent, failing[0] if failing else None)

    async def go() -> tuple[BaseException | None, BaseException | None]:
        first = await agent([message("survey-responses", 2, 1, raw(survey("c1", nps=0)))])
        failing.clear()
        second = await agent([message("survey-responses", 2, 2, raw(survey("c2", nps=0)))])
        results = await asyncio.gather(first, second, return_exceptions=True)
        return results[0], results[1]

    first, second = asyncio.run(go())
    assert isinstance(first, RuntimeError) and second is first
    # the second batch's alert may be out (a replay re-sends it with the same id), but no
    # customer state after the failure: a restart replays both batches from their offsets
    assert [s[0] for s in sent if s[0].endswith("-changelog")] == []


def test_a_refused_output_fails_the_batch_so_it_is_not_acked() -> None:
    agent, _, _, _ = make(send_error=RuntimeError("broker said no"))
    with pytest.raises(RuntimeError, match="broker said no"):
        run(agent, [message("survey-responses", 2, 1, raw(survey("c1", nps=0)))])


def test_records_for_another_partition_are_forwarded_with_their_origin() -> None:
    agent, table, sent, _ = make()
    run(agent, [message("survey-responses", 0, 5, raw(survey("c1", nps=0)), key=None)])
    ((topic, key, _, partition, headers),) = sent  # no state: the record is not this partition's
    assert (topic, key, partition) == ("rekey", b"c1", 2)
    assert dict(headers)["survey-alerts-origin"] == b"survey-responses/0/5"
    assert table.data == {}


def test_the_app_subscribes_batch_topics_once() -> None:
    settings = Settings(app_id="unit-app", partitions=3)
    app = create_app(settings)
    assert set(app.batch_handlers) == {
        "survey-responses",
        "ticket-events",
        "customer-profiles",
        "unit-app-rekey",
        "followup-actions",
        "unit-app-followups",
        "unit-app-window-partials",
    }
    assert {t for topic in app.topics for t in topic.topics} >= set(app.batch_handlers)
    with pytest.raises(ValueError, match="already has a batch agent"):
        app.batch_agent(app.topic("survey-responses"))(app.batch_handlers["survey-responses"])


def test_the_timer_asks_for_due_held_surveys_and_the_batch_that_reads_the_request_releases_them() -> None:
    agent, table, sent, _ = make()
    agent.pipeline.ticket_wait_s = 5.0
    held_at = datetime(2026, 11, 22, 14, tzinfo=UTC).timestamp()  # the agent's clock

    async def go() -> None:
        await agent.release_held()  # the first tick finds the held surveys in the table: none yet
        await (
            await agent([message("survey-responses", 2, 1, raw(survey("c1", "r1", nps=0, ticket_id="t9")))])
        )
        assert agent.held == {"c1": 2} and agent.due == {"c1": held_at + 5.0}
        await agent.release_held()  # due (the clock is in the past): one request, on the rekey topic
        (request,) = [s for s in sent if s.topic == "rekey"]
        assert (request.key, request.partition) == (b"c1", 2)
        assert ("survey-alerts-kind", b"release_held") in request.headers
        await agent.release_held()  # asked already: not again until the customer's state changes
        assert len([s for s in sent if s.topic == "rekey"]) == 1
        read_back = ConsumerMessage(
            "rekey", 2, 5, held_at + 10, 0, request.headers, request.key, request.value,
            None, None, None, TP("rekey", 2),
        )  # fmt: skip
        await (await agent([read_back]))

    asyncio.run(go())
    (alert,) = [orjson.loads(s.value or b"") for s in sent if s.topic == "recovery-alerts"]
    assert (alert["response_id"], alert["kind"]) == ("r1", "detractor")
    assert agent.held == {} and agent.due == {}
    stored = CustomerStore(table).load("c1")
    assert stored is not None and stored.held == []
