"""Rolling windows against a brute-force reference: edits, duplicates, out-of-order, restarts."""

from __future__ import annotations

import copy
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.customer import ANSWER_FIELDS, CustomerState
from alerts.pipeline import Pipeline, Record, Topics
from alerts.policy import AlertPolicy
from alerts.scores import answer_stats, values
from alerts.windows import PartitionWindows, merged_stats, parse_windows
from schemas.common import format_timestamp
from tests.support.factories import raw

TOPICS = Topics("s", "t", "rekey", "alerts", "dlq")
SPECS = parse_windows("1h,6h", buckets=12)
GRACE = 600.0
T0 = datetime(2026, 11, 22, tzinfo=UTC)

event = st.tuples(
    st.sampled_from(["r1", "r2", "r3", "r4", "r5", "r6", "r7", "r8"]),  # few ids: many edits/duplicates
    st.integers(0, 12 * 60),  # minutes after T0: out of order on purpose
    st.one_of(st.none(), st.integers(0, 10)),
    st.one_of(st.none(), st.integers(1, 5)),
    st.integers(1, 7),
    st.sampled_from(["red", "blue"]),
)


class World:
    """One partition: customers and windows, with a way to 'restart' (serialise and reload)."""

    def __init__(self) -> None:
        self.pipeline = Pipeline(TOPICS, AlertPolicy(), lambda cid: 0)
        self.customers: dict[str, CustomerState] = {}
        self.pw = PartitionWindows(SPECS, GRACE)
        self.offset = 0

    def feed(self, docs: list[dict[str, Any]]) -> None:
        records = []
        for d in docs:
            self.offset += 1
            records.append(Record("s", 0, self.offset, None, raw(d), (), float(self.offset)))
        result = self.pipeline.process(records, self.customers.get, T0, lambda p: self.pw)
        for cid, (_, state) in result.dirty.items():
            self.customers[cid] = state
        self.pw.expire()

    def feed_records(self, records: list[Record]) -> list[dict[str, Any]]:
        """Process records as they are; returns the alerts raised."""
        result = self.pipeline.process(records, self.customers.get, T0, lambda p: self.pw)
        for cid, (_, state) in result.dirty.items():
            self.customers[cid] = state
        self.pw.expire()
        return [e.value for e in result.emits if e.topic == TOPICS.recovery_alerts]  # type: ignore[misc]

    def restart(self) -> None:
        self.customers = {
            c: CustomerState.from_doc(orjson.loads(orjson.dumps(s.to_doc())))
            for c, s in self.customers.items()
        }
        fresh = PartitionWindows(SPECS, GRACE, self.pw.watermark)
        for dim in self.pw.partials:
            fresh.load(dim, orjson.loads(orjson.dumps(self.pw.doc(dim))))
        self.pw = fresh


def doc(rid: str, minute: int, nps: int | None, csat: int | None, ces: int, team: str) -> dict[str, Any]:
    scores: dict[str, Any] = {"ces": ces}
    if nps is not None:
        scores["nps"] = nps
    if csat is not None:
        scores["csat"] = csat
    return {
        "response_id": rid,
        "customer_id": "c-" + rid,
        "team": team,
        "scores": scores,
        "submitted_at": format_timestamp(T0 + timedelta(minutes=minute)),
    }


@settings(max_examples=150, deadline=None)
@given(st.lists(event, min_size=1, max_size=40), st.integers(0, 40), st.integers(1, 5))
def test_windows_equal_the_reference(events: list[tuple[Any, ...]], restart_at: int, batch: int) -> None:
    docs = [doc(*e) for e in events]
    world = World()
    for i in range(0, len(docs), batch):
        if i <= restart_at < i + batch:
            world.restart()
        world.feed(docs[i : i + batch])

    watermark = max(T0.timestamp() + e[1] * 60 for e in events)
    final = {e[0]: e for e in events}  # the last version of each response wins
    for spec in SPECS:
        for dim in [("overall", "all"), ("team", "red"), ("team", "blue")]:
            start, end, total = merged_stats(spec, [world.pw.doc(dim)], watermark)
            got = {v.metric: v for v in values(total)}
            inside = [
                e
                for e in final.values()
                if (start <= T0.timestamp() + e[1] * 60 < end and dim[0] == "overall")
                or (start <= T0.timestamp() + e[1] * 60 < end and e[5] == dim[1])
            ]
            npss = [e[2] for e in inside if e[2] is not None]
            csats = [e[3] for e in inside if e[3] is not None]
            cess = [e[4] for e in inside]
            assert got["nps"].n == len(npss), (spec, dim)
            if npss:
                ref = 100 * (sum(n >= 9 for n in npss) - sum(n <= 6 for n in npss)) / len(npss)
                assert got["nps"].value == pytest.approx(ref)
                assert got["nps"].counts == {
                    "promoters": sum(n >= 9 for n in npss),
                    "passives": sum(7 <= n <= 8 for n in npss),
                    "detractors": sum(n <= 6 for n in npss),
                }
            assert got["csat"].n == len(csats)
            if csats:
                assert got["csat"].value == pytest.approx(100 * sum(c >= 4 for c in csats) / len(csats))
            assert got["ces"].n == len(cess)
            if cess:
                assert got["ces"].value == pytest.approx(statistics.fmean(cess))


