"""docker-compose.yml and the Dockerfile agree with the code (checked without a Docker engine)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from alerts.routing import load_rules
from stream.cli import main
from stream.settings import Settings

ROOT = Path(__file__).parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, Any] = COMPOSE["services"]
APPS = ("worker", "notifier", "inbox")


def env_of(name: str) -> dict[str, str]:
    return {k: str(v) for k, v in (SERVICES[name].get("environment") or {}).items()}


def test_every_variable_is_a_setting_and_parses() -> None:
    fields = {f"SURVEY_ALERTS_{name.upper()}" for name in Settings.model_fields}
    for name, service in SERVICES.items():
        env = {k: str(v) for k, v in (service.get("environment") or {}).items()}
        for var in env:
            if var.startswith("SURVEY_ALERTS_"):
                assert var in fields, f"{name}: {var} is not a setting"
        if name in APPS:
            Settings.from_environ({k: v for k, v in env.items() if k.startswith("SURVEY_ALERTS_")})


def test_commands_are_real_subcommands_and_ports_agree_with_health_checks_and_scrapes() -> None:
    commands = set(main.commands)  # type: ignore[attr-defined]
    ports = {
        "worker": ("SURVEY_ALERTS_WEB_PORT", "SURVEY_ALERTS_WEB_HOST"),
        "notifier": ("SURVEY_ALERTS_NOTIFIER_WEB_PORT", "SURVEY_ALERTS_NOTIFIER_WEB_HOST"),
        "inbox": ("SURVEY_ALERTS_INBOX_PORT", "SURVEY_ALERTS_INBOX_HOST"),
    }
    prometheus = (ROOT / "ops" / "prometheus" / "prometheus.yml").read_text()
    for name in (*APPS, "generator"):
        assert SERVICES[name]["command"][0] in commands, name
    for name, (port_var, host_var) in ports.items():
        env = env_of(name)
        port = env[port_var]
        assert env[host_var] == "0.0.0.0", f"{name} must listen beyond loopback inside its container"
        assert f"127.0.0.1:{port}/ready" in " ".join(SERVICES[name]["healthcheck"]["test"]), name
        assert re.search(
            rf"(names: \[{name}\]|{name}:{port})[\s\S]{{0,60}}?{port}|{name}:{port}", prometheus
        ), name


def test_mounted_files_exist_and_are_what_the_tests_use() -> None:
    for name, service in SERVICES.items():
        for volume in service.get("volumes") or []:
            source = volume.split(":", 1)[0]
            if source.startswith("./") and not source.endswith(
                "inbox-users.toml"
            ):  # that one is the operator's
                assert (ROOT / source).exists(), f"{name} mounts {source}, which does not exist"
    assert (ROOT / "ops/compose/inbox-users.example.toml").exists()
    load_rules(ROOT / "ops/compose/rules.toml")  # the stack's rules file is valid
    provisioning = yaml.safe_load(
        (ROOT / "ops/grafana/provisioning/dashboards/survey-alerts.yml").read_text()
    )
    path = provisioning["providers"][0]["options"]["path"]
    assert f"./ops/grafana/dashboards:{path}:ro" in SERVICES["grafana"]["volumes"]
    datasource = yaml.safe_load((ROOT / "ops/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = datasource["datasources"][0]["uid"]
    for board in (ROOT / "ops/grafana/dashboards").glob("*.json"):
        assert json.loads(board.read_text())["templating"]["list"][0]["query"] == "prometheus"
    assert uid == "prometheus" and "prometheus:9090" in datasource["datasources"][0]["url"]


def test_the_dockerfile_is_multi_stage_pinned_non_root_with_a_readiness_check() -> None:
    text = (ROOT / "Dockerfile").read_text()
    bases = re.findall(r"^FROM (\S+)", text, re.M)
    assert len(bases) == 2 and all(re.fullmatch(r"python:3\.\d+\.\d+-slim-\w+", b) for b in bases), bases
    assert re.search(r"^USER (?!root)\w+", text, re.M)
    assert "HEALTHCHECK" in text and "/ready" in text
    for copied in re.findall(r"^COPY (?!--from)(\S+)", text, re.M):
        assert (ROOT / copied).exists(), copied
    assert 'ENTRYPOINT ["survey-alerts"]' in text
    for name in (*APPS, "generator"):
        assert SERVICES[name]["build"] == "." and "pip install" not in json.dumps(SERVICES[name])
    for image in (s.get("image", "") for s in SERVICES.values()):
        assert not image.endswith(":latest") and (":" in image), image


def test_the_data_volumes_hold_the_data_and_are_writable_by_their_users() -> None:
    kafka = SERVICES["kafka"]
    mounts = {v.split(":")[1]: v.split(":")[0] for v in kafka["volumes"]}
    # the apache/kafka image writes /tmp/kraft-combined-logs unless told: the volume must be where it writes
    assert mounts.get(kafka["environment"]["KAFKA_LOG_DIRS"]) == "kafka-data"
    inbox_db = Path(env_of("inbox")["SURVEY_ALERTS_INBOX_DB"])
    inbox_mounts = {v.split(":")[1]: v.split(":")[0] for v in SERVICES["inbox"]["volumes"]}
    assert inbox_mounts.get(str(inbox_db.parent)) == "inbox-data"
    # a named volume starts with the ownership of the image's directory: it must exist, owned by the user
    dockerfile = (ROOT / "Dockerfile").read_text()
    user = re.search(r"^USER (\S+)", dockerfile, re.M)
    assert user is not None
    created = re.search(rf"install -d -o {user.group(1)} -g {user.group(1)} (\S+)", dockerfile)
    assert created is not None and created.group(1) == str(inbox_db.parent)
    assert dockerfile.index(created.group(0)) < dockerfile.index(user.group(0))


def test_the_quick_start_runs_in_the_order_written() -> None:
    # no variable is required to load the file: `docker compose run` of one service needs none
    assert not re.search(r"\$\{[A-Z_]+:\?", (ROOT / "docker-compose.yml").read_text())
    grafana = SERVICES["grafana"]
    assert grafana["environment"]["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert 'test -n "$$GF_SECURITY_ADMIN_PASSWORD"' in grafana["entrypoint"][-1]  # refuses no password
    page = (ROOT / "docs" / "operations.md").read_text()
    steps = [line for line in page.splitlines() if line.startswith(("cp ", "docker compose", "GRAFANA_"))]
    assert steps[0].startswith("cp ops/compose/inbox-users.example.toml ops/compose/inbox-users.toml")
    assert "run --rm --no-deps" in steps[1] and "hash-password" in steps[1] and "GRAFANA" not in steps[1]
    assert steps[2].startswith("GRAFANA_ADMIN_PASSWORD=") and "docker compose up" in steps[2]
