"""Producing generated traffic to Kafka at a steady rate (kafka-python)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable

from kafka import KafkaProducer

from stream.kafka.security import kafka_python_options
from stream.settings import Settings
from stream.tools.generate import Message


def producer_for(settings: Settings) -> KafkaProducer:
    """A producer that waits for all replicas and batches briefly."""
    return KafkaProducer(
        **kafka_python_options(settings),
        bootstrap_timeout_ms=int(settings.connect_timeout_s * 1000),
        acks="all",
        linger_ms=5,
        retries=5,
        max_in_flight_requests_per_connection=1,
    )


def produce(
    settings: Settings,
    messages: Iterable[Message],
    rate: float | None = None,
    should_stop: Callable[[], bool] = lambda: False,
    producer: KafkaProducer | None = None,
) -> int:
    """Send ``messages`` to the input topics, at most ``rate`` per second; returns the count."""
    own = producer is None
    prod = producer or producer_for(settings)
    topics = {
        "survey": settings.survey_responses_topic,
        "ticket": settings.ticket_events_topic,
        "profile": settings.customer_profiles_topic,
    }
    started = time.monotonic()
    sent = 0
    try:
        for msg in messages:
            if should_stop():
                break
            if rate:
                ahead = sent / rate - (time.monotonic() - started)
                if ahead > 0:
                    time.sleep(ahead)
            prod.send(topics[msg.stream], key=msg.key, value=msg.value)
            sent += 1
        prod.flush()
    finally:
        if own:
            prod.close()
    return sent
