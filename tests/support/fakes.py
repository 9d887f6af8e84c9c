"""Stand-ins for Faust tables and for ``stream.worker.delivery.Records`` in agent and state tests."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import NamedTuple

from stream.worker.state import MemoryTable as Table  # a Faust table as the stores and agents use it

__all__ = ["Outbox", "Sent", "Table"]


class Sent(NamedTuple):
    """One record an outbox delivered."""

    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: list[tuple[str, bytes]]


class Outbox:
    """Collects a delivery stage's records into ``sent`` when delivered, or fails with ``error``."""

    def __init__(self, sent: list[Sent], error: Exception | None = None) -> None:
        self.sent, self.error = sent, error
        self.records: list[Sent] = []

    def add(
        self,
        topic: str,
        partition: int | None,
        key: bytes | None,
        value: bytes | None,
        headers: Sequence[tuple[str, bytes]] = (),
    ) -> None:
        self.records.append(Sent(topic, key, value, partition, list(headers)))

    async def send(self) -> list[asyncio.Future[None]]:
        """Like ``Records.send``: the records are on their way; the futures say how it went."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self.error is not None and self.records:
            done.set_exception(self.error)
        else:
            self.sent.extend(self.records)
            done.set_result(None)
        self.records = []
        return [done]

    async def wait(self, futures: Sequence[asyncio.Future[None]]) -> None:
        """Like ``Records.wait``: raises the first failure."""
        for done in futures:
            await done

    async def deliver(self) -> int:
        """Like ``Records.deliver``: send and wait."""
        n = len(self.records)
        for done in await self.send():
            await done
        return n