def test_expiry_follows_event_time_not_the_wall_clock() -> None:
    world = World()
    world.feed([doc("r1", 0, 0, None, 1, "red")])
    assert world.pw.partials[("overall", "all")]["1h"]
    world.feed([doc("r2", 6 * 60, 10, None, 7, "red")])  # six hours of event time later
    assert list(world.pw.partials[("overall", "all")]["1h"]) == [
        SPECS[0].bucket_of((T0 + timedelta(hours=6)).timestamp())
    ]


def test_late_events_are_counted_per_window() -> None:
    pipeline = Pipeline(TOPICS, AlertPolicy(), lambda cid: 0)
    pw = PartitionWindows(SPECS, GRACE)
    store: dict[str, CustomerState] = {}
    recs = [
        Record("s", 0, i, None, raw(d), (), float(i))
        for i, d in enumerate(
            [
                doc("r1", 300, 9, None, 7, "red"),
                doc("r2", 300 - 75, 9, None, 7, "red"),  # 75 min late: past 1h + 10 min grace, inside 6h
            ]
        )
    ]
    result = pipeline.process(recs, store.get, T0, lambda p: pw)
    assert result.late == {"1h": 1}
    ((_, state),) = [result.dirty["c-r2"]]
    assert state.answers["r2"].windows == 0b10


def test_parse_windows() -> None:
    assert [(w.name, w.size, w.bucket) for w in parse_windows("1h, 24h,7d")] == [
        ("1h", 3600, 150),
        ("24h", 86400, 3600),
        ("7d", 604800, 25200),
    ]
    with pytest.raises(ValueError, match="like 15m"):
        parse_windows("1 hour")


@settings(max_examples=50, deadline=None)
@given(st.lists(event, min_size=1, max_size=25), st.booleans())
def test_a_replay_after_a_crash_counts_nothing_twice(
    events: list[tuple[Any, ...]], customers_lost: bool
) -> None:
    docs = [doc(*e) for e in events]
    world = World()
    world.feed(docs)
    windows = {dim: world.pw.doc(dim) for dim in world.pw.partials}
    customers = {c: s.to_doc() for c, s in world.customers.items()}
    if customers_lost:  # the crash kept the window buckets but not the customers' changelog
        world.customers = {}
    world.offset = 0  # offsets were not committed: the whole batch comes again
    world.feed(docs)
    assert {dim: world.pw.doc(dim) for dim in world.pw.partials} == windows
    after = {c: s.to_doc() for c, s in world.customers.items()}
    if customers_lost:
        # answers rebuilt from scratch may list fewer windows than they were counted in (the
        # watermark has moved on); those buckets lie outside every current window
        mask = ANSWER_FIELDS.index("windows")
        for states in (customers, after):
            for d in states.values():
                d["a"] = [list(row) for row in d["a"]]  # rows are tuples
                for row in d["a"]:
                    row[mask] = None
    assert after == customers


@given(st.lists(st.tuples(st.floats(0, 20_000), st.booleans()), min_size=1, max_size=40))
def test_expiry_skipping_scans_drops_exactly_what_a_full_scan_drops(
    steps: list[tuple[float, bool]],
) -> None:
    """``expire`` scans only when a horizon crosses a bucket boundary or a bucket was re-created behind it."""
    base = T0.timestamp()
    fast, full = PartitionWindows(SPECS, GRACE), PartitionWindows(SPECS, GRACE)
    for offset, behind in steps:
        for pw in (fast, full):
            ts = base + offset
            pw.observe(ts)
            # ``behind``: an addition with a stale mask, as a re-attribution makes, maybe behind the horizon
            mask = 0b11 if behind else pw.open_mask(ts)
            at = ts - 3 * 3600 if behind else ts
            pw.apply([("team", "red")], at, answer_stats(9, None, None, None, None, None), mask)
        fast.expire()
        full.stale = True  # always scan
        full.expire()
        assert fast.partials == full.partials


