"""The orjson Faust codec round-trips documents and is registered by name."""

from __future__ import annotations

from faust.serializers import codecs

import stream.codec  # noqa: F401 - registers the codec


def test_round_trip_by_name() -> None:
    doc = {"p": 3, "wm": 1.5, "b": [["1h", 0, [1.0, 2.0]]], "name": "Zoë"}
    raw = codecs.dumps("orjson", doc)
    assert isinstance(raw, bytes) and codecs.loads("orjson", raw) == doc
