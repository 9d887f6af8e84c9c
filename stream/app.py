"""The Faust app, built from one ``Settings`` object."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import faust
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from stream.batching import BatchHandler, BatchTransport
from stream.delivery import Records
from stream.metrics import Metrics
from stream.settings import Settings


class SurveyApp(faust.App):
    """A Faust app whose consumer hands batch agents whole batches (see ``stream.batching``)."""

    def __init__(self, *args: Any, settings: Settings, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settings = settings
        self.metrics = metrics
        self.batch_handlers: dict[str, BatchHandler] = {}
        self.raw_tables: list[Any] = []  # restored by the batch consumer (see stream.batching)

    def state_table(self, name: str, help: str) -> Any:
        """A changelog-backed table of orjson documents, partitioned like the inputs."""
        table = self.Table(
            name, partitions=self.settings.partitions, key_type=bytes, value_type=bytes, help=help
        )
        self.raw_tables.append(table)
        return table

    def kafka_producer(self) -> Any:
        """The aiokafka producer under Faust's (started with the app)."""
        return cast(Any, self.producer)._ensure_producer()

    def outbox(self) -> Records:
        """A fresh delivery stage: records grouped into one Kafka record batch per partition."""
        return Records(self.kafka_producer())

    def _new_transport(self) -> Any:
        return BatchTransport(self.conf.broker_consumer, self)

    def batch_agent(self, *topics: faust.types.TopicT) -> Callable[[BatchHandler], BatchHandler]:
        """Register ``handler(messages)`` for every batch of records of ``topics``.

        The handler runs inside the consumer's drain loop; when it returns, the
        messages are acked and Faust commits them. If it raises, nothing is acked
        and the worker stops, so the batch is processed again (at least once).
        """

        def register(handler: BatchHandler) -> BatchHandler:
            for topic in topics:
                self.topics.add(topic)  # subscribe, with no per-message agent
                for name in topic.topics:
                    if name in self.batch_handlers:
                        raise ValueError(f"topic {name!r} already has a batch agent")
                    self.batch_handlers[name] = handler
            return handler

        return register


def create_app(settings: Settings, metrics: Metrics | None = None) -> SurveyApp:
    """Build the app, its topics and tables, and serve ``/metrics``."""
    credentials = None
    if settings.sasl_username and settings.sasl_password:
        credentials = faust.SASLCredentials(
            username=settings.sasl_username, password=settings.sasl_password.get_secret_value()
        )
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
        # batch the per-batch burst of outputs and changelog records into few requests
        producer_linger=0.005,
        producer_max_batch_size=1 << 20,
        consumer_max_fetch_size=4 << 20,
        table_standby_replicas=0,
        key_serializer="raw",
        value_serializer="raw",
    )
    registry = app.metrics.registry

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            return self.bytes(generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    from agents import install  # agents depend on the app, not the other way round

    install(app, settings)
    return app
