"""The worker's composition root: builds the Faust app and installs the stages on it.

The only module that imports both the app (``stream.worker.app``) and the stages
(``agents``); everything else in the worker depends on neither or on the interface
``stream.worker.runtime``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from agents import install
from stream.kafka.security import faust_credentials
from stream.metrics import Metrics
from stream.settings import Settings
from stream.worker.app import Readiness, SurveyApp, worker_watchdog


class Companion(Protocol):
    """A service run beside the agents in the worker's process (its failures never stop it)."""

    async def run_supervised(self, stop: asyncio.Event) -> Any: ...


Companions = Callable[[Settings, CollectorRegistry], Sequence[Companion]]


def create_app(
    settings: Settings, metrics: Metrics | None = None, companions: Companions | None = None
) -> SurveyApp:
    """Build the app, install the stages, serve ``/metrics``, ``/health`` and ``/ready``.

    ``companions(settings, registry)`` gives services run beside the agents in this process
    (the notifier, with ``SURVEY_ALERTS_NOTIFY_IN_WORKER``); the command group passes it, so
    that this package never imports another process's.
    """

    credentials = faust_credentials(settings)
    app = SurveyApp(
        settings.app_id,
        settings=settings,
        metrics=metrics if metrics is not None else Metrics(),
        broker=settings.broker,
        broker_credentials=credentials,
        datadir=str(settings.data_dir),
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        broker_commit_interval=settings.commit_interval_s,
        broker_max_poll_records=settings.max_poll_records,
        broker_session_timeout=settings.session_timeout_s,
        broker_rebalance_timeout=settings.rebalance_timeout_s,
        broker_heartbeat_interval=min(3.0, settings.session_timeout_s / 3),
        consumer_auto_offset_reset="earliest",
        producer_acks=-1,
        # Faust's default (20 min) is also how long a batch in flight to a frozen broker is kept
        producer_request_timeout=settings.producer_request_timeout_s,
        # batch the per-batch burst of outputs and changelog records into few requests
        producer_linger=0.005,
        producer_max_batch_size=1 << 20,
        producer_max_request_size=settings.max_message_bytes,
        consumer_max_fetch_size=4 << 20,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
    )
    registry = app.metrics.registry
    for metric, goal in settings.targets.items():
        app.metrics.targets.labels(metric).set(goal)
    app.metrics.initialise(
        [settings.survey_responses_topic, settings.ticket_events_topic, settings.followup_actions_topic]
    )

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/health")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    watchdog = worker_watchdog(app)

    @app.timer(watchdog.interval_s)  # type: ignore[untyped-decorator]
    async def _watch() -> None:
        await watchdog.check()

    readiness = Readiness(app, watchdog)

    @app.page("/ready")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            body = await readiness.check()
            return self.json(body, status=200 if body["ready"] else 503)

    async def _rebalanced(sender: Any, *args: Any, **kwargs: Any) -> None:
        app.metrics.rebalances.inc()

    app.on_partitions_assigned.connect(_rebalanced)  # type: ignore[arg-type]

    install(app, settings)
    for companion in companions(settings, registry) if companions else []:
        _run_beside(app, companion)
    return app


def _run_beside(app: SurveyApp, companion: Companion) -> None:
    @app.task  # type: ignore[untyped-decorator]
    async def _companion() -> None:
        await companion.run_supervised(asyncio.Event())  # its failures never stop the worker
