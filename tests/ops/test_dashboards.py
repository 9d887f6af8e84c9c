"""The Grafana dashboards in the mixin style: data source, job and instance variables in every query,
$__rate_interval instead of fixed ranges, a description on every panel, aggregations that keep job.
(The queries themselves run on a real Prometheus in test_prometheus.py.)"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

BOARDS = sorted((Path(__file__).parents[2] / "ops" / "grafana" / "dashboards").glob("*.json"))


@pytest.mark.parametrize("board", BOARDS, ids=lambda p: p.name)
def test_every_panel_is_described_and_filtered_by_job_and_instance(board: Path) -> None:
    doc: dict[str, Any] = json.loads(board.read_text())
    variables = {v["name"]: v for v in doc["templating"]["list"]}
    assert {"datasource", "job", "instance"} <= set(variables)
    assert variables["datasource"]["type"] == "datasource"
    assert "$job" in variables["instance"]["definition"]  # instances of the jobs chosen
    for panel in doc["panels"]:
        title = panel["title"]
        assert panel.get("description"), f"{title}: no description"
        assert panel["datasource"]["uid"] == "${datasource}", title
        for target in panel["targets"]:
            expr = target["expr"]
            assert target["datasource"]["uid"] == "${datasource}", title
            for selector in re.findall(r"\b(?:survey_alerts_\w+|up)\{([^}]*)\}", expr):
                assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, (title, expr)
            assert not re.search(r"\b(?:survey_alerts_\w+|up)\b(?![{\w(])", expr), (title, expr)
            assert not re.search(r"\[\d+[smhdw]\]", expr), f"{title}: a fixed range, not $__rate_interval"
            for agg in re.findall(r"\b(?:sum|max|min|avg|count)\b\s*(by\s*\([^)]*\))?\s*\(", expr):
                assert agg and "job" in agg, f"{title}: an aggregation that drops job: {expr}"
