"""Drop a table's keys of partitions this worker no longer has, after a rebalance.

Faust's in-memory store does this when recovery completes, for the keys it restored
itself. The state tables are restored by the batch consumer and written by the
agents straight into their dicts, so the store does not know their keys'
partitions: without this sweep a worker kept every key of the partitions it gave
away. That cost memory (a scale-out never shrank a worker's state), and worse, the
merged window table's stale keys were read back into the snapshots, so a worker
exported gauges and snapshots of keys another worker now owned.

Each table names how a key maps to its changelog partition (``partition_of``); the
sweep runs a slice at a time and stops as soon as another rebalance begins (that
one's recovery may be restoring those partitions into the same dict meanwhile).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, MutableMapping

from stream.worker.pacing import Pacer

PartitionOf = Callable[[bytes], int]


async def sweep(
    data: MutableMapping[bytes, bytes],
    owned: Collection[int],
    partition_of: PartitionOf,
    current: Callable[[], bool],
    pacer: Pacer | None = None,
) -> int | None:
    """Delete the keys of ``data`` whose partition is not in ``owned``; returns how many.

    Returns None (having stopped) once ``current()`` is false: it is asked before
    every deletion that follows a pause, so nothing is deleted after the event loop
    ran anything else and another rebalance may have begun.
    """
    pacer = pacer or Pacer()
    owned = frozenset(owned)
    dropped = 0
    if not current():
        return None
    for key in list(data):
        if partition_of(key) not in owned:
            data.pop(key, None)
            dropped += 1
        if await pacer.pause() and not current():
            return None
    return dropped
