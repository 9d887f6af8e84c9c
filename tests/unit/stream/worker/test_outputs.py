"""The output gate: legal outputs pass, the rest become dead letters that fit; transient errors raise."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import orjson
import pytest
from aiokafka.errors import InvalidTopicError, KafkaTimeoutError, TopicAuthorizationFailedError

from alerts.deadletters import record_size
from schemas.outputs import DeadLetter
from stream.metrics import Metrics
from stream.worker.outputs import Admitted, OutputGate

NOW = datetime(2026, 11, 22, 14, tzinfo=UTC)
SOURCE = ("survey-responses", 2, 41)
LIMIT = 100_000


def gate_with(error: Exception | None = None) -> tuple[OutputGate, list[str], Metrics]:
    declared: list[str] = []
    metrics = Metrics()

    async def declare(topic: str) -> None:
        declared.append(topic)
        if error is not None:
            raise error

    return OutputGate("dlq", LIMIT, metrics, declare, known=["recovery-alerts"]), declared, metrics


def admit(gate: OutputGate, topic: str, value: bytes) -> Admitted:
    return asyncio.run(gate.admit(topic, b"cust-1", value, [("schema-version", b"1")], SOURCE, NOW))


def letter(value: bytes) -> DeadLetter:
    return DeadLetter.model_validate_json(value)


def test_a_legal_output_passes_and_a_new_topic_is_declared_once() -> None:
    gate, declared, _ = gate_with()
    assert admit(gate, "recovery-alerts", b"{}")[0] == "recovery-alerts"
    assert admit(gate, "escalations.billing", b"{}")[0] == "escalations.billing"
    assert admit(gate, "escalations.billing", b"{}")[0] == "escalations.billing"
    assert declared == ["escalations.billing"]


def test_an_output_over_the_limit_becomes_a_dead_letter_that_fits() -> None:
    gate, _, metrics = gate_with()
    big = orjson.dumps({"comment": "x" * LIMIT})
    topic, key, value, headers = admit(gate, "recovery-alerts", big)
    assert topic == "dlq" and key == b"cust-1" and record_size(key, value, headers) <= LIMIT
    dead = letter(value)
    assert dead.error.code == "output_too_large" and dead.destination_topic == "recovery-alerts"
    assert (dead.source_topic, dead.partition, dead.offset) == SOURCE
    assert dead.payload_truncated and dead.payload_size == len(big)
    assert metrics.outputs_dead_lettered.labels("output_too_large")._value.get() == 1


@pytest.mark.parametrize("topic", ["escalations." + "q" * 250, "escalations.a b", ".."])
def test_an_illegal_topic_name_is_an_invalid_destination_without_asking_kafka(topic: str) -> None:
    gate, declared, _ = gate_with()
    out_topic, _, value, _ = admit(gate, topic, b"{}")
    assert out_topic == "dlq" and declared == []
    assert letter(value).error.code == "invalid_destination"


@pytest.mark.parametrize("error", [TopicAuthorizationFailedError(), InvalidTopicError()])
def test_kafka_refusing_a_topic_is_an_invalid_destination_and_is_not_asked_again(error: Exception) -> None:
    gate, declared, _ = gate_with(error)
    for _ in range(2):
        out_topic, _, value, _ = admit(gate, "escalations.secret", b'{"a": 1}')
        assert out_topic == "dlq"
        dead = letter(value)
        assert dead.error.code == "invalid_destination" and dead.payload == '{"a": 1}'
        assert type(error).__name__ in dead.error.message
    assert declared == ["escalations.secret"]


@pytest.mark.parametrize("error", [KafkaTimeoutError(), ConnectionError("broker away")])
def test_a_transient_failure_raises_so_the_batch_is_processed_again(error: Exception) -> None:
    gate, _, _ = gate_with(error)
    with pytest.raises(type(error)):
        admit(gate, "escalations.billing", b"{}")
    assert "escalations.billing" not in gate.declared and "escalations.billing" not in gate.refused
