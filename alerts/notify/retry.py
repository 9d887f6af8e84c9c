"""What an answer means for a delivery, and when to try again.

Outcomes: ``delivered`` (2xx), ``retry`` (429, 5xx, 408, a timeout, a connection that
failed), ``disabled`` (410: the receiver says the destination is gone), ``rejected``
(any other 4xx, 3xx: retrying would not change it; the message goes to the
notification dead-letter topic with the answer). Retries back off exponentially with
full jitter, honour ``Retry-After``, and are bounded by attempts and by age.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal

Status = Literal["delivered", "retry", "disabled", "rejected"]
MAX_DETAIL = 500  # characters of a receiver's answer kept in logs and dead letters


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt went."""

    status: Status
    code: int | None = None  # HTTP status, or an SMTP reply code
    retry_after: float | None = None  # seconds the receiver asked for
    detail: str = ""  # a short, secret-free description (a receiver's answer, an error class)

    @property
    def final(self) -> bool:
        """Nothing more to try for this delivery."""
        return self.status != "retry"


def bounded(text: str, limit: int = MAX_DETAIL) -> str:
    """``text`` cut to ``limit`` characters."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` (epoch) a ``Retry-After`` header asks for (delta seconds or an HTTP date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def classify_http(status: int, retry_after: str | None, body: str, now: float) -> Outcome:
    """The outcome of an HTTP answer."""
    detail = bounded(f"HTTP {status}: {body.strip()}" if body.strip() else f"HTTP {status}")
    if 200 <= status < 300:
        return Outcome("delivered", status, detail=detail)
    if status == 410:
        return Outcome("disabled", status, detail=detail)
    if status in (408, 425, 429) or status >= 500:
        return Outcome("retry", status, parse_retry_after(retry_after, now), detail)
    return Outcome("rejected", status, detail=detail)


def classify_smtp(code: int, message: str) -> Outcome:
    """The outcome of an SMTP reply: 2xx accepted, 4xx try again later, 5xx refused."""
    detail = bounded(f"SMTP {code}: {message.strip()}")
    if 200 <= code < 300:
        return Outcome("delivered", code, detail=detail)
    if 400 <= code < 500:
        return Outcome("retry", code, detail=detail)
    return Outcome("rejected", code, detail=detail)


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long a delivery is tried."""

    base_s: float = 1.0
    cap_s: float = 600.0
    max_attempts: int = 12
    max_age_s: float = 86_400.0
    max_retry_after_s: float = 3600.0

    def delay(self, attempt: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds before attempt ``attempt + 1``, after ``attempt`` failed (attempts count from 1).

        Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))], but never sooner
        than the receiver's ``Retry-After`` (itself capped).
        """
        ceiling = min(self.cap_s, self.base_s * 2 ** min(attempt - 1, 62))
        wait = rng.uniform(0.0, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after_s))
        return wait

    def gives_up(self, attempts: int, first_at: float, next_at: float) -> bool:
        """Whether a delivery tried ``attempts`` times since ``first_at`` is tried no more."""
        return attempts >= self.max_attempts or next_at - first_at > self.max_age_s
