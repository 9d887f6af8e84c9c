"""Aggregate: publish partition partials, merge them, emit snapshots, gauges and trend alerts.

Intake keeps each input partition's window buckets (exact for its customers).
Every ``snapshot_interval_s`` this stage publishes the partials that changed to
``<app>-window-partials``, keyed by dimension and key, so one worker sees every
partition's partial of a key; it sums them into the snapshots on
``feedback-windows``, the Prometheus gauges, and ``trend_drop`` alerts for ops.
Partials replace (not add to) what came before, so a replay changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

import orjson
from faust.types import Message

from agents.intake import utc_now
from alerts.pipeline import VERSION_HEADER
from alerts.snapshots import snapshot_records, trend_alerts
from stream.metrics import Metrics
from stream.settings import Settings
from stream.worker.pacing import Pacer
from stream.worker.runtime import StageRuntime
from stream.worker.state import SEP, Changelog, Outbox, WindowStore, merged_key_partition

log = logging.getLogger(__name__)


class Snapshots:
    """Merged view of partials (a Faust table keyed ``dimension␟key␟partition``) and its outputs."""

    def __init__(
        self, table: Any, settings: Settings, metrics: Metrics, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self.table = table
        self.settings = settings
        self.specs = settings.window_specs()
        self.trend = settings.trend_policy()
        self.metrics = metrics
        self.clock = clock
        self.dirty: set[str] = set()  # keys changed since the last snapshot
        # dimension␟key -> partition -> (watermark, {window: {bucket start: stats}}): the
        # table decoded once and then kept up to date by ``apply`` (None: to build)
        self.view: dict[str, dict[str, tuple[float, dict[str, dict[str, Any]]]]] | None = None
        self.exported: dict[str, set[str]] = {}
        # labels -> the gauges' children: ``labels()`` validates and looks up on every call,
        # ~15 µs for the three of a record, a few thousand times per snapshot
        self._children: dict[tuple[str, str, str, str], tuple[Any, Any, Any]] = {}
        self.active_trends: set[tuple[str, str, str]] = set()

    def apply(self, dimkey: str, partition: str, watermark: float, buckets: list[Any]) -> None:
        """A partition's new partial of ``dimension␟key`` (already written to the table)."""
        self.dirty.add(dimkey)
        if self.view is None:
            return  # built from the table, this change included, at the next snapshot
        by_p = self.view.setdefault(dimkey, {})
        _, doc = by_p.get(partition, (0.0, {}))
        for window, start, stats in buckets:
            if stats is None:
                doc.get(window, {}).pop(str(start), None)
            else:
                doc.setdefault(window, {})[str(start)] = stats
        by_p[partition] = (watermark, doc)

    def _build(self) -> dict[str, dict[str, tuple[float, dict[str, dict[str, Any]]]]]:
        """Decode the whole table (once after a start): every key counts as changed."""
        view: dict[str, dict[str, tuple[float, dict[str, dict[str, Any]]]]] = {}
        for key, raw in list(self.table.data.items()):
            fields = key.decode().split(SEP)
            dimkey = f"{fields[0]}{SEP}{fields[1]}"
            by_p = view.setdefault(dimkey, {})
            wm, doc = by_p.get(fields[2], (0.0, {}))
            if len(fields) == 3:
                wm = float(orjson.loads(raw))
            else:
                doc.setdefault(fields[3], {})[fields[4]] = orjson.loads(raw)
            by_p[fields[2]] = (wm, doc)
        self.dirty.update(view)
        self._forget_gone(view)
        return view

    def _forget_gone(self, view: dict[str, Any]) -> None:
        """Stop exporting keys the table no longer holds (their partitions moved to another worker)."""
        m = self.metrics
        for labels in [labels for labels in self._children if f"{labels[0]}{SEP}{labels[1]}" not in view]:
            del self._children[labels]
            for gauge in (m.window_value, m.window_samples, m.window_stderr):
                with contextlib.suppress(KeyError):
                    gauge.remove(*labels)
        for dimension, keys in self.exported.items():
            keys.difference_update([k for k in keys if f"{dimension}{SEP}{k}" not in view])
        self.active_trends = {t for t in self.active_trends if f"{t[0]}{SEP}{t[1]}" in view}

    def _view(self) -> dict[str, dict[str, tuple[float, dict[str, dict[str, Any]]]]]:
        """The view, built from the table first if needed. Table keys: ``dimension␟key␟partition``
        (watermark) and ``dimension␟key␟partition␟window␟start`` (one bucket's stats)."""
        if self.view is None:
            self.view = self._build()
        return self.view

    def take_changed(self) -> list[str]:
        """The ``dimension␟key``s changed since the last call (all of them after a start)."""
        self._view()
        dirty, self.dirty = self.dirty, set()
        return sorted(dirty)

    def outputs_of(
        self, dimkey: str, now: datetime
    ) -> tuple[list[tuple[bytes, dict[str, Any]]], list[tuple[bytes, dict[str, Any]]]]:
        """Snapshot records and new trend alerts of one ``dimension␟key``, from the view as it is now."""
        parts = list(self._view().get(dimkey, {}).values())
        if not parts:
            return [], []
        dimension, key = dimkey.split(SEP, 1)
        watermark = max(wm for wm, _ in parts)
        docs = [doc for _, doc in parts]
        records = snapshot_records(
            dimension, key, self.specs, docs, watermark, self.settings.min_responses, now
        )
        self._gauges(dimension, key, records)
        out_key = f"{dimension}:{key}".encode()
        trends: list[tuple[bytes, dict[str, Any]]] = []
        if dimension in self.settings.trend_dimensions:
            raised = trend_alerts(dimension, key, self.specs, docs, watermark, self.trend, now)
            current = {(dimension, key, a["metric"]) for a in raised}
            for alert in raised:
                if (dimension, key, alert["metric"]) not in self.active_trends:
                    trends.append((out_key, alert))
                    self.metrics.trend_alerts.labels(alert["metric"]).inc()
            # a drop alerts once while it lasts, and again only after it recovered
            self.active_trends = {t for t in self.active_trends if t[:2] != (dimension, key)} | current
        return [(out_key, r) for r in records], trends

    def _gauges(self, dimension: str, key: str, records: list[dict[str, Any]]) -> None:
        if dimension not in self.settings.gauge_dimensions:
            return
        keys = self.exported.setdefault(dimension, set())
        if key not in keys and len(keys) >= self.settings.max_keys_per_dimension:
            self.metrics.window_keys_dropped.labels(dimension).inc()
            return
        keys.add(key)
        children = self._children
        for r in records:
            labels = (dimension, key, r["window"], r["metric"])
            gauges = children.get(labels)
            if gauges is None:
                m = self.metrics
                gauges = children[labels] = (
                    m.window_value.labels(*labels),
                    m.window_samples.labels(*labels),
                    m.window_stderr.labels(*labels),
                )
            value, samples, stderr = gauges
            value.set(math.nan if r["value"] is None else r["value"])
            samples.set(r["responses"])
            stderr.set(math.nan if r["stderr"] is None else r["stderr"])


