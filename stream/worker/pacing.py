"""Long periodic work that gives the event loop back every few milliseconds.

The worker is one event loop: while a timer publishes ten seconds' worth of
window partials (after a backlog, a hundred thousand buckets), no survey is
processed, and every alert waiting behind it is late. Work that can take longer
than a batch calls ``Pacer.pause()`` between items; it yields to the loop once
its slice is used up, so the intake runs between slices.
"""

from __future__ import annotations

import asyncio
import time


class Pacer:
    """Yields to the event loop when ``slice_s`` has passed since the last yield."""

    def __init__(self, slice_s: float = 0.002) -> None:
        if slice_s <= 0:
            raise ValueError(f"slice_s must be positive, got {slice_s!r}")
        self.slice_s = slice_s
        self.until = time.perf_counter() + slice_s
        self.yields = 0

    async def pause(self) -> bool:
        """Between two items of work: yield if this slice is used up. Returns whether it yielded
        (anything else may have run meanwhile, say a rebalance)."""
        if time.perf_counter() < self.until:
            return False
        await asyncio.sleep(0)
        self.yields += 1
        self.until = time.perf_counter() + self.slice_s
        return True
