"""Deterministic ids: the same input always yields the same id."""

from __future__ import annotations

import hashlib


def stable_id(prefix: str, *parts: str) -> str:
    """Return ``<prefix>_<24 hex>`` derived from ``parts`` (a replay yields the same id)."""
    digest = hashlib.sha256("\x1f".join(parts).encode("utf-8")).hexdigest()[:24]
    return f"{prefix}_{digest}"
