"""Brute-force reference of the rolling windows, computed from the raw messages."""

from __future__ import annotations

import statistics
from collections import defaultdict
from datetime import datetime
from typing import Any

from alerts.windows import WindowSpec


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def reference(
    surveys: list[dict[str, Any]],
    tickets: list[dict[str, Any]],
    specs: list[WindowSpec],
) -> dict[tuple[str, str, str], float | int | None]:
    """``(dimension:key, window, metric) -> value``, and ``... metric#n`` -> sample size.

    Messages are given in the order they were produced (per customer, which is all
    that matters). A repeated ticket ``event_id`` is ignored; a repeated response id
    replaces the earlier answer.
    """
    ticket_info: dict[str, dict[str, Any]] = defaultdict(dict)
    kpi: list[tuple[float, list[str], str, float]] = []  # time, dims, kind, amount
    seen: set[str] = set()
    opened: dict[str, float] = {}
    answered: set[str] = set()
    seen_at = float("-inf")
    queued: set[str] = set()  # tickets whose speed of answer was counted
    waiting: dict[str, float] = {}  # ticket -> its customer's first unanswered reply
    for ev in tickets:
        if ev["event_id"] in seen:
            continue
        seen.add(ev["event_id"])
        info = ticket_info[ev["ticket_id"]]
        for name in ("team", "channel", "agent_id", "category"):
            if ev.get(name):
                info[name] = ev[name]
        at = _ts(ev["occurred_at"])
        seen_at = max(seen_at, at)  # the worker's watermark follows every ticket event, KPI or not
        dims = ["overall:all"] + [
            f"{d}:{info[n]}" for d, n in (("team", "team"), ("channel", "channel")) if info.get(n)
        ]
        kind = ev["type"]
        queue = ev.get("queue_seconds") if kind in ("assigned", "first_response") else None
        if queue is not None and ev["ticket_id"] not in queued:
            queued.add(ev["ticket_id"])
            kpi.append((at, dims, "asa", float(queue)))
        if kind == "customer_reply":
            waiting[ev["ticket_id"]] = min(waiting.get(ev["ticket_id"], at), at)
        elif kind == "agent_reply" and ev["ticket_id"] in waiting and at >= waiting[ev["ticket_id"]]:
            kpi.append((at, dims, "art", at - waiting.pop(ev["ticket_id"])))
        if kind == "created":
            opened[ev["ticket_id"]] = at
            kpi.append((at, dims, "created", 1))
        elif kind == "first_response" and ev["ticket_id"] not in answered and ev["ticket_id"] in opened:
            answered.add(ev["ticket_id"])
            kpi.append((at, dims, "frt", at - opened[ev["ticket_id"]]))
        elif kind == "resolved":
            kpi.append((at, dims, "resolved", 1))
            parts = [ev[k] for k in ("talk_seconds", "hold_seconds", "wrap_seconds") if k in ev]
            if parts:
                kpi.append((at, dims, "aht", sum(parts)))
        elif kind in ("reopened", "escalated"):
            kpi.append((at, dims, kind, 1))

    final: dict[str, tuple[float, dict[str, Any], list[str]]] = {}
    for doc in surveys:
        info = ticket_info.get(doc.get("ticket_id") or "", {})
        dims = ["overall:all"]
        for dim, value in (
            ("team", doc.get("team") or info.get("team")),
            ("channel", doc.get("channel") or info.get("channel")),
            ("agent", doc.get("agent_id") or info.get("agent_id")),
            ("category", info.get("category")),
        ):
            if value:
                dims.append(f"{dim}:{value}")
        final[doc["response_id"]] = (_ts(doc["submitted_at"]), doc["scores"], dims)

    watermark = max([t for t, _, _ in final.values()] + [t for t, _, _, _ in kpi] + [seen_at])
    out: dict[tuple[str, str, str], float | int | None] = {}
    for spec in specs:
        end = (int(watermark // spec.bucket) + 1) * spec.bucket
        start = end - spec.size
        by_dim: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for t, scores, dims in final.values():
            if start <= t < end:
                for d in dims:
                    by_dim[d].append(scores)
        for d, rows in by_dim.items():
            nps = [r["nps"] for r in rows if "nps" in r]
            csat = [r["csat"] for r in rows if "csat" in r]
            ces = [r["ces"] for r in rows if "ces" in r]
            if nps:
                out[(d, spec.name, "nps")] = (
                    100 * (sum(x >= 9 for x in nps) - sum(x <= 6 for x in nps)) / len(nps)
                )
                out[(d, spec.name, "nps#n")] = len(nps)
                out[(d, spec.name, "nps#detractors")] = sum(x <= 6 for x in nps)
            if csat:
                out[(d, spec.name, "csat")] = 100 * sum(x >= 4 for x in csat) / len(csat)
                out[(d, spec.name, "csat#n")] = len(csat)
            if ces:
                out[(d, spec.name, "ces")] = statistics.fmean(ces)
                out[(d, spec.name, "ces#n")] = len(ces)
        sums: dict[tuple[str, str], list[float]] = defaultdict(list)
        for t, dims, kind, amount in kpi:
            if start <= t < end:
                for d in dims:
                    sums[(d, kind)].append(amount)
        for d in {d for d, _ in sums}:
            created, resolved = len(sums[(d, "created")]), len(sums[(d, "resolved")])
            if created:
                out[(d, spec.name, "escalation_rate")] = 100 * len(sums[(d, "escalated")]) / created
            if resolved:
                out[(d, spec.name, "reopen_rate")] = 100 * len(sums[(d, "reopened")]) / resolved
            if sums[(d, "aht")]:
                out[(d, spec.name, "handle_seconds")] = statistics.fmean(sums[(d, "aht")])
            if sums[(d, "frt")]:
                out[(d, spec.name, "first_response_seconds")] = statistics.fmean(sums[(d, "frt")])
            for kind, metric in (("asa", "speed_of_answer_seconds"), ("art", "reply_seconds")):
                if sums[(d, kind)]:
                    out[(d, spec.name, metric)] = statistics.fmean(sums[(d, kind)])
                    out[(d, spec.name, f"{metric}#n")] = len(sums[(d, kind)])
    return out


Ref = dict[tuple[str, str, str], float | int | None]


def snapshot_mismatches(records: list[Any], wanted: Ref, ref: Ref) -> list[str]:
    """What the newest ``feedback-windows`` snapshots (``records``, Kafka records) get wrong of
    ``wanted`` (reference values, ``reference()``'s keys), also counting the sample sizes in ``ref``."""
    import orjson
    import pytest

    latest = {}
    for r in records:
        doc = orjson.loads(r.value)
        latest[(r.key.decode(), doc["window"], doc["metric"])] = doc
    bad = []
    for (key, window, metric), expected in wanted.items():
        got = latest.get((key, window, metric))
        n = ref.get((key, window, metric + "#n"))
        if got is None:
            bad.append(f"{key} {window} {metric}: missing")
        elif got["estimate"] != pytest.approx(expected) or (n is not None and got["responses"] != n):
            bad.append(
                f"{key} {window} {metric}: {got['estimate']} (n={got['responses']}) != {expected} (n={n})"
            )
    return bad
