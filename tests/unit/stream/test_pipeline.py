"""The pipeline as the settings build it: follow-ups placed by their alert id."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson

from alerts.customer import CustomerState
from alerts.pipeline import Record
from stream.kafka.partitioning import partition_for
from stream.pipeline import pipeline_from
from stream.settings import Settings


def test_follow_ups_land_on_their_alert_ids_partition() -> None:
    settings = Settings(partitions=7)
    pipeline = pipeline_from(settings)
    records = [
        Record(
            settings.survey_responses_topic,
            partition_for(f"c{i}".encode(), 7),
            i,
            f"c{i}".encode(),
            orjson.dumps(
                {
                    "response_id": f"r{i}",
                    "customer_id": f"c{i}",
                    "scores": {"nps": 1},
                    "submitted_at": "2026-12-07T10:00:00Z",
                }
            ),
            timestamp=datetime(2026, 12, 7, 10, tzinfo=UTC).timestamp(),
        )
        for i in range(40)
    ]
    store: dict[str, CustomerState] = {}
    result = pipeline.process(records, store.get, datetime(2026, 12, 7, 10, 1, tzinfo=UTC))
    followups = [e for e in result.emits if e.topic == settings.followups_topic]
    assert len(followups) == 40
    for emit in followups:
        assert emit.key is not None
        assert emit.partition == partition_for(emit.key, 7)
    assert len({e.partition for e in followups}) > 1
