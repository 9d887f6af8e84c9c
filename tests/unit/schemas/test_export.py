"""The committed JSON Schemas equal what the code generates, and describe real output."""

from __future__ import annotations

import json
from pathlib import Path

from schemas.export import DIR, MODELS, export, render


def test_committed_json_schemas_match_the_models() -> None:
    stale = export(check=True)
    assert stale == [], f"run `survey-alerts schemas export`; out of date: {stale}"


def test_export_writes_every_model(tmp_path: Path) -> None:
    written = export(directory=tmp_path)
    assert sorted(written) == sorted(f"{name}.schema.json" for name in MODELS)
    assert export(check=True, directory=tmp_path) == []
    (tmp_path / "survey-response.schema.json").write_text("{}")
    assert export(check=True, directory=tmp_path) == ["survey-response.schema.json"]


def test_schemas_name_required_contract_fields() -> None:
    alert = json.loads((DIR / "recovery-alert.schema.json").read_text())
    for name in (
        "alert_id",
        "kind",
        "severity",
        "customer_id",
        "response_id",
        "ticket_id",
        "team",
        "agent_id",
        "queue",
        "metric",
        "score",
        "created_at",
        "follow_up_due_at",
        "customer",
    ):
        assert name in alert["properties"], name
    survey = json.loads(render(MODELS["survey-response"]))
    assert set(survey["required"]) == {"response_id", "customer_id", "submitted_at", "scores"}
