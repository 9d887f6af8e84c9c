"""The gate between a stage's outputs and Kafka: what cannot be produced becomes a dead letter.

An output that Kafka would refuse stops a worker for good if it is sent: the
delivery fails, the batch's offsets are never committed, and after a restart the
same record fails again. ``OutputGate.admit`` checks each output before it is
queued: a record over ``max_message_bytes`` (``output_too_large``), a topic name
Kafka does not allow, or a topic that cannot be created (``invalid_destination``)
is replaced by a dead letter that fits, naming the input record that caused it,
and the batch goes on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

from alerts.deadletters import (
    INVALID_DESTINATION,
    OUTPUT_TOO_LARGE,
    dead_letter,
    dead_letter_key,
    record_size,
    source_of,
    topic_problem,
)
from alerts.pipeline import VERSION_HEADER, Record
from schemas.validate import Rejection
from stream.metrics import Metrics

log = logging.getLogger(__name__)

Header = tuple[str, bytes]
Admitted = tuple[str, bytes | None, bytes, list[Header]]
Declare = Callable[[str], Awaitable[None]]

DECLARE_TIMEOUT_S = 30.0
# Kafka's answers to a topic creation that no retry changes (aiokafka's and kafka-python's
# error classes share these names). Note that a client-side KafkaTimeoutError is not one.
REFUSALS = frozenset(
    {
        "InvalidTopicError",
        "TopicAuthorizationFailedError",
        "ClusterAuthorizationFailedError",
        "PolicyViolationError",
        "InvalidReplicationFactorError",
        "InvalidPartitionsError",
        "InvalidConfigurationError",
        "InvalidRequestError",
    }
)


class OutputGate:
    """Admits outputs to their topics, or hands back their dead letter for ``dlq_topic``."""

    def __init__(
        self,
        dlq_topic: str,
        max_message_bytes: int,
        metrics: Metrics,
        declare: Declare | None = None,
        known: Sequence[str] = (),
    ) -> None:
        self.dlq_topic = dlq_topic
        self.limit = max_message_bytes
        self.metrics = metrics
        self.declare = declare
        self.declared: set[str] = set(known)
        self.refused: dict[str, Rejection] = {}  # topic -> why it cannot be created (kept: no retry storm)

    async def admit(
        self,
        topic: str,
        key: bytes | None,
        value: bytes,
        headers: Sequence[Header],
        source: tuple[str, int, int],
        now: datetime,
    ) -> Admitted:
        """``(topic, key, value, headers)`` to produce: the output itself, or its dead letter."""
        why = await self._problem(topic, key, value, headers)
        if why is None:
            return topic, key, value, list(headers)
        self.metrics.outputs_dead_lettered.labels(why.code).inc()
        log.warning(
            "an output for %s from %s/%d@%d became a dead letter: %s",
            topic[:80],
            *source,
            why.code,
        )
        letter = dead_letter(source, key, value, why, now, self.limit, destination_topic=topic[:300])
        return self.dlq_topic, dead_letter_key(key), letter, [VERSION_HEADER]

    async def _problem(
        self, topic: str, key: bytes | None, value: bytes, headers: Sequence[Header]
    ) -> Rejection | None:
        size = record_size(key, value, headers)
        if size > self.limit:
            return Rejection(
                OUTPUT_TOO_LARGE,
                f"the output would take {size} bytes; SURVEY_ALERTS_MAX_MESSAGE_BYTES is {self.limit}",
            )
        if topic in self.declared:
            return None
        refused = self.refused.get(topic)
        if refused is not None:
            return refused
        problem = topic_problem(topic)
        if problem is None and self.declare is not None:
            problem = await self._declare(topic)
        if problem is not None:
            why = Rejection(INVALID_DESTINATION, f"cannot produce to this destination: {problem}", "topic")
            self.refused[topic] = why
            return why
        self.declared.add(topic)
        return None

    async def _declare(self, topic: str) -> str | None:
        """Create ``topic`` if missing: None when it exists now, else why it cannot.

        Only Kafka's answers that retrying cannot change (an invalid name,
        authorization denied, a policy) are reasons; anything else (a timeout, a
        broker that is away) raises, so the batch fails and is processed again.
        """
        assert self.declare is not None
        try:
            await asyncio.wait_for(self.declare(topic), DECLARE_TIMEOUT_S)
        except Exception as exc:
            if type(exc).__name__ not in REFUSALS:
                raise
            return f"Kafka refused to create it ({type(exc).__name__})"
        return None


def source(rec: Record | None, fallback: tuple[str, int, int]) -> tuple[str, int, int]:
    """The input record's (topic, partition, offset), or ``fallback`` for outputs of a timer."""
    if rec is None:
        return fallback
    return source_of(rec.topic, rec.partition, rec.offset, rec.headers)
