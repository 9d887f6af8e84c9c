"""The service's Prometheus metrics: one typed bundle on a registry you pass in.

Labels are bounded by construction (topic names from settings, alert kinds,
error codes); never a customer, a response or free text.
"""

from __future__ import annotations

import platform
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from alerts.deadletters import INVALID_DESTINATION, OUTPUT_TOO_LARGE
from alerts.pipeline import BatchResult
from schemas.validate import CODES

PREFIX = "survey_alerts"


def _version() -> str:
    try:
        return version("survey-alerts")
    except PackageNotFoundError:
        return "unknown"


_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """Every metric the worker exports."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            f"{PREFIX}_records_consumed", "Input records read, by topic.", ["topic"], registry=r
        )
        self.invalid = Counter(
            f"{PREFIX}_records_invalid",
            "Input records sent to the dead-letter topic, by topic and error code.",
            ["topic", "code"],
            registry=r,
        )
        self.outputs_dead_lettered = Counter(
            f"{PREFIX}_outputs_dead_lettered",
            "Outputs that could not be produced and went to the dead-letter topic instead, by code.",
            ["code"],
            registry=r,
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts_raised",
            "Recovery alerts raised, by kind and severity.",
            ["kind", "severity"],
            registry=r,
        )
        self.duplicates = Counter(
            f"{PREFIX}_duplicate_events", "Ticket events ignored as repeated deliveries.", registry=r
        )
        self.edits = Counter(
            f"{PREFIX}_response_edits", "Survey responses that replaced an earlier one.", registry=r
        )
        self.rekeyed = Counter(
            f"{PREFIX}_records_rekeyed",
            "Records that arrived on a partition other than their customer's and were forwarded.",
            registry=r,
        )
        self.restored = Counter(
            f"{PREFIX}_state_records_restored",
            "Changelog records applied to state tables while restoring, by table changelog topic.",
            ["topic"],
            registry=r,
        )
        self.batch_size = Histogram(
            f"{PREFIX}_batch_records",
            "Records per processed batch.",
            buckets=(1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000),
            registry=r,
        )
        self.batch_seconds = Histogram(
            f"{PREFIX}_batch_duration_seconds",
            "Time to process and deliver one batch.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.alert_latency = Histogram(
            f"{PREFIX}_alert_latency_seconds",
            "From the broker timestamp of a response to its alert being acknowledged by the broker.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.late = Counter(
            f"{PREFIX}_late_events",
            "Events too late for a window (older than its size plus grace).",
            ["window"],
            registry=r,
        )
        labels = ["dimension", "key", "window", "metric"]
        self.window_value = Gauge(
            f"{PREFIX}_window_value", "Rolling score (NaN while below the minimum n).", labels, registry=r
        )
        self.window_samples = Gauge(
            f"{PREFIX}_window_samples", "Answers or tickets behind a rolling score.", labels, registry=r
        )
        self.window_stderr = Gauge(
            f"{PREFIX}_window_stderr", "Standard error of a rolling score (NaN if none).", labels, registry=r
        )
        self.window_keys_dropped = Counter(
            f"{PREFIX}_window_keys_dropped",
            "Snapshots not exported as gauges because a dimension has too many keys.",
            ["dimension"],
            registry=r,
        )
        self.trend_alerts = Counter(
            f"{PREFIX}_trend_alerts", "trend_drop alerts raised, by metric.", ["metric"], registry=r
        )
        self.snapshots = Counter(
            f"{PREFIX}_window_snapshots", "Records written to the feedback-windows topic.", registry=r
        )
        self.held = Counter(
            f"{PREFIX}_surveys_held",
            "Surveys that waited for the ticket they name (its events travel on another topic).",
            registry=r,
        )
        self.suppressed = Counter(
            f"{PREFIX}_alerts_suppressed",
            "Alerts held back by the per-customer cooldown, by kind.",
            ["kind"],
            registry=r,
        )
        self.escalations = Counter(
            f"{PREFIX}_escalations", "Escalations routed, by queue.", ["queue"], registry=r
        )
        self.followup_events = Counter(
            f"{PREFIX}_followup_events",
            "Follow-up state changes written to followup-events, by type.",
            ["type"],
            registry=r,
        )
        self.followups_open = Gauge(
            f"{PREFIX}_followups_open", "Alerts whose customer nobody has contacted yet.", registry=r
        )
        self.followups_overdue = Gauge(
            f"{PREFIX}_followups_overdue", "Open follow-ups past their due time.", registry=r
        )
        self.close_rate = Gauge(
            f"{PREFIX}_followup_close_ratio", "Resolved follow-ups over all follow-ups held.", registry=r
        )
        hours = (60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 172800, 604800)
        self.time_to_contact = Histogram(
            f"{PREFIX}_time_to_contact_seconds",
            "From the alert's cause (the survey's submitted_at) to the first contact's at: event times.",
            buckets=hours,
            registry=r,
        )
        self.time_to_resolve = Histogram(
            f"{PREFIX}_time_to_resolve_seconds",
            "From the alert's cause to its resolution's at: event times.",
            buckets=hours,
            registry=r,
        )
        self.followup_check_seconds = Histogram(
            f"{PREFIX}_followup_check_duration_seconds",
            "Time of one follow-up SLA check.",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.customers = Gauge(
            f"{PREFIX}_customers_in_state", "Customers held in this worker's state.", registry=r
        )
        # for operations: how far behind, how fresh, what runs
        self.lag_records = Gauge(
            f"{PREFIX}_consumer_lag_records",
            "Records of an input partition not yet processed (at its newest fetch).",
            ["topic", "partition"],
            registry=r,
        )
        self.lag_seconds = Gauge(
            f"{PREFIX}_consumer_lag_seconds",
            "Age of the oldest unprocessed record of an input partition (0 when caught up).",
            ["topic", "partition"],
            registry=r,
        )
        self.last_record = Gauge(
            f"{PREFIX}_input_last_record_timestamp_seconds",
            "Broker timestamp of the newest processed record, by input topic.",
            ["topic"],
            registry=r,
        )
        self.rebalances = Counter(
            f"{PREFIX}_rebalances", "Consumer group rebalances this worker took part in.", registry=r
        )
        self.build_info = Gauge(
            f"{PREFIX}_build_info", "The running version (always 1).", ["version", "python"], registry=r
        )
        self.build_info.labels(_version(), platform.python_version()).set(1)
        self.targets = Gauge(
            f"{PREFIX}_target",
            "Configured goals (SURVEY_ALERTS_TARGETS), for alert rules and dashboards.",
            ["metric"],
            registry=r,
        )
        ProcessCollector(namespace=PREFIX, registry=r)  # process start time (restarts), memory, CPU

    def initialise(self, inputs: list[str]) -> None:
        """Every known label set of the error counters at 0: rates and rules see them from the start."""
        for topic in inputs:
            self.consumed.labels(topic)
            for code in CODES:
                self.invalid.labels(topic, code)
        for code in (OUTPUT_TOO_LARGE, INVALID_DESTINATION):
            self.outputs_dead_lettered.labels(code)

    def observe_fetch(self, topic: str, partition: int, highwater: int | None, last: Any) -> None:
        """Lag of an input partition after a fetch whose newest record is ``last``."""
        if highwater is None:
            return
        behind = max(0, highwater - (last.offset + 1))
        p = str(partition)
        self.lag_records.labels(topic, p).set(behind)
        stamp = last.timestamp / 1000 if last.timestamp and last.timestamp > 1e11 else (last.timestamp or 0)
        self.lag_seconds.labels(topic, p).set(max(0.0, time.time() - stamp) if behind and stamp else 0.0)
        self.last_record.labels(topic).set(stamp)

    def observe(self, result: BatchResult, records: int, seconds: float) -> None:
        """Count what one batch did."""
        for topic, n in result.consumed.items():
            self.consumed.labels(topic).inc(n)
        for (topic, code), n in result.invalid.items():
            self.invalid.labels(topic, code).inc(n)
        for (kind, severity), n in result.alerts.items():
            self.alerts.labels(kind, severity).inc(n)
        if result.duplicates:
            self.duplicates.inc(result.duplicates)
        if result.edits:
            self.edits.inc(result.edits)
        if result.rekeyed:
            self.rekeyed.inc(result.rekeyed)
        if result.held:
            self.held.inc(result.held)
        for kind, n in result.suppressed.items():
            self.suppressed.labels(kind).inc(n)
        for queue, n in result.escalations.items():
            self.escalations.labels(queue).inc(n)
        for window, n in result.late.items():
            self.late.labels(window).inc(n)
        if records:
            self.batch_size.observe(records)
            self.batch_seconds.observe(seconds)
