"""Wire contracts: pydantic models for every message the service reads or writes.

No I/O lives here. ``schemas.validate`` turns raw bytes into a model or a
``Rejection`` that names the field at fault; ``schemas.export`` writes the
committed JSON Schema files under ``schemas/json``.

May import: pydantic and orjson; nothing of the project.
"""

from schemas.common import SCHEMA_VERSION
from schemas.inputs import FollowupAction, Scores, SurveyResponse, TicketEvent, Ves
from schemas.outputs import (
    CustomerContext,
    DeadLetter,
    DeadLetterError,
    Escalation,
    FeedbackWindow,
    RecoveryAlert,
    TrendAlert,
)

__all__ = [
    "SCHEMA_VERSION",
    "CustomerContext",
    "DeadLetter",
    "DeadLetterError",
    "Escalation",
    "FeedbackWindow",
    "FollowupAction",
    "RecoveryAlert",
    "Scores",
    "SurveyResponse",
    "TicketEvent",
    "TrendAlert",
    "Ves",
]
