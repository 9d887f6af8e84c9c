"""Customer profiles: the newest wins whatever the order, erasure holds, alerts carry whom to call."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import given
from hypothesis import strategies as st

from alerts.customer import CustomerState
from alerts.pipeline import KIND_HEADER, PROFILE, BatchResult, Pipeline, Record, Topics
from alerts.policy import AlertPolicy
from schemas.outputs import DeadLetter, RecoveryAlert
from tests.support.factories import profile, raw, survey

TOPICS = Topics("survey-responses", "ticket-events", "rekey", "recovery-alerts", "feedback-dlq")
NOW = datetime(2026, 11, 22, 14, 0, tzinfo=UTC)
S, P = TOPICS.survey_responses, TOPICS.customer_profiles


class Run:
    def __init__(self, owner: int = 0) -> None:
        self.pipeline = Pipeline(TOPICS, AlertPolicy(cooldown_s=0.0), lambda cid: owner)
        self.store: dict[str, CustomerState] = {}
        self.offset = 0

    def batch(self, *items: tuple[str, Any], key: bytes | None = b"c1", partition: int = 0) -> BatchResult:
        records = []
        for topic, value in items:
            self.offset += 1
            payload = raw(value) if isinstance(value, dict) else value
            records.append(
                Record(topic, partition, self.offset, key, payload, (), float(1_790_000_000 + self.offset))
            )
        result = self.pipeline.process(records, self.store.get, NOW)
        for cid, (_, state) in result.dirty.items():
            # through the stored form, as the worker's table keeps it
            self.store[cid] = CustomerState.from_doc(orjson.loads(orjson.dumps(state.to_doc())))
        return result

    def alert_profile(self, customer: str = "c1") -> dict[str, Any] | None:
        result = self.batch((S, survey(customer, nps=1)), key=customer.encode())
        (alert,) = [e.value for e in result.emits if e.topic == TOPICS.recovery_alerts]
        assert isinstance(alert, dict)
        RecoveryAlert.model_validate_json(raw(alert))
        found: dict[str, Any] | None = alert["customer"].get("profile")
        return found


def at(hours: float) -> str:
    return (datetime(2026, 11, 22, tzinfo=UTC) + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def test_an_alert_carries_the_profile_and_none_without_one() -> None:
    run = Run()
    assert run.alert_profile() is None
    run.batch(
        (
            P,
            profile(
                "c1",
                at(1),
                company="Acme",
                email="a@example.com",
                phone="+1 555 0100",
                preferred_channel="phone",
                crm_url="https://crm.example.com/c/1",
            ),
        )
    )
    assert run.alert_profile() == {
        "updated_at": at(1),
        "name": "Person c1",
        "company": "Acme",
        "email": "a@example.com",
        "phone": "+1 555 0100",
        "preferred_channel": "phone",
        "crm_url": "https://crm.example.com/c/1",
    }


def test_an_older_profile_arriving_late_is_ignored() -> None:
    run = Run()
    run.batch((P, profile("c1", at(5), name="New")))
    late = run.batch((P, profile("c1", at(2), name="Old")))
    assert late.stale_profiles == 1 and late.profiles == 0
    assert (run.alert_profile() or {})["name"] == "New"


@given(st.permutations(range(6)))
def test_the_newest_profile_wins_in_any_order(order: list[int]) -> None:
    run = Run()
    for i in order:
        run.batch((P, profile("c1", at(i), name=f"v{i}")))
    assert run.store["c1"].contact == {"name": "v5"}


def test_deleted_erases_and_an_older_record_does_not_bring_it_back() -> None:
    run = Run()
    run.batch((P, profile("c1", at(1), email="a@example.com")))
    run.batch((P, {"customer_id": "c1", "updated_at": at(3), "deleted": True}))
    run.batch((P, profile("c1", at(2), email="old@example.com")))  # synced out of order
    assert run.alert_profile() is None
    assert "example.com" not in orjson.dumps(run.store["c1"].to_doc()).decode()
    run.batch((P, profile("c1", at(4), name="Back")))  # a newer record is a new profile
    assert (run.alert_profile() or {})["name"] == "Back"


def test_a_tombstone_erases_by_its_key() -> None:
    run = Run()
    run.batch((P, profile("c1", at(1), phone="+1 555 0100")))
    erased = run.batch((P, None))  # value None: a tombstone, dated by its broker timestamp
    assert erased.profiles == 1 and run.store["c1"].contact is None
    assert run.alert_profile() is None


def test_a_tombstone_of_an_unknown_customer_changes_nothing() -> None:
    run = Run()
    result = run.batch((P, None), key=b"nobody")
    assert not result.dirty and not result.emits


def test_a_tombstone_without_a_key_and_a_bad_profile_are_dead_letters() -> None:
    run = Run()
    result = run.batch(
        (P, None), (P, profile("c1", crm_url="javascript:alert(1)")), (P, {"customer_id": "c1"}), key=None
    )
    letters = [
        DeadLetter.model_validate_json(e.value)
        for e in result.emits
        if e.topic == TOPICS.dlq and isinstance(e.value, bytes)
    ]
    assert [d.error.code for d in letters] == ["empty_payload", "invalid_value", "missing_field"]
    assert not result.dirty


def test_a_profile_on_another_partition_is_forwarded_and_a_tombstone_stays_one() -> None:
    run = Run(owner=2)
    result = run.batch((P, profile("c1")), (P, None), partition=0)
    rekeyed = [e for e in result.emits if e.topic == TOPICS.rekey]
    assert [(e.partition, dict(e.headers)[KIND_HEADER]) for e in rekeyed] == [(2, PROFILE.encode())] * 2
    assert rekeyed[1].value == b""
    # read back from the re-key topic on the right partition
    back = [
        Record("rekey", 2, 10 + i, b"c1", e.value, e.headers, 1_790_000_100.0) for i, e in enumerate(rekeyed)
    ]
    done = run.pipeline.process(back, run.store.get, NOW)
    assert done.profiles == 2 and done.dirty["c1"][1].contact is None


def test_the_crm_tier_and_value_count_unless_a_ticket_is_newer() -> None:
    run = Run()
    run.batch((P, profile("c1", at(1), tier="platinum", account_value=90_000.0)))
    state = run.store["c1"]
    assert (state.tier, state.account_value) == ("platinum", 90_000.0)
    run.batch(
        (
            "ticket-events",
            {
                "event_id": "e1",
                "ticket_id": "t1",
                "customer_id": "c1",
                "type": "created",
                "occurred_at": at(3),
                "team": "billing",
                "customer_tier": "gold",
            },
        )
    )
    run.batch((P, profile("c1", at(2), tier="standard")))
    assert run.store["c1"].tier == "gold"  # the ticket event is newer than the CRM's record
