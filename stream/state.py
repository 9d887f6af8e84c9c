"""Customer state in a changelog-backed Faust table, written a batch at a time.

Batch agents have no "current event", so they cannot use ``table[key] = v``.
They read and write ``table.data`` and send one changelog record per changed
customer per batch, which is what Faust replays into ``table.data`` when a
worker restarts or a partition moves.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import orjson

from alerts.customer import CustomerState
from alerts.windows import Dim, PartitionWindows, WindowSpec


class CustomerStore:
    """Load and save ``CustomerState`` in a Faust table of orjson bytes keyed by customer id."""

    def __init__(self, table: Any) -> None:
        self.table = table

    def load(self, customer_id: str) -> CustomerState | None:
        """The stored state of a customer, or None for a customer never seen."""
        raw = self.table.data.get(customer_id.encode("utf-8"))
        if raw is None:
            return None
        return CustomerState.from_doc(orjson.loads(raw))

    def save(self, dirty: dict[str, tuple[int, CustomerState]]) -> None:
        """Write changed customers to the table and to its changelog partition."""
        data = self.table.data
        for customer_id, (partition, state) in dirty.items():
            key = customer_id.encode("utf-8")
            value = orjson.dumps(state.to_doc())
            data[key] = value
            self.table.send_changelog(partition, key, value)

    def __len__(self) -> int:
        return len(self.table.data)

    def with_held(self, owner: Callable[[str], int]) -> dict[str, int]:
        """Customers holding surveys that wait for a ticket (a scan, once after a start)."""
        found = {}
        for key, raw in list(self.table.data.items()):
            if b'"h":[[' in raw:  # cheap test before decoding
                cid = key.decode("utf-8")
                found[cid] = owner(cid)
        return found


SEP = "\x1f"  # unit separator: cannot clash with team or channel names


class WindowStore:
    """Each partition's window buckets in a Faust table, cached as ``PartitionWindows``.

    Keys are ``<partition>␟<dimension>␟<key>`` (one partial each) and ``<partition>␟``
    (the partition's watermark); the changelog partition is the input partition, so
    the buckets move and recover together with the customers they came from.
    """

    def __init__(self, table: Any, specs: list[WindowSpec], grace: float) -> None:
        self.table = table
        self.specs = specs
        self.grace = grace
        self.cache: dict[int, PartitionWindows] = {}
        self.unpublished: dict[int, set[Dim]] = {}

    def get(self, partition: int) -> PartitionWindows:
        """The partition's windows, read from the table on first use after an assignment."""
        pw = self.cache.get(partition)
        if pw is None:
            pw = self.cache[partition] = self._load(partition)
            self.unpublished[partition] = set(pw.partials)  # republish everything once
        return pw

    def _load(self, partition: int) -> PartitionWindows:
        pw = PartitionWindows(self.specs, self.grace)
        prefix = f"{partition}{SEP}".encode()
        for key, raw in list(self.table.data.items()):
            if not key.startswith(prefix):
                continue
            if key == prefix:
                mark = orjson.loads(raw)
                pw.watermark = float(mark["wm"])
                pw.applied = {k: int(v) for k, v in mark.get("applied", {}).items()}
            else:
                _, dim, name = key.decode().split(SEP, 2)
                pw.load((dim, name), orjson.loads(raw))
        return pw

    def save(self, partitions: set[int]) -> list[Any]:
        """Expire and write changed buckets of ``partitions`` (one record per changed key).

        Returns the changelog sends, to be awaited before the customers are saved.
        """
        data = self.table.data
        sent = []
        for p in partitions:
            pw = self.cache[p]
            pw.expire()
            for dim in pw.dirty:
                key = f"{p}{SEP}{dim[0]}{SEP}{dim[1]}".encode()
                value = orjson.dumps(pw.doc(dim))
                data[key] = value
                sent.append(self.table.send_changelog(p, key, value))
            self.unpublished.setdefault(p, set()).update(pw.dirty)
            pw.dirty.clear()
            mark = f"{p}{SEP}".encode()
            value = orjson.dumps({"wm": pw.watermark, "applied": pw.applied})
            data[mark] = value
            sent.append(self.table.send_changelog(p, mark, value))
        return sent

    def take_unpublished(self) -> list[tuple[int, float, Dim, dict[str, Any]]]:
        """Partials changed since the last call: ``(partition, watermark, dim, doc)``."""
        out: list[tuple[int, float, Dim, dict[str, Any]]] = []
        for p, dims in self.unpublished.items():
            pw = self.cache.get(p)
            if pw is None:
                continue
            out.extend((p, pw.watermark, dim, pw.doc(dim)) for dim in dims)
            dims.clear()
        return out

    def forget(self, partitions: set[int]) -> None:
        """Drop cached partitions (revoked: another worker may change them meanwhile)."""
        for p in partitions:
            self.cache.pop(p, None)
            self.unpublished.pop(p, None)
