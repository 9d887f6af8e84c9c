"""Fault injection for a worker under test: put this directory on its PYTHONPATH.

With ``SURVEY_ALERTS_TEST_RECOVERY_PAUSE_S`` set, Faust's recovery pauses that long
between seeking the changelog partitions and resuming the flow. A fetch that was
waiting when the rebalance began then comes back inside that window with records
from the new positions, and a consumer that drops them without fetching them again
leaves recovery waiting for them forever.
"""

import asyncio
import os

_pause = os.environ.get("SURVEY_ALERTS_TEST_RECOVERY_PAUSE_S")
if _pause:
    from faust.tables import recovery as _recovery

    _seek_offsets = _recovery.Recovery._seek_offsets

    async def _seek_then_pause(self, consumer, tps, offsets, title):
        await _seek_offsets(self, consumer, tps, offsets, title)
        if title == "active" and tps:
            await asyncio.sleep(float(_pause))

    _recovery.Recovery._seek_offsets = _seek_then_pause
