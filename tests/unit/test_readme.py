"""The README documents every setting and keeps exactly two set-up commands."""

from __future__ import annotations

import re
from pathlib import Path

from stream.settings import Settings

README = (Path(__file__).parents[2] / "README.md").read_text()


def test_every_setting_is_in_the_configuration_table() -> None:
    for name in Settings.model_fields:
        upper = name.upper()
        assert f"SURVEY_ALERTS_{upper}" in README or f"`_{upper}`" in README, name


def test_exactly_two_setup_commands() -> None:
    setup = README.split("## Set-up", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"```bash\n(.*?)\n```", setup, re.S)
    assert commands == [
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/survey-alerts demo",
        "bash .ci/run",
    ]
