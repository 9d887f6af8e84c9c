"""Metric names follow Prometheus conventions and labels stay bounded."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest

from stream.metrics import PREFIX, Metrics


def test_names_units_and_labels() -> None:
    registry = CollectorRegistry()
    m = Metrics(registry)
    m.consumed.labels("survey-responses").inc()
    m.alerts.labels("detractor", "critical").inc()
    m.invalid.labels("survey-responses", "invalid_json").inc()
    text = generate_latest(registry).decode()
    names = {metric.name for metric in registry.collect()}
    assert all(n.startswith(PREFIX + "_") for n in names)
    for metric in registry.collect():
        if metric.type == "counter":
            assert f"{metric.name}_total" in text
        if (metric.type == "histogram" and "duration" in metric.name) or "latency" in metric.name:
            assert metric.name.endswith("_seconds")
        for sample in metric.samples:
            # bounded by construction: settings, error codes, kinds, partitions, the build
            assert set(sample.labels) <= {
                "topic",
                "partition",
                "code",
                "kind",
                "severity",
                "le",
                "version",
                "python",
                "metric",
            }


def test_two_bundles_do_not_share_a_registry() -> None:
    a, b = Metrics(), Metrics()
    a.duplicates.inc()
    assert b.duplicates._value.get() == 0
