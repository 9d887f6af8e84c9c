"""Generate the committed JSON Schema files from the models (``survey-alerts schemas export``)."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from schemas.inputs import CustomerProfile, FollowupAction, SurveyResponse, TicketEvent
from schemas.outputs import (
    DeadLetter,
    Escalation,
    FeedbackWindow,
    FollowupEvent,
    RecoveryAlert,
    TrendAlert,
)

DIR = Path(__file__).parent / "json"
MODELS: dict[str, type[BaseModel]] = {
    "survey-response": SurveyResponse,
    "customer-profile": CustomerProfile,
    "ticket-event": TicketEvent,
    "followup-action": FollowupAction,
    "recovery-alert": RecoveryAlert,
    "escalation": Escalation,
    "feedback-window": FeedbackWindow,
    "dead-letter": DeadLetter,
    "trend-alert": TrendAlert,
    "followup-event": FollowupEvent,
}


def render(model: type[BaseModel]) -> str:
    """The JSON Schema text of one model, as committed."""
    schema = model.model_json_schema(
        mode="serialization" if model.__module__.endswith("outputs") else "validation"
    )
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def export(check: bool = False, directory: Path = DIR) -> list[str]:
    """Write every schema file; returns the names that changed (only compares with ``check``)."""
    directory.mkdir(parents=True, exist_ok=True)
    changed = []
    for name, model in MODELS.items():
        path = directory / f"{name}.schema.json"
        text = render(model)
        if not path.exists() or path.read_text() != text:
            changed.append(path.name)
            if not check:
                path.write_text(text)
    return changed
