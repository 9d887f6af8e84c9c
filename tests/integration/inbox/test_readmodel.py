"""The inbox's read model on SQLite and on a real PostgreSQL: upserts by id, replays change nothing,
events in any order, the queries of the pages, and a rebuild equal to the original."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from stream.destinations.direct import sample
from stream.readmodel.db import ReadModel

pytestmark = pytest.mark.integration
NOW = 1_795_000_000.0


def stamp(epoch: float) -> str:
    from datetime import UTC, datetime

    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


def alert(alert_id: str, queue: str, due: float, severity: str = "critical", **extra: Any) -> dict[str, Any]:
    doc = sample("recovery_alert", "x")
    doc.update(
        alert_id=alert_id,
        queue=queue,
        team=queue,
        severity=severity,
        created_at=stamp(due - 3600),
        follow_up_due_at=stamp(due),
        **extra,
    )
    return doc


def event(alert_id: str, kind: str, status: str, at: float, **extra: Any) -> dict[str, Any]:
    return {
        "event_id": f"fue-{alert_id}-{kind}-{at}",
        "alert_id": alert_id,
        "type": kind,
        "status": status,
        "at": stamp(at),
        "actor": None if kind in ("opened", "overdue") else "sam",
        "queue": "billing",
        "team": "billing",
        "customer_id": "c",
        "follow_up_due_at": None,
        **extra,
    }


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield str(tmp_path / "inbox.db")
        return
    base: str = request.getfixturevalue("postgres")
    name = "inbox_" + uuid.uuid4().hex[:8]

    async def create() -> None:
        import asyncpg

        conn = await asyncpg.connect(base.replace("postgresql://", "postgres://"))
        await conn.execute(f'CREATE DATABASE "{name}"')
        await conn.close()

    asyncio.run(create())
    yield base.rsplit("/", 1)[0] + "/" + name


def run(coro: Any) -> Any:
    return asyncio.run(coro)


RECORDS = [
    ("event", "followup-events", 0, 0, event("a-late", "opened", "open", NOW - 7200)),
    ("alert", "recovery-alerts", 0, 0, alert("a-late", "billing", NOW - 600)),  # the event came first
    ("alert", "recovery-alerts", 1, 0, alert("a-soon", "billing", NOW + 600, "warning")),
    ("alert", "recovery-alerts", 1, 1, alert("a-other", "returns", NOW + 60)),
    ("event", "followup-events", 1, 0, event("a-soon", "contacted", "contacted", NOW - 100, seq=3)),
    (
        "event",
        "followup-events",
        1,
        1,
        event("a-soon", "acknowledged", "acknowledged", NOW - 200, seq=2),
    ),  # earlier in the worker's order (seq), read later (a repartitioned topic): no change
    ("escalation", "escalations.billing", 0, 0, {**sample("escalation", "x"), "queue": "billing"}),
    ("alert", "recovery-alerts", 0, 1, None),  # not JSON: only the offset moves
]


def test_read_model(database: str) -> None:
    async def go() -> None:
        model = ReadModel(database)
        try:
            assert await model.migrate() == [1, 2, 3, 4, 5, 6, 7]
            assert await model.migrate() == []  # applied once
            assert await model.apply(RECORDS) == 7
            assert await model.apply(RECORDS) == 0  # a replay changes nothing
            foreign = [
                ("alert", "recovery-alerts", 2, 0, {**alert("x" * 500, "billing", NOW), "score": "high"}),
                ("event", "followup-events", 2, 0, {"event_id": "e" * 300, "alert_id": "a", "at": "x"}),
            ]
            assert await model.apply(foreign) == 0  # skipped, and the offsets still move on
            assert await model.positions() == {
                ("recovery-alerts", 0): 2,
                ("recovery-alerts", 1): 2,
                ("followup-events", 0): 1,
                ("followup-events", 1): 2,
                ("escalations.billing", 0): 1,
                ("recovery-alerts", 2): 1,
                ("followup-events", 2): 1,
            }
            billing = frozenset({"billing"})
            page = await model.page(billing, NOW, status=None)
            assert [r["alert_id"] for r in page.rows] == [
                "a-late",
                "a-soon",
            ]  # by due time; returns not visible
            assert [r["overdue"] for r in page.rows] == [True, False] and page.overdue == 1
            assert page.rows[1]["status"] == "contacted"  # the newest event says the status
            waiting = await model.page(billing, NOW, status="waiting")  # "to contact": a-soon was contacted
            assert waiting.total == 1
            assert (await model.page(None, NOW, overdue=True, status=None)).total == 1
            assert (await model.page(None, NOW, severity="warning", status=None)).total == 1
            assert (await model.page(None, NOW, queue="returns", status=None)).total == 1
            detail = await model.alert("a-soon", NOW)
            assert [e["type"] for e in detail["events"]] == ["acknowledged", "contacted"]
            assert await model.alert("nope", NOW) is None
            await model.record_sent(
                {"action_id": "act_1", "alert_id": "a-late", "type": "resolved", "actor": "sam"}
            )
            pending = await model.alert("a-late", NOW)
            assert [s["type"] for s in pending["sent"]] == ["resolved"]
            assert (
                orjson.loads(orjson.dumps(pending))["sent"][0]["actor"] == "sam"
            )  # plain str keys: the API's JSON
            resolved = event(
                "a-late", "resolved", "resolved", NOW, root_cause="late courier", action_id="act_1"
            )
            await model.apply([("event", "followup-events", 0, 1, resolved)])
            late = await model.alert("a-late", NOW)
            assert (late["status"], late["root_cause"], late["sent"]) == ("resolved", "late courier", [])
            reopened = event("a-late", "reopened", "reopened", NOW + 10, follow_up_due_at=stamp(NOW + 14_400))
            await model.apply([("event", "followup-events", 0, 2, reopened)])
            assert (await model.alert("a-late", NOW))["due_at"] == NOW + 14_400  # the new due time
            assert [e["queue"] for e in await model.escalation_page(billing)] == ["billing"]
            assert await model.escalation_page(frozenset({"returns"})) == []
            assert await model.queues(None) == ["billing", "returns"]
            assert (await model.sizes())["alerts"] == 3
        finally:
            await model.close()

    run(go())


def test_a_rebuild_from_the_same_records_gives_the_same_pages(database: str, tmp_path: Path) -> None:
    async def pages(url: str, batches: list[list[Any]]) -> list[Any]:
        model = ReadModel(url)
        try:
            await model.migrate()
            for batch in batches:
                await model.apply(batch)
            page = await model.page(None, NOW, status=None)
            return [(r["alert_id"], r["status"], r["due_at"], r["notices"]) for r in page.rows]
        finally:
            await model.close()

    overdue = event("a-late", "overdue", "open", NOW - 500, notice=1)
    whole = [*RECORDS, ("event", "followup-events", 0, 1, overdue)]
    one_by_one = [[r] for r in whole]
    first = run(pages(database, [whole]))
    again = run(pages(str(tmp_path / "rebuilt.db"), one_by_one))
    assert first == again and ("a-late", "open", NOW - 600, 1) in first


def test_sessions_outlive_the_process_and_end_everywhere_at_logout(database: str, tmp_path: Path) -> None:
    """Two inbox processes on one database (or one restarted) share the sessions; only digests of
    the ids are stored; a logout, an expiry or a user removed from the file ends a session."""
    from stream.inbox.auth import Authority, load_users, session_digest

    users = tmp_path / "users.toml"
    users.write_text('[users.sam]\nqueues = ["billing"]\n\n[users.rita]\nqueues = ["returns"]\n')

    async def go() -> None:
        first, second = ReadModel(database), ReadModel(database)
        try:
            await first.migrate()
            now = [NOW]
            a = Authority(load_users(users), sessions=first, clock=lambda: now[0])
            b = Authority(load_users(users), sessions=second, clock=lambda: now[0])
            sam = a.principal("sam")
            assert sam is not None
            sid, opened = await a.open_session(sam)
            found = await b.session(sid)  # the other process (or this one after a restart)
            assert found is not None and found.principal == sam and found.csrf == opened.csrf
            async with first.engine.connect() as conn:
                from sqlalchemy import text

                stored = [tuple(r) for r in await conn.execute(text("SELECT digest, csrf FROM sessions"))]
            assert stored == [(session_digest(sid), opened.csrf)]  # a digest, never the id
            assert await b.session(sid + "x") is None and await b.session("") is None
            await b.close_session(sid)
            assert await a.session(sid) is None  # logged out everywhere

            rita = a.principal("rita")
            assert rita is not None
            sid, _ = await a.open_session(rita)
            users.write_text('[users.sam]\nqueues = ["billing", "returns"]\n')
            c = Authority(load_users(users), sessions=second, clock=lambda: now[0])
            assert await c.session(sid) is None  # rita is no longer in the file
            sid, _ = await a.open_session(sam)
            got = await c.session(sid)
            assert got is not None and got.principal.queues == frozenset({"billing", "returns"})
            now[0] += 13 * 3600  # past the session's 12 h
            assert await c.session(sid) is None
        finally:
            await first.close()
            await second.close()

    run(go())


def test_processes_migrating_one_database_at_once_all_succeed(database: str) -> None:
    # the inbox's processes (and, before, the digest) start together on a new database
    async def go() -> list[list[int]]:
        models = [ReadModel(database) for _ in range(4)]
        try:
            return list(await asyncio.gather(*(m.migrate() for m in models)))
        finally:
            for m in models:
                await m.close()

    applied = run(go())
    every = [v for versions in applied for v in versions]
    assert len(every) == len(set(every)) and every, applied  # each migration applied exactly once

    async def current() -> None:
        model = ReadModel(database)
        try:
            await model.require_current()
        finally:
            await model.close()

    run(current())


def test_a_reader_refuses_a_database_that_is_not_there_and_creates_none(tmp_path: Path) -> None:
    from stream.errors import ConfigurationError

    path = tmp_path / "nowhere" / "inbox.db"

    async def read() -> None:
        model = ReadModel(str(path))
        try:
            await model.require_current()
        finally:
            await model.close()

    with pytest.raises(ConfigurationError, match="has no data yet: the inbox creates and feeds it"):
        run(read())
    assert not path.exists() and not path.parent.exists()


def test_a_period_holds_what_happened_in_it_not_what_was_seen_then(database: str) -> None:
    # a week processed late (a backfill, a catch-up): the worker saw it now, it happened 8 days ago
    day = 86400.0
    late = alert("a-backfilled", "billing", NOW + 600)
    late.update(created_at=stamp(NOW), submitted_at=stamp(NOW - 8 * day), cause_at=stamp(NOW - 8 * day))
    live = alert("a-live", "billing", NOW + 600)
    live.update(created_at=stamp(NOW - 60), submitted_at=stamp(NOW - 120), cause_at=stamp(NOW - 120))
    esc = {**sample("escalation", "x"), "escalation_id": "e-backfilled", "queue": "billing"}
    esc.update(routed_at=stamp(NOW), cause_at=stamp(NOW - 8 * day))
    records = [
        ("alert", "recovery-alerts", 0, 0, late),
        ("alert", "recovery-alerts", 0, 1, live),
        ("escalation", "escalations.billing", 0, 0, esc),
    ]

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        model = ReadModel(database)
        try:
            await model.migrate()
            await model.apply(records)
            return await model.period(NOW - 14 * day, NOW - 7 * day), await model.period(
                NOW - 7 * day, NOW + 1
            )
        finally:
            await model.close()

    last_week, this_week = run(go())
    assert [a["alert_id"] for a in last_week["alerts"]] == ["a-backfilled"]
    assert [e["escalation_id"] for e in last_week["escalations"]] == ["e-backfilled"]
    assert [a["alert_id"] for a in this_week["alerts"]] == ["a-live"] and this_week["escalations"] == []


def test_the_status_is_the_workers_newest_event_whatever_its_at(database: str) -> None:
    """Actions dated before the alert was raised (a backfill, an agent logging a call late) still
    change the status: the worker's order decides, by seq, or by topic order without one."""
    raised = NOW
    records: list[tuple[str, str, int, int, dict[str, Any] | None]] = [
        ("alert", "recovery-alerts", 0, 0, alert("a-past", "billing", raised + 600)),
        ("alert", "recovery-alerts", 0, 1, alert("a-legacy", "billing", raised + 600)),
    ]
    steps = [("opened", "open", raised), ("contacted", "contacted", raised - 5000)]
    steps.append(("resolved", "resolved", raised - 4000))
    for i, (kind, status, at) in enumerate(steps):
        records.append(("event", "followup-events", 0, i, event("a-past", kind, status, at, seq=i + 1)))
        records.append(("event", "followup-events", 1, i, event("a-legacy", kind, status, at)))
    # read twice (a rebuild or a replayed batch): nothing changes
    stale = (
        "event",
        "followup-events",
        0,
        9,
        event("a-past", "contacted", "contacted", raised - 5000, seq=2),
    )

    async def go() -> tuple[dict[str, Any], dict[str, Any]]:
        model = ReadModel(database)
        try:
            await model.migrate()
            await model.apply(records)
            await model.apply([stale, *records])
            return await model.alert("a-past", NOW), await model.alert("a-legacy", NOW)
        finally:
            await model.close()

    past, legacy = run(go())
    assert past["status"] == legacy["status"] == "resolved"
    assert [e["type"] for e in past["events"]] == ["opened", "contacted", "resolved"]  # in the worker's order