async def publish_partials(windows: WindowStore, out: Outbox, topic: str) -> int:
    """Send every partition's changed window partials to ``topic``; returns how many.

    After a backlog that is a hundred thousand buckets: the work pauses between
    partials so that batches go on meanwhile.
    """
    pacer = Pacer()
    n = 0
    for partition, watermark, dim, buckets in windows.take_unpublished():
        value = orjson.dumps({"p": partition, "wm": watermark, "b": buckets})
        out.add(topic, None, f"{dim[0]}{SEP}{dim[1]}".encode(), value)
        n += 1
        await pacer.pause()
    await out.deliver()
    return n


async def emit_snapshots(snapshots: Snapshots, out: Outbox, settings: Settings) -> int:
    """Send snapshots and new trend alerts of every key changed since the last call; returns the snapshots."""
    now = snapshots.clock()
    pacer = Pacer()  # a few records for each key that changed: a pause between keys
    n = 0
    for dimkey in snapshots.take_changed():
        if snapshots.view is None:
            break  # partitions moved meanwhile: the new view marks every key, emitted next time
        records, trends = snapshots.outputs_of(dimkey, now)
        for key, rec in records:
            out.add(settings.feedback_windows_topic, None, key, orjson.dumps(rec), [VERSION_HEADER])
        for key, alert in trends:
            out.add(settings.ops_alerts_topic, None, key, orjson.dumps(alert), [VERSION_HEADER])
        n += len(records)
        await pacer.pause()
    await out.deliver()
    snapshots.metrics.snapshots.inc(n)
    return n


