"""Creating and checking the service's topics with kafka-python's admin client."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterable, Mapping

from kafka import KafkaAdminClient, KafkaConsumer
from kafka.admin import NewTopic
from kafka.errors import KafkaError, TopicAlreadyExistsError

from stream.errors import ConfigurationError
from stream.kafka.security import Causes, explain, kafka_python_options
from stream.settings import Settings

log = logging.getLogger(__name__)


def service_topics(settings: Settings) -> list[str]:
    """Every topic the worker reads or writes (escalation queues are created on use)."""
    s = settings
    return [
        s.survey_responses_topic,
        s.ticket_events_topic,
        s.followup_actions_topic,
        s.customer_profiles_topic,
        s.rekey_topic,
        s.partials_topic,
        s.followups_topic,
        s.recovery_alerts_topic,
        s.followup_events_topic,
        s.ops_alerts_topic,
        s.feedback_windows_topic,
        s.dlq_topic,
    ]


def output_pattern(settings: Settings, topics: Iterable[str]) -> str:
    """A subscription pattern for ``topics`` and every escalation queue (queues appear as they are used)."""
    names = "|".join(re.escape(t) for t in topics)
    return f"^({names}|{re.escape(settings.escalations_prefix)}.+)$"


class Outputs:
    """The worker's output topics a reader subscribes to (every escalation queue included), by kind.

    ``kinds`` maps the setting naming a topic (``"recovery_alerts_topic"``) to the kind of
    document it carries; escalation queues appear as they are used, so they are matched by prefix.
    """

    def __init__(self, settings: Settings, kinds: Mapping[str, str], escalation: str = "escalation") -> None:
        self.kinds = {getattr(settings, name): kind for name, kind in kinds.items()}
        self.pattern = output_pattern(settings, self.kinds)
        self.prefix = settings.escalations_prefix
        self.escalation = escalation

    def kind_of(self, topic: str) -> str | None:
        """The kind of document ``topic`` carries (None for a topic that is not an output)."""
        found = self.kinds.get(topic)
        if found is None and topic.startswith(self.prefix):
            return self.escalation
        return found


def ensure_topics(
    settings: Settings, topics: list[str] | None = None, timeout_s: float | None = None
) -> None:
    """Create missing topics with ``settings.partitions`` and check the inputs agree.

    Inputs must be co-partitioned with the customer state, so an input topic that
    already exists with another partition count is a configuration error, raised
    here with the fix instead of surfacing later as a Faust crash.
    """
    names = topics if topics is not None else service_topics(settings)
    admin = _admin(settings, timeout_s)
    try:
        existing = set(admin.list_topics())
        # a profile topic is compacted (the newest record of a customer is the profile); a CRM
        # connector usually creates it, with its own settings, before the worker ever runs
        compacted = {settings.customer_profiles_topic: {"cleanup.policy": "compact"}}
        new = [
            NewTopic(n, settings.partitions, settings.replication_factor, topic_configs=compacted.get(n, {}))
            for n in names
            if n not in existing
        ]
        if new:
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                admin.create_topics(new)
            log.info("created topics: %s", ", ".join(t.name for t in new))
    finally:
        admin.close()
    counts = partition_counts(
        settings,
        [
            settings.survey_responses_topic,
            settings.ticket_events_topic,
            settings.followup_actions_topic,
            settings.customer_profiles_topic,
            settings.rekey_topic,
            settings.followups_topic,
        ],
        timeout_s,
    )
    for name, count in counts.items():
        if count != settings.partitions:
            raise ConfigurationError(
                f"topic {name!r} has {count} partitions but SURVEY_ALERTS_PARTITIONS={settings.partitions}; "
                "inputs must match the state's partitions: set SURVEY_ALERTS_PARTITIONS to "
                f"{count} or recreate the topic"
            )


def ensure_notifier_topics(settings: Settings, timeout_s: float | None = None) -> None:
    """The notifier's topics: its delivery log and dead letters, and its compacted state (one partition)."""
    ensure_topics(
        settings, [settings.notification_deliveries_topic, settings.notification_dlq_topic], timeout_s
    )
    admin = _admin(settings, timeout_s)
    try:
        if settings.notifier_state_topic not in set(admin.list_topics()):
            state = NewTopic(
                settings.notifier_state_topic,
                1,
                settings.replication_factor,
                topic_configs={"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"},
            )
            with contextlib.suppress(TopicAlreadyExistsError):
                admin.create_topics([state])
            log.info("created topic %s", settings.notifier_state_topic)
    finally:
        admin.close()
    partition_counts(settings, [settings.notifier_state_topic], timeout_s)


def partition_counts(settings: Settings, topics: list[str], timeout_s: float | None = None) -> dict[str, int]:
    """How many partitions each topic has, waiting (30 s unless told) for fresh topics to appear."""
    timeout_s = 30.0 if timeout_s is None else timeout_s
    consumer = KafkaConsumer(**kafka_python_options(settings))
    try:
        deadline = time.monotonic() + timeout_s
        counts: dict[str, int] = {}
        for name in topics:
            while True:
                parts = consumer.partitions_for_topic(name)
                if parts:
                    counts[name] = len(parts)
                    break
                if time.monotonic() > deadline:
                    raise ConfigurationError(f"topic {name!r} did not appear within {timeout_s:.0f}s")
                time.sleep(0.2)
                consumer._client.cluster.request_update()
        return counts
    finally:
        consumer.close()


def _admin(settings: Settings, timeout_s: float | None) -> KafkaAdminClient:
    """An admin client, trying for ``timeout_s`` (default SURVEY_ALERTS_CONNECT_TIMEOUT_S)."""
    limit = settings.connect_timeout_s if timeout_s is None else timeout_s
    deadline = time.monotonic() + limit
    while True:
        with Causes() as causes:
            try:
                left = max(1.0, deadline - time.monotonic())
                return KafkaAdminClient(
                    client_id=f"{settings.app_id}-admin",
                    bootstrap_timeout_ms=int(left * 1000),  # kafka-python's own default is 30 s
                    **kafka_python_options(settings),
                )
            except KafkaError as exc:
                why = explain(settings, exc, causes)
                final = ("refused the credentials", "TLS handshake", "SASL login")
                if any(f in why for f in final) or time.monotonic() > deadline:
                    raise ConfigurationError(why) from None  # no retry changes those
        time.sleep(0.5)
