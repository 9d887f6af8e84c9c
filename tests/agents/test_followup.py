"""The follow-up batch agent: dead letters, forwarding, and state written before a batch is acked."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from faust.types import TP
from faust.types.tuples import ConsumerMessage

from agents.followup import FollowUpAgent
from alerts.pipeline import Pipeline, Record, Topics
from alerts.policy import AlertPolicy
from stream.kafka.partitioning import owner_function
from stream.metrics import Metrics
from stream.settings import Settings
from tests.support.factories import raw, survey
from tests.support.fakes import Outbox, Sent, Table

SETTINGS = Settings(app_id="unit", partitions=4)
NOW = datetime(2026, 11, 22, 14, tzinfo=UTC)


def message(topic: str, partition: int, value: bytes, offset: int = 1) -> ConsumerMessage:
    return ConsumerMessage(
        topic, partition, offset, 1.7e9, 0, [], b"k", value, None, None, None, TP(topic, partition)
    )


def opened(customer_id: str) -> tuple[str, bytes]:
    """The ``open`` follow-up record the intake pipeline emits for a detractor's alert."""
    pipeline = Pipeline(
        Topics("s", "t", "rekey", "alerts", "dlq", followups=SETTINGS.followups_topic),
        AlertPolicy(),
        lambda cid: 0,
    )
    rec = Record("s", 0, 1, None, raw(survey(customer_id, nps=0)))
    result = pipeline.process([rec], lambda cid: None, NOW)
    (emit,) = [e for e in result.emits if e.topic == SETTINGS.followups_topic]
    assert isinstance(emit.value, dict)
    return str(emit.value["alert"]["alert_id"]), orjson.dumps(emit.value)


def run(agent: FollowUpAgent, batch: list[ConsumerMessage]) -> None:
    """Hand the agent a batch as the consumer does, and wait for its delivery."""

    async def go() -> None:
        await (await agent(batch))

    asyncio.run(go())


def make(error: Exception | None = None) -> tuple[FollowUpAgent, Table, list[Sent]]:
    table = Table("followups-changelog")
    sent: list[Sent] = []

    async def send(*args: Any) -> asyncio.Future[None]:
        raise AssertionError("the batch path produces through its outbox")

    agent = FollowUpAgent(
        table, SETTINGS, send, Metrics(), clock=lambda: NOW, outbox=lambda: Outbox(sent, error)
    )
    return agent, table, sent


def test_an_opened_alert_is_stored_on_its_partition_before_the_batch_returns() -> None:
    agent, table, sent = make()
    alert_id, doc = opened("c-1")
    owner = owner_function(SETTINGS.partitions)(alert_id)
    run(agent, [message(SETTINGS.followups_topic, owner, doc)])
    event, (topic, key, value, partition, _) = sent  # its followup-events record, then its state
    assert (event.topic, event.key, orjson.loads(event.value or b"")["type"]) == (
        SETTINGS.followup_events_topic,
        alert_id.encode(),
        "opened",
    )
    assert (topic, partition, key) == ("followups-changelog", owner, alert_id.encode())
    assert table.data[alert_id.encode()] == value
    stored = orjson.loads(value)
    assert stored["alert_id"] == alert_id and stored["status"] == "open" and stored["due_at"] is not None


def test_bad_actions_become_dead_letters_and_foreign_ones_are_forwarded() -> None:
    agent, _, sent = make()
    owner = owner_function(SETTINGS.partitions)("a-2")
    action = {
        "action_id": "x1",
        "alert_id": "a-2",
        "type": "contacted",
        "actor": "sam",
        "at": "2026-11-22T13:05:00Z",
    }
    other = (owner + 1) % SETTINGS.partitions
    run(
        agent,
        [
            message(SETTINGS.followup_actions_topic, other, b"{not json"),
            message(SETTINGS.followup_actions_topic, other, orjson.dumps(action), offset=2),
        ],
    )
    (dlq, forwarded) = sent
    assert (
        dlq.topic == SETTINGS.dlq_topic and orjson.loads(dlq.value or b"")["error"]["code"] == "invalid_json"
    )
    assert (forwarded.topic, forwarded.partition, forwarded.key) == (SETTINGS.followups_topic, owner, b"a-2")
    assert orjson.loads(forwarded.value or b"")["op"] == "action"


