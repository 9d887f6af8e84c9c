"""The inbox's read model: alerts, their follow-up events and escalations, in SQLite or PostgreSQL.

Disposable by design: everything in it comes from the topics, upserted by id, and the
input offsets are stored in the same transaction as the rows they produced. Drop the
database and the inbox rebuilds it from the beginning of the topics; replay a record
and nothing changes. No business rule lives here: an alert's status is the status
the worker's newest ``followup-events`` record says.

Schema changes are numbered migrations (``MIGRATIONS``), applied in order at start-up
and recorded in ``inbox_schema``.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import (
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    and_,
    event,
    func,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from alerts.customer import PROFILE_FIELDS
from alerts.followup import WAITING
from schemas.common import epoch_or_none
from stream.errors import ConfigurationError

metadata = MetaData()

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", String(128), primary_key=True),
    Column("known", Integer, nullable=False, default=0),  # 1 once the alert itself arrived
    Column("kind", String(64)),
    Column("severity", String(16)),
    Column("queue", String(256)),
    Column("team", String(256)),
    Column("customer_id", String(128)),
    Column("ticket_id", String(128)),
    Column("metric", String(64)),
    Column("score", Float),
    Column("tier", String(256)),
    Column("account_value", Float),
    Column("created_at", Float),
    Column("cause_at", Float),  # event time of its cause (migration 4): reports place it by this
    Column("due_at", Float),
    Column("status", String(32), nullable=False, default="open"),
    Column("status_at", Float),
    Column("status_seq", Integer),  # the seq of the follow-up event that set the status (migration 7)
    Column("root_cause", Text),
    Column("original_alert_id", String(128)),
    Column("notice", Integer),
    Column("notices", Integer, nullable=False, default=0),  # overdue notices of this alert so far
    Column("doc", Text),
)
Index("alerts_queue_due", alerts.c.queue, alerts.c.due_at)
Index("alerts_status_due", alerts.c.status, alerts.c.due_at)
Index("alerts_team", alerts.c.team)

events = Table(
    "followup_events",
    metadata,
    Column("event_id", String(128), primary_key=True),
    Column("alert_id", String(128), nullable=False),
    Column("type", String(32), nullable=False),
    Column("status", String(32), nullable=False),
    Column("at", Float, nullable=False),
    Column("actor", String(256)),
    Column("root_cause", Text),
    Column("note", Text),
    Column("action_id", String(128)),
    Column("notice", Integer),
    Column("doc", Text),
    Column("seq", Integer),  # the worker's order of the alert's events (migration 7)
)
Index("events_alert_at", events.c.alert_id, events.c.at)

escalations = Table(
    "escalations",
    metadata,
    Column("escalation_id", String(128), primary_key=True),
    Column("queue", String(256)),
    Column("source", String(64)),
    Column("team", String(256)),
    Column("priority", String(16)),
    Column("customer_id", String(128)),
    Column("ticket_id", String(128)),
    Column("alert_id", String(128)),
    Column("tier", String(256)),
    Column("account_value", Float),
    Column("reason", Text),
    Column("rule", String(256)),
    Column("routed_at", Float),
    Column("cause_at", Float),  # event time of its cause (migration 4)
    Column("doc", Text),
)
Index("escalations_queue_routed", escalations.c.queue, escalations.c.routed_at)

sent_actions = Table(  # what this inbox produced to followup-actions, until its event comes back
    "sent_actions",
    metadata,
    Column("action_id", String(128), primary_key=True),
    Column("alert_id", String(128), nullable=False),
    Column("type", String(32), nullable=False),
    Column("actor", String(256), nullable=False),
    Column("at", Float, nullable=False),
    Column("note", Text),
    Column("root_cause", Text),
)
Index("sent_alert", sent_actions.c.alert_id)

offsets = Table(
    "offsets",
    metadata,
    Column("topic", String(255), primary_key=True),
    Column("partition", Integer, primary_key=True),
    Column("next_offset", Integer, nullable=False),
)

log = logging.getLogger(__name__)
MIGRATION_LOCK = 0x5A1E7  # the advisory lock PostgreSQL migrations take turns on

schema_table = Table("inbox_schema", MetaData(), Column("version", Integer, primary_key=True))

V1 = [alerts, events, escalations, sent_actions, offsets]

windows = Table(  # feedback-windows snapshots: the newest per window position, for the digest
    "window_snapshots",
    metadata,
    Column("dimension", String(64), primary_key=True),
    Column("key", String(256), primary_key=True),
    Column("window", String(16), primary_key=True),
    Column("metric", String(64), primary_key=True),
    Column("window_end", Float, primary_key=True),
    Column("window_start", Float),
    Column("as_of", Float),
    Column("value", Float),
    Column("estimate", Float),
    Column("stderr", Float),
    Column("responses", Integer),
    Column("promoters", Integer),
    Column("passives", Integer),
    Column("detractors", Integer),
)


sessions = Table(  # who is logged in: not from the topics; dropping the database logs everyone out
    "sessions",
    metadata,
    Column("digest", String(64), primary_key=True),  # sha256 of the session id, never the id
    Column("user", String(128), nullable=False),
    Column("csrf", String(64), nullable=False),
    Column("expires_at", Float, nullable=False),
)
Index("sessions_expiry", sessions.c.expires_at)
login_failures = Table(  # failed logins, by digests of (address, name) and of address: for the lockout
    "login_failures",
    metadata,
    Column("key", String(80), nullable=False),
    Column("at", Float, nullable=False),
)
Index("login_failures_key", login_failures.c.key, login_failures.c.at)
profiles = Table(  # whom to call (personal data): the newest customer-profiles record; doc NULL = erased
    "profiles",
    metadata,
    Column("customer_id", String(128), primary_key=True),
    Column("updated_at", Float, nullable=False),
    Column("doc", Text),
)


async def _v1(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: metadata.create_all(sync, tables=V1))


async def _v2(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[windows]))


async def _v3(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[sessions]))


async def _v4(conn: AsyncConnection) -> None:
    # a database made by migration 1 of this version has the columns already (the tables declare them)
    def add(sync: Any) -> None:
        from sqlalchemy import inspect

        for table in ("alerts", "escalations"):
            if "cause_at" not in {c["name"] for c in inspect(sync).get_columns(table)}:
                sync.execute(text(f"ALTER TABLE {table} ADD COLUMN cause_at FLOAT"))
        sync.execute(text("CREATE INDEX IF NOT EXISTS alerts_cause ON alerts (cause_at)"))
        sync.execute(text("CREATE INDEX IF NOT EXISTS escalations_cause ON escalations (cause_at)"))

    await conn.run_sync(add)


async def _v5(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[login_failures]))


async def _v6(conn: AsyncConnection) -> None:
    await conn.run_sync(lambda sync: metadata.create_all(sync, tables=[profiles]))


async def _v7(conn: AsyncConnection) -> None:
    def add(sync: Any) -> None:
        from sqlalchemy import inspect

        for table, column in (("alerts", "status_seq"), ("followup_events", "seq")):
            if column not in {c["name"] for c in inspect(sync).get_columns(table)}:
                sync.execute(text(f"ALTER TABLE {table} ADD COLUMN {column} INTEGER"))

    await conn.run_sync(add)


# (version, what it does, how): append, never edit an applied one
MIGRATIONS: list[tuple[int, str, Callable[[AsyncConnection], Any]]] = [
    (1, "alerts, follow-up events, escalations, sent actions, offsets", _v1),
    (2, "feedback-windows snapshots (for the digest)", _v2),
    (3, "login sessions", _v3),
    (4, "the event time of each alert's and escalation's cause (the digest places them by it)", _v4),
    (5, "failed logins, so the lockout holds across inbox processes", _v5),
    (6, "customer profiles (whom to call), kept apart from the alerts so an erasure erases them", _v6),
    (7, "the worker's sequence of follow-up events: the newest says the status, whatever its `at`", _v7),
]


def _plain(row: Any) -> dict[str, Any]:
    """A result row as a dict with plain ``str`` keys (SQLAlchemy's are a subclass orjson refuses)."""
    return {str(k): v for k, v in row._mapping.items()}


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def engine_url(url: str) -> str:
    """An async SQLAlchemy URL: ``postgresql://`` uses asyncpg, a path or ``sqlite://`` aiosqlite."""
    if url.startswith(("postgresql://", "postgres://")):
        return "postgresql+asyncpg://" + url.split("://", 1)[1]
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///") :]
    if "://" in url:
        return url
    return f"sqlite+aiosqlite:///{url}"


def _id(value: Any) -> str | None:
    """An id as the contract bounds it (1-128 characters), else None: such a record is skipped, so a
    foreign record on an output topic can never fail the feed's transaction over and over."""
    return value if isinstance(value, str) and 0 < len(value) <= 128 else None


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _with_concession(event: dict[str, Any]) -> dict[str, Any]:
    """A follow-up event row with its concession and cap flag (kept in its document) beside it."""
    doc = orjson.loads(event["doc"]) if event.get("doc") else {}
    concession = doc.get("concession")
    event["concession"] = concession if isinstance(concession, dict) else None
    event["over_cap"] = doc.get("over_cap") is True
    return event


def _seq(value: Any) -> int | None:
    """A follow-up event's ``seq`` (1, 2, ...), or None if it has none usable."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 < value < 2**31 else None


def _text(value: Any, limit: int = 256) -> str | None:
    return str(value)[:limit] if value is not None else None


@dataclass
class Page:
    """One page of the queue view."""

    rows: list[dict[str, Any]]
    total: int
    overdue: int
    by_status: dict[str, int]


class ReadModel:
    """The inbox's database: upserts from the topics, and the queries of the pages and the API."""

    def __init__(self, url: str) -> None:
        self.url = engine_url(url)
        self.engine: AsyncEngine = create_async_engine(self.url)
        self.dialect = self.engine.dialect.name
        if self.dialect == "sqlite":
            # WAL: the pages read while the feed writes (in the default journal mode a reader waits
            # for the writer and fails after the timeout); a writer waits up to 30 s for another
            event.listen(self.engine.sync_engine, "connect", _sqlite_pragmas)

    async def migrate(self) -> list[int]:
        """Apply the migrations not applied yet; returns their versions.

        Safe beside another process migrating the same database: on PostgreSQL an advisory
        lock makes them take turns; SQLite's DDL is transactional, so the one that lost the
        race rolls back and tries again, finding the work done.
        """
        for attempt in range(10):
            try:
                return await self._migrate()
            except OperationalError as exc:
                if self.dialect != "sqlite" or attempt == 9:
                    raise
                log.info("Read model: another process is migrating it (%s); trying again", exc.orig)
                await asyncio.sleep(0.5)
        raise AssertionError("unreachable")

    async def _migrate(self) -> list[int]:
        applied: list[int] = []
        async with self.engine.begin() as conn:
            if self.dialect == "postgresql":
                await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK})
            await conn.run_sync(schema_table.metadata.create_all)
            done = {row[0] for row in await conn.execute(select(schema_table.c.version))}
            for version, _, step in MIGRATIONS:
                if version not in done:
                    await step(conn)
                    await conn.execute(schema_table.insert().values(version=version))
                    applied.append(version)
        return applied

    async def require_current(self, setting: str = "SURVEY_ALERTS_INBOX_DB") -> None:
        """For readers that must not create or change it (the digest): a clear error unless the
        database exists with every migration applied."""
        problem = f"the read model ({setting}) has no data yet: the inbox creates and feeds it"
        if self.dialect == "sqlite":
            path = self.engine.url.database
            if not path or path == ":memory:" or not Path(path).exists():
                raise ConfigurationError(f"{problem} (no file {path!r}; start `survey-alerts inbox`)")
        try:
            async with self.engine.connect() as conn:
                done = {row[0] for row in await conn.execute(select(schema_table.c.version))}
        except OperationalError:
            raise ConfigurationError(f"{problem} (it has no tables; start `survey-alerts inbox`)") from None
        except (DBAPIError, OSError) as exc:
            raise ConfigurationError(
                f"the read model ({setting}) cannot be read: {type(exc).__name__}"
            ) from None
        missing = [version for version, _, _ in MIGRATIONS if version not in done]
        if missing:
            raise ConfigurationError(
                f"the read model ({setting}) lacks migrations {missing}: start `survey-alerts inbox` of this"
                " version once to upgrade it"
            )

    async def close(self) -> None:
        await self.engine.dispose()

    def _insert(self, table: Table) -> Any:
        return (postgresql.insert if self.dialect == "postgresql" else sqlite.insert)(table)

    # -- from the topics ------------------------------------------------------------------

    async def positions(self) -> dict[tuple[str, int], int]:
        """The next offset to read per topic-partition, as stored with the rows."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(select(offsets))
            return {(r.topic, r.partition): r.next_offset for r in rows}

    async def apply(self, records: Sequence[tuple[str, str, int, int, dict[str, Any] | None]]) -> int:
        """Apply ``(type, topic, partition, offset, document)`` records and their offsets in one transaction.

        ``type`` is ``alert``, ``escalation`` or ``event``; a document that is None (not
        JSON) only moves the offset. Returns how many rows changed.
        """
        changed = 0
        last: dict[tuple[str, int], int] = {}
        async with self.engine.begin() as conn:
            for kind, topic, partition, offset, doc in records:
                last[(topic, partition)] = offset + 1
                if doc is None:
                    continue
                if kind == "alert":
                    changed += await self._alert(conn, doc)
                elif kind == "escalation":
                    changed += await self._escalation(conn, doc)
                elif kind == "event":
                    changed += await self._event(conn, doc)
                elif kind == "window":
                    changed += await self._window(conn, doc)
                elif kind == "profile":
                    changed += await self._profile(conn, doc)
            for (topic, partition), next_offset in last.items():
                stmt = self._insert(offsets).values(topic=topic, partition=partition, next_offset=next_offset)
                await conn.execute(
                    stmt.on_conflict_do_update(
                        index_elements=["topic", "partition"], set_={"next_offset": next_offset}
                    )
                )
        return changed

    async def _alert(self, conn: AsyncConnection, doc: dict[str, Any]) -> int:
        alert_id = _id(doc.get("alert_id"))
        if alert_id is None:
            return 0
        doc, customer = await self._without_profile(conn, doc)
        values = {
            "known": 1,
            "kind": _text(doc.get("kind"), 64),
            "severity": _text(doc.get("severity"), 16),
            "queue": _text(doc.get("queue")),
            "team": _text(doc.get("team")),
            "customer_id": _text(doc.get("customer_id"), 128),
            "ticket_id": _text(doc.get("ticket_id"), 128),
            "metric": _text(doc.get("metric"), 64),
            "score": _num(doc.get("score")),
            "tier": _text(customer.get("tier")),
            "account_value": _num(customer.get("account_value")),
            "created_at": epoch_or_none(doc.get("created_at")),
            # documents from before cause_at: the survey's time, else when the worker raised it
            "cause_at": epoch_or_none(doc.get("cause_at"))
            or epoch_or_none(doc.get("submitted_at"))
            or epoch_or_none(doc.get("created_at")),
            "original_alert_id": _text(doc.get("original_alert_id"), 128),
            "notice": doc.get("notice") if isinstance(doc.get("notice"), int) else None,
            "doc": orjson.dumps(doc).decode(),
        }
        existing = (await conn.execute(select(alerts.c.known).where(alerts.c.alert_id == alert_id))).first()
        due = epoch_or_none(doc.get("follow_up_due_at"))
        if existing is None:
            await conn.execute(
                alerts.insert().values(
                    alert_id=alert_id, due_at=due, status="open", status_at=values["created_at"], **values
                )
            )
            return 1
        if existing.known:
            return 0  # a replay: the alert is immutable once raised (edits come as followup-events)
        # its events came first: they set the status (and the due time, if one moved it)
        await conn.execute(
            update(alerts)
            .where(alerts.c.alert_id == alert_id)
            .values(due_at=func.coalesce(alerts.c.due_at, due), **values)
        )
        return 1

    async def _escalation(self, conn: AsyncConnection, doc: dict[str, Any]) -> int:
        escalation_id = _id(doc.get("escalation_id"))
        if escalation_id is None:
            return 0
        doc, _ = await self._without_profile(conn, doc)
        values = {
            "escalation_id": escalation_id,
            "queue": _text(doc.get("queue")),
            "source": _text(doc.get("source"), 64),
            "team": _text(doc.get("team")),
            "priority": _text(doc.get("priority"), 16),
            "customer_id": _text(doc.get("customer_id"), 128),
            "ticket_id": _text(doc.get("ticket_id"), 128),
            "alert_id": _text(doc.get("alert_id"), 128),
            "tier": _text(doc.get("customer_tier")),
            "account_value": _num(doc.get("account_value")),
            "reason": _text(doc.get("reason"), 2000),
            "rule": _text(doc.get("rule")),
            "routed_at": epoch_or_none(doc.get("routed_at")),
            "cause_at": epoch_or_none(doc.get("cause_at")) or epoch_or_none(doc.get("routed_at")),
            "doc": orjson.dumps(doc).decode(),
        }
        result = await conn.execute(self._insert(escalations).values(**values).on_conflict_do_nothing())
        return int(result.rowcount or 0)

    async def _without_profile(
        self, conn: AsyncConnection, doc: dict[str, Any]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """``doc`` without ``customer.profile`` (kept in the profiles table instead), and its customer.

        Personal data lives in one row per customer, so an erasure erases it everywhere here.
        """
        found = doc.get("customer")
        customer: dict[str, Any] = found if isinstance(found, dict) else {}
        if "profile" not in customer:
            return doc, customer
        profile = customer["profile"]
        customer = {k: v for k, v in customer.items() if k != "profile"}
        cid = _id(doc.get("customer_id"))
        if isinstance(profile, dict) and cid is not None:
            at = epoch_or_none(profile.get("updated_at"))
            if at is not None:
                await self._keep_profile(conn, cid, at, profile)
        return {**doc, "customer": customer}, customer

    async def _profile(self, conn: AsyncConnection, doc: dict[str, Any]) -> int:
        """A ``customer-profiles`` record as the feed hands it: ``customer_id``, ``at`` (epoch) and
        the profile's fields, or ``deleted``."""
        cid, at = _id(doc.get("customer_id")), _num(doc.get("at"))
        if cid is None or at is None:
            return 0
        return await self._keep_profile(conn, cid, at, None if doc.get("deleted") else doc)

    async def _keep_profile(
        self, conn: AsyncConnection, cid: str, at: float, fields: dict[str, Any] | None
    ) -> int:
        """Keep a profile (None: an erasure) unless the one held is newer."""
        held = (
            await conn.execute(select(profiles.c.updated_at).where(profiles.c.customer_id == cid))
        ).first()
        if held is not None and held.updated_at > at:
            return 0
        kept = None
        if fields is not None:
            kept = orjson.dumps(
                {k: _text(fields[k], 2048) for k in PROFILE_FIELDS if isinstance(fields.get(k), str)}
            ).decode()
        stmt = self._insert(profiles).values(customer_id=cid, updated_at=at, doc=kept)
        await conn.execute(
            stmt.on_conflict_do_update(index_elements=["customer_id"], set_={"updated_at": at, "doc": kept})
        )
        return 1

    async def profile(self, customer_id: str | None) -> dict[str, Any] | None:
        """The newest profile held of a customer (with ``updated_at``), or None (none, or erased)."""
        if not customer_id:
            return None
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(profiles).where(profiles.c.customer_id == customer_id))).first()
        if row is None or row.doc is None:
            return None
        found: dict[str, Any] = orjson.loads(row.doc)
        found["updated_at"] = row.updated_at
        return found

    async def _event(self, conn: AsyncConnection, doc: dict[str, Any]) -> int:
        event_id, alert_id = _id(doc.get("event_id")), _id(doc.get("alert_id"))
        at = epoch_or_none(doc.get("at"))
        if event_id is None or alert_id is None or at is None:
            return 0
        values = {
            "event_id": event_id,
            "alert_id": alert_id,
            "type": _text(doc.get("type"), 32) or "",
            "status": _text(doc.get("status"), 32) or "open",
            "at": at,
            "actor": _text(doc.get("actor")),
            "root_cause": _text(doc.get("root_cause"), 2000),
            "note": _text(doc.get("note"), 10_000),
            "action_id": _text(doc.get("action_id"), 128),
            "notice": doc.get("notice") if isinstance(doc.get("notice"), int) else None,
            "doc": orjson.dumps(doc).decode(),
            "seq": _seq(doc.get("seq")),
        }
        result = await conn.execute(self._insert(events).values(**values).on_conflict_do_nothing())
        if not result.rowcount:
            return 0  # a replay
        status = select(alerts.c.status_seq).where(alerts.c.alert_id == alert_id)
        row = (await conn.execute(status)).first()
        if row is None:  # the event came before its alert (another topic): a stub until the alert arrives
            await conn.execute(
                alerts.insert().values(
                    alert_id=alert_id,
                    known=0,
                    kind=_text(doc.get("kind"), 64),
                    severity=_text(doc.get("severity"), 16),
                    queue=_text(doc.get("queue")),
                    team=_text(doc.get("team")),
                    customer_id=_text(doc.get("customer_id"), 128),
                    status="open",
                    status_at=None,
                    due_at=epoch_or_none(doc.get("follow_up_due_at")),
                    notices=0,
                )
            )
            row = (await conn.execute(status)).first()
        change: dict[str, Any] = {}
        if doc.get("type") == "overdue":
            change["notices"] = alerts.c.notices + 1
        # The newest event says the status: the worker's order, never `at` (an action may be dated
        # before the alert was raised, or a backfill dates every event in the past). One alert's
        # events share a partition, so topic order is the worker's; seq also holds it across a
        # repartitioning of followup-events. Events written before seq apply in topic order.
        seq = values["seq"]
        if row is None or seq is None or row.status_seq is None or seq > row.status_seq:
            change.update(status=values["status"], status_at=at, status_seq=seq)
            due = epoch_or_none(doc.get("follow_up_due_at"))
            if due is not None:
                change["due_at"] = due
            if doc.get("type") == "resolved":
                change["root_cause"] = values["root_cause"]
        if change:
            await conn.execute(update(alerts).where(alerts.c.alert_id == alert_id).values(**change))
        if values["action_id"]:
            await conn.execute(sent_actions.delete().where(sent_actions.c.action_id == values["action_id"]))
        return 1

    async def _window(self, conn: AsyncConnection, doc: dict[str, Any]) -> int:
        end, as_of = epoch_or_none(doc.get("window_end")), epoch_or_none(doc.get("as_of"))
        if end is None or not doc.get("dimension") or not doc.get("metric"):
            return 0
        values = {
            "dimension": _text(doc.get("dimension"), 64),
            "key": _text(doc.get("key")),
            "window": _text(doc.get("window"), 16),
            "metric": _text(doc.get("metric"), 64),
            "window_end": end,
            "window_start": epoch_or_none(doc.get("window_start")),
            "as_of": as_of,
            "value": _num(doc.get("value")),
            "estimate": _num(doc.get("estimate")),
            "stderr": _num(doc.get("stderr")),
            "responses": doc.get("responses") if isinstance(doc.get("responses"), int) else None,
            "promoters": doc.get("promoters") if isinstance(doc.get("promoters"), int) else None,
            "passives": doc.get("passives") if isinstance(doc.get("passives"), int) else None,
            "detractors": doc.get("detractors") if isinstance(doc.get("detractors"), int) else None,
        }
        keys = ["dimension", "key", "window", "metric", "window_end"]
        stmt = self._insert(windows).values(**values)
        stmt = stmt.on_conflict_do_update(
            index_elements=keys,
            set_={k: stmt.excluded[k] for k in values if k not in keys},
            where=or_(windows.c.as_of.is_(None), windows.c.as_of <= stmt.excluded.as_of),
        )
        await conn.execute(stmt)
        return 1

    async def snapshots(self, dimensions: Sequence[str], window: str, at: float) -> list[dict[str, Any]]:
        """Per key and metric of ``dimensions``: ``window``'s scores as known at ``at``.

        That is the snapshot with the newest ``as_of`` (the events' watermark) up to ``at``; its
        ``window_end`` is the bucket boundary after that watermark, which can lie after ``at``.
        """
        async with self.engine.connect() as conn:
            latest = (
                select(
                    windows.c.dimension,
                    windows.c.key,
                    windows.c.metric,
                    func.max(windows.c.as_of).label("as_of"),
                )
                .where(
                    windows.c.dimension.in_(list(dimensions)),
                    windows.c.window == window,
                    windows.c.as_of <= at,
                )
                .group_by(windows.c.dimension, windows.c.key, windows.c.metric)
                .subquery()
            )
            rows = await conn.execute(
                select(windows)
                .join(
                    latest,
                    and_(
                        windows.c.dimension == latest.c.dimension,
                        windows.c.key == latest.c.key,
                        windows.c.metric == latest.c.metric,
                        windows.c.as_of == latest.c.as_of,
                    ),
                )
                .where(windows.c.window == window)
                .order_by(windows.c.dimension, windows.c.key, windows.c.metric, windows.c.window_end.desc())
            )
            found: dict[tuple[str, str, str], dict[str, Any]] = {}
            for r in rows:  # one per key and metric (two window positions can share an as_of)
                row = _plain(r)
                found.setdefault((row["dimension"], row["key"], row["metric"]), row)
            return list(found.values())

    async def period(self, start: float, end: float) -> dict[str, list[dict[str, Any]]]:
        """Alerts and escalations whose cause happened in ``[start, end)`` (event time: the survey's
        ``submitted_at``, the ticket event's ``occurred_at``), and every follow-up event of those
        alerts, for the digest. A week backfilled later reads exactly like the same week live."""
        alert_time = func.coalesce(alerts.c.cause_at, alerts.c.created_at)
        escalation_time = func.coalesce(escalations.c.cause_at, escalations.c.routed_at)
        async with self.engine.connect() as conn:
            a = await conn.execute(
                select(alerts).where(alerts.c.known == 1, alert_time >= start, alert_time < end)
            )
            e = await conn.execute(select(escalations).where(escalation_time >= start, escalation_time < end))
            found_alerts = [_plain(r) for r in a]
            ids = [r["alert_id"] for r in found_alerts]
            history: list[dict[str, Any]] = []
            for i in range(0, len(ids), 500):  # the events of those alerts, whenever they happened
                rows = await conn.execute(select(events).where(events.c.alert_id.in_(ids[i : i + 500])))
                history.extend(_plain(r) for r in rows)
        for row in found_alerts:
            row["doc"] = orjson.loads(row["doc"]) if row.get("doc") else {}
        return {"alerts": found_alerts, "escalations": [_plain(r) for r in e], "events": history}

    # -- what people do ---------------------------------------------------------------------

    async def record_sent(self, action: dict[str, Any]) -> None:
        """Remember an action this inbox produced, shown as pending until its event comes back."""
        async with self.engine.begin() as conn:
            stmt = self._insert(sent_actions).values(
                action_id=action["action_id"],
                alert_id=action["alert_id"],
                type=action["type"],
                actor=action["actor"],
                at=time.time(),
                note=action.get("note"),
                root_cause=action.get("root_cause"),
            )
            await conn.execute(stmt.on_conflict_do_nothing())

    # -- sessions (stream.inbox.auth.SessionStore) ---------------------------------------------

    async def save_session(self, digest: str, user: str, csrf: str, expires_at: float) -> None:
        async with self.engine.begin() as conn:
            # expired sessions go as new ones come: the table holds the live ones and a few more
            await conn.execute(sessions.delete().where(sessions.c.expires_at < time.time()))
            await conn.execute(
                sessions.insert().values(digest=digest, user=user, csrf=csrf, expires_at=expires_at)
            )

    async def load_session(self, digest: str) -> tuple[str, str, float] | None:
        async with self.engine.connect() as conn:
            row = (
                await conn.execute(
                    select(sessions.c.user, sessions.c.csrf, sessions.c.expires_at).where(
                        sessions.c.digest == digest
                    )
                )
            ).first()
        return None if row is None else (str(row[0]), str(row[1]), float(row[2]))

    async def drop_session(self, digest: str) -> None:
        async with self.engine.begin() as conn:
            await conn.execute(sessions.delete().where(sessions.c.digest == digest))

    async def record_failure(self, key: str, at: float) -> None:
        async with self.engine.begin() as conn:
            # old failures go as new ones come: the table holds the last hour at most
            await conn.execute(login_failures.delete().where(login_failures.c.at < at - 3600))
            await conn.execute(login_failures.insert().values(key=key, at=at))

    async def count_failures(self, key: str, since: float) -> int:
        async with self.engine.connect() as conn:
            found = await conn.execute(
                select(func.count()).where(login_failures.c.key == key, login_failures.c.at >= since)
            )
            return int(found.scalar() or 0)

    # -- queries ----------------------------------------------------------------------------

    def _visible(self, queues: frozenset[str] | None) -> Any:
        return alerts.c.queue.in_(sorted(queues)) if queues is not None else None

    async def page(
        self,
        queues: frozenset[str] | None,
        now: float,
        queue: str | None = None,
        team: str | None = None,
        severity: str | None = None,
        status: str | None = None,
        overdue: bool = False,
        limit: int = 200,
    ) -> Page:
        """The queue view: alerts visible to the user, filtered, sorted by due time, with counts."""
        where = [alerts.c.known == 1]
        visible = self._visible(queues)
        if visible is not None:
            where.append(visible)
        for column, value in ((alerts.c.queue, queue), (alerts.c.team, team), (alerts.c.severity, severity)):
            if value:
                where.append(column == value)
        base = list(where)
        if status == "waiting":
            where.append(alerts.c.status.in_(WAITING))
        elif status:
            where.append(alerts.c.status == status)
        late = and_(alerts.c.status.in_(WAITING), alerts.c.due_at < now)
        if overdue:
            where.append(late)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(alerts).where(*where).order_by(alerts.c.due_at.asc().nulls_last()).limit(limit)
            )
            found = [self._row(_plain(r), now) for r in rows]
            await self._names(conn, found)
            total = (await conn.execute(select(func.count()).select_from(alerts).where(*where))).scalar_one()
            n_late = (
                await conn.execute(select(func.count()).select_from(alerts).where(*base, late))
            ).scalar_one()
            counts = await conn.execute(
                select(alerts.c.status, func.count()).where(*base).group_by(alerts.c.status)
            )
            by_status = {s: int(n) for s, n in counts}
        return Page(found, int(total), int(n_late), by_status)

    async def _names(self, conn: AsyncConnection, rows: list[dict[str, Any]]) -> None:
        """Each row's customer name (``name``; None without a profile), from the profiles held."""
        ids = sorted({r["customer_id"] for r in rows if r.get("customer_id")})
        names: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            held = await conn.execute(
                select(profiles.c.customer_id, profiles.c.doc).where(
                    profiles.c.customer_id.in_(ids[i : i + 500])
                )
            )
            for cid, doc in held:
                name = orjson.loads(doc).get("name") if doc else None
                if isinstance(name, str) and name:
                    names[cid] = name
        for r in rows:
            r["name"] = names.get(r.get("customer_id") or "")

    def _row(self, row: dict[str, Any], now: float) -> dict[str, Any]:
        row["overdue"] = row["status"] in WAITING and row["due_at"] is not None and row["due_at"] < now
        row["doc"] = orjson.loads(row["doc"]) if row.get("doc") else {}
        return row

    async def alert(self, alert_id: str, now: float) -> dict[str, Any] | None:
        """One alert with its events (oldest first) and the actions sent and not yet confirmed."""
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(alerts).where(alerts.c.alert_id == alert_id))).first()
            if row is None or not row.known:
                return None
            found = self._row(_plain(row), now)
            history = await conn.execute(
                select(events)  # in the worker's order (events from before seq by their time)
                .where(events.c.alert_id == alert_id)
                .order_by(func.coalesce(events.c.seq, 0), events.c.at, events.c.event_id)
            )
            found["events"] = [_with_concession(_plain(r)) for r in history]
            sent = await conn.execute(
                select(sent_actions).where(sent_actions.c.alert_id == alert_id).order_by(sent_actions.c.at)
            )
            found["sent"] = [_plain(r) for r in sent]
        return found

    async def escalation_page(
        self, queues: frozenset[str] | None, queue: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        """Escalations visible to the user, newest first."""
        where: list[Any] = []
        if queues is not None:
            where.append(escalations.c.queue.in_(sorted(queues)))
        if queue:
            where.append(escalations.c.queue == queue)
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                select(escalations).where(*where).order_by(escalations.c.routed_at.desc()).limit(limit)
            )
            return [_plain(r) for r in rows]

    async def queues(self, queues: frozenset[str] | None) -> list[str]:
        """Every queue with alerts or escalations the user may see."""
        async with self.engine.connect() as conn:
            a = await conn.execute(select(alerts.c.queue).where(alerts.c.known == 1).distinct())
            e = await conn.execute(select(escalations.c.queue).distinct())
            names = {r[0] for r in a if r[0]} | {r[0] for r in e if r[0]}
        return sorted(n for n in names if queues is None or n in queues)

    async def sizes(self) -> dict[str, int]:
        """Rows per table (a metric)."""
        out = {}
        async with self.engine.connect() as conn:
            for table in (alerts, events, escalations, sent_actions, profiles):
                out[table.name] = int(
                    (await conn.execute(select(func.count()).select_from(table))).scalar_one()
                )
        return out

    async def version(self) -> int:
        """How many rows there are: the live view reloads when it moves (rows are never deleted)."""
        return sum((await self.sizes()).values())
