"""The generator: realistic, deterministic, and its irregular traffic is what it claims."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import orjson
import pytest

from alerts.policy import AlertPolicy
from schemas.inputs import SurveyResponse, TicketEvent
from schemas.validate import Rejection, parse
from stream.tools.generate import MALFORMED_KINDS, Generator, Mix


def test_the_same_seed_gives_the_same_stream() -> None:
    start = datetime(2026, 11, 22, 9, tzinfo=UTC)
    a = [m.value for m in Generator(seed=7, start=start).messages(300)]
    b = [m.value for m in Generator(seed=7, start=start).messages(300)]
    c = [m.value for m in Generator(seed=8, start=start).messages(300)]
    assert a == b and a != c


def test_a_realistic_mix_of_valid_messages() -> None:
    msgs = list(Generator(seed=3, customers=200).messages(20_000))
    surveys = [parse(SurveyResponse, m.value) for m in msgs if m.stream == "survey" and m.note != "edit"]
    tickets = [parse(TicketEvent, m.value) for m in msgs if m.stream == "ticket"]
    assert not any(isinstance(x, Rejection) for x in surveys + tickets)
    nps = [s.scores.nps for s in surveys if isinstance(s, SurveyResponse) and s.scores.nps is not None]
    detractors = sum(n <= 6 for n in nps) / len(nps)
    assert 0.15 <= detractors <= 0.27
    ces = [s.scores.ces for s in surveys if isinstance(s, SurveyResponse) and s.scores.ces is not None]
    assert 0.05 <= sum(c <= 2 for c in ces) / len(ces) <= 0.2
    kinds = Counter(
        AlertPolicy().classify(s.scores)[0].kind
        for s in surveys
        if isinstance(s, SurveyResponse) and AlertPolicy().classify(s.scores)
    )
    assert kinds["detractor"] > kinds["low_effort"] > 0
    teams = {t.team for t in tickets if isinstance(t, TicketEvent) and t.team}
    channels = {t.channel for t in tickets if isinstance(t, TicketEvent) and t.channel}
    tiers = {t.customer_tier for t in tickets if isinstance(t, TicketEvent) and t.customer_tier}
    assert len(teams) >= 5 and len(channels) >= 5 and len(tiers) == 4
    notes = Counter(m.note for m in msgs)
    assert notes["edit"] > 100 and notes["duplicate"] > 100


def test_messages_are_keyed_by_customer() -> None:
    for m in Generator(seed=1).messages(500):
        assert m.key == orjson.loads(m.value)["customer_id"].encode()


@pytest.mark.parametrize("kind", MALFORMED_KINDS)
def test_every_malformed_kind_is_rejected(kind: str) -> None:
    msg = Generator(seed=1).malformed(kind)
    assert isinstance(parse(SurveyResponse, msg.value), Rejection)


def test_malformed_rate_is_honoured() -> None:
    msgs = list(Generator(seed=2, mix=Mix(malformed_rate=0.1)).messages(5000))
    share = sum(m.note.startswith("malformed") for m in msgs) / len(msgs)
    assert 0.07 <= share <= 0.13


def test_profiles_come_with_missing_erased_and_stale_ones_and_leave_the_rest_unchanged() -> None:
    from schemas.inputs import CustomerProfile

    start = datetime(2026, 11, 22, 9, tzinfo=UTC)
    plain = [m.value for m in Generator(seed=5, customers=150, start=start).messages(8_000)]
    mixed = list(Generator(seed=5, customers=150, start=start, profiles=True).messages(10_000))
    others = [m.value for m in mixed if m.stream != "profile"]
    assert others[: len(plain)] == plain  # profiles have their own random stream
    profiles = [m for m in mixed if m.stream == "profile"]
    notes = Counter(m.note for m in profiles)
    assert notes[""] > 100 and notes["stale"] > 0 and notes["deleted"] > 1
    tombstones = [m for m in profiles if m.value is None]
    assert tombstones and all(m.key for m in tombstones)
    parsed = [parse(CustomerProfile, m.value) for m in profiles if m.value is not None]
    assert not [p for p in parsed if isinstance(p, Rejection)]
    customers = {orjson.loads(m.value)["customer_id"] for m in mixed if m.stream == "ticket"}
    with_profile = {p.customer_id for p in parsed if isinstance(p, CustomerProfile)}
    assert 0.7 < len(with_profile) / len(customers) < 0.95  # some are not in the CRM
    for m in profiles:  # a stale record is older than the one sent just before it
        if m.note == "stale":
            i = mixed.index(m)
            before = orjson.loads(mixed[i - 1].value or b"{}")
            assert orjson.loads(m.value or b"{}")["updated_at"] < before["updated_at"]