class MergeAgent:
    """Batches of partials: the latest of each (dimension, key, input partition) replaces the last.

    A merge runs beside the drain loop, a slice at a time (a batch of partials after
    a backlog is a few hundred milliseconds of work), and in order, each batch after
    the one before. The consumer acks a batch when its merge and the merged table's
    changelog records are done.
    """

    def __init__(self, table: Any, snapshots: Snapshots, outbox: Callable[[], Outbox]) -> None:
        self.changelog = Changelog(table)
        self.snapshots = snapshots
        self.outbox = outbox
        self.tail: asyncio.Future[None] | None = None  # the newest batch's merge

    async def __call__(self, messages: Sequence[Message]) -> asyncio.Future[None]:
        previous = self.tail
        self.tail = asyncio.ensure_future(self._merge(list(messages), previous))
        return self.tail

    async def drain(self) -> None:
        """Wait until every batch handed over so far is merged and its records delivered."""
        if self.tail is not None:
            await self.tail

    async def _merge(self, messages: list[Message], previous: asyncio.Future[None] | None) -> None:
        if previous is not None:
            await previous  # a failure before this batch is its failure too
        put, apply = self.changelog.put, self.snapshots.apply
        out = self.outbox()
        pacer = Pacer()
        for m in messages:
            doc = orjson.loads(m.value or b"{}")
            base = (m.key or b"") + f"{SEP}{doc['p']}".encode()
            put(out, m.partition, base, orjson.dumps(doc["wm"]))
            for window, start, stats in doc["b"]:
                key = base + f"{SEP}{window}{SEP}{start}".encode()
                # None: the bucket expired at its partition (a tombstone here too)
                put(out, m.partition, key, None if stats is None else orjson.dumps(stats))
            apply((m.key or b"").decode(), str(doc["p"]), doc["wm"], doc["b"])
            await pacer.pause()
        await out.deliver()  # the merged table's changelog, before the batch is acked


def install_aggregate(app: StageRuntime, settings: Settings, windows: WindowStore) -> Snapshots:
    """Declare the partials topic, the merge agent and the two timers on ``app``."""
    partials = app.topic(
        settings.partials_topic,
        partitions=settings.partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    table = app.state_table(
        "window-merged",
        "Latest window partial of every (dimension, key) from every input partition.",
        merged_key_partition(settings.partitions),
    )
    snapshots = Snapshots(table, settings, app.metrics)
    interval = settings.snapshot_interval_s

    @app.timer(interval, name="publish-window-partials")
    async def publish() -> None:
        await publish_partials(windows, app.outbox(), settings.partials_topic)

    merge = MergeAgent(table, snapshots, app.outbox)
    app.batch_agent(partials)(merge)

    async def _revoked(sender: Any, *args: Any, **kwargs: Any) -> None:
        try:
            await merge.drain()  # what was handed over is merged before another worker takes over
        except Exception:  # the consumer raises it when it settles the batch
            log.warning("a merge failed while partitions were revoked", exc_info=True)

    app.on_partitions_revoked.connect(_revoked)

    async def _moved(sender: Any, *args: Any, **kwargs: Any) -> None:
        snapshots.view = None  # rebuilt from the table once it is restored

    app.on_partitions_assigned.connect(_moved)

    @app.timer(interval, name="emit-window-snapshots")
    async def emit() -> None:
        if snapshots.view is None and not app.settled(table):
            # still being restored, or cleared of partitions given away: a view built now would
            # keep (and export gauges of) keys another worker has taken over
            return
        await emit_snapshots(snapshots, app.outbox(), settings)

    return snapshots
