"""Replay on Apache Kafka: unchanged settings reproduce what the live worker raised exactly, the SLA
timer's overdue notices and their escalations included; a threshold change gives the counts a
reference run of the pure pipeline gives."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest

from alerts.pipeline import Pipeline, Record
from stream.tools.brokers import LocalBroker
from stream.tools.generate import Generator
from tests.support.services import Service

pytestmark = pytest.mark.integration

# the change tried: a CES of 3 alerts too (and no ticket wait, so order follows the records alone)
CES_3 = ("--set", "ces_alert_max=3", "--set", "ticket_wait_s=0")


def stamp(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def replay(svc: Service, out: Path, *args: str) -> tuple[dict[str, Any], str]:
    done = subprocess.run(
        [sys.executable, "-m", "stream.cli", "replay", *args, "--out", str(out)],
        env=svc.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(out.read_text()), done.stdout + done.stderr


def test_replay_reproduces_the_live_alerts_and_counts_a_change(kafka: LocalBroker, tmp_path: Path) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text(
        'default_queue = "triage"\n'
        '[[rules]]\nname = "refunds"\nqueue = "refunds"\nmatch = { category = "refund" }\n'
        '[[rules]]\nname = "team-queue"\nqueue = "{team}"\n'
    )
    # SLAs short enough that the live timer raises overdue notices (twice each) during the test
    sla = {f"sla_{s}_minutes": "0.5" for s in ("critical", "warning", "info")}
    svc = Service(
        kafka,
        tmp_path,
        routing_rules=str(rules),
        sla_tier_factors="{}",
        renotify_interval_s="5",
        max_renotify="2",
        followup_check_interval_s="0.5",
        **sla,
    )
    try:
        svc.start()
        time.sleep(1.0)
        start = time.time()
        gen = Generator(seed=44, customers=150, start=datetime.now(UTC) - timedelta(hours=3), step_s=3)
        messages = list(gen.messages(2500))
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        # the tickets' events first: which survey sees its ticket must not depend on which topic the
        # worker happened to fetch first (RELIABILITY.md, known limits)
        for stream in ("ticket", "survey"):
            for m in messages:
                if m.stream == stream:
                    svc.producer.send(topics[m.stream], key=m.key, value=m.value)
            svc.producer.flush()
            time.sleep(3)
        end = time.time() + 1
        time.sleep(6)  # past the ticket wait: nothing is held any more
        raised = [
            orjson.loads(r.value) for r in svc.read_all([svc.settings.recovery_alerts_topic], settle_s=4)
        ]
        # people contact some customers before their due time, with actions dated when they called
        # (hours after the survey: before the alert was raised, as after a backfill)
        contacted = [a for a in raised if a["kind"] != "followup_overdue"][:10]
        for a in contacted:
            called = datetime.fromisoformat(a["cause_at"]) + timedelta(seconds=10_200)
            action = {
                "action_id": f"act-{a['alert_id']}",
                "alert_id": a["alert_id"],
                "type": "contacted",
                "actor": "sam",
                "at": stamp(called.timestamp()),
            }
            svc.send(svc.settings.followup_actions_topic, orjson.dumps(action), a["alert_id"].encode())
        # every other follow-up falls due and is notified twice (5 s apart) on the live timer
        last_due = max(datetime.fromisoformat(a["follow_up_due_at"]).timestamp() for a in raised)
        time.sleep(max(0.0, last_due + 5 + 4 - time.time()))
        live = [orjson.loads(r.value) for r in svc.read_all([svc.settings.recovery_alerts_topic], settle_s=3)]
        overdue = [a for a in live if a["kind"] == "followup_overdue"]
        assert overdue and not {a["original_alert_id"] for a in overdue} & {a["alert_id"] for a in contacted}

        same, out = replay(svc, tmp_path / "same.json", "--from", stamp(start))
        diff = same["difference"]
        assert same["would_raise"]["alerts"] == same["actually_raised"]["alerts"] > 50, out
        assert same["would_raise"]["escalations"] == same["actually_raised"]["escalations"] > 0, out
        assert same["would_raise"]["alerts_by"]["kind"]["followup_overdue"] > 0, out
        assert same["would_raise"]["escalations_by"]["source"]["followup_overdue"] > 0, out
        for group in ("alerts", "escalations"):
            assert (diff[group]["new"], diff[group]["gone"], diff[group]["rerouted"]) == (0, 0, 0), out
        assert "Difference from what was actually raised: none." in out and "events/s" in out

        changed, out = replay(
            svc,
            tmp_path / "ces3.json",
            "--from",
            stamp(start),
            "--to",
            stamp(end),
            *CES_3,
            "--emit",
            f"{svc.prefix}.replay-out",
        )
        # the reference: the pure pipeline over the same records, in the order the worker sorts a batch
        records = svc.read_all(list(topics.values()), settle_s=2)
        rows = [
            Record(r.topic, 0, r.offset, r.key, r.value, list(r.headers or ()), r.timestamp / 1000)
            for r in sorted(
                records, key=lambda r: (r.timestamp, r.topic != topics["ticket"], r.partition, r.offset)
            )
            if start * 1000 <= r.timestamp < end * 1000
        ]
        s = svc.settings.model_copy(update={"ces_alert_max": 3})
        pipeline = Pipeline(
            __import__("stream.pipeline", fromlist=["pipeline_from"]).pipeline_from(s).topics,
            s.policy(),
            lambda cid: 0,
            s.router(),
            0.0,
        )
        result = pipeline.process(rows, lambda cid: None, datetime.now(UTC))
        alerts = [e.value for e in result.emits if e.topic == s.recovery_alerts_topic]
        escalations = [e.value for e in result.emits if e.topic.startswith(s.escalations_prefix)]
        would = changed["would_raise"]
        assert would["alerts"] == len(alerts) and would["escalations"] == len(escalations)
        for field in ("kind", "severity", "queue", "rule"):
            assert would["alerts_by"][field] == dict(
                sorted(Counter(str(a[field]) for a in alerts).items())
            ), field  # type: ignore[index]
        assert would["escalations_by"]["queue"] == dict(
            sorted(Counter(str(e["queue"]) for e in escalations).items())
        )  # type: ignore[index]
        low_effort = changed["difference"]["alerts"]
        assert low_effort["new"] > 0 and any(
            ex["kind"] == "low_effort" for ex in low_effort["examples"]["new"]
        )
        emitted = svc.read_all([f"{svc.prefix}.replay-out"], settle_s=2)
        assert len(emitted) == would["alerts"] + would["escalations"]
        assert {orjson.loads(r.value).get("alert_id") for r in emitted} >= {a["alert_id"] for a in alerts}  # type: ignore[index]
        # deterministic: the same history and rules give the same report (but for its own timing)
        again, _ = replay(
            svc,
            tmp_path / "again.json",
            "--from",
            stamp(start),
            "--to",
            stamp(end),
            *CES_3,
        )
        for rep in (again, changed):
            for k in ("seconds", "events_per_s"):
                rep["period"].pop(k)
        assert again == changed
        refused = subprocess.run(
            [
                sys.executable,
                "-m",
                "stream.cli",
                "replay",
                "--from",
                stamp(start),
                "--emit",
                svc.settings.recovery_alerts_topic,
            ],
            env=svc.env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert refused.returncode != 0 and "live topic" in refused.stderr
    finally:
        svc.close()