def test_the_digest_of_a_period_without_data_is_an_error_unless_asked_for(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    db = tmp_path / "inbox.db"

    async def create() -> None:
        model = ReadModel(str(db))
        try:
            await model.migrate()
        finally:
            await model.close()

    run(create())
    env = {**os.environ, "SURVEY_ALERTS_INBOX_DB": str(db)}
    args = [sys.executable, "-m", "stream.cli", "digest", "--format", "json"]
    empty = subprocess.run(args, env=env, capture_output=True, text=True, timeout=60)
    assert empty.returncode == 1 and "no data for the period" in empty.stderr, empty.stderr
    allowed = subprocess.run([*args, "--allow-empty"], env=env, capture_output=True, text=True, timeout=60)
    assert allowed.returncode == 0 and orjson.loads(allowed.stdout)["alerts"] == 0


def test_the_login_lockout_holds_across_inbox_processes(database: str) -> None:
    from stream.inbox.auth import MAX_FAILURES, Authority, UsersFile, hash_password

    users = UsersFile.model_validate(
        {"users": {"sam": {"password_hash": hash_password("right"), "queues": ["*"]}}}
    )

    async def go() -> tuple[bool, bool]:
        first, second = ReadModel(database), ReadModel(database)  # two inbox processes, one database
        try:
            await first.migrate()
            a, b = Authority(users, sessions=first), Authority(users, sessions=second)
            for _ in range(MAX_FAILURES):
                await a.log_in("sam", "wrong", "10.0.0.66")
            locked = await b.log_in("sam", "right", "10.0.0.66") is None  # the other process knows
            elsewhere = await b.log_in("sam", "right", "10.0.0.7") is not None
            return locked, elsewhere
        finally:
            await first.close()
            await second.close()

    assert run(go()) == (True, True)


def test_profiles_are_kept_apart_newest_first_and_erased(database: str) -> None:
    """An alert's customer.profile moves to the profiles table (the stored alert holds none); the newest
    updated_at wins from either source; an erasure removes it, and an older record does not bring it back."""

    def profile(at: float, **fields: Any) -> dict[str, Any]:
        return {"updated_at": stamp(at), "name": "Dana", "email": "dana@example.com", **fields}

    async def go() -> None:
        model = ReadModel(database)
        try:
            await model.migrate()
            doc = alert("a-p", "billing", NOW, customer_id="cust-p")
            doc["customer"] = {**doc["customer"], "profile": profile(NOW - 50)}
            await model.apply([("alert", "recovery-alerts", 0, 0, doc)])
            found = await model.alert("a-p", NOW)
            assert found is not None and "profile" not in found["doc"]["customer"]
            assert "dana@example.com" not in orjson.dumps(found["doc"]).decode()
            assert (await model.profile("cust-p") or {})["email"] == "dana@example.com"
            page = await model.page(None, NOW)
            assert [r["name"] for r in page.rows if r["alert_id"] == "a-p"] == ["Dana"]

            newer = {"customer_id": "cust-p", "at": NOW - 10, "name": "Dana Lee", "phone": "+1 202 555 0100"}
            older = {"customer_id": "cust-p", "at": NOW - 90, "name": "Old"}
            await model.apply(
                [("profile", "customer-profiles", 0, 0, newer), ("profile", "customer-profiles", 0, 1, older)]
            )
            assert (await model.profile("cust-p") or {})["name"] == "Dana Lee"
            # an alert carrying an older copy changes nothing either
            again = alert("a-p2", "billing", NOW, customer_id="cust-p")
            again["customer"] = {**again["customer"], "profile": profile(NOW - 40, name="Stale")}
            await model.apply([("alert", "recovery-alerts", 0, 1, again)])
            assert (await model.profile("cust-p") or {})["name"] == "Dana Lee"

            erased = {"customer_id": "cust-p", "at": NOW - 5, "deleted": True}
            await model.apply([("profile", "customer-profiles", 0, 2, erased)])
            assert await model.profile("cust-p") is None
            await model.apply([("profile", "customer-profiles", 0, 3, {**older, "at": NOW - 6})])
            assert await model.profile("cust-p") is None
            assert [
                r["name"] for r in (await model.page(None, NOW)).rows if r["customer_id"] == "cust-p"
            ] == [None, None]
        finally:
            await model.close()

    run(go())
