"""The drain loop's acks: in order per batch agent, as soon as a delivery is done, never after a failure."""

from __future__ import annotations

import asyncio
from collections import deque
from functools import partial
from typing import Any

import pytest

from stream.worker.batching import BatchConsumer, InFlight


class Acks:
    """Just the ack bookkeeping of ``BatchConsumer`` (no broker, no Faust app)."""

    _ack_delivered = BatchConsumer._ack_delivered
    _settle = BatchConsumer._settle

    def __init__(self) -> None:
        self.acked: list[str] = []

    def ack_batch(self, messages: Any) -> None:
        self.acked.extend(messages)


def hand_over(acks: Acks, queue: InFlight, name: str) -> asyncio.Future[None]:
    """As the drain loop does with a batch agent's delivery."""
    future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    queue.append((future, [name]))
    future.add_done_callback(partial(acks._ack_delivered, queue))
    return future


def test_a_delivered_batch_is_acked_without_waiting_for_the_loop() -> None:
    async def go() -> list[str]:
        acks, queue = Acks(), deque()
        first = hand_over(acks, queue, "a1")
        first.set_result(None)
        await asyncio.sleep(0)  # the done callback runs
        return acks.acked

    assert asyncio.run(go()) == ["a1"]


def test_batches_are_acked_in_order_even_when_delivered_out_of_order() -> None:
    async def go() -> tuple[list[str], list[str]]:
        acks, queue = Acks(), deque()
        first, second = hand_over(acks, queue, "a1"), hand_over(acks, queue, "a2")
        second.set_result(None)
        await asyncio.sleep(0)
        before = list(acks.acked)
        first.set_result(None)
        await asyncio.sleep(0)
        return before, acks.acked

    assert asyncio.run(go()) == ([], ["a1", "a2"])


def test_a_failed_delivery_is_never_acked_and_stops_the_loop_with_nothing_after_it_acked() -> None:
    async def go() -> list[str]:
        acks, queue = Acks(), deque()
        first, second = hand_over(acks, queue, "a1"), hand_over(acks, queue, "a2")
        first.set_exception(RuntimeError("broker refused"))
        second.set_result(None)
        await asyncio.sleep(0)
        with pytest.raises(RuntimeError, match="broker refused"):
            await acks._settle({"agent": queue}, 4)  # type: ignore[dict-item]
        return acks.acked

    assert asyncio.run(go()) == []


def test_one_agents_slow_batch_does_not_hold_up_another_agents_acks() -> None:
    """A merge of partials still running must not keep the intake's batches unacked or waiting."""

    async def go() -> list[str]:
        acks = Acks()
        merge, intake = deque(), deque()
        hand_over(acks, merge, "m1")  # still running
        for i in range(3):
            hand_over(acks, intake, f"i{i}").set_result(None)
        await asyncio.wait_for(acks._settle({"merge": merge, "intake": intake}, 2), 1.0)  # type: ignore[dict-item]
        return acks.acked

    assert asyncio.run(go()) == ["i0", "i1", "i2"]


def test_the_loop_waits_only_for_an_agent_over_its_limit() -> None:
    async def go() -> tuple[bool, list[str]]:
        acks, queue = Acks(), deque()
        pending = [hand_over(acks, queue, f"a{i}") for i in range(3)]
        settle = asyncio.ensure_future(acks._settle({"agent": queue}, 2))  # type: ignore[dict-item]
        await asyncio.sleep(0.01)
        waiting = not settle.done()
        pending[0].set_result(None)
        await asyncio.wait_for(settle, 1.0)
        return waiting, acks.acked

    assert asyncio.run(go()) == (True, ["a0"])
