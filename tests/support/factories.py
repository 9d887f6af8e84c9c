"""Builders of contract messages for tests."""

from __future__ import annotations

import itertools
from typing import Any

import orjson

_ids = itertools.count(1)


def uid(prefix: str) -> str:
    """A unique id within this test session."""
    return f"{prefix}-{next(_ids):06d}"


def survey(
    customer_id: str, response_id: str | None = None, at: str = "2026-11-22T13:20:53Z", **scores: Any
) -> dict[str, Any]:
    """A survey response document; extra keyword arguments are scores."""
    extra = {
        k: scores.pop(k)
        for k in list(scores)
        if k in {"ticket_id", "team", "agent_id", "channel", "comment", "touchpoint", "locale"}
    }
    return {
        "response_id": response_id or uid("resp"),
        "customer_id": customer_id,
        "submitted_at": at,
        "scores": scores or {"nps": 9},
        **extra,
    }


def ticket(
    customer_id: str,
    ticket_id: str,
    type_: str,
    event_id: str | None = None,
    at: str = "2026-11-22T13:00:00Z",
    **fields: Any,
) -> dict[str, Any]:
    """A ticket event document."""
    doc = {
        "event_id": event_id or uid("evt"),
        "ticket_id": ticket_id,
        "customer_id": customer_id,
        "type": type_,
        "occurred_at": at,
        **fields,
    }
    if type_ == "created":
        doc.setdefault("team", "billing")
    return doc


def raw(doc: dict[str, Any]) -> bytes:
    """orjson bytes of a document."""
    return orjson.dumps(doc)


def profile(customer_id: str, at: str = "2026-11-22T12:00:00Z", **fields: Any) -> dict[str, Any]:
    """A customer-profiles document (``name`` defaults to one derived from the id)."""
    return {"customer_id": customer_id, "updated_at": at, "name": f"Person {customer_id}", **fields}
