"""Keeping a long-lived loop running: start it again after any failure, with a growing pause."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)


async def supervise(
    run: Callable[[asyncio.Event], Awaitable[object]],
    stop: asyncio.Event,
    what: str,
    on_failure: Callable[[], None] = lambda: None,
    reset_after_s: float | None = None,
) -> None:
    """``run(stop)`` until ``stop`` is set, again after each failure (logged as ``what`` failing).

    The pause starts at 1 s and doubles up to 60 s; with ``reset_after_s``, a run that lasted
    that long before failing starts the pause over (a failure a day is not a failure loop).
    """
    pause = 1.0
    while not stop.is_set():
        started = time.monotonic()
        try:
            await run(stop)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("%s failed; it starts again in %.0f s", what, pause)
            on_failure()
            await asyncio.sleep(pause)
            healthy = reset_after_s is not None and time.monotonic() - started > reset_after_s
            pause = 1.0 if healthy else min(pause * 2, 60.0)
