"""Workers and other processes run as subprocesses by the integration tests, and helpers to talk to them."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from stream.kafka.topics import ensure_topics
from stream.settings import Settings
from stream.tools.brokers import LocalBroker, free_port
from tests.support.factories import raw, survey, uid


def spawn_worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    """``survey-alerts worker`` as a subprocess with ``env``, its output to ``log``."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "stream.cli", "worker"], env=env, stdout=out, stderr=subprocess.STDOUT
        )


def stop_process(proc: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM) -> None:
    """Send ``sig`` to ``proc`` if it still runs; SIGKILL it when it has not exited a minute later."""
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Service:
    """A worker subprocess with its own topics and consumer group, and helpers to talk to it."""

    def __init__(self, broker: LocalBroker, workdir: Path, **overrides: str) -> None:
        self.broker = broker
        self.workdir = workdir
        self.prefix = uid("t")
        self.port = free_port()
        self.env = {
            **os.environ,
            "SURVEY_ALERTS_BROKER": broker.url,
            "SURVEY_ALERTS_APP_ID": f"{self.prefix}-app",
            "SURVEY_ALERTS_WEB_PORT": str(self.port),
            "SURVEY_ALERTS_DATA_DIR": str(workdir / "data"),
            "SURVEY_ALERTS_LOG_LEVEL": "info",
            "SURVEY_ALERTS_SESSION_TIMEOUT_S": "10",
            "SURVEY_ALERTS_REBALANCE_TIMEOUT_S": "10",
            "SURVEY_ALERTS_COMMIT_INTERVAL_S": "0.5",
            "SURVEY_ALERTS_SNAPSHOT_INTERVAL_S": "1",
        }
        self.env.update(Settings.topic_environ(self.prefix))
        self.env.update({f"SURVEY_ALERTS_{k.upper()}": v for k, v in overrides.items()})
        self.settings = Settings.from_environ(self.env)  # exactly what the worker will read
        ensure_topics(self.settings)
        self.producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0
        self.probes: list[dict[str, Any]] = []  # readiness probes sent (they count in windows too)

    @property
    def log(self) -> Path:
        return self.workdir / f"worker-{self.starts}.log"

    def start(self, ready: bool = True) -> None:
        """Start the worker; with ``ready``, wait until a probe comes back (not behind a backlog)."""
        self.starts += 1
        self.proc = spawn_worker(self.env, self.log)
        if ready:
            self.wait_ready()

    def wait_ready(self, timeout_s: float = 90.0) -> None:
        """Ready means a probe detractor came back as an alert."""
        cid = uid("probe")
        self.probes.append(survey(cid, nps=0))
        self.send_survey(self.probes[-1])
        self.alerts_for(cid, 1, timeout_s=timeout_s)

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)

    def send(self, topic: str, value: bytes | None, key: bytes | None) -> None:
        self.producer.send(topic, value=value, key=key)
        self.producer.flush()

    def send_survey(self, doc: dict[str, Any], key: bytes | str | None = "auto") -> None:
        k = doc["customer_id"].encode() if key == "auto" else key
        self.send(self.settings.survey_responses_topic, raw(doc), k)  # type: ignore[arg-type]

    def send_ticket(self, doc: dict[str, Any]) -> None:
        self.send(self.settings.ticket_events_topic, raw(doc), doc["customer_id"].encode())

    def consumer(self, *topics: str, idle_ms: int = 500) -> KafkaConsumer:
        """A consumer of ``topics`` from the beginning, in no group; iterating it stops after
        ``idle_ms`` without a record."""
        return KafkaConsumer(
            *topics,
            bootstrap_servers=self.broker.bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            consumer_timeout_ms=idle_ms,
        )

    def read(self, topic: str, until: Callable[[list[Any]], bool], timeout_s: float = 60.0) -> list[Any]:
        """Records of ``topic`` from the beginning, once ``until(records)`` holds."""
        consumer = self.consumer(topic)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                records.extend(consumer)
                if until(records):
                    return records
                if self.proc is not None and self.proc.poll() is not None:
                    raise AssertionError(f"worker exited with {self.proc.returncode}:\n{self.tail()}")
            raise AssertionError(f"timed out reading {topic}; have {len(records)} records\n{self.tail()}")
        finally:
            consumer.close()

    def alerts_for(self, customer_id: str, count: int, timeout_s: float = 60.0) -> list[dict[str, Any]]:
        """Wait for at least ``count`` alerts of a customer; return all of them."""

        def mine(records: list[Any]) -> list[dict[str, Any]]:
            return [orjson.loads(r.value) for r in records if r.key == customer_id.encode()]

        records = self.read(self.settings.recovery_alerts_topic, lambda rs: len(mine(rs)) >= count, timeout_s)
        return mine(records)

    def escalation_topics(self) -> list[str]:
        """Every escalation queue topic this service has written to."""
        consumer = KafkaConsumer(bootstrap_servers=self.broker.bootstrap)
        try:
            return sorted(t for t in consumer.topics() if t.startswith(self.settings.escalations_prefix))
        finally:
            consumer.close()

    def read_all(self, topics: list[str], settle_s: float = 3.0, timeout_s: float = 120.0) -> list[Any]:
        """Every record of ``topics``: at least up to their end offsets as of the call, then
        whatever else arrives until nothing new came for ``settle_s``.

        Reading to the end offsets first keeps a slow start (a consumer on busy cores can
        take seconds to fetch its first records) from passing for "nothing more".
        """
        consumer = KafkaConsumer(
            bootstrap_servers=self.broker.bootstrap,
            enable_auto_commit=False,
            consumer_timeout_ms=int(settle_s * 1000),
        )
        deadline = time.monotonic() + timeout_s
        try:
            existing = consumer.topics()  # a topic not created (yet) has no records to read
            tps = [
                TopicPartition(topic, p)
                for topic in topics
                if topic in existing
                for p in sorted(consumer.partitions_for_topic(topic) or ())
            ]
            if not tps:
                return []
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            records: list[Any] = []
            while any(consumer.position(tp) < ends[tp] for tp in tps):
                assert time.monotonic() < deadline, f"timed out reading {topics} to their end offsets"
                for batch in consumer.poll(timeout_ms=500).values():
                    records.extend(batch)
            records.extend(consumer)  # and what came since, until quiet
            return records
        finally:
            consumer.close()

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as resp:
            return str(resp.read().decode())

    def tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def close(self) -> None:
        self.stop()
        self.producer.close()


