"""Faust baselines for ``survey-alerts bench``, each run as its own worker process.

``bare``: an agent that only iterates events (Faust's per-message path, nothing else).
``naive``: the idiomatic per-event Faust pipeline doing the service's work: validate,
customer state in a table (``table[key] = value``), windows, detect, send.
Both write ``{"events", "seconds", "cpu_s"}`` to a file when they reach the target (``counter``).
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime
from typing import Any

import faust
import orjson

from alerts.customer import CustomerState
from alerts.pipeline import Pipeline, Record, Topics
from alerts.windows import PartitionWindows
from stream.kafka.partitioning import owner_function
from stream.kafka.security import faust_credentials
from stream.settings import Settings
from stream.tools.bench.counter import TargetCount


def main(
    mode: str, broker: str, app_id: str, surveys: str, tickets: str, partitions: int, target: int, out: str
) -> None:
    """Run one baseline until ``target`` events, then write the timing and exit."""
    app = faust.App(
        app_id,
        broker=broker,
        broker_credentials=faust_credentials(Settings.from_environ(os.environ)),
        web_enabled=False,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        key_serializer="raw",
        value_serializer="raw",
        table_standby_replicas=0,
        datadir=f"/tmp/{app_id}-data",
    )
    topic = app.topic(surveys, tickets, key_serializer="raw", value_serializer="raw")
    count = TargetCount(target, out)

    if mode == "bare":

        @app.agent(topic)
        async def bare(stream: Any) -> None:
            async for _event in stream.events():
                count()

    else:
        settings = Settings(partitions=partitions)
        table = app.Table("naive-customers", partitions=partitions, key_type=bytes, value_type=bytes)
        pipeline = Pipeline(
            Topics(
                surveys,
                tickets,
                f"{app_id}-rekey",
                f"{app_id}-alerts",
                f"{app_id}-dlq",
                followups=f"{app_id}-followups",
            ),
            settings.policy(),
            owner_function(partitions),
            settings.router(),
        )
        windows = {
            p: PartitionWindows(settings.window_specs(), settings.late_grace_s) for p in range(partitions)
        }
        out_topics: dict[str, Any] = {}

        @app.agent(topic)
        async def naive(stream: Any) -> None:
            async for event in stream.events():
                m = event.message
                rec = Record(m.topic, m.partition, m.offset, m.key, m.value, (), m.timestamp)

                def load(cid: str) -> CustomerState | None:
                    raw = table.get(cid.encode())
                    return CustomerState.from_doc(orjson.loads(raw)) if raw is not None else None

                result = pipeline.process([rec], load, datetime.now(UTC), windows.__getitem__)
                for cid, (_, st) in result.dirty.items():
                    table[cid.encode()] = orjson.dumps(st.to_doc())  # the idiomatic per-event table write
                for emit in result.emits:
                    t = out_topics.get(emit.topic)
                    if t is None:
                        t = out_topics[emit.topic] = app.topic(
                            emit.topic, key_serializer="raw", value_serializer="raw"
                        )
                    value = emit.value if isinstance(emit.value, bytes) else orjson.dumps(emit.value)
                    await t.send(key=emit.key, value=value)
                count()

    worker = faust.Worker(app, loglevel="warn", quiet=True)
    worker.execute_from_commandline()


if __name__ == "__main__":
    a = sys.argv[1:]
    main(a[0], a[1], a[2], a[3], a[4], int(a[5]), int(a[6]), a[7])
