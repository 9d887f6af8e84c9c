"""Two workers share the partitions (Faust's group rebalance) and raise exactly the alerts one would."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from alerts.customer import CustomerState
from alerts.pipeline import Record
from stream.kafka.partitioning import partition_for
from stream.pipeline import pipeline_from
from stream.tools.brokers import LocalBroker, free_port
from stream.tools.generate import Generator, Message
from stream.worker.state import by_key, merged_key_partition, window_key_partition
from tests.support.services import Service, spawn_worker

pytestmark = pytest.mark.integration


def expected_alert_ids(service: Service, messages: list[Message]) -> set[str]:
    """The alerts of the stream, from the pipeline run in process (alert ids are deterministic)."""
    s = service.settings
    pipeline = pipeline_from(s)  # the worker's own
    records = [
        Record(
            s.survey_responses_topic if m.stream == "survey" else s.ticket_events_topic,
            partition_for(m.key, s.partitions) if m.key else 0,
            i,
            m.key,
            m.value,
            (),
            float(i),
        )
        for i, m in enumerate(messages)
    ]
    states: dict[str, CustomerState] = {}
    result = pipeline.process(records, states.get, datetime.now(UTC))
    return {
        e.value["alert_id"]
        for e in result.emits
        if e.topic == s.recovery_alerts_topic and isinstance(e.value, dict)
    }


@pytest.mark.parametrize("scenario", ["as_is", "recovery_slow_to_resume", "second_crashes"])
def test_a_second_worker_takes_partitions_over_and_the_alerts_are_those_of_one_worker(
    kafka: LocalBroker, tmp_path: Path, scenario: str
) -> None:
    # no waiting for tickets: a held survey that is edited meanwhile is replaced by the edit, so
    # which alerts a stream raises would depend on how the two input topics interleave
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Service(kafka, tmp_path / "a", ticket_wait_s="0")
    if scenario == "recovery_slow_to_resume":
        # a fetch spanning recovery's seek of the changelogs comes back before the flow
        # resumes (see slow_recovery/sitecustomize.py): its records must be fetched again
        a.env["PYTHONPATH"] = os.pathsep.join(
            [str(Path(__file__).parent / "slow_recovery"), *filter(None, [a.env.get("PYTHONPATH")])]
        )
        a.env["SURVEY_ALERTS_TEST_RECOVERY_PAUSE_S"] = "0.5"
    second: subprocess.Popen[bytes] | None = None
    try:
        a.start()
        gen = Generator(seed=7, customers=400, start=datetime(2026, 11, 21, 9, tzinfo=UTC), step_s=15)
        messages = list(gen.messages(3000))
        topics = {"survey": a.settings.survey_responses_topic, "ticket": a.settings.ticket_events_topic}
        b_port = free_port()
        b_env = {
            **a.env,
            "SURVEY_ALERTS_WEB_PORT": str(b_port),
            "SURVEY_ALERTS_DATA_DIR": str(tmp_path / "b" / "data"),
        }
        b_log = tmp_path / "b" / "worker.log"
        for i, m in enumerate(messages):
            a.producer.send(topics[m.stream], key=m.key, value=m.value)
            if i == len(messages) // 3:
                a.producer.flush()
                with open(b_log, "wb") as log:
                    second = subprocess.Popen(
                        [sys.executable, "-m", "stream.cli", "worker"],
                        env=b_env,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                    )
                # the rest of the stream goes to partitions the two workers share
                deadline = time.monotonic() + 90
                while b"Worker ready" not in b_log.read_bytes():
                    assert second.poll() is None and time.monotonic() < deadline, b_log.read_text()[-3000:]
                    time.sleep(0.2)
            if i == 2 * len(messages) // 3 and scenario == "second_crashes":
                a.producer.flush()
                time.sleep(2)  # it has taken in some of its share, with commits and deliveries on the way
                assert second is not None
                taken = metric_sum(b_port, "survey_alerts_records_consumed_total")
                assert taken > 0, b_log.read_text()[-3000:]
                second.kill()  # no goodbye: after the session timeout the first worker takes all back
                second.wait(30)
        a.producer.flush()

        wanted = expected_alert_ids(a, messages)
        assert len(wanted) > 50

        def got(records: list[Any]) -> set[str]:
            return {orjson.loads(r.value)["alert_id"] for r in records if not r.key.startswith(b"probe")}

        with contextlib.suppress(AssertionError):  # a timeout is reported below, with what is missing
            a.read(a.settings.recovery_alerts_topic, lambda rs: got(rs) >= wanted, timeout_s=90)
        time.sleep(3)  # anything extra would come now
        have = got(a.read_all([a.settings.recovery_alerts_topic]))
        missing, extra = wanted - have, have - wanted
        # on a failure, both workers' recovery and rebalance lines (their logs go with the tmp dir)
        assert not missing and not extra, (
            f"{len(missing)} missing, {len(extra)} extra of {len(wanted)}\n"
            f"--- first worker ---\n{_story(a.log)}\n--- second worker ---\n{_story(b_log)}"
        )

        # every changelog record is on the partition its table's sweep expects for the key
        n = a.settings.partitions
        partition_of = {
            "customers": by_key(n),
            "followups": by_key(n),
            "windows": window_key_partition,
            "window-merged": merged_key_partition(n),
        }
        latest: dict[str, dict[bytes, bytes | None]] = {name: {} for name in partition_of}
        changelogs = {f"{a.settings.app_id}-{name}-changelog": name for name in partition_of}
        for r in a.read_all(list(changelogs)):
            name = changelogs[r.topic]
            assert r.partition == partition_of[name](r.key), (name, r.key, r.partition)
            latest[name][r.key] = r.value
        live_customers = sum(v is not None for v in latest["customers"].values())
        if scenario == "second_crashes":  # the first worker has every partition again
            assert metric_sum(a.port, "survey_alerts_customers_in_state") == live_customers
            return
        # the second worker took its share
        assert metric_sum(b_port, "survey_alerts_records_consumed_total") > 0, b_log.read_text()[-3000:]
        # and each worker holds and exports only its own partitions' state: the first
        # one dropped what it gave away (it kept every key before, and its gauges)
        assert (
            metric_sum(a.port, "survey_alerts_customers_in_state")
            + metric_sum(b_port, "survey_alerts_customers_in_state")
            == live_customers
        )
        a_keys, b_keys = gauge_keys(a.port), gauge_keys(b_port)
        assert a_keys and b_keys
        assert not a_keys & b_keys, sorted(a_keys & b_keys)[:10]
    finally:
        if second is not None and second.poll() is None:
            second.terminate()
            second.wait(60)
        a.close()


class Peer:
    """Another worker in the first one's consumer group, with its own data directory and port."""

    def __init__(self, first: Service, workdir: Path) -> None:
        workdir.mkdir(exist_ok=True)
        self.port = free_port()
        self.log = workdir / "worker.log"
        self.env = {
            **first.env,
            "SURVEY_ALERTS_WEB_PORT": str(self.port),
            "SURVEY_ALERTS_DATA_DIR": str(workdir / "data"),
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 90) -> None:
        self.proc = spawn_worker(self.env, self.log)
        deadline = time.monotonic() + timeout_s
        while b"Worker ready" not in self.log.read_bytes():
            assert self.proc.poll() is None and time.monotonic() < deadline, self.log.read_text()[-3000:]
            time.sleep(0.2)

    def stop(self) -> int | None:
        """SIGTERM, and the exit code."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return None if self.proc is None else self.proc.returncode


@pytest.mark.timeout(600)
def test_sigterm_one_of_two_workers_under_load_and_start_a_third(kafka: LocalBroker, tmp_path: Path) -> None:
    """Two workers share the stream; mid-stream one is stopped (SIGTERM) and a third joins, while
    records keep arriving. Every alert is raised, none twice except as a same-id redelivery, and
    the state of each partition is held by exactly one of the workers left."""
    (tmp_path / "a").mkdir()
    a = Service(kafka, tmp_path / "a", ticket_wait_s="0")
    b, c = Peer(a, tmp_path / "b"), Peer(a, tmp_path / "c")
    try:
        a.start()
        b.start()
        gen = Generator(seed=21, customers=2000, start=datetime(2026, 11, 22, 9, tzinfo=UTC), step_s=4)
        messages = list(gen.messages(24_000))
        topics = {"survey": a.settings.survey_responses_topic, "ticket": a.settings.ticket_events_topic}
        events: list[str] = []
        started = time.monotonic()
        for i, m in enumerate(messages, 1):
            a.producer.send(topics[m.stream], key=m.key, value=m.value)
            if i % 1000 == 0:  # about 1,000 records a second, all the way through the rebalances
                a.producer.flush()
                time.sleep(max(0.0, started + i / 1000 - time.monotonic()))
            if i == 8000:
                assert metric_sum(b.port, "survey_alerts_records_consumed_total") > 0, b.log.read_text()[
                    -3000:
                ]
                events.append(f"{time.monotonic() - started:.1f} s: SIGTERM to the second worker")
                assert b.stop() == 0, b.log.read_text()[-3000:]
            if i == 12_000:
                events.append(f"{time.monotonic() - started:.1f} s: third worker starting")
                c.start()
                events.append(f"{time.monotonic() - started:.1f} s: third worker ready")
        a.producer.flush()
        events.append(f"{time.monotonic() - started:.1f} s: all {len(messages)} records produced")

        wanted = expected_alert_ids(a, messages)
        assert len(wanted) > 500

        def got(records: list[Any]) -> list[str]:
            return [orjson.loads(r.value)["alert_id"] for r in records if not r.key.startswith(b"probe")]

        with contextlib.suppress(AssertionError):  # a timeout is reported below, with what is missing
            a.read(a.settings.recovery_alerts_topic, lambda rs: set(got(rs)) >= wanted, timeout_s=120)
        time.sleep(3)  # anything extra would come now
        have = got(a.read_all([a.settings.recovery_alerts_topic]))
        missing, extra = wanted - set(have), set(have) - wanted
        duplicates = len(have) - len(set(have))
        print(
            "\n" + "\n".join(events) + f"\n{len(wanted)} alerts expected: {len(missing)} missing, "
            f"{len(extra)} unexpected, {duplicates} same-id redeliveries"
        )
        assert not missing and not extra, (
            f"{len(missing)} missing, {len(extra)} extra of {len(wanted)}\n"
            f"--- first ---\n{_story(a.log)}\n--- second ---\n{_story(b.log)}\n--- third ---\n{_story(c.log)}"
        )

        # the state moved with its partitions: the first and the third worker hold it between them
        # (each customer once), the stopped one's share included
        live = sum(
            v is not None for v in _latest(a.read_all([f"{a.settings.app_id}-customers-changelog"])).values()
        )
        held_a = metric_sum(a.port, "survey_alerts_customers_in_state")
        held_c = metric_sum(c.port, "survey_alerts_customers_in_state")
        assert held_c > 0, c.log.read_text()[-3000:]
        assert held_a + held_c == live, (held_a, held_c, live)
        a_keys, c_keys = gauge_keys(a.port), gauge_keys(c.port)
        assert a_keys and c_keys and not a_keys & c_keys
    finally:
        b.stop()
        c.stop()
        a.close()


def _latest(records: list[Any]) -> dict[bytes, bytes | None]:
    out: dict[bytes, bytes | None] = {}
    for r in records:
        out[r.key] = r.value
    return out


def scrape(port: int) -> list[Any]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        return list(text_string_to_metric_families(resp.read().decode()))


def metric_sum(port: int, name: str) -> float:
    return sum(s.value for f in scrape(port) for s in f.samples if s.name == name)


def gauge_keys(port: int) -> set[tuple[str, str]]:
    """The (dimension, key)s whose rolling-window gauges a worker exports."""
    return {
        (s.labels["dimension"], s.labels["key"])
        for f in scrape(port)
        for s in f.samples
        if s.name == "survey_alerts_window_samples"
    }


def _story(log: Path) -> str:
    """A worker log's lines about rebalances and recovery, and its last lines."""
    try:
        lines = log.read_text(errors="replace").splitlines()
    except OSError:
        return "(no log)"
    words = ("Recovery", "assigned", "revoked", "ERROR", "Traceback")
    keep = [line for line in lines if any(w in line for w in words)]
    return "\n".join([*keep[-60:], "...", *lines[-20:]])
