"""The alert rules for a deployment: ``python -m stream.tools.kube [--config FILE] [--rules-out FILE]``.

``ops/prometheus/rules.yml`` is the one source of truth (promtool tests it), written with the
defaults of ``ops/prometheus/mixin.yml``: the job labels its selectors use and the base of its
runbook links. This applies a mixin file's values to it and wraps its groups in the Prometheus
Operator's ``PrometheusRule`` (``deploy/kubernetes/prometheusrule.yaml``, from the defaults);
``--rules-out`` also writes the rules file itself for a plain Prometheus. ``tests/ops`` fails when the
committed PrometheusRule is not what this gives.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "ops" / "prometheus" / "rules.yml"
MIXIN = ROOT / "ops" / "prometheus" / "mixin.yml"
TARGET = ROOT / "deploy" / "kubernetes" / "prometheusrule.yaml"
HEADER = (
    "# Generated from ops/prometheus/rules.yml by python -m stream.tools.kube: edit that file, not this.\n"
)


def load_mixin(path: Path = MIXIN) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text())
    if not isinstance(doc, dict) or not isinstance(doc.get("runbook_base"), str):
        raise ValueError(f"{path}: needs runbook_base (a URL) and jobs (worker, notifier, inbox)")
    jobs = doc.get("jobs")
    if not isinstance(jobs, dict) or set(jobs) != {"worker", "notifier", "inbox"}:
        raise ValueError(f"{path}: jobs needs exactly worker, notifier and inbox")
    return doc


def customised(rules_text: str, mixin: dict[str, Any], defaults: dict[str, Any] | None = None) -> str:
    """``rules_text`` with the job selectors and runbook base of ``mixin`` instead of the defaults."""
    base = defaults or load_mixin()
    text = rules_text.replace(base["runbook_base"] + "#", mixin["runbook_base"].rstrip("/#") + "#")
    for role in ("notifier", "inbox", "worker"):  # longest default names first: they share a prefix
        old, new = base["jobs"][role], mixin["jobs"][role]
        text = re.sub(rf'job="{re.escape(old)}"', f'job="{new}"', text)
    return text


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


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m stream.tools.kube", description=__doc__.split("\n")[0])
    parser.add_argument("--config", type=Path, default=MIXIN, help="a mixin file (default: the defaults)")
    parser.add_argument("--out", type=Path, default=TARGET, help="where the PrometheusRule goes")
    parser.add_argument("--rules-out", type=Path, default=None, help="also write the customised rules file")
    args = parser.parse_args(argv)
    text = customised(RULES.read_text(), load_mixin(args.config))
    args.out.write_text(render(text))
    sys.stdout.write(f"wrote {args.out}\n")
    if args.rules_out is not None:
        args.rules_out.write_text(text)
        sys.stdout.write(f"wrote {args.rules_out}\n")


if __name__ == "__main__":
    main()
