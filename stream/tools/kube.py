"""The Kubernetes ``PrometheusRule`` of the alert rules: ``python -m stream.tools.kube``.

``ops/prometheus/rules.yml`` is the one source of truth (promtool tests it); this wraps its groups in
the Prometheus Operator's resource, written to ``deploy/kubernetes/prometheusrule.yaml``.
``tests/ops/test_kubernetes.py`` fails when the two disagree.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "rules.yml"
TARGET = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
HEADER = (
    "# Generated from ops/prometheus/rules.yml by python -m stream.tools.kube: edit that file, not this.\n"
)


def prometheus_rule(rules_text: str) -> dict[str, Any]:
    """The ``PrometheusRule`` holding the groups of a Prometheus rules file."""
    groups = yaml.safe_load(rules_text)["groups"]
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {
            "name": "survey-alerts",
            "labels": {"app.kubernetes.io/part-of": "survey-alerts", "role": "alert-rules"},
        },
        "spec": {"groups": groups},
    }


def render(rules_text: str) -> str:
    body = yaml.safe_dump(prometheus_rule(rules_text), sort_keys=False, width=120, allow_unicode=True)
    return HEADER + body


def main() -> None:
    TARGET.write_text(render(RULES.read_text()))
    sys.stdout.write(f"wrote {TARGET.relative_to(ROOT)}\n")


if __name__ == "__main__":
    main()
