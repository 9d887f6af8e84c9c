"""Aggregate: publish partition partials, merge them, emit snapshots, gauges and trend alerts.

Intake keeps each input partition's window buckets (exact for its customers).
Every ``snapshot_interval_s`` this stage publishes the partials that changed to
``<app>-window-partials``, keyed by dimension and key, so one worker sees every
partition's partial of a key; it sums them into the snapshots on
``feedback-windows``, the Prometheus gauges, and ``trend_drop`` alerts for ops.
Partials replace (not add to) what came before, so a replay changes nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import orjson
from faust.types import Message

from agents.intake import VERSION_HEADER, utc_now
from alerts.snapshots import snapshot_records, trend_alerts
from stream.metrics import Metrics
from stream.settings import Settings
from stream.state import SEP, Changelog, WindowStore

if TYPE_CHECKING:
    from stream.app import SurveyApp


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
        return view

    def merged(self) -> dict[str, list[tuple[float, dict[str, Any]]]]:
        """``dimension␟key`` -> [(watermark, partial doc) per partition] for the changed keys.

        Table keys: ``dimension␟key␟partition`` (watermark) and
        ``dimension␟key␟partition␟window␟start`` (one bucket's stats).
        """
        if self.view is None:
            self.view = self._build()
        dirty, self.dirty = self.dirty, set()
        return {k: list(self.view[k].values()) for k in dirty if k in self.view}

    def outputs(self) -> tuple[list[tuple[bytes, dict[str, Any]]], list[tuple[bytes, dict[str, Any]]]]:
        """Snapshot records and trend alerts for every key changed since the last call."""
        now = self.clock()
        snapshots: list[tuple[bytes, dict[str, Any]]] = []
        trends: list[tuple[bytes, dict[str, Any]]] = []
        for dimkey, parts in self.merged().items():
            dimension, key = dimkey.split(SEP, 1)
            watermark = max(wm for wm, _ in parts)
            docs = [doc for _, doc in parts]
            records = snapshot_records(
                dimension, key, self.specs, docs, watermark, self.settings.min_responses, now
            )
            snapshots.extend((f"{dimension}:{key}".encode(), r) for r in records)
            self._gauges(dimension, key, records)
            if dimension in self.settings.trend_dimensions:
                raised = trend_alerts(dimension, key, self.specs, docs, watermark, self.trend, now)
                current = {(dimension, key, a["metric"]) for a in raised}
                for alert in raised:
                    if (dimension, key, alert["metric"]) not in self.active_trends:
                        trends.append((f"{dimension}:{key}".encode(), alert))
                        self.metrics.trend_alerts.labels(alert["metric"]).inc()
                # a drop alerts once while it lasts, and again only after it recovered
                self.active_trends = {t for t in self.active_trends if t[:2] != (dimension, key)} | current
        return snapshots, trends

    def _gauges(self, dimension: str, key: str, records: list[dict[str, Any]]) -> None:
        if dimension not in self.settings.gauge_dimensions:
            return
        keys = self.exported.setdefault(dimension, set())
        if key not in keys and len(keys) >= self.settings.max_keys_per_dimension:
            self.metrics.window_keys_dropped.labels(dimension).inc()
            return
        keys.add(key)
        m = self.metrics
        for r in records:
            labels = (dimension, key, r["window"], r["metric"])
            m.window_value.labels(*labels).set(math.nan if r["value"] is None else r["value"])
            m.window_samples.labels(*labels).set(r["responses"])
            m.window_stderr.labels(*labels).set(math.nan if r["stderr"] is None else r["stderr"])


def install_aggregate(app: SurveyApp, settings: Settings, windows: WindowStore) -> Snapshots:
    """Declare the partials topic, the merge agent and the two timers on ``app``."""
    partials = app.topic(
        settings.partials_topic,
        partitions=settings.partitions,
        internal=True,
        key_serializer="raw",
        value_serializer="raw",
    )
    table = app.state_table(
        "window-merged", "Latest window partial of every (dimension, key) from every input partition."
    )
    snapshots = Snapshots(table, settings, app.metrics)
    interval = settings.snapshot_interval_s

    @app.timer(interval, name="publish-window-partials")  # type: ignore[untyped-decorator]
    async def publish() -> None:
        pending = []
        for partition, watermark, dim, buckets in windows.take_unpublished():
            value = orjson.dumps({"p": partition, "wm": watermark, "b": buckets})
            key = f"{dim[0]}{SEP}{dim[1]}".encode()
            pending.append(await app.producer.send(settings.partials_topic, key, value, None, None, None))
        for fut in pending:
            await fut

    changelog = Changelog(table)

    async def merge(messages: Sequence[Message]) -> None:
        """A batch of partials: the latest of each (dimension, key, input partition) replaces the last."""
        out = app.outbox()
        for m in messages:
            doc = orjson.loads(m.value or b"{}")
            base = (m.key or b"") + f"{SEP}{doc['p']}".encode()
            changelog.put(out, m.partition, base, orjson.dumps(doc["wm"]))
            for window, start, stats in doc["b"]:
                key = base + f"{SEP}{window}{SEP}{start}".encode()
                # None: the bucket expired at its partition (a tombstone here too)
                changelog.put(out, m.partition, key, None if stats is None else orjson.dumps(stats))
            snapshots.apply((m.key or b"").decode(), str(doc["p"]), doc["wm"], doc["b"])
        await out.deliver()  # the merged table's changelog, before the batch is acked

    app.batch_agent(partials)(merge)

    async def _moved(sender: Any, *args: Any, **kwargs: Any) -> None:
        snapshots.view = None  # rebuilt from the table once it is restored

    app.on_partitions_assigned.connect(_moved)  # type: ignore[arg-type]

    @app.timer(interval, name="emit-window-snapshots")  # type: ignore[untyped-decorator]
    async def emit() -> None:
        if snapshots.view is None and app.in_recovery:
            return  # the merged table is still being restored
        records, trends = snapshots.outputs()
        pending = []
        for key, rec in records:
            pending.append(
                await app.producer.send(
                    settings.feedback_windows_topic, key, orjson.dumps(rec), None, None, [VERSION_HEADER]
                )
            )
        for key, alert in trends:
            pending.append(
                await app.producer.send(
                    settings.ops_alerts_topic, key, orjson.dumps(alert), None, None, [VERSION_HEADER]
                )
            )
        for fut in pending:
            await fut
        app.metrics.snapshots.inc(len(records))

    return snapshots
