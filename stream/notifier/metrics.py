"""The notifier's Prometheus metrics. Labels: destination names (from the rules file), outcomes, types."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from stream.metrics import PREFIX

_SECONDS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class NotifierMetrics:
    """Every metric the notifier exports, on a registry you pass in (the worker's, when it runs inside)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.deliveries = Counter(
            f"{PREFIX}_notifications",
            "Delivery attempts, by destination and outcome (delivered, retry, rejected, disabled).",
            ["destination", "outcome"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_notification_dead_letters",
            "Notifications written to the notification dead-letter topic, by destination and code.",
            ["destination", "code"],
            registry=r,
        )
        self.latency = Histogram(
            f"{PREFIX}_notification_latency_seconds",
            "From the document's creation (alert created_at, escalation routed_at) to its delivery.",
            ["destination"],
            buckets=_SECONDS,
            registry=r,
        )
        self.attempt_seconds = Histogram(
            f"{PREFIX}_notification_attempt_seconds",
            "Duration of one delivery attempt.",
            ["destination"],
            buckets=_SECONDS,
            registry=r,
        )
        self.pending = Gauge(
            f"{PREFIX}_notifications_pending",
            "Deliveries queued or waiting for a retry, by destination.",
            ["destination"],
            registry=r,
        )
        self.group_messages = Counter(
            f"{PREFIX}_notification_group_messages",
            "Grouped messages attempted (a destination's group_s), by destination.",
            ["destination"],
            registry=r,
        )
        self.grouped = Counter(
            f"{PREFIX}_notification_grouped_deliveries",
            "Deliveries attempted inside a grouped message, by destination.",
            ["destination"],
            registry=r,
        )
        self.retries = Counter(
            f"{PREFIX}_notification_retries",
            "Deliveries scheduled for another attempt, by destination.",
            ["destination"],
            registry=r,
        )
        self.disabled = Gauge(
            f"{PREFIX}_notification_destination_disabled",
            "1 while a destination is disabled (it answered 410), by destination.",
            ["destination"],
            registry=r,
        )
        self.consumed = Counter(
            f"{PREFIX}_notifier_records_consumed",
            "Output records the notifier read, by message type.",
            ["type"],
            registry=r,
        )
