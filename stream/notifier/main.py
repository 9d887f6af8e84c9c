"""Running the notifier: on its own (``survey-alerts notifier``) or inside the worker."""

from __future__ import annotations

import asyncio
import logging
import signal
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from alerts.notify.rules import Notifications
from stream.deadline import stopping
from stream.destinations.senders import build_senders
from stream.errors import ConfigurationError
from stream.notifier.metrics import NotifierMetrics
from stream.notifier.service import Notifier
from stream.settings import Settings
from stream.watchdog import Watchdog

log = logging.getLogger(__name__)


def notifier_from(settings: Settings, registry: CollectorRegistry | None = None) -> Notifier:
    """A notifier as ``settings`` and their rules file configure it; a missing secret fails here."""
    rules: Notifications = settings.rules()
    if not rules.destinations:
        where = settings.routing_rules or "SURVEY_ALERTS_ROUTING_RULES (unset)"
        raise ConfigurationError(
            f"the notifier has no destinations: add [destinations.NAME] and [[notify]] to {where}"
        )
    senders = build_senders(rules.destinations, settings.inbox_url, settings.email_domain)
    return Notifier(settings, rules, senders, NotifierMetrics(registry))


def in_worker(settings: Settings, registry: CollectorRegistry) -> list[Notifier]:
    """The notifier to run inside the worker's process, when ``SURVEY_ALERTS_NOTIFY_IN_WORKER`` says so.

    Its own consumer group, beside the agents; the command group hands this to the worker.
    """
    return [notifier_from(settings, registry)] if settings.notify_in_worker else []


def notifier_watchdog(notifier: Notifier) -> Watchdog:
    """The standalone notifier's progress watchdog (in the worker's process, the worker's own watches)."""
    s = notifier.settings
    return Watchdog(
        "The notifier",
        notifier.progress_read,
        s.stall_s,
        s.stall_restart_s,
        registry=notifier.metrics.registry,
    )


def web_app(notifier: Notifier, watchdog: Watchdog | None = None) -> web.Application:
    """``/metrics``, ``/health`` (the process answers) and ``/ready`` (consuming, partitions assigned)."""
    registry = notifier.metrics.registry

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    async def health(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def ready(request: web.Request) -> web.Response:
        stalled = watchdog is not None and watchdog.stalled
        ready = notifier.ready and not stalled
        body: dict[str, Any] = {
            "ready": ready,
            "partitions": len(notifier.assigned),
            "pending": len(notifier.state.pending) if notifier.state else None,
            "stalled": stalled,
        }
        return web.json_response(body, status=200 if ready else 503)

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/health", health)
    app.router.add_get("/ready", ready)
    return app


async def serve(settings: Settings) -> None:
    """Run the notifier until SIGTERM or SIGINT, with its HTTP endpoints."""
    notifier = notifier_from(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping(stop, settings.shutdown_timeout_s))
    watchdog = notifier_watchdog(notifier)
    watching = asyncio.ensure_future(watchdog.run())
    runner = web.AppRunner(web_app(notifier, watchdog), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.notifier_web_host, settings.notifier_web_port)
    await site.start()
    log.info(
        "Notifier %s: %d destinations; metrics at http://%s:%d/metrics",
        settings.notifier_group_id,
        len(notifier.senders),
        settings.notifier_web_host,
        settings.notifier_web_port,
    )
    try:
        await notifier.run_supervised(stop)
    finally:
        watching.cancel()
        await runner.cleanup()