def listening(pid: int) -> set[tuple[str, int]]:
    """The (address, port)s a process listens on over TCP, from /proc (its sockets' inodes)."""
    import ipaddress

    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    found = set()
    for table, size in (("tcp", 4), ("tcp6", 16)):
        for line in Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[3] != "0A" or fields[9] not in inodes:  # 0A: LISTEN
                continue
            address, port = fields[1].split(":")
            raw = bytes.fromhex(address)
            # /proc prints each 32-bit word in host (little-endian) order
            packed = b"".join(raw[i : i + 4][::-1] for i in range(0, size, 4))
            found.add((str(ipaddress.ip_address(packed)), int(port, 16)))
    return found


class Process:
    """Another survey-alerts process (the notifier, the inbox) beside a worker, with the worker's settings."""

    def __init__(self, service: Service, command: list[str], name: str, **env: str) -> None:
        self.service = service
        self.command = command
        self.name = name
        self.env = {**service.env, **env}
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log(self) -> Path:
        return self.service.workdir / f"{self.name}-{self.starts}.log"

    def start(self) -> None:
        self.starts += 1
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "stream.cli", *self.command],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, sig: int = signal.SIGTERM) -> None:
        stop_process(self.proc, sig)

    def logs(self) -> str:
        """Every log this process wrote, all starts."""
        return "\n".join(
            (self.service.workdir / f"{self.name}-{i}.log").read_text(errors="replace")
            for i in range(1, self.starts + 1)
        )


def inbox_process(service: Service, db: Path, users: Path, port: int) -> Process:
    """``survey-alerts inbox`` beside ``service``'s worker: read model in ``db``, logins from ``users``."""
    return Process(
        service,
        ["inbox"],
        "inbox",
        SURVEY_ALERTS_INBOX_DB=str(db),
        SURVEY_ALERTS_INBOX_USERS=str(users),
        SURVEY_ALERTS_INBOX_PORT=str(port),
    )


def wait_for(check: Callable[[], Any], timeout_s: float = 60.0, what: str = "") -> Any:
    """Poll ``check`` until it returns something true (returned); an OSError or a failed assert
    inside it counts as not yet. Past ``timeout_s`` fails naming ``what`` and the last answer."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while True:
        try:
            last = check()
        except (OSError, AssertionError) as exc:
            last = exc
        else:
            if last:
                return last
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}: {last!r}")
        time.sleep(0.3)
