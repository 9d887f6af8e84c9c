"""Merged window snapshots (``feedback-windows``) and trend-drop alerts, from partition partials."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from alerts.customer import from_epoch
from alerts.feedback import TREND_METRICS, TrendPolicy, trend_drop
from alerts.ids import stable_id
from alerts.scores import Value, add_into, values
from alerts.windows import WindowSpec, merged_stats
from schemas.common import SCHEMA_VERSION, format_timestamp


def _ts(seconds: float) -> str:
    return format_timestamp(from_epoch(seconds))


def window_values(
    spec: WindowSpec, partials: list[dict[str, Any]], watermark: float
) -> tuple[int, int, list[Value]]:
    """``(start, end, values)`` of one window merged over every partition."""
    start, end, total = merged_stats(spec, partials, watermark)
    return start, end, values(total)


def snapshot_records(
    dimension: str,
    key: str,
    specs: list[WindowSpec],
    partials: list[dict[str, Any]],
    watermark: float,
    min_n: int,
    now: datetime,
) -> list[dict[str, Any]]:
    """One record per window and metric that has any data."""
    out = []
    as_of, emitted_at = _ts(watermark), format_timestamp(now)
    for spec in specs:
        start, end, vals = window_values(spec, partials, watermark)
        window_start, window_end = _ts(start), _ts(end)
        for v in vals:
            if v.n == 0:
                continue
            sufficient = v.n >= min_n
            rec: dict[str, Any] = {
                "schema_version": SCHEMA_VERSION,
                "dimension": dimension,
                "key": key,
                "window": spec.name,
                "window_start": window_start,
                "window_end": window_end,
                "metric": v.metric,
                "responses": v.n,
                "value": v.value if sufficient else None,
                "insufficient": not sufficient,
                "estimate": v.value,
                "stderr": v.stderr,
                "ci_low": v.ci_low,
                "ci_high": v.ci_high,
                "min_responses": min_n,
                "as_of": as_of,
                "emitted_at": emitted_at,
            }
            if v.counts:
                rec.update(v.counts)
            out.append(rec)
    return out


def trend_alerts(
    dimension: str,
    key: str,
    specs: list[WindowSpec],
    partials: list[dict[str, Any]],
    watermark: float,
    policy: TrendPolicy,
    now: datetime,
) -> list[dict[str, Any]]:
    """``trend_drop`` alerts: the short window significantly below the rest of the long one."""
    by_name = {s.name: s for s in specs}
    short_spec, long_spec = by_name[policy.short], by_name[policy.long]
    s_start, s_end, short_total = merged_stats(short_spec, partials, watermark)
    _, _, long_total = merged_stats(long_spec, partials, watermark)
    baseline_total = list(long_total)
    add_into(baseline_total, short_total, -1.0)  # independent samples: the baseline excludes the recent part
    short_vals = {v.metric: v for v in values(short_total)}
    base_vals = {v.metric: v for v in values(baseline_total)}
    out = []
    for metric in TREND_METRICS:
        z = trend_drop(short_vals[metric], base_vals[metric], policy)
        if z is None:
            continue
        s, b = short_vals[metric], base_vals[metric]
        out.append(
            {
                "schema_version": SCHEMA_VERSION,
                "alert_id": stable_id("trend", dimension, key, metric, str(s_end)),
                "kind": "trend_drop",
                "severity": "warning",
                "dimension": dimension,
                "key": key,
                "metric": metric,
                "short_window": policy.short,
                "long_window": policy.long,
                "value": s.value,
                "baseline": b.value,
                "responses": s.n,
                "baseline_responses": b.n,
                "z": z,
                "alpha": policy.alpha,
                "window_start": _ts(s_start),
                "window_end": _ts(s_end),
                "created_at": format_timestamp(now),
            }
        )
    return out
