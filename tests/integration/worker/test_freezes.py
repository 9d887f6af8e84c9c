"""The broker frozen (SIGSTOP) again and again around the session timeout, at different moments: the worker
is never left stuck, and every expected alert, and no other, is on the topic within a stated bound.

One Apache Kafka and one worker for the whole series, the worker under a small supervisor (as systemd or
Kubernetes would run it: a worker that exits is started again, and its exit status is recorded). For each
freeze length (20, 35, 45 and 70 s, around the 30 s session timeout) the broker is frozen three times:

* ``commit``: while surveys flow steadily (the worker commits every second, so a commit is in flight);
* ``burst``: right after 3,000 surveys were sent at once (produce batches in flight);
* ``idle``: once everything sent has its alert and nothing flows.

After each thaw every alert expected so far must arrive within ``BOUND_S``. Surveys come from distinct
customers, half of them detractors, so the expected alerts are exactly those customers'.
``SURVEY_ALERTS_TEST_FREEZES`` (seconds, comma-separated) shortens the series for a quick run.
"""

from __future__ import annotations

import gc
import os
import signal
import threading
import time
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer

from stream.deadline import EXIT_STALLED
from stream.tools.brokers import ApacheKafka
from tests.support.factories import raw, survey, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration
FREEZES = [float(s) for s in os.environ.get("SURVEY_ALERTS_TEST_FREEZES", "20,35,45,70").split(",")]
MOMENTS = ("commit", "burst", "idle")
# after a thaw: the broker's own recovery (its session expiries, a rebalance after the 30 s session
# timeout), at worst a worker's restart by its watchdog (SURVEY_ALERTS_STALL_RESTART_S) and its restore
BOUND_S = 240.0


class Alerts:
    """Every recovery alert on the topic, read continuously: customer ids and a count per alert id."""

    def __init__(self, svc: Service) -> None:
        self.customers: set[str] = set()
        self.ids: dict[str, int] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.consumer = KafkaConsumer(
            svc.settings.recovery_alerts_topic,
            bootstrap_servers=svc.broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            request_timeout_ms=20_000,
        )
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                batches = self.consumer.poll(timeout_ms=500)
            except Exception:  # the broker is frozen: try again
                time.sleep(0.5)
                continue
            with self.lock:
                for records in batches.values():
                    for r in records:
                        doc = orjson.loads(r.value)
                        self.customers.add(doc["customer_id"])
                        self.ids[doc["alert_id"]] = self.ids.get(doc["alert_id"], 0) + 1

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)
        self.consumer.close()


class Supervisor:
    """Starts the worker again whenever it exits, recording each exit status."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.exits: list[tuple[int, str]] = []  # status, and the log's last ERROR line
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop.wait(1.0):
            proc = self.svc.proc
            if proc is not None and proc.poll() is not None:
                log = self.svc.log.read_text(errors="replace").splitlines()
                errors = [line for line in log if "ERROR" in line or line.startswith("Error:")]
                self.exits.append((proc.returncode, errors[-1][-200:] if errors else ""))
                self.svc.start(ready=False)

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


# kafka-python's clients leave their sockets to a frozen broker open when they are closed
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.timeout(3600)
def test_repeated_freezes_never_leave_the_worker_stuck(tmp_path: Path) -> None:
    broker = ApacheKafka(workdir=tmp_path / "kafka")
    broker.start(timeout_s=180)
    (tmp_path / "worker").mkdir()
    # the production timeouts: a 30 s session, so the freezes fall on both sides of it
    svc = Service(
        broker, tmp_path / "worker", session_timeout_s="30", rebalance_timeout_s="30", commit_interval_s="1"
    )
    expected: set[str] = set()
    unexpected: set[str] = set()
    sent_lock = threading.Lock()
    flowing = threading.Event()
    ending = threading.Event()

    def send(n: int) -> None:
        for i in range(n):
            cid = uid("c")
            detractor = i % 2 == 0
            with sent_lock:
                (expected if detractor else unexpected).add(cid)
            svc.producer.send(
                svc.settings.survey_responses_topic,
                value=raw(survey(cid, nps=2 if detractor else 9)),
                key=cid.encode(),
            )

    def steady() -> None:
        while not ending.is_set():
            if flowing.wait(0.2):
                send(10)
                time.sleep(0.1)  # ~100 surveys/s

    alerts: Alerts | None = None
    supervisor: Supervisor | None = None
    sender = threading.Thread(target=steady, daemon=True)
    report: list[str] = []
    pid = None
    try:
        svc.start()
        pid = broker.proc.pid if broker.proc else None
        assert pid is not None
        alerts = Alerts(svc)
        supervisor = Supervisor(svc)
        sender.start()

        def caught_up(within_s: float) -> float:
            started = time.monotonic()
            assert alerts is not None
            while time.monotonic() - started < within_s:
                svc.producer.flush(timeout=30)
                with sent_lock, alerts.lock:
                    missing = expected - alerts.customers
                    wrong = alerts.customers & unexpected
                assert not wrong, f"alerts for customers that were no detractors: {sorted(wrong)[:5]}"
                if not missing:
                    return time.monotonic() - started
                time.sleep(1.0)
            raise AssertionError(
                f"{len(missing)} expected alerts still missing {within_s:.0f} s after the thaw "
                f"(exits so far: {supervisor.exits if supervisor else None}):\n{svc.tail()}"
            )

        for seconds in FREEZES:
            for moment in MOMENTS:
                if moment == "idle":
                    flowing.clear()
                    caught_up(BOUND_S)
                elif moment == "burst":
                    flowing.set()
                    send(3000)
                    svc.producer.flush(timeout=30)
                    time.sleep(0.3)  # the worker is producing the burst's alerts and state
                else:
                    flowing.set()
                    time.sleep(3)
                os.killpg(pid, signal.SIGSTOP)  # frozen: connections open, nothing answers
                time.sleep(seconds)
                os.killpg(pid, signal.SIGCONT)
                flowing.set()
                took = caught_up(BOUND_S)
                report.append(f"{seconds:.0f} s {moment}: caught up {took:.1f} s after the thaw")
        ending.set()
        sender.join(30)
        caught_up(BOUND_S)
        assert alerts is not None
        probes = {p["customer_id"] for p in svc.probes}  # the readiness probes' own alerts
        with alerts.lock:
            redelivered = sum(n - 1 for n in alerts.ids.values())
            assert alerts.customers - probes == expected  # every expected alert, and no other
        assert supervisor is not None
        restarts = [why for code, why in supervisor.exits if code == EXIT_STALLED]
        print(
            f"{len(FREEZES) * len(MOMENTS)} freezes: {len(expected)} alerts, 0 missing, 0 unexpected, "
            f"{redelivered} same-id redeliveries; " + "; ".join(report)
        )
        print(f"exits for a restart (status 75): {len(restarts)}: {restarts}")
        print(f"every exit: {supervisor.exits}")
        for code, why in supervisor.exits:
            # every exit is a failure status, so that any supervisor (systemd's on-failure too) starts
            # it again: 75 for a restart (a deadline, the watchdog, a stuck shutdown), 1 when a produce
            # request timed out and the worker stopped with nothing acked, or, restarted while the
            # broker is still frozen, when it cannot reach Kafka at start
            assert code in (EXIT_STALLED, 1), (code, why)
    finally:
        ending.set()
        if pid is not None:
            os.killpg(pid, signal.SIGCONT)
        if supervisor is not None:
            supervisor.close()
        if alerts is not None:
            alerts.close()
        svc.close()
        broker.stop()
        gc.collect()  # those sockets' ResourceWarnings, under this test's filter
