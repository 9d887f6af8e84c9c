"""Customer state in a changelog-backed Faust table, written a batch at a time.

Batch agents have no "current event", so they cannot use ``table[key] = v``.
They read and write ``table.data`` and send one changelog record per changed
customer per batch, which is what Faust replays into ``table.data`` when a
worker restarts or a partition moves.
"""

from __future__ import annotations

from typing import Any

import orjson

from alerts.customer import CustomerState


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
