"""The inbox's JSON API: its request and answer models, and the OpenAPI 3.1 document made from them.

The handlers validate every request body with ``ActionRequest`` and send the answers these models
describe; the document (served at ``/api/v1/openapi.json``, committed as
``schemas/openapi.json``) is generated from the same models, so the two cannot drift
(``survey-alerts schemas export --check`` fails when the committed copy is stale).
"""

from __future__ import annotations

import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from schemas.outputs import (
    ConcessionRecord,
    CustomerProfileContext,
    Escalation,
    FollowupEvent,
    RecoveryAlert,
)

API_VERSION = "1.0.0"
ActionType = Literal["acknowledged", "contacted", "resolved", "reopened", "note"]
Status = Literal["open", "acknowledged", "contacted", "resolved", "reopened", "withdrawn"]


_RULES: dict[str, Any] = {
    "allOf": [
        {
            "if": {"properties": {"type": {"const": "resolved"}}},
            "then": {"required": ["root_cause"], "properties": {"root_cause": {"type": "string"}}},
        },
        {
            "if": {"properties": {"type": {"const": "note"}}},
            "then": {"required": ["note"], "properties": {"note": {"type": "string", "pattern": "\\S"}}},
        },
        {
            "if": {"properties": {"type": {"not": {"const": "resolved"}}}},
            "then": {"properties": {"concession": {"type": "null"}}},
        },
    ]
}


class ActionRequest(BaseModel):
    """What a person or a CRM did about an alert (``POST /api/v1/alerts/{alert_id}/actions``).

    Beyond the fields: resolving needs a root cause, a note needs text, and a concession is
    recorded on resolving only (in the document as ``allOf`` rules, checked here the same way)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra=_RULES)

    @model_validator(mode="after")
    def _rules(self) -> ActionRequest:
        if self.type == "resolved" and not (self.root_cause or "").strip():
            raise ValueError("resolving needs a root cause")
        if self.type == "note" and not (self.note or "").strip():
            raise ValueError("a note needs text")
        if self.concession is not None and self.type != "resolved":
            raise ValueError("a concession is recorded when resolving")
        return self

    type: ActionType = Field(description="`note` travels as an acknowledgement carrying the note.")
    action_id: str | None = Field(
        None,
        pattern=r"^act_[0-9a-f]{32}$",
        description="Idempotency key: the same id twice is one action (default: a new one).",
    )
    root_cause: str | None = Field(None, min_length=1, max_length=2000, description="Required to resolve.")
    note: str | None = Field(None, max_length=10_000, description="Required for `note`.")
    concession: ConcessionRecord | None = Field(
        None,
        description="On `resolved` only: what was spent. Above the alert's cap, or in another currency than "
        "the caps', it needs a note (else 400 `needs_note`).",
    )


class Problem(BaseModel):
    """Why a request was refused."""

    model_config = ConfigDict(extra="forbid")

    error: Literal["invalid", "needs_note", "forbidden", "not_found", "unauthorized", "unavailable"]
    message: str | None = None


class SentAction(BaseModel):
    """An action the inbox produced whose follow-up event has not come back yet."""

    model_config = ConfigDict(extra="forbid")

    action_id: str
    alert_id: str
    type: str
    actor: str
    at: float = Field(description="Epoch seconds when it was sent.")
    note: str | None = None
    root_cause: str | None = None


class AlertItem(RecoveryAlert):
    """A recovery alert as the inbox holds it: the ``recovery-alerts`` document (its
    ``customer.profile`` kept apart) with its follow-up now."""

    status: Status = Field(description="The newest follow-up event's status (the worker's order).")  # type: ignore[assignment]
    overdue: bool = Field(description="Waiting and past its due time.")
    root_cause: str | None = Field(None, description="Of its resolution, when resolved.")
    overdue_notices: int = Field(0, ge=0, description="Overdue notices raised so far.")


class AlertDetail(AlertItem):
    """One alert with its history, the actions still on their way, and whom to call."""

    history: list[FollowupEvent] = Field(description="Its followup-events, in the worker's order.")
    sent: list[SentAction]
    profile: CustomerProfileContext | None = Field(
        None, description="The newest CRM profile held of the customer (null: none, or erased)."
    )


class AlertPage(BaseModel):
    """A page of the queue."""

    model_config = ConfigDict(extra="forbid")

    total: int = Field(ge=0)
    overdue: int = Field(ge=0)
    by_status: dict[str, int]
    alerts: list[AlertItem]


class EscalationPage(BaseModel):
    """The newest escalations of the caller's queues."""

    model_config = ConfigDict(extra="forbid")

    escalations: list[Escalation]


