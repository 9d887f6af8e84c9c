"""The batch pipeline: alerts, edits, duplicates, dead letters, re-keying, ordering."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any, cast

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from alerts.customer import CustomerState
from alerts.pipeline import KIND_HEADER, ORIGIN_HEADER, BatchResult, Pipeline, Record, Topics, interleave
from alerts.policy import AlertPolicy
from schemas.outputs import DeadLetter, Escalation, RecoveryAlert
from tests.support.factories import raw, survey, ticket

TOPICS = Topics("survey-responses", "ticket-events", "rekey", "recovery-alerts", "feedback-dlq")
NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)


class Run:
    """A pipeline with an in-memory store, fed one batch at a time."""

    def __init__(self, owner: int = 0, policy: AlertPolicy | None = None) -> None:
        self.pipeline = Pipeline(TOPICS, policy or AlertPolicy(), lambda cid: owner)
        self.store: dict[str, CustomerState] = {}
        self.offset = 0

    def batch(self, *items: tuple[str, Any], partition: int = 0, key: bytes | None = b"k") -> BatchResult:
        records = []
        for topic, value in items:
            self.offset += 1
            payload = raw(value) if isinstance(value, dict) else value
            records.append(Record(topic, partition, self.offset, key, payload, (), float(self.offset)))
        result = self.pipeline.process(records, self.store.get, NOW)
        for cid, (_, state) in result.dirty.items():
            self.store[cid] = state
        return result

    def alerts(self, result: BatchResult) -> list[dict[str, Any]]:
        return [e.value for e in result.emits if e.topic == TOPICS.recovery_alerts]  # type: ignore[misc]


S, T = TOPICS.survey_responses, TOPICS.ticket_events


def test_nps_six_alerts_and_seven_does_not() -> None:
    run = Run()
    alerts = run.alerts(run.batch((S, survey("c1", nps=6)), (S, survey("c2", nps=7))))
    assert [(a["customer_id"], a["kind"], a["score"]) for a in alerts] == [("c1", "detractor", 6)]
    RecoveryAlert.model_validate_json(raw(alerts[0]))


def test_ces_two_alerts_and_three_does_not() -> None:
    run = Run()
    alerts = run.alerts(run.batch((S, survey("c1", ces=2)), (S, survey("c2", ces=3))))
    assert [(a["customer_id"], a["kind"]) for a in alerts] == [("c1", "low_effort")]


def test_an_edit_never_alerts_twice_for_the_same_kind() -> None:
    run = Run()
    first = run.alerts(run.batch((S, survey("c1", "r1", nps=3))))
    again = run.batch((S, survey("c1", "r1", nps=2)), (S, survey("c1", "r1", nps=2)))
    assert len(first) == 1 and run.alerts(again) == [] and again.edits == 2
    # a new reason in the edit still alerts, once
    more = run.alerts(run.batch((S, survey("c1", "r1", nps=2, ces=1))))
    assert [a["kind"] for a in more] == ["low_effort"]
    assert run.store["c1"].answers["r1"].nps == 2


def test_alert_ids_are_deterministic() -> None:
    a = Run().alerts(Run().batch((S, survey("c1", "r9", nps=1))))
    b = Run().alerts(Run().batch((S, survey("c1", "r9", nps=1))))
    assert a[0]["alert_id"] == b[0]["alert_id"]
    assert a[0]["alert_id"] != Run().alerts(Run().batch((S, survey("c1", "r8", nps=1))))[0]["alert_id"]


def test_alert_carries_customer_context_and_ticket_attribution() -> None:
    run = Run(policy=AlertPolicy(cooldown_s=0))
    run.batch(
        (
            T,
            ticket(
                "c1",
                "t1",
                "created",
                team="Billing Ops",
                channel="chat",
                category="refund",
                customer_tier="gold",
                account_value=1234.5,
                agent_id="a7",
            ),
        ),
        (T, ticket("c1", "t2", "created", team="delivery")),
    )
    (alert,) = run.alerts(run.batch((S, survey("c1", "r1", nps=4, ticket_id="t1"))))
    assert (alert["team"], alert["agent_id"], alert["channel"], alert["category"]) == (
        "Billing Ops",
        "a7",
        "chat",
        "refund",
    )
    assert (alert["queue"], alert["rule"]) == ("billing-ops", "team-queue")
    assert alert["severity"] == "critical"  # gold tier
    assert alert["follow_up_due_at"] == "2026-11-22T18:00:00Z"
    c = alert["customer"]
    assert (c["tier"], c["account_value"], c["open_ticket_count"]) == ("gold", 1234.5, 2)
    assert c["recent_scores"][0] == {"response_id": "r1", "submitted_at": "2026-11-22T13:20:53Z", "nps": 4}
    # the response's own team wins over the ticket's
    (other,) = run.alerts(run.batch((S, survey("c1", "r2", nps=4, ticket_id="t1", team="vip"))))
    assert other["team"] == "vip"


def test_one_alert_per_customer_and_kind_per_cooldown() -> None:
    run = Run(policy=AlertPolicy(cooldown_s=3600))
    first = run.batch((S, survey("c1", "r1", nps=1, at="2026-11-22T10:00:00Z")))
    flood = run.batch(
        *[(S, survey("c1", f"f{i}", nps=0, at=f"2026-11-22T10:{i + 1:02d}:00Z")) for i in range(20)]
    )
    later = run.batch((S, survey("c1", "r9", nps=2, at="2026-11-22T11:30:00Z")))
    assert len(run.alerts(first)) == 1 and run.alerts(flood) == [] and len(run.alerts(later)) == 1
    assert flood.suppressed == {"detractor": 20}
    # other customers and other kinds are not held back
    assert len(run.alerts(run.batch((S, survey("c1", "x1", ces=1, at="2026-11-22T10:30:00Z"))))) == 1
    assert len(run.alerts(run.batch((S, survey("c2", "x2", nps=0, at="2026-11-22T10:30:00Z"))))) == 1


def test_alerts_open_follow_ups_and_edits_update_them() -> None:
    run = Run()
    result = run.batch((S, survey("c1", "r1", nps=3)))
    (opened,) = [e for e in result.emits if e.topic == TOPICS.followups]
    assert opened.value["op"] == "open" and opened.key == run.alerts(result)[0]["alert_id"].encode()  # type: ignore[index]
    edit = run.batch((S, survey("c1", "r1", nps=8)))
    (update,) = [e.value for e in edit.emits if e.topic == TOPICS.followups]
    assert update == {  # the edit's event time and broker timestamp identify the change
        "op": "update",
        "alert_id": opened.key.decode(),  # type: ignore[union-attr]
        "score": None,
        "at": datetime(2026, 11, 22, 13, 20, 53, tzinfo=UTC).timestamp(),
        "ts": 2.0,
    }


def test_escalations_for_escalated_tickets_and_key_accounts() -> None:
    run = Run()
    result = run.batch(
        (T, ticket("c1", "t1", "created", team="billing", customer_tier="platinum", category="refund")),
        (T, ticket("c1", "t1", "escalated", event_id="esc-1", reason="legal threat")),
        (S, survey("c1", "r1", nps=2, ticket_id="t1")),
    )
    escalations = [e.value for e in result.emits if e.topic.startswith("escalations.")]
    assert [(x["source"], x["queue"], x["rule"]) for x in escalations] == [  # type: ignore[index]
        ("ticket_escalated", "billing", "team-queue"),
        ("high_value_alert", "billing", "team-queue"),
    ]
    assert escalations[0]["reason"] == "legal threat" and escalations[0]["ticket"]["escalated"]  # type: ignore[index]
    assert escalations[1]["alert_id"] == run.alerts(result)[0]["alert_id"]  # type: ignore[index]
    for x in escalations:
        Escalation.model_validate_json(raw(x))  # type: ignore[arg-type]
    again = run.batch((T, ticket("c1", "t1", "escalated", event_id="esc-1", reason="legal threat")))
    assert again.emits == []  # a duplicate delivery escalates nothing


def test_a_duplicate_ticket_event_changes_nothing() -> None:
    run = Run()
    run.batch((T, ticket("c1", "t1", "created")))
    reopen = ticket("c1", "t1", "reopened", event_id="dup-1", at="2026-11-22T13:10:00Z")
    run.batch((T, reopen))
    before = run.store["c1"].to_doc()
    result = run.batch((T, reopen))
    assert result.duplicates == 1 and result.dirty == {}
    assert run.store["c1"].to_doc() == before
    assert run.store["c1"].tickets["t1"].reopened == 1


def test_bad_records_become_dead_letters_and_the_batch_goes_on() -> None:
    run = Run()
    result = run.batch(
        (S, b"{not json"), (S, b"\xff\xfe"), (S, survey("c1", nps=11)), (S, survey("c2", nps=0))
    )
    dead = [e for e in result.emits if e.topic == TOPICS.dlq]
    letters = [DeadLetter.model_validate_json(cast(bytes, d.value)) for d in dead]
    assert [d.error.code for d in letters] == ["invalid_json", "invalid_utf8", "out_of_range"]
    assert all(dict(d.headers)["schema-version"] == b"1" for d in dead)
    assert [a["customer_id"] for a in run.alerts(result)] == ["c2"]
    assert letters[0].payload == "{not json" and letters[0].payload_encoding == "utf-8"
    assert letters[1].payload_encoding == "base64" and base64.b64decode(letters[1].payload) == b"\xff\xfe"
    assert letters[2].error.field == "scores.nps" and letters[2].source_topic == S
    assert result.invalid[(S, "out_of_range")] == 1


def test_records_on_the_wrong_partition_are_forwarded_then_processed() -> None:
    run = Run(owner=1)
    forwarded = run.batch((S, survey("c1", "r1", nps=2)), partition=0, key=None)
    (emit,) = forwarded.emits  # only the forward: nothing else happens on the wrong partition
    assert (emit.topic, emit.partition, emit.key) == ("rekey", 1, b"c1") and forwarded.dirty == {}
    headers = dict(emit.headers)
    assert headers[KIND_HEADER] == b"survey_response"
    rec = Record("rekey", 1, 0, emit.key, emit.value, emit.headers, 1.0)  # type: ignore[arg-type]
    result = run.pipeline.process([rec], run.store.get, NOW)
    assert [e.value["kind"] for e in result.emits if e.topic == TOPICS.recovery_alerts] == [  # type: ignore[index]
        "detractor"
    ]
    # a re-keyed record that turns out bad points at where it really came from
    bad = Record(
        "rekey",
        1,
        5,
        b"c1",
        b"{}",
        [(KIND_HEADER, b"survey_response"), (ORIGIN_HEADER, b"survey-responses/3/77")],
    )
    (dlq,) = run.pipeline.process([bad], run.store.get, NOW).emits
    letter = orjson.loads(cast(bytes, dlq.value))
    assert (letter["source_topic"], letter["partition"], letter["offset"]) == (
        "survey-responses",
        3,
        77,
    )


@pytest.mark.parametrize(
    "survey_sent",
    [20.0, 10.0],  # after its ticket; in the same millisecond (Kafka's timestamps are whole ms)
    ids=["later", "same-millisecond"],
)
def test_interleave_orders_a_batch_by_time_across_topics(survey_sent: float) -> None:
    run = Run()
    # the survey was fetched first, but its ticket happened first: earlier, or at the same time
    # (then ticket events go first)
    records = [
        Record(S, 0, 1, b"c1", raw(survey("c1", "r1", nps=1, ticket_id="t1")), (), survey_sent),
        Record(T, 0, 1, b"c1", raw(ticket("c1", "t1", "created", team="returns")), (), 10.0),
    ]
    (alert,) = run.alerts(run.pipeline.process(records, run.store.get, NOW))
    assert alert["team"] == "returns"


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 2), st.integers(0, 5)), max_size=40),
    st.sampled_from(["a", "b", None]),
)
def test_interleave_orders_by_time_then_the_first_topic(
    spec: list[tuple[str, int, int]], first: str | None
) -> None:
    # runs in time order, as one producer's timestamps are; many equal (whole milliseconds)
    spec = sorted(spec, key=lambda s: s[2])
    records = [Record(t, p, i, None, None, (), float(ts)) for i, (t, p, ts) in enumerate(spec)]
    merged = interleave(records, first)
    assert sorted(r.offset for r in merged) == list(range(len(records)))
    keys = [(r.timestamp, r.topic != first) for r in merged]
    assert keys == sorted(keys)


@given(
    st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 2), st.floats(0, 100)), max_size=40)
)
def test_interleave_keeps_each_partitions_order(spec: list[tuple[str, int, float]]) -> None:
    records = [Record(t, p, i, None, None, (), ts) for i, (t, p, ts) in enumerate(spec)]
    merged = interleave(records)
    assert sorted(r.offset for r in merged) == list(range(len(records)))
    for tp in {(r.topic, r.partition) for r in records}:
        mine = [r.offset for r in merged if (r.topic, r.partition) == tp]
        assert mine == sorted(mine)


def test_a_survey_waits_for_the_ticket_it_names() -> None:
    run = Run()
    run.pipeline.ticket_wait_s = 5.0
    early = run.batch((S, survey("c1", "r1", nps=2, ticket_id="t1")))
    assert early.held == 1 and run.alerts(early) == []
    edit = run.batch((S, survey("c1", "r1", nps=1, ticket_id="t1")))  # an edit of a held survey replaces it
    assert edit.held == 0 and len(run.store["c1"].held) == 1
    later = run.batch((T, ticket("c1", "t1", "created", team="returns", category="return")))
    (alert,) = run.alerts(later)
    assert (alert["team"], alert["category"], alert["score"]) == ("returns", "return", 1)
    assert run.store["c1"].held == []


def release(run: Run, customer_id: str, at: datetime, partition: int = 0) -> BatchResult:
    """Feed the release request the held-survey timer sends, stamped ``at``."""
    request = run.pipeline.release_request(customer_id, partition)
    run.offset += 1
    record = Record(
        request.topic, partition, run.offset, request.key, request.value, request.headers, at.timestamp()
    )
    result = run.pipeline.process([record], run.store.get, at)
    for cid, (_, state) in result.dirty.items():
        run.store[cid] = state
    return result


def test_a_survey_whose_ticket_never_comes_is_released_by_a_request_after_the_wait() -> None:
    run = Run()
    run.pipeline.ticket_wait_s = 5.0
    run.batch((S, survey("c1", "r1", nps=2, ticket_id="t-missing")))
    held_at = run.store["c1"].held[0][1]
    early = release(run, "c1", datetime.fromtimestamp(held_at + 4, UTC))
    assert run.alerts(early) == [] and len(run.store["c1"].held) == 1  # not yet: it stays held
    result = release(run, "c1", datetime.fromtimestamp(held_at + 6, UTC))
    assert [a["kind"] for a in run.alerts(result)] == ["detractor"]
    assert run.store["c1"].held == []
    assert run.alerts(release(run, "c1", datetime.fromtimestamp(held_at + 7, UTC))) == []  # nothing left


def test_a_release_request_without_a_customer_is_a_dead_letter() -> None:
    run = Run()
    run.offset += 1
    bad = Record(TOPICS.rekey, 0, run.offset, b"k", b"{}", [(KIND_HEADER, b"release_held")], 1.0)
    result = run.pipeline.process([bad], run.store.get, NOW)
    assert result.invalid == {(TOPICS.rekey, "missing_field"): 1}
    assert [e.topic for e in result.emits] == [TOPICS.dlq]
