"""A real Prometheus scrapes a worker, the notifier and the inbox processing a generated stream.

With the rules loaded: a team's NPS read back with PromQL equals the brute-force reference,
every rule evaluates without error, every panel query of both dashboards (variables widened)
returns data, and each process's /metrics passes ``promtool check metrics``.
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from schemas.inputs import SurveyResponse, TicketEvent
from schemas.validate import Rejection, parse
from stream.inbox.auth import hash_password
from stream.tools.brokers import LocalBroker, free_port
from stream.tools.generate import Generator, Mix
from tests.support.factories import uid
from tests.support.receivers import HttpReceiver
from tests.support.reference import reference
from tests.support.services import Process, Service, wait_for

pytestmark = pytest.mark.integration
OPS = Path(__file__).parents[2] / "ops"
WIDE = {
    "$team": ".*",
    "$channel": ".*",
    "$window": "24h",
    "$instance": ".*",
    "$job": "survey-alerts.*",
    "$__rate_interval": "30s",
}


def get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


class Prometheus:
    def __init__(self, targets: dict[str, int], workdir: Path) -> None:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.fail("prometheus is missing: .ci/run installs Debian's prometheus package")
        self.port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(OPS / "prometheus" / "rules.yml")],  # the rules docker-compose mounts
            "scrape_configs": [
                {"job_name": job, "static_configs": [{"targets": [f"127.0.0.1:{port}"]}]}
                for job, port in targets.items()
            ],
        }
        (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.log = open(workdir / "prometheus.log", "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={workdir / 'prometheus.yml'}",
                f"--storage.tsdb.path={workdir / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = get(f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        assert body["status"] == "success", (expr, body)
        return list(body["data"]["result"])

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)
        self.log.close()


@pytest.fixture
def stack(
    kafka: LocalBroker, tmp_path: Path
) -> Iterator[tuple[Service, Prometheus, list[dict[str, Any]], list[dict[str, Any]]]]:
    receiver = HttpReceiver()
    rules = tmp_path / "rules.toml"
    rules.write_text(
        f'notify_default = ["hook"]\n[[rules]]\nname = "team-queue"\nqueue = "{{team}}"\n'
        f'[destinations.hook]\nkind = "webhook"\nurl = "{receiver.url("/hook")}"\nunsigned = true\n'
    )
    users = tmp_path / "users.toml"
    users.write_text(f'[users.x]\npassword_hash = "{hash_password("x")}"\nqueues = ["*"]\n')
    svc = Service(kafka, tmp_path, routing_rules=str(rules), snapshot_interval_s="1", min_responses="5")
    ports = {"notifier": free_port(), "inbox": free_port()}
    notifier = Process(svc, ["notifier"], "notifier", SURVEY_ALERTS_NOTIFIER_WEB_PORT=str(ports["notifier"]))
    inbox = Process(
        svc,
        ["inbox"],
        "inbox",
        SURVEY_ALERTS_INBOX_PORT=str(ports["inbox"]),
        SURVEY_ALERTS_INBOX_DB=str(tmp_path / "inbox.db"),
        SURVEY_ALERTS_INBOX_USERS=str(users),
    )
    prom = Prometheus(
        {
            "survey-alerts": svc.port,
            "survey-alerts-notifier": ports["notifier"],
            "survey-alerts-inbox": ports["inbox"],
        },
        tmp_path,
    )
    try:
        svc.start()
        notifier.start()
        inbox.start()
        start = datetime.now(UTC) - timedelta(hours=2)
        gen = Generator(seed=21, customers=200, start=start, step_s=2.5, mix=Mix(malformed_rate=0.02))
        messages = list(gen.messages(3000))
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        for m in messages:
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
        svc.producer.flush()
        surveys = [d for m in messages if m.stream == "survey" and (d := valid(m.value, SurveyResponse))]
        tickets = [d for m in messages if m.stream == "ticket" and (d := valid(m.value, TicketEvent))]
        # a few contacts, so that time to contact has observations
        alerts = svc.read(svc.settings.recovery_alerts_topic, lambda rs: len(rs) >= 20)
        for r in alerts[:10]:
            alert = orjson.loads(r.value)
            action = {
                "action_id": uid("act"),
                "alert_id": alert["alert_id"],
                "type": "contacted",
                "actor": "ops-test",
                "at": datetime.now(UTC).isoformat().replace("+00:00", "Z"),
            }
            svc.send(svc.settings.followup_actions_topic, orjson.dumps(action), alert["alert_id"].encode())
        yield svc, prom, surveys + svc.probes, tickets
    finally:
        prom.stop()
        for p in (inbox, notifier):
            p.stop()
        svc.close()
        receiver.close()


def valid(raw: bytes, model: Any) -> dict[str, Any] | None:
    """The document, if the worker accepts it (the reference counts what the worker counts)."""
    found = parse(model, raw)
    return None if isinstance(found, Rejection) else orjson.loads(raw)


def panel_queries() -> list[tuple[str, str, str]]:
    out = []
    for board in sorted((OPS / "grafana" / "dashboards").glob("*.json")):
        doc = json.loads(board.read_text())
        for panel in doc["panels"]:
            assert panel["fieldConfig"]["defaults"].get("unit"), f"{board.name}: {panel['title']} has no unit"
            for target in panel["targets"]:
                out.append((board.name, panel["title"], target["expr"]))
        for var in doc["templating"]["list"]:
            if var["type"] == "query":  # label_values(selector, label): the selector must return series
                selector = re.fullmatch(r"label_values\((.*), (\w+)\)", var["query"]["query"])
                assert selector, var
                out.append((board.name, f"variable {var['name']}", selector.group(1)))
    return out


def widened(expr: str) -> str:
    for name, value in WIDE.items():
        expr = expr.replace(name, value)
    assert "$" not in expr, expr
    return expr


def test_a_real_prometheus_scrapes_alerts_rules_and_dashboards(stack: Any) -> None:
    svc, prom, surveys, tickets = stack
    ref = reference(surveys, tickets, svc.settings.window_specs())
    teams = sorted(
        (ref.get((k, "24h", "nps#n")) or 0, k.split(":", 1)[1])
        for (k, w, m) in ref
        if k.startswith("team:") and w == "24h" and m == "nps"
    )
    n, team = teams[-1]
    expected = ref[(f"team:{team}", "24h", "nps")]
    assert n >= 20 and expected is not None

    def nps() -> bool:
        got = prom.query(
            f'max(survey_alerts_window_value{{dimension="team",key="{team}",window="24h",metric="nps"}})'
        )
        return bool(got) and math.isclose(float(got[0]["value"][1]), float(expected), abs_tol=1e-6)

    wait_for(nps, 120, f"team {team}'s NPS in Prometheus to equal the reference {expected}")

    def rules_evaluated() -> list[dict[str, Any]]:
        groups = get(f"http://127.0.0.1:{prom.port}/api/v1/rules")["data"]["groups"]
        rules = [r for g in groups for r in g["rules"]]
        return rules if rules and all(r.get("lastEvaluation", "").startswith("20") for r in rules) else []

    rules = wait_for(rules_evaluated, 60, "every rule to be evaluated")
    bad = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
    assert not bad and len(rules) >= 26, bad

    def empty_panels() -> list[tuple[str, str, str]]:
        return [(b, t, e) for b, t, e in panel_queries() if not prom.query(widened(e))]

    try:
        wait_for(lambda: not empty_panels(), 90, "every dashboard query to return data")
    except AssertionError:
        raise AssertionError(f"panels without data: {empty_panels()}") from None

    promtool = shutil.which("promtool")
    assert promtool is not None
    for port in (
        svc.port,
        *(
            int(t["metric"]["instance"].rsplit(":", 1)[1])
            for t in prom.query("up")
            if t["metric"]["job"] != "survey-alerts"
        ),
    ):
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
            text = resp.read()
        done = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True, timeout=60)
        problems = [
            line
            for line in done.stdout.decode().splitlines() + done.stderr.decode().splitlines()
            if line.strip()
        ]
        assert done.returncode == 0 and not problems, (port, problems)
    for expr in (
        "up",
        "survey_alerts_build_info",
        "survey_alerts_consumer_lag_records",
        "survey_alerts_target",
    ):
        assert prom.query(expr), expr
    assert {t["metric"]["job"] for t in prom.query("up == 1")} == {
        "survey-alerts",
        "survey-alerts-notifier",
        "survey-alerts-inbox",
    }
