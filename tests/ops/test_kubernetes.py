"""The Kubernetes manifests (deploy/kubernetes): valid resources, probes and grace as the processes
need, secrets from the Secret, settings that exist, and the PrometheusRule equal to the rules file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from stream.settings import Settings
from stream.tools.kube import RULES, render

ROOT = Path(__file__).parents[2]
DEPLOY = ROOT / "deploy" / "kubernetes"
CRDS = ("monitoring.coreos.com/v1", "kustomize.config.k8s.io/v1beta1")


def documents() -> list[tuple[str, dict[str, Any]]]:
    out = []
    for path in sorted(DEPLOY.glob("*.yaml")):
        out += [(path.name, d) for d in yaml.safe_load_all(path.read_text()) if d]
    return out


def by_kind(kind: str) -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for _, d in documents() if d["kind"] == kind}


def test_every_core_resource_is_valid_for_kubernetes_and_the_kustomization_lists_every_file(
    tmp_path: Path,
) -> None:
    core = [d for _, d in documents() if d["apiVersion"] not in CRDS]
    bundle = tmp_path / "core.yaml"
    bundle.write_text(yaml.safe_dump_all(core))
    done = subprocess.run(
        [str(Path(sys.executable).parent / "kubernetes-validate"), "--strict", "--quiet", str(bundle)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    kustomization = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        p.name for p in DEPLOY.glob("*.yaml") if p.name != "kustomization.yaml"
    )


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_the_processes_are_probed_stopped_gracefully_and_given_their_settings_and_secrets() -> None:
    deployments = by_kind("Deployment")
    assert set(deployments) == {"survey-alerts-worker", "survey-alerts-notifier", "survey-alerts-inbox"}
    config = by_kind("ConfigMap")["survey-alerts"]["data"]
    shutdown = float(config["SURVEY_ALERTS_SHUTDOWN_TIMEOUT_S"])
    for name, d in deployments.items():
        c, pod = container(d), d["spec"]["template"]["spec"]
        assert c["readinessProbe"]["httpGet"]["path"] == "/ready", name
        assert c["livenessProbe"]["httpGet"]["path"] == "/health", name
        assert pod["terminationGracePeriodSeconds"] >= shutdown + 10, name  # SIGTERM finishes in time
        assert pod["securityContext"]["runAsNonRoot"] and pod["securityContext"]["runAsUser"] == 10001
        assert c["args"][0] == name.rsplit("-", 1)[1]
        for env in c.get("env", []):
            assert "value" in env or "secretKeyRef" in env["valueFrom"], (name, env["name"])
            if "secretKeyRef" not in env.get("valueFrom", {}):
                assert not any(w in env["name"] for w in ("PASSWORD", "SECRET", "TOKEN")), env
        port = c["ports"][0]["containerPort"]
        assert {e["name"]: e.get("value") for e in c["env"]}.get(
            {"worker": "SURVEY_ALERTS_WEB_PORT", "notifier": "SURVEY_ALERTS_NOTIFIER_WEB_PORT"}.get(
                c["args"][0], "SURVEY_ALERTS_INBOX_PORT"
            )
        ) == str(port)
    worker = deployments["survey-alerts-worker"]
    assert worker["spec"]["replicas"] >= 2
    pdb = by_kind("PodDisruptionBudget")["survey-alerts-worker"]
    assert pdb["spec"]["selector"]["matchLabels"] == worker["spec"]["selector"]["matchLabels"]
    inbox = container(deployments["survey-alerts-inbox"])
    db = next(e for e in inbox["env"] if e["name"] == "SURVEY_ALERTS_INBOX_DB")
    assert db["valueFrom"]["secretKeyRef"]["key"] == "inbox-db-url"  # PostgreSQL by URL, from the Secret
    # every setting named exists and parses (the worker refuses unknown SURVEY_ALERTS_ names)
    named = dict(config)
    for d in deployments.values():
        named.update({e["name"]: e.get("value", "x") for e in container(d)["env"]})
    ours = {k: v for k, v in named.items() if k.startswith("SURVEY_ALERTS_")}
    for key in ours:
        assert key.removeprefix("SURVEY_ALERTS_").lower() in Settings.model_fields, key
    Settings.from_environ(dict(config))


def test_the_prometheus_rule_is_the_rules_file_and_the_scrapes_give_its_job_labels() -> None:
    assert (DEPLOY / "prometheusrule.yaml").read_text() == render(RULES.read_text()), (
        "run python -m stream.tools.kube"
    )
    rule = by_kind("PrometheusRule")["survey-alerts"]
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    jobs = {
        m["spec"]["endpoints"][0]["relabelings"][0]["replacement"] for m in by_kind("ServiceMonitor").values()
    }
    assert jobs == {"survey-alerts", "survey-alerts-notifier", "survey-alerts-inbox"}
    services = by_kind("Service")
    for monitor in by_kind("ServiceMonitor").values():
        selected = [
            s
            for s in services.values()
            if monitor["spec"]["selector"]["matchLabels"].items() <= s["metadata"]["labels"].items()
        ]
        assert len(selected) == 1 and selected[0]["spec"]["ports"][0]["name"] == "http"


def test_the_rules_selectors_and_runbook_base_come_from_one_mixin_file(tmp_path: Path) -> None:
    import re
    import shutil

    from stream.tools.kube import main

    mine = tmp_path / "mixin.yml"
    mine.write_text(
        "runbook_base: https://wiki.example.com/ops/survey-alerts\n"
        "jobs: {worker: cx-worker, notifier: cx-notifier, inbox: cx-inbox}\n"
    )
    rule, rules = tmp_path / "rule.yaml", tmp_path / "rules.yml"
    main(["--config", str(mine), "--out", str(rule), "--rules-out", str(rules)])
    text = rules.read_text()
    original = RULES.read_text()
    urls = re.findall(r"runbook_url: (\S+)", text)
    assert len(urls) == len(re.findall(r"runbook_url: ", original)) > 20
    assert all(u.startswith("https://wiki.example.com/ops/survey-alerts#") for u in urls)
    assert sorted(set(re.findall(r'job="([^"]+)"', text))) == ["cx-inbox", "cx-notifier", "cx-worker"]
    assert yaml.safe_load(rule.read_text())["spec"]["groups"] == yaml.safe_load(text)["groups"]
    promtool = shutil.which("promtool")
    assert promtool, "promtool (Debian: prometheus) is installed by .ci/run"
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr
