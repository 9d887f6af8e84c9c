"""The pure pipeline as the settings configure it: the worker's intake, replay and the bench build it here."""

from __future__ import annotations

from alerts.pipeline import Pipeline, Topics
from stream.kafka.partitioning import owner_function, placement
from stream.settings import Settings


def pipeline_from(settings: Settings) -> Pipeline:
    """The intake's pipeline as ``settings`` configure it (topics, policy, routing, partitions)."""
    topics = Topics(
        survey_responses=settings.survey_responses_topic,
        ticket_events=settings.ticket_events_topic,
        rekey=settings.rekey_topic,
        recovery_alerts=settings.recovery_alerts_topic,
        dlq=settings.dlq_topic,
        escalations_prefix=settings.escalations_prefix,
        followups=settings.followups_topic,
        customer_profiles=settings.customer_profiles_topic,
    )
    return Pipeline(
        topics,
        settings.policy(),
        owner_function(settings.partitions),
        settings.router(),
        settings.ticket_wait_s,
        settings.max_message_bytes,
        place=placement(settings.partitions),
    )
