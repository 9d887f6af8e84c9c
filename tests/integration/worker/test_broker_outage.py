"""Apache Kafka stopped (SIGTERM) and restarted on the same data directory mid-stream: the worker
recovers by itself and every expected alert is raised, once per id."""

from __future__ import annotations

import gc
import os
import signal
import time
from pathlib import Path

import orjson
import pytest

from stream.tools.brokers import ApacheKafka
from tests.support.factories import raw, survey, uid
from tests.support.services import Service

pytestmark = pytest.mark.integration
# 15 s by default (the suite's time); SURVEY_ALERTS_TEST_OUTAGE_S=60 for the full minute
OUTAGE_S = float(os.environ.get("SURVEY_ALERTS_TEST_OUTAGE_S", "15"))


@pytest.mark.parametrize("outage", ["restart", "freeze"])
# kafka-python's producer leaves its sockets to a frozen broker open when it is closed
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_the_worker_rides_out_a_broker_outage(tmp_path: Path, outage: str) -> None:
    broker = ApacheKafka(workdir=tmp_path / "kafka")
    broker.start(timeout_s=180)
    (tmp_path / "worker").mkdir()
    svc = Service(broker, tmp_path / "worker")
    try:
        svc.start()
        before = [uid("before") for _ in range(20)]
        for cid in before:
            svc.send_survey(survey(cid, nps=1))
        if outage == "restart":
            broker.stop()  # SIGTERM: a clean broker shutdown, data kept
        else:
            assert broker.proc is not None
            os.killpg(broker.proc.pid, signal.SIGSTOP)  # frozen: connections open, nothing answers
        time.sleep(OUTAGE_S)  # the worker meets a broker that is away
        assert svc.proc is not None and svc.proc.poll() is None, "the worker died while the broker was away"
        if outage == "restart":
            broker.start(timeout_s=180)  # same port, same data
        else:
            assert broker.proc is not None
            os.killpg(broker.proc.pid, signal.SIGCONT)
        svc.producer.close()
        from kafka import KafkaProducer

        svc.producer = KafkaProducer(bootstrap_servers=broker.bootstrap, acks="all")
        after = [uid("after") for _ in range(20)]
        for cid in after:
            svc.send(svc.settings.survey_responses_topic, raw(survey(cid, nps=2)), cid.encode())
        records = svc.read(
            svc.settings.recovery_alerts_topic,
            lambda rs: {r.key.decode() for r in rs} >= set(before) | set(after),
            timeout_s=180,
        )
        ids = [
            orjson.loads(r.value)["alert_id"] for r in records if r.key.decode() in set(before) | set(after)
        ]
        assert len(set(ids)) == len(before) + len(after)
        duplicates = len(ids) - len(set(ids))
        print(f"broker restart: {duplicates} redelivered alerts (same ids) of {len(set(ids))}")
        assert svc.proc is not None and svc.proc.poll() is None, svc.tail()
    finally:
        svc.close()
        broker.stop()
        # finalize those sockets now, under this test's filter: left to a later garbage collection
        # their ResourceWarnings would fail whichever test runs then
        gc.collect()
