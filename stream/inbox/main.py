"""Running the inbox: the read model's feed, the action producer and the web server, in one process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web
from aiokafka import AIOKafkaProducer
from prometheus_client import CollectorRegistry

from schemas.common import SCHEMA_VERSION
from stream.deadline import stopping
from stream.errors import ConfigurationError
from stream.inbox.auth import Authority, MemorySessions, SessionStore, load_users
from stream.inbox.feed import BROKER_WAIT_S, Feed, FeedMetrics
from stream.inbox.web import Inbox
from stream.kafka.security import aiokafka_options
from stream.readmodel.db import ReadModel
from stream.settings import Settings
from stream.watchdog import Watchdog

log = logging.getLogger(__name__)


def authority_from(settings: Settings, sessions: SessionStore | None = None) -> Authority:
    """The users file's users and tokens, the trusted-proxy mode if configured, and where the
    sessions are kept (the read model's database; in this process only without one)."""
    if settings.inbox_users is None:
        raise ConfigurationError(
            "the inbox needs SURVEY_ALERTS_INBOX_USERS: a users file with argon2 password hashes "
            "(survey-alerts inbox hash-password); see the README's inbox section"
        )
    authority = Authority(
        load_users(settings.inbox_users),
        trusted_header=settings.inbox_trusted_header,
        trusted_proxies=settings.inbox_trusted_proxies,
        sessions=sessions if sessions is not None else MemorySessions(),
        users_file=Path(settings.inbox_users),
    )
    authority.refresh()  # notes the file's state (it was just read)
    return authority


async def serve(settings: Settings, stop: asyncio.Event | None = None, announce: Any = None) -> None:
    """Run the inbox until ``stop`` is set, or SIGTERM / SIGINT."""
    authority_from(settings)  # a missing or bad users file is an error before anything starts
    model = ReadModel(settings.inbox_db)
    applied = await model.migrate()
    authority = authority_from(settings, model)
    if applied:
        log.info("Inbox database: migrations %s applied", applied)
    registry = CollectorRegistry()
    feed = Feed(settings, model, FeedMetrics(registry))
    producer = AIOKafkaProducer(acks="all", request_timeout_ms=30_000, **aiokafka_options(settings))
    await asyncio.wait_for(producer.start(), BROKER_WAIT_S)

    async def send_action(doc: dict[str, Any]) -> None:
        future = await producer.send(
            settings.followup_actions_topic,
            orjson.dumps(doc),
            key=doc["alert_id"].encode(),
            headers=[("schema-version", str(SCHEMA_VERSION).encode())],
        )
        await asyncio.wait_for(future, 30)  # aiokafka can wait for ever while the broker is away

    watchdog = Watchdog(
        "The inbox's feed", feed.progress_read, settings.stall_s, settings.stall_restart_s, registry=registry
    )
    inbox = Inbox(
        settings,
        model,
        authority,
        send_action,
        registry,
        ready=lambda: feed.caught_up and not watchdog.stalled,
    )
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    with contextlib.suppress(
        RuntimeError, NotImplementedError, ValueError
    ):  # not the main thread: caller stops
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stopping(stop, settings.shutdown_timeout_s))
    runner = web.AppRunner(inbox.app(), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, settings.inbox_host, settings.inbox_port).start()
    url = f"http://{settings.inbox_host}:{settings.inbox_port}/"
    log.info("Inbox at %s (read model %s)", url, model.dialect)
    if announce is not None:
        announce(url)
    feeding = asyncio.ensure_future(feed.run_supervised(stop))
    watching = asyncio.ensure_future(watchdog.run())
    try:
        await stop.wait()
    finally:
        stop.set()
        watching.cancel()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(feeding, 30)
        await runner.cleanup()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(producer.stop(), 30)
        await model.close()