class Accepted(BaseModel):
    """The action as produced to ``followup-actions``."""

    model_config = ConfigDict(extra="forbid")

    status: Literal["sent"]
    action: dict[str, Any] = Field(description="A followup-actions document (schemas/json/followup-action).")


def _component(models: list[type[BaseModel]]) -> dict[str, Any]:
    from pydantic.json_schema import models_json_schema

    _, defs = models_json_schema(
        [(m, "serialization") for m in models], ref_template="#/components/schemas/{model}"
    )
    return dict(sorted(defs.get("$defs", {}).items()))


def _answer(model: str, what: str) -> dict[str, Any]:
    return {
        "description": what,
        "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{model}"}}},
    }


def _refusals(*codes: int) -> dict[str, Any]:
    what = {
        400: "The request is not valid (the message says why).",
        401: "No valid bearer token.",
        403: "Not in the alert's or the queue's queue.",
        404: "No such alert (yet).",
        503: "Kafka did not take the action; try again with the same action_id.",
    }
    return {str(c): _answer("Problem", what[c]) for c in codes}


QUERY: list[dict[str, Any]] = [
    {"name": n, "in": "query", "required": False, "schema": s, "description": d}
    for n, s, d in (
        ("queue", {"type": "string"}, "Only this queue (one of the caller's)."),
        ("team", {"type": "string"}, "Only this team."),
        (
            "status",
            {
                "type": "string",
                "enum": [
                    "",
                    "open",
                    "acknowledged",
                    "contacted",
                    "resolved",
                    "reopened",
                    "withdrawn",
                    "waiting",
                ],
            },
            "A status; empty: every status (default: the ones waiting for a call).",
        ),
        ("severity", {"type": "string", "enum": ["", "critical", "warning", "info"]}, "A severity."),
        ("overdue", {"type": "string", "enum": ["", "1"]}, "1: only the overdue."),
    )
]
ALERT_ID: dict[str, Any] = {
    "name": "alert_id",
    "in": "path",
    "required": True,
    "schema": {"type": "string", "minLength": 1, "maxLength": 128},
}


def openapi() -> dict[str, Any]:
    """The OpenAPI 3.1 document of the inbox's JSON API."""
    secured: list[dict[str, list[str]]] = [{"bearer": []}]
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "survey-alerts inbox API",
            "version": API_VERSION,
            "description": "The follow-up inbox's JSON API for CRMs: the queue, an alert with its history, "
            "actions, escalations. Every operation needs `Authorization: Bearer TOKEN` (a token of the "
            "inbox's users file) and sees only that token's queues.",
        },
        "servers": [{"url": "/"}],
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": _component([ActionRequest, Problem, AlertPage, AlertDetail, EscalationPage, Accepted]),
        },
        "security": secured,
        "paths": {
            "/api/v1/alerts": {
                "get": {
                    "operationId": "listAlerts",
                    "summary": "The queue: alerts of the caller's queues, most urgent first.",
                    "parameters": QUERY,
                    "responses": {
                        "200": _answer("AlertPage", "A page of alerts."),
                        **_refusals(400, 401, 403),
                    },
                }
            },
            "/api/v1/alerts/{alert_id}": {
                "get": {
                    "operationId": "getAlert",
                    "summary": "One alert with its history and whom to call.",
                    "parameters": [ALERT_ID],
                    "responses": {
                        "200": _answer("AlertDetail", "The alert."),
                        **_refusals(401, 403, 404),
                    },
                }
            },
            "/api/v1/alerts/{alert_id}/actions": {
                "post": {
                    "operationId": "actOnAlert",
                    "summary": "Record what was done: acknowledged, contacted, resolved, reopened, a note.",
                    "parameters": [ALERT_ID],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/ActionRequest"}}
                        },
                    },
                    "responses": {
                        "202": _answer(
                            "Accepted",
                            "Produced to followup-actions; the alert's status changes "
                            "when the worker's followup-events record comes back.",
                        ),
                        **_refusals(400, 401, 403, 404, 503),
                    },
                }
            },
            "/api/v1/escalations": {
                "get": {
                    "operationId": "listEscalations",
                    "summary": "Escalations of the caller's queues, newest first.",
                    "parameters": [QUERY[0]],
                    "responses": {
                        "200": _answer("EscalationPage", "Escalations."),
                        **_refusals(401, 403),
                    },
                }
            },
        },
    }


def render() -> str:
    """The document as committed (``schemas/openapi.json``)."""
    return json.dumps(openapi(), indent=2, sort_keys=True) + "\n"
