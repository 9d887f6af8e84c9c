"""Published window snapshots equal a brute-force reference, across a worker crash."""

from __future__ import annotations

import signal
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest

from stream.tools.brokers import LocalBroker
from stream.tools.generate import Generator
from tests.support.reference import reference, snapshot_mismatches
from tests.support.services import Service

pytestmark = pytest.mark.integration


def test_snapshots_equal_the_reference_after_a_crash_mid_stream(kafka: LocalBroker, tmp_path: Path) -> None:
    svc = Service(kafka, tmp_path, snapshot_interval_s="1")
    try:
        svc.start()
        gen = Generator(seed=11, customers=300, start=datetime(2026, 11, 21, 14, tzinfo=UTC), step_s=12)
        messages = list(gen.messages(4000))
        topics = {"survey": svc.settings.survey_responses_topic, "ticket": svc.settings.ticket_events_topic}
        for i, m in enumerate(messages):
            svc.producer.send(topics[m.stream], key=m.key, value=m.value)
            if i == len(messages) // 2:
                svc.producer.flush()
                svc.read(svc.settings.feedback_windows_topic, lambda rs: len(rs) > 0)
                svc.stop(signal.SIGKILL)
                svc.start()
        svc.producer.flush()

        surveys = [orjson.loads(m.value) for m in messages if m.stream == "survey"] + svc.probes
        tickets = [orjson.loads(m.value) for m in messages if m.stream == "ticket"]
        ref = reference(surveys, tickets, svc.settings.window_specs())

        wanted = {
            (key, window, metric): expected
            for (key, window, metric), expected in ref.items()
            if "#" not in metric and key.startswith(("overall:", "team:", "channel:"))
        }
        assert len(wanted) > 100

        def mismatches(records: list[object]) -> list[str]:
            return snapshot_mismatches(records, wanted, ref)

        # snapshots keep coming every second; wait until they have caught up with the stream
        try:
            svc.read(svc.settings.feedback_windows_topic, lambda rs: not mismatches(rs), timeout_s=90)
        except AssertionError:
            records = svc.read(svc.settings.feedback_windows_topic, lambda rs: True)
            raise AssertionError("\n".join(mismatches(records)[:30])) from None
    finally:
        svc.close()