def test_a_refused_write_fails_the_batch() -> None:
    agent, _, _ = make(RuntimeError("broker said no"))
    alert_id, doc = opened("c-3")
    owner = owner_function(SETTINGS.partitions)(alert_id)
    with pytest.raises(RuntimeError, match="broker said no"):
        run(agent, [message(SETTINGS.followups_topic, owner, doc)])


def test_the_sla_check_finds_overdue_follow_ups_from_summaries_and_after_a_rebuild() -> None:
    table = Table("followups-changelog")
    sent: list[Sent] = []
    notices: list[tuple[str, bytes | None]] = []
    clock = [NOW]
    restoring = [False]

    async def send(topic: str, key: bytes | None, *rest: Any) -> asyncio.Future[None]:
        notices.append((topic, key))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    agent = FollowUpAgent(
        table,
        SETTINGS,
        send,
        Metrics(),
        clock=lambda: clock[0],
        outbox=lambda: Outbox(sent),
        restoring=lambda: restoring[0],
    )
    alert_id, doc = opened("c-9")
    run(agent, [message(SETTINGS.followups_topic, owner_function(SETTINGS.partitions)(alert_id), doc)])
    asyncio.run(agent.check())  # builds the summaries: nothing is due yet
    assert notices == [] and agent.summaries is not None and alert_id in agent.summaries
    clock[0] = NOW + timedelta(days=30)
    asyncio.run(agent.check())
    lead = SETTINGS.escalations_prefix + "triage-lead"  # a survey with no team goes to triage
    assert [t for t, _ in notices] == [SETTINGS.recovery_alerts_topic, lead]
    # after a rebalance the summaries are rebuilt from the table, once it is restored
    agent.forget()
    restoring[0] = True
    asyncio.run(agent.check())
    assert agent.summaries is None
    restoring[0] = False
    clock[0] = NOW + timedelta(days=31)
    asyncio.run(agent.check())
    assert len(notices) == 4  # the second (and last) notice


def test_an_action_that_lands_while_the_check_sends_is_kept_in_the_table_and_the_changelog() -> None:
    """The check writes a follow-up back at once and logs its newest value, not its own copy."""
    table = Table("followups-changelog")
    sent: list[Sent] = []
    clock = [NOW]
    alert_id, doc = opened("c-7")
    owner = owner_function(SETTINGS.partitions)(alert_id)
    action = {
        "action_id": "x9",
        "alert_id": alert_id,
        "type": "contacted",
        "actor": "sam",
        "at": "2026-12-22T14:00:00Z",
    }
    agent: FollowUpAgent

    async def send(topic: str, key: bytes | None, *rest: Any) -> asyncio.Future[None]:
        # a batch with an action for the same alert runs while the overdue notice is on its way
        await (await agent([message(SETTINGS.followup_actions_topic, owner, orjson.dumps(action), offset=5)]))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done

    agent = FollowUpAgent(
        table, SETTINGS, send, Metrics(), clock=lambda: clock[0], outbox=lambda: Outbox(sent)
    )
    run(agent, [message(SETTINGS.followups_topic, owner, doc)])
    asyncio.run(agent.check())
    clock[0] = NOW + timedelta(days=30)
    changes = asyncio.run(agent.check())
    assert changes.outputs  # the notice went out
    stored = orjson.loads(table.data[alert_id.encode()])
    assert stored["contacted_at"] is not None  # the action was not overwritten by the check's copy
    last = [s for s in sent if s.key == alert_id.encode()][-1]
    assert last.value == table.data[alert_id.encode()]  # a restart restores the same
