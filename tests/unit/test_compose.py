"""docker-compose.yml stays in step with the settings (no Docker engine needed)."""

from __future__ import annotations

from pathlib import Path

import yaml

from stream.settings import Settings


def test_compose_sets_only_real_settings() -> None:
    doc = yaml.safe_load((Path(__file__).parents[2] / "docker-compose.yml").read_text())
    fields = {f"SURVEY_ALERTS_{name.upper()}" for name in Settings.model_fields}
    for name, service in doc["services"].items():
        for var in service.get("environment") or {}:
            if var.startswith("SURVEY_ALERTS_"):
                assert var in fields, f"{name}: {var} is not a setting"
    assert "survey-alerts worker" in doc["services"]["worker"]["command"]