def test_a_held_survey_released_again_after_a_crash_counts_once() -> None:
    """The timer's release request is an input record: its replay is muted like any other."""
    world = World()
    world.pipeline.ticket_wait_s = 5.0
    survey_doc = {**doc("r1", 30, 2, None, 4, "red"), "ticket_id": "t-never"}
    world.feed([survey_doc])
    assert world.pw.partials == {} and len(world.customers["c-r1"].held) == 1  # held: not counted yet
    before = {
        c: CustomerState.from_doc(orjson.loads(orjson.dumps(s.to_doc()))) for c, s in world.customers.items()
    }
    request = world.pipeline.release_request("c-r1", 0)
    record = Record(request.topic, 0, 1, request.key, request.value, request.headers, T0.timestamp() + 10)
    (alert,) = world.feed_records([record])
    counted = copy.deepcopy({dim: world.pw.doc(dim) for dim in world.pw.partials})
    assert sum(b[0] for b in counted[("overall", "all")]["1h"].values()) == 1  # one NPS answer
    # a crash: the window buckets (and the offset they hold) landed, the customer state did not
    world.customers = before
    (again,) = world.feed_records([record])
    assert again["alert_id"] == alert["alert_id"]  # the same alert, not a new one
    assert {dim: world.pw.doc(dim) for dim in world.pw.partials} == counted
    assert world.customers["c-r1"].held == []


ticket_event = st.tuples(
    st.sampled_from(["t1", "t2", "t3"]),
    st.sampled_from(["assigned", "first_response", "customer_reply", "agent_reply", "created"]),
    st.integers(0, 12 * 60),  # minutes after T0: out of order on purpose
    st.one_of(st.none(), st.integers(0, 900)),  # queue_seconds (on assigned / first_response)
    st.booleans(),  # sent twice (a duplicate event id changes nothing)
)


@settings(max_examples=150, deadline=None)
@given(st.lists(ticket_event, min_size=1, max_size=40), st.integers(0, 40), st.integers(1, 5))
def test_speed_of_answer_and_reply_time_equal_a_brute_force(
    events: list[tuple[Any, ...]], restart_at: int, batch: int
) -> None:
    docs = []
    for i, (tid, kind, minute, queued, twice) in enumerate(events):
        d: dict[str, Any] = {
            "event_id": f"e{i}",
            "ticket_id": tid,
            "customer_id": "c1",
            "type": kind,
            "team": "red",
            "occurred_at": format_timestamp(T0 + timedelta(minutes=minute)),
        }
        if queued is not None and kind in ("assigned", "first_response"):
            d["queue_seconds"] = queued
        docs += [d, d] if twice else [d]
    world = World()
    for i in range(0, len(docs), batch):
        if i <= restart_at < i + batch:
            world.restart()
        records = []
        for d in docs[i : i + batch]:
            world.offset += 1
            records.append(Record("t", 0, world.offset, b"c1", raw(d), (), float(world.offset)))
        world.feed_records(records)

    # brute force, one event at a time in the order sent
    seen: set[str] = set()
    answered: set[str] = set()
    waiting: dict[str, float] = {}
    asa: list[tuple[float, float]] = []
    art: list[tuple[float, float]] = []
    for d in docs:
        if d["event_id"] in seen:
            continue
        seen.add(d["event_id"])
        at = datetime.fromisoformat(d["occurred_at"]).timestamp()
        if "queue_seconds" in d and d["ticket_id"] not in answered:
            answered.add(d["ticket_id"])
            asa.append((at, float(d["queue_seconds"])))
        if d["type"] == "customer_reply":
            waiting[d["ticket_id"]] = min(waiting.get(d["ticket_id"], at), at)
        elif d["type"] == "agent_reply" and d["ticket_id"] in waiting and at >= waiting[d["ticket_id"]]:
            art.append((at, at - waiting.pop(d["ticket_id"])))
    watermark = max(T0.timestamp() + e[2] * 60 for e in events)
    for spec in SPECS:
        for dim in [("overall", "all"), ("team", "red")]:
            start, end, total = merged_stats(spec, [world.pw.doc(dim)], watermark)
            got = {v.metric: v for v in values(total)}
            for metric, pairs in (("speed_of_answer_seconds", asa), ("reply_seconds", art)):
                inside = [x for t, x in pairs if start <= t < end]
                assert got[metric].n == len(inside), (spec, dim, metric)
                if inside:
                    assert got[metric].value == pytest.approx(statistics.fmean(inside))
                    if len(inside) > 1:
                        assert got[metric].stderr == pytest.approx(
                            statistics.stdev(inside) / len(inside) ** 0.5, abs=1e-6
                        )
