"""The bench's in-process measurements process every event they are given (tiny sizes: not the speed)."""

from __future__ import annotations

from collections import Counter

import pytest

from schemas.inputs import SurveyResponse, TicketEvent
from schemas.validate import Rejection, parse
from stream.kafka.partitioning import partition_for
from stream.settings import Settings
from stream.tools.bench.inprocess import FLOOR_STAGES, Message, batches, floor, intake, placed
from stream.tools.bench.run import generated, mixed_load

SETTINGS = Settings.from_environ(
    {
        "SURVEY_ALERTS_TICKET_WAIT_S": "0",
        "SURVEY_ALERTS_MAX_POLL_RECORDS": "500",
        "SURVEY_ALERTS_PARTITIONS": "4",
    }
)
PARTITIONS = SETTINGS.partitions


@pytest.fixture(scope="module")
def messages() -> list[Message]:
    return placed(generated(SETTINGS, 3000, mixed_load(300)), PARTITIONS, 1.8e9, 20_000)


def valid(messages: list[Message]) -> list[SurveyResponse | TicketEvent]:
    models = {SETTINGS.survey_responses_topic: SurveyResponse, SETTINGS.ticket_events_topic: TicketEvent}
    found = [parse(models[m.topic], m.value) for m in messages]  # type: ignore[type-var]
    return [e for e in found if not isinstance(e, Rejection)]


def test_records_are_placed_like_kafka_places_them(messages: list[Message]) -> None:
    offsets: Counter[tuple[str, int]] = Counter()
    for m in messages:
        assert m.key is not None and m.partition == partition_for(m.key, PARTITIONS)
        assert m.offset == offsets[(m.topic, m.partition)]
        offsets[(m.topic, m.partition)] += 1
    assert placed([("t", None, b"{}")], PARTITIONS, 0.0, 1.0)[0].partition == 0


def test_records_are_stamped_at_the_producers_pace_in_milliseconds(messages: list[Message]) -> None:
    stamps = [m.timestamp for m in messages]
    assert stamps == sorted(stamps) and stamps[0] == 1.8e9
    assert stamps[-1] == int((1.8e9 + 2999 / 20_000) * 1000) / 1000
    assert all(abs(t * 1000 - round(t * 1000)) < 1e-3 for t in stamps)  # whole milliseconds, as in Kafka


def test_batches_are_grouped_by_partition_in_offset_order(messages: list[Message]) -> None:
    got = list(batches(messages, 700))
    assert [len(b) for b in got] == [700, 700, 700, 700, 200]
    for batch in got:
        assert [(m.topic, m.partition) for m in batch] == sorted((m.topic, m.partition) for m in batch)
        for tp in {(m.topic, m.partition) for m in batch}:
            offsets = [m.offset for m in batch if (m.topic, m.partition) == tp]
            assert offsets == list(range(offsets[0], offsets[0] + len(offsets)))
    assert sorted(m for b in got for m in b) == sorted(messages)


def test_the_floor_keeps_the_state_of_every_valid_event(messages: list[Message]) -> None:
    events = valid(messages)
    assert 0 < len(events) < len(messages)  # the load has malformed records
    result = floor(SETTINGS, messages)
    assert {k.decode() for k in result.store.table.data} == {e.customer_id for e in events}
    per_batch = [
        {e.customer_id for e in valid(batch)} for batch in batches(messages, SETTINGS.max_poll_records)
    ]
    assert result.records == sum(map(len, per_batch))  # one changelog record per changed customer per batch
    tickets = {(e.customer_id, e.ticket_id) for e in events if isinstance(e, TicketEvent)}
    some = next(iter(tickets))
    state = result.store.load(some[0])
    assert state is not None and some[1] in state.tickets
    assert set(result.us_per_event) == set(FLOOR_STAGES) and all(v > 0 for v in result.us_per_event.values())
    assert result.events_per_s > 0


def test_the_intake_consumes_every_event_and_rejects_the_malformed(messages: list[Message]) -> None:
    rate, metrics = intake(SETTINGS, messages)
    registry = metrics.registry
    consumed = sum(
        registry.get_sample_value("survey_alerts_records_consumed_total", {"topic": t}) or 0
        for t in (SETTINGS.survey_responses_topic, SETTINGS.ticket_events_topic)
    )

    def total(family_name: str) -> float:
        return sum(
            s.value
            for family in registry.collect()
            if family.name == family_name
            for s in family.samples
            if s.name.endswith("_total")
        )

    assert consumed == len(messages)
    assert total("survey_alerts_records_invalid") == len(messages) - len(valid(messages))
    assert total("survey_alerts_alerts_raised") > 0  # the load has detractors
    assert rate > 0
