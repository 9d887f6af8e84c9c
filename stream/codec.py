"""The ``orjson`` Faust codec: JSON at orjson speed, for topics that carry plain documents.

Registered on import under the name ``orjson``; use ``value_serializer="orjson"``.
The batch agents skip codecs (they read raw bytes and decode whole batches); the
per-message Faust agents use this one.
"""

from __future__ import annotations

from typing import Any

import orjson
from faust.serializers import codecs


class OrjsonCodec(codecs.Codec):
    """``dumps``/``loads`` with orjson; refuses what JSON cannot carry instead of guessing."""

    def _dumps(self, obj: Any) -> bytes:
        return orjson.dumps(obj)

    def _loads(self, s: bytes) -> Any:
        return orjson.loads(s)


codecs.register("orjson", OrjsonCodec())
