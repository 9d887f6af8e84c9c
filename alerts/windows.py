"""Event-time windows as buckets we own, per partition, mergeable across partitions.

Each window size (1h, 24h, 7d, ...) keeps its own buckets of ``size / buckets``
seconds, aligned to the epoch. A partition's watermark is the newest event time
it has seen; window state expires on it, never on the wall clock, so a replay or
a restart gives the same numbers.

An event is *late* for a window when it is older than ``watermark - size - grace``:
its window has closed, so it is counted and not applied (it could not change
the current window anyway). A response already applied is removed from exactly
the windows it was applied to when an edit replaces it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import zip_longest
from typing import Any

from alerts.scores import WIDTH, Pairs, Stats, zero

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
Dim = tuple[str, str]
_MISSING: dict[tuple[int, int], list[int]] = {}  # (windows, mask) -> the windows' indexes not in it


@dataclass(frozen=True, slots=True)
class WindowSpec:
    """A window size and the width of its buckets, in seconds."""

    name: str
    size: int
    bucket: int

    def bucket_of(self, ts: float) -> int:
        """Start of the bucket holding ``ts``."""
        return int(ts // self.bucket) * self.bucket

    def bounds(self, watermark: float) -> tuple[int, int]:
        """``[start, end)`` of the window ending at the bucket boundary after ``watermark``."""
        end = (math.floor(watermark / self.bucket) + 1) * self.bucket
        return end - self.size, end


def parse_duration(text: str) -> int:
    """Seconds of a duration such as ``15m``, ``24h`` or ``7d``."""
    m = re.fullmatch(r"(\d+)([smhdw])", text.strip())
    if not m or int(m.group(1)) == 0:
        raise ValueError(f"duration {text!r} is not like 15m, 1h, 24h or 7d")
    return int(m.group(1)) * _UNITS[m.group(2)]


def parse_windows(text: str, buckets: int = 24) -> list[WindowSpec]:
    """Parse ``"1h,24h,7d"``; each window is split into ``buckets`` buckets."""
    specs = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        if not re.fullmatch(r"(\d+)([smhdw])", part):
            raise ValueError(f"window {part!r} is not like 15m, 1h, 24h or 7d")
        size = parse_duration(part)
        if size % buckets:
            raise ValueError(f"window {part!r} ({size}s) does not split into {buckets} whole-second buckets")
        specs.append(WindowSpec(part, size, size // buckets))
    if not specs:
        raise ValueError("at least one window is needed")
    return specs


@dataclass(slots=True)
class PartitionWindows:
    """One partition's window buckets for every (dimension, key)."""

    specs: list[WindowSpec]
    grace: float
    watermark: float = 0.0
    # source "topic/partition" -> last offset whose effects are in these buckets; a replay
    # after a crash re-reads records the buckets already hold, and they must not count twice
    applied: dict[str, int] = field(default_factory=dict)
    muted: bool = False
    # (dimension, key) -> window name -> bucket start -> stats
    partials: dict[Dim, dict[str, dict[int, Stats]]] = field(default_factory=dict)
    # buckets changed since the last save: (dimension, key), window name, bucket start
    dirty: set[tuple[Dim, str, int]] = field(default_factory=set)
    # changes not yet in ``partials``: (dimension, finest bucket, mask, removal) -> their sum
    pending: dict[tuple[Dim, int, int, bool], Stats] = field(default_factory=dict)
    fine: int = 0  # the finest bucket that every window's buckets are made of (the gcd)
    full: int = 0  # the mask with every window open
    reach: float = 0.0  # how far behind the watermark every window is still open
    # window -> the horizon's bucket index at the last expiry scan; ``stale``: scan next time
    expired_at: dict[str, int] = field(default_factory=dict)
    stale: bool = True

    def __post_init__(self) -> None:
        self.fine = math.gcd(*(spec.bucket for spec in self.specs))
        self.full = (1 << len(self.specs)) - 1
        self.reach = min(spec.size for spec in self.specs) + self.grace

    def observe(self, ts: float) -> None:
        """Advance the watermark to ``ts`` if it is newer."""
        if ts > self.watermark:
            self.watermark = ts

    def open_mask(self, ts: float) -> int:
        """Bit i set when window ``specs[i]`` still accepts an event at ``ts``."""
        if ts >= self.watermark - self.reach:
            return self.full  # the common case: recent enough for the shortest window
        mask = 0
        for i, spec in enumerate(self.specs):
            if ts >= self.watermark - spec.size - self.grace:
                mask |= 1 << i
        return mask

    def apply(self, dims: Iterable[Dim], ts: float, stats: Stats, mask: int, sign: float = 1.0) -> None:
        """Add (or with ``sign=-1`` remove) ``stats`` at ``ts`` in the windows of ``mask``."""
        self.apply_pairs(dims, ts, [(i, v) for i, v in enumerate(stats) if v], mask, sign < 0)

    def apply_pairs(
        self, dims: Iterable[Dim], ts: float, pairs: Pairs, mask: int, removal: bool = False
    ) -> None:
        """``apply`` with a sparse vector (the hot path: an event sets a handful of the positions).

        The change is summed per (dimension, finest bucket, mask) until ``flush``: the
        events of a batch mostly share those, so the windows' buckets are then updated
        once per batch instead of once per event and window.
        """
        if self.muted or not mask or not pairs:
            return
        if removal:
            pairs = [(i, -v) for i, v in pairs]
        fine = int(ts // self.fine)
        pending = self.pending
        for dim in dims:
            key = (dim, fine, mask, removal)
            acc = pending.get(key)
            if acc is None:
                acc = pending[key] = zero()
            for i, v in pairs:
                acc[i] += v

    def flush(self) -> None:
        """Apply what ``apply`` summed to the windows' buckets: additions first, then removals.

        Additions first, so a removal finds a bucket created earlier in the same batch,
        as it would one event at a time. (A removal that meets a bucket an addition
        re-created after it expired changes nothing visible: that bucket is beyond the
        horizon, and the ``expire`` that always follows drops it again.)
        """
        if not self.pending:
            return
        items = sorted(self.pending.items(), key=lambda kv: kv[0][3])  # stable: additions first
        self.pending = {}
        partials, dirty = self.partials, self.dirty
        specs = [(1 << i, spec.name, spec.bucket) for i, spec in enumerate(self.specs)]
        horizons = {spec.name: spec.size + self.grace for spec in self.specs}  # behind the watermark
        for (dim, fine, mask, removal), acc in items:
            ts = fine * self.fine
            pairs = [(i, v) for i, v in enumerate(acc) if v]
            windows = partials.get(dim)
            if windows is None:
                windows = partials[dim] = {}
            for bit, name, width in specs:
                if not mask & bit:
                    continue
                start = ts // width * width
                buckets = windows.get(name)
                if buckets is None:
                    buckets = windows[name] = {}
                bucket = buckets.get(start)
                if bucket is None:
                    if removal:
                        continue  # its bucket has expired: nothing left to remove
                    bucket = buckets[start] = zero()
                    if start + width <= self.watermark - horizons[name]:
                        self.stale = True  # re-created behind the horizon: expire it again
                for i, v in pairs:
                    bucket[i] += v
                if removal and not any(bucket):
                    del buckets[start]
                dirty.add((dim, name, start))

    def late(self, mask: int) -> list[int]:
        """Indexes of the windows missing from ``mask`` (an event too old for them)."""
        if mask == self.full:
            return []
        n = len(self.specs)
        missing = _MISSING.get((n, mask))
        if missing is None:
            missing = _MISSING[(n, mask)] = [i for i in range(n) if not mask & (1 << i)]
        return list(missing)

    def begin(self, source: str, offset: int) -> None:
        """Start a record: mute bucket changes if a replay brings one these buckets already hold."""
        self.muted = offset <= self.applied.get(source, -1)

    def done(self, source: str, offset: int) -> None:
        """Finish a record."""
        if not self.muted:
            self.applied[source] = offset
        self.muted = False

    def expire(self) -> None:
        """Drop buckets no event can reach any more (event time, not wall clock).

        Which buckets have expired changes only when a window's horizon crosses a bucket
        boundary, so the scan over every (dimension, key) runs only then (or after a
        bucket was re-created behind the horizon): a batch every few milliseconds must
        not pay for all the keys of its partition.
        """
        self.flush()
        due = []
        for spec in self.specs:
            horizon = self.watermark - spec.size - self.grace
            mark = math.floor(horizon / spec.bucket)
            if self.stale or self.expired_at.get(spec.name) != mark:
                self.expired_at[spec.name] = mark
                due.append((spec.name, spec.bucket, horizon))
        self.stale = False
        if not due:
            return
        for dim, windows in self.partials.items():
            for name, width, horizon in due:
                buckets = windows.get(name)
                if not buckets:
                    continue
                old = [b for b in buckets if b + width <= horizon]
                for b in old:
                    del buckets[b]
                    self.dirty.add((dim, name, b))

    def doc(self, dim: Dim) -> dict[str, Any]:
        """The publishable partial of one (dimension, key)."""
        self.flush()
        windows = self.partials.get(dim, {})
        return {name: {str(b): s for b, s in buckets.items()} for name, buckets in windows.items()}

    def bucket(self, dim: Dim, window: str, start: int) -> Stats | None:
        """One bucket's stats, or None when it is empty or expired."""
        self.flush()
        return self.partials.get(dim, {}).get(window, {}).get(start)

    def load_bucket(self, dim: Dim, window: str, start: int, stats: Stats) -> None:
        """Restore one bucket."""
        self.partials.setdefault(dim, {}).setdefault(window, {})[start] = _padded(stats)
        self.stale = True

    def load(self, dim: Dim, doc: dict[str, Any]) -> None:
        """Restore one partial written by ``doc``."""
        self.stale = True
        self.partials[dim] = {
            name: {int(b): _padded(s) for b, s in buckets.items()} for name, buckets in doc.items()
        }


def _padded(stats: Stats) -> Stats:
    """A stored bucket as a full vector (buckets written before a field was added are shorter)."""
    out = list(stats)
    if len(out) < WIDTH:
        out += [0.0] * (WIDTH - len(out))
    return out


def merged_stats(
    spec: WindowSpec, partials: Iterable[dict[str, Any]], watermark: float
) -> tuple[int, int, Stats]:
    """Sum the buckets of ``spec``'s current window over every partition's partial doc."""
    start, end = spec.bounds(watermark)
    inside = [s for doc in partials for b, s in doc.get(spec.name, {}).items() if start <= int(b) < end]
    # column sums in C: a snapshot sums ~100 buckets per key and window (a loop per
    # bucket in Python cost ~1 ms per key); the same additions in the same order
    total = [sum(column, 0.0) for column in zip_longest(*inside, fillvalue=0.0)] if inside else zero()
    if len(total) < WIDTH:
        total += [0.0] * (WIDTH - len(total))  # buckets written before a field was added
    return start, end, total
