"""The hot path's decoders: ``msgspec`` structs that mirror the survey and ticket models.

``schemas.inputs`` (pydantic) stays the contract: the published JSON Schemas, and the
source of every rejection's code and message. The worker decodes each survey response
and ticket event with these structs instead (one C call from bytes to a validated
object: ~1.5 µs against ~4.5 µs for ``orjson.loads`` + ``model_validate``). A record they
refuse goes through pydantic, whose verdict stands: its rejection becomes the dead letter,
and should it accept what they refused (an edge they do not mirror), its model becomes the
struct. So the structs may refuse more than pydantic, never less, and what both accept
must come out equal: a differential property test (``tests/unit/schemas/test_fast.py``)
holds them to that on generated, mutated and hostile documents.

Timestamps are checked and parsed by ``schemas.common.parse_timestamp`` itself, the
function pydantic's models use, so that both agree by construction (``msgspec``'s own
datetime parser rounds nanoseconds and takes ``+0100`` offsets, which the contract refuses).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any

import msgspec
from pydantic import BaseModel

from schemas.common import RFC3339, parse_timestamp
from schemas.inputs import Channel, Priority, Scores, SurveyResponse, TicketEvent, TicketEventType, Ves

_Id = Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
_Name = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
_NonNegative = Annotated[float, msgspec.Meta(ge=0)]
# checked in C while decoding; ``_time`` then parses (or hands the rare shapes to the contract's parser)
_Stamp = Annotated[str, msgspec.Meta(pattern=RFC3339.pattern)]


class FastVes(msgspec.Struct, gc=False):
    achieve: Annotated[int, msgspec.Meta(ge=1, le=7)]
    confidence: Annotated[int, msgspec.Meta(ge=1, le=7)]


class FastScores(msgspec.Struct, gc=False, omit_defaults=True):
    nps: Annotated[int, msgspec.Meta(ge=0, le=10)] | None = None
    csat: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None
    ces: Annotated[int, msgspec.Meta(ge=1, le=7)] | None = None
    stars: Annotated[int, msgspec.Meta(ge=1, le=5)] | None = None
    ves: FastVes | None = None
    goal_completed: bool | None = None

    def __post_init__(self) -> None:
        if (
            self.nps is None
            and self.csat is None
            and self.ces is None
            and self.stars is None
            and self.ves is None
            and self.goal_completed is None
        ):
            raise ValueError("scores must contain at least one known score")


class FastSurvey(msgspec.Struct, gc=False, omit_defaults=True):
    """A survey response as the worker holds it (fields and meaning: ``SurveyResponse``)."""

    response_id: _Id
    customer_id: _Id
    if TYPE_CHECKING:
        submitted_at: datetime
    else:  # decoded as checked text, then parsed as the contract parses it (module docstring)
        submitted_at: _Stamp
    scores: FastScores
    comment: Annotated[str, msgspec.Meta(max_length=10_000)] | None = None
    ticket_id: _Id | None = None
    team: _Name | None = None
    agent_id: _Name | None = None
    channel: _Name | None = None
    touchpoint: _Name | None = None
    locale: Annotated[str, msgspec.Meta(max_length=64)] | None = None

    def __post_init__(self) -> None:
        self.submitted_at = _time(self.submitted_at)


class FastTicket(msgspec.Struct, gc=False):
    """A ticket event as the worker holds it (fields and meaning: ``TicketEvent``)."""

    event_id: _Id
    ticket_id: _Id
    customer_id: _Id
    type: TicketEventType
    if TYPE_CHECKING:
        occurred_at: datetime
    else:
        occurred_at: _Stamp
    team: _Name | None = None
    agent_id: _Name | None = None
    channel: Channel | None = None
    priority: Priority | None = None
    category: _Name | None = None
    customer_tier: _Name | None = None
    account_value: _NonNegative | None = None
    reason: Annotated[str, msgspec.Meta(max_length=2_000)] | None = None
    talk_seconds: _NonNegative | None = None
    hold_seconds: _NonNegative | None = None
    wrap_seconds: _NonNegative | None = None
    queue_seconds: _NonNegative | None = None

    def __post_init__(self) -> None:
        self.occurred_at = _time(self.occurred_at)
        if self.type == "created" and self.team is None:
            raise ValueError("team is required on a 'created' ticket event")


def _time(value: Any) -> datetime:
    """The datetime of a timestamp the decoder matched against ``RFC3339``, as ``parse_timestamp`` gives it.

    The common shapes (``Z``, at most microseconds) are what ``parse_timestamp`` hands to
    ``datetime.fromisoformat`` unchanged once its pattern matched, so they go there at
    once; the rest (offsets, nanoseconds, ``z``) take the contract's parser itself.
    """
    if type(value) is str:
        if value[-1] == "Z" and len(value) <= 27:  # YYYY-MM-DDTHH:MM:SS[.ffffff]Z
            return _fromisoformat(value)  # an invalid date raises ValueError, as parse_timestamp does
        return parse_timestamp(value)  # its errors are ValueErrors: msgspec makes them ValidationErrors
    if isinstance(value, datetime):  # built from a pydantic model (``from_model``)
        return value
    return parse_timestamp(value)


_fromisoformat = datetime.fromisoformat


_SURVEY = msgspec.json.Decoder(FastSurvey)
_TICKET = msgspec.json.Decoder(FastTicket)
_ENCODER = msgspec.json.Encoder()
# msgspec raises RecursionError on deeply nested values (even in a field it skips): refused too,
# so pydantic and orjson decide such a record (a dead letter past orjson's depth), never a crash
_REFUSED = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


def decode_survey(raw: bytes) -> FastSurvey | None:
    """The survey in ``raw``; None when the struct refuses it (ask pydantic why, or whether)."""
    try:
        return _SURVEY.decode(raw)
    except _REFUSED:
        return None


def decode_ticket(raw: bytes) -> FastTicket | None:
    """The ticket event in ``raw``; None when the struct refuses it."""
    try:
        return _TICKET.decode(raw)
    except _REFUSED:
        return None


def _fields(model: BaseModel, names: tuple[str, ...]) -> dict[str, Any]:
    return {name: getattr(model, name) for name in names}


def from_model(model: SurveyResponse | TicketEvent) -> FastSurvey | FastTicket:
    """The struct of a document pydantic accepted (the rare path: the struct refused it)."""
    if isinstance(model, TicketEvent):
        return FastTicket(**_fields(model, FastTicket.__struct_fields__))
    return survey_from(model)


def survey_from(model: SurveyResponse) -> FastSurvey:
    fields = _fields(model, FastSurvey.__struct_fields__)
    fields["scores"] = scores_from(model.scores)
    return FastSurvey(**fields)


def scores_from(scores: Scores) -> FastScores:
    fields = _fields(scores, FastScores.__struct_fields__)
    ves: Ves | None = scores.ves
    fields["ves"] = FastVes(ves.achieve, ves.confidence) if ves is not None else None
    return FastScores(**fields)


def held_text(survey: FastSurvey) -> str:
    """The survey as the JSON a held copy keeps: the contract's fields, none that is unset."""
    return _ENCODER.encode(survey).decode()
