"""The inbox API's OpenAPI document: valid OpenAPI 3.1, made from the handlers' models, one path per route."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from openapi_spec_validator import validate
from pydantic import ValidationError

from stream.inbox.api import ActionRequest, openapi, render

ROOT = Path(__file__).parents[4]


def test_the_document_is_valid_openapi_3_1_and_the_committed_copy_is_current() -> None:
    doc = openapi()
    validate(doc)
    assert doc["openapi"] == "3.1.0"
    assert (ROOT / "schemas" / "openapi.json").read_text() == render(), "run survey-alerts schemas export"


def test_every_api_route_is_documented_with_its_method_and_nothing_else(tmp_path: Path) -> None:
    from stream.inbox.web import Inbox

    inbox: Any = Inbox.__new__(Inbox)  # the routes only: no database, no Kafka
    routes = set()
    for route in Inbox.app(inbox).router.routes():
        path = route.resource.canonical if route.resource is not None else ""
        if path.startswith("/api/") and path != "/api/v1/openapi.json" and route.method != "HEAD":
            routes.add((path, route.method.lower()))
    documented = {(path, method) for path, ops in openapi()["paths"].items() for method in ops}
    assert routes == documented


def test_the_request_model_is_what_the_document_describes() -> None:
    schema = openapi()["components"]["schemas"]["ActionRequest"]
    assert set(schema["properties"]) == set(ActionRequest.model_fields)
    assert schema["additionalProperties"] is False
    with pytest.raises(ValidationError):
        ActionRequest.model_validate({"type": "resolved", "extra": 1})
    with pytest.raises(ValidationError):
        ActionRequest.model_validate({"type": "contacted", "action_id": "nope"})
    ok = ActionRequest.model_validate(
        {
            "type": "resolved",
            "root_cause": "x",
            "concession": {"amount": 5, "currency": "USD", "kind": "gift"},
        }
    )
    assert ok.concession is not None and json.loads(ok.model_dump_json())["concession"]["amount"] == 5
