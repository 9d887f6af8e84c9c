"""The bench's peer: a plain Quix Streams application doing a subset of the service's work.

Run by ``survey-alerts bench`` as its own process (it needs the ``bench`` extra:
``pip install -e '.[bench]'``). Written as a Quix Streams user would write it:

- ``app.dataframe`` over the survey and ticket topics (``concat``: one state per customer);
- each record validated with the public pydantic models (``schemas.inputs``); what fails is skipped;
- the event time set from ``submitted_at`` / ``occurred_at`` (``set_timestamp``);
- per-customer ``State``: the newest ticket's context and the last five scores;
- an alert with that context for a detractor (NPS 0-6) or a high-effort answer (CES <= 2),
  to an output topic;
- ``group_by`` team + ``tumbling_window(1 h).count()`` of the alerts.

What it leaves out, against the worker: dead letters, edits and duplicates, follow-ups,
escalation routing, SLA clocks, CSAT/NPS/CES windows with standard errors, snapshots,
deterministic deliveries. Its count stops at ``target`` records and writes
``{"events", "seconds", "cpu_s"}`` (process CPU, all threads, from the first record on).
"""

from __future__ import annotations

import sys
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from quixstreams import Application, State, message_context

from schemas.inputs import SurveyResponse, TicketEvent
from stream.tools.bench.counter import TargetCount


def main(
    bootstrap: str, group: str, surveys: str, tickets: str, alerts: str, target: int, out: str, state_dir: str
) -> None:
    """Run the peer until ``target`` input records went through its state, then write the timing."""
    app = Application(
        broker_address=bootstrap,
        consumer_group=group,
        auto_offset_reset="earliest",
        state_dir=state_dir,
        loglevel="WARNING",
    )
    survey_topic = app.topic(surveys, key_deserializer="str", value_deserializer="bytes")
    ticket_topic = app.topic(tickets, key_deserializer="str", value_deserializer="bytes")
    alert_topic = app.topic(alerts, key_serializer="str", value_serializer="json")

    def validate(raw: bytes) -> SurveyResponse | TicketEvent | None:
        model = SurveyResponse if message_context().topic == surveys else TicketEvent
        try:
            return model.model_validate_json(raw)
        except ValidationError:
            return None  # the service would dead-letter it

    def event_time(value: Any, key: Any, timestamp: int, headers: Any) -> int:
        if isinstance(value, SurveyResponse):
            return int(value.submitted_at.timestamp() * 1000)
        if isinstance(value, TicketEvent):
            return int(value.occurred_at.timestamp() * 1000)
        return timestamp

    def track(event: SurveyResponse | TicketEvent | None, state: State[Any, Any]) -> dict[str, Any] | None:
        if isinstance(event, TicketEvent):
            context = state.get("context", {})
            for field in ("team", "customer_tier", "account_value", "category", "channel"):
                if getattr(event, field) is not None:
                    context[field] = getattr(event, field)
            context["ticket_id"] = event.ticket_id
            state.set("context", context)
            return None
        if event is None:
            return None
        scores = event.scores
        recent = [*state.get("recent", []), scores.model_dump(mode="json", exclude_none=True)][-5:]
        state.set("recent", recent)
        reasons = []
        if scores.nps is not None and scores.nps <= 6:
            reasons.append("detractor")
        if scores.ces is not None and scores.ces <= 2:
            reasons.append("high_effort")
        if not reasons:
            return None
        context = state.get("context", {})
        return {
            "alert_id": f"{event.response_id}:{'+'.join(reasons)}",
            "customer_id": event.customer_id,
            "response_id": event.response_id,
            "reasons": reasons,
            "submitted_at": event.submitted_at.isoformat(),
            "team": event.team or context.get("team") or "support",
            "context": context,
            "recent_scores": recent,
        }

    sdf = app.dataframe(survey_topic).concat(app.dataframe(ticket_topic))
    sdf = sdf.apply(validate)
    sdf = sdf.set_timestamp(event_time)
    sdf = sdf.apply(track, stateful=True)
    sdf = sdf.update(TargetCount(target, out))
    raised = sdf.filter(lambda alert: alert is not None)
    raised = raised.to_topic(alert_topic, key=lambda alert: alert["customer_id"])
    per_team = raised.group_by("team").tumbling_window(timedelta(hours=1)).count().final()
    per_team.update(lambda _window: None)
    app.run()


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], a[4], int(a[5]), a[6], a[7])
