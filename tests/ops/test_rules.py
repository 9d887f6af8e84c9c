"""The alert rules: valid, unit-tested with promtool, and each with what an on-call person needs."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

OPS = Path(__file__).parents[2] / "ops"
RULES = OPS / "prometheus" / "rules.yml"


def promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
    return found


def alerts() -> list[dict[str, object]]:
    doc = yaml.safe_load(RULES.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_rules_are_valid_and_their_unit_tests_pass() -> None:
    for args in (
        ["check", "rules", str(RULES)],
        ["test", "rules", str(OPS / "prometheus" / "rules.test.yml")],
    ):
        done = subprocess.run([promtool(), *args], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stdout + done.stderr


def test_every_alert_is_tested_fired_and_has_severity_texts_and_a_runbook_section() -> None:
    tests = yaml.safe_load((OPS / "prometheus" / "rules.test.yml").read_text())
    fired = {c["alertname"] for t in tests["tests"] for c in t["alert_rule_test"] if c["exp_alerts"]}
    runbook = (OPS / "RUNBOOK.md").read_text()
    anchors = {h.strip().lower() for h in re.findall(r"^## (\S+)\s*$", runbook, re.M)}
    names = [str(a["alert"]) for a in alerts()]
    assert len(names) == len(set(names)) >= 20
    for rule in alerts():
        name = str(rule["alert"])
        labels, annotations = rule["labels"], rule["annotations"]
        assert isinstance(labels, dict) and labels["severity"] in ("critical", "warning", "info"), name
        assert isinstance(annotations, dict) and annotations["summary"] and annotations["description"], name
        assert str(annotations["runbook_url"]).endswith("RUNBOOK.md#" + name.lower()), name
        assert name.lower() in anchors, f"RUNBOOK.md has no section for {name}"
        assert name in fired, f"rules.test.yml never fires {name}"


def test_the_prometheus_and_alertmanager_configurations_are_valid(tmp_path: Path) -> None:
    config = yaml.safe_load((OPS / "prometheus" / "prometheus.yml").read_text())
    assert config["rule_files"] == ["/etc/prometheus/rules.yml"]  # where docker-compose mounts rules.yml
    config["rule_files"] = [str(RULES)]
    local = tmp_path / "prometheus.yml"
    local.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        [promtool(), "check", "config", str(local)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
    amtool = shutil.which("amtool")
    if amtool is None:
        pytest.fail("amtool is missing: .ci/run installs Debian's prometheus-alertmanager package")
    am = OPS / "alertmanager" / "alertmanager.yml"
    done = subprocess.run([amtool, "check-config", str(am)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
