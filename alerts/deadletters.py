"""Dead letters that always fit, and the checks that send an output there instead of to Kafka.

A dead letter quotes the record it is about. Quoted, a record grows (JSON escapes,
base64 for bytes that are not UTF-8), so the dead letter of a record near the
broker's limit would itself be refused, and a worker that cannot produce it can
never move past that offset. ``fit`` truncates the quote until the whole record
fits, and says so: ``payload_truncated``, the original ``payload_size`` and its
``payload_sha256``.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import orjson

from schemas.common import SCHEMA_VERSION, format_timestamp
from schemas.validate import Rejection

ORIGIN_HEADER = "survey-alerts-origin"

# Kafka's own limits on a topic name (kafka.common.internals.Topic).
MAX_TOPIC_LENGTH = 249
_LEGAL_TOPIC = re.compile(r"^[a-zA-Z0-9._-]+$")

# What a record costs on the wire besides its key, value and headers: the record batch's
# header (61 bytes) and the record's own varints and attributes, rounded up generously.
RECORD_OVERHEAD = 512
MAX_KEY_BYTES = 1024  # a dead letter quotes at most this much of a record's key
MAX_MESSAGE_CHARS = 2000  # ... and of an error message

OUTPUT_TOO_LARGE = "output_too_large"
INVALID_DESTINATION = "invalid_destination"


def topic_problem(name: str) -> str | None:
    """Why Kafka would refuse ``name`` as a topic, or None when it is a legal name."""
    if not name:
        return "the topic name is empty"
    if name in (".", ".."):
        return f"the topic name {name!r} is reserved"
    if len(name) > MAX_TOPIC_LENGTH:
        return f"the topic name has {len(name)} characters; Kafka allows {MAX_TOPIC_LENGTH}"
    if not _LEGAL_TOPIC.match(name):
        return "the topic name may only hold ASCII letters, digits, '.', '_' and '-'"
    return None


def record_size(key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes]] = ()) -> int:
    """An upper bound of the bytes one record takes in a record batch of its own."""
    size = RECORD_OVERHEAD + len(key or b"") + len(value or b"")
    for name, data in headers:
        size += len(name) + len(data) + 10
    return size


def _quote(raw: bytes) -> tuple[str, str]:
    """``raw`` as text when it is UTF-8, else as base64; and which of the two it is."""
    try:
        return raw.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        return base64.b64encode(raw).decode("ascii"), "base64"


def _prefix(raw: bytes, n: int, encoding: str) -> str:
    """The first ``n`` bytes of ``raw``, quoted as ``encoding`` (a cut UTF-8 character is dropped)."""
    if encoding == "utf-8":
        return raw[:n].decode("utf-8", errors="ignore")
    return base64.b64encode(raw[:n]).decode("ascii")


def dead_letter_key(key: bytes | None) -> bytes | None:
    """The Kafka key of a dead letter: the record's key, or its SHA-256 when that is too long."""
    if key is None or len(key) <= MAX_KEY_BYTES:
        return key
    return hashlib.sha256(key).hexdigest().encode()


def fit(doc: dict[str, Any], raw: bytes, limit: int, key: bytes | None = None) -> bytes:
    """Encode the dead letter ``doc`` quoting ``raw``, truncating the quote so the record fits.

    ``limit`` is the most bytes a produced record may take (``record_size``); the
    result, produced with Kafka key ``key``, stays within it. Deterministic: the
    same record always gives the same bytes.
    """
    budget = limit - record_size(key, b"", [("schema-version", b"1")])
    payload, encoding = _quote(raw)
    doc["payload"], doc["payload_encoding"] = payload, encoding
    encoded = orjson.dumps(doc)
    if len(encoded) <= budget:
        return encoded
    doc["payload_truncated"] = True
    doc["payload_size"] = len(raw)
    doc["payload_sha256"] = hashlib.sha256(raw).hexdigest()
    doc["payload"] = ""
    room = budget - len(orjson.dumps(doc))
    if room <= 0:
        raise ValueError(f"a dead letter needs more than {limit} bytes even without its payload")
    # JSON escaping (up to 6 bytes for 1) and base64 (4 for 3) grow a quote: shrink the
    # prefix until its quote fits; each step scales by what the last one measured.
    n = min(len(raw), room if encoding == "utf-8" else room * 3 // 4)
    while True:
        doc["payload"] = _prefix(raw, n, encoding)
        encoded = orjson.dumps(doc)
        if len(encoded) <= budget:
            return encoded
        quoted = len(encoded) - (budget - room)  # what the quote took
        n = max(0, min(n - 1, n * room // max(quoted, 1)))


def _key_fields(doc: dict[str, Any], key: bytes | None) -> None:
    if key is None:
        return
    text, encoding = _quote(key)
    if len(key) > MAX_KEY_BYTES:
        text = _prefix(key, MAX_KEY_BYTES, encoding)
        doc["key_truncated"] = True
    doc["key"], doc["key_encoding"] = text, encoding


def _bounded(text: str) -> str:
    return text if len(text) <= MAX_MESSAGE_CHARS else text[: MAX_MESSAGE_CHARS - 1] + "…"


def source_of(
    topic: str, partition: int, offset: int, headers: Sequence[tuple[str, bytes]] = ()
) -> tuple[str, int, int]:
    """Where a record really came from: a re-keyed record names its first topic and offset."""
    origin = dict(headers).get(ORIGIN_HEADER)
    if origin and len(origin) <= MAX_TOPIC_LENGTH + 48:
        try:
            t, p, o = origin.decode().rsplit("/", 2)
            if topic_problem(t) is None:
                return t, int(p), int(o)
        except ValueError:
            pass
    return topic, partition, offset  # none, or not one the service wrote: the record's own place


def dead_letter(
    source: tuple[str, int, int],
    key: bytes | None,
    value: bytes | None,
    err: Rejection,
    now: datetime,
    limit: int,
    **extra: Any,
) -> bytes:
    """The encoded dead letter of ``value`` (contract: ``feedback-dlq``), at most ``limit`` bytes.

    ``source`` is the input record's (topic, partition, offset); ``extra`` fields
    are added (an output's dead letter names its ``destination_topic``).
    """
    topic, partition, offset = source
    doc: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "source_topic": topic,
        "partition": partition,
        "offset": offset,
        "key": None,
        "payload": "",
        "payload_encoding": "utf-8",
        "error": {
            "code": err.code,
            "message": _bounded(err.message),
            "field": _bounded(err.field) if err.field is not None else None,
        },
        "received_at": format_timestamp(now),
        **extra,
    }
    _key_fields(doc, key)
    return fit(doc, value or b"", limit, dead_letter_key(key))
