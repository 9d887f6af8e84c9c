"""Dead letters always fit under the limit, quote as much as fits, and say what they cut."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.deadletters import (
    MAX_KEY_BYTES,
    MAX_TOPIC_LENGTH,
    dead_letter,
    dead_letter_key,
    record_size,
    source_of,
    topic_problem,
)
from alerts.routing import MAX_QUEUE_LENGTH, queue_token
from schemas.outputs import DeadLetter
from schemas.validate import Rejection

NOW = datetime(2026, 11, 22, 14, tzinfo=UTC)
WHY = Rejection("invalid_json", "payload is not JSON: unexpected character", "payload")
HEADERS = [("schema-version", b"1")]
BROKER_LIMIT = 1_000_000


def letter_of(value: bytes, key: bytes | None, limit: int) -> tuple[bytes, DeadLetter]:
    encoded = dead_letter(("survey-responses", 3, 77), key, value, WHY, NOW, limit)
    return encoded, DeadLetter.model_validate_json(encoded)


def quoted(letter: DeadLetter) -> bytes:
    """The bytes a dead letter quotes."""
    if letter.payload_encoding == "base64":
        return base64.b64decode(letter.payload)
    return letter.payload.encode()


def check(value: bytes, key: bytes | None, limit: int) -> DeadLetter:
    encoded, letter = letter_of(value, key, limit)
    assert record_size(dead_letter_key(key), encoded, HEADERS) <= limit
    assert (letter.source_topic, letter.partition, letter.offset) == ("survey-responses", 3, 77)
    if letter.payload_truncated:
        assert letter.payload_size == len(value)
        assert letter.payload_sha256 == hashlib.sha256(value).hexdigest()
        assert value.startswith(quoted(letter))
        assert len(encoded) >= limit // 2, "a truncated quote should still use most of the room"
    else:
        assert quoted(letter) == value and letter.payload_size is None
    return letter


@settings(max_examples=150, deadline=None)
@given(
    value=st.one_of(
        st.binary(max_size=200_000),
        st.text(max_size=50_000).map(str.encode),
        st.text(alphabet=st.sampled_from('\x00\x1f"\\é😀a'), max_size=60_000).map(str.encode),
    ),
    key=st.one_of(st.none(), st.binary(max_size=4 * MAX_KEY_BYTES)),
    limit=st.integers(min_value=65_536, max_value=300_000),
)
def test_a_dead_letter_always_fits_and_quotes_a_prefix(value: bytes, key: bytes | None, limit: int) -> None:
    check(value, key, limit)


@pytest.mark.parametrize(
    "value",
    [
        bytes(range(256)) * 3700,  # ~950 KB of binary: base64 grows it by a third
        b'"\\\x01' * 316_000,  # ~950 KB of text whose JSON escapes grow it up to six times
        "é😀".encode() * 173_000,  # multi-byte characters: the cut never splits one
        b"x" * 1_040_000,  # as large as the broker takes
    ],
    ids=["binary", "escapes", "multibyte", "plain"],
)
def test_a_payload_near_the_broker_limit_gets_a_dead_letter_that_fits(value: bytes) -> None:
    letter = check(value, b"cust-1", BROKER_LIMIT)
    assert letter.payload_truncated


def test_a_small_payload_is_quoted_whole_and_the_same_input_gives_the_same_bytes() -> None:
    first, letter = letter_of(b'{"nps": ', b"k", BROKER_LIMIT)
    assert letter.payload == '{"nps": ' and not letter.payload_truncated
    assert dead_letter(("survey-responses", 3, 77), b"k", b'{"nps": ', WHY, NOW, BROKER_LIMIT) == first


def test_a_long_key_is_cut_in_the_letter_and_hashed_as_the_record_key() -> None:
    key = b"k" * (MAX_KEY_BYTES * 3)
    _, letter = letter_of(b"{}", key, BROKER_LIMIT)
    assert letter.key == "k" * MAX_KEY_BYTES and letter.key_truncated
    assert dead_letter_key(key) == hashlib.sha256(key).hexdigest().encode()
    assert dead_letter_key(b"short") == b"short"


def test_a_forged_origin_header_does_not_become_the_source() -> None:
    assert source_of("rekey", 1, 5, [("survey-alerts-origin", b"survey-responses/3/77")]) == (
        "survey-responses",
        3,
        77,
    )
    for forged in (b"x" * 10_000 + b"/1/2", b"bad topic!/1/2", b"no-numbers"):
        assert source_of("rekey", 1, 5, [("survey-alerts-origin", forged)]) == ("rekey", 1, 5)


def kafka_allows(name: str) -> bool:
    """Kafka's own rule for topic names, written out (kafka.common.internals.Topic.validate)."""
    legal = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
    return 0 < len(name) <= 249 and name not in (".", "..") and all(c in legal for c in name)


@given(st.text(max_size=300) | st.text(alphabet="ab.-_ /é", max_size=260))
def test_topic_problem_agrees_with_kafkas_rule(name: str) -> None:
    assert (topic_problem(name) is None) == kafka_allows(name)


@settings(max_examples=300)
@given(st.text(max_size=600))
def test_queue_names_are_legal_bounded_and_deterministic(team: str) -> None:
    queue = queue_token(team)
    assert re.fullmatch(r"[a-z0-9._-]{1,200}", queue), queue
    assert queue[0] not in "-." and queue[-1] not in "-."
    assert queue_token(team) == queue and queue_token(queue) == queue  # a queue name maps to itself
    assert kafka_allows("escalations." + queue)
    assert kafka_allows("x" * (MAX_TOPIC_LENGTH - MAX_QUEUE_LENGTH) + queue)


def test_long_teams_that_share_a_beginning_get_different_queues() -> None:
    a, b = "Customer Success " * 20 + "EMEA", "Customer Success " * 20 + "APAC"
    assert queue_token(a) != queue_token(b)
    assert len(queue_token(a)) == MAX_QUEUE_LENGTH
    assert queue_token("Billing & Refunds") == "billing-refunds"
    assert queue_token("...") == "unknown"


def test_the_dead_letter_document_is_valid_json_with_its_code() -> None:
    encoded, _ = letter_of(b"\xff" * 10, None, BROKER_LIMIT)
    doc = orjson.loads(encoded)
    assert doc["error"]["code"] == "invalid_json" and doc["payload_encoding"] == "base64"
