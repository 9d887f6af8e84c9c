"""A backlog of 1M events plus ten times the normal input rate for a minute.

The worker is stopped while a backlog builds (an outage), then started while the input runs at
ten times its normal rate for a minute, then at the normal rate until it has caught up. Probe
detractors, one a second, measure the alert latency all the way through. Afterwards: every alert
the pure pipeline raises over the same input is on the topic and none other, the worker's peak
RSS did not grow with the backlog, and the latency is back to what it was before.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import re
import signal
import statistics
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from stream.replay.run import replay_records, run
from stream.tools.bench.run import produce as produce_fast
from stream.tools.brokers import LocalBroker
from stream.tools.generate import Generator, Message, Mix
from tests.support.factories import raw, survey, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration
BACKLOG = int(os.environ.get("SURVEY_ALERTS_TEST_BURST_BACKLOG", "1000000"))
NORMAL = 300  # events/s
BURST_S = 60


def _now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class Probes:
    """Detractors on fresh customers, and the time each one's alert arrived."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.sent: dict[bytes, tuple[float, str]] = {}  # key -> (monotonic send time, phase)
        self.arrived: dict[bytes, float] = {}
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._tail, daemon=True)
        self.thread.start()

    def send(self, phase: str) -> None:
        cid = uid("burst-probe")
        self.sent[cid.encode()] = (time.monotonic(), phase)
        self.svc.producer.send(
            self.svc.settings.survey_responses_topic, raw(survey(cid, at=_now(), nps=0)), cid.encode()
        )

    def _tail(self) -> None:
        consumer = self.svc.consumer(self.svc.settings.recovery_alerts_topic, idle_ms=200)
        try:
            while not self.stop.is_set():
                for r in consumer:
                    if r.key and r.key.startswith(b"burst-probe") and r.key not in self.arrived:
                        self.arrived[r.key] = time.monotonic()
        finally:
            consumer.close()

    def latencies(self, phase: str) -> list[float]:
        return [self.arrived[k] - at for k, (at, p) in self.sent.items() if p == phase and k in self.arrived]

    def unanswered(self) -> int:
        return sum(k not in self.arrived for k in self.sent)


class Memory:
    """The worker's resident memory, sampled twice a second (across restarts)."""

    def __init__(self, svc: Service) -> None:
        self.svc = svc
        self.samples: list[tuple[str, float]] = []  # phase, MB
        self.phase = "before"
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._sample, daemon=True)
        self.thread.start()

    def _sample(self) -> None:
        while not self.stop.wait(0.5):
            proc = self.svc.proc
            if proc is None or proc.poll() is not None:
                continue
            try:
                status = Path(f"/proc/{proc.pid}/status").read_text()
            except OSError:
                continue
            m = re.search(r"VmRSS:\s+(\d+) kB", status)
            if m:
                self.samples.append((self.phase, int(m.group(1)) / 1024))

    def peak(self, *phases: str) -> float:
        return max(mb for p, mb in self.samples if p in phases)


def paced(
    svc: Service, probes: Probes, messages: Iterator[Message], rate: float, seconds: float, phase: str
) -> int:
    """Send ``messages`` at ``rate`` per second for ``seconds``, a probe every second."""
    topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
    started = time.monotonic()
    sent = 0
    next_probe = started
    while (now := time.monotonic()) - started < seconds:
        if now >= next_probe:
            probes.send(phase)
            next_probe += 1.0
        due = int((now - started) * rate)
        while sent < due:
            m = next(messages)
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
            sent += 1
        time.sleep(0.01)
    svc.producer.flush()
    return sent


def _inputs(svc: Service, consumer: KafkaConsumer) -> list[TopicPartition]:
    return [
        TopicPartition(t, p)
        for t in (svc.settings.survey_responses_topic, svc.settings.ticket_events_topic)
        for p in consumer.partitions_for_topic(t) or ()
    ]


def end_offsets(svc: Service) -> dict[TopicPartition, int]:
    """The input partitions' end offsets now."""
    consumer = KafkaConsumer(bootstrap_servers=svc.broker.bootstrap)
    try:
        return dict(consumer.end_offsets(_inputs(svc, consumer)))
    finally:
        consumer.close()


def behind(svc: Service, ends: dict[TopicPartition, int] | None = None) -> int:
    """Input records the worker's group has not committed yet (of those up to ``ends``)."""
    consumer = KafkaConsumer(
        bootstrap_servers=svc.broker.bootstrap, group_id=svc.settings.app_id, enable_auto_commit=False
    )
    try:
        ends = ends or consumer.end_offsets(_inputs(svc, consumer))
        return sum(max(0, end - (consumer.committed(tp) or 0)) for tp, end in ends.items())
    finally:
        consumer.close()


