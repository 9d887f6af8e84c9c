"""Raw bytes -> a validated model, or a ``Rejection`` with a stable code.

Stable error codes (part of the dead-letter contract; never renamed):

=================  =====================================================
``empty_payload``  no value at all (a tombstone or an empty message)
``invalid_utf8``   the bytes are not UTF-8
``invalid_json``   UTF-8, but not JSON
``not_an_object``  JSON, but not an object
``missing_field``  a required field is absent (or null)
``invalid_type``   a field has the wrong JSON type (``"7"`` for an int)
``out_of_range``   a number or a length is outside its allowed range
``invalid_value``  a value is not one of the allowed choices
``invalid_timestamp``  not RFC 3339 with an offset
=================  =====================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)

_RANGE = {
    "greater_than",
    "greater_than_equal",
    "less_than",
    "less_than_equal",
    "string_too_short",
    "string_too_long",
    "too_short",
    "too_long",
}
_VALUE = {"literal_error", "enum", "finite_number", "value_error", "assertion_error"}


# Every code a dead letter of an input can carry (the table above, and ``unknown_source`` for a
# re-keyed record of a kind the service does not know).
CODES = (
    "empty_payload",
    "invalid_utf8",
    "invalid_json",
    "not_an_object",
    "missing_field",
    "invalid_type",
    "out_of_range",
    "invalid_value",
    "invalid_timestamp",
    "unknown_source",
)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a message was refused: a stable ``code``, a human ``message`` and the field."""

    code: str
    message: str
    field: str | None = None


def decode_json(raw: bytes | None) -> dict[str, Any] | Rejection:
    """Decode a message value into a JSON object, or say why it is not one."""
    if not raw:
        return Rejection("empty_payload", "message has no value")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as uexc:
            return Rejection("invalid_utf8", f"payload is not UTF-8: {uexc.reason} at byte {uexc.start}")
        return Rejection("invalid_json", f"payload is not JSON: {exc}")
    if not isinstance(doc, dict):
        return Rejection("not_an_object", f"payload is JSON {type(doc).__name__}, not an object")
    return doc


def _code(error_type: str) -> str:
    if error_type == "missing":
        return "missing_field"
    if error_type == "invalid_timestamp":
        return "invalid_timestamp"
    if error_type in _RANGE:
        return "out_of_range"
    if error_type in _VALUE:
        return "invalid_value"
    if error_type.endswith("_type") or error_type.endswith("_parsing"):
        return "invalid_type"
    return "invalid_value"


def rejection_from(exc: ValidationError) -> Rejection:
    """Turn the first pydantic error into a Rejection naming the field at fault."""
    errors = exc.errors(include_url=False)
    first = errors[0]
    loc = [str(part) for part in first["loc"]]
    ctx = first.get("ctx") or {}
    if "field" in ctx:
        loc.append(str(ctx["field"]))
    field = ".".join(loc) or None
    where = f"field '{field}'" if field else "message"
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    shown = first.get("input")
    got = ""
    # Echo short offending values (never free text such as a comment) to help the producer.
    if isinstance(shown, (int, float, bool)) or (
        isinstance(shown, str)
        and len(shown) <= 32
        and (first["type"] == "literal_error" or first["type"].endswith("_type"))
    ):
        got = f", got {shown!r}"
    return Rejection(_code(first["type"]), f"{where}: {first['msg']}{got}{more}", field)


def validate_doc(model: type[M], doc: dict[str, Any]) -> M | Rejection:
    """Validate a decoded JSON object against ``model``."""
    try:
        return model.model_validate(doc)
    except ValidationError as exc:
        return rejection_from(exc)


def parse(model: type[M], raw: bytes | None) -> M | Rejection:
    """Decode and validate one message value."""
    doc = decode_json(raw)
    if isinstance(doc, Rejection):
        return doc
    return validate_doc(model, doc)
