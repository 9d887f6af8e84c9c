"""The development and evaluation commands: ``generate``, ``demo``, ``bench``, ``kafka start|stop``."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import click

from stream.console import settings_or_exit


@click.command()
@click.option("--count", default=1000, show_default=True, help="How many messages to send.")
@click.option(
    "--rate", default=200.0, show_default=True, help="Messages per second (0: as fast as possible)."
)
@click.option("--customers", default=1000, show_default=True, help="Distinct customers.")
@click.option("--seed", default=1, show_default=True, help="Random seed: the same seed, the same stream.")
@click.option("--malformed-rate", default=0.0, show_default=True, help="Fraction of broken messages.")
@click.option("--edit-rate", default=0.02, show_default=True, help="Fraction of edited responses.")
@click.option(
    "--duplicate-rate", default=0.02, show_default=True, help="Fraction of duplicate ticket events."
)
@click.option(
    "--live/--simulated",
    default=True,
    show_default=True,
    help="Event times from the wall clock, or a simulated clock starting an hour ago.",
)
@click.option(
    "--profiles/--no-profiles",
    default=True,
    show_default=True,
    help="Also send the customers' CRM profiles to the customer-profiles topic.",
)
@click.option("--stdout", is_flag=True, help="Print JSON lines (stream, key, value) instead of producing.")
def generate(
    count: int,
    rate: float,
    customers: int,
    seed: int,
    malformed_rate: float,
    edit_rate: float,
    duplicate_rate: float,
    live: bool,
    profiles: bool,
    stdout: bool,
) -> None:
    """Send realistic synthetic surveys and ticket events to the input topics."""
    from stream.tools.generate import Generator, Mix
    from stream.tools.produce import produce

    mix = Mix(malformed_rate=malformed_rate, edit_rate=edit_rate, duplicate_rate=duplicate_rate)
    gen = Generator(seed=seed, customers=customers, mix=mix, live=live, profiles=profiles)
    if stdout:
        for m in gen.messages(count):
            click.echo(
                json.dumps(
                    {
                        "stream": m.stream,
                        "key": (m.key or b"").decode(),
                        "value": None if m.value is None else m.value.decode("utf-8", "replace"),
                        "note": m.note,
                    }
                )
            )
        return
    from kafka.errors import KafkaError

    from stream.errors import ConfigurationError
    from stream.kafka.security import explain

    try:
        settings = settings_or_exit()
        started = time.monotonic()
        sent = produce(settings, gen.messages(count), rate=rate or None)
    except (ValueError, ConfigurationError) as exc:
        raise click.ClickException(str(exc)) from None
    except KafkaError as exc:
        raise click.ClickException(explain(settings, exc)) from None
    click.echo(f"sent {sent} messages in {time.monotonic() - started:.1f}s to {settings.broker}")


@click.command()
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: Ctrl-C).")
@click.option("--rate", default=50.0, show_default=True, help="Generated messages per second.")
@click.option("--malformed-rate", default=0.01, show_default=True, help="Fraction of broken messages.")
@click.option("--seed", default=1, show_default=True, help="Random seed of the generator.")
def demo(duration: float | None, rate: float, malformed_rate: float, seed: int) -> None:
    """Start the embedded broker, a worker and the generator; print alerts as they happen."""
    from stream.errors import BrokerError
    from stream.tools.demo import run_demo

    try:
        run_demo(duration, rate, malformed_rate, seed)
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option(
    "--broker",
    default="kafka",
    show_default=True,
    help="kafka (start Apache Kafka here), tansu (embedded), or a kafka://host:port URL.",
)
@click.option(
    "--events", default=1_000_000, show_default=True, help="Generated events for the throughput run."
)
@click.option("--customers", default=50_000, show_default=True, help="Distinct customers in that stream.")
@click.option("--partitions", default=4, show_default=True, help="Partitions of every topic.")
@click.option(
    "--baseline-events",
    default=200_000,
    show_default=True,
    help="Events the bare Faust loop reads (a rate; fewer keeps the run short).",
)
@click.option(
    "--naive-events",
    default=50_000,
    show_default=True,
    help="Events the idiomatic per-event Faust pipeline reads.",
)
@click.option(
    "--inprocess-events",
    default=200_000,
    show_default=True,
    help="Events for the in-process measurements (the intake and the floor, no broker).",
)
@click.option(
    "--state-customers",
    default=1_000_000,
    show_default=True,
    help="Distinct customers for the memory and restart measurements.",
)
@click.option("--latency-rate", default=5000.0, show_default=True, help="Events/s of the latency run.")
@click.option("--latency-seconds", default=20.0, show_default=True, help="Length of the latency run.")
@click.option(
    "--pin-worker",
    is_flag=True,
    help="During the latency run, give the worker a core of its own (the broker and the load share the"
    " others), as in a deployment where Kafka and the producers run elsewhere.",
)
@click.option(
    "--workers",
    default=1,
    show_default=True,
    type=click.IntRange(1),
    help="Workers (one process each, in one group) for the full pipeline's run; the rest run one.",
)
@click.option(
    "--event-rate",
    default=5000.0,
    show_default=True,
    help="Events per second of event time in the default and alert-heavy loads (a batch spans what"
    " it would at that rate).",
)
@click.option(
    "--stress-events",
    default=300_000,
    show_default=True,
    help="Events of the stress load: the same mix with event time compressed (0: skip).",
)
@click.option(
    "--alert-heavy-events",
    default=200_000,
    show_default=True,
    help="Surveys of the alert-heavy load, from as many new customers (0: skip).",
)
@click.option(
    "--peer/--no-peer",
    default=True,
    show_default=True,
    help="Run the Quix Streams peer on the default and alert-heavy loads (needs the bench extra).",
)
@click.option(
    "--rounds",
    default=3,
    show_default=True,
    type=click.IntRange(1),
    help="Rounds of the service then the peer on the same events, alternated, for each of the two"
    " loads; service_vs_peer is the median of the rounds' ratios (the host's pace moves between minutes).",
)
@click.option(
    "--quiet-timeout-s",
    default=90.0,
    show_default=True,
    help="The longest wait, before each pass of the service or the peer, for the machine to go quiet"
    " (what the pass before it left behind: the broker's compaction, write-back).",
)
def bench(**options: Any) -> None:
    """Measure throughput against baselines, alert latency, memory and restart time (last line: JSON)."""
    import orjson

    from stream.tools.bench.run import run_bench

    click.echo(orjson.dumps(run_bench(**options)).decode())


@click.group()
def kafka() -> None:
    """A local single-node Apache Kafka (KRaft) for tests and benchmarks."""


def _state_file() -> Path:
    from stream.tools.brokers import CACHE

    return CACHE / "kafka-run" / "state.json"


@kafka.command("start")
@click.option("--port", default=9092, show_default=True)
def kafka_start(port: int) -> None:
    """Fetch Kafka once (Maven Central), start it in the background, print its URL."""
    from stream.tools.brokers import ApacheKafka

    state = _state_file()
    if state.exists():
        raise click.ClickException(f"a Kafka started here is already running ({state}); stop it first")
    broker = ApacheKafka(port=port, workdir=state.parent)
    broker.start()
    assert broker.proc is not None
    state.write_text(json.dumps({"pid": broker.proc.pid, "port": port}))
    click.echo(broker.url)


@kafka.command("stop")
def kafka_stop() -> None:
    """Stop the Kafka that ``kafka start`` started and delete its data."""
    import os
    import shutil

    state = _state_file()
    if not state.exists():
        click.echo("no Kafka started by survey-alerts is running")
        return
    pid = json.loads(state.read_text())["pid"]
    try:
        os.killpg(pid, signal.SIGTERM)
        for _ in range(300):
            os.kill(pid, 0)
            time.sleep(0.1)
        os.killpg(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    shutil.rmtree(state.parent, ignore_errors=True)
    click.echo("stopped")