@pytest.mark.timeout(1500)
def test_a_1m_backlog_and_a_10x_burst_lose_nothing_in_bounded_memory(
    kafka: LocalBroker, tmp_path: Path
) -> None:
    # no waiting for tickets: the comparison with the pure pipeline (see test_crash.py)
    svc = Service(kafka, tmp_path, ticket_wait_s="0")
    total = BACKLOG + NORMAL * BURST_S * 11 + NORMAL * 300  # more than enough for every phase
    step_s = 0.25
    gen = Generator(
        seed=5,
        customers=50_000,
        start=datetime.now(UTC) - timedelta(seconds=step_s * total),
        step_s=step_s,
        mix=Mix(malformed_rate=0.001),
    )
    messages = gen.messages(total)
    probes = Probes(svc)
    memory = Memory(svc)
    story: list[str] = []
    t0 = time.monotonic()

    def note(text: str) -> None:
        story.append(f"{time.monotonic() - t0:6.1f} s  {text}")

    try:
        svc.start()
        note("worker ready; normal input")
        sent = paced(svc, probes, messages, NORMAL, 20, "before")
        rss_before = memory.peak("before")

        svc.stop(signal.SIGTERM)
        memory.phase = "outage"
        note(f"worker stopped (RSS {rss_before:.0f} MB); producing a backlog of {BACKLOG:,} events")
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        backlog = ((topics[m.stream], m.key, m.value) for m in itertools.islice(messages, BACKLOG))
        seconds = asyncio.run(
            produce_fast({"bootstrap_servers": kafka.bootstrap}, backlog, BACKLOG, "backlog")
        )
        sent += BACKLOG
        note(f"backlog produced in {seconds:.0f} s; {behind(svc):,} records behind")

        memory.phase = "burst"
        svc.start(ready=False)
        note(f"worker started; {10 * NORMAL:,} events/s for {BURST_S} s")
        sent += paced(svc, probes, messages, 10 * NORMAL, BURST_S, "burst")
        note(f"burst over; {behind(svc):,} records behind")

        memory.phase = "catching up"
        deadline = time.monotonic() + 900
        ends = end_offsets(svc)  # caught up: everything produced until the burst's end is processed
        while (lag := behind(svc, ends)) > 0:
            assert time.monotonic() < deadline, f"still {lag:,} behind\n" + "\n".join(story) + svc.tail()
            assert svc.proc is not None and svc.proc.poll() is None, svc.tail()
            sent += paced(svc, probes, messages, NORMAL, 5, "catching up")
        note("caught up; normal input")
        memory.phase = "after"
        sent += paced(svc, probes, messages, NORMAL, 30, "after")
        deadline = time.monotonic() + 60
        while probes.unanswered() and time.monotonic() < deadline:
            time.sleep(0.5)
        note(f"{len(probes.sent)} probes, {probes.unanswered()} unanswered")
        peak = memory.peak("burst", "catching up", "after")

        # what the state alone takes: a new worker restored from the changelogs, holding the same
        # customers, windows and follow-ups, without a backlog to work through
        svc.stop(signal.SIGTERM)
        memory.phase = "restored"
        svc.start()
        time.sleep(5)
        memory.stop.set()
        restored = memory.peak("restored")
        note(f"restarted on the same state: RSS {restored:.0f} MB")

        inputs = svc.read_all(list(topics.values()), settle_s=3)
        note(f"read back {len(inputs):,} input records")
        expected = run(replay_records(inputs, svc.settings), svc.settings)
        want = {
            d["alert_id"]
            for _, d in expected.docs
            if "escalation_id" not in d and d["kind"] != "followup_overdue"
        }
        note(f"expected computed: {len(want):,} alerts")
        alerts = [
            orjson.loads(r.value) for r in svc.read_all([svc.settings.recovery_alerts_topic], settle_s=3)
        ]
        got = [a["alert_id"] for a in alerts if a["kind"] != "followup_overdue"]
        missing, unexpected = want - set(got), set(got) - want
        duplicates = len(got) - len(set(got))

        lat = {p: probes.latencies(p) for p in ("before", "burst", "catching up", "after")}
        before_p50 = statistics.median(lat["before"])
        after_p50 = statistics.median(lat["after"])
        worst = max(lat["burst"] + lat["catching up"])
        note(
            f"{len(want):,} alerts expected: {len(missing)} missing, {len(unexpected)} unexpected, "
            f"{duplicates} same-id redeliveries"
        )
        note(
            f"alert latency p50 before {before_p50 * 1000:.0f} ms, worst in the burst {worst:.1f} s, "
            f"p50 after {after_p50 * 1000:.0f} ms; peak RSS {rss_before:.0f} MB before, {peak:.0f} MB "
            f"through backlog and burst ({sent:,} events in all), {restored:.0f} MB holding the same state"
        )
        print("\n" + "\n".join(story))
        print("RSS (MB) every 5 s:", " ".join(f"{p[:1]}{mb:.0f}" for p, mb in memory.samples[::10]))

        assert not missing and not unexpected, "\n".join(story)
        assert probes.unanswered() == 0
        # memory does not grow with the backlog: beyond what its state takes, the worker holds a
        # bounded fetch at a time (the backlog alone is ~300 MB on the wire)
        assert peak < 1.5 * restored, (peak, restored)
        # the latency recovers: after catching up it is a small fraction of the worst, and of the
        # order it was before the outage
        assert after_p50 < worst / 10
        assert after_p50 < 10 * before_p50, (before_p50, after_p50)
    finally:
        probes.stop.set()
        memory.stop.set()
        svc.close()
