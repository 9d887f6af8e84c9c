"""Local broker helpers that need no broker."""

from __future__ import annotations

import base64
import uuid

from hypothesis import assume, given
from hypothesis import strategies as st

from stream.tools.brokers import cluster_id


def test_a_cluster_id_never_starts_with_a_dash() -> None:
    # 0xF8: the first six bits are 62, "-" in URL-safe base64; the storage tool took it for an option
    dash = uuid.UUID(bytes=b"\xf8" + bytes(15))
    plain = uuid.UUID(bytes=b"\x01" * 16)
    draws = iter([dash, dash, plain])
    assert base64.urlsafe_b64encode(dash.bytes).startswith(b"-")
    assert cluster_id(lambda: next(draws)) == base64.urlsafe_b64encode(plain.bytes).rstrip(b"=").decode()


@given(st.binary(min_size=16, max_size=16))
def test_a_cluster_id_is_a_uuid_in_url_safe_base64(raw: bytes) -> None:
    assume(raw[0] & 0xFC != 0xF8)  # those draw again (above)
    text = cluster_id(lambda: uuid.UUID(bytes=raw))
    assert len(text) == 22 and base64.urlsafe_b64decode(text + "==") == raw
