"""A progress watchdog: a process that has input waiting and commits nothing says so, then exits.

A stream processor that is alive but stuck is the worst failure: nothing restarts it and
nothing shows it unless progress is measured. ``Progress`` is the rule, pure: input is
waiting (a partition's end offset is past its committed offset) and no committed offset
has moved for ``stall_s`` -> stalled (``/ready`` false, ``survey_alerts_stalled`` 1, one
ERROR line); still so after ``restart_s`` -> the process exits for a restart
(``stream.deadline.exit_for_restart``). No waiting input is never a stall, however long.
``Watchdog`` runs the rule every few seconds over offsets a process reads from its consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn

from prometheus_client import CollectorRegistry, Gauge

from stream.deadline import exit_for_restart
from stream.metrics import PREFIX

log = logging.getLogger(__name__)

Offsets = Mapping[Hashable, int]  # partition -> offset


@dataclass
class Verdict:
    """What the rule says now."""

    waiting: int  # records past the committed offsets, summed over partitions
    still_s: float  # seconds since a committed offset last moved (0 while nothing waits)
    stalled: bool
    restart: bool


class Progress:
    """Stalled: input waiting and no committed offset moved for ``stall_s``; restart after ``restart_s``."""

    def __init__(self, stall_s: float, restart_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.stall_s = stall_s
        self.restart_s = restart_s
        self.clock = clock
        self.committed: dict[Hashable, int] = {}
        self.ends: dict[Hashable, int] = {}
        self.moved_at = clock()

    def observe(self, committed: Offsets, ends: Offsets) -> Verdict:
        """Record the committed and end offsets seen now; returns the verdict."""
        now = self.clock()
        waiting = sum(max(0, end - committed.get(tp, 0)) for tp, end in ends.items())
        moved = any(self.committed.get(tp) != offset for tp, offset in committed.items())
        self.committed, self.ends = dict(committed), dict(ends)
        if moved or waiting == 0:
            self.moved_at = now
        still = now - self.moved_at
        return Verdict(waiting, still, still >= self.stall_s, still >= self.restart_s)

    def reset(self) -> None:
        """Progress by other means (a restore from changelogs, a rebalance): the clock starts over."""
        self.moved_at = self.clock()


class Watchdog:
    """Runs ``Progress`` over ``read()`` every ``interval_s``; says when stalled, exits when it lasts."""

    def __init__(
        self,
        name: str,
        read: Callable[[], Awaitable[tuple[Offsets, Offsets] | None]],
        stall_s: float,
        restart_s: float,
        registry: CollectorRegistry | None = None,
        interval_s: float | None = None,
        on_restart: Callable[[str], NoReturn] = exit_for_restart,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = name
        self.read = read  # (committed, end offsets), or None while progress is made otherwise
        self.progress = Progress(stall_s, restart_s, clock)
        self.interval_s = interval_s if interval_s is not None else max(0.5, min(5.0, stall_s / 4))
        self.on_restart = on_restart
        self.stalled = False
        self.gauge = Gauge(
            f"{PREFIX}_stalled",
            "1 while input is waiting and no offset has been committed for SURVEY_ALERTS_STALL_S",
            registry=registry,
        )
        self.gauge.set(0)

    async def check(self) -> Verdict | None:
        """One look: read the offsets and apply the rule (logs and exits as it says)."""
        try:
            offsets = await asyncio.wait_for(self.read(), self.interval_s * 2)
        except Exception:  # the consumer is away, or reading hangs: nothing moved, as far as is known
            offsets = (self.progress.committed, self.progress.ends)
        if offsets is None:
            self.progress.reset()
            verdict = Verdict(0, 0.0, False, False)
        else:
            verdict = self.progress.observe(*offsets)
        if verdict.stalled and not self.stalled:
            log.error(
                "%s stalled: %d records waiting and no offset committed for %.0f s (it exits after %.0f s)",
                self.name,
                verdict.waiting,
                verdict.still_s,
                self.progress.restart_s,
            )
        elif self.stalled and not verdict.stalled:
            log.warning("%s makes progress again", self.name)
        self.stalled = verdict.stalled
        self.gauge.set(1 if verdict.stalled else 0)
        if verdict.restart:
            waiting, still = verdict.waiting, verdict.still_s
            self.on_restart(f"{self.name} made no progress for {still:.0f} s with {waiting} records waiting")
        return verdict

    async def run(self) -> None:
        """Check every ``interval_s`` until cancelled."""
        while True:
            await asyncio.sleep(self.interval_s)
            await self.check()


class ConsumerOffsets:
    """What a process has finished with, per partition of its aiokafka consumer, for its watchdog.

    ``finished(batch)`` after a batch is done with (applied, recorded); ``read`` gives the
    watchdog those offsets and the partitions' end offsets. A partition this process has
    finished nothing of yet starts from where its consumer stood when first seen.
    """

    def __init__(self) -> None:
        self.consumer: Any = None
        self.done: dict[Any, int] = {}

    def finished(self, batch: Mapping[Any, Sequence[Any]]) -> None:
        for tp, records in batch.items():
            if records:
                self.done[tp] = records[-1].offset + 1

    async def read(self) -> tuple[Offsets, Offsets] | None:
        consumer = self.consumer
        if consumer is None:
            return None  # not started (starting has its own bound)
        committed: dict[Hashable, int] = {}
        ends: dict[Hashable, int] = {}
        for tp in consumer.assignment():
            end = consumer.highwater(tp)
            if end is None:
                continue  # nothing fetched from it yet
            if tp not in self.done:
                self.done[tp] = await consumer.position(tp)
            committed[tp], ends[tp] = self.done[tp], end
        return committed, ends
